package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capsel/capsel/sftdata"
)

// ServerKind names an inference server.
type ServerKind string

// The servers the probe speaks to.
const (
	KindAuto   ServerKind = "auto"
	KindVLLM   ServerKind = "vllm"
	KindSGLang ServerKind = "sglang"
	KindTGI    ServerKind = "tgi"
)

// ParseServerKind reads auto, vllm, sglang or tgi.
func ParseServerKind(s string) (ServerKind, error) {
	switch k := ServerKind(strings.ToLower(s)); k {
	case KindAuto, KindVLLM, KindSGLang, KindTGI:
		return k, nil
	case "":
		return KindAuto, nil
	}
	return "", fmt.Errorf("unknown server kind %q (want auto, vllm, sglang or tgi)", s)
}

// Format is the file format of the replies of a kind of server, as the
// cache holds them.
func (k ServerKind) Format() string {
	switch k {
	case KindSGLang:
		return SGLang
	case KindTGI:
		return TGI
	}
	return VLLMEcho
}

// ServerDetection says how the kind of server is detected; the command
// line prints it in its help.
const ServerDetection = `--server-kind auto (the default) asks GET /v1/models: vLLM lists its
models as "owned_by": "vllm", SGLang as "sglang". Failing that, TGI answers
GET /info with "router": "text-generation-router", and SGLang answers
GET /get_model_info with "model_path". A server that answers none of these
is refused; --server-kind vllm, sglang or tgi skips the detection.`

// ServerRequests describes what the probe sends to each kind of server.
const ServerRequests = `  vllm    POST /tokenize {"model", "prompt": PROMPT, "add_special_tokens": true}
            (a chat: {"model", "messages": TURNS, "add_generation_prompt": true})
          POST /tokenize {"model", "prompt": RESPONSE, "add_special_tokens": false}
          POST /v1/completions {"model", "prompt": PROMPT_IDS + RESPONSE_IDS,
            "echo": true, "logprobs": K, "max_tokens": 1, "temperature": 0,
            "return_token_ids": true}
  sglang  POST /tokenize as vLLM's (a chat: {"model", "messages": TURNS})
          POST /generate {"input_ids": PROMPT_IDS + RESPONSE_IDS,
            "sampling_params": {"max_new_tokens": 0, "temperature": 0},
            "return_logprob": true, "logprob_start_len": 0,
            "top_logprobs_num": K, "return_text_in_logprobs": true}
  tgi     POST /tokenize {"inputs": PROMPT + RESPONSE} (a chat's PROMPT from
            POST /chat_tokenize {"model", "messages": TURNS}, its BOS text
            dropped, since TGI adds its own)
          POST /generate {"inputs": PROMPT + RESPONSE, "parameters":
            {"max_new_tokens": 1, "details": true, "decoder_input_details":
            true, "do_sample": false}}
          The response starts at the first token past PROMPT's bytes; TGI
          must run with --enable-prefill-logprobs (and PREFIX_CACHING=0 when
          prompts share prefixes), and gives no top-k for prompt tokens.
  With --greedy (the noise-aware probe's own answers), one more request
  per example, for N = the response's tokens + 1 at most:
  vllm    POST /v1/completions {"model", "prompt": PROMPT_IDS, "max_tokens": N,
            "temperature": 0, "logprobs": 1, "repetition_penalty": 1,
            "presence_penalty": 0, "frequency_penalty": 0,
            "return_token_ids": true, "return_tokens_as_token_ids": true}
  sglang  POST /generate {"input_ids": PROMPT_IDS, "sampling_params":
            {"max_new_tokens": N, "temperature": 0, "repetition_penalty": 1,
            "presence_penalty": 0, "frequency_penalty": 0},
            "return_logprob": true, "return_text_in_logprobs": true}
  tgi     POST /generate {"inputs": PROMPT, "parameters": {"max_new_tokens": N,
            "details": true, "do_sample": false}}
  The answer agrees with the label when its first tokens are the
  response's tokens. Null prompts (--null-prompts) are scored and
  answered the same way, into DATA.<model>.<kind>.null.jsonl.`

// replica is one server of a run.
type replica struct {
	url    string
	kind   ServerKind
	model  string
	names  []string // the models it serves, when it says
	maxLen int      // tokens per request it accepts (0: unknown)
	bos    []int    // TGI: the ids /tokenize adds to every input
	lim    *limiter
	scored atomic.Int64
}

// Errors of a request.
var (
	// errBadReply marks a reply that does not hold what was asked: it is
	// retried.
	errBadReply = errors.New("bad reply")
)

// httpError is a reply with a status other than 200.
type httpError struct {
	method, url string
	status      int
	msg         string
	retryAfter  time.Duration
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.url, e.status, e.msg)
}

// netError is a request that got no reply.
type netError struct {
	method, url string
	err         error
}

func (e *netError) Error() string { return fmt.Sprintf("%s %s: %v", e.method, e.url, e.err) }
func (e *netError) Unwrap() error { return e.err }

// fatalError ends the run: retrying, or going on with other examples,
// cannot help.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error { return &fatalError{fmt.Errorf(format, args...)} }

// exampleError is a problem with one example: it is given up on at once.
type exampleError struct{ err error }

func (e *exampleError) Error() string { return e.err.Error() }
func (e *exampleError) Unwrap() error { return e.err }

func examplef(format string, args ...any) error { return &exampleError{fmt.Errorf(format, args...)} }

func isFatal(err error) bool {
	var fe *fatalError
	if errors.As(err, &fe) {
		return true
	}
	var he *httpError
	return errors.As(err, &he) && (he.status == http.StatusUnauthorized || he.status == http.StatusForbidden || he.status == http.StatusNotFound)
}

// retryable reports whether another attempt may succeed.
func retryable(err error) bool {
	var he *httpError
	if errors.As(err, &he) {
		return he.status == http.StatusTooManyRequests || he.status == http.StatusRequestTimeout || he.status >= 500
	}
	var ne *netError
	return errors.As(err, &ne) || errors.Is(err, errBadReply)
}

// refusedErr reports whether the server refused the example itself (HTTP
// 4xx, or a problem of the example).
func refusedErr(err error) bool {
	var ee *exampleError
	if errors.As(err, &ee) {
		return true
	}
	var he *httpError
	return errors.As(err, &he) && he.status >= 400 && he.status < 500
}

// classify tells the limiter how a request went.
func classify(err error) (outcome, time.Duration) {
	var he *httpError
	var ne *netError
	switch {
	case err == nil:
		return done, 0
	case errors.As(err, &he) && (he.status == http.StatusTooManyRequests || he.status == http.StatusServiceUnavailable):
		return overloaded, he.retryAfter
	case errors.As(err, &ne):
		return unreachable, 0
	}
	return done, 0
}

// backoff is the wait before retry attempt+1: exponential with jitter, or
// the server's Retry-After when that is longer.
func (sv *Server) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := sv.Backoff << min(attempt, 30)
	if d <= 0 || d > sv.MaxBackoff {
		d = sv.MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = min(retryAfter, 4*sv.MaxBackoff)
	}
	return d
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// call sends one request with a JSON body (nil: none) and decodes a 200
// reply's JSON into out (nil: none).
func (sv *Server) call(ctx context.Context, method, url string, body, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fatalf("%s %s: %v", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := sv.HTTP.Do(req)
	if err != nil {
		return &netError{method, url, err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return &netError{method, url, fmt.Errorf("reading the reply: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return &httpError{method: method, url: url, status: resp.StatusCode, msg: msg, retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%w: %s %s: %v", errBadReply, method, url, err)
		}
	}
	return nil
}

// preflight asks every server what it is and what it serves, at once.
func (sv *Server) preflight(ctx context.Context) ([]*replica, error) {
	reps := make([]*replica, len(sv.URLs))
	errs := make([]error, len(sv.URLs))
	var wg sync.WaitGroup
	for i, u := range sv.URLs {
		wg.Go(func() { reps[i], errs[i] = sv.probeServer(ctx, u) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, rp := range reps[1:] {
		if rp.kind != reps[0].kind || rp.model != reps[0].model {
			return nil, fmt.Errorf("the servers differ: %s is %s serving %q, %s is %s serving %q; replicas must run the same server and model",
				reps[0].url, reps[0].kind, reps[0].model, rp.url, rp.kind, rp.model)
		}
	}
	start := sv.StartConcurrency
	if sv.Concurrency > 0 {
		start = sv.Concurrency
	}
	for _, rp := range reps {
		rp.lim = newLimiter(start, max(sv.MaxConcurrency, sv.Concurrency), sv.Concurrency > 0)
	}
	return reps, nil
}

type modelList struct {
	Data []struct {
		ID      string `json:"id"`
		OwnedBy string `json:"owned_by"`
	} `json:"data"`
}

type tgiInfo struct {
	ModelID        string `json:"model_id"`
	Router         string `json:"router"`
	MaxInputTokens int    `json:"max_input_tokens"`
	MaxTotalTokens int    `json:"max_total_tokens"`
	MaxInputLength int    `json:"max_input_length"` // TGI 1.x
}

// probeServer is the preflight of one server.
func (sv *Server) probeServer(ctx context.Context, url string) (*replica, error) {
	rp := &replica{url: url, kind: sv.Kind}
	t := sv.PreflightTimeout
	var models modelList
	merr := sv.call(ctx, http.MethodGet, url+"/v1/models", nil, &models, t)
	var ne *netError
	if errors.As(merr, &ne) {
		return nil, fmt.Errorf("nothing answers at %s (%v): start the server, or fix --server", url, ne.err)
	}
	for _, m := range models.Data {
		rp.names = append(rp.names, m.ID)
	}
	var info tgiInfo
	ierr := errors.New("not asked")
	if rp.kind == KindAuto || rp.kind == KindTGI {
		ierr = sv.call(ctx, http.MethodGet, url+"/info", nil, &info, t)
	}
	if rp.kind == KindAuto {
		switch {
		case merr == nil && len(models.Data) > 0 && models.Data[0].OwnedBy == "vllm":
			rp.kind = KindVLLM
		case merr == nil && len(models.Data) > 0 && models.Data[0].OwnedBy == "sglang":
			rp.kind = KindSGLang
		case ierr == nil && (info.Router == "text-generation-router" || info.ModelID != "" && info.MaxTotalTokens > 0):
			rp.kind = KindTGI
		default:
			var mi struct {
				ModelPath string `json:"model_path"`
			}
			if err := sv.call(ctx, http.MethodGet, url+"/get_model_info", nil, &mi, t); err == nil && mi.ModelPath != "" {
				rp.kind = KindSGLang
				break
			}
			return nil, fmt.Errorf("%s answers, but not as vLLM, SGLang or TGI do (GET /v1/models: %s; GET /info: %s): give the server's base URL (without /v1), or name the server with --server-kind",
				url, short(merr), short(ierr))
		}
	}
	if rp.kind == KindTGI {
		if ierr != nil {
			return nil, fmt.Errorf("%s: GET /info: %v (is it TGI?)", url, ierr)
		}
		rp.names = []string{info.ModelID}
		rp.maxLen = info.MaxInputTokens
		if rp.maxLen == 0 {
			rp.maxLen = info.MaxInputLength
		}
	} else if merr != nil {
		return nil, fmt.Errorf("%s: GET /v1/models: %v", url, merr)
	}
	switch {
	case sv.Model == "" && len(rp.names) == 1:
		rp.model = rp.names[0]
	case sv.Model == "":
		return nil, fmt.Errorf("%s serves %d models (%s): name one with --served-model", url, len(rp.names), strings.Join(rp.names, ", "))
	case !slices.Contains(rp.names, sv.Model):
		return nil, fmt.Errorf("%s serves %s, not %q: fix --served-model", url, quoteList(rp.names), sv.Model)
	default:
		rp.model = sv.Model
	}
	// The tokenize endpoint must answer, with the reply's shape.
	switch rp.kind {
	case KindVLLM, KindSGLang:
		var tr tokenizeReply
		err := sv.call(ctx, http.MethodPost, url+"/tokenize", map[string]any{"model": rp.model, "prompt": "Hello", "add_special_tokens": true}, &tr, t)
		if err != nil {
			return nil, fmt.Errorf("%s: the tokenizer endpoint fails (%v); the probe needs POST /tokenize (vLLM ≥ 0.5, SGLang ≥ 0.4.7)", url, err)
		}
		if tr.Tokens == nil {
			return nil, fmt.Errorf("%s: POST /tokenize answered without \"tokens\"", url)
		}
		rp.maxLen = tr.MaxModelLen
	case KindTGI:
		var toks []tgiToken
		if err := sv.call(ctx, http.MethodPost, url+"/tokenize", map[string]any{"inputs": ""}, &toks, t); err != nil {
			return nil, fmt.Errorf("%s: POST /tokenize fails (%v); TGI needs a fast tokenizer for it", url, err)
		}
		for _, tk := range toks {
			rp.bos = append(rp.bos, tk.ID)
		}
	}
	return rp, nil
}

func short(err error) string {
	if err == nil {
		return "no models listed"
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 0 {
		return "no model"
	}
	return strings.Join(q, ", ")
}

type tokenizeReply struct {
	Tokens      []int `json:"tokens"`
	Count       int   `json:"count"`
	MaxModelLen int   `json:"max_model_len"`
}

type tgiToken struct {
	ID    int    `json:"id"`
	Text  string `json:"text"`
	Start int    `json:"start"`
	Stop  int    `json:"stop"`
}

// tokenize tokenizes text on a vLLM or SGLang server.
func (sv *Server) tokenize(ctx context.Context, rp *replica, text string, special bool, count func(bool)) ([]int, error) {
	count(false)
	var tr tokenizeReply
	if err := sv.call(ctx, http.MethodPost, rp.url+"/tokenize", map[string]any{"model": rp.model, "prompt": text, "add_special_tokens": special}, &tr, sv.Timeout); err != nil {
		return nil, err
	}
	if tr.Tokens == nil {
		return nil, fmt.Errorf("%w: POST /tokenize answered without \"tokens\"", errBadReply)
	}
	return tr.Tokens, nil
}

// promptIDs tokenizes an example's prompt with the server's special tokens,
// or its chat context through the server's chat template with the
// generation prompt.
func (sv *Server) promptIDs(ctx context.Context, rp *replica, ex sftdata.Example, count func(bool)) ([]int, error) {
	if ex.Kind != sftdata.Chat {
		return sv.tokenize(ctx, rp, ex.Prompt, true, count)
	}
	count(false)
	body := map[string]any{"model": rp.model, "messages": ex.Context}
	if rp.kind == KindVLLM {
		body["add_generation_prompt"] = true
	}
	var tr tokenizeReply
	err := sv.call(ctx, http.MethodPost, rp.url+"/tokenize", body, &tr, sv.Timeout)
	var he *httpError
	if errors.As(err, &he) && he.status >= 400 && he.status < 500 {
		return nil, fatalf("%s cannot tokenize a chat (%v): it needs a chat template (and SGLang a /tokenize that takes messages); or write the data as prompt/response text", rp.url, err)
	}
	if err != nil {
		return nil, err
	}
	if tr.Tokens == nil {
		return nil, fmt.Errorf("%w: POST /tokenize answered without \"tokens\"", errBadReply)
	}
	return tr.Tokens, nil
}

// scoreOn scores one example on one replica and returns its cache line and
// the number of response tokens. With Greedy the line carries the model's
// own answer to the prompt.
func (sv *Server) scoreOn(ctx context.Context, rp *replica, j *job, count func(bool)) ([]byte, int, error) {
	var (
		obj    map[string]any
		nresp  int
		answer func() (*ownAnswerJSON, error)
		err    error
	)
	switch rp.kind {
	case KindTGI:
		var prompt string
		var rids []int
		obj, prompt, rids, err = sv.scoreTGI(ctx, rp, j, count)
		nresp = len(rids)
		answer = func() (*ownAnswerJSON, error) { return sv.greedyTGI(ctx, rp, prompt, rids, j.attempt > 0, count) }
	default:
		var pids, rids []int
		pids, err = sv.promptIDs(ctx, rp, j.ex, count)
		if err != nil {
			return nil, 0, err
		}
		rids, err = sv.tokenize(ctx, rp, j.ex.Response, false, count)
		if err != nil {
			return nil, 0, err
		}
		if len(rids) == 0 {
			return nil, 0, examplef("the response tokenizes to no token")
		}
		ids := append(slices.Clip(pids), rids...)
		if rp.maxLen > 0 && len(ids)+1 > rp.maxLen {
			return nil, 0, examplef("%d prompt and %d response tokens: longer than the %d tokens the server takes (max_model_len)", len(pids), len(rids), rp.maxLen)
		}
		count(j.attempt > 0)
		nresp = len(rids)
		if rp.kind == KindSGLang {
			obj, err = sv.scoreSGLang(ctx, rp, j, ids, len(pids))
			answer = func() (*ownAnswerJSON, error) { return sv.greedySGLang(ctx, rp, pids, rids, j.attempt > 0, count) }
		} else {
			obj, err = sv.scoreVLLM(ctx, rp, j, ids, len(pids))
			answer = func() (*ownAnswerJSON, error) { return sv.greedyVLLM(ctx, rp, pids, rids, j.attempt > 0, count) }
		}
	}
	if err != nil {
		return nil, 0, err
	}
	if sv.Greedy {
		own, err := answer()
		if err != nil {
			return nil, 0, err
		}
		obj["own_answer"] = own
	}
	obj["id"], obj["data_line"], obj["server"] = j.id, j.ex.Line, rp.url
	line, err := json.Marshal(obj)
	if err != nil {
		return nil, 0, err
	}
	return checkLine(rp.kind.Format(), line, nresp, sv.Greedy)
}

// vllmReply is the part of vLLM's /v1/completions reply the probe keeps.
type vllmReply struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Index          int             `json:"index"`
		Text           string          `json:"text"`
		Logprobs       json.RawMessage `json:"logprobs"`
		PromptTokenIDs []int           `json:"prompt_token_ids"`
		TokenIDs       []int           `json:"token_ids"`
		FinishReason   *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func (sv *Server) scoreVLLM(ctx context.Context, rp *replica, j *job, ids []int, start int) (map[string]any, error) {
	body := map[string]any{"model": rp.model, "prompt": ids, "echo": true, "logprobs": sv.TopK, "max_tokens": 1,
		"temperature": 0, "return_token_ids": true}
	var r vllmReply
	if err := sv.call(ctx, http.MethodPost, rp.url+"/v1/completions", body, &r, sv.Timeout); err != nil {
		return nil, err
	}
	switch {
	case len(r.Choices) != 1 || len(r.Choices[0].Logprobs) == 0 || string(r.Choices[0].Logprobs) == "null":
		return nil, fmt.Errorf("%w: want one choice with logprobs, got %d choices", errBadReply, len(r.Choices))
	case r.Usage == nil || r.Usage.PromptTokens != len(ids):
		return nil, fmt.Errorf("%w: the server did not take the %d token ids as sent (usage %+v)", errBadReply, len(ids), r.Usage)
	case r.Choices[0].PromptTokenIDs != nil && !slices.Equal(r.Choices[0].PromptTokenIDs, ids):
		return nil, fmt.Errorf("%w: prompt_token_ids differ from the ids sent", errBadReply)
	}
	ch := r.Choices[0]
	return map[string]any{
		"object": "text_completion", "model": r.Model,
		"choices":        []any{map[string]any{"index": 0, "text": ch.Text, "logprobs": ch.Logprobs}},
		"usage":          map[string]int{"prompt_tokens": len(ids), "completion_tokens": r.Usage.CompletionTokens},
		"response_start": start, "response_id": r.ID,
	}, nil
}

// ownAnswerJSON is the model's own greedy answer as a cache line keeps it
// (OwnAnswerFormat).
type ownAnswerJSON struct {
	Text         string    `json:"text"`
	LogProbs     []float64 `json:"logprobs"`
	Agree        bool      `json:"agree"`
	TokenIDs     []int     `json:"token_ids"`
	FinishReason string    `json:"finish_reason"`
}

// own checks a greedy reply's tokens and log-probs and compares the first
// len(label) tokens with the label: the answer agrees when it begins with
// the label's tokens (the label path on a server has no end token, and a
// base model seldom stops where the label does).
func own(text string, ids []int, lps []*float64, label []int, budget int, finish string) (*ownAnswerJSON, error) {
	switch {
	case len(ids) == 0:
		return nil, fmt.Errorf("%w: the greedy answer has no tokens", errBadReply)
	case len(ids) != len(lps):
		return nil, fmt.Errorf("%w: the greedy answer has %d tokens and %d log-probs", errBadReply, len(ids), len(lps))
	case len(ids) > budget:
		return nil, fmt.Errorf("%w: the greedy answer has %d tokens, more than the %d asked for", errBadReply, len(ids), budget)
	}
	a := &ownAnswerJSON{Text: text, TokenIDs: ids, FinishReason: finish, Agree: len(ids) >= len(label) && slices.Equal(ids[:len(label)], label)}
	for k, lp := range lps {
		if lp == nil {
			return nil, fmt.Errorf("%w: the greedy answer's token %d has no log-prob", errBadReply, k)
		}
		a.LogProbs = append(a.LogProbs, max(*lp, NegInf))
	}
	return a, nil
}

// greedyVLLM asks vLLM for the greedy continuation of the prompt's ids: the
// response's length plus one tokens at most (room for the end token),
// temperature 0 and no penalties (vLLM fills parameters a request leaves
// out from the model's generation config, which may set a repetition
// penalty: CompletionRequest.to_sampling_params in
// vllm/entrypoints/openai/completion/protocol.py), with the generated
// tokens' log-probs (logprobs 1) and ids (return_token_ids; the tokens as
// "token_id:N" where a server predates it).
func (sv *Server) greedyVLLM(ctx context.Context, rp *replica, pids, rids []int, retry bool, count func(bool)) (*ownAnswerJSON, error) {
	count(retry)
	budget := len(rids) + 1
	body := map[string]any{"model": rp.model, "prompt": pids, "max_tokens": budget, "temperature": 0, "logprobs": 1,
		"repetition_penalty": 1, "presence_penalty": 0, "frequency_penalty": 0,
		"return_token_ids": true, "return_tokens_as_token_ids": true}
	var r vllmReply
	if err := sv.call(ctx, http.MethodPost, rp.url+"/v1/completions", body, &r, sv.Timeout); err != nil {
		return nil, err
	}
	if len(r.Choices) != 1 {
		return nil, fmt.Errorf("%w: the greedy request got %d choices", errBadReply, len(r.Choices))
	}
	ch := r.Choices[0]
	var lp struct {
		Tokens        []string   `json:"tokens"`
		TokenLogprobs []*float64 `json:"token_logprobs"`
	}
	if err := json.Unmarshal(ch.Logprobs, &lp); err != nil || lp.TokenLogprobs == nil {
		return nil, fmt.Errorf("%w: the greedy reply has no logprobs", errBadReply)
	}
	ids := ch.TokenIDs
	if ids == nil {
		for _, t := range lp.Tokens {
			id, err := strconv.Atoi(strings.TrimPrefix(t, "token_id:"))
			if err != nil || !strings.HasPrefix(t, "token_id:") {
				return nil, fatalf("%s returns neither token_ids nor token_id:N tokens for generated text, so its greedy answers cannot be compared with the labels token for token: upgrade vLLM, or pass --greedy=false", rp.url)
			}
			ids = append(ids, id)
		}
	}
	finish := ""
	if ch.FinishReason != nil {
		finish = *ch.FinishReason
	}
	return own(ch.Text, ids, lp.TokenLogprobs, rids, budget, finish)
}

// sglangReply is the part of SGLang's /generate reply the probe keeps.
type sglangReply struct {
	Text      string `json:"text"`
	OutputIDs []int  `json:"output_ids"`
	MetaInfo  struct {
		ID                  string            `json:"id"`
		PromptTokens        int               `json:"prompt_tokens"`
		InputTokenLogprobs  []json.RawMessage `json:"input_token_logprobs"`
		InputTopLogprobs    json.RawMessage   `json:"input_top_logprobs"`
		OutputTokenLogprobs []json.RawMessage `json:"output_token_logprobs"`
		FinishReason        struct {
			Type string `json:"type"`
		} `json:"finish_reason"`
	} `json:"meta_info"`
}

func (sv *Server) scoreSGLang(ctx context.Context, rp *replica, j *job, ids []int, start int) (map[string]any, error) {
	body := map[string]any{"input_ids": ids, "sampling_params": map[string]any{"max_new_tokens": 0, "temperature": 0},
		"return_logprob": true, "logprob_start_len": 0, "top_logprobs_num": sv.TopK, "return_text_in_logprobs": true}
	var r sglangReply
	if err := sv.call(ctx, http.MethodPost, rp.url+"/generate", body, &r, sv.Timeout); err != nil {
		return nil, err
	}
	itl := r.MetaInfo.InputTokenLogprobs
	if len(itl) != len(ids) {
		return nil, fmt.Errorf("%w: %d input_token_logprobs for the %d ids sent", errBadReply, len(itl), len(ids))
	}
	for i, t := range itl {
		var triple []json.RawMessage
		if json.Unmarshal(t, &triple) != nil || len(triple) < 2 || string(triple[1]) != strconv.Itoa(ids[i]) {
			return nil, fmt.Errorf("%w: input_token_logprobs[%d] is %s, not token %d", errBadReply, i, t, ids[i])
		}
	}
	meta := map[string]any{"id": r.MetaInfo.ID, "prompt_tokens": r.MetaInfo.PromptTokens, "input_token_logprobs": itl}
	if len(r.MetaInfo.InputTopLogprobs) > 0 && sv.TopK > 0 {
		meta["input_top_logprobs"] = r.MetaInfo.InputTopLogprobs
	}
	return map[string]any{"text": r.Text, "meta_info": meta, "response_start": start}, nil
}

// greedySGLang asks SGLang's /generate for the greedy continuation of the
// prompt's ids (temperature 0, which SGLang runs as top_k 1, and no
// penalties), with return_logprob and the default logprob_start_len −1:
// meta_info.output_token_logprobs holds [logprob, id, text] per generated
// token (python/sglang/srt/managers/io_struct.py, tokenizer_manager.py).
func (sv *Server) greedySGLang(ctx context.Context, rp *replica, pids, rids []int, retry bool, count func(bool)) (*ownAnswerJSON, error) {
	count(retry)
	budget := len(rids) + 1
	body := map[string]any{"input_ids": pids, "sampling_params": map[string]any{"max_new_tokens": budget, "temperature": 0,
		"repetition_penalty": 1, "presence_penalty": 0, "frequency_penalty": 0}, "return_logprob": true, "return_text_in_logprobs": true}
	var r sglangReply
	if err := sv.call(ctx, http.MethodPost, rp.url+"/generate", body, &r, sv.Timeout); err != nil {
		return nil, err
	}
	var ids []int
	var lps []*float64
	for i, t := range r.MetaInfo.OutputTokenLogprobs {
		var triple []json.RawMessage
		var lp *float64
		var id int
		if json.Unmarshal(t, &triple) != nil || len(triple) < 2 || json.Unmarshal(triple[0], &lp) != nil || json.Unmarshal(triple[1], &id) != nil {
			return nil, fmt.Errorf("%w: output_token_logprobs[%d] is %s, not [logprob, id, text]", errBadReply, i, t)
		}
		ids, lps = append(ids, id), append(lps, lp)
	}
	if r.OutputIDs != nil && !slices.Equal(r.OutputIDs, ids) {
		return nil, fmt.Errorf("%w: output_ids differ from the ids of output_token_logprobs", errBadReply)
	}
	return own(r.Text, ids, lps, rids, budget, r.MetaInfo.FinishReason.Type)
}

// tgiReply is the part of TGI's /generate reply the probe keeps.
type tgiReply struct {
	GeneratedText string `json:"generated_text"`
	Details       *struct {
		FinishReason string          `json:"finish_reason"`
		Prefill      json.RawMessage `json:"prefill"`
		Tokens       []struct {
			ID      int      `json:"id"`
			Logprob *float64 `json:"logprob"`
		} `json:"tokens"`
	} `json:"details"`
}

// scoreTGI scores an example on TGI and returns the cache line's object,
// the prompt as sent and the response's token ids.
func (sv *Server) scoreTGI(ctx context.Context, rp *replica, j *job, count func(bool)) (map[string]any, string, []int, error) {
	prompt := j.ex.Prompt
	if j.ex.Kind == sftdata.Chat {
		count(false)
		var ct struct {
			Tokens []tgiToken `json:"tokenize_response"`
			Text   string     `json:"templated_text"`
		}
		err := sv.call(ctx, http.MethodPost, rp.url+"/chat_tokenize", map[string]any{"model": rp.model, "messages": j.ex.Context}, &ct, sv.Timeout)
		var he *httpError
		if errors.As(err, &he) && he.status >= 400 && he.status < 500 {
			return nil, "", nil, fatalf("%s cannot render a chat (%v): it needs a chat template; or write the data as prompt/response text", rp.url, err)
		}
		if err != nil {
			return nil, "", nil, err
		}
		prompt = ct.Text
		// TGI adds its special tokens to every /generate input; a template
		// that writes the BOS itself would get it twice, so its text goes.
		if len(rp.bos) == 1 && len(ct.Tokens) > 0 && ct.Tokens[0].ID == rp.bos[0] && ct.Tokens[0].Start == 0 && ct.Tokens[0].Stop > 0 && ct.Tokens[0].Stop <= len(prompt) {
			prompt = prompt[ct.Tokens[0].Stop:]
		}
	}
	full := prompt + j.ex.Response
	count(false)
	var toks []tgiToken
	if err := sv.call(ctx, http.MethodPost, rp.url+"/tokenize", map[string]any{"inputs": full}, &toks, sv.Timeout); err != nil {
		return nil, "", nil, err
	}
	// Offsets are bytes of the input; the prompt ends at byte len(prompt).
	end, start := len(prompt), -1
	offsets := false
	for i, tk := range toks {
		offsets = offsets || tk.Stop > 0
		switch {
		case tk.Stop <= end && start >= 0:
			return nil, "", nil, examplef("token %d (%q) ends in the prompt after a response token: the tokenizer's offsets are out of order", i, tk.Text)
		case tk.Stop <= end:
		case tk.Start < end:
			return nil, "", nil, examplef("token %d (%q, bytes %d–%d) spans the prompt/response boundary at byte %d: the tokenizer merges the prompt's end with the response's start; end prompts with a separator", i, tk.Text, tk.Start, tk.Stop, end)
		case start < 0:
			start = i
		}
	}
	switch {
	case !offsets:
		return nil, "", nil, fatalf("%s: POST /tokenize gives no offsets (no fast tokenizer), so the response cannot be told from the prompt", rp.url)
	case start < 0:
		return nil, "", nil, examplef("the response adds no token")
	case rp.maxLen > 0 && len(toks) > rp.maxLen:
		return nil, "", nil, examplef("%d tokens: longer than the %d the server takes (max_input_tokens)", len(toks), rp.maxLen)
	}
	count(j.attempt > 0)
	body := map[string]any{"inputs": full, "parameters": map[string]any{"max_new_tokens": 1, "details": true, "decoder_input_details": true, "do_sample": false}}
	var r tgiReply
	if err := sv.call(ctx, http.MethodPost, rp.url+"/generate", body, &r, sv.Timeout); err != nil {
		return nil, "", nil, err
	}
	if r.Details == nil {
		return nil, "", nil, fmt.Errorf("%w: no \"details\"", errBadReply)
	}
	var prefill []struct {
		ID      int      `json:"id"`
		Logprob *float64 `json:"logprob"`
	}
	if err := json.Unmarshal(r.Details.Prefill, &prefill); err != nil {
		return nil, "", nil, fmt.Errorf("%w: details.prefill: %v", errBadReply, err)
	}
	if len(prefill) == 0 {
		return nil, "", nil, fatalf("%s returns no prompt log-probs: start TGI with --enable-prefill-logprobs", rp.url)
	}
	if len(prefill) != len(toks) {
		return nil, "", nil, fmt.Errorf("%w: %d prefill tokens, but /tokenize made %d", errBadReply, len(prefill), len(toks))
	}
	for i, p := range prefill {
		if p.ID != toks[i].ID {
			return nil, "", nil, fmt.Errorf("%w: prefill token %d is %d, /tokenize made %d", errBadReply, i, p.ID, toks[i].ID)
		}
		if i >= start && p.Logprob == nil {
			return nil, "", nil, fatalf("%s gives no log-prob for response token %d: its prefix cache leaves cached tokens without log-probs; run TGI with PREFIX_CACHING=0", rp.url, i)
		}
	}
	rids := make([]int, 0, len(toks)-start)
	for _, tk := range toks[start:] {
		rids = append(rids, tk.ID)
	}
	return map[string]any{"generated_text": r.GeneratedText,
		"details":        map[string]any{"finish_reason": r.Details.FinishReason, "prefill": r.Details.Prefill},
		"response_start": start}, prompt, rids, nil
}

// greedyTGI asks TGI's /generate for the greedy continuation of the
// prompt's text (do_sample false; TGI adds its BOS as it does to the
// scored text), with details: details.tokens holds {"id", "text",
// "logprob", "special"} per generated token, the end token included when
// it came (router/src/lib.rs Token, Details; flash_causal_lm.py).
func (sv *Server) greedyTGI(ctx context.Context, rp *replica, prompt string, rids []int, retry bool, count func(bool)) (*ownAnswerJSON, error) {
	count(retry)
	budget := len(rids) + 1
	body := map[string]any{"inputs": prompt, "parameters": map[string]any{"max_new_tokens": budget, "details": true, "do_sample": false}}
	var r tgiReply
	if err := sv.call(ctx, http.MethodPost, rp.url+"/generate", body, &r, sv.Timeout); err != nil {
		return nil, err
	}
	if r.Details == nil {
		return nil, fmt.Errorf("%w: no \"details\" in the greedy reply", errBadReply)
	}
	var ids []int
	var lps []*float64
	for _, t := range r.Details.Tokens {
		ids, lps = append(ids, t.ID), append(lps, t.Logprob)
	}
	return own(r.GeneratedText, ids, lps, rids, budget, r.Details.FinishReason)
}

// checkLine reads a cache line as the format's reader will and checks that
// it scores want tokens (and holds an own answer when greedy); it returns
// the line with its newline.
func checkLine(format string, line []byte, want int, greedy bool) ([]byte, int, error) {
	np, err := parserFor(format, Options{})
	if err != nil {
		return nil, 0, err
	}
	p := np()
	p.reset()
	seqs, err := p.parse(line, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errBadReply, err)
	}
	n := 0
	for _, s := range seqs {
		for i := range s.LogProbs {
			if s.Mask == nil || s.Mask[i] {
				n++
			}
		}
	}
	if len(seqs) != 1 || n != want {
		return nil, 0, fmt.Errorf("%w: %d sequences with %d scored tokens, want one with the %d response tokens", errBadReply, len(seqs), n, want)
	}
	if greedy && seqs[0].Own == nil {
		return nil, 0, fmt.Errorf("%w: no own answer", errBadReply)
	}
	return append(line, '\n'), n, nil
}
