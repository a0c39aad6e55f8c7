package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/capsel/capsel/probe"
)

// nativeLines makes n native lines whose scored probabilities are known:
// sequence i has p = (i mod 9 + 1)/10 at each of its 3 tokens.
func nativeLines(n int) []string {
	var out []string
	for i := range n {
		lp := math.Log(float64(i%9+1) / 10)
		out = append(out, fmt.Sprintf(`{"id":"s%d","logprobs":[%v,%v,%v]}`, i, lp, lp, lp))
	}
	return out
}

func write(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProbeText(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "in.jsonl", nativeLines(90))
	code, out, errs := runCLI(t, "probe", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Every p from 0.1 to 0.9 equally often: mean 0.5 (intermediate, nearest
	// anchor LLaMA-3.2-3B on medical, 0.50).
	for _, want := range []string{"90 sequences, 270 scored tokens", "mean p (Eq. 5)        0.5000", "model-intermediate",
		"LLaMA-3.2-3B on medical", "histogram of p", "detected format"} {
		if !strings.Contains(out+errs, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, out, errs)
		}
	}
}

// TestProbeJSONAndShards: --json has the documented snake_case fields, and
// shards given as files, as a glob, or as saved reports give the report of
// the concatenated input.
func TestProbeJSONAndShards(t *testing.T) {
	dir := t.TempDir()
	lines := nativeLines(200)
	all := write(t, dir, "all.jsonl", lines)
	os.Mkdir(filepath.Join(dir, "shards"), 0o755)
	a := write(t, dir, "shards/a.jsonl", lines[:70])
	b := write(t, dir, "shards/b.jsonl", lines[70:])
	code, out, errs := runCLI(t, "probe", "--logprobs", all, "--json", "--seed", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(out), &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sequences", "tokens", "mean_p", "mean_p_ci", "mean_logp", "quantiles", "histogram", "share_p_gt_055",
		"share_p_ge_02", "top1_agreement", "mean_q_sq_norm", "seq_mean_p_quantiles", "placement", "region", "reservoir", "sources"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	want, err := probe.ReadReport(strings.NewReader(out), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for _, c := range [][]string{
		{"probe", a, "--logprobs", b, "--json", "--seed", "3"},
		{"probe", "--logprobs", filepath.Join(dir, "shards", "*.jsonl"), "--json", "--seed", "3"},
		{"probe", a, "--out", ra, "--seed", "3"},
		{"probe", b, "--out", rb, "--seed", "3"},
		{"probe", rb, ra, "--json", "--seed", "3"},
	} {
		code, out, errs := runCLI(t, c...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c, code, errs)
		}
		if !strings.Contains(strings.Join(c, " "), "--json") {
			continue
		}
		got, err := probe.ReadReport(strings.NewReader(out), "stdout")
		if err != nil {
			t.Fatal(err)
		}
		got.Sources, want.Sources = nil, nil
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(gj, wj) {
			t.Errorf("%v: report differs from the concatenated input's", c)
		}
	}
}

func TestProbeErrors(t *testing.T) {
	dir := t.TempDir()
	good := write(t, dir, "good.jsonl", nativeLines(3))
	bad := write(t, dir, "bad.jsonl", []string{nativeLines(1)[0], `{"logprobs":[-0.1,NaN]}`, nativeLines(1)[0]})
	for _, c := range []struct {
		args  []string
		code  int
		inErr string
	}{
		{[]string{"probe"}, 2, "give one input"},
		{[]string{"probe", good, "--server", "http://x", "--served-model", "m", "--data", good}, 2, "give one input"},
		{[]string{"probe", good, "--format", "csv"}, 2, "unknown format"},
		{[]string{"probe", good, "--weak-below", "0.8"}, 2, "weak-below < strong-at"},
		{[]string{"probe", good, "--reservoir", "-1"}, 2, "--reservoir"},
		{[]string{"probe", "--server", "http://x", "--data", good}, 2, "--served-model"},
		{[]string{"probe", "--server", "http://x", "--served-model", "m"}, 2, "--data"},
		{[]string{"probe", "--server", "localhost:8000", "--served-model", "m", "--data", good}, 2, "http(s) URL"},
		{[]string{"probe", "--model", "ckpt", "--data", good}, 1, "open ckpt"},
		{[]string{"probe", bad}, 1, "selector: " + bad + ":2: log-prob at position 1 is NaN"},
		{[]string{"probe", filepath.Join(dir, "nothing*.jsonl")}, 1, "no file matches"},
		{[]string{"probe", filepath.Join(dir, "missing.jsonl")}, 1, "no such file"},
	} {
		code, _, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.inErr) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errs, c.code, c.inErr)
		}
	}
	code, out, errs := runCLI(t, "probe", bad, "--skip-bad")
	if code != 0 || !strings.Contains(out, "skipped               1 bad lines") {
		t.Errorf("--skip-bad: exit %d\n%s\n%s", code, out, errs)
	}
}

func TestProbePlot(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "in.jsonl", nativeLines(20))
	plotDir := filepath.Join(dir, "plots")
	if code, _, errs := runCLI(t, "probe", path, "--plot", plotDir); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, name := range []string{"probe-histogram.png", "probe-continuum.png"} {
		if b, err := os.ReadFile(filepath.Join(plotDir, name)); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestProbeServer runs the live mode against a minimal vLLM stand-in that
// gives every token log-prob −0.5, so mean p = e^−0.5 over the response
// tokens (one per character of the response here).
func TestProbeServer(t *testing.T) {
	requests := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		var req struct {
			Prompt string `json:"prompt"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		toks, lps, offs := []string{""}, []any{nil}, []int{0}
		for _, c := range req.Prompt {
			offs = append(offs, utf8.RuneCountInString(strings.Join(toks, "")))
			toks = append(toks, string(c))
			lps = append(lps, -0.5)
		}
		json.NewEncoder(w).Encode(map[string]any{"id": "cmpl-x", "model": "m", "choices": []any{map[string]any{"index": 0, "text": req.Prompt,
			"logprobs": map[string]any{"tokens": toks, "token_logprobs": lps, "top_logprobs": nil, "text_offset": offs}}},
			"usage": map[string]int{"prompt_tokens": len(toks)}})
	}))
	defer ts.Close()
	dir := t.TempDir()
	data := write(t, dir, "sft.jsonl", []string{`{"prompt":"Q: é?","response":" ab"}`, `{"prompt":"Q2:","response":" c"}`})
	cache := filepath.Join(dir, "cache.jsonl")
	args := []string{"probe", "--server", ts.URL, "--served-model", "m", "--data", data, "--cache", cache, "--top-k", "0", "--json"}
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep probe.Report
	json.Unmarshal([]byte(out), &rep)
	if rep.Tokens != 5 || math.Abs(rep.MeanP-math.Exp(-0.5)) > 1e-15 || requests != 2 {
		t.Errorf("%d tokens, mean p %v after %d requests; want 5, e^−0.5, 2", rep.Tokens, rep.MeanP, requests)
	}
	// A second run finds everything in the cache.
	if code, _, errs := runCLI(t, args...); code != 0 || requests != 2 || !strings.Contains(errs, `"cached":2`) {
		t.Errorf("rerun: exit %d after %d requests: %s", code, requests, errs)
	}
}
