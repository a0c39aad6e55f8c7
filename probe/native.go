package probe

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// NativeFormat documents the native JSONL format; the command line prints
// it in its help and the README repeats it.
const NativeFormat = `native: one JSON object per line, one sequence (the response tokens) each:
  {"id": "ex-17", "logprobs": [-0.11, -2.3, -0.002],
   "mask": [1, 1, 0],
   "tokens": [" The", " answer", "."],
   "top_logprobs": [{" The": -0.11, " A": -2.4}, null, [[".", -0.002], ["!", -6.1]]],
   "meta": {"anything": "ignored"}}
  logprobs      required: natural-log probability of each target token
                (null: no log-prob, position not scored; ≤ -9999 or
                -Infinity: p = 0)
  mask          optional: 1/true = scored, 0/false = not (default: all scored)
  tokens        optional: the target tokens' text
  top_logprobs  optional, one entry per position: null, an object
                {token: logprob}, a list of [token, logprob] pairs or a list
                of {"token": t, "logprob": lp} objects (the top-k list; it
                may include the target)
  id            optional string or number
  own_answer    optional: the model's own answer (see own_answer below)
  meta          optional, ignored; any other field is an error`

var nativeFields = []string{"id", "logprobs", "mask", "tokens", "top_logprobs", "own_answer"}

// nativeParser parses the native JSONL format.
type nativeParser struct {
	sc    scanner
	ar    arena
	b     bufs
	nulls []int
}

// NewNativeReader reads the native format from r; name is used in errors.
func NewNativeReader(r io.Reader, name string) Source {
	return newLineSource(newLineReader(r, name), &nativeParser{})
}

func (r *nativeParser) reset() { r.b.reset() }

func (r *nativeParser) parse(line []byte, out []Sequence) ([]Sequence, error) {
	seq, err := r.parseSeq(line, r.b.mark())
	if err != nil {
		return out, err
	}
	return append(out, seq), nil
}

func (r *nativeParser) parseSeq(line []byte, m mark) (Sequence, error) {
	s, b := &r.sc, &r.b
	s.reset(line)
	r.ar.reset()
	var seq Sequence
	var have [6]bool // the fields of nativeFields
	var oa ownAnswer
	r.nulls = r.nulls[:0]
	if !s.beginObject() {
		return seq, s.err
	}
	for s.nextKey() {
		if k := indexOf(nativeFields, s.key); k >= 0 {
			if have[k] {
				return seq, fmt.Errorf("field %q appears twice", s.key)
			}
			have[k] = true
		}
		switch string(s.key) {
		case "id":
			seq.ID = r.readID()
		case "logprobs":
			b.lps = s.floats(b.lps, func(k int) { r.nulls = append(r.nulls, k) })
		case "mask":
			if s.beginArray() {
				for s.more() {
					b.mask = append(b.mask, s.boolOrBit())
				}
			}
		case "tokens":
			if s.beginArray() {
				for s.more() {
					if s.null() {
						b.tokens = append(b.tokens, "")
						continue
					}
					b.tokens = append(b.tokens, r.ar.str(s))
				}
			}
		case "top_logprobs":
			r.readTop()
		case "own_answer":
			readOwnAnswer(s, &r.ar, b, &oa)
		case "meta":
			s.skip()
		default:
			if s.err == nil {
				return seq, fmt.Errorf("unknown field %q (want id, logprobs, mask, tokens, top_logprobs, own_answer or meta)", s.key)
			}
		}
	}
	s.end()
	if s.err != nil {
		return seq, s.err
	}
	if !have[1] {
		return seq, errors.New(`missing "logprobs"`)
	}
	seq.LogProbs = b.lps[m.lps:]
	n := len(seq.LogProbs)
	if have[2] {
		seq.Mask = b.mask[m.mask:]
		if len(seq.Mask) != n {
			return seq, fmt.Errorf("lengths disagree: %d logprobs, %d mask entries", n, len(seq.Mask))
		}
	}
	if len(r.nulls) > 0 {
		if !have[2] {
			for range n {
				b.mask = append(b.mask, true)
			}
			seq.Mask = b.mask[m.mask:]
		}
		for _, i := range r.nulls {
			if have[2] && seq.Mask[i] {
				return seq, fmt.Errorf("position %d is scored (mask 1) but its log-prob is null", i)
			}
			seq.Mask[i] = false
		}
	}
	if have[3] {
		seq.Tokens = b.tokens[m.tokens:]
		if len(seq.Tokens) != n {
			return seq, fmt.Errorf("lengths disagree: %d logprobs, %d tokens", n, len(seq.Tokens))
		}
	}
	if have[4] {
		if k := len(b.ends) - m.ends; k != n {
			return seq, fmt.Errorf("lengths disagree: %d logprobs, %d top_logprobs entries", n, k)
		}
		seq.Top = b.topLists(m.ends, len(b.ends), m.flat)
		seq.Names = b.names(seq.Top, nil, 0, false, line)
	}
	var err error
	seq.Own, err = oa.answer(b, 1)
	return seq, err
}

// readID reads a string or a number as the sequence's ID.
func (r *nativeParser) readID() string {
	s := &r.sc
	switch c := s.peek(); {
	case c == '"':
		return strings.Clone(r.ar.str(s))
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		s.num()
		return string(s.b[start:s.i])
	case c == 'n':
		s.null()
		return ""
	}
	s.failAt(`want a string or number for "id"`)
	return ""
}

// readTop reads top_logprobs into the flat buffers.
func (r *nativeParser) readTop() {
	s, b := &r.sc, &r.b
	if !s.beginArray() {
		return
	}
	for s.more() {
		switch s.peek() {
		case 'n':
			s.null()
			b.ends = append(b.ends, -1)
			continue
		case '{':
			b.flat, b.spans = s.topObject(&r.ar, b.flat, b.spans)
		case '[':
			s.beginArray()
			for s.more() {
				switch s.peek() {
				case '[':
					s.beginArray()
					s.more()
					tok := r.ar.str(s)
					s.more()
					lp := s.num()
					if s.more() {
						s.fail("want a [token, logprob] pair")
					}
					b.flat = append(b.flat, TopToken{Token: tok, LogProb: lp})
				case '{':
					var t TopToken
					haveLP := false
					s.beginObject()
					for s.nextKey() {
						switch string(s.key) {
						case "token":
							t.Token = r.ar.str(s)
						case "logprob":
							t.LogProb, haveLP = s.num(), true
						default:
							s.skip()
						}
					}
					if !haveLP {
						s.fail(`a top_logprobs entry lacks "logprob"`)
					}
					b.flat = append(b.flat, t)
				default:
					s.failAt("want a [token, logprob] pair or a {token, logprob} object")
				}
			}
			b.padSpans()
		default:
			s.failAt("want null, an object or a list in top_logprobs")
		}
		b.ends = append(b.ends, len(b.flat))
	}
}
