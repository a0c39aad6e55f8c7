package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/capsel/capsel/labelnoise"
)

// step is one target of a label path: p of the label, the first choice's
// probability, whether the label is it.
type step struct {
	p, first float64
	match    bool
}

// paths reads files with the noise-aware analysis on and returns the label
// paths it keeps, one per sequence, and the report.
func paths(t *testing.T, cfg Config, files ...string) ([][]step, *Report) {
	t.Helper()
	cfg.NoiseAware = true
	acc := NewAccumulator(cfg)
	fs, err := OpenFiles(files, Options{}, func(file, format string, _ bool) { acc.AddSource(file, format) })
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if err := acc.Consume(fs); err != nil {
		t.Fatal(err)
	}
	rep, err := acc.Report()
	if err != nil {
		t.Fatal(err)
	}
	ex, _, _ := acc.NoiseExamples()
	var out [][]step
	for _, e := range ex {
		var s []step
		for j := range e.LogP {
			s = append(s, step{math.Exp(e.LogP[j]), e.Top1[j], e.Match[j]})
		}
		out = append(out, s)
	}
	return out, rep
}

// TestLabelPathFixtures: the label path the noise-aware analysis takes from
// each server fixture's top-k lists (testdata/servers/README.md has the
// code and commits they follow): at every response token the label's p,
// the first choice (the largest of the listed log-probs and the label's)
// and whether the label is it. TGI's replies, and vLLM's without top-k,
// are left out with the reason.
func TestLabelPathFixtures(t *testing.T) {
	paris := []step{{0.6, 0.6, true}, {0.2, 0.7, false}} // " Paris" heads its list; "\n" (0.7) beats "."
	rome := []step{{0.7, 0.7, true}, {0.3, 0.6, false}}
	cases := map[string]struct {
		want   [][]step
		reason string
	}{
		"vllm-bos.response_start.jsonl":               {want: [][]step{paris}},
		"vllm-token-ids.response_start.jsonl":         {want: [][]step{paris}},
		"vllm-n2.response_start.jsonl":                {want: [][]step{paris, paris}},
		"vllm-batch.response_start.jsonl":             {want: [][]step{paris, rome}},
		"vllm-sentencepiece.response_start.jsonl":     {want: [][]step{{{0.3, 0.4, false}, {0.8, 0.8, true}, {0.99, 0.99, true}}}},
		"vllm-offline.response_start.jsonl":           {want: [][]step{{{0.6, 0.6, true}, {0, 0.7, false}}}}, // rank 1 lists " The" at 0.3: the first choice is the largest log-prob
		"sglang.response_start.jsonl":                 {want: [][]step{paris}},
		"sglang-batch.response_start.jsonl":           {want: [][]step{paris, rome}},
		"tgi.response_start.jsonl":                    {reason: reasonNoTopTGI},
		"vllm-bytes-replacement.response_start.jsonl": {reason: reasonNoTop},
		"native-python.jsonl":                         {reason: reasonNoTop},
	}
	for name, c := range cases {
		got, rep := paths(t, Config{}, filepath.Join("testdata/servers", name))
		na := rep.NoiseAware
		if c.reason != "" {
			if len(got) != 0 || na.Result != nil || len(na.LeftOut) != 1 || na.LeftOut[0].Reason != c.reason || !strings.Contains(na.Unavailable, c.reason) {
				t.Errorf("%s: %v, %+v; want every sequence left out for %q", name, got, na, c.reason)
			}
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %d label paths, want %d", name, len(got), len(c.want))
			continue
		}
		for i := range got {
			for j := range got[i] {
				g, w := got[i][j], c.want[i][j]
				if !near(g.p, w.p, 1e-12) || !near(g.first, w.first, 1e-12) || g.match != w.match {
					t.Errorf("%s: sequence %d, target %d: %+v, want %+v", name, i, j, g, w)
				}
			}
		}
	}
}

// A native line's top list: a tie between the label and another token
// counts as a match; a position without a list leaves the sequence out;
// "own_answer" carries the model's own answer.
func TestLabelPathNative(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "n.jsonl",
		fmt.Sprintf(`{"logprobs":[%s,%s],"top_logprobs":[{"a":%s,"b":%s},{"c":%s}]}`, lp(0.4), lp(0.1), lp(0.4), lp(0.4), lp(0.5)),
		fmt.Sprintf(`{"logprobs":[%s,%s],"top_logprobs":[{"a":%s},null]}`, lp(0.4), lp(0.1), lp(0.4)),
		fmt.Sprintf(`{"logprobs":[%s],"top_logprobs":[{"a":%s}],"own_answer":{"text":"a","logprobs":[%s, %s],"agree":true}}`, lp(0.4), lp(0.4), lp(0.4), lp(0.9)))
	got, rep := paths(t, Config{}, path)
	want := [][]step{{{0.4, 0.4, true}, {0.1, 0.5, false}}, {{0.4, 0.4, true}}}
	if !reflect.DeepEqual(len(got), len(want)) || !near(got[0][0].first, 0.4, 1e-12) || !got[0][0].match || got[0][1].match || !near(got[0][1].first, 0.5, 1e-12) {
		t.Errorf("label paths %v, want %v", got, want)
	}
	// Line 2 lacks a list; of the others one has an own answer and one
	// not: method greedy, with line 1 left out too.
	na := rep.NoiseAware
	if len(na.LeftOut) != 2 || na.LeftOut[0].Reason != reasonSomeNoTop || na.LeftOut[0].First != path+":2" ||
		na.LeftOut[1].Reason != reasonNoOwn || na.LeftOut[1].First != path+":1" || na.Sequences != 3 {
		t.Errorf("left out %+v of %d; want line 2 for a position without a list, line 1 for no own answer", na.LeftOut, na.Sequences)
	}
	if na.Result == nil || na.Result.Method != labelnoise.Greedy || na.Result.Examples != 1 {
		t.Errorf("result %+v", na)
	}
	if !strings.Contains(strings.Join(na.Result.Notes, " "), "2 of the 3 sequences are left out") {
		t.Errorf("notes %q do not count the sequences left out", na.Result.Notes)
	}
	// Teacher-forced: the own answer is ignored, both analysable sequences
	// count.
	_, rep = paths(t, Config{TeacherForced: true}, path)
	if r := rep.NoiseAware.Result; r == nil || r.Method != labelnoise.TeacherForced || r.Examples != 2 {
		t.Errorf("teacher-forced: %+v", rep.NoiseAware)
	}
}

func TestOwnAnswerErrors(t *testing.T) {
	for _, c := range []struct{ format, line, err string }{
		{Native, `{"logprobs":[-1],"own_answer":{"logprobs":[-1]}}`, `own_answer needs "logprobs" and "agree"`},
		{Native, `{"logprobs":[-1],"own_answer":{"logprobs":[],"agree":true}}`, "own_answer.logprobs is empty"},
		{Native, `{"logprobs":[-1],"own_answer":{"logprobs":[null],"agree":true}}`, "holds a null"},
		{Native, `{"logprobs":[-1],"own_answer":{"logprobs":[0.5],"agree":true}}`, "is not a log-probability"},
		{SGLang, `[{"meta_info":{"input_token_logprobs":[[null,1,"a"],[-1,2,"b"]]},"response_start":1},{"meta_info":{"input_token_logprobs":[[null,1,"a"],[-1,2,"b"]]},"response_start":1,"own_answer":{"logprobs":[-1],"agree":true,"text":"b"}}]`, ""},
	} {
		acc := NewAccumulator(Config{NoiseAware: true})
		src, err := NewReader(strings.NewReader(c.line), "x.jsonl", c.format, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = acc.Consume(src)
		if c.err == "" {
			if err != nil {
				t.Errorf("%s: %v", c.line, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "x.jsonl:1: ") {
			t.Errorf("%s: error %v, want one naming the line and saying %q", c.line, err, c.err)
		}
	}
	// An own answer cannot stand for several sequences of one line.
	line := `{"choices":[{"index":0,"logprobs":{"tokens":["a","b"],"token_logprobs":[null,-1],"text_offset":[0,1]}},{"index":1,"logprobs":{"tokens":["a","b"],"token_logprobs":[null,-1],"text_offset":[0,1]}}],"usage":{"prompt_tokens":2,"completion_tokens":0},"response_start":1,"own_answer":{"logprobs":[-1],"agree":true}}`
	if _, err := readAll(t, VLLMEcho, line, Options{}); err == nil || !strings.Contains(err.Error(), "several sequences") {
		t.Errorf("own_answer on two choices: %v", err)
	}
}

// noiseLines writes a native file of n examples of the given kind, each of
// three targets, with top-k lists, the model's own answer when own.
func noiseLines(kind string, n int, own bool) []string {
	var out []string
	for i := range n {
		var l, top, first string
		var ownLP float64
		agree := false
		switch kind {
		case "known": // reproduced: label = first choice, p 0.9
			l, first, ownLP, agree = lp(0.9), lp(0.9), 0.9, true
			top = fmt.Sprintf(`{"x":%s}`, first)
		case "wrong": // the model knows something else: first choice 0.95, label 0.02
			l, first, ownLP = lp(0.02), lp(0.95), 0.95
			top = fmt.Sprintf(`{"y":%s}`, first)
		case "unknown": // unsure: first choice 0.3, label 0.1
			l, first, ownLP = lp(0.1), lp(0.3), 0.3
			top = fmt.Sprintf(`{"z":%s}`, first)
		}
		line := fmt.Sprintf(`{"id":"%s-%d","logprobs":[%s,%s,%s],"top_logprobs":[%s,%s,%s]`, kind, i, l, l, l, top, top, top)
		if own {
			line += fmt.Sprintf(`,"own_answer":{"text":"ans","logprobs":[%s,%s,%s,%s],"agree":%v}`, lp(ownLP), lp(ownLP), lp(ownLP), lp(ownLP), agree)
		}
		out = append(out, line+"}")
	}
	return out
}

// The noise-aware section is labelnoise.Analyze on the label paths the
// files give, with the null set from --null files: here computed both
// ways, through the probe and by hand from the same numbers.
func TestNoiseAwareFromFiles(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	lines = append(lines, noiseLines("known", 60, false)...)
	lines = append(lines, noiseLines("wrong", 15, false)...)
	lines = append(lines, noiseLines("unknown", 25, false)...)
	data := writeFile(t, dir, "data.jsonl", lines...)
	null := writeFile(t, dir, "null.jsonl", noiseLines("unknown", 30, false)...)

	acc := NewAccumulator(Config{NoiseAware: true, Seed: 3})
	for _, p := range []struct {
		path string
		null bool
	}{{data, false}, {null, true}} {
		fs, err := OpenFiles([]string{p.path}, Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.null {
			err = acc.ConsumeNull(fs)
		} else {
			err = acc.Consume(fs)
		}
		fs.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	rep, err := acc.Report()
	if err != nil {
		t.Fatal(err)
	}
	got := rep.NoiseAware.Result
	// By hand: the same examples built directly.
	mk := func(p, first float64, match bool) labelnoise.Example {
		var e labelnoise.Example
		for range 3 {
			e.LogP, e.Top1, e.Match = append(e.LogP, math.Log(p)), append(e.Top1, first), append(e.Match, match)
		}
		return e
	}
	var ex, nl []labelnoise.Example
	for range 60 {
		ex = append(ex, mk(0.9, 0.9, true))
	}
	for range 15 {
		ex = append(ex, mk(0.02, 0.95, false))
	}
	for range 25 {
		ex = append(ex, mk(0.1, 0.3, false))
	}
	for range 30 {
		nl = append(nl, mk(0.1, 0.3, false))
	}
	want, err := labelnoise.Analyze(ex, nl, labelnoise.TeacherForced, labelnoise.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != labelnoise.TeacherForced || len(got.Flags) != 15 || got.Null == nil || got.Null.Prompts != 30 {
		t.Fatalf("result %+v", got)
	}
	for k, f := range got.Flags {
		if f.ID != fmt.Sprintf("%s:%d", data, 61+k) || f.Index != 60+k {
			t.Errorf("flag %d names %s (index %d), want line %d", k, f.ID, f.Index, 61+k)
		}
	}
	if math.Abs(got.Noise.Value-15.0/75) > 1e-12 || !near(got.Capability.Value, want.Capability.Value, 1e-12) || got.Capability.CI != want.Capability.CI ||
		*got.Noise != *want.Noise || *got.Known != *want.Known {
		t.Errorf("probe: Ĉ %+v Ê %+v known %+v; by hand: %+v %+v %+v", got.Capability, got.Noise, got.Known, want.Capability, want.Noise, want.Known)
	}
	if rep.NoiseAware.Sequences != 100 || rep.NoiseAware.NullSequences != 30 || len(rep.NoiseAware.FlagRefs) != 15 || rep.NoiseAware.FlagRefs[0].Record != 61 {
		t.Errorf("counts %+v", rep.NoiseAware)
	}

	// Without a null set the analysis runs and says so.
	_, rep = paths(t, Config{}, data)
	if notes := strings.Join(rep.NoiseAware.Result.Notes, " "); !strings.Contains(notes, "No null set") || !strings.Contains(notes, "--null") {
		t.Errorf("no null set: notes %q", notes)
	}

	// Saved reports: one passes its section through; merged, it is dropped
	// with a note.
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(dir, "a.report.json")
	os.WriteFile(saved, buf.Bytes(), 0o644)
	one := mergeReports(t, saved)
	if one.NoiseAware == nil || one.NoiseAware.Result == nil || one.NoiseAware.Result.Capability != rep.NoiseAware.Result.Capability || len(one.NoiseAware.Result.Flags) != 15 {
		t.Errorf("one saved report: %+v", one.NoiseAware)
	}
	two := mergeReports(t, saved, saved)
	if two.NoiseAware == nil || two.NoiseAware.Result != nil || !strings.Contains(two.NoiseAware.Unavailable, "Probe the inputs together") {
		t.Errorf("two saved reports: %+v", two.NoiseAware)
	}
}

func mergeReports(t *testing.T, paths ...string) *Report {
	t.Helper()
	acc := NewAccumulator(Config{NoiseAware: true})
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ReadReport(f, p)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := acc.AddReport(rep); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := acc.Report()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The report's JSON names of the noise-aware section are stable and snake
// case (the README lists them).
func TestNoiseAwareJSONNames(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	lines = append(lines, noiseLines("known", 30, true)...)
	lines = append(lines, noiseLines("wrong", 5, true)...)
	lines = append(lines, noiseLines("unknown", 5, true)...)
	_, rep := paths(t, Config{}, writeFile(t, dir, "d.jsonl", lines...))
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var na map[string]json.RawMessage
	if err := json.Unmarshal(doc["noise_aware"], &na); err != nil {
		t.Fatal(err)
	}
	want := []string{"method", "examples", "agree", "cut", "capability", "raw_mean_p", "noise", "known", "token_noise", "token_cut",
		"null", "flags", "notes", "sequences", "left_out", "null_sequences", "null_left_out", "confidence"}
	var keys []string
	for k := range na {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("noise_aware keys %v, want %v", keys, want)
	}
	var flags []map[string]any
	json.Unmarshal(na["flags"], &flags)
	var est map[string]any
	json.Unmarshal(na["capability"], &est)
	if len(flags) != 5 || flags[0]["own_answer"] != "ans" || flags[0]["id"] == nil || flags[0]["confidence"] == nil || flags[0]["reason"] == nil ||
		est["value"] == nil || est["ci"] == nil {
		t.Errorf("flags %v, capability %v", flags, est)
	}
	if m := string(na["method"]); m != `"greedy"` {
		t.Errorf("method %s", m)
	}
}

// Record numbers count non-blank lines over the files in order, so that a
// log-prob line can be matched to an SFT line; bad lines count too.
func TestRecords(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.jsonl", `{"logprobs":[-1]}`, "", `{"logprobs":[-2]}`)
	b := writeFile(t, dir, "b.jsonl", "", `{"bad"}`, `{"logprobs":[-3]}`)
	for _, workers := range []int{1, 2} {
		fs, err := OpenFiles([]string{a, b}, Options{Workers: workers, Format: Native}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var recs []int
		for {
			seq, err := fs.Next()
			if err != nil && !IsLineError(err) {
				break
			}
			if err == nil {
				recs = append(recs, seq.Record)
			}
		}
		fs.Close()
		if !slices.Equal(recs, []int{1, 2, 4}) || fs.Records() != 4 {
			t.Errorf("workers %d: records %v of %d, want [1 2 4] of 4", workers, recs, fs.Records())
		}
	}
}
