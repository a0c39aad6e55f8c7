package probe

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGreedyFixtures serves each greedy reply of testdata/greedy (built from
// the servers' code; its README cites file and commit) to the client's
// greedy request and checks the own answer it reads.
func TestGreedyFixtures(t *testing.T) {
	label := []int{12366, 13} // " Paris", "."
	p := func(x float64) float64 { return math.Log(x) }
	cases := []struct {
		file  string
		kind  ServerKind
		ids   []int
		lps   []float64
		agree bool
		err   string
	}{
		{"vllm.json", KindVLLM, []int{12366, 13, 128001}, []float64{p(0.6), p(0.7), p(0.9)}, true, ""},
		{"vllm-no-token-ids.json", KindVLLM, []int{12366, 13, 128001}, []float64{p(0.6), p(0.7), p(0.9)}, true, ""},
		{"vllm-printed-tokens.json", KindVLLM, nil, nil, false, "neither token_ids nor token_id:N tokens"},
		{"sglang.json", KindSGLang, []int{22463, 13}, []float64{p(0.8), p(0.5)}, false, ""},
		{"tgi.json", KindTGI, []int{12366, 13, 128001}, []float64{p(0.6), p(0.7), p(0.9)}, true, ""},
	}
	for _, c := range cases {
		reply, err := os.ReadFile(filepath.Join("testdata", "greedy", c.file))
		if err != nil {
			t.Fatal(err)
		}
		var body string
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := make([]byte, 1<<12)
			n, _ := r.Body.Read(b)
			body = string(b[:n])
			w.Header().Set("Content-Type", "application/json")
			w.Write(reply)
		}))
		sv := (&Server{URLs: []string{ts.URL}}).defaults()
		rp := &replica{url: ts.URL, kind: c.kind, model: "m"}
		count := func(bool) {}
		var own *ownAnswerJSON
		switch c.kind {
		case KindVLLM:
			own, err = sv.greedyVLLM(context.Background(), rp, []int{128000, 48}, label, false, count)
		case KindSGLang:
			own, err = sv.greedySGLang(context.Background(), rp, []int{128000, 48}, label, false, count)
		case KindTGI:
			own, err = sv.greedyTGI(context.Background(), rp, "Q: capital of France?\nA:", label, false, count)
		}
		ts.Close()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !isFatal(err) {
				t.Errorf("%s: error %v, want a fatal one saying %q", c.file, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if !slices.Equal(own.TokenIDs, c.ids) || own.Agree != c.agree || len(own.LogProbs) != len(c.lps) {
			t.Errorf("%s: answer %+v; want ids %v, agree %v", c.file, own, c.ids, c.agree)
			continue
		}
		for k := range c.lps {
			if !near(own.LogProbs[k], c.lps[k], 1e-12) {
				t.Errorf("%s: token %d: log-prob %v, want %v", c.file, k, own.LogProbs[k], c.lps[k])
			}
		}
		// The request asks for at most the label's length plus one tokens,
		// greedily.
		want := map[ServerKind][]string{KindVLLM: {`"max_tokens":3`, `"temperature":0`, `"repetition_penalty":1`},
			KindSGLang: {`"max_new_tokens":3`, `"temperature":0`, `"repetition_penalty":1`},
			KindTGI:    {`"max_new_tokens":3`, `"do_sample":false`}}[c.kind]
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: the request %s lacks %s", c.file, body, w)
			}
		}
	}
}

// An answer longer than asked for, or without log-probs, is a bad reply
// (retried).
func TestOwnAnswerChecks(t *testing.T) {
	lp := -0.5
	if _, err := own("x", []int{1, 2, 3}, []*float64{&lp, &lp, &lp}, []int{1}, 2, "length"); err == nil || !retryable(err) {
		t.Errorf("too long: %v", err)
	}
	if _, err := own("x", []int{1, 2}, []*float64{&lp, nil}, []int{1}, 2, "length"); err == nil || !retryable(err) {
		t.Errorf("a null log-prob: %v", err)
	}
	if _, err := own("", nil, nil, []int{1}, 2, "length"); err == nil {
		t.Error("an empty answer was taken")
	}
	if a, err := own("x", []int{1}, []*float64{&lp}, []int{1, 2}, 3, "stop"); err != nil || a.Agree {
		t.Errorf("an answer shorter than the label: %+v, %v", a, err)
	}
}
