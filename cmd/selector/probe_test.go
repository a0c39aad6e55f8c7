package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/probe/probetest"
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
		// The noise-aware section names its inputs' lines (and is dropped
		// from merged saved reports): compared apart.
		if strings.HasSuffix(c[1], ".json") {
			if got.NoiseAware == nil || !strings.Contains(got.NoiseAware.Unavailable, "Probe the inputs together") {
				t.Errorf("%v: noise-aware section %+v; want it dropped with a note", c, got.NoiseAware)
			}
		} else if got.NoiseAware == nil || got.NoiseAware.Sequences != 200 || got.NoiseAware.LeftOut[0].Count != 200 {
			t.Errorf("%v: noise-aware section %+v; want the 200 sequences left out (no top-k lists)", c, got.NoiseAware)
		}
		got.Sources, want.Sources = nil, nil
		got.NoiseAware, want.NoiseAware = nil, nil
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
		{[]string{"probe", "--server", "http://x", "--data", good, "--server-kind", "ollama"}, 2, "--server-kind: unknown server kind"},
		{[]string{"probe", "--server", "http://x", "--data", good, "--concurrency", "-1"}, 2, "--concurrency"},
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

// TestProbeServer scores SFT data on a stand-in vLLM (probe/probetest),
// which adds a BOS and splits é into byte tokens, and checks the report
// against the stand-in's own model; a rerun finds everything cached.
func TestProbeServer(t *testing.T) {
	s := &probetest.Server{Kind: probetest.VLLM, Model: "m"}
	ts := httptest.NewServer(s)
	defer ts.Close()
	dir := t.TempDir()
	data := write(t, dir, "sft.jsonl", []string{`{"prompt":"Q: é?","response":" ab"}`, `{"prompt":"Q2:","response":" c"}`})
	cache := filepath.Join(dir, "cache.jsonl")
	args := []string{"probe", "--server", ts.URL, "--data", data, "--cache", cache, "--top-k", "0", "--json"}
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep probe.Report
	json.Unmarshal([]byte(out), &rep)
	// The responses " ab" and " c" are three and two byte tokens; their p
	// follow from the ids the stand-in's tokenizer gives.
	var tk probetest.Tokenizer
	var m probetest.Model
	want, n := 0.0, 0
	for _, ex := range [][2]string{{"Q: é?", " ab"}, {"Q2:", " c"}} {
		p := probetest.IDs(tk.Encode(ex[0], true))
		ids := append(p, probetest.IDs(tk.Encode(ex[1], false))...)
		for i := len(p); i < len(ids); i++ {
			want += m.P(ids[:i], ids[i])
			n++
		}
	}
	if rep.Tokens != 5 || n != 5 || math.Abs(rep.MeanP-want/5) > 1e-12 || !strings.Contains(errs, `"kind":"vllm"`) || !strings.Contains(errs, `"model":"m"`) {
		t.Errorf("%d tokens, mean p %v; want 5, %v\n%s", rep.Tokens, rep.MeanP, want/5, errs)
	}
	calls := s.Calls.Load()
	// A second run finds everything in the cache and asks the server nothing.
	args = append(args, "--server-kind", "vllm", "--served-model", "m")
	if code, _, errs := runCLI(t, args...); code != 0 || s.Calls.Load() != calls || !strings.Contains(errs, `"examples":2,"null_prompts":2,"cached":4`) {
		t.Errorf("rerun: exit %d after %d more calls: %s", code, s.Calls.Load()-calls, errs)
	}
}

// TestProbeServerClosedPort: nothing listening fails at once, naming the
// URL (issue 10 asks for under 10 s; the preflight's connect timeout is 5 s
// for hosts that do not answer at all).
func TestProbeServerClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	data := write(t, t.TempDir(), "sft.jsonl", []string{`{"prompt":"a","response":"b"}`})
	start := time.Now()
	code, _, errs := runCLI(t, "probe", "--server", url, "--data", data)
	if code != 1 || !strings.Contains(errs, "nothing answers at "+url) {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v", el)
	}
}

// TestProbeReadsOnce: a file named twice (and again through a glob) is
// read once.
func TestProbeReadsOnce(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "in.jsonl", nativeLines(30))
	code, out, errs := runCLI(t, "probe", path, path, filepath.Join(dir, "*.jsonl"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep probe.Report
	json.Unmarshal([]byte(out), &rep)
	if rep.Sequences != 30 || !strings.Contains(errs, "read once") {
		t.Errorf("%d sequences: %s", rep.Sequences, errs)
	}
}

// TestProbeNoiseAwareText: the text report shows the noise-aware section
// under the paper's mean p: Ĉ, Ê, the known share and the token noise with
// their CIs, the method, the null check, the flags and the notes.
func TestProbeNoiseAwareText(t *testing.T) {
	code, out, errs := runCLI(t, "probe", "--model", "demo/base.ckpt", "--data", "demo/sft.jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	i, j := strings.Index(out, "mean p (Eq. 5)"), strings.Index(out, "noise-aware")
	if i < 0 || j < i {
		t.Fatalf("the noise-aware section is missing or above the mean p:\n%s", out)
	}
	for _, s := range []string{"method                greedy", "capability Ĉ", "noise rate Ê", "known share", "token noise", "95% CI",
		"null set              ", "reach the cut", "flagged               "} {
		if !strings.Contains(out[j:], s) {
			t.Errorf("the section lacks %q:\n%s", s, out[j:])
		}
	}
	dir := t.TempDir()
	if code, _, errs := runCLI(t, "probe", "--model", "demo/base.ckpt", "--data", "demo/sft.jsonl", "--plot", dir); code != 0 {
		t.Fatalf("--plot: exit %d: %s", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "probe-confidence.png")); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("probe-confidence.png: %v", err)
	}
	code, out, _ = runCLI(t, "probe", "--model", "demo/base.ckpt", "--data", "demo/sft.jsonl", "--noise-aware=false", "--json")
	if code != 0 || strings.Contains(out, "noise_aware") {
		t.Errorf("--noise-aware=false: exit %d, the report has a noise_aware section", code)
	}
}
