package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capsel/capsel/probe/probetest"
	"github.com/capsel/capsel/sftdata"
)

// sftLines are SFT data in the three shapes (and a pretraining document),
// with characters outside the stand-in's vocabulary: ☃, 🙂 and é become
// several byte tokens each, which print alone as U+FFFD.
var sftLines = []string{
	`{"prompt": "Question: who wrote Hamlet? ☃\n", "response": " William Shakespeare 🙂"}`,
	`{"prompt": "Q: the capital of France?\n", "completion": " Paris"}`,
	`{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome, é."}]}`,
	`{"prompt": [{"role": "user", "content": "Who wrote Hamlet?"}], "completion": [{"role": "assistant", "content": "William Shakespeare"}]}`,
	`{"text": "the capital of France is Paris"}`,
}

// expected works out, with the stand-in's tokenizer and model, which
// tokens a server scores for each example and their mean p: vLLM and SGLang
// get the prompt tokenized with BOS (a chat through the template) and the
// response without; TGI gets the text, and the response starts at the
// first token past the prompt's bytes.
func expected(t *testing.T, kind string, data string) (tokens int, meanP float64) {
	t.Helper()
	exs, err := sftdata.ReadAll(strings.NewReader(data), "d")
	if err != nil {
		t.Fatal(err)
	}
	var tk probetest.Tokenizer
	var m probetest.Model
	sum := 0.0
	for _, ex := range exs {
		var turns []probetest.Message
		for _, c := range ex.Context {
			turns = append(turns, probetest.Message{Role: c.Role, Content: c.Content})
		}
		var ids []int
		start := 0
		switch kind {
		case probetest.VLLM, probetest.SGLang:
			p := probetest.IDs(tk.Encode(ex.Prompt, true))
			if ex.Kind == sftdata.Chat {
				p = probetest.IDs(tk.Encode(probetest.ChatTemplate(turns), false))
			}
			ids, start = append(p, probetest.IDs(tk.Encode(ex.Response, false))...), len(p)
		case probetest.TGI:
			prompt := ex.Prompt
			if ex.Kind == sftdata.Chat {
				prompt = strings.TrimPrefix(probetest.ChatTemplate(turns), "<|begin_of_text|>")
			}
			toks := tk.Encode(prompt+ex.Response, true)
			ids = probetest.IDs(toks)
			for start < len(toks) && toks[start].Stop <= len(prompt) {
				start++
			}
		}
		for i := start; i < len(ids); i++ {
			sum += m.P(ids[:i], ids[i])
			tokens++
		}
	}
	return tokens, sum / float64(tokens)
}

// standin starts a stand-in server.
func standin(t testing.TB, s *probetest.Server) string {
	t.Helper()
	if s.Model == "" {
		s.Model = "org/model-7b"
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL
}

// run scores data on the servers and returns the report.
func run(t testing.TB, sv *Server, data string) (*Report, ServerResult, error) {
	t.Helper()
	src, res, err := sv.Score(context.Background(), data, "", Options{})
	if err != nil {
		return nil, res, err
	}
	defer src.(io.Closer).Close()
	acc := NewAccumulator(Config{})
	if err := acc.Consume(src); err != nil {
		return nil, res, err
	}
	rep, err := acc.Report()
	return rep, res, err
}

func noSleep(context.Context, time.Duration) error { return nil }

// TestLiveExact: against stand-ins of vLLM, SGLang and TGI that add a BOS
// and split multi-byte characters into byte tokens, the probe scores
// exactly the response tokens of all three SFT shapes.
func TestLiveExact(t *testing.T) {
	for _, kind := range []string{probetest.VLLM, probetest.SGLang, probetest.TGI} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			data := writeFile(t, dir, "sft.jsonl", sftLines...)
			url := standin(t, &probetest.Server{Kind: kind})
			rep, res, err := run(t, &Server{URLs: []string{url}, TopK: 2}, data)
			if err != nil {
				t.Fatal(err)
			}
			toks, meanP := expected(t, kind, strings.Join(sftLines, "\n"))
			if rep.Sequences != int64(len(sftLines)) || rep.Tokens != int64(toks) || !near(rep.MeanP, meanP, 1e-12) {
				t.Errorf("%d sequences, %d tokens, mean p %.15g; want %d, %d, %.15g", rep.Sequences, rep.Tokens, rep.MeanP, len(sftLines), toks, meanP)
			}
			if res.Kind != ServerKind(kind) || res.Model != "org/model-7b" || res.Scored != len(sftLines) || res.Cache != DefaultCache(data, "org/model-7b", ServerKind(kind)) {
				t.Errorf("result %+v", res)
			}
			if (kind != probetest.TGI) != (rep.TopKTokens == rep.Tokens) {
				t.Errorf("%d of %d tokens with top-k", rep.TopKTokens, rep.Tokens)
			}
			// The cache is a --logprobs input with the same numbers.
			again, err := reportOf(t, Config{}, Options{}, res.Cache)
			if err != nil || again.Tokens != rep.Tokens || again.MeanP != rep.MeanP {
				t.Errorf("the cache as input: %v, %+v", err, again)
			}
		})
	}
}

// A server that does not score the response tokens as sent is caught: a
// reply with a token missing is retried, and given up on when it persists.
func TestLiveBadReplies(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "sft.jsonl", sftLines[:2]...)
	s := &probetest.Server{Kind: probetest.VLLM, Faults: map[string][]probetest.Fault{
		"Hamlet": {probetest.FaultBad, probetest.FaultBad},
		"France": {probetest.FaultBad, probetest.FaultBad, probetest.FaultBad}}}
	rep, res, err := run(t, &Server{URLs: []string{standin(t, s)}, Attempts: 3, sleep: noSleep}, data)
	if err == nil || !strings.Contains(err.Error(), "sft.jsonl:2: not in the cache (gave up after 3 attempts") {
		t.Fatalf("report %+v, err %v", rep, err)
	}
	if res.Scored != 1 || res.Failed != 1 || res.Retries != 4 {
		t.Errorf("result %+v", res.ServerProgress)
	}
}

func TestLiveRetries(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "sft.jsonl", sftLines...)
	s := &probetest.Server{Kind: probetest.SGLang, Faults: map[string][]probetest.Fault{
		"Hamlet": {probetest.Fault429, probetest.Fault500},
		"France": {probetest.FaultDrop},
		"Italy":  {probetest.Fault503, probetest.FaultBad}}}
	rep, res, err := run(t, &Server{URLs: []string{standin(t, s)}, sleep: noSleep}, data)
	if err != nil {
		t.Fatal(err)
	}
	toks, meanP := expected(t, probetest.SGLang, strings.Join(sftLines, "\n"))
	if rep.Tokens != int64(toks) || !near(rep.MeanP, meanP, 1e-12) || res.Retries < 5 || res.Failed != 0 {
		t.Errorf("%d tokens, mean p %v, result %+v", rep.Tokens, rep.MeanP, res.ServerProgress)
	}
}

// TestPreflight: a closed port, a URL that is no inference server and a
// wrong model name fail before any example, saying what to fix.
func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "sft.jsonl", sftLines...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			fmt.Fprint(w, "<html>hello</html>")
			return
		}
		http.NotFound(w, r)
	}))
	defer web.Close()
	vllm := standin(t, &probetest.Server{Kind: probetest.VLLM, Model: "Qwen/Qwen2.5-7B"})
	for name, c := range map[string]struct {
		sv   Server
		want string
	}{
		"closed port":  {Server{URLs: []string{closed}}, "nothing answers at " + closed},
		"not a server": {Server{URLs: []string{web.URL}}, web.URL + " answers, but not as vLLM, SGLang or TGI do"},
		"wrong model":  {Server{URLs: []string{vllm}, Model: "Qwen/Qwen2.5-7B-Instruct"}, `serves "Qwen/Qwen2.5-7B", not "Qwen/Qwen2.5-7B-Instruct": fix --served-model`},
		"wrong kind":   {Server{URLs: []string{vllm}, Kind: KindTGI}, "GET /info"},
		"one of two":   {Server{URLs: []string{vllm, closed}}, "nothing answers at " + closed},
		"mixed":        {Server{URLs: []string{vllm, standin(t, &probetest.Server{Kind: probetest.SGLang, Model: "Qwen/Qwen2.5-7B"})}}, "the servers differ"},
	} {
		_, _, err := run(t, &c.sv, data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	// With --cache named, the cache is opened before the preflight; a
	// failed run leaves no empty file behind.
	cache := filepath.Join(dir, "named-cache.jsonl")
	if _, _, err := (&Server{URLs: []string{closed}}).Score(context.Background(), data, cache, Options{}); err == nil {
		t.Error("closed port with --cache: no error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a failed preflight left files: %v", entries)
	}
}

// TestDetection: auto tells the three servers apart; a kind named on the
// command line is used as given.
func TestDetection(t *testing.T) {
	for _, kind := range []string{probetest.VLLM, probetest.SGLang, probetest.TGI} {
		url := standin(t, &probetest.Server{Kind: kind})
		sv := (&Server{URLs: []string{url}}).defaults()
		reps, err := sv.preflight(context.Background())
		if err != nil || reps[0].kind != ServerKind(kind) || reps[0].model != "org/model-7b" {
			t.Errorf("%s: detected %+v, %v", kind, reps, err)
		}
	}
	for _, s := range []string{"auto", "VLLM", "sglang", "tgi", ""} {
		if _, err := ParseServerKind(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseServerKind("ollama"); err == nil {
		t.Error("ollama parsed")
	}
}

// A TGI started without --enable-prefill-logprobs stops the run with the
// flag in the message.
func TestTGINeedsPrefillLogprobs(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "sft.jsonl", sftLines...)
	_, _, err := run(t, &Server{URLs: []string{standin(t, &probetest.Server{Kind: probetest.TGI, NoPrefillLogprobs: true})}}, data)
	if err == nil || !strings.Contains(err.Error(), "--enable-prefill-logprobs") {
		t.Fatal(err)
	}
}

// Examples the server refuses (too long here) are given up at once and
// reported by line; when the first five are all refused, the run stops.
func TestRefusedExamples(t *testing.T) {
	dir := t.TempDir()
	long := `{"prompt": "` + strings.Repeat("x", 300) + `", "response": " ok"}`
	data := writeFile(t, dir, "sft.jsonl", sftLines[0], long, sftLines[1])
	url := standin(t, &probetest.Server{Kind: probetest.VLLM, MaxLen: 200})
	_, res, err := run(t, &Server{URLs: []string{url}}, data)
	if err == nil || !strings.Contains(err.Error(), "sft.jsonl:2: not in the cache (301 prompt and 1 response tokens: longer than the 200") ||
		res.Scored != 2 || res.Failed != 1 {
		t.Fatalf("%+v %v", res.ServerProgress, err)
	}
	var lines []string
	for range 6 {
		lines = append(lines, long)
	}
	data = writeFile(t, dir, "long.jsonl", lines...)
	if _, _, err := run(t, &Server{URLs: []string{url}}, data); err == nil || !strings.Contains(err.Error(), "refused the first 5 examples") {
		t.Fatal(err)
	}
}

// TestCacheLock: a second probe on the same cache refuses; the lock goes
// with the first.
func TestCacheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	a, err := openCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openCache(path); err == nil || !strings.Contains(err.Error(), "in use by another selector probe") {
		t.Fatalf("second open: %v", err)
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	b, err := openCache(path)
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	b.close()
}

// TestCancel: a cancelled run returns once its requests in flight have had
// their grace, with every reply that came in cached whole; the next run
// scores only the rest, a torn last line is repaired, and the numbers are
// those of an uninterrupted run.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "sft.jsonl", sftLines...)
	s := &probetest.Server{Kind: probetest.VLLM, Faults: map[string][]probetest.Fault{"Italy": {probetest.FaultHang}}}
	url := standin(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	var scored atomic.Int32
	sv := &Server{URLs: []string{url}, Concurrency: 1, Grace: 50 * time.Millisecond,
		Progress: func(p ServerProgress) {
			if p.Scored == 2 && scored.Swap(2) == 0 {
				cancel() // the third example (Italy) hangs
			}
		}}
	start := time.Now()
	_, res, err := sv.Score(ctx, data, "", Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("the cancelled run took %v", el)
	}
	cache := DefaultCache(data, "org/model-7b", KindVLLM)
	b, _ := os.ReadFile(cache)
	if n := strings.Count(string(b), "\n"); n != 2 || res.Scored != 2 {
		t.Fatalf("%d cache lines, %d scored", n, res.Scored)
	}
	// A torn line (a run killed while writing) is cut off.
	f, _ := os.OpenFile(cache, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"capsel-torn","choi`)
	f.Close()
	s.Faults = nil
	rep, res, err := run(t, &Server{URLs: []string{url}, Kind: KindVLLM, Model: "org/model-7b"}, data)
	if err != nil {
		t.Fatal(err)
	}
	toks, meanP := expected(t, probetest.VLLM, strings.Join(sftLines, "\n"))
	if res.Cached != 2 || res.Scored != len(sftLines)-2 || rep.Tokens != int64(toks) || !near(rep.MeanP, meanP, 1e-12) {
		t.Errorf("resumed: %+v, %d tokens, mean p %v", res.ServerProgress, rep.Tokens, rep.MeanP)
	}
	// A third run finds everything cached and sends nothing.
	calls := s.Calls.Load()
	if _, res, err := run(t, &Server{URLs: []string{url}, Kind: KindVLLM, Model: "org/model-7b"}, data); err != nil || res.Cached != len(sftLines) || s.Calls.Load() != calls {
		t.Errorf("third run: %+v, %v, %d calls", res.ServerProgress, err, s.Calls.Load()-calls)
	}
}

// TestReplicas: examples spread over three servers (each takes jobs once
// its workers queue for them: with more examples than the first replicas'
// starting limits, every one does), and the report is the one server's.
func TestReplicas(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 400 {
		lines = append(lines, fmt.Sprintf(`{"prompt": "Q%d: the capital of France?\n", "response": " Paris %d"}`, i, i%7))
	}
	data := writeFile(t, dir, "sft.jsonl", lines...)
	var urls []string
	var servers []*probetest.Server
	for range 3 {
		s := &probetest.Server{Kind: probetest.SGLang, Capacity: 4, Latency: time.Millisecond}
		servers = append(servers, s)
		urls = append(urls, standin(t, s))
	}
	rep, res, err := run(t, &Server{URLs: urls}, data)
	if err != nil {
		t.Fatal(err)
	}
	toks, meanP := expected(t, probetest.SGLang, strings.Join(lines, "\n"))
	if rep.Tokens != int64(toks) || !near(rep.MeanP, meanP, 1e-12) || len(res.Replicas) != 3 {
		t.Fatalf("%d tokens, mean p %v, %+v", rep.Tokens, rep.MeanP, res)
	}
	total := 0
	for i, r := range res.Replicas {
		total += r.Scored
		if r.Scored == 0 || servers[i].Scored.Load() != int64(r.Scored) {
			t.Errorf("replica %d scored %d (server says %d)", i, r.Scored, servers[i].Scored.Load())
		}
	}
	if total != len(lines) {
		t.Errorf("replicas scored %d of %d", total, len(lines))
	}
}

// TestCacheFormatMismatch: a cache of one server's replies is not mixed
// with another's.
func TestCacheFormatMismatch(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "sft.jsonl", sftLines...)
	cache := filepath.Join(dir, "c.jsonl")
	src, _, err := (&Server{URLs: []string{standin(t, &probetest.Server{Kind: probetest.TGI})}}).Score(context.Background(), data, cache, Options{})
	if err != nil {
		t.Fatal(err)
	}
	src.(io.Closer).Close()
	os.WriteFile(cache, []byte(strings.SplitN(readString(t, cache), "\n", 2)[0]+"\n"), 0o644)
	_, _, err = (&Server{URLs: []string{standin(t, &probetest.Server{Kind: probetest.VLLM})}}).Score(context.Background(), data, cache, Options{})
	if err == nil || !strings.Contains(err.Error(), "holds tgi replies and the server is vllm") {
		t.Fatal(err)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCacheKeys: the key changes with everything that changes the score,
// and a duplicated example on another line counts twice.
func TestCacheKeys(t *testing.T) {
	ex := sftdata.Example{Kind: sftdata.PromptResponse, Prompt: "a", Response: "b", Line: 1}
	sv := &Server{Kind: KindVLLM, Model: "m", TopK: 5}
	k := sv.cacheKey(ex)
	for name, change := range map[string]func(*Server, *sftdata.Example){
		"model": func(s *Server, _ *sftdata.Example) { s.Model = "n" },
		"kind":  func(s *Server, _ *sftdata.Example) { s.Kind = KindSGLang },
		"k":     func(s *Server, _ *sftdata.Example) { s.TopK = 1 },
		"line":  func(_ *Server, e *sftdata.Example) { e.Line = 2 },
		"split": func(_ *Server, e *sftdata.Example) { e.Prompt, e.Response = "ab", "" },
		"chat": func(_ *Server, e *sftdata.Example) {
			e.Kind, e.Prompt, e.Context = sftdata.Chat, "", []sftdata.Message{{Role: "user", Content: "a"}}
		},
	} {
		s2, e2 := *sv, ex
		change(&s2, &e2)
		if s2.cacheKey(e2) == k {
			t.Errorf("%s: same key", name)
		}
	}
	if b, _ := json.Marshal(ex); len(b) == 0 || sv.cacheKey(ex) != k {
		t.Error("the key is not a function of the example")
	}
}
