package probe

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// VLLMEchoFormat documents how responses saved from vLLM's /v1/completions
// are read.
const VLLMEchoFormat = `vllm-echo: one /v1/completions response per line, requested with
  {"model": M, "prompt": PROMPT_IDS + RESPONSE_IDS, "echo": true,
   "logprobs": 5, "max_tokens": 1, "temperature": 0}
  and saved with one extra top-level field, "response_start": the index of
  the first response token (the prompt's length in tokens), or a list of
  them, one per choice. Tokens from response_start up to the end of the
  prompt (usage.prompt_tokens) are scored; generated tokens never are.
  With several choices on a line (n > 1, or several prompts) each choice is
  one sequence, and usage.completion_tokens must split evenly over them.
  "prompt_chars" (the prompt's length in characters) is accepted instead
  only where the printed tokens reproduce the echoed text exactly; BOS
  tokens, SentencePiece's dropped spaces, split multi-byte characters and
  "token_id:N" tokens make it an error that says so. --score-all scores
  every prompt token of lines with neither. null log-probs (the first
  token) are not scored; -9999 means p = 0; top_logprobs may be keyed by
  token text or by "token_id:N"; a choice whose lists all hold one token
  (logprobs 0) has no top-k statistics.`

// VLLMPromptFormat documents the vLLM prompt_logprobs input.
const VLLMPromptFormat = `vllm-prompt: one JSON object per line holding vLLM's prompt_logprobs, a
  list of null or {token_id: {"logprob": lp, "rank": r, "decoded_token": t}}
  (the target plus the top-k), and prompt_token_ids, the targets; either at
  the top level (an offline RequestOutput dumped as JSON) or in choices[i]
  of a /v1/completions response (request "prompt_logprobs": k and
  "return_token_ids": true). Where the response starts: a top-level
  "response_start", the index of its first token (or a list, one per
  choice), or --score-all. An entry that lists only the target with a rank
  above 1 (prompt_logprobs 0) counts as no top-k list.`

// echoParser parses vLLM /v1/completions responses with echo.
type echoParser struct {
	sc       scanner
	ar       arena
	b        bufs
	scoreAll bool
	choices  []echoChoice
	nullAt   []int // scratch: the nulls of a token_logprobs list
}

// echoChoice is where one choice's arrays sit in the buffers.
type echoChoice struct {
	index                       int
	present, haveTop            bool
	m                           mark // the buffers' lengths when the choice began
	nTokens, nLP, nOffs, nLists int
	text                        string // the echoed text, when decoded
	textSpan                    span   // or where it sits in the line
	haveText                    bool
}

// NewVLLMEchoReader reads vLLM echo responses (VLLMEchoFormat) from r; name
// is used in errors. scoreAll scores every token of lines without
// prompt_chars instead of rejecting them.
func NewVLLMEchoReader(r io.Reader, name string, scoreAll bool) Source {
	return newLineSource(newLineReader(r, name), &echoParser{scoreAll: scoreAll})
}

func (r *echoParser) reset() { r.b.reset() }

func (r *echoParser) parse(line []byte, out []Sequence) ([]Sequence, error) {
	s, b := &r.sc, &r.b
	s.reset(line)
	r.ar.reset()
	id := ""
	promptTokens, completionTokens := -1, -1
	var rs responseStart
	var oa ownAnswer
	haveChoices := false
	r.choices = r.choices[:0]
	if !s.beginObject() {
		return out, s.err
	}
	for s.nextKey() {
		key := string(s.key)
		if rs.read(s, key) {
			continue
		}
		switch key {
		case "id":
			if s.peek() == '"' {
				id = strings.Clone(r.ar.str(s))
			} else {
				s.skip()
			}
		case "own_answer":
			readOwnAnswer(s, &r.ar, b, &oa)
		case "choices":
			if haveChoices {
				return out, errors.New(`field "choices" appears twice`)
			}
			haveChoices = true
			if s.beginArray() {
				for s.more() {
					r.choices = append(r.choices, echoChoice{index: len(r.choices), m: b.mark()})
					r.readChoice(&r.choices[len(r.choices)-1])
				}
			}
		case "usage":
			if s.null() {
				continue
			}
			s.beginObject()
			for s.nextKey() {
				switch string(s.key) {
				case "prompt_tokens":
					promptTokens = s.integer()
				case "completion_tokens":
					if !s.null() {
						completionTokens = s.integer()
					}
				default:
					s.skip()
				}
			}
		default:
			s.skip()
		}
	}
	s.end()
	if s.err != nil {
		return out, s.err
	}
	nch := len(r.choices)
	if nch == 0 {
		return out, errors.New(`no "choices": not a /v1/completions response`)
	}
	if err := rs.check(nch, r.scoreAll); err != nil {
		return out, err
	}
	for c := range r.choices {
		ch := &r.choices[c]
		if !ch.present {
			return out, fmt.Errorf(`choice %d has no "logprobs": request with "logprobs": k`, c)
		}
		if ch.nTokens != ch.nLP || ch.nOffs != ch.nLP || (ch.haveTop && ch.nLists != ch.nLP) {
			return out, fmt.Errorf("choice %d: lengths disagree: %d tokens, %d token_logprobs, %d text_offset, %d top_logprobs",
				c, ch.nTokens, ch.nLP, ch.nOffs, ch.nLists)
		}
	}
	ends, err := r.promptEnds(promptTokens, completionTokens)
	if err != nil {
		return out, err
	}
	own, err := oa.answer(b, nch)
	if err != nil {
		return out, err
	}
	for c := range r.choices {
		ch := &r.choices[c]
		n, end := ch.nLP, ends[c]
		start := 0 // the first response token
		switch {
		case rs.tokens != nil:
			start = rs.tokens[min(c, len(rs.tokens)-1)]
			if start > end {
				return out, fmt.Errorf("choice %d: response_start %d is past the prompt's %d tokens (usage.prompt_tokens)", c, start, end)
			}
		case rs.chars != nil:
			start, err = r.charStart(ch, end, rs.chars[min(c, len(rs.chars)-1)], line)
			if err != nil {
				if nch > 1 {
					return out, fmt.Errorf("choice %d: %w", c, err)
				}
				return out, err
			}
		}
		nulls := b.nulls[ch.m.nulls : ch.m.nulls+n]
		mask0 := len(b.mask)
		for i := range n {
			scored := start <= i && i < end
			if nulls[i] {
				if scored && !rs.none() {
					return out, fmt.Errorf("choice %d: token %d is in the response but its log-prob is null", c, i)
				}
				scored = false
			}
			b.mask = append(b.mask, scored)
		}
		seq := Sequence{ID: id, LogProbs: b.lps[ch.m.lps : ch.m.lps+n], Mask: b.mask[mask0:], Tokens: b.tokens[ch.m.tokens : ch.m.tokens+n]}
		if nch > 1 {
			seq.ID = id + "#" + strconv.Itoa(ch.index)
		}
		if ch.haveTop && !onlyTargets(b.ends[ch.m.ends:ch.m.ends+n], ch.m.flat) {
			seq.Top = b.topLists(ch.m.ends, ch.m.ends+n, ch.m.flat)
		}
		seq.Names = b.names(seq.Top, seq.Tokens, ch.m.tokens, true, line)
		seq.Own = own
		out = append(out, seq)
	}
	return out, nil
}

// promptEnds returns where each choice's prompt tokens end: usage counts
// the prompt tokens once per prompt (not per choice) and the generated
// tokens over all choices (vllm/entrypoints/openai/completion/serving.py,
// request_output_to_completion_response). One choice ends at
// usage.prompt_tokens. Several end where their generated tokens begin,
// which is known when every choice generated the same number,
// usage.completion_tokens / choices; the choices of one prompt share their
// prompt tokens, and the prompts' lengths must add up to
// usage.prompt_tokens.
func (r *echoParser) promptEnds(promptTokens, completionTokens int) ([]int, error) {
	b := &r.b
	ends := make([]int, len(r.choices))
	if promptTokens < 0 {
		return nil, errors.New(`no "usage.prompt_tokens": keep the reply's usage, which tells the prompt's tokens from the generated ones`)
	}
	if len(r.choices) == 1 {
		if n := r.choices[0].nLP; promptTokens > n {
			return nil, fmt.Errorf("usage.prompt_tokens = %d but only %d tokens have log-probs", promptTokens, n)
		}
		ends[0] = promptTokens
		return ends, nil
	}
	nch := len(r.choices)
	if completionTokens < 0 || completionTokens%nch != 0 {
		return nil, fmt.Errorf("%d choices on one line and usage.completion_tokens %d does not split evenly over them: cannot tell where each choice's prompt ends; save one choice per line, or request max_tokens 0 or 1", nch, completionTokens)
	}
	gen := completionTokens / nch
	total := 0
	for c := range r.choices {
		ch := &r.choices[c]
		ends[c] = ch.nLP - gen
		if ends[c] < 1 {
			return nil, fmt.Errorf("choice %d has %d tokens, fewer than the %d generated ones usage gives each choice", c, ch.nLP, gen)
		}
		// A choice repeating the previous choice's prompt (n > 1) adds no
		// prompt tokens.
		if c > 0 {
			p := &r.choices[c-1]
			if ends[c] == ends[c-1] && slices.Equal(b.lps[p.m.lps:p.m.lps+ends[c]], b.lps[ch.m.lps:ch.m.lps+ends[c]]) &&
				slices.Equal(b.nulls[p.m.nulls:p.m.nulls+ends[c]], b.nulls[ch.m.nulls:ch.m.nulls+ends[c]]) {
				continue
			}
		}
		total += ends[c]
	}
	if total != promptTokens {
		return nil, fmt.Errorf("the choices' prompts hold %d tokens but usage.prompt_tokens is %d: cannot tell where each choice's prompt ends; save one choice per line", total, promptTokens)
	}
	return ends, nil
}

// charStart places the boundary of a choice at prompt character pc, which
// is sound only where the printed tokens reproduce the echoed text: vLLM's
// text_offset is the running length of the printed tokens
// (_create_completion_logprobs), and the echoed text is the prompt as sent.
// It returns the index of the first response token.
func (r *echoParser) charStart(ch *echoChoice, end, pc int, line []byte) (int, error) {
	b := &r.b
	const fix = `; save "response_start", the prompt's length in tokens, instead (selector probe --server does)`
	if !ch.haveText {
		return 0, errors.New(`"prompt_chars" needs the choice's echoed "text" to check the tokens against` + fix)
	}
	// Views of the line, not copies: it outlives this call.
	text := ch.text
	if text == "" && ch.textSpan.start >= 0 {
		text = lineString(line, ch.textSpan)
	}
	offs := b.offs[ch.m.offs : ch.m.offs+ch.nOffs]
	chars, pos := 0, 0 // characters and bytes of the printed tokens so far
	start := -1
	for i := range end {
		tok := b.tokens[ch.m.tokens+i]
		if sp := b.tspans[ch.m.tokens+i]; tok == "" && sp.start >= 0 {
			tok = lineString(line, sp)
		}
		if offs[i] != chars {
			return 0, fmt.Errorf("text_offset[%d] is %d, not %d, the length of the tokens printed before it (SGLang's /v1/completions writes -1): the offsets cannot place the boundary%s", i, offs[i], chars, fix)
		}
		if !strings.HasPrefix(text[pos:], tok) {
			return 0, fmt.Errorf("the printed tokens do not reproduce the echoed text: token %d prints %q where the text has %q; a BOS token, SentencePiece's dropped spaces, a split multi-byte character or token_id:N tokens shift text_offset, so prompt_chars cannot place the boundary%s",
				i, tok, prefixRunes(text[pos:], max(utf8.RuneCountInString(tok), 1)), fix)
		}
		n := utf8.RuneCountInString(tok)
		switch {
		case chars == pc && start < 0:
			if n == 0 {
				return 0, fmt.Errorf("token %d at character %d, the prompt/response boundary, prints nothing: it could belong to either side%s", i, pc, fix)
			}
			start = i
		case chars < pc && pc < chars+n:
			return 0, fmt.Errorf("token %d (%q, characters %d–%d) spans the prompt/response boundary at character %d: the tokenizer merged the prompt's end with the response's start%s", i, tok, chars, chars+n, pc, fix)
		}
		chars += n
		pos += len(tok)
	}
	if start < 0 {
		return 0, fmt.Errorf("prompt_chars %d is not before the end of the prompt's tokens (%d characters)", pc, chars)
	}
	return start, nil
}

// lineString returns the bytes of sp in line as a string without copying
// them; it is valid while line is.
func lineString(line []byte, sp span) string {
	if sp.end <= sp.start {
		return ""
	}
	return unsafe.String(&line[sp.start], int(sp.end-sp.start))
}

// prefixRunes returns the first n characters of s.
func prefixRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// onlyTargets reports whether every listed position has exactly one entry,
// as vLLM gives with "logprobs": 0 (the target alone): such lists say
// nothing about the other tokens.
func onlyTargets(ends []int, flat0 int) bool {
	prev := flat0
	for _, e := range ends {
		if e < 0 {
			continue
		}
		if e-prev != 1 {
			return false
		}
		prev = e
	}
	return true
}

// readIntOrList reads a non-negative integer or a list of them.
func readIntOrList(s *scanner) []int {
	if s.peek() != '[' {
		return []int{s.integer()}
	}
	var out []int
	s.beginArray()
	for s.more() {
		out = append(out, s.integer())
	}
	if len(out) == 0 && s.err == nil {
		s.fail("empty list")
	}
	return out
}

func (r *echoParser) readChoice(ch *echoChoice) {
	s := &r.sc
	if !s.beginObject() {
		return
	}
	for s.nextKey() {
		switch string(s.key) {
		case "index":
			ch.index = s.integer()
		case "text":
			if s.null() {
				continue
			}
			ch.text, ch.textSpan = s.lazyString(&r.ar)
			ch.haveText = true
		case "logprobs":
			if s.null() {
				continue
			}
			if ch.present {
				s.fail(`field "logprobs" appears twice`)
				return
			}
			ch.present = true
			r.readLogprobs(ch)
		default:
			s.skip()
		}
	}
}

func (r *echoParser) readLogprobs(ch *echoChoice) {
	s, b := &r.sc, &r.b
	if !s.beginObject() {
		return
	}
	var seen [4]bool
	for s.nextKey() {
		if k := indexOf(echoArrays, s.key); k >= 0 {
			if seen[k] {
				s.fail("field %q appears twice", s.key)
				return
			}
			seen[k] = true
		}
		switch string(s.key) {
		case "tokens":
			if s.beginArray() {
				for s.more() {
					// Texts are cut from the line only for the records
					// kept (see bufs.names); escaped ones are decoded now.
					t, sp := s.lazyString(&r.ar)
					b.tokens = append(b.tokens, t)
					b.tspans = append(b.tspans, sp)
				}
			}
			ch.nTokens = len(b.tokens) - ch.m.tokens
		case "token_logprobs":
			r.nullAt = r.nullAt[:0]
			b.lps = s.floats(b.lps, func(k int) { r.nullAt = append(r.nullAt, k) })
			n0 := len(b.nulls)
			for range len(b.lps) - ch.m.lps {
				b.nulls = append(b.nulls, false)
			}
			for _, k := range r.nullAt {
				b.nulls[n0+k] = true
			}
			ch.nLP = len(b.lps) - ch.m.lps
		case "top_logprobs":
			if s.null() {
				continue
			}
			ch.haveTop = true
			if s.beginArray() {
				for s.more() {
					if s.null() {
						b.ends = append(b.ends, -1)
						continue
					}
					b.flat, b.spans = s.topObject(&r.ar, b.flat, b.spans)
					b.ends = append(b.ends, len(b.flat))
				}
			}
			ch.nLists = len(b.ends) - ch.m.ends
		case "text_offset":
			if s.beginArray() {
				for s.more() {
					b.offs = append(b.offs, s.signedInt())
				}
			}
			ch.nOffs = len(b.offs) - ch.m.offs
		default:
			s.skip()
		}
	}
}

var echoArrays = []string{"tokens", "token_logprobs", "top_logprobs", "text_offset"}

// indexOf returns the index of key in names, or −1.
func indexOf(names []string, key []byte) int {
	for i, n := range names {
		if n == string(key) {
			return i
		}
	}
	return -1
}
