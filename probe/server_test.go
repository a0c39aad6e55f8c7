package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeVLLM speaks the shape of vLLM's /v1/completions with echo. Its
// tokenizer splits text into runs of spaces followed by non-spaces, after
// an empty BOS token; each token's log-prob is a fixed function of its text
// and position (fakeLogprob), so tests can work out the expected p's
// themselves. Faults are scripted per prompt: the n-th request for a prompt
// gets faults[prompt][n] when there is one.
type fakeVLLM struct {
	model  string
	faults map[string][]string // key: the prompt's first word
	mu     sync.Mutex
	tries  map[string]int // requests per prompt
	served map[string]int // successful replies per prompt
	total  int
}

var fakeTokens = regexp.MustCompile(`\s*\S+|\s+$`)

// fakeLogprob is the fake model's log-prob of token tok at position i.
func fakeLogprob(tok string, i int) float64 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", tok, i)
	return -float64(h.Sum32()%4000) / 1000
}

func newFakeVLLM(faults map[string][]string) *fakeVLLM {
	return &fakeVLLM{model: "fake-7b", faults: faults, tries: map[string]int{}, served: map[string]int{}}
}

func (f *fakeVLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if r.URL.Path != "/v1/completions" || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	if req.Model != f.model {
		http.Error(w, fmt.Sprintf(`{"error":"The model %s does not exist."}`, req.Model), http.StatusNotFound)
		return
	}
	if !req.Echo || req.MaxTokens != 1 || req.Temperature != 0 {
		http.Error(w, `{"error":"want echo, max_tokens 1, temperature 0"}`, http.StatusBadRequest)
		return
	}
	id := strings.Fields(req.Prompt)[0]
	f.mu.Lock()
	n := f.tries[id]
	f.tries[id]++
	f.total++
	fault := ""
	if n < len(f.faults[id]) {
		fault = f.faults[id][n]
	}
	if fault == "" {
		f.served[id]++
	}
	f.mu.Unlock()
	switch fault {
	case "429":
		w.Header().Set("Retry-After", "2")
		http.Error(w, `{"error":"rate limited"}`, http.StatusTooManyRequests)
		return
	case "503":
		w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
		http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
		return
	case "500":
		http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
		return
	case "slow":
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		return
	}
	body := f.reply(req, fault)
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (f *fakeVLLM) reply(req completionRequest, fault string) []byte {
	toks := append([]string{""}, fakeTokens.FindAllString(req.Prompt, -1)...)
	toks = append(toks, " <gen>") // the max_tokens=1 token
	var lps []any
	var tops []any
	var offs []int
	chars := 0
	for i, t := range toks {
		offs = append(offs, chars)
		chars += utf8.RuneCountInString(t)
		if i == 0 {
			lps, tops = append(lps, nil), append(tops, nil)
			continue
		}
		lp := fakeLogprob(t, i)
		lps = append(lps, lp)
		top := map[string]float64{t: lp}
		rest := 1 - math.Exp(lp)
		for j := range req.Logprobs {
			rest /= 2
			top[fmt.Sprintf("alt%d", j)] = math.Log(rest)
		}
		tops = append(tops, top)
	}
	if fault == "badlen" {
		lps = lps[:len(lps)-1]
	}
	resp := map[string]any{
		"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": f.model,
		"choices": []any{map[string]any{"index": 0, "text": req.Prompt + " <gen>", "finish_reason": "length",
			"logprobs": map[string]any{"tokens": toks, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offs}}},
		"usage": map[string]int{"prompt_tokens": len(toks) - 1, "completion_tokens": 1, "total_tokens": len(toks)},
	}
	b, _ := json.Marshal(resp)
	if fault == "trunc" {
		b = b[:len(b)/2]
	}
	return b
}

// sftData writes n examples; example i has the prompt "Qi: …?" and a
// response that starts with a space (so no token straddles the boundary).
func sftData(t *testing.T, dir string, n int) (string, []Example) {
	var lines []string
	var exs []Example
	for i := range n {
		ex := Example{Prompt: fmt.Sprintf("Q%d: what is %d + %d? é", i, i, i), Response: fmt.Sprintf(" It is %d. ∎", 2*i)}
		exs = append(exs, ex)
		b, _ := json.Marshal(map[string]any{"prompt": ex.Prompt, "response": ex.Response, "source": "test"})
		lines = append(lines, string(b))
	}
	return writeFile(t, dir, "sft.jsonl", lines...), exs
}

// expectedMeanP works the capability statistic out from the fake model:
// the response's tokens are those after the prompt's, at positions counted
// from the BOS token.
func expectedMeanP(exs []Example) (float64, int) {
	var sum float64
	n := 0
	for _, ex := range exs {
		np := len(fakeTokens.FindAllString(ex.Prompt, -1))
		all := fakeTokens.FindAllString(ex.Prompt+ex.Response, -1)
		for i := np; i < len(all); i++ {
			sum += math.Exp(fakeLogprob(all[i], i+1))
			n++
		}
	}
	return sum / float64(n), n
}

// runServer scores data on srv and returns the report, the run's result and
// the waits the client asked for.
func runServer(t *testing.T, ctx context.Context, sv Server, data, cache string) (*Report, ServerResult, []time.Duration, error) {
	t.Helper()
	var mu sync.Mutex
	var waits []time.Duration
	sv.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	src, res, err := sv.Score(ctx, data, cache, Options{})
	if err != nil {
		return nil, res, waits, err
	}
	defer src.(*cacheSource).Close()
	acc := NewAccumulator(Config{Bootstrap: 100})
	if err := acc.Consume(src); err != nil {
		return nil, res, waits, err
	}
	rep, err := acc.Report()
	return rep, res, waits, err
}

func TestServerFaults(t *testing.T) {
	dir := t.TempDir()
	data, exs := sftData(t, dir, 20)
	fake := newFakeVLLM(map[string][]string{
		"Q1:": {"429"}, "Q2:": {"500", "500"}, "Q3:": {"slow"}, "Q4:": {"trunc"}, "Q5:": {"badlen"},
		"Q6:": {"503", "429", "500"},
	})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	sv := Server{URL: ts.URL + "/", Model: "fake-7b", TopK: 3, Concurrency: 4, Timeout: 200 * time.Millisecond,
		Attempts: 5, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	rep, res, waits, err := runServer(t, context.Background(), sv, data, filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// Every example was scored once by the server, after 9 failed attempts.
	if res.Scored != 20 || res.Failed != 0 || res.Retries != 9 || res.Requests != 29 || res.Mismatches != 0 {
		t.Errorf("result %+v", res)
	}
	for i := range 20 {
		if got := fake.served[fmt.Sprintf("Q%d:", i)]; got != 1 {
			t.Errorf("Q%d served %d times", i, got)
		}
	}
	// Retry-After (2 s after a 429, 90 s as an HTTP date after the 503) is
	// longer than the backoff and is honoured up to 4 × MaxBackoff = 40 ms;
	// the other waits are backoffs of at most MaxBackoff = 10 ms.
	capped := 0
	for _, w := range waits {
		switch {
		case w == 40*time.Millisecond:
			capped++
		case w > 10*time.Millisecond:
			t.Errorf("wait %v", w)
		}
	}
	if capped != 3 {
		t.Errorf("%d waits at the Retry-After cap, want 3 (waits %v)", capped, waits)
	}
	want, n := expectedMeanP(exs)
	if rep.Tokens != int64(n) || !near(rep.MeanP, want, 1e-12) || rep.Sequences != 20 || rep.TopKTokens != int64(n) {
		t.Errorf("report: %d tokens, mean p %v; want %d, %v", rep.Tokens, rep.MeanP, n, want)
	}
	// The cache is itself a vllm-echo input with the same statistics.
	direct, err := reportOf(t, Config{Bootstrap: 100}, Options{}, filepath.Join(dir, "cache.jsonl"))
	if err != nil || direct.MeanP != rep.MeanP || direct.Tokens != rep.Tokens || direct.Sources[0].Format != VLLMEcho {
		t.Errorf("cache as input: %v, %+v", err, direct)
	}
}

// TestServerResume interrupts a run, tears the cache's last line as a kill
// would, and resumes: no example is scored twice, none is counted twice,
// and the report equals an uninterrupted run's.
func TestServerResume(t *testing.T) {
	dir := t.TempDir()
	data, _ := sftData(t, dir, 30)
	// A duplicated example counts twice, as it would in training.
	b, _ := os.ReadFile(data)
	first := strings.SplitN(string(b), "\n", 2)[0]
	os.WriteFile(data, append(b, []byte(first+"\n")...), 0o644)

	ref := newFakeVLLM(nil)
	ts := httptest.NewServer(ref)
	defer ts.Close()
	sv := Server{URL: ts.URL, Model: "fake-7b", TopK: 2, Concurrency: 3, Timeout: time.Second}
	want, _, _, err := runServer(t, context.Background(), sv, data, filepath.Join(dir, "ref.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if want.Sequences != 31 {
		t.Fatalf("%d sequences, want 31", want.Sequences)
	}

	fake := newFakeVLLM(nil)
	ts2 := httptest.NewServer(fake)
	defer ts2.Close()
	sv.URL = ts2.URL
	cache := filepath.Join(dir, "cache.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	sv.Progress = func(p ServerProgress) {
		if p.Scored >= 10 {
			cancel()
		}
	}
	if _, _, _, err := runServer(t, ctx, sv, data, cache); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	f, _ := os.OpenFile(cache, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"capsel-torn","choices":[{"logpro`)
	f.Close()
	sv.Progress = nil
	got, res, _, err := runServer(t, context.Background(), sv, data, cache)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cached < 10 || res.Cached+res.Scored != 31 {
		t.Errorf("resumed run: %+v", res)
	}
	fake.mu.Lock()
	for id, n := range fake.served {
		if want := 1 + btoi(id == "Q0:"); n != want { // Q0 is in the data twice
			t.Errorf("%s scored %d times, want %d", id, n, want)
		}
	}
	fake.mu.Unlock()
	if !sameStats(got, want) {
		t.Errorf("resumed report differs:\n%s", diffJSON(got, want))
	}
}

// sameStats compares two reports' statistics (the reservoirs hold the same
// tokens; their ids differ only if the cache keys did).
func sameStats(a, b *Report) bool {
	ca, cb := comparable(a), comparable(b)
	return diffJSON(&ca, &cb) == ""
}

func TestServerErrors(t *testing.T) {
	dir := t.TempDir()
	data, _ := sftData(t, dir, 3)
	fake := newFakeVLLM(map[string][]string{"Q1:": {"500", "500", "500"}})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	// A wrong model name is refused at once, without retries (a second
	// example may have been on its way when the first refusal came).
	sv := Server{URL: ts.URL, Model: "nope", Concurrency: 1, Backoff: time.Millisecond}
	if _, res, _, err := runServer(t, context.Background(), sv, data, filepath.Join(dir, "c1.jsonl")); err == nil ||
		!strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "does not exist") || res.Retries != 0 || res.Requests > 2 {
		t.Errorf("wrong model: %v after %+v", err, res)
	}
	// An example that keeps failing is a line error of the data file,
	// counted with SkipBad.
	sv = Server{URL: ts.URL, Model: "fake-7b", Attempts: 3, Backoff: time.Millisecond}
	src, res, err := sv.Score(context.Background(), data, filepath.Join(dir, "c2.jsonl"), Options{})
	if err != nil || res.Failed != 1 || res.Scored != 2 {
		t.Fatalf("%v %+v", err, res)
	}
	acc := NewAccumulator(Config{SkipBad: true})
	if err := acc.Consume(src); err != nil {
		t.Fatal(err)
	}
	rep, _ := acc.Report()
	if rep.Sequences != 2 || rep.Skipped == nil || !strings.Contains(rep.Skipped.First[0], "sft.jsonl:2: not in the cache (gave up after 3 attempts: HTTP 500") {
		t.Errorf("skipped %+v", rep.Skipped)
	}
	// Bad data lines name the data file and line.
	bad := writeFile(t, dir, "bad.jsonl", `{"prompt":"a","response":" b"}`, `{"prompt":"a"}`)
	if _, _, err := sv.Score(context.Background(), bad, filepath.Join(dir, "c3.jsonl"), Options{}); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2: missing string field \"response\"") {
		t.Errorf("bad data: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	sv := Server{Backoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second}
	for attempt := range 12 {
		full := min(100*time.Millisecond<<attempt, 30*time.Second)
		for range 100 {
			// Equal jitter: between half the exponential step and all of it.
			if d := sv.backoff(attempt, 0); d < full/2 || d > full {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
	// Retry-After wins when it is longer, up to 4 × MaxBackoff.
	if d := sv.backoff(0, 7*time.Second); d != 7*time.Second {
		t.Errorf("Retry-After 7 s: wait %v", d)
	}
	if d := sv.backoff(0, time.Hour); d != 2*time.Minute {
		t.Errorf("Retry-After 1 h: wait %v", d)
	}
	for h, want := range map[string]time.Duration{"3": 3 * time.Second, "": 0, "soon": 0, "-1": 0} {
		if got := retryAfter(h); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
	if got := retryAfter(time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)); got < 58*time.Second || got > time.Minute {
		t.Errorf("retryAfter(date) = %v", got)
	}
}
