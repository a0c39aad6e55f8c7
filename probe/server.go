package probe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Example is one SFT example: the model is scored on Response given Prompt.
type Example struct {
	Prompt   string
	Response string
	Source   string // file
	Line     int
}

// DataFormat documents the SFT data file.
const DataFormat = `SFT data (--data): JSONL, one {"prompt": "...", "response": "..."} per line;
  other fields are ignored. prompt and response are sent concatenated with
  nothing in between: a chat template belongs in the data.`

// ExampleReader streams an SFT JSONL file.
type ExampleReader struct {
	lr *lineReader
}

// NewExampleReader reads SFT examples from r; name is used in errors.
func NewExampleReader(r io.Reader, name string) *ExampleReader {
	return &ExampleReader{lr: newLineReader(r, name)}
}

// Next returns the next example, io.EOF at the end, or a *LineError for a
// line without string "prompt" and "response" fields or with an empty
// response.
func (er *ExampleReader) Next() (Example, error) {
	line, err := er.lr.next()
	if err != nil {
		return Example{}, err
	}
	var v struct {
		Prompt   *string `json:"prompt"`
		Response *string `json:"response"`
	}
	bad := func(format string, args ...any) error { return lineErr(er.lr.name, er.lr.line, format, args...) }
	if err := json.Unmarshal(line, &v); err != nil {
		return Example{}, bad("bad JSON: %v", err)
	}
	switch {
	case v.Prompt == nil:
		return Example{}, bad(`missing string field "prompt"`)
	case v.Response == nil:
		return Example{}, bad(`missing string field "response"`)
	case *v.Response == "":
		return Example{}, bad("empty response: nothing to score")
	}
	return Example{Prompt: *v.Prompt, Response: *v.Response, Source: er.lr.name, Line: er.lr.line}, nil
}

// Server scores SFT examples on a live OpenAI-compatible server (vLLM):
// each example's prompt + response goes to URL/v1/completions with echo,
// and the response's tokens at text_offset ≥ len(prompt) are scored. The
// responses are appended to a cache file in the vllm-echo format (with
// prompt_chars), so an interrupted run resumes without rescoring and the
// cache is itself a valid --logprobs input.
type Server struct {
	URL   string // base URL, e.g. http://localhost:8000
	Model string // the served model's name
	// TopK is the number of top log-probs per token ("logprobs": k); 0
	// asks for the target's log-prob only and caches no top lists.
	TopK int
	// Concurrency is the number of requests in flight (default 4).
	Concurrency int
	// Timeout bounds each request (default 60 s).
	Timeout time.Duration
	// Attempts is how often one example is tried (default 8).
	Attempts int
	// Backoff is the first wait after a failed attempt (default 0.5 s); it
	// doubles with each failure up to MaxBackoff (default 30 s), with
	// jitter: the wait is uniform between half of it and all of it. A
	// Retry-After header, capped at MaxBackoff·4, overrides a shorter wait.
	Backoff, MaxBackoff time.Duration
	// HTTP is the client to use (default a new http.Client).
	HTTP *http.Client
	// Progress, when set, is called after each example is scored or fails,
	// from one goroutine.
	Progress func(ServerProgress)

	sleep func(ctx context.Context, d time.Duration) error // tests replace it
}

// ServerProgress counts a run's examples.
type ServerProgress struct {
	Total    int // examples in the data
	Cached   int // found in the cache before the run
	Scored   int // scored in this run
	Failed   int // gave up after Attempts tries
	Tokens   int // response tokens scored in this run
	Retries  int // failed attempts that were retried
	Requests int // requests sent
}

// ServerResult is the outcome of Score.
type ServerResult struct {
	ServerProgress
	// Failures holds the examples that failed, as line errors of the data
	// file (the last attempt's error).
	Failures []error
	// Mismatches counts responses whose echoed text did not start with the
	// prompt + response sent: the server's detokenisation changed the text,
	// and text offsets may not line up with len(prompt).
	Mismatches int
}

func (sv *Server) defaults() Server {
	c := *sv
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 8
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{}
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	c.URL = strings.TrimRight(c.URL, "/")
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cacheKey identifies one example's scoring: the model, k, the data line
// and the text. The data line is part of it so that a duplicated example
// counts twice, as it does in training.
func (sv *Server) cacheKey(ex Example) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00", sv.Model, sv.TopK, ex.Line, len(ex.Prompt))
	h.Write([]byte(ex.Prompt))
	h.Write([]byte(ex.Response))
	return "capsel-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Score scores every example of the data file that the cache does not
// hold yet, appending each response to the cache, and returns a Source over
// the cached responses of exactly the data's examples, each once, named by
// their data file and line. Cancelling ctx stops the run; what was scored
// stays in the cache for the next one.
//
// A request is retried on a network error, a timeout, HTTP 429 or 5xx, and
// a reply that is not a consistent echo response; any other HTTP error
// ends the run (the server refuses the request itself: a wrong model name,
// for example).
func (sv *Server) Score(ctx context.Context, dataPath, cachePath string, opt Options) (Source, ServerResult, error) {
	c := sv.defaults()
	var res ServerResult
	if c.URL == "" || c.Model == "" {
		return nil, res, errors.New("probe: the server's URL and model name are required")
	}
	keys, err := c.dataKeys(dataPath)
	if err != nil {
		return nil, res, err
	}
	res.Total = len(keys)
	done, err := repairCache(cachePath)
	if err != nil {
		return nil, res, err
	}
	for k := range keys {
		if done[k] {
			res.Cached++
		}
	}
	if res.Cached < res.Total {
		if err := c.fill(ctx, dataPath, cachePath, done, &res); err != nil {
			return nil, res, err
		}
	}
	opt.Format = VLLMEcho
	opt.ScoreAll = false
	fs, err := OpenFiles([]string{cachePath}, opt, nil)
	if err != nil {
		return nil, res, err
	}
	failed := map[int]string{}
	for _, f := range res.Failures {
		var le *LineError
		if errors.As(f, &le) {
			failed[le.Line] = le.Err.Error()
		}
	}
	return &cacheSource{src: fs, files: fs, want: keys, seen: make(map[string]bool, len(keys)), failed: failed, data: dataPath}, res, nil
}

// dataKeys reads the data file and returns the cache key of every example
// with its line.
func (sv *Server) dataKeys(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	er := NewExampleReader(f, path)
	keys := map[string]int{}
	for {
		ex, err := er.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		keys[sv.cacheKey(ex)] = ex.Line
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	return keys, nil
}

// repairCache cuts a torn last line off the cache (a run killed while
// writing) and returns the keys of its well-formed lines.
func repairCache(path string) (map[string]bool, error) {
	done := map[string]bool{}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if size := st.Size(); size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			return nil, err
		}
		if last[0] != '\n' {
			end, err := lastNewline(f, size)
			if err != nil {
				return nil, err
			}
			if err := f.Truncate(end); err != nil {
				return nil, fmt.Errorf("repair %s: %w", path, err)
			}
		}
	}
	lr := newLineReader(f, path)
	var s scanner
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			return done, nil
		}
		if err != nil {
			return nil, err
		}
		if id, ok := cacheLineID(&s, line); ok {
			done[id] = true
		}
	}
}

// lastNewline returns the offset just past the last '\n' before size.
func lastNewline(f *os.File, size int64) (int64, error) {
	const chunk = 1 << 16
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// cacheLineID returns the "id" of a well-formed cache line.
func cacheLineID(s *scanner, line []byte) (string, bool) {
	s.reset(line)
	id := ""
	if !s.beginObject() {
		return "", false
	}
	for s.nextKey() {
		if string(s.key) == "id" && s.peek() == '"' {
			id = string(s.str(nil))
			continue
		}
		s.skip()
	}
	s.end()
	return id, s.err == nil && strings.HasPrefix(id, "capsel-")
}

// fill scores the examples missing from the cache.
func (sv *Server) fill(ctx context.Context, dataPath, cachePath string, done map[string]bool, res *ServerResult) error {
	f, err := os.Open(dataPath)
	if err != nil {
		return err
	}
	defer f.Close()
	out, err := os.OpenFile(cachePath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan Example)
	type result struct {
		ex     Example
		line   []byte
		tokens int
		match  bool
		err    error
	}
	results := make(chan result)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards res's request counters
	// On cancellation the workers take no new example, but the requests in
	// flight run to completion (each bounded by Timeout) and their replies
	// are cached: a reply the server computed is not thrown away.
	for range sv.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ex := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				line, tokens, match, err := sv.scoreOne(ctx, ex, func(retry bool) {
					mu.Lock()
					res.Requests++
					if retry {
						res.Retries++
					}
					mu.Unlock()
				})
				results <- result{ex, line, tokens, match, err}
			}
		}()
	}
	// Feed the examples not in the cache.
	var feedErr error
	go func() {
		defer close(jobs)
		er := NewExampleReader(f, dataPath)
		for {
			ex, err := er.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				feedErr = err
				cancel(err)
				return
			}
			if done[sv.cacheKey(ex)] {
				continue
			}
			select {
			case jobs <- ex:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()
	lastSync := time.Now()
	var werr error
	for r := range results {
		if werr != nil {
			continue
		}
		mu.Lock()
		switch {
		case r.err != nil && errors.Is(r.err, errPermanent):
			werr = r.err
			cancel(r.err)
		case r.err != nil:
			if ctx.Err() == nil || !errors.Is(r.err, ctx.Err()) {
				res.Failed++
				res.Failures = append(res.Failures, lineErr(r.ex.Source, r.ex.Line, "%v", r.err))
			}
		default:
			if _, err := out.Write(r.line); err != nil {
				werr = fmt.Errorf("write %s: %w", cachePath, err)
				cancel(werr)
				break
			}
			res.Scored++
			res.Tokens += r.tokens
			if !r.match {
				res.Mismatches++
			}
			if time.Since(lastSync) > 2*time.Second {
				out.Sync()
				lastSync = time.Now()
			}
		}
		p := res.ServerProgress
		mu.Unlock()
		if sv.Progress != nil {
			sv.Progress(p)
		}
	}
	if err := out.Sync(); err != nil && werr == nil {
		werr = err
	}
	switch {
	case werr != nil:
		return werr
	case feedErr != nil:
		return feedErr
	case context.Cause(ctx) != nil && ctx.Err() != nil:
		return context.Cause(ctx)
	}
	return nil
}

// errPermanent marks an HTTP error that retrying will not fix.
var errPermanent = errors.New("the server refused the request")

// completionRequest is the body sent to /v1/completions.
type completionRequest struct {
	Model       string  `json:"model"`
	Prompt      string  `json:"prompt"`
	Echo        bool    `json:"echo"`
	Logprobs    int     `json:"logprobs"`
	MaxTokens   int     `json:"max_tokens"`
	Temperature float64 `json:"temperature"`
}

// completionResponse is the part of vLLM's reply that the probe keeps.
type completionResponse struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Index    int    `json:"index"`
		Text     string `json:"text"`
		Logprobs *struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []*float64           `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens int `json:"prompt_tokens"`
	} `json:"usage"`
}

// cacheLine is what the cache holds per example: a vLLM echo response cut
// to the fields the probe reads, plus where the response starts.
type cacheLine struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	Model       string `json:"model"`
	Choices     []any  `json:"choices"`
	Usage       any    `json:"usage"`
	PromptChars int    `json:"prompt_chars"`
	DataLine    int    `json:"data_line"`
	ResponseID  string `json:"response_id"`
}

// scoreOne scores one example with retries and returns its cache line, the
// number of response tokens, and whether the echo matched the text sent.
func (sv *Server) scoreOne(ctx context.Context, ex Example, sent func(retry bool)) ([]byte, int, bool, error) {
	body, _ := json.Marshal(completionRequest{Model: sv.Model, Prompt: ex.Prompt + ex.Response, Echo: true,
		Logprobs: sv.TopK, MaxTokens: 1, Temperature: 0})
	promptChars := utf8.RuneCountInString(ex.Prompt)
	var lastErr error
	for attempt := range sv.Attempts {
		sent(attempt > 0)
		resp, wait, err := sv.post(context.WithoutCancel(ctx), body)
		if err == nil {
			line, tokens, match, verr := sv.toCacheLine(resp, ex, promptChars)
			if verr == nil {
				return line, tokens, match, nil
			}
			err = verr
		}
		if errors.Is(err, errPermanent) || ctx.Err() != nil {
			return nil, 0, false, err
		}
		lastErr = err
		if attempt == sv.Attempts-1 {
			break
		}
		if err := sv.sleep(ctx, sv.backoff(attempt, wait)); err != nil {
			return nil, 0, false, err
		}
	}
	return nil, 0, false, fmt.Errorf("gave up after %d attempts: %w", sv.Attempts, lastErr)
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

// post sends one request and returns the body of a 200 reply; for a
// retryable failure also the server's Retry-After.
func (sv *Server) post(ctx context.Context, body []byte) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, sv.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sv.URL+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := sv.HTTP.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return b, 0, nil
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout {
		return nil, retryAfter(resp.Header.Get("Retry-After")), err
	}
	return nil, 0, fmt.Errorf("%w: %v", errPermanent, err)
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

// toCacheLine checks a reply and turns it into a cache line.
func (sv *Server) toCacheLine(b []byte, ex Example, promptChars int) ([]byte, int, bool, error) {
	var r completionResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, 0, false, fmt.Errorf("bad reply: %v", err)
	}
	if len(r.Choices) != 1 || r.Choices[0].Logprobs == nil {
		return nil, 0, false, fmt.Errorf("bad reply: want one choice with logprobs, got %d choices", len(r.Choices))
	}
	ch := r.Choices[0]
	lp := ch.Logprobs
	n := len(lp.TokenLogprobs)
	if len(lp.Tokens) != n || len(lp.TextOffset) != n || (sv.TopK > 0 && len(lp.TopLogprobs) != n) {
		return nil, 0, false, fmt.Errorf("bad reply: lengths disagree: %d tokens, %d token_logprobs, %d top_logprobs, %d text_offset",
			len(lp.Tokens), n, len(lp.TopLogprobs), len(lp.TextOffset))
	}
	end := n
	if r.Usage != nil {
		if r.Usage.PromptTokens > n {
			return nil, 0, false, fmt.Errorf("bad reply: usage.prompt_tokens %d > %d tokens", r.Usage.PromptTokens, n)
		}
		end = r.Usage.PromptTokens
	}
	tokens := 0
	for i := range end {
		if lp.TextOffset[i] >= promptChars {
			if lp.TokenLogprobs[i] == nil {
				return nil, 0, false, fmt.Errorf("bad reply: response token %d has a null log-prob", i)
			}
			tokens++
		}
	}
	if tokens == 0 {
		return nil, 0, false, fmt.Errorf("bad reply: no token at or after character %d (the end of the prompt)", promptChars)
	}
	logprobs := map[string]any{"tokens": lp.Tokens, "token_logprobs": lp.TokenLogprobs, "text_offset": lp.TextOffset, "top_logprobs": nil}
	if sv.TopK > 0 {
		logprobs["top_logprobs"] = lp.TopLogprobs
	}
	line, err := json.Marshal(cacheLine{
		ID: sv.cacheKey(ex), Object: "text_completion", Model: r.Model,
		Choices:     []any{map[string]any{"index": 0, "text": ch.Text, "logprobs": logprobs}},
		Usage:       map[string]int{"prompt_tokens": end},
		PromptChars: promptChars, DataLine: ex.Line, ResponseID: r.ID,
	})
	if err != nil {
		return nil, 0, false, err
	}
	match := strings.HasPrefix(ch.Text, ex.Prompt+ex.Response)
	return append(line, '\n'), tokens, match, nil
}

// cacheSource yields the cached responses of the data's examples, each
// once, named by the data file and line. Lines of the cache that are
// malformed or belong to other data are passed over; after the cache, each
// example of the data that is not in it comes as a line error of the data
// file (counted as skipped with SkipBad).
type cacheSource struct {
	src     Source
	files   *Files
	want    map[string]int // key → data line
	seen    map[string]bool
	failed  map[int]string // data line → why the server run gave up on it
	data    string
	missing []missing // after the cache: the examples not in it
}

func (cs *cacheSource) Next() (Sequence, error) {
	for {
		if cs.missing != nil {
			if len(cs.missing) == 0 {
				return Sequence{}, io.EOF
			}
			m := cs.missing[0]
			cs.missing = cs.missing[1:]
			why := "the server did not score it"
			if r, ok := cs.failed[m.line]; ok {
				why = r
			}
			return Sequence{}, lineErr(cs.data, m.line, "not in the cache (%s); run again to retry it", why)
		}
		seq, err := cs.src.Next()
		if errors.Is(err, io.EOF) {
			cs.missing = []missing{}
			for k, line := range cs.want {
				if !cs.seen[k] {
					cs.missing = append(cs.missing, missing{line})
				}
			}
			slices.SortFunc(cs.missing, func(a, b missing) int { return a.line - b.line })
			continue
		}
		if err != nil {
			if IsLineError(err) {
				continue // a line the cache repair or another run left: not this data's
			}
			return Sequence{}, err
		}
		line, ok := cs.want[seq.ID]
		if !ok || cs.seen[seq.ID] {
			continue
		}
		cs.seen[seq.ID] = true
		seq.Source, seq.Line = cs.data, line
		return seq, nil
	}
}

type missing struct{ line int }

// Bytes reports progress through the cache.
func (cs *cacheSource) Bytes() (done, total int64) { return cs.files.Bytes() }

// Close releases the cache file.
func (cs *cacheSource) Close() error { return cs.files.Close() }
