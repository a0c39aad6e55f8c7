package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/probe/probetest"
)

// readFlagged reads a flagged file's records.
func readFlagged(t *testing.T, path string) []probe.FlaggedRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []probe.FlaggedRecord
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var r probe.FlaggedRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}

// checkClean checks that clean holds the lines of data not in flagged,
// byte for byte, and that each flagged record is its data line.
func checkClean(t *testing.T, data, clean string, flagged []probe.FlaggedRecord) {
	t.Helper()
	in, _ := os.ReadFile(data)
	out, _ := os.ReadFile(clean)
	lines := strings.SplitAfter(string(in), "\n")
	drop := map[int]bool{}
	for _, r := range flagged {
		drop[r.DataLine] = true
		var got, want any
		json.Unmarshal(r.Example, &got)
		json.Unmarshal([]byte(lines[r.DataLine-1]), &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("flagged line %d holds %s, the data %s", r.DataLine, r.Example, lines[r.DataLine-1])
		}
	}
	var want strings.Builder
	for i, l := range lines {
		if !drop[i+1] {
			want.WriteString(l)
		}
	}
	if string(out) != want.String() {
		t.Errorf("%s is not the data without the flagged lines", clean)
	}
}

// files lists a directory's names.
func files(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestCleanModel: on the demo checkpoint and its data, clean writes the
// data without the flagged lines and the flagged lines with their reason,
// own answer and confidence; the input is untouched, no temporary file is
// left, and --json carries the summary.
func TestCleanModel(t *testing.T) {
	dir := t.TempDir()
	demoData, _ := os.ReadFile("demo/sft.jsonl")
	data := filepath.Join(dir, "sft.jsonl")
	os.WriteFile(data, demoData, 0o644)
	out := filepath.Join(dir, "sft.clean.jsonl")
	code, stdout, errs := runCLI(t, "clean", "--model", "demo/base.ckpt", "--data", data, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if after, _ := os.ReadFile(data); !bytes.Equal(after, demoData) {
		t.Fatal("the input changed")
	}
	flagged := readFlagged(t, filepath.Join(dir, "sft.clean.flagged.jsonl"))
	if len(flagged) == 0 {
		t.Fatal("nothing flagged on the demo")
	}
	checkClean(t, data, out, flagged)
	for _, r := range flagged {
		if r.OwnAnswer == "" || r.Confidence <= 0 || !strings.Contains(r.Reason, "the model answers") || r.ID != fmt.Sprintf("%s:%d", data, r.DataLine) {
			t.Errorf("flagged record %+v", r)
		}
	}
	var sum struct {
		Lines, Kept, Flagged int
		NoiseAware           struct {
			Method string
			Flags  []json.RawMessage
			Noise  *struct{ Value float64 }
		} `json:"noise_aware"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Lines != 120 || sum.Kept+sum.Flagged != 120 || sum.Flagged != len(flagged) ||
		sum.NoiseAware.Method != "greedy" || len(sum.NoiseAware.Flags) != len(flagged) || sum.NoiseAware.Noise == nil {
		t.Errorf("summary %s (%v)", stdout, err)
	}
	if names := files(t, dir); !slices.Equal(names, []string{"sft.clean.flagged.jsonl", "sft.clean.jsonl", "sft.jsonl"}) {
		t.Errorf("the directory holds %v", names)
	}
	// The text summary: flagged count, Ê with its CI, where it wrote.
	code, stdout, _ = runCLI(t, "clean", "--model", "demo/base.ckpt", "--data", data, "--out", out, "--flagged", filepath.Join(dir, "f.jsonl"))
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("clean: %d of 120 examples flagged (method greedy)", len(flagged))) ||
		!strings.Contains(stdout, "noise rate Ê") || !strings.Contains(stdout, "95% CI") || !strings.Contains(stdout, "f.jsonl") {
		t.Errorf("text summary (exit %d):\n%s", code, stdout)
	}
}

// noisyLogprobs writes an SFT file and a native log-prob file scored on it
// line by line (the SFT file has a blank line, which the log-prob file has
// not: they are matched by example, not by line number), with top-k lists:
// 30 labels the model reproduces (p 0.9), 8 it contradicts (its first
// choice 0.95, the label 0.02) and 12 it does not know (first choice 0.3).
func noisyLogprobs(t *testing.T, dir string) (data, lp string, wrong []int) {
	t.Helper()
	var sft, lps []string
	line := 0
	for i := range 50 {
		if i == 10 {
			sft = append(sft, "")
			line++
		}
		sft = append(sft, fmt.Sprintf(`{"prompt": "q%d", "response": "a%d"}`, i, i))
		line++
		p, first := 0.9, 0.9
		switch {
		case i%6 == 5 && i < 48:
			p, first = 0.02, 0.95
			wrong = append(wrong, line)
		case i >= 38:
			p, first = 0.1, 0.3
		}
		l, f := math.Log(p), math.Log(first)
		lps = append(lps, fmt.Sprintf(`{"logprobs":[%v,%v],"top_logprobs":[{"t":%v},{"t":%v}]}`, l, l, f, f))
	}
	return write(t, dir, "sft.jsonl", sft), write(t, dir, "lp.jsonl", lps), wrong
}

// TestCleanLogprobs: log-prob files are matched to the SFT file by example;
// the flagged lines are the contradicted labels.
func TestCleanLogprobs(t *testing.T) {
	dir := t.TempDir()
	data, lp, wrong := noisyLogprobs(t, dir)
	out := filepath.Join(dir, "clean.jsonl")
	code, stdout, errs := runCLI(t, "clean", "--logprobs", lp, "--data", data, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	flagged := readFlagged(t, filepath.Join(dir, "clean.flagged.jsonl"))
	var lines []int
	for _, r := range flagged {
		lines = append(lines, r.DataLine)
	}
	if !slices.Equal(lines, wrong) || !strings.Contains(stdout, "method teacher-forced") {
		t.Errorf("flagged lines %v, want %v\n%s", lines, wrong, stdout)
	}
	checkClean(t, data, out, flagged)

	// A log-prob file that does not line up with the data is refused.
	short := write(t, dir, "short.jsonl", strings.Split(strings.TrimSpace(string(must(os.ReadFile(lp)))), "\n")[:40])
	code, _, errs = runCLI(t, "clean", "--logprobs", short, "--data", data, "--out", filepath.Join(dir, "x.jsonl"))
	if code != 1 || !strings.Contains(errs, "hold 40 lines and "+data+" 50 examples") || slices.Contains(files(t, dir), "x.jsonl") {
		t.Errorf("misaligned: exit %d: %s", code, errs)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Clean refuses what it cannot do, and writes nothing then.
func TestCleanRefuses(t *testing.T) {
	dir := t.TempDir()
	data, lp, _ := noisyLogprobs(t, dir)
	noTop := write(t, dir, "notop.jsonl", nativeLines(50))
	rep := filepath.Join(dir, "r.json")
	if code, _, errs := runCLI(t, "probe", lp, "--out", rep); code != 0 {
		t.Fatal(errs)
	}
	// Prompts the demo model has never seen: it reproduces none of them.
	var unknown []string
	for i := range 40 {
		unknown = append(unknown, fmt.Sprintf(`{"prompt": "zz%c%c=", "response": "qqqq"}`, 'a'+i%26, 'a'+i/26))
	}
	udata := write(t, dir, "unknown.jsonl", unknown)
	before := files(t, dir)
	out := filepath.Join(dir, "out.jsonl")
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--logprobs", lp, "--data", data, "--out", data}, 2, "is an input"},
		{[]string{"--logprobs", lp, "--data", data, "--out", lp}, 2, "is an input"},
		{[]string{"--logprobs", lp, "--data", data, "--out", out, "--flagged", data}, 2, "is an input"},
		{[]string{"--logprobs", lp, "--data", data, "--out", out, "--flagged", out}, 2, "name the same file"},
		{[]string{"--logprobs", lp, "--data", data}, 2, "--out CLEAN.jsonl is required"},
		{[]string{"--logprobs", lp, "--out", out}, 2, "--data SFT.jsonl is required"},
		{[]string{"--logprobs", lp, "--data", data, "--out", out, "--noise-aware=false"}, 2, "needs the noise-aware probe"},
		{[]string{"--logprobs", noTop, "--data", data, "--out", out}, 1, "nothing written: None of the 50 sequences can be analysed: 50 for no top-k lists"},
		{[]string{"--logprobs", rep, "--data", data, "--out", out}, 1, "not saved reports"},
		{[]string{"--model", "demo/base.ckpt", "--data", udata, "--out", out}, 1, "nothing written: no usable cut. The model reproduces only"},
	} {
		code, _, errs := runCLI(t, append([]string{"clean"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d, %s; want exit %d and %q", c.args, code, errs, c.code, c.msg)
		}
		if after := files(t, dir); !slices.Equal(after, before) {
			t.Errorf("%v: the directory holds %v, before %v", c.args, after, before)
		}
	}
}

// TestCleanServer: on a stand-in vLLM that knows some answers (probetest
// facts), clean flags exactly the labels that contradict them.
func TestCleanServer(t *testing.T) {
	var facts []probetest.Fact
	var lines []string
	var wrong []int
	for i := range 24 {
		p := fmt.Sprintf("Q%d: the capital of France?\n", i)
		facts = append(facts, probetest.Fact{Prompt: p, Answer: " Paris"})
		label := " Paris"
		if i%6 == 0 {
			label, wrong = " Rome", append(wrong, i+1)
		}
		lines = append(lines, fmt.Sprintf(`{"prompt": %q, "response": %q}`, p, label))
	}
	ts := httptest.NewServer(&probetest.Server{Kind: probetest.VLLM, Model: "m", Facts: facts})
	defer ts.Close()
	dir := t.TempDir()
	data := write(t, dir, "sft.jsonl", lines)
	out := filepath.Join(dir, "clean.jsonl")
	code, _, errs := runCLI(t, "clean", "--server", ts.URL, "--data", data, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	flagged := readFlagged(t, filepath.Join(dir, "clean.flagged.jsonl"))
	var got []int
	for _, r := range flagged {
		got = append(got, r.DataLine)
		if r.OwnAnswer != " Paris" {
			t.Errorf("line %d: own answer %q", r.DataLine, r.OwnAnswer)
		}
	}
	if !slices.Equal(got, wrong) {
		t.Errorf("flagged %v, want %v", got, wrong)
	}
	checkClean(t, data, out, flagged)
}
