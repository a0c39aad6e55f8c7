package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
)

var update = flag.Bool("update", false, "rewrite the golden help files in testdata/help")

// runCLI runs the program in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args    []string
		code    int
		inErr   string // substring of stderr
		inOut   string // substring of stdout
		comment string
	}{
		{nil, 2, "usage: selector", "", "no command"},
		{[]string{"help"}, 0, "", "Commands:", "help"},
		{[]string{"-h"}, 0, "", "Commands:", "-h"},
		{[]string{"recomend"}, 2, "Did you mean 'selector recommend'?", "", "typo in command"},
		{[]string{"objectives"}, 2, "missing subcommand", "", ""},
		{[]string{"objectives", "lst"}, 2, `did you mean "list"?`, "", ""},
		{[]string{"objectives", "show", "GeneralFamly-10"}, 2, "did you mean GeneralFamily-10", "", "bad spec"},
		{[]string{"objectives", "show", "nll", "--pp", "0.5"}, 2, "unknown flag --pp (did you mean --p?)", "", "bad flag"},
		{[]string{"objectives", "show", "nll", "--p", "1.5"}, 2, "not a probability", "", ""},
		{[]string{"objectives", "show", "-h"}, 0, "", "usage: selector objectives show", ""},
		{[]string{"theory", "ends", "--objective", "p", "--vocab", "1"}, 2, "--vocab", "", ""},
		{[]string{"theory", "ends", "--objective", "auto", "--vocab", "10"}, 2, "chosen during training", "", ""},
		{[]string{"theory", "rate", "--contexts", "/nonexistent/ctx.jsonl"}, 1, "selector: open /nonexistent/ctx.jsonl", "", "runtime error"},
		{[]string{"--log-level", "loud", "objectives", "list"}, 2, "--log-level", "", ""},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.inErr) || !strings.Contains(out, c.inOut) {
			t.Errorf("%v (%s): exit %d, stdout %q, stderr %q; want exit %d, stderr ∋ %q, stdout ∋ %q",
				c.args, c.comment, code, out, errs, c.code, c.inErr, c.inOut)
		}
	}
}

func TestObjectivesShowJSON(t *testing.T) {
	code, out, errs := runCLI(t, "objectives", "show", "GeneralFamily-10", "--p", "0.5,0.9", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got showJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bad JSON %q: %v", out, err)
	}
	if got.Spec != "GeneralFamily-10" || got.Class != "prior-leaning" || len(got.Points) != 2 {
		t.Fatalf("got %+v", got)
	}
	// Closed forms: f = (1 − p^10)/10, s = p^10, W = p^10(1 − p).
	for _, pt := range got.Points {
		p := pt.P
		want := [3]float64{(1 - math.Pow(p, 10)) / 10, math.Pow(p, 10), math.Pow(p, 10) * (1 - p)}
		for i, g := range []*float64{pt.F, pt.S, pt.W} {
			if g == nil || math.Abs(*g-want[i]) > 1e-15 {
				t.Errorf("p = %v: value %d = %v, want %v", p, i, g, want[i])
			}
		}
	}
	// Every spec form agrees with the package's functions through the CLI.
	for _, s := range []string{"nll", "original", "p", "OnlyTopLogP-0.2", "dft", "log1mp", "focal-2", "blend-0.3", "OnlyBottomP-0.4"} {
		code, out, _ := runCLI(t, "objectives", "show", s, "--json")
		var sj showJSON
		if code != 0 || json.Unmarshal([]byte(out), &sj) != nil {
			t.Fatalf("%s: exit %d %q", s, code, out)
		}
		o := objectives.MustParse(s)
		for _, pt := range sj.Points {
			if pt.F == nil || *pt.F != o.F(pt.P) || *pt.S != o.S(pt.P) || *pt.W != o.W(pt.P) {
				t.Errorf("%s at p = %v: %+v", s, pt.P, pt)
			}
		}
	}
	// Several specs give a list; --plot writes a PNG.
	png := filepath.Join(t.TempDir(), "w.png")
	code, out, errs = runCLI(t, "objectives", "show", "nll", "p", "auto", "--json", "--plot", png)
	var list []showJSON
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 3 || list[2].Class != "adaptive" {
		t.Fatalf("exit %d, %q, %s", code, out, errs)
	}
	if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("plot not written as PNG: %v", err)
	}
}

// TestObjectivesShowClass: the class line says what decided the class, so
// that a thresholded objective classed prior-leaning with most of its W
// below 0.5 is not read as a contradiction.
func TestObjectivesShowClass(t *testing.T) {
	for _, c := range []struct{ spec, class, by, text string }{
		{"OnlyTopLogP-0.2", "prior-leaning", "threshold", "prior-leaning, by its threshold: it drops every token with p < 0.2"},
		{"OnlyBottomP-0.5", "prior-averse", "threshold", "prior-averse, by its threshold: it keeps only tokens with p ≤ 0.5"},
		{"GeneralFamily-0.5", "prior-averse", "weight", "class: prior-averse (38.1% of the gradient weight W sits on p ≥ 0.5"},
		{"p", "prior-leaning", "weight", "class: prior-leaning (50.0% of the gradient weight W"},
	} {
		code, out, errs := runCLI(t, "objectives", "show", c.spec)
		if code != 0 || !strings.Contains(out, c.text) {
			t.Errorf("%s: exit %d %s\n%s; want %q", c.spec, code, errs, out, c.text)
		}
		var sj showJSON
		code, out, _ = runCLI(t, "objectives", "show", c.spec, "--json")
		if code != 0 || json.Unmarshal([]byte(out), &sj) != nil || sj.Class != c.class || sj.ClassBy != c.by {
			t.Errorf("%s --json: class %q by %q, want %q by %q", c.spec, sj.Class, sj.ClassBy, c.class, c.by)
		}
	}
}

func TestTheoryCommands(t *testing.T) {
	code, out, errs := runCLI(t, "theory", "lemma", "--json")
	var lem map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &lem) != nil {
		t.Fatalf("lemma: exit %d %q %s", code, out, errs)
	}
	// The bar: reproduce (11√33 − 59)/768 to 1e-6.
	if e := lem["abs_error"].(float64); e > 1e-6 {
		t.Errorf("lemma abs_error = %v", e)
	}

	code, out, _ = runCLI(t, "theory", "ends", "--objective", "p", "--vs", "nll", "--vocab", "100", "--noise", "0.1", "--json")
	var ends endsJSON
	if code != 0 || json.Unmarshal([]byte(out), &ends) != nil {
		t.Fatalf("ends: exit %d %q", code, out)
	}
	// (s_p − s_nll)(1/V)·[(V − 1)(1 − E) − E]/V² = (0.01 − 1)(99·0.9 − 0.1)/10⁴.
	if want := (0.01 - 1) * (99*0.9 - 0.1) / 1e4; math.Abs(ends.Delta-want) > 1e-15 || ends.Winner != "nll" || *ends.Crossover != 0.99 {
		t.Errorf("ends = %+v, want Δ %v, winner nll, E* 0.99", ends, want)
	}

	dir := t.TempDir()
	ctx := filepath.Join(dir, "ctx.jsonl")
	lines := `{"q":[0.6,0.3,0.05,0.05],"label":0}
{"q":[0.5,0.4,0.05,0.05],"label":1}
{"top":{"a":-0.2,"b":-2},"label":"a","vocab":1000}
`
	if err := os.WriteFile(ctx, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "theory", "crossover", "--objective", "p", "--vs", "nll", "--contexts", ctx, "--json")
	var cx crossoverJSON
	if code != 0 || json.Unmarshal([]byte(out), &cx) != nil {
		t.Fatalf("crossover: exit %d %q %s", code, out, errs)
	}
	cs, _ := theory.ReadContexts(strings.NewReader(lines), "x", 0)
	cmp, _ := theory.Compare(objectives.P(), objectives.NLL(), cs, theory.NoiseModel{})
	if cx.Crossover == nil || *cx.Crossover != cmp.Crossover || cx.A == nil || *cx.A != cmp.A || !cx.RemainderB {
		t.Errorf("crossover JSON %+v disagrees with the library %+v", cx, cmp)
	}
	code, out, _ = runCLI(t, "theory", "rate", "--objective", "nll,p,GeneralFamily-10", "--contexts", ctx, "--noise", "0.2")
	if code != 0 || !strings.Contains(out, "RATE/‖∇L‖") || !strings.Contains(out, "unlisted mass is spread") {
		t.Errorf("rate text: exit %d %q", code, out)
	}
	testTheoryGated(t, ctx, lines)
}

// testTheoryGated: the trainers' objectives rank beside the paper's, with
// the library's numbers and a note on where the paper does not cover them;
// a gate that cannot run on the input is an error, not a number.
func testTheoryGated(t *testing.T, ctx, lines string) {
	code, out, errs := runCLI(t, "theory", "rate", "--objective", "nll,deft,asft-0.1,Cayley_Trans,eaft-axolotl-1-2", "--contexts", ctx, "--noise", "0.2", "--json")
	var rj rateJSON
	if code != 0 || json.Unmarshal([]byte(out), &rj) != nil || len(rj.Ranking) != 5 {
		t.Fatalf("rate of gated objectives: exit %d %q %s", code, out, errs)
	}
	cs, _ := theory.ReadContexts(strings.NewReader(lines), "x", 0)
	for _, r := range rj.Ranking {
		o := objectives.MustParse(r.Objective)
		est, err := theory.EstimateRate(o, cs, theory.NoiseModel{E: 0.2})
		if err != nil || r.Rate != est.Rate || (r.Scope == "") != o.OfP() {
			t.Errorf("%s: JSON %+v, library %+v (%v)", r.Objective, r, est, err)
		}
	}
	code, out, _ = runCLI(t, "theory", "rate", "--objective", "p,asft-0.1", "--contexts", ctx)
	if code != 0 || !strings.Contains(out, "note: asft-0.1: first order at the start only") {
		t.Errorf("rate text for asft: exit %d %q", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"theory", "rate", "--objective", "eaft-1", "--contexts", ctx}, 1, "eaft-axolotl-1-4"},
		{[]string{"theory", "ends", "--objective", "eaft-1", "--vocab", "10"}, 2, "eaft-axolotl-1-10"},
	} {
		code, _, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q, want exit %d mentioning %q", c.args, code, errs, c.code, c.want)
		}
	}
	code, out, _ = runCLI(t, "theory", "ends", "--objective", "eaft-1", "--vocab", "1000", "--json")
	var ends endsJSON
	// At uniform q the top-20 entropy is log 20: Δ = (log 20/3 − 1)·(V − 1)/V².
	if want := (math.Log(20)/3 - 1) * 999 / 1e6; code != 0 || json.Unmarshal([]byte(out), &ends) != nil || math.Abs(ends.Delta-want) > 1e-15 || ends.Crossover == nil {
		t.Errorf("ends eaft-1: exit %d %+v, want Δ %v", code, ends, want)
	}
}

// TestHelpExitsZero: help that is asked for — -h, --help, -help or 'help'
// — goes to stdout and exits 0, for the program and for every command; a
// missing command prints the usage to stderr and exits 2.
func TestHelpExitsZero(t *testing.T) {
	forms := [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}, {"--log-level", "warn", "-h"}}
	for _, c := range commands() {
		forms = append(forms, []string{c.name, "-h"}, []string{c.name, "--help"}, []string{c.name, "-help"}, []string{"help", c.name})
	}
	for _, args := range forms {
		code, out, errs := runCLI(t, args...)
		if code != 0 || out == "" || errs != "" {
			t.Errorf("%v: exit %d, %d bytes on stdout, stderr %q; want exit 0 and the manual on stdout only", args, code, len(out), errs)
		}
	}
	if code, out, errs := runCLI(t); code != 2 || out != "" || !strings.Contains(errs, "usage: selector") {
		t.Errorf("no command: exit %d, stdout %q; want exit 2 and the usage on stderr", code, out)
	}
}

// TestRuntimeErrorsExit1: a command that fails at run time (here, on a
// file that does not exist) exits 1 with one "selector: " line naming the
// file, and prints no usage.
func TestRuntimeErrorsExit1(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, args := range [][]string{
		{"recommend", missing},
		{"probe", "--logprobs", missing},
		{"theory", "rate", "--contexts", missing},
		{"train", "--data", missing, "--out", filepath.Join(t.TempDir(), "run")},
		{"eval", "--model", missing, "--data", missing},
		{"train", "--config", missing, "--out", filepath.Join(t.TempDir(), "run")},
	} {
		code, _, errs := runCLI(t, args...)
		if code != 1 || !strings.HasPrefix(errs, "selector: ") || !strings.Contains(errs, missing) || strings.Contains(errs, "usage:") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and a 'selector: ' line naming the file", args, code, errs)
		}
	}
}

// TestHelpGolden keeps the manual of every command under review: a change in
// help text shows up as a diff of testdata/help. Run with -update to rewrite.
func TestHelpGolden(t *testing.T) {
	cases := map[string][]string{"selector": {"help"}}
	for _, c := range commands() {
		cases[c.name] = []string{c.name, "-h"}
	}
	cases["objectives-show"] = []string{"objectives", "show", "-h"}
	cases["theory-rate"] = []string{"theory", "rate", "-h"}
	for name, args := range cases {
		code, out, errs := runCLI(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", args, code, errs)
			continue
		}
		path := filepath.Join("testdata", "help", name+".txt")
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v: %v (run go test ./cmd/selector -update)", args, err)
			continue
		}
		if string(want) != out {
			t.Errorf("%v: help text changed; review and run go test ./cmd/selector -update\n--- want\n%s\n--- got\n%s", args, want, out)
		}
	}
}
