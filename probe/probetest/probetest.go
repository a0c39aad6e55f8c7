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
// model (Model) is a next-token distribution after every prefix, diffuse
// except after the prompts of the facts it is given, whose answers it
// knows; the stand-in scores with it (teacher forcing, the true top-k
// lists) and generates with it greedily, so a test can work out the exact
// expected mean p of any token range, and the own answer to any prompt,
// with Model.P and Model.Greedy.
//
// Scoring and generation requests (vLLM's /v1/completions, SGLang's
// /generate, TGI's /generate) pass through a capacity limit: at most
// Capacity at once, each taking Latency; the rest queue. Tokenize requests
// are served at once, as on real servers, where tokenizing runs beside the
// GPU.
package probetest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"slices"
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

// Model is the stand-in's language model: a next-token distribution after
// every prefix of token ids, from which the stand-in scores (teacher
// forcing) and generates (greedily), so that the two agree as they do on a
// real model.
//
// Without facts the model is diffuse: after any prefix its most likely
// token has probability 0.2 to 0.5 (by a hash of the last token and the
// position modulo 7), five runners-up get half, a quarter, … of that, and
// every other token an equal share of what remains. A Fact makes it know
// an answer: after the fact's prompt, tokenized as servers tokenize prompts
// (with a BOS; a chat through ChatTemplate), and any part of the answer,
// its most likely token is the answer's next token (the end token after
// the last) with probability Conf.
type Model struct {
	Facts []Fact

	once  sync.Once
	paths [][]int // per fact: prompt and answer ids, then EOT
	start []int   // per fact: where its answer starts in paths
}

// Fact is an answer the model knows.
type Fact struct {
	Prompt string    // the prompt, or
	Chat   []Message // a chat's turns before the answer
	Answer string
	Conf   float64 // the answer tokens' probability (default 0.9)
}

// candidates are the tokens the diffuse model favours: the words and the
// lowercase letters.
var candidates = func() []int {
	var c []int
	for i := range words {
		c = append(c, wordBase+i)
	}
	for b := 'a'; b <= 'z'; b++ {
		c = append(c, byteBase+int(b))
	}
	return c
}()

const runnersUp = 5

// Dist is a next-token distribution: IDs[0] is the most likely token,
// IDs[1:] the runners-up in order, with their probabilities Ps; every
// other token has probability Rest.
type Dist struct {
	IDs  []int
	Ps   []float64
	Rest float64
}

// P returns the probability of token id.
func (d Dist) P(id int) float64 {
	for k, x := range d.IDs {
		if x == id {
			return d.Ps[k]
		}
	}
	return d.Rest
}

func (m *Model) init() {
	m.once.Do(func() {
		for _, f := range m.Facts {
			var p []int
			if f.Chat != nil {
				p = IDs(tok.Encode(ChatTemplate(f.Chat), false))
			} else {
				p = IDs(tok.Encode(f.Prompt, true))
			}
			m.start = append(m.start, len(p))
			m.paths = append(m.paths, append(append(p, IDs(tok.Encode(f.Answer, false))...), EOT))
		}
	})
}

// Next returns the distribution of the token after prefix.
func (m *Model) Next(prefix []int) Dist {
	m.init()
	prev := 0
	if len(prefix) > 0 {
		prev = prefix[len(prefix)-1]
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", prev, len(prefix)%7)
	x := h.Sum64()
	top, conf := candidates[x%uint64(len(candidates))], 0.2+0.3*float64(x>>32%100000)/100000
	for f, path := range m.paths {
		n := len(prefix)
		if n >= m.start[f] && n < len(path) && equal(prefix, path[:n]) {
			top, conf = path[n], m.Facts[f].Conf
			if conf == 0 {
				conf = 0.9
			}
			break
		}
	}
	d := Dist{IDs: []int{top}, Ps: []float64{conf}}
	share, sum := min(conf, 1-conf), conf
	for j := 0; len(d.IDs) < 1+runnersUp; j++ {
		id := candidates[(int(x%97)+j)%len(candidates)]
		if slices.Contains(d.IDs, id) {
			continue
		}
		share /= 2
		d.IDs, d.Ps = append(d.IDs, id), append(d.Ps, share)
		sum += share
	}
	d.Rest = (1 - sum) / float64(Vocab-len(d.IDs))
	return d
}

// P is the probability of token id after prefix.
func (m *Model) P(prefix []int, id int) float64 { return m.Next(prefix).P(id) }

func equal(a, b []int) bool { return slices.Equal(a, b) }

// Greedy continues prompt greedily for at most max tokens, stopping after
// the end token, and returns the tokens with their log-probabilities.
func (m *Model) Greedy(prompt []int, max int) (ids []int, lps []float64) {
	seq := slices.Clone(prompt)
	for range max {
		d := m.Next(seq)
		ids, lps = append(ids, d.IDs[0]), append(lps, math.Log(d.Ps[0]))
		seq = append(seq, d.IDs[0])
		if d.IDs[0] == EOT {
			break
		}
	}
	return ids, lps
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
	// one per scoring or generation request whose text contains the key, in
	// order.
	Faults map[string][]Fault
	// Facts are the answers the stand-in's model knows (see Model).
	Facts []Fact

	once    sync.Once
	slots   chan struct{}
	mu      sync.Mutex
	tried   map[string]int
	model   *Model
	Scored  atomic.Int64 // scoring requests answered with 200
	Greedy  atomic.Int64 // generation requests answered with 200
	Calls   atomic.Int64 // all requests
	running atomic.Int64
	peak    atomic.Int64
}

// Peak returns the most scoring and generation requests that ran at once.
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
		s.model = &Model{Facts: s.Facts}
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

// score answers a scoring or generation request within the capacity
// limit: vLLM's /v1/completions (with echo it scores the prompt; without,
// it generates), SGLang's /generate (max_new_tokens 0 scores; more
// generates) and TGI's /generate (it scores the input with
// decoder_input_details, and generates max_new_tokens).
func (s *Server) score(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model                  string          `json:"model"`
		Prompt                 json.RawMessage `json:"prompt"`
		Echo                   bool            `json:"echo"`
		Logprobs               *int            `json:"logprobs"`
		MaxTokens              *int            `json:"max_tokens"`
		Temperature            *float64        `json:"temperature"`
		ReturnTokenIDs         bool            `json:"return_token_ids"`
		ReturnTokensAsTokenIDs bool            `json:"return_tokens_as_token_ids"`
		InputIDs               []int           `json:"input_ids"`
		SamplingParams         struct {
			MaxNewTokens *int     `json:"max_new_tokens"`
			Temperature  *float64 `json:"temperature"`
		} `json:"sampling_params"`
		TopLogprobsNum int     `json:"top_logprobs_num"`
		ReturnLogprob  bool    `json:"return_logprob"`
		LogprobStart   *int    `json:"logprob_start_len"`
		Inputs         *string `json:"inputs"`
		Parameters     struct {
			MaxNewTokens        *int `json:"max_new_tokens"`
			Details             bool `json:"details"`
			DecoderInputDetails bool `json:"decoder_input_details"`
			DoSample            bool `json:"do_sample"`
		} `json:"parameters"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ids []int
	gen := 0 // tokens to generate
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
		switch {
		case req.Logprobs == nil || req.MaxTokens == nil || *req.MaxTokens < 0:
			httpError(w, http.StatusBadRequest, "the stand-in answers only requests with logprobs and max_tokens")
			return
		case !req.Echo && (*req.MaxTokens == 0 || req.Temperature == nil || *req.Temperature != 0):
			httpError(w, http.StatusBadRequest, "the stand-in generates only greedily (temperature 0, max_tokens > 0)")
			return
		case !req.Echo:
			gen = *req.MaxTokens
		}
	case SGLang:
		if req.InputIDs == nil || !req.ReturnLogprob {
			httpError(w, http.StatusBadRequest, "the stand-in answers only input_ids with return_logprob")
			return
		}
		ids = req.InputIDs
		switch mx := req.SamplingParams.MaxNewTokens; {
		case mx != nil && *mx == 0:
			if req.LogprobStart == nil || *req.LogprobStart != 0 {
				httpError(w, http.StatusBadRequest, "the stand-in scores only with logprob_start_len 0")
				return
			}
		case mx == nil || req.SamplingParams.Temperature == nil || *req.SamplingParams.Temperature != 0:
			httpError(w, http.StatusBadRequest, "the stand-in generates only greedily (temperature 0, max_new_tokens given)")
			return
		default:
			gen = *mx
		}
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
		gen = 1
		if m := req.Parameters.MaxNewTokens; m != nil {
			gen = *m
		}
		if req.Parameters.DoSample {
			httpError(w, http.StatusBadRequest, "the stand-in generates only greedily (do_sample false)")
			return
		}
	}
	for _, id := range ids {
		text += tok.Decode(id)
	}
	if len(ids)+max(gen, 1) > s.MaxLen {
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
	greedy := false
	switch {
	case s.Kind == VLLM && gen > 0:
		reply, greedy = s.vllmGenerate(ids, gen, *req.Logprobs, req.ReturnTokenIDs, req.ReturnTokensAsTokenIDs), true
	case s.Kind == VLLM:
		reply = s.vllmReply(ids, *req.Logprobs, *req.MaxTokens, req.ReturnTokenIDs)
	case s.Kind == SGLang && gen > 0:
		reply, greedy = s.sglangGenerate(ids, gen), true
	case s.Kind == SGLang:
		reply = s.sglangReply(ids, req.TopLogprobsNum)
	case s.Kind == TGI:
		reply, greedy = s.tgiReply(ids, gen, req.Parameters.DecoderInputDetails), !req.Parameters.DecoderInputDetails
	}
	if fault == FaultBad {
		reply = breakReply(reply)
	}
	if greedy {
		s.Greedy.Add(1)
	} else {
		s.Scored.Add(1)
	}
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

// decodeText is the text of generated tokens as servers return it: the
// bytes of all tokens decoded together (so a character split into byte
// tokens comes out whole), special tokens skipped.
func decodeText(ids []int) string {
	var b []byte
	for _, id := range ids {
		switch {
		case specials[id] != "":
		case id >= byteBase && id < byteBase+256:
			b = append(b, byte(id-byteBase))
		default:
			b = append(b, tok.Decode(id)...)
		}
	}
	return strings.ToValidUTF8(string(b), "\ufffd")
}

// topList is the k most likely tokens after prefix, with their
// log-probabilities, keyed as the caller prints them.
func (s *Server) topList(prefix []int, k int) ([]int, []float64) {
	d := s.model.Next(prefix)
	var ids []int
	var lps []float64
	for j := 0; j < k && j < len(d.IDs); j++ {
		ids, lps = append(ids, d.IDs[j]), append(lps, math.Log(d.Ps[j]))
	}
	return ids, lps
}

// vllmReply follows vLLM's _create_completion_logprobs: each token printed
// alone, text_offset the running length of the printed tokens, the first
// token's log-prob and top list null, the top list keyed by printed token
// with the k most likely and the target (up to k+1 entries),
// usage.prompt_tokens the prompt's length. With max_tokens 1 the greedy
// next token follows the prompt.
func (s *Server) vllmReply(ids []int, k, maxTokens int, returnIDs bool) map[string]any {
	all := ids
	if maxTokens > 0 {
		all = append(slices.Clone(ids), s.model.Next(ids).IDs[0])
	}
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
		p := s.model.P(all[:i], id)
		lps[i] = math.Log(p)
		top := map[string]float64{tokens[i]: math.Log(p)}
		tids, tlps := s.topList(all[:i], k)
		for j := range tids {
			if _, ok := top[tok.Decode(tids[j])]; !ok {
				top[tok.Decode(tids[j])] = tlps[j]
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

// vllmGenerate follows request_output_to_completion_response without
// echo (vllm/entrypoints/openai/completion/serving.py): the generated
// tokens' logprobs (each token printed alone, or as "token_id:N" with
// return_tokens_as_token_ids; top lists of the sampled token and the k
// most likely), "token_ids" with return_token_ids, the text of the
// generated tokens without special tokens, finish_reason "stop" when the
// end token came (it is among the token ids, as check_stop in
// vllm/v1/core/sched/utils.py leaves it) and "length" otherwise.
func (s *Server) vllmGenerate(ids []int, max, k int, returnIDs, asIDs bool) map[string]any {
	gen, glps := s.model.Greedy(ids, max)
	seq := slices.Clone(ids)
	name := func(id int) string {
		if asIDs {
			return fmt.Sprintf("token_id:%d", id)
		}
		return tok.Decode(id)
	}
	tokens, offs := make([]string, len(gen)), make([]int, len(gen))
	lps, tops := make([]any, len(gen)), make([]any, len(gen))
	off := 0
	for i, id := range gen {
		tokens[i], offs[i], lps[i] = name(id), off, glps[i]
		off += utf8.RuneCountInString(tokens[i])
		top := map[string]float64{tokens[i]: glps[i]}
		tids, tlps := s.topList(seq, k)
		for j := range tids {
			if _, ok := top[name(tids[j])]; !ok {
				top[name(tids[j])] = tlps[j]
			}
		}
		tops[i] = top
		seq = append(seq, id)
	}
	finish := "length"
	if gen[len(gen)-1] == EOT {
		finish = "stop"
	}
	choice := map[string]any{"index": 0, "text": decodeText(gen), "finish_reason": finish, "stop_reason": nil,
		"logprobs": map[string]any{"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offs}}
	if returnIDs {
		choice["prompt_token_ids"] = ids
		choice["token_ids"] = gen
	}
	return map[string]any{"id": "cmpl-standin", "object": "text_completion", "created": 1767225600, "model": s.Model,
		"choices": []any{choice}, "usage": map[string]int{"prompt_tokens": len(ids), "completion_tokens": len(gen), "total_tokens": len(ids) + len(gen)}}
}

// sglangReply follows SGLang's scheduler and tokenizer manager:
// input_token_logprobs [logprob, id, text] with a null first log-prob,
// input_top_logprobs lists of the k best (null first).
func (s *Server) sglangReply(ids []int, k int) map[string]any {
	itl := make([]any, len(ids))
	itop := make([]any, len(ids))
	for i, id := range ids {
		if i == 0 {
			itl[i] = []any{nil, id, tok.Decode(id)}
			continue
		}
		itl[i] = []any{math.Log(s.model.P(ids[:i], id)), id, tok.Decode(id)}
		tids, tlps := s.topList(ids[:i], k)
		list := []any{}
		for j := range tids {
			list = append(list, []any{tlps[j], tids[j], tok.Decode(tids[j])})
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

// sglangGenerate follows the tokenizer manager's reply to a generation
// with return_logprob and the default logprob_start_len −1 (output
// log-probs only; python/sglang/srt/managers/io_struct.py): "text" without
// special tokens, "output_ids", meta_info.output_token_logprobs
// [logprob, id, text] per generated token (the end token included when it
// came) and finish_reason {"type": "stop", "matched": id} or
// {"type": "length", "length": n}.
func (s *Server) sglangGenerate(ids []int, max int) map[string]any {
	gen, glps := s.model.Greedy(ids, max)
	otl := make([]any, len(gen))
	for i, id := range gen {
		otl[i] = []any{glps[i], id, tok.Decode(id)}
	}
	finish := map[string]any{"type": "length", "length": len(gen)}
	if gen[len(gen)-1] == EOT {
		finish = map[string]any{"type": "stop", "matched": EOT}
	}
	meta := map[string]any{"id": "standin", "finish_reason": finish, "prompt_tokens": len(ids), "completion_tokens": len(gen),
		"input_token_logprobs": []any{}, "output_token_logprobs": otl}
	return map[string]any{"text": decodeText(gen), "output_ids": gen, "meta_info": meta}
}

// tgiReply follows TGI's router and flash_causal_lm: prefill
// {"id", "text", "logprob"} with a null (NaN) first log-prob, empty unless
// prefill log-probs are on and asked for; the generated tokens
// {"id", "text", "logprob", "special"} (the end token included when it
// came, finish_reason "eos_token"; else "length") and generated_text
// without special tokens.
func (s *Server) tgiReply(ids []int, max int, details bool) map[string]any {
	prefill := []any{}
	if details && !s.NoPrefillLogprobs {
		for i, id := range ids {
			var lp any
			if i > 0 {
				lp = math.Log(s.model.P(ids[:i], id))
			}
			prefill = append(prefill, map[string]any{"id": id, "text": tok.Decode(id), "logprob": lp})
		}
	}
	gen, glps := s.model.Greedy(ids, max)
	toks := make([]any, len(gen))
	for i, id := range gen {
		toks[i] = map[string]any{"id": id, "text": tok.Decode(id), "logprob": glps[i], "special": specials[id] != ""}
	}
	finish := "length"
	if gen[len(gen)-1] == EOT {
		finish = "eos_token"
	}
	return map[string]any{"generated_text": decodeText(gen), "details": map[string]any{"finish_reason": finish, "generated_tokens": len(gen), "seed": nil,
		"prefill": prefill, "tokens": toks}}
}

// breakReply drops the last token's log-prob from a reply (the last
// generated token's, from a generation).
func breakReply(reply any) any {
	r := reply.(map[string]any)
	cut := func(m map[string]any, key string) bool {
		l := m[key].([]any)
		if len(l) == 0 {
			return false
		}
		m[key] = l[:len(l)-1]
		return true
	}
	switch {
	case r["choices"] != nil:
		cut(r["choices"].([]any)[0].(map[string]any)["logprobs"].(map[string]any), "token_logprobs")
	case r["meta_info"] != nil:
		mi := r["meta_info"].(map[string]any)
		if !cut(mi, "input_token_logprobs") {
			cut(mi, "output_token_logprobs")
		}
	default:
		d := r["details"].(map[string]any)
		if !cut(d, "prefill") {
			cut(d, "tokens")
		}
	}
	return r
}
