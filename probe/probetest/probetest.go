// Package probetest provides stand-ins for the inference servers the probe
// talks to (vLLM, SGLang and TGI), for tests and benchmarks.
//
// A stand-in answers each server's own requests with replies of the shape
// that server's code writes (see probe/testdata/servers/README.md for the
// code and commits followed), and it tokenizes as real tokenizers do: a BOS
// token added when special tokens are asked for, multi-character tokens,
// characters outside the vocabulary split into byte tokens (a multi-byte
// character becomes several tokens, each of which prints alone as U+FFFD),
// special tokens recognised in text, and a Llama-3-like chat template. Its
// "model" gives every token a probability that depends on the token, the one
// before it and its position, so a test can work out the exact expected
// mean p of any token range with Model.P.
//
// Scoring requests (vLLM's /v1/completions, SGLang's /generate, TGI's
// /generate) pass through a capacity limit: at most Capacity at once, each
// taking Latency; the rest queue. Tokenize requests are served at once, as
// on real servers, where tokenizing runs beside the GPU.
package probetest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Kinds of stand-in.
const (
	VLLM   = "vllm"
	SGLang = "sglang"
	TGI    = "tgi"
)

// Special tokens and their texts (Llama 3's).
const (
	BOS         = 1
	EOT         = 2
	StartHeader = 3
	EndHeader   = 4
	byteBase    = 16  // ids 16 … 271 are the bytes 0 … 255
	wordBase    = 300 // ids of the multi-character tokens
)

var specials = map[int]string{BOS: "<|begin_of_text|>", EOT: "<|eot_id|>", StartHeader: "<|start_header_id|>", EndHeader: "<|end_header_id|>"}

// words are the multi-character tokens, longest first where one is a
// prefix of another. None spans ": " followed by a letter, so a prompt
// ending in ":" and a response starting with " " tokenize apart.
var words = []string{" capital", " France", " Paris", " Italy", " Rome", " Shakespeare", " William", " wrote", " Hamlet",
	" answer", " Answer", " the", " of", " is", " ok", " then", "Question", "Reply", " with", "user", "assistant", "system", "\n\n", "?\n"}

// Tokenizer is the stand-in's tokenizer.
type Tokenizer struct{}

// Token is one token with the bytes of the input it covers ([Start, Stop);
// an added BOS covers none).
type Token struct {
	ID          int
	Start, Stop int
}

// Encode tokenizes text, with a BOS first when special is true. Special
// token texts in text become their tokens; longest-matching words become
// word tokens; other ASCII characters become one byte token each, and other
// characters one byte token per UTF-8 byte.
func (Tokenizer) Encode(text string, special bool) []Token {
	var out []Token
	if special {
		out = append(out, Token{ID: BOS})
	}
	for i := 0; i < len(text); {
		if id, n := matchSpecial(text[i:]); n > 0 {
			out = append(out, Token{ID: id, Start: i, Stop: i + n})
			i += n
			continue
		}
		best, bn := -1, 0
		for w, s := range words {
			if len(s) > bn && strings.HasPrefix(text[i:], s) {
				best, bn = w, len(s)
			}
		}
		if best >= 0 {
			out = append(out, Token{ID: wordBase + best, Start: i, Stop: i + bn})
			i += bn
			continue
		}
		out = append(out, Token{ID: byteBase + int(text[i]), Start: i, Stop: i + 1})
		i++
	}
	return out
}

func matchSpecial(s string) (int, int) {
	for id, t := range specials {
		if strings.HasPrefix(s, t) {
			return id, len(t)
		}
	}
	return 0, 0
}

// IDs returns the ids of tokens.
func IDs(toks []Token) []int {
	ids := make([]int, len(toks))
	for i, t := range toks {
		ids[i] = t.ID
	}
	return ids
}

// Decode returns the text of one token decoded alone, as a server prints
// it: special tokens as their text, a byte that is not a whole character as
// U+FFFD.
func (Tokenizer) Decode(id int) string {
	switch {
	case specials[id] != "":
		return specials[id]
	case id >= wordBase && id < wordBase+len(words):
		return words[id-wordBase]
	case id >= byteBase && id < byteBase+256:
		b := byte(id - byteBase)
		if b < utf8.RuneSelf {
			return string(rune(b))
		}
		return "\ufffd"
	}
	return fmt.Sprintf("<unk%d>", id)
}

// Vocab is the vocabulary size.
const Vocab = wordBase + 64

// Message is a chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatTemplate renders turns as Llama 3's template does, with the
// generation prompt: the BOS text, then per turn the role between header
// tokens, a blank line, the content and <|eot_id|>, then the assistant's
// header.
func ChatTemplate(turns []Message) string {
	var b strings.Builder
	b.WriteString(specials[BOS])
	for _, m := range turns {
		fmt.Fprintf(&b, "%s%s%s\n\n%s%s", specials[StartHeader], m.Role, specials[EndHeader], m.Content, specials[EOT])
	}
	fmt.Fprintf(&b, "%s%s%s\n\n", specials[StartHeader], "assistant", specials[EndHeader])
	return b.String()
}

// Model is the stand-in's model.
type Model struct{}

// P is the probability of token id at position pos (≥ 1) after token prev.
func (Model) P(prev, id, pos int) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d", prev, id, pos%7)
	return 0.02 + 0.96*float64(h.Sum64()%100000)/100000
}

// alternatives are the k tokens listed beside the target at a position,
// with their probabilities: ids after the target's, halving shares of the
// rest of the mass.
func alternatives(id int, p float64, k int) ([]int, []float64) {
	ids, ps := make([]int, k), make([]float64, k)
	rest := 1 - p
	for j := range k {
		rest /= 2
		ids[j] = (id+1+j)%Vocab + 1
		ps[j] = rest
	}
	return ids, ps
}

// Fault is what the stand-in does to one scoring request instead of
// answering it.
type Fault string

// Faults.
const (
	Fault429  Fault = "429"  // Too Many Requests, Retry-After: 1
	Fault503  Fault = "503"  // Service Unavailable
	Fault500  Fault = "500"  // Internal Server Error
	FaultHang Fault = "hang" // no answer until the client gives up
	FaultDrop Fault = "drop" // the connection closed without a reply
	FaultBad  Fault = "bad"  // a reply with a token missing
)

// Server is a stand-in inference server; it is an http.Handler.
type Server struct {
	Kind  string // VLLM, SGLang or TGI
	Model string // the served model's name
	// Capacity is how many scoring requests run at once (0: no limit);
	// each takes Latency.
	Capacity int
	Latency  time.Duration
	// MaxLen is the context length (default 4096).
	MaxLen int
	// NoPrefillLogprobs makes a TGI stand-in behave as TGI started without
	// --enable-prefill-logprobs.
	NoPrefillLogprobs bool
	// Faults, keyed by a substring of the decoded request text, are served
	// one per scoring request whose text contains the key, in order.
	Faults map[string][]Fault

	once    sync.Once
	slots   chan struct{}
	mu      sync.Mutex
	tried   map[string]int
	Scored  atomic.Int64 // scoring requests answered with 200
	Calls   atomic.Int64 // all requests
	running atomic.Int64
	peak    atomic.Int64
}

// Peak returns the most scoring requests that ran at once.
func (s *Server) Peak() int64 { return s.peak.Load() }

func (s *Server) init() {
	s.once.Do(func() {
		if s.Capacity > 0 {
			s.slots = make(chan struct{}, s.Capacity)
		}
		if s.MaxLen == 0 {
			s.MaxLen = 4096
		}
		s.tried = map[string]int{}
	})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	s.Calls.Add(1)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		owner := s.Kind
		if s.Kind == TGI {
			owner = s.Model
		}
		writeJSON(w, map[string]any{"object": "list", "data": []any{map[string]any{"id": s.Model, "object": "model", "owned_by": owner}}})
	case r.Method == http.MethodGet && r.URL.Path == "/info" && s.Kind == TGI:
		writeJSON(w, map[string]any{"model_id": s.Model, "router": "text-generation-router", "version": "3.3.6",
			"max_input_tokens": s.MaxLen - 1, "max_total_tokens": s.MaxLen, "max_concurrent_requests": 128})
	case r.Method == http.MethodGet && r.URL.Path == "/get_model_info" && s.Kind == SGLang:
		writeJSON(w, map[string]any{"model_path": s.Model, "tokenizer_path": s.Model, "is_generation": true})
	case r.Method == http.MethodPost && r.URL.Path == "/tokenize":
		s.tokenize(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/chat_tokenize" && s.Kind == TGI:
		s.chatTokenize(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/completions" && s.Kind == VLLM,
		r.Method == http.MethodPost && r.URL.Path == "/generate" && (s.Kind == SGLang || s.Kind == TGI):
		s.score(w, r)
	default:
		httpError(w, http.StatusNotFound, "Not Found")
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"object": "error", "message": msg, "code": status})
}

var tok Tokenizer

// tokenize answers /tokenize: vLLM's and SGLang's {"model", "prompt",
// "add_special_tokens"} or {"model", "messages", ...} → {"count",
// "max_model_len", "tokens"}; TGI's {"inputs"} → [{"id", "text", "start",
// "stop"}] with its special tokens always added.
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model               string    `json:"model"`
		Prompt              *string   `json:"prompt"`
		Messages            []Message `json:"messages"`
		AddSpecialTokens    *bool     `json:"add_special_tokens"`
		AddGenerationPrompt *bool     `json:"add_generation_prompt"`
		Inputs              *string   `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.Kind == TGI {
		if req.Inputs == nil {
			httpError(w, http.StatusUnprocessableEntity, "missing field `inputs`")
			return
		}
		writeJSON(w, tgiTokens(*req.Inputs, tok.Encode(*req.Inputs, true)))
		return
	}
	if req.Model != s.Model {
		httpError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	var toks []Token
	switch {
	case req.Prompt != nil && req.Messages == nil:
		toks = tok.Encode(*req.Prompt, req.AddSpecialTokens == nil || *req.AddSpecialTokens)
	case req.Messages != nil && req.Prompt == nil:
		// The template writes the BOS; vLLM's add_special_tokens defaults
		// to false for chats.
		toks = tok.Encode(ChatTemplate(req.Messages), req.AddSpecialTokens != nil && *req.AddSpecialTokens && s.Kind == VLLM)
	default:
		httpError(w, http.StatusBadRequest, "Exactly one of 'prompt' or 'messages' must be provided.")
		return
	}
	writeJSON(w, map[string]any{"count": len(toks), "max_model_len": s.MaxLen, "tokens": IDs(toks)})
}

func tgiTokens(text string, toks []Token) []map[string]any {
	out := make([]map[string]any, len(toks))
	for i, t := range toks {
		out[i] = map[string]any{"id": t.ID, "text": text[t.Start:t.Stop], "start": t.Start, "stop": t.Stop}
	}
	return out
}

func (s *Server) chatTokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []Message `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		httpError(w, http.StatusUnprocessableEntity, "bad chat request")
		return
	}
	text := ChatTemplate(req.Messages)
	writeJSON(w, map[string]any{"tokenize_response": tgiTokens(text, tok.Encode(text, false)), "templated_text": text})
}

// score answers a scoring request within the capacity limit.
func (s *Server) score(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string          `json:"model"`
		Prompt         json.RawMessage `json:"prompt"`
		Echo           bool            `json:"echo"`
		Logprobs       *int            `json:"logprobs"`
		MaxTokens      *int            `json:"max_tokens"`
		ReturnTokenIDs bool            `json:"return_token_ids"`
		InputIDs       []int           `json:"input_ids"`
		TopLogprobsNum int             `json:"top_logprobs_num"`
		ReturnLogprob  bool            `json:"return_logprob"`
		LogprobStart   *int            `json:"logprob_start_len"`
		Inputs         *string         `json:"inputs"`
		Parameters     struct {
			MaxNewTokens        *int `json:"max_new_tokens"`
			Details             bool `json:"details"`
			DecoderInputDetails bool `json:"decoder_input_details"`
		} `json:"parameters"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ids []int
	text := ""
	switch s.Kind {
	case VLLM:
		if req.Model != s.Model {
			httpError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.Model))
			return
		}
		if json.Unmarshal(req.Prompt, &ids) != nil {
			var p string
			if json.Unmarshal(req.Prompt, &p) != nil {
				httpError(w, http.StatusBadRequest, "prompt must be a string or a list of token ids")
				return
			}
			ids = IDs(tok.Encode(p, true))
		}
		if !req.Echo || req.Logprobs == nil || req.MaxTokens == nil || *req.MaxTokens < 0 {
			httpError(w, http.StatusBadRequest, "the stand-in scores only echo requests with logprobs")
			return
		}
	case SGLang:
		if req.InputIDs == nil || !req.ReturnLogprob || req.LogprobStart == nil || *req.LogprobStart != 0 {
			httpError(w, http.StatusBadRequest, "the stand-in scores only input_ids with return_logprob and logprob_start_len 0")
			return
		}
		ids = req.InputIDs
	case TGI:
		if req.Inputs == nil {
			httpError(w, http.StatusUnprocessableEntity, "missing field `inputs`")
			return
		}
		if m := req.Parameters.MaxNewTokens; m != nil && *m == 0 {
			httpError(w, http.StatusUnprocessableEntity, "Input validation error: `max_new_tokens` must be strictly positive")
			return
		}
		ids = IDs(tok.Encode(*req.Inputs, true))
	}
	for _, id := range ids {
		text += tok.Decode(id)
	}
	if len(ids)+1 > s.MaxLen {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("This model's maximum context length is %d tokens.", s.MaxLen))
		return
	}
	if s.slots != nil {
		select {
		case s.slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		defer func() { <-s.slots }()
	}
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	fault := s.fault(text)
	switch fault {
	case Fault429:
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusTooManyRequests, "Too Many Requests")
		return
	case Fault503:
		httpError(w, http.StatusServiceUnavailable, "overloaded")
		return
	case Fault500:
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	case FaultHang:
		<-r.Context().Done()
		return
	case FaultDrop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		httpError(w, http.StatusBadGateway, "dropped")
		return
	}
	if s.Latency > 0 {
		t := time.NewTimer(s.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	var reply any
	switch s.Kind {
	case VLLM:
		reply = s.vllmReply(ids, *req.Logprobs, *req.MaxTokens, req.ReturnTokenIDs)
	case SGLang:
		reply = s.sglangReply(ids, req.TopLogprobsNum)
	case TGI:
		reply = s.tgiReply(ids, req.Parameters.DecoderInputDetails)
	}
	if fault == FaultBad {
		reply = breakReply(reply)
	}
	s.Scored.Add(1)
	writeJSON(w, reply)
}

func (s *Server) fault(text string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, faults := range s.Faults {
		if strings.Contains(text, key) {
			n := s.tried[key]
			s.tried[key]++
			if n < len(faults) {
				return faults[n]
			}
		}
	}
	return ""
}

// generated is the token the stand-in generates after ids.
func generated(ids []int) int { return wordBase + len(ids)%len(words) }

// vllmReply follows vLLM's _create_completion_logprobs: each token printed
// alone, text_offset the running length of the printed tokens, the first
// token's log-prob and top list null, the top list keyed by printed token
// with up to k+1 entries, usage.prompt_tokens the prompt's length.
func (s *Server) vllmReply(ids []int, k, maxTokens int, returnIDs bool) map[string]any {
	all := ids
	if maxTokens > 0 {
		all = append(append([]int(nil), ids...), generated(ids))
	}
	var m Model
	tokens := make([]string, len(all))
	lps := make([]any, len(all))
	tops := make([]any, len(all))
	offs := make([]int, len(all))
	off := 0
	for i, id := range all {
		tokens[i] = tok.Decode(id)
		offs[i] = off
		off += utf8.RuneCountInString(tokens[i])
		if i == 0 {
			continue
		}
		p := m.P(all[i-1], id, i)
		lps[i] = math.Log(p)
		top := map[string]float64{tokens[i]: math.Log(p)}
		aids, aps := alternatives(id, p, k)
		for j := range aids {
			if _, ok := top[tok.Decode(aids[j])]; !ok {
				top[tok.Decode(aids[j])] = math.Log(aps[j])
			}
		}
		tops[i] = top
	}
	text := ""
	for _, id := range ids {
		text += tok.Decode(id)
	}
	choice := map[string]any{"index": 0, "text": text, "finish_reason": "length",
		"logprobs": map[string]any{"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offs}}
	if returnIDs {
		choice["prompt_token_ids"] = ids
		choice["text"] = ""
	}
	gen := len(all) - len(ids)
	return map[string]any{"id": "cmpl-standin", "object": "text_completion", "created": 1767225600, "model": s.Model,
		"choices": []any{choice}, "usage": map[string]int{"prompt_tokens": len(ids), "completion_tokens": gen, "total_tokens": len(all)}}
}

// sglangReply follows SGLang's scheduler and tokenizer manager:
// input_token_logprobs [logprob, id, text] with a null first log-prob,
// input_top_logprobs lists of the k best (null first).
func (s *Server) sglangReply(ids []int, k int) map[string]any {
	var m Model
	itl := make([]any, len(ids))
	itop := make([]any, len(ids))
	for i, id := range ids {
		if i == 0 {
			itl[i] = []any{nil, id, tok.Decode(id)}
			continue
		}
		p := m.P(ids[i-1], id, i)
		itl[i] = []any{math.Log(p), id, tok.Decode(id)}
		aids, aps := alternatives(id, p, k)
		list := []any{}
		for j := range aids {
			list = append(list, []any{math.Log(aps[j]), aids[j], tok.Decode(aids[j])})
		}
		itop[i] = list
	}
	meta := map[string]any{"id": "standin", "prompt_tokens": len(ids), "completion_tokens": 0, "input_token_logprobs": itl,
		"output_token_logprobs": []any{}}
	if k > 0 {
		meta["input_top_logprobs"] = itop
	}
	return map[string]any{"text": "", "output_ids": []int{}, "meta_info": meta}
}

// tgiReply follows TGI's router and flash_causal_lm: prefill
// {"id", "text", "logprob"} with a null (NaN) first log-prob, empty unless
// prefill log-probs are on and asked for.
func (s *Server) tgiReply(ids []int, details bool) map[string]any {
	var m Model
	prefill := []any{}
	if details && !s.NoPrefillLogprobs {
		for i, id := range ids {
			var lp any
			if i > 0 {
				lp = math.Log(m.P(ids[i-1], id, i))
			}
			prefill = append(prefill, map[string]any{"id": id, "text": tok.Decode(id), "logprob": lp})
		}
	}
	g := generated(ids)
	return map[string]any{"generated_text": tok.Decode(g), "details": map[string]any{"finish_reason": "length", "generated_tokens": 1, "seed": nil,
		"prefill": prefill, "tokens": []any{map[string]any{"id": g, "text": tok.Decode(g), "logprob": -0.5, "special": false}}}}
}

// breakReply drops the last token's log-prob from a reply.
func breakReply(reply any) any {
	r := reply.(map[string]any)
	switch {
	case r["choices"] != nil:
		lp := r["choices"].([]any)[0].(map[string]any)["logprobs"].(map[string]any)
		l := lp["token_logprobs"].([]any)
		lp["token_logprobs"] = l[:len(l)-1]
	case r["meta_info"] != nil:
		mi := r["meta_info"].(map[string]any)
		l := mi["input_token_logprobs"].([]any)
		mi["input_token_logprobs"] = l[:len(l)-1]
	default:
		d := r["details"].(map[string]any)
		l := d["prefill"].([]any)
		d["prefill"] = l[:len(l)-1]
	}
	return r
}
