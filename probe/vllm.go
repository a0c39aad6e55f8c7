package probe

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// VLLMEchoFormat documents how responses saved from vLLM's /v1/completions
// are read.
const VLLMEchoFormat = `vllm-echo: one /v1/completions response per line, requested with
  {"model": M, "prompt": PROMPT + RESPONSE, "echo": true, "logprobs": 5,
   "max_tokens": 1, "temperature": 0}
  and saved with one extra top-level field, "prompt_chars": the length of
  PROMPT in characters (Unicode code points: Python's len(prompt), Go's
  utf8.RuneCountInString), or a list of them, one per choice. A token is
  scored when its text_offset (vLLM counts characters of the decoded
  tokens) is ≥ prompt_chars; a token that straddles the boundary counts as
  prompt. Tokens past usage.prompt_tokens (the generated one) are never
  scored; with several choices on a line usage.prompt_tokens is their sum
  and cannot cut them, so save one choice per line or use max_tokens 0. Without prompt_chars, --score-all scores every token. null
  log-probs (the first token) are not scored; -9999 means p = 0;
  top_logprobs may be keyed by token text or by "token_id:N"; a choice
  whose lists all hold one token (logprobs 0) has no top-k statistics.`

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
	promptTokens := -1
	var promptChars []int
	havePC, haveChoices := false, false
	r.choices = r.choices[:0]
	if !s.beginObject() {
		return out, s.err
	}
	for s.nextKey() {
		switch string(s.key) {
		case "id":
			if s.peek() == '"' {
				id = strings.Clone(r.ar.str(s))
			} else {
				s.skip()
			}
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
				if string(s.key) == "prompt_tokens" {
					promptTokens = s.integer()
				} else {
					s.skip()
				}
			}
		case "prompt_chars":
			havePC = true
			promptChars = readIntOrList(s)
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
	if !havePC && !r.scoreAll {
		return out, errors.New(`no "prompt_chars": add it to say where the response starts, or pass --score-all`)
	}
	if havePC && len(promptChars) != 1 && len(promptChars) != nch {
		return out, fmt.Errorf(`"prompt_chars" has %d entries for %d choices`, len(promptChars), nch)
	}
	for c := range r.choices {
		ch := &r.choices[c]
		if !ch.present {
			return out, fmt.Errorf(`choice %d has no "logprobs": request with "logprobs": k`, c)
		}
		n := ch.nLP
		if ch.nTokens != n || ch.nOffs != n || (ch.haveTop && ch.nLists != n) {
			return out, fmt.Errorf("choice %d: lengths disagree: %d tokens, %d token_logprobs, %d text_offset, %d top_logprobs",
				c, ch.nTokens, n, ch.nOffs, ch.nLists)
		}
		end := n
		if nch == 1 && promptTokens >= 0 {
			if promptTokens > n {
				return out, fmt.Errorf("usage.prompt_tokens = %d but only %d tokens have log-probs", promptTokens, n)
			}
			end = promptTokens
		}
		start := -1 // in characters; −1: score all
		if havePC {
			start = promptChars[min(c, len(promptChars)-1)]
		}
		offs, nulls := b.offs[ch.m.offs:ch.m.offs+n], b.nulls[ch.m.nulls:ch.m.nulls+n]
		mask0 := len(b.mask)
		for i := range n {
			scored := i < end && (start < 0 || offs[i] >= start)
			if nulls[i] {
				if scored && start >= 0 {
					return out, fmt.Errorf("choice %d: token %d (text_offset %d ≥ prompt_chars %d) is in the response but its log-prob is null", c, i, offs[i], start)
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
		out = append(out, seq)
	}
	return out, nil
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
					b.offs = append(b.offs, s.integer())
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
