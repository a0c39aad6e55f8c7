package selector

import (
	"encoding/json"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/capsel/capsel/internal/torchtest"
	"github.com/capsel/capsel/objectives"
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
	{"GeneralFamily-10", [6]bool{true, true, true, false, false, false}},
	{"GeneralFamily-0.5", [6]bool{true, true, true, false, false, false}},
	{"OnlyTopP-0.5", [6]bool{true, true, true, false, false, false}},
	{"OnlyBottomP-0.5", [6]bool{true, true, true, false, false, false}},
	{"OnlyTopLogP-0.2", [6]bool{true, true, true, false, false, false}},
	{"OnlyBottomLogP-0.2", [6]bool{true, true, true, false, false, false}},
	{"log1mp", [6]bool{true, false, true, false, false, false}},
	{"focal-2", [6]bool{true, false, true, false, false, false}},
	{"blend-0.3", [6]bool{true, false, true, false, false, false}},
	{"auto", [6]bool{true, false, false, false, false, false}},
	{"auto-theory", [6]bool{true, false, false, false, false, false}},
	// Degenerate parameters are NLL or p exactly.
	{"blend-1", [6]bool{true, true, true, true, true, true}},
	{"blend-0", [6]bool{true, true, true, true, true, true}},
	{"focal-0", [6]bool{true, true, true, true, true, true}},
	{"OnlyTopLogP-0", [6]bool{true, true, true, true, true, true}},
	{"OnlyBottomLogP-1", [6]bool{true, true, true, true, true, true}},
	{"OnlyTopP-0", [6]bool{true, true, true, true, true, true}},
	{"OnlyBottomP-1", [6]bool{true, true, true, true, true, true}},
}

func TestExactByKindAndFormat(t *testing.T) {
	kinds := map[objectives.Kind]bool{}
	for _, c := range exactCases {
		o := objectives.MustParse(c.spec)
		kinds[o.Kind()] = true
		for i, f := range Formats() {
			e, err := ExportObjective(o, f, ExportOptions{})
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
	for k := objectives.KindNLL; k <= objectives.KindAutoTheory; k++ {
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

func TestAutoFallback(t *testing.T) {
	auto := objectives.MustParse("auto-theory")
	pilot := objectives.MustParse("GeneralFamily-10")
	for _, f := range Formats()[1:] {
		e, err := ExportObjective(auto, f, ExportOptions{AutoFallback: pilot})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ExportObjective(pilot, f, ExportOptions{})
		if e.Exact || e.Text != want.Text || !strings.Contains(strings.Join(e.Notes, " "), "pilot sweep") {
			t.Errorf("%s: auto-theory with pilot fallback = %+v; want the text of GeneralFamily-10, inexact, naming the pilot sweep", f, e)
		}
		e, _ = ExportObjective(auto, f, ExportOptions{})
		want, _ = ExportObjective(objectives.NLL(), f, ExportOptions{})
		if e.Exact || e.Text != want.Text || !strings.Contains(strings.Join(e.Notes, " "), "pilot sweep") {
			t.Errorf("%s: auto-theory without fallback = %+v; want nll's text and a note recommending the pilot sweep", f, e)
		}
	}
}

// goldenSpecs are the representative objectives whose exports are kept as
// golden files; a "+fallback" entry exports auto-theory with that fallback.
var goldenSpecs = []string{
	"nll", "p", "dft", "GeneralFamily-10", "GeneralFamily-0.5", "OnlyTopLogP-0.2", "OnlyBottomP-0.5",
	"log1mp", "focal-2", "blend-0.3", "auto", "auto-theory+GeneralFamily-10",
}

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "export")
	for _, f := range Formats() {
		for _, spec := range goldenSpecs {
			name, fb, _ := strings.Cut(spec, "+")
			var opt ExportOptions
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

// trlSpecs are objectives whose TRL export is checked as Python.
var trlSpecs = []string{
	"nll", "p", "dft", "GeneralFamily-10", "GeneralFamily-0.5", "GeneralFamily-1e-05",
	"OnlyTopP-0.3", "OnlyBottomP-0.4", "OnlyTopLogP-0.2", "OnlyBottomLogP-0.3",
	"log1mp", "focal-2", "focal-0.5", "blend-0.3", "auto",
}

// TestTRLPythonParses renders the TRL export (templates/trl_loss.py.tmpl
// and trl_config.py.tmpl) for every form of objective and has Python parse
// each one.
func TestTRLPythonParses(t *testing.T) {
	python := torchtest.Python(t)
	dir := t.TempDir()
	var files []string
	for i, spec := range trlSpecs {
		e, err := ExportObjective(objectives.MustParse(spec), FormatTRL, ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "export"+strconv.Itoa(i)+".py")
		if err := os.WriteFile(path, []byte(e.Text), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	cmd := exec.Command(python, append([]string{"-c", "import ast, sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f, encoding='utf-8').read(), f)"}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python ast.parse failed: %v\n%s", err, out)
	}
}

// torchHarness runs each exported TRL snippet with a stand-in trl module and
// reports the loss and the logits' gradient on one batch.
const torchHarness = `import json, sys, types
import torch

trl = types.ModuleType("trl")


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.kwargs = kwargs


trl.SFTConfig = _Recorder
trl.SFTTrainer = _Recorder
sys.modules["trl"] = trl

data = json.load(open(sys.argv[1]))
logits0 = torch.tensor(data["logits"], dtype=torch.float32)
labels0 = torch.tensor(data["labels"], dtype=torch.long)
results = []
for case in data["cases"]:
    g = {"__name__": "capsel_export", "model": None, "train_dataset": None}
    exec(compile(open(case["file"], encoding="utf-8").read(), case["file"], "exec"), g)
    args = g["training_args"].kwargs
    fn = g["trainer"].kwargs["compute_loss_func"]
    logits = logits0.clone().requires_grad_(True)
    labels = labels0.clone()
    loss = fn(types.SimpleNamespace(logits=logits), labels)
    loss.backward()
    with torch.no_grad():
        loss_items = fn(types.SimpleNamespace(logits=logits0.clone()), labels0.clone(),
                        num_items_in_batch=torch.tensor(data["num_items"]))
    try:
        fn(types.SimpleNamespace(logits=None), labels0.clone())
        no_logits = "no error"
    except ValueError as e:
        no_logits = str(e)
    results.append({
        "spec": case["spec"],
        "loss_type": args.get("loss_type"),
        "use_liger_kernel": args.get("use_liger_kernel"),
        "loss": loss.item(),
        "loss_items": loss_items.item(),
        "grad": logits.grad.tolist(),
        "labels_unchanged": bool(torch.equal(labels, labels0)),
        "no_logits": no_logits,
    })
json.dump(results, sys.stdout)
`

// TestTRLTorchNumeric runs the exported compute_loss_func under PyTorch and
// compares its loss and logits gradient with objectives.Batch, the
// definition capsel's own trainer uses: on the same log-probabilities the
// loss must be the mean of f(p) over scored (or kept) tokens, and the
// gradient at position t must be scale[t]·(softmax(z_t) − e_y).
func TestTRLTorchNumeric(t *testing.T) {
	python := torchtest.Python(t)
	const B, T, V = 2, 8, 6
	rng := rand.New(rand.NewPCG(7, 11))
	logits := make([][][]float32, B)
	labels := make([][]int, B)
	for b := range B {
		logits[b] = make([][]float32, T)
		labels[b] = make([]int, T)
		for tt := range T {
			logits[b][tt] = make([]float32, V)
			for v := range V {
				logits[b][tt][v] = float32(2.5 * rng.NormFloat64())
			}
			labels[b][tt] = rng.IntN(V)
		}
	}
	// Prompt tokens and right padding carry -100, as TRL's collator writes them.
	labels[0][0], labels[0][1] = -100, -100
	labels[1][0], labels[1][6], labels[1][7] = -100, -100, -100
	// One near-certain token (p ≈ 1 − 8e-9) exercises the p → 1 end: log1mp's clamp, focal's (1 − p)^γ.
	logits[0][4][labels[0][5]] = 20

	// Log-probabilities of the shifted targets, in float64 from the same float32 logits.
	n := B * T
	logp, mask := make([]float64, n), make([]bool, n)
	soft := make([][]float64, n)
	target := make([]int, n)
	for b := range B {
		for tt := range T {
			i := b*T + tt
			z := logits[b][tt]
			mx := math.Inf(-1)
			for _, x := range z {
				mx = math.Max(mx, float64(x))
			}
			var s float64
			for _, x := range z {
				s += math.Exp(float64(x) - mx)
			}
			lse := mx + math.Log(s)
			soft[i] = make([]float64, V)
			for v, x := range z {
				soft[i][v] = math.Exp(float64(x) - lse)
			}
			target[i] = -100
			if tt+1 < T {
				target[i] = labels[b][tt+1]
			}
			if target[i] != -100 {
				mask[i] = true
				logp[i] = float64(z[target[i]]) - lse
			}
		}
	}

	specs := []string{
		"GeneralFamily-10", "GeneralFamily-0.5", "GeneralFamily-2",
		"OnlyTopP-0.3", "OnlyBottomP-0.4", "OnlyTopLogP-0.2", "OnlyBottomLogP-0.3",
		"log1mp", "focal-2", "focal-0.5", "blend-0.3",
	}
	dir := t.TempDir()
	type caseIn struct {
		Spec string `json:"spec"`
		File string `json:"file"`
	}
	var cases []caseIn
	for i, spec := range specs {
		o := objectives.MustParse(spec)
		e, err := ExportObjective(o, FormatTRL, ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(e.Text, "def capsel_loss(") {
			t.Fatalf("%s: TRL export has no compute_loss_func", spec)
		}
		path := filepath.Join(dir, "export"+strconv.Itoa(i)+".py")
		if err := os.WriteFile(path, []byte(e.Text), 0o644); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, caseIn{spec, path})
		if o.Thresholded() {
			// The test means something only if the threshold splits the batch,
			// and fp32 rounding cannot flip a token across it.
			var kept, scored int
			for i := range logp {
				if !mask[i] {
					continue
				}
				scored++
				p := math.Exp(logp[i])
				if math.Abs(p-o.Param()) < 1e-3 {
					t.Fatalf("%s: token %d has p = %v, too close to the threshold for fp32; change the seed", spec, i, p)
				}
				if o.Keep(p) {
					kept++
				}
			}
			if kept == 0 || kept == scored {
				t.Fatalf("%s keeps %d of %d tokens; change the seed so that it splits the batch", spec, kept, scored)
			}
		}
	}
	scoredCount := 0
	for _, m := range mask {
		if m {
			scoredCount++
		}
	}
	numItems := 2 * scoredCount // as if gradient accumulation added a second micro-batch of the same size
	in, err := json.Marshal(map[string]any{"logits": logits, "labels": labels, "cases": cases, "num_items": numItems})
	if err != nil {
		t.Fatal(err)
	}
	inPath, harness := filepath.Join(dir, "in.json"), filepath.Join(dir, "harness.py")
	if err := os.WriteFile(inPath, in, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(harness, []byte(torchHarness), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, harness, inPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("harness: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Spec            string        `json:"spec"`
		LossType        string        `json:"loss_type"`
		UseLiger        *bool         `json:"use_liger_kernel"`
		Loss            float64       `json:"loss"`
		LossItems       float64       `json:"loss_items"`
		Grad            [][][]float64 `json:"grad"`
		LabelsUnchanged bool          `json:"labels_unchanged"`
		NoLogits        string        `json:"no_logits"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("harness output: %v\n%s", err, out)
	}
	if len(results) != len(specs) {
		t.Fatalf("harness returned %d results for %d cases", len(results), len(specs))
	}
	// Tolerances: the exported code runs in float32 (relative rounding about
	// 6e-8 per operation, a few dozen operations deep); the reference runs in
	// float64 on the same float32 inputs.
	const lossTol, gradAbs, gradRel = 1e-5, 2e-6, 1e-4
	for k, r := range results {
		o := objectives.MustParse(specs[k])
		if r.Spec != specs[k] {
			t.Fatalf("result %d is for %s, want %s", k, r.Spec, specs[k])
		}
		if r.LossType != "nll" || r.UseLiger == nil || *r.UseLiger {
			t.Errorf("%s: SFTConfig gets loss_type=%q, use_liger_kernel=%v; want \"nll\" and False", o, r.LossType, r.UseLiger)
		}
		if !r.LabelsUnchanged {
			t.Errorf("%s: capsel_loss modified the caller's labels", o)
		}
		if !strings.Contains(r.NoLogits, "use_liger_kernel=False") {
			t.Errorf("%s: without logits capsel_loss says %q; want a ValueError naming use_liger_kernel=False", o, r.NoLogits)
		}
		scale := make([]float64, n)
		st, err := o.Batch(logp, mask, nil, scale)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(r.Loss - st.Loss); d > lossTol*math.Max(1, math.Abs(st.Loss)) {
			t.Errorf("%s: loss %v, want %v (objectives.Batch, %d of %d tokens kept)", o, r.Loss, st.Loss, st.Kept, st.Scored)
		}
		// With num_items_in_batch the micro-batch weighs by its share of response tokens.
		wantItems := st.Loss * float64(st.Scored) / float64(numItems)
		if d := math.Abs(r.LossItems - wantItems); d > lossTol*math.Max(1, math.Abs(wantItems)) {
			t.Errorf("%s: loss with num_items_in_batch=%d is %v, want %v", o, numItems, r.LossItems, wantItems)
		}
		bad := 0
		for b := range B {
			for tt := range T {
				i := b*T + tt
				for v := range V {
					want := 0.0
					if mask[i] {
						d := soft[i][v]
						if v == target[i] {
							d -= 1
						}
						want = scale[i] * d
					}
					got := r.Grad[b][tt][v]
					if math.Abs(got-want) > gradAbs+gradRel*math.Abs(want) {
						if bad < 5 {
							t.Errorf("%s: ∂loss/∂z[%d][%d][%d] = %v, want %v = s(p)/N·(softmax − onehot)", o, b, tt, v, got, want)
						}
						bad++
					}
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d gradient entries differ in all", o, bad)
		}
	}
}
