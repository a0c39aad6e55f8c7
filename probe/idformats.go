package probe

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// SGLangFormat documents the SGLang input.
const SGLangFormat = `sglang: one SGLang /generate response per line, requested with
  {"input_ids": PROMPT_IDS + RESPONSE_IDS, "sampling_params":
   {"max_new_tokens": 0}, "return_logprob": true, "logprob_start_len": 0,
   "top_logprobs_num": 5, "return_text_in_logprobs": true}
  plus "response_start", the index of the first response token, at the top
  level; a batch reply (a JSON array, one object per input) is read element
  by element, each with its own "response_start". meta_info.
  input_token_logprobs holds [logprob|null, token_id, text|null] per token
  and meta_info.input_top_logprobs the top-k lists in the same form.
  "prompt_chars" is refused: the reply does not echo the prompt, so nothing
  shows that the tokens' texts (special tokens print as text) add up to it.
  --score-all scores every token of lines without response_start.`

// idEntry is one token of a format that names tokens by id.
type idEntry struct {
	id      int
	lp      float64
	rank    int // 0: unknown
	text    string
	hasText bool
}

// idSeq collects one sequence of an id-keyed format while its line is
// parsed; resolving it writes the sequence into the parser's bufs.
type idSeq struct {
	index     int
	targets   []idEntry // the target at each position (sglang) …
	targetIDs []int     // … or only its id (vllm-prompt)
	nulls     []bool    // position has no log-prob (sglang)
	flat      []idEntry // listed tokens of all positions
	ends      []int     // flat[ends[i-1]:ends[i]]; -1: null list
	haveTop   bool
	haveLists bool
	haveIDs   bool
	// Where the resolved sequence sits in the parser's bufs.
	m mark
	n int
}

func (q *idSeq) reset() {
	*q = idSeq{targets: q.targets[:0], targetIDs: q.targetIDs[:0], nulls: q.nulls[:0], flat: q.flat[:0], ends: q.ends[:0]}
}

// responseStart is where a line says the response begins.
type responseStart struct {
	tokens []int // "response_start", one or one per sequence
	chars  []int // "prompt_chars"
}

func (rs *responseStart) read(s *scanner, key string) bool {
	switch key {
	case "response_start":
		rs.tokens = readIntOrList(s)
	case "prompt_chars":
		rs.chars = readIntOrList(s)
	default:
		return false
	}
	return true
}

// none reports whether the line says nothing of where the response starts.
func (rs *responseStart) none() bool { return rs.tokens == nil && rs.chars == nil }

func (rs *responseStart) check(n int, scoreAll bool) error {
	if rs.tokens != nil && rs.chars != nil {
		return errors.New(`give "response_start" or "prompt_chars", not both`)
	}
	if rs.none() && !scoreAll {
		return errors.New(`no "response_start": add it (the index of the first response token, the prompt's length in tokens) to say where the response starts, or pass --score-all`)
	}
	for _, l := range [][]int{rs.tokens, rs.chars} {
		if l != nil && len(l) != 1 && len(l) != n {
			return fmt.Errorf("%d response starts for %d sequences", len(l), n)
		}
	}
	return nil
}

// mask appends the mask of sequence k (q, already resolved into b):
// positions with a log-prob from the response start on (all of them when
// the line gives no start and the caller scores all).
func (rs *responseStart) mask(k int, q *idSeq, b *bufs) error {
	nulls := b.nulls[q.m.nulls : q.m.nulls+q.n]
	start := 0
	if rs.tokens != nil {
		start = rs.tokens[min(k, len(rs.tokens)-1)]
		if start > q.n {
			return fmt.Errorf("response_start %d is past the %d tokens", start, q.n)
		}
	}
	for i := range q.n {
		scored := i >= start
		if nulls[i] {
			if scored && rs.tokens != nil {
				return fmt.Errorf("token %d is in the response but its log-prob is null", i)
			}
			scored = false
		}
		b.mask = append(b.mask, scored)
	}
	return nil
}

// appendTop appends a position's list with the target first, so that a
// reader of the list finds the target before any token with the same text.
func appendTop(b *bufs, target idEntry, list []idEntry) {
	b.flat = append(b.flat, TopToken{Token: target.text, LogProb: target.lp})
	for _, e := range list {
		if e.id != target.id {
			b.flat = append(b.flat, TopToken{Token: e.text, LogProb: e.lp})
		}
	}
	b.ends = append(b.ends, len(b.flat))
}

// idParser parses vllm-prompt, sglang or tgi lines.
type idParser struct {
	sc       scanner
	ar       arena
	b        bufs
	scoreAll bool
	format   string // VLLMPrompt, SGLang or TGI
	seqs     []idSeq
}

// NewVLLMPromptReader reads vLLM prompt_logprobs lines (VLLMPromptFormat).
func NewVLLMPromptReader(r io.Reader, name string, scoreAll bool) Source {
	return newLineSource(newLineReader(r, name), &idParser{scoreAll: scoreAll, format: VLLMPrompt})
}

// NewSGLangReader reads SGLang responses (SGLangFormat).
func NewSGLangReader(r io.Reader, name string, scoreAll bool) Source {
	return newLineSource(newLineReader(r, name), &idParser{scoreAll: scoreAll, format: SGLang})
}

func (r *idParser) reset() { r.b.reset() }

func (r *idParser) seq(k int) *idSeq {
	for len(r.seqs) <= k {
		r.seqs = append(r.seqs, idSeq{})
	}
	q := &r.seqs[k]
	q.reset()
	return q
}

func (r *idParser) parse(line []byte, out []Sequence) ([]Sequence, error) {
	s := &r.sc
	s.reset(line)
	r.ar.reset()
	if r.format == SGLang && s.peek() == '[' {
		// A batch reply: one object per input.
		s.beginArray()
		for k := 0; s.more(); k++ {
			n0 := len(out)
			var err error
			if out, err = r.parseObject(out); err != nil {
				return out, fmt.Errorf("element %d: %w", k, err)
			}
			for i := n0; i < len(out); i++ {
				if out[i].ID == "" {
					out[i].ID = "#" + strconv.Itoa(k)
				}
			}
		}
		s.end()
		return out, s.err
	}
	out, err := r.parseObject(out)
	if err != nil {
		return out, err
	}
	s.end()
	return out, s.err
}

// parseObject parses the object at the scanner's position.
func (r *idParser) parseObject(out []Sequence) ([]Sequence, error) {
	s := &r.sc
	var rs responseStart
	var oa ownAnswer
	id := ""
	n := 0 // sequences in the object
	var topIDs *idSeq
	if !s.beginObject() {
		return out, s.err
	}
	for s.nextKey() {
		key := string(s.key)
		if rs.read(s, key) {
			continue
		}
		switch {
		case key == "id":
			if s.peek() == '"' {
				id = strings.Clone(r.ar.str(s))
			} else {
				s.skip()
			}
		case key == "own_answer":
			readOwnAnswer(s, &r.ar, &r.b, &oa)
		case r.format == SGLang && key == "meta_info":
			n = 1
			r.readMetaInfo(r.seq(0), &id)
		case r.format == TGI && key == "details":
			n = 1
			r.readTGIDetails(r.seq(0))
		case r.format == VLLMPrompt && key == "prompt_logprobs":
			if topIDs == nil {
				topIDs = r.seq(0)
			}
			n = 1
			r.readPromptLogprobs(topIDs)
		case r.format == VLLMPrompt && key == "prompt_token_ids":
			// Top-level ids go with top-level prompt_logprobs; they may come first.
			if topIDs == nil {
				topIDs = r.seq(0)
			}
			topIDs.targetIDs = readIDs(s, topIDs.targetIDs)
			topIDs.haveIDs = true
		case r.format == VLLMPrompt && key == "choices":
			if topIDs != nil {
				return out, errors.New(`prompt_logprobs both at the top level and in "choices"`)
			}
			if s.beginArray() {
				for s.more() {
					q := r.seq(n)
					q.index = n
					n++
					s.beginObject()
					for s.nextKey() {
						switch string(s.key) {
						case "index":
							q.index = s.integer()
						case "prompt_logprobs":
							r.readPromptLogprobs(q)
						case "prompt_token_ids":
							q.targetIDs = readIDs(s, q.targetIDs)
							q.haveIDs = true
						default:
							s.skip()
						}
					}
				}
			}
		default:
			s.skip()
		}
	}
	if s.err != nil {
		return out, s.err
	}
	if n == 0 {
		switch r.format {
		case SGLang:
			return out, errors.New(`no "meta_info": not an SGLang response`)
		case TGI:
			return out, errors.New(`no "details": not a TGI /generate response (request "details": true, "decoder_input_details": true)`)
		}
		return out, errors.New(`no "prompt_logprobs" (top level or in choices)`)
	}
	if err := rs.check(n, r.scoreAll); err != nil {
		return out, err
	}
	own, err := oa.answer(&r.b, n)
	if err != nil {
		return out, err
	}
	if rs.chars != nil {
		switch r.format {
		case TGI:
			return out, errors.New(`"prompt_chars" cannot be checked: TGI's reply does not echo the prompt, and its prefill texts include special tokens such as <|begin_of_text|>; save "response_start", the prompt's length in tokens`)
		case SGLang:
			return out, errors.New(`"prompt_chars" cannot be checked: SGLang's reply does not echo the prompt, and its token texts include special tokens such as <|begin_of_text|>, so characters cannot place the boundary; save "response_start", the prompt's length in tokens`)
		}
		return out, errors.New(`"prompt_chars" cannot place the boundary of prompt_logprobs, which have no text offsets; save "response_start", the prompt's length in tokens`)
	}
	for k := range n {
		q := &r.seqs[k]
		q.m = r.b.mark()
		var err error
		if r.format == VLLMPrompt {
			err = q.resolveVLLM(&r.b)
		} else {
			err = q.resolveSGLang(&r.b)
		}
		mask0 := len(r.b.mask)
		if err == nil {
			err = rs.mask(k, q, &r.b)
		}
		if err != nil && r.format == TGI && strings.Contains(err.Error(), "log-prob is null") {
			err = fmt.Errorf("%w (TGI's prefix cache leaves the cached prompt tokens without log-probs: run TGI with PREFIX_CACHING=0)", err)
		}
		if err != nil {
			if n > 1 {
				return out, fmt.Errorf("sequence %d: %w", k, err)
			}
			return out, err
		}
		b := &r.b
		seq := Sequence{ID: id, LogProbs: b.lps[q.m.lps : q.m.lps+q.n], Mask: b.mask[mask0 : mask0+q.n], Tokens: b.tokens[q.m.tokens : q.m.tokens+q.n]}
		if n > 1 {
			seq.ID = id + "#" + strconv.Itoa(q.index)
		}
		if q.haveTop {
			seq.Top = b.topLists(q.m.ends, q.m.ends+q.n, q.m.flat)
		}
		seq.Own = own
		out = append(out, seq)
	}
	return out, nil
}

func readIDs(s *scanner, dst []int) []int {
	dst = dst[:0]
	if s.null() {
		return dst
	}
	if s.beginArray() {
		for s.more() {
			dst = append(dst, s.integer())
		}
	}
	return dst
}

// readPromptLogprobs reads a list of null or {id: {logprob, rank, decoded_token}}.
func (r *idParser) readPromptLogprobs(q *idSeq) {
	s := &r.sc
	if q.haveLists {
		s.fail(`field "prompt_logprobs" appears twice`)
		return
	}
	q.haveLists = true
	if !s.beginArray() {
		return
	}
	for s.more() {
		if s.null() {
			q.ends = append(q.ends, -1)
			continue
		}
		if !s.beginObject() {
			return
		}
		for s.nextKey() {
			tid, err := strconv.Atoi(string(s.key))
			if err != nil || tid < 0 {
				s.fail("prompt_logprobs keys must be token ids, found %q", s.key)
				return
			}
			e := idEntry{id: tid}
			haveLP := false
			s.beginObject()
			for s.nextKey() {
				switch string(s.key) {
				case "logprob":
					e.lp, haveLP = s.num(), true
				case "rank":
					if !s.null() {
						e.rank = s.integer()
					}
				case "decoded_token":
					if !s.null() {
						e.text, e.hasText = r.ar.str(s), true
					}
				default:
					s.skip()
				}
			}
			if !haveLP && s.err == nil {
				s.fail(`an entry of token %d lacks "logprob"`, tid)
			}
			q.flat = append(q.flat, e)
		}
		q.ends = append(q.ends, len(q.flat))
	}
}

// resolveVLLM finds each position's target in its prompt_logprobs entry and
// appends the sequence to b.
func (q *idSeq) resolveVLLM(b *bufs) error {
	if !q.haveLists {
		return errors.New(`no "prompt_logprobs"`)
	}
	if !q.haveIDs {
		return errors.New(`no "prompt_token_ids": they say which token of each prompt_logprobs entry is the target (request "return_token_ids": true)`)
	}
	n := len(q.ends)
	if len(q.targetIDs) != n {
		return fmt.Errorf("lengths disagree: %d prompt_logprobs entries, %d prompt_token_ids", n, len(q.targetIDs))
	}
	q.n, q.haveTop = n, true
	prev := 0
	for i, e := range q.ends {
		if e < 0 {
			b.nulls = append(b.nulls, true)
			b.lps = append(b.lps, 0)
			b.tokens = append(b.tokens, "")
			b.ends = append(b.ends, -1)
			continue
		}
		list := q.flat[prev:e]
		prev = e
		t := -1
		for j := range list {
			if list[j].id == q.targetIDs[i] {
				t = j
				break
			}
		}
		if t < 0 {
			return fmt.Errorf("position %d: the target token %d is not in its prompt_logprobs entry", i, q.targetIDs[i])
		}
		target := list[t]
		b.nulls = append(b.nulls, false)
		b.lps = append(b.lps, target.lp)
		b.tokens = append(b.tokens, target.text)
		if len(list) == 1 && target.rank != 1 {
			// prompt_logprobs=0 lists only the target: no top-k here
			// (a lone target of rank 1 is a top-1 list that it heads).
			b.ends = append(b.ends, -1)
			continue
		}
		appendTop(b, target, list)
	}
	return nil
}

// readMetaInfo reads SGLang's meta_info.
func (r *idParser) readMetaInfo(q *idSeq, id *string) {
	s := &r.sc
	if q.haveLists {
		s.fail(`field "meta_info" appears twice`)
		return
	}
	if !s.beginObject() {
		return
	}
	for s.nextKey() {
		switch string(s.key) {
		case "id":
			if s.peek() == '"' && *id == "" {
				*id = strings.Clone(r.ar.str(s))
			} else {
				s.skip()
			}
		case "input_token_logprobs":
			q.haveLists = true
			if s.beginArray() {
				for s.more() {
					e, null := r.readTriple()
					q.targets = append(q.targets, e)
					q.nulls = append(q.nulls, null)
				}
			}
		case "input_top_logprobs":
			if s.null() {
				continue
			}
			q.haveTop = true
			if s.beginArray() {
				for s.more() {
					if s.null() {
						q.ends = append(q.ends, -1)
						continue
					}
					s.beginArray()
					for s.more() {
						e, null := r.readTriple()
						if null && s.err == nil {
							s.fail("a top-logprob entry has a null log-prob")
						}
						q.flat = append(q.flat, e)
					}
					q.ends = append(q.ends, len(q.flat))
				}
			}
		default:
			s.skip()
		}
	}
}

// readTriple reads [logprob|null, token_id, text|null] (the text may be
// missing).
func (r *idParser) readTriple() (idEntry, bool) {
	s := &r.sc
	var e idEntry
	null := false
	s.beginArray()
	if s.more() {
		if s.null() {
			null = true
		} else {
			e.lp = s.num()
		}
	}
	if s.more() {
		e.id = s.integer()
	} else if s.err == nil {
		s.fail("want [logprob, token_id, text]")
	}
	if s.more() {
		if !s.null() {
			e.text, e.hasText = r.ar.str(s), true
		}
		if s.more() {
			s.fail("want [logprob, token_id, text]")
		}
	}
	return e, null
}

// resolveSGLang lines the top lists up with the targets and appends the
// sequence to b.
func (q *idSeq) resolveSGLang(b *bufs) error {
	if !q.haveLists {
		return errors.New(`no "meta_info.input_token_logprobs" (request "return_logprob": true) or "details.prefill"`)
	}
	if len(q.targets) == 0 {
		return errors.New(`no prompt tokens: the token list is empty (TGI fills details.prefill only when started with --enable-prefill-logprobs and asked for "decoder_input_details": true)`)
	}
	n := len(q.targets)
	if q.haveTop && len(q.ends) != n {
		return fmt.Errorf("lengths disagree: %d input_token_logprobs, %d input_top_logprobs", n, len(q.ends))
	}
	q.n = n
	prev := 0
	for i, t := range q.targets {
		b.lps = append(b.lps, t.lp)
		b.nulls = append(b.nulls, q.nulls[i])
		b.tokens = append(b.tokens, t.text)
		if !q.haveTop {
			continue
		}
		e := q.ends[i]
		if e < 0 || q.nulls[i] {
			b.ends = append(b.ends, -1)
			if e >= 0 {
				prev = e
			}
			continue
		}
		appendTop(b, t, q.flat[prev:e])
		prev = e
	}
	return nil
}

// TGIFormat documents the TGI input.
const TGIFormat = `tgi: one text-generation-inference /generate response per line, requested
  with {"inputs": PROMPT + RESPONSE, "parameters": {"max_new_tokens": 1,
  "details": true, "decoder_input_details": true}} from a TGI started with
  --enable-prefill-logprobs, plus "response_start", the index of the
  first response token, at the top level. details.prefill holds
  {"id", "text", "logprob"} per prompt token (the first log-prob null);
  details.tokens, the generated ones, are never scored. TGI gives no top-k
  for prompt tokens. "prompt_chars" is refused (the reply does not echo the
  prompt). --score-all scores every prefill token of lines without
  response_start.`

// readTGIDetails reads a TGI reply's details: the prefill tokens are the
// targets; generated tokens and top tokens (of generated positions) are
// skipped.
func (r *idParser) readTGIDetails(q *idSeq) {
	s := &r.sc
	if q.haveLists {
		s.fail(`field "details" appears twice`)
		return
	}
	if s.null() {
		return
	}
	if !s.beginObject() {
		return
	}
	for s.nextKey() {
		if string(s.key) != "prefill" {
			s.skip()
			continue
		}
		q.haveLists = true
		if !s.beginArray() {
			return
		}
		for s.more() {
			var e idEntry
			null, haveID := false, false
			s.beginObject()
			for s.nextKey() {
				switch string(s.key) {
				case "id":
					e.id, haveID = s.integer(), true
				case "text":
					if !s.null() {
						e.text, e.hasText = r.ar.str(s), true
					}
				case "logprob":
					if s.null() {
						null = true
					} else {
						e.lp = s.num()
					}
				default:
					s.skip()
				}
			}
			if !haveID && s.err == nil {
				s.fail(`a prefill token lacks "id"`)
			}
			q.targets = append(q.targets, e)
			q.nulls = append(q.nulls, null)
		}
	}
}
