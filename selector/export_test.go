package selector

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/capsel/capsel/choose"
	"github.com/capsel/capsel/internal/torchtest"
	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/train"
)

var update = flag.Bool("update", false, "rewrite the golden export files in testdata/export")

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Format
	}{
		{"toml", FormatTOML}, {"verl", FormatVerl}, {"TRL", FormatTRL}, {" llamafactory ", FormatLlamaFactory},
		{"LLaMA-Factory", FormatLlamaFactory}, {"llama_factory", FormatLlamaFactory},
		{"swift", FormatSwift}, {"ms-swift", FormatSwift}, {"Axolotl", FormatAxolotl},
	} {
		got, err := ParseFormat(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, f := range Formats() {
		if got, err := ParseFormat(string(f)); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	for _, bad := range []string{"", "pytorch", "tr1", "axolotl-yaml"} {
		_, err := ParseFormat(bad)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q): error %v does not wrap ErrFormat", bad, err)
			continue
		}
		for _, f := range Formats() {
			if !strings.Contains(err.Error(), string(f)) {
				t.Errorf("ParseFormat(%q): error %q does not name accepted format %s", bad, err, f)
			}
		}
	}
}

func TestExportErrors(t *testing.T) {
	if _, err := ExportObjective(objectives.Objective{}, FormatTRL, ExportOptions{}); err == nil {
		t.Error("invalid objective: no error")
	}
	_, err := ExportObjective(objectives.P(), Format("pytorch"), ExportOptions{})
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "llamafactory") {
		t.Errorf("unknown format: error %v, want ErrFormat naming the accepted formats", err)
	}
	auto := objectives.MustParse("auto")
	if _, err := ExportObjective(auto, FormatTRL, ExportOptions{AutoFallback: objectives.MustParse("auto-theory")}); err == nil {
		t.Error("adaptive fallback: no error")
	}
	// capsel's own trainer runs auto itself, so the fallback is not consulted.
	if e, err := ExportObjective(auto, FormatTOML, ExportOptions{AutoFallback: objectives.MustParse("auto-theory")}); err != nil || !e.Exact {
		t.Errorf("auto to toml: %+v, %v; want exact", e, err)
	}
}

// exactCases lists, per spec, whether each format expresses it exactly, in
// the order of Formats(): toml, verl, trl, llamafactory, swift, axolotl.
var exactCases = []struct {
	spec  string
	exact [6]bool
}{
	{"nll", [6]bool{true, true, true, true, true, true}},
	{"original", [6]bool{true, true, true, true, true, true}},
	{"logp", [6]bool{true, true, true, true, true, true}},
	{"p", [6]bool{true, true, true, true, true, true}},
	{"dft", [6]bool{true, true, true, true, true, true}},
	{"GeneralFamily-1", [6]bool{true, true, true, true, true, true}},
	{"GeneralFamily-10", [6]bool{true, true, true, false, true, false}},
	{"GeneralFamily-0.5", [6]bool{true, true, true, false, true, false}},
	{"OnlyTopP-0.5", [6]bool{true, true, true, false, true, false}},
	{"OnlyBottomP-0.5", [6]bool{true, true, true, false, true, false}},
	{"OnlyTopLogP-0.2", [6]bool{true, true, true, false, true, false}},
	{"OnlyBottomLogP-0.2", [6]bool{true, true, true, false, true, false}},
	{"log1mp", [6]bool{true, false, true, false, true, false}},
	{"focal-2", [6]bool{true, false, true, false, true, false}},
	{"blend-0.3", [6]bool{true, false, true, false, true, false}},
	// The trainers' own objectives: each where its trainer computes it, and as TRL and ms-swift code.
	{"eaft-1", [6]bool{true, false, true, true, true, false}},
	{"eaft-axolotl-1-20", [6]bool{true, false, true, false, true, true}},
	{"eaft-axolotl-1.5-5", [6]bool{true, false, true, false, true, true}},
	{"deft", [6]bool{true, true, true, false, true, false}},
	{"deft-cayley", [6]bool{true, true, true, false, true, false}},
	{"asft-0.1", [6]bool{true, false, true, true, true, false}},
	// auto-theory runs in TRL and ms-swift as a hook; auto (with the fallback the test passes) nowhere but capsel's.
	{"auto", [6]bool{true, false, false, false, false, false}},
	{"auto-theory", [6]bool{true, false, true, false, true, false}},
	// Degenerate parameters are NLL or p exactly.
	{"blend-1", [6]bool{true, true, true, true, true, true}},
	{"blend-0", [6]bool{true, true, true, true, true, true}},
	{"focal-0", [6]bool{true, true, true, true, true, true}},
	{"OnlyTopLogP-0", [6]bool{true, true, true, true, true, true}},
	{"OnlyBottomLogP-1", [6]bool{true, true, true, true, true, true}},
	{"OnlyTopP-0", [6]bool{true, true, true, true, true, true}},
	{"OnlyBottomP-1", [6]bool{true, true, true, true, true, true}},
}

// testOptions are the options the tests export with: capsel's auto-theory
// settings, and nll as auto's fallback.
func testOptions() ExportOptions {
	return ExportOptions{AutoTheory: harnessAuto(), AutoFallback: objectives.NLL()}
}

func TestExactByKindAndFormat(t *testing.T) {
	kinds := map[objectives.Kind]bool{}
	for _, c := range exactCases {
		o := objectives.MustParse(c.spec)
		kinds[o.Kind()] = true
		for i, f := range Formats() {
			e, err := ExportObjective(o, f, testOptions())
			if err != nil {
				t.Errorf("%s → %s: %v", c.spec, f, err)
				continue
			}
			if e.Exact != c.exact[i] {
				t.Errorf("%s → %s: Exact = %v, want %v", c.spec, f, e.Exact, c.exact[i])
			}
			checkShape(t, c.spec, e, f)
		}
	}
	for k := objectives.KindNLL; k <= objectives.KindASFT; k++ {
		if !kinds[k] {
			t.Errorf("kind %d has no row in exactCases", k)
		}
	}
}

// checkShape tests what every export promises: its format, text ending in a
// newline, notes that are single sentences, and, for a fixed objective the
// trainer cannot express, text that is all comments so that pasting it
// changes nothing.
func checkShape(t *testing.T, spec string, e Export, f Format) {
	t.Helper()
	if e.Format != f {
		t.Errorf("%s → %s: Format = %q", spec, f, e.Format)
	}
	if e.Text == "" || !strings.HasSuffix(e.Text, "\n") {
		t.Errorf("%s → %s: Text %q is empty or does not end in a newline", spec, f, e.Text)
	}
	for _, n := range e.Notes {
		if n == "" || strings.Contains(n, "\n") || !strings.HasSuffix(n, ".") {
			t.Errorf("%s → %s: note %q is not one sentence", spec, f, n)
		}
	}
	if !e.Exact && !objectives.MustParse(spec).Adaptive() {
		for l := range strings.Lines(e.Text) {
			if !strings.HasPrefix(l, "#") {
				t.Errorf("%s → %s: inexact export has a live line %q", spec, f, l)
			}
		}
		if len(e.Notes) < 3 {
			t.Errorf("%s → %s: inexact export explains itself in %d notes, want what is missing, the nearest setting and the exact route", spec, f, len(e.Notes))
		}
	}
	if !e.Exact && len(e.Notes) == 0 {
		t.Errorf("%s → %s: inexact export without notes", spec, f)
	}
}

// TestAutoFallback: where a trainer cannot run an adaptive objective, the
// export is the fallback's text, inexact, with notes saying where the
// fallback comes from; a fallback that did not come from a pilot sweep never
// claims it did.
func TestAutoFallback(t *testing.T) {
	pilot := objectives.MustParse("GeneralFamily-10")
	for _, spec := range []string{"auto", "auto-theory"} {
		o := objectives.MustParse(spec)
		for _, f := range Formats()[1:] {
			if o.Kind() == objectives.KindAutoTheory && (f == FormatTRL || f == FormatSwift) {
				continue // a hook, tested by the harness
			}
			want, _ := ExportObjective(pilot, f, ExportOptions{})
			e, err := ExportObjective(o, f, ExportOptions{AutoFallback: pilot, FallbackWhy: "the best fixed objective of your pilot sweep"})
			if err != nil {
				t.Fatal(err)
			}
			if notes := strings.Join(e.Notes, " "); e.Exact || e.Text != want.Text || !strings.Contains(notes, "pilot sweep") {
				t.Errorf("%s → %s with the pilot's fallback = %+v; want GeneralFamily-10's text, inexact, naming the pilot sweep", spec, f, e)
			}
			e, err = ExportObjective(o, f, ExportOptions{AutoFallback: pilot})
			if err != nil {
				t.Fatal(err)
			}
			if notes := strings.Join(e.Notes, " "); e.Exact || e.Text != want.Text || strings.Contains(notes, "of your pilot sweep") || !strings.Contains(notes, "the fallback you gave") {
				t.Errorf("%s → %s with a fallback from nowhere = %+v; it must not credit a pilot sweep", spec, f, e)
			}
			e, err = ExportObjective(o, f, ExportOptions{})
			if o.Kind() == objectives.KindAuto {
				if !errors.Is(err, ErrNeedsMeasurement) || !strings.Contains(err.Error(), "--report") {
					t.Errorf("auto → %s without fallback: %v, want ErrNeedsMeasurement saying how to resolve it", f, err)
				}
				continue
			}
			want, _ = ExportObjective(objectives.NLL(), f, ExportOptions{})
			if err != nil || e.Exact || e.Text != want.Text || !strings.Contains(strings.Join(e.Notes, " "), "pilot sweep") {
				t.Errorf("auto-theory → %s without fallback = %+v, %v; want nll's text and a note recommending a pilot sweep", f, e, err)
			}
		}
	}
	e, _ := ExportObjective(objectives.MustParse("auto-theory"), FormatVerl, ExportOptions{})
	if !strings.Contains(strings.Join(e.Notes, " "), "patch") {
		t.Errorf("auto-theory → verl: %v; want the note on the patch the fork's trainer needs", e.Notes)
	}
}

// auto resolved by its measurement exports exactly as the objective the
// measurement calls for, to every trainer, with a note on the flagged
// examples when the call drops them.
func TestExportResolvedAuto(t *testing.T) {
	auto := objectives.MustParse("auto")
	for _, c := range []struct {
		call    choose.Call
		flagged int
	}{
		{choose.Call{Objective: "asft-0.1", Fallback: "p", Leaning: true, Reasons: []string{"strong."}}, 3},
		{choose.Call{Objective: "nll", Fallback: "nll", DropFlagged: true, Reasons: []string{"weak."}}, 7},
	} {
		for _, f := range Formats() {
			want, err := ExportObjective(objectives.MustParse(c.call.Objective), f, ExportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A trainer without ASFT (the paper's verl fork, Axolotl) gets
			// the call's fallback, p, which each of them runs exactly.
			fell := !want.Exact
			if fell {
				if want, err = ExportObjective(objectives.MustParse(c.call.Fallback), f, ExportOptions{}); err != nil || !want.Exact {
					t.Fatalf("%s → %s: the fallback %s is not exact either (%v)", c.call.Objective, f, c.call.Fallback, err)
				}
			}
			e, err := ExportObjective(auto, f, ExportOptions{Auto: &ResolvedAuto{Call: c.call, Flagged: c.flagged}})
			if f == FormatTOML {
				continue // capsel's trainer measures auto itself
			}
			if err != nil || e.Text != want.Text || e.Exact != want.Exact {
				t.Errorf("auto as %s → %s: text or exactness differ from the expected export's (err %v)", c.call.Objective, f, err)
			}
			notes := strings.Join(e.Notes, " ")
			if !strings.Contains(notes, "resolved by the measurement") || c.call.DropFlagged != strings.Contains(notes, "selector clean") || fell != strings.Contains(notes, "its fallback") {
				t.Errorf("auto as %s → %s: notes %q", c.call.Objective, f, notes)
			}
		}
	}
}

// TestWeighting: the code capsel writes takes either weighting; a trainer's
// built-in setting accepts only its own, and the error says which it is.
func TestWeighting(t *testing.T) {
	for _, c := range []struct {
		spec string
		f    Format
		w    Weighting
		ok   bool
	}{
		{"GeneralFamily-10", FormatTRL, WeightingFork, true},
		{"GeneralFamily-10", FormatSwift, WeightingTokens, true},
		{"p", FormatTRL, WeightingFork, true}, // code instead of loss_type="dft"
		{"GeneralFamily-10", FormatVerl, WeightingFork, true},
		{"GeneralFamily-10", FormatVerl, WeightingTokens, false},
		{"eaft-1", FormatLlamaFactory, WeightingTokens, true},
		{"eaft-1", FormatLlamaFactory, WeightingFork, false},
		{"asft-0.1", FormatLlamaFactory, WeightingFork, true},
		{"asft-0.1", FormatLlamaFactory, WeightingTokens, false},
		{"dft", FormatAxolotl, WeightingFork, false},
		{"GeneralFamily-10", FormatAxolotl, WeightingFork, true}, // inexpressible: commented text only
		{"nll", FormatTOML, WeightingFork, true},
	} {
		e, err := ExportObjective(objectives.MustParse(c.spec), c.f, ExportOptions{Weighting: c.w})
		if (err == nil) != c.ok {
			t.Errorf("%s → %s --weighting %s: %v, want ok=%v", c.spec, c.f, c.w, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "weighting") {
			t.Errorf("%s → %s --weighting %s: error %q does not name the weighting", c.spec, c.f, c.w, err)
		}
		if c.ok && c.f == FormatTRL && c.w == WeightingFork && !strings.Contains(e.Text, `WEIGHTING = "fork"`) {
			t.Errorf("%s → trl --weighting fork: the code does not use the fork weighting", c.spec)
		}
	}
	if _, err := ParseWeighting("sum"); err == nil {
		t.Error(`ParseWeighting("sum"): no error`)
	}
}

// goldenSpecs are the representative objectives whose exports are kept as
// golden files; a "+fallback" entry exports auto-theory with that fallback.
var goldenSpecs = []string{
	"nll", "p", "dft", "GeneralFamily-10", "GeneralFamily-0.5", "OnlyTopLogP-0.2", "OnlyBottomP-0.5",
	"log1mp", "focal-2", "blend-0.3", "eaft-1", "eaft-axolotl-1-20", "deft", "deft-cayley", "asft-0.1",
	"auto+nll", "auto-theory", "auto-theory+GeneralFamily-10",
}

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "export")
	for _, f := range Formats() {
		for _, spec := range goldenSpecs {
			name, fb, _ := strings.Cut(spec, "+")
			opt := ExportOptions{AutoTheory: defaultAuto()}
			if fb != "" {
				opt.AutoFallback = objectives.MustParse(fb)
			}
			e, err := ExportObjective(objectives.MustParse(name), f, opt)
			if err != nil {
				t.Fatalf("%s → %s: %v", spec, f, err)
			}
			got := renderGolden(spec, e)
			path := filepath.Join(dir, string(f)+"_"+strings.ReplaceAll(spec, "+", "_fallback_")+".golden")
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./selector -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the export; review and run go test ./selector -update\n--- got\n%s--- want\n%s", path, got, want)
			}
		}
	}
}

func renderGolden(spec string, e Export) string {
	var b strings.Builder
	b.WriteString("format: " + string(e.Format) + "\n")
	b.WriteString("objective: " + spec + "\n")
	b.WriteString("exact: " + strconv.FormatBool(e.Exact) + "\n")
	b.WriteString("notes:\n")
	for _, n := range e.Notes {
		b.WriteString("- " + n + "\n")
	}
	b.WriteString("--- text\n")
	b.WriteString(e.Text)
	return b.String()
}

// forkDispatch mirrors how the paper's fork reads trainer.objective_trans
// (main_verl/trainer/fsdp_sft_trainer.py @ 220589d): exact matches for
// original, p and logp, then substring tests in this order, each reading its
// number as float(key.split("-")[1]).
func forkDispatch(key string) (kind objectives.Kind, param float64, err error) {
	switch key {
	case "original", "logp":
		return objectives.KindNLL, 0, nil
	case "p":
		return objectives.KindP, 0, nil
	}
	for _, b := range []struct {
		sub  string
		kind objectives.Kind
	}{
		{"GeneralFamily", objectives.KindGeneral},
		{"OnlyTopP", objectives.KindOnlyTopP},
		{"OnlyBottomP", objectives.KindOnlyBottomP},
		{"OnlyTopLogP", objectives.KindOnlyTopLogP},
		{"OnlyBottomLogP", objectives.KindOnlyBottomLogP},
	} {
		if strings.Contains(key, b.sub) {
			parts := strings.Split(key, "-")
			if len(parts) < 2 {
				return 0, 0, errors.New("no number after the dash")
			}
			// Python's float() takes what ParseFloat takes for these numbers.
			v, err := strconv.ParseFloat(parts[1], 64)
			return b.kind, v, err
		}
	}
	return 0, 0, errors.New("unknown objective transformation")
}

func TestVerlKeysRoundTrip(t *testing.T) {
	for _, spec := range []string{
		"nll", "original", "logp", "p", "GeneralFamily-10", "GeneralFamily-0.5", "GeneralFamily-1",
		"GeneralFamily-0.00001", "GeneralFamily-1e21", "GeneralFamily-2.5e-7",
		"OnlyTopP-0", "OnlyTopP-0.5", "OnlyBottomP-1", "OnlyBottomP-0.25",
		"OnlyTopLogP-0.2", "OnlyTopLogP-1e-6", "OnlyBottomLogP-0.05", "OnlyBottomLogP-1",
	} {
		o := objectives.MustParse(spec)
		e, err := ExportObjective(o, FormatVerl, ExportOptions{})
		if err != nil || !e.Exact {
			t.Errorf("%s: %+v, %v; want an exact export", spec, e, err)
			continue
		}
		key, ok := strings.CutPrefix(strings.TrimSuffix(e.Text, "\n"), "trainer.objective_trans=")
		if !ok || strings.ContainsAny(key, " \n#") {
			t.Errorf("%s: text %q is not one trainer.objective_trans override", spec, e.Text)
			continue
		}
		back, err := objectives.Parse(key)
		if err != nil || back.Canonical() != o.Canonical() || back.Param() != o.Param() {
			t.Errorf("%s: key %q parses back to %v (%v), want %s", spec, key, back, err, o.Canonical())
		}
		kind, param, err := forkDispatch(key)
		if err != nil || kind != o.Kind() || param != o.Param() {
			t.Errorf("%s: the fork would read key %q as kind %d, %v (%v); want kind %d, %v", spec, key, kind, param, err, o.Kind(), o.Param())
		}
	}
	// Objectives the fork has no key for but whose gradient it has: the key
	// must train the same per-token gradient scale s(p) everywhere.
	for _, spec := range []string{"dft", "blend-0", "blend-1", "focal-0"} {
		o := objectives.MustParse(spec)
		e, err := ExportObjective(o, FormatVerl, ExportOptions{})
		if err != nil || !e.Exact {
			t.Errorf("%s: %+v, %v; want an exact export", spec, e, err)
			continue
		}
		key := strings.TrimPrefix(strings.TrimSuffix(e.Text, "\n"), "trainer.objective_trans=")
		back, err := objectives.Parse(key)
		if err != nil {
			t.Errorf("%s: key %q: %v", spec, key, err)
			continue
		}
		for i := 0; i <= 100; i++ {
			p := float64(i) / 100
			if a, b := o.S(p), back.S(p); math.Abs(a-b) > 1e-12 {
				t.Errorf("%s exported as %s: s(%v) = %v, want %v", spec, key, p, b, a)
				break
			}
		}
	}
}

func TestNearest(t *testing.T) {
	nllP := []objectives.Objective{objectives.NLL(), objectives.P()}
	for _, c := range []struct {
		spec       string
		candidates []objectives.Objective
		want       string
		why        string
	}{
		{"GeneralFamily-3", verlCandidates(), "GeneralFamily-3", "a candidate is nearest to itself"},
		{"GeneralFamily-0.1", verlCandidates(), "GeneralFamily-0.1", "a candidate is nearest to itself"},
		{"nll", verlCandidates(), "nll", "a candidate is nearest to itself"},
		{"GeneralFamily-10", nllP, "p", "W = p^10(1 − p) sits at high p, as p's does"},
		{"OnlyTopLogP-0.5", nllP, "p", "no weight below p = 0.5"},
		{"focal-2", nllP, "nll", "focal loss is more prior-averse than NLL"},
		{"focal-2", verlCandidates(), "nll", "no GeneralFamily-α (α ≥ 0.1) is as prior-averse as NLL"},
		{"blend-0.99", verlCandidates(), "nll", "99 % NLL"},
		{"GeneralFamily-1.02", verlCandidates(), "p", "α = 1.02 is next to α = 1"},
	} {
		got := nearest(objectives.MustParse(c.spec), c.candidates)
		if got.Canonical() != c.want {
			t.Errorf("nearest(%s) = %s, want %s (%s)", c.spec, got, c.want, c.why)
		}
	}
}

// defaultAuto is capsel's trainer's auto-theory setting.
func defaultAuto() AutoTheorySettings {
	a := train.DefaultConfig().Auto
	return AutoTheorySettings{Every: a.Every, Noise: a.Noise, Rate: a.Rate, Candidates: a.Candidates}
}

// TestCodeParses renders the TRL and ms-swift code for every form of
// objective, both weightings, and auto-theory, and has Python parse each one.
func TestCodeParses(t *testing.T) {
	python := torchtest.Python(t)
	dir := t.TempDir()
	var files []string
	for _, spec := range append(slices.Clone(harnessSpecs), "auto-theory") {
		for _, f := range []Format{FormatTRL, FormatSwift} {
			for _, w := range []Weighting{WeightingTokens, WeightingFork} {
				e, err := ExportObjective(objectives.MustParse(spec), f, ExportOptions{Weighting: w, AutoTheory: defaultAuto()})
				if err != nil {
					t.Fatal(err)
				}
				if f == FormatSwift && !strings.Contains(e.Text, "import torch") {
					continue // ms-swift's own flag (--enable_dft_loss), not Python
				}
				path := filepath.Join(dir, "export"+strconv.Itoa(len(files))+".py")
				if err := os.WriteFile(path, []byte(e.Text), 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, path)
			}
		}
	}
	cmd := exec.Command(python, append([]string{"-c", "import ast, sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f, encoding='utf-8').read(), f)"}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python ast.parse failed: %v\n%s", err, out)
	}
}

// TestPythonScales checks the gradient scales s_f(p) that auto-theory's
// code ranks candidates with (pyScale) against objectives' S, for every
// kind that can be a candidate, on a grid of p that includes 0, 1 and the
// thresholds.
func TestPythonScales(t *testing.T) {
	python := torchtest.Python(t)
	specs := []string{"nll", "p", "dft", "GeneralFamily-10", "GeneralFamily-0.5", "OnlyTopP-0.3", "OnlyBottomP-0.4",
		"OnlyTopLogP-0.2", "OnlyBottomLogP-0.3", "log1mp", "focal-2", "focal-0.5", "blend-0.3"}
	var ps []float64
	for i := 0; i <= 100; i++ {
		ps = append(ps, float64(i)/100)
	}
	ps = append(ps, 1e-9, 1-1e-9, 1-1e-5, 0.30000001, 0.19999999)
	var b strings.Builder
	b.WriteString("import json, math, sys\nimport torch\np = torch.tensor(json.loads(sys.argv[1]), dtype=torch.float64)\nout = []\n")
	for _, s := range specs {
		fmt.Fprintf(&b, "out.append((%s).tolist())\n", pyScale(objectives.MustParse(s)))
	}
	b.WriteString("print(json.dumps(out))\n")
	arg, _ := json.Marshal(ps)
	out, err := exec.Command(python, "-c", b.String(), string(arg)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got [][]float64
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for i, s := range specs {
		o := objectives.MustParse(s)
		for j, p := range ps {
			// Both in float64; Go reads p through log p, Python directly: 1e-12 relative.
			if want := o.S(p); math.Abs(got[i][j]-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Errorf("%s: s(%v) = %v in Python, %v in Go", s, p, got[i][j], want)
			}
		}
	}
}
