package probe

// bufs are the buffers a parser builds sequences in. Between resets they
// only grow (append never writes below a slice's length, and a reallocation
// leaves the old array to the sequences that point into it), so every
// sequence built since the last reset stays valid: a parser can fill a
// whole batch of lines before anyone reads them.
type bufs struct {
	lps    []float64
	mask   []bool
	nulls  []bool // the position has no log-prob
	tokens []string
	tspans []span // aligned with tokens: where a token's text sits in the line
	offs   []int  // vLLM text offsets
	flat   []TopToken
	spans  []span // aligned with flat: where an entry's name sits in the line
	ends   []int  // per position: end of its list in flat, or −1 for none
	top    [][]TopToken
	starts []int     // per position: start of its list in flat
	own    []float64 // own answers' log-probs
}

func (b *bufs) reset() {
	b.lps, b.mask, b.nulls, b.tokens, b.tspans, b.offs = b.lps[:0], b.mask[:0], b.nulls[:0], b.tokens[:0], b.tspans[:0], b.offs[:0]
	b.flat, b.spans, b.ends, b.top, b.starts, b.own = b.flat[:0], b.spans[:0], b.ends[:0], b.top[:0], b.starts[:0], b.own[:0]
}

// mark records the buffers' lengths where a sequence starts. (What a line
// that fails leaves behind is never pointed at and goes at the next reset.)
type mark struct{ lps, mask, nulls, tokens, offs, flat, ends int }

func (b *bufs) mark() mark {
	return mark{len(b.lps), len(b.mask), len(b.nulls), len(b.tokens), len(b.offs), len(b.flat), len(b.ends)}
}

// padSpans gives the entries added to flat without a span an empty one.
func (b *bufs) padSpans() {
	for len(b.spans) < len(b.flat) {
		b.spans = append(b.spans, span{-1, -1})
	}
}

// topLists slices the lists of positions e0 … e1−1 (indices into ends),
// whose entries start at flat[flat0], out of flat.
func (b *bufs) topLists(e0, e1, flat0 int) [][]TopToken {
	b.padSpans()
	t0 := len(b.top)
	prev := flat0
	for _, e := range b.ends[e0:e1] {
		b.starts = append(b.starts, prev)
		if e < 0 {
			b.top = append(b.top, nil)
			continue
		}
		b.top = append(b.top, b.flat[prev:e:e])
		prev = e
	}
	return b.top[t0:]
}

// names returns the Names function of a sequence whose top lists came
// from the last call to topLists (top may be nil) and whose token texts, when
// lazy, sit at tspans[tok0:]; names are cut from line.
func (b *bufs) names(top [][]TopToken, tokens []string, tok0 int, lazyTokens bool, line []byte) func(int) {
	starts := b.starts[len(b.starts)-len(top):]
	spans, tspans := b.spans, b.tspans
	return func(i int) {
		if top != nil {
			fillNames(top[i], spans[starts[i]:], line)
		}
		if lazyTokens && tokens[i] == "" {
			if sp := tspans[tok0+i]; sp.start >= 0 {
				tokens[i] = string(line[sp.start:sp.end])
			}
		}
	}
}
