package selector

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/capsel/capsel/internal/torchtest"
	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
	"github.com/capsel/capsel/train"
)

// The harness (testdata/harness/trainer.py) runs the TRL and ms-swift code
// that ExportObjective writes inside a transcription of the trainers' loops
// (transformers Trainer, TRL SFTTrainer, ms-swift's Seq2SeqTrainer; the
// file cites the commits), on a bigram model trained by SGD, and reports for
// every micro-batch the logits, the labels, the loss the code returned and
// the gradient that reached the logits. These tests recompute both from the
// same logits with capsel's own code: objectives.Batch and BatchDist for the
// loss and its logit gradient, train.BestByTheory for auto-theory's choice.

// harnessCase is one run of the harness (see trainer.py's run).
type harnessCase struct {
	Name      string   `json:"name"`
	File      string   `json:"file"`
	Trainer   string   `json:"trainer"` // sft (TRL's SFTTrainer), capsel (CapselSFTTrainer), swift
	LossType  string   `json:"loss_type,omitempty"`
	Callbacks []string `json:"callbacks,omitempty"`
	B         int      `json:"B"`
	T         int      `json:"T"`
	V         int      `json:"V"`
	Accum     int      `json:"accum"`
	Steps     int      `json:"steps"`
	Seed      int      `json:"seed"`
	LR        float64  `json:"lr"`
	Init      float64  `json:"init,omitempty"`  // the scale of the bigram table's random start (0: uniform)
	World     int      `json:"world,omitempty"` // data-parallel ranks (DDP over gloo); 0 or 1: one process
	Ref       bool     `json:"ref,omitempty"`
	Resume    *int     `json:"resume,omitempty"`
	Phase     string   `json:"phase,omitempty"`
	Restore   *bool    `json:"restore,omitempty"`
	Workdir   string   `json:"workdir"`

	spec      string
	weighting Weighting
}

type harnessMB struct {
	Logits [][][]float64 `json:"logits"`
	Labels [][]int       `json:"labels"`
	Ref    [][][]float64 `json:"ref"`
	Loss   float64       `json:"loss"`
	Grad   [][][]float64 `json:"grad"`
}

type harnessStep struct {
	Step     int         `json:"step"`
	NumItems int         `json:"num_items"`
	MBs      []harnessMB `json:"mbs"`
}

type harnessResult struct {
	Ranks   []harnessResult `json:"ranks"` // a DDP run: each rank's result
	Error   string          `json:"error"`
	Steps   []harnessStep   `json:"steps"`
	History [][2]any        `json:"history"`
}

// harnessAuto is the auto-theory setting the harness runs: capsel's default
// candidates, noise and criterion, re-ranked every 2 steps so that 8 steps
// hold 4 rankings.
func harnessAuto() AutoTheorySettings {
	a := train.DefaultConfig().Auto
	return AutoTheorySettings{Every: 2, Noise: 0.3, Rate: a.Rate, Candidates: a.Candidates}
}

// writeExport renders spec for format f and writes it to dir.
func writeExport(t *testing.T, dir, spec string, f Format, w Weighting) string {
	t.Helper()
	e, err := ExportObjective(objectives.MustParse(spec), f, ExportOptions{Weighting: w, AutoTheory: harnessAuto()})
	if err != nil {
		t.Fatalf("%s → %s: %v", spec, f, err)
	}
	if !e.Exact {
		t.Fatalf("%s → %s is not exact", spec, f)
	}
	name := strings.NewReplacer("-", "_", ".", "_").Replace(fmt.Sprintf("%s_%s_%s", f, spec, w)) + ".py"
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(e.Text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runHarness runs the harness on the cases in one Python process.
func runHarness(t *testing.T, py string, cases []harnessCase) []harnessResult {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "cases.json"), filepath.Join(dir, "results.json")
	b, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "harness", "trainer.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, in, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: %v\n%s", err, msg)
	}
	b, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res []harnessResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != len(cases) {
		t.Fatalf("harness returned %d results for %d cases", len(res), len(cases))
	}
	return res
}

// row is one scored position of a micro-batch: logits z (float64 of the
// float32 the code saw), the target y, the reference's logits.
type row struct {
	mb, b, t, y int
	lq, lr      []float64
}

func logSoftmax(z []float64) []float64 {
	mx := math.Inf(-1)
	for _, x := range z {
		mx = math.Max(mx, x)
	}
	var s float64
	for _, x := range z {
		s += math.Exp(x - mx)
	}
	lse := mx + math.Log(s)
	out := make([]float64, len(z))
	for i, x := range z {
		out[i] = x - lse
	}
	return out
}

// scoredRows lists the positions whose next label is not -100, as the code
// and capsel's trainer score them.
func scoredRows(mbIndex int, mb harnessMB) []row {
	var rows []row
	for b := range mb.Labels {
		for t := 0; t+1 < len(mb.Labels[b]); t++ {
			y := mb.Labels[b][t+1]
			if y == -100 {
				continue
			}
			r := row{mb: mbIndex, b: b, t: t, y: y, lq: logSoftmax(mb.Logits[b][t])}
			if mb.Ref != nil {
				r.lr = logSoftmax(mb.Ref[b][t])
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// expected is capsel's loss and logit gradient for one micro-batch.
type expected struct {
	loss float64
	grad [][][]float64
}

// capselMB computes, with objectives.Batch/BatchDist, what the code must
// return for micro-batch mb of a step whose response tokens number numItems,
// under weighting w:
//
//	tokens   Σ f / numItems (thresholded: the micro-batch's kept-token mean × scored/numItems)
//	fork     Σ f / (kept + 1e-8)
//
// and the gradient Σ_t (s_t·(q_t − e_y) + a_t·(q_t − r_t)) / the same denominator.
func capselMB(t *testing.T, o objectives.Objective, mb harnessMB, numItems int, w Weighting) expected {
	t.Helper()
	rows := scoredRows(0, mb)
	in := objectives.DistBatch{}
	for _, r := range rows {
		in.LogP = append(in.LogP, r.lq[r.y])
		switch o.Form() {
		case objectives.FormDist:
			in.Stat = append(in.Stat, o.DistStat(r.lq))
		case objectives.FormAnchored:
			in.KL = append(in.KL, objectives.KL(r.lr, r.lq))
		}
	}
	n := len(rows)
	loss, scale, anchor := make([]float64, n), make([]float64, n), make([]float64, n)
	st, err := o.BatchDist(in, loss, scale, anchor)
	if err != nil {
		t.Fatal(err)
	}
	// BatchDist divides by its own count: Kept, plus 1e-8 for the DEFT
	// fork's objectives (objectives.verlEps). Undo it to get per-token sums.
	own := float64(st.Kept)
	if k := o.Kind(); k == objectives.KindDEFT || k == objectives.KindDEFTCayley {
		own += 1e-8
	}
	var den float64
	switch {
	case w == WeightingFork:
		den = float64(st.Kept) + 1e-8
	case o.Thresholded():
		den = math.Max(float64(st.Kept), 1) * float64(numItems) / float64(st.Scored)
	default:
		den = float64(numItems)
	}
	var e expected
	for _, f := range loss {
		e.loss += f
	}
	e.loss /= den
	e.grad = make([][][]float64, len(mb.Logits))
	for b := range mb.Logits {
		e.grad[b] = make([][]float64, len(mb.Logits[b]))
		for i := range e.grad[b] {
			e.grad[b][i] = make([]float64, len(mb.Logits[b][i]))
		}
	}
	for j, r := range rows {
		s, a := scale[j]*own/den, anchor[j]*own/den
		for k := range e.grad[r.b][r.t] {
			q := math.Exp(r.lq[k])
			d := 0.0
			if k == r.y {
				d = 1
			}
			g := s * (q - d)
			if r.lr != nil {
				g += a * (q - math.Exp(r.lr[k]))
			}
			e.grad[r.b][r.t][k] = g
		}
	}
	return e
}

// compareMB checks the code's loss and gradient for one micro-batch and
// returns the largest differences.
func compareMB(t *testing.T, name string, step, j int, got harnessMB, want expected) (dLoss, dGrad float64) {
	t.Helper()
	// Tolerances: the code runs in float32 (relative rounding 6e-8 per
	// operation, a few dozen deep, and logsumexp over 24 logits); the
	// reference in float64 on the same float32 logits.
	const lossTol, gradAbs, gradRel = 2e-6, 5e-7, 1e-4
	dLoss = math.Abs(got.Loss - want.loss)
	if dLoss > lossTol*math.Max(1, math.Abs(want.loss)) {
		t.Errorf("%s step %d micro-batch %d: loss %.9g, capsel %.9g", name, step, j, got.Loss, want.loss)
	}
	bad := 0
	for b := range want.grad {
		for i := range want.grad[b] {
			for k, w := range want.grad[b][i] {
				d := math.Abs(got.Grad[b][i][k] - w)
				dGrad = math.Max(dGrad, d)
				if d > gradAbs+gradRel*math.Abs(w) {
					if bad < 3 {
						t.Errorf("%s step %d micro-batch %d: ∂L/∂z[%d][%d][%d] = %.9g, capsel %.9g", name, step, j, b, i, k, got.Grad[b][i][k], w)
					}
					bad++
				}
			}
		}
	}
	return dLoss, dGrad
}

// harnessSpecs are the fixed objectives run through the harness: every form
// (p-family, thresholded, gated, Cayley, anchored).
var harnessSpecs = []string{
	"nll", "p", "dft", "GeneralFamily-10", "GeneralFamily-0.5", "OnlyTopP-0.3", "OnlyBottomP-0.05",
	"OnlyTopLogP-0.2", "OnlyBottomLogP-0.3", "log1mp", "focal-2", "blend-0.3",
	"eaft-1", "eaft-0.7", "eaft-axolotl-1.3-5", "deft", "deft-cayley", "asft-0.1",
}

// TestHarnessFixed runs every fixed objective's TRL code (and a selection
// of ms-swift plugins) at gradient accumulation 1 and 4 under both
// weightings, and checks each micro-batch's loss and logit gradient against
// capsel's.
func TestHarnessFixed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python")
	}
	py := torchtest.Python(t)
	dir := t.TempDir()
	var cases []harnessCase
	add := func(spec string, f Format, w Weighting, accum int) {
		o := objectives.MustParse(spec)
		c := harnessCase{spec: spec, weighting: w, File: writeExport(t, dir, spec, f, w), Trainer: "sft",
			B: 2, T: 8, V: 24, Accum: accum, Steps: 2, Seed: 3, LR: 0.5, Init: 2.5, Ref: o.Form() == objectives.FormAnchored, Workdir: dir}
		if f == FormatSwift {
			c.Trainer, c.LossType = "swift", "capsel"
		} else if c.Ref {
			c.Trainer = "capsel"
		}
		c.Name = fmt.Sprintf("%s/%s/%s/accum%d", spec, f, w, accum)
		cases = append(cases, c)
	}
	for _, spec := range harnessSpecs {
		for _, w := range []Weighting{WeightingTokens, WeightingFork} {
			if _, _, builtin := reduce(objectives.MustParse(spec)); builtin && w == WeightingTokens {
				continue // exported as TRL's own loss_type "nll" or "dft", not as code capsel writes
			}
			for _, accum := range []int{1, 4} {
				add(spec, FormatTRL, w, accum)
			}
		}
	}
	for _, spec := range []string{"GeneralFamily-10", "OnlyTopLogP-0.2", "eaft-1", "deft-cayley", "asft-0.1"} {
		add(spec, FormatSwift, WeightingTokens, 4)
		add(spec, FormatSwift, WeightingFork, 4)
	}
	res := runHarness(t, py, cases)
	worst := map[string][2]float64{}
	for i, c := range cases {
		r := res[i]
		if r.Error != "" {
			t.Errorf("%s: %s", c.Name, r.Error)
			continue
		}
		o := objectives.MustParse(c.spec)
		if len(r.Steps) != c.Steps {
			t.Fatalf("%s: %d steps, want %d", c.Name, len(r.Steps), c.Steps)
		}
		key := fmt.Sprintf("accum %d", c.Accum)
		split := false
		for _, st := range r.Steps {
			if len(st.MBs) != c.Accum {
				t.Fatalf("%s: step %d has %d micro-batches, want %d", c.Name, st.Step, len(st.MBs), c.Accum)
			}
			count := 0
			for _, mb := range st.MBs {
				count += len(scoredRows(0, mb))
			}
			if count != st.NumItems {
				t.Errorf("%s step %d: the Trainer counted num_items_in_batch %d, the scored tokens are %d", c.Name, st.Step, st.NumItems, count)
			}
			for j, mb := range st.MBs {
				if o.Thresholded() {
					kept, rows := 0, scoredRows(j, mb)
					for _, r := range rows {
						p := math.Exp(r.lq[r.y])
						if math.Abs(p-o.Param()) < 1e-4 {
							t.Fatalf("%s: a token has p = %v, within float32 reach of the threshold; change the seed", c.Name, p)
						}
						if o.Keep(p) {
							kept++
						}
					}
					split = split || (kept > 0 && kept < len(rows))
				}
				dl, dg := compareMB(t, c.Name, st.Step, j, mb, capselMB(t, o, mb, st.NumItems, c.weighting))
				w := worst[key]
				worst[key] = [2]float64{math.Max(w[0], dl), math.Max(w[1], dg)}
			}
		}
		if o.Thresholded() && !split {
			t.Errorf("%s: the threshold never splits a micro-batch, so the test cannot tell kept tokens from all of them", c.Name)
		}
	}
	for _, k := range slices.Sorted(mapsKeys(worst)) {
		t.Logf("%s: max |Δ loss| %.2g, max |Δ ∂L/∂z| %.2g against capsel over %d fixed objectives", k, worst[k][0], worst[k][1], len(harnessSpecs))
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// autoChoices recomputes auto-theory's choice at each step with
// train.BestByTheory on the step's scored tokens (all micro-batches, or the
// first only), re-ranking when capsel's trainer does: at the first step and
// every Every steps.
func autoChoices(t *testing.T, a AutoTheorySettings, steps []harnessStep, firstOnly bool) ([]string, float64) {
	t.Helper()
	cfg := train.DefaultConfig().Auto
	cfg.Every, cfg.Noise, cfg.Rate, cfg.Candidates = a.Every, a.Noise, a.Rate, a.Candidates
	cfg.Contexts = math.MaxInt32 // rank every token, as the exported code does
	var out []string
	minMargin := math.Inf(1)
	cur := ""
	for k, st := range steps {
		if cur == "" || k%a.Every == 0 {
			var ctxs []theory.Context
			for j, mb := range st.MBs {
				if firstOnly && j > 0 {
					break
				}
				for _, r := range scoredRows(j, mb) {
					q := make([]float64, len(r.lq))
					var s float64
					for i, l := range r.lq {
						q[i] = math.Exp(l)
						s += q[i]
					}
					for i := range q {
						q[i] /= s
					}
					ctxs = append(ctxs, theory.Context{Q: q, Label: r.y, Truth: theory.Unknown})
				}
			}
			best, err := train.BestByTheory(cfg, ctxs)
			if err != nil {
				t.Fatal(err)
			}
			cur = best.String()
			// How close the runner-up came: a choice within float32 noise of a tie would make the test meaningless.
			objs := make([]objectives.Objective, len(cfg.Candidates))
			for i, c := range cfg.Candidates {
				objs[i] = objectives.MustParse(c)
			}
			est, err := theory.Rank(objs, ctxs, theory.NoiseModel{E: cfg.Noise})
			if err != nil {
				t.Fatal(err)
			}
			if len(est) > 1 && cfg.Rate == "raw" {
				minMargin = math.Min(minMargin, (est[0].Rate-est[1].Rate)/math.Abs(est[0].Rate))
			}
		}
		out = append(out, cur)
	}
	return out, minMargin
}

// historyChoices turns the hook's history of [step, choice] into the choice
// in force at each of n steps.
func historyChoices(h [][2]any, n int) []string {
	out := make([]string, n)
	cur := ""
	hi := 0
	for k := range n {
		for hi < len(h) && int(h[hi][0].(float64)) == k {
			cur = h[hi][1].(string)
			hi++
		}
		out[k] = cur
	}
	return out
}

// TestHarnessAutoTheory runs the auto-theory hook for 8 steps: through
// TRL's plain SFTTrainer at accumulation 1 and 4, through
// CapselSFTTrainer at 4, through the ms-swift plugin and callback at 4, and
// with a checkpoint saved after step 4 and resumed in a fresh process. It
// checks the choice sequence against train.BestByTheory on the same logits,
// and every micro-batch's loss and gradient under the choice in force.
func TestHarnessAutoTheory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python")
	}
	py := torchtest.Python(t)
	dir := t.TempDir()
	a := harnessAuto()
	trlFile := writeExport(t, dir, "auto-theory", FormatTRL, WeightingTokens)
	swiftFile := writeExport(t, dir, "auto-theory", FormatSwift, WeightingTokens)
	base := harnessCase{spec: "auto-theory", weighting: WeightingTokens, B: 2, T: 8, V: 24, Steps: 10, Seed: 7, LR: 30}
	mk := func(name, trainer string, accum int) harnessCase {
		c := base
		c.Name, c.Trainer, c.Accum, c.File = name, trainer, accum, trlFile
		c.Workdir = filepath.Join(dir, name)
		if trainer == "swift" {
			c.File, c.LossType, c.Callbacks = swiftFile, "capsel_auto_theory", []string{"capsel_auto_theory"}
		}
		return c
	}
	four := 4
	no := false
	acc1 := mk("sft-accum1", "sft", 1)
	acc1.Seed, acc1.LR = 5, 50 // a run whose choice moves back and forth at accumulation 1
	cases := []harnessCase{
		acc1,
		mk("sft-accum4", "sft", 4),
		mk("capsel-accum4", "capsel", 4),
		mk("swift-accum4", "swift", 4),
	}
	resumable := []harnessCase{mk("capsel-accum4-resumed", "capsel", 4), mk("swift-accum4-resumed", "swift", 4), mk("no-restore", "capsel", 4)}
	for i := range resumable {
		resumable[i].Resume = &four
	}
	cases = append(cases, resumable...)
	res := runHarness(t, py, cases)
	second := slices.Clone(resumable)
	for i := range second {
		second[i].Phase = "second"
	}
	second[2].Restore = &no
	res2 := runHarness(t, py, second)

	check := func(c harnessCase, r harnessResult, firstOnly bool) []string {
		t.Helper()
		if r.Error != "" {
			t.Fatalf("%s: %s", c.Name, r.Error)
		}
		want, margin := autoChoices(t, a, r.Steps, firstOnly)
		if margin < 1e-4 {
			t.Fatalf("%s: a ranking was within %.2g of a tie; change the seed", c.Name, margin)
		}
		got := historyChoices(r.History, len(r.Steps))
		if !slices.Equal(got, want) {
			t.Errorf("%s: choices %v, capsel's %v", c.Name, got, want)
		}
		var dl, dg float64
		for k, st := range r.Steps {
			for j, mb := range st.MBs {
				l, g := compareMB(t, c.Name, k, j, mb, capselMB(t, objectives.MustParse(want[k]), mb, st.NumItems, WeightingTokens))
				dl, dg = math.Max(dl, l), math.Max(dg, g)
			}
		}
		t.Logf("%-22s choices %v; max |Δ loss| %.2g, max |Δ ∂L/∂z| %.2g", c.Name, got, dl, dg)
		return got
	}
	sft1 := check(cases[0], res[0], false)
	sft4 := check(cases[1], res[1], true)
	if full, _ := autoChoices(t, a, res[1].Steps, false); !slices.Equal(full, sft4) {
		t.Logf("sft-accum4: ranking the whole step would have given %v: a plain SFTTrainer ranks only the first micro-batch above accumulation 1", full)
	}
	capsel4 := check(cases[2], res[2], false)
	check(cases[3], res[3], false)
	if len(slices.Compact(slices.Clone(sft1))) < 2 || len(slices.Compact(slices.Clone(capsel4))) < 2 {
		t.Errorf("auto-theory never changed its choice (%v, %v): the runs test no switch; tune the harness", sft1, capsel4)
	}
	// A run resumed from a checkpoint after step 4 in a fresh process ends as
	// the uninterrupted one: the same choices and bit-identical gradients.
	for i, c := range resumable[:2] {
		whole := res[2]
		if c.Trainer == "swift" {
			whole = res[3]
		}
		first, rest := res[i+4], res2[i]
		if first.Error != "" || rest.Error != "" {
			t.Fatalf("%s: %s %s", c.Name, first.Error, rest.Error)
		}
		joined := append(slices.Clone(first.Steps), rest.Steps...)
		if len(joined) != len(whole.Steps) {
			t.Fatalf("%s: %d + %d steps, want %d", c.Name, len(first.Steps), len(rest.Steps), len(whole.Steps))
		}
		if got, want := historyChoices(rest.History, 10), historyChoices(whole.History, 10); !slices.Equal(got, want) {
			t.Errorf("%s: resumed choices %v, uninterrupted %v", c.Name, got, want)
		}
		for k := range joined {
			for j := range joined[k].MBs {
				g, w := joined[k].MBs[j], whole.Steps[k].MBs[j]
				if g.Loss != w.Loss || !slices.EqualFunc(flat(g.Grad), flat(w.Grad), func(a, b float64) bool { return a == b }) {
					t.Errorf("%s: step %d micro-batch %d differs from the uninterrupted run", c.Name, k, j)
				}
			}
		}
	}
	if e := res2[2].Error; !strings.Contains(e, "restore_callback_states_from_checkpoint") {
		t.Errorf("resume without restore_callback_states_from_checkpoint: %q, want an error naming it", e)
	}
}

func flat(x [][][]float64) []float64 {
	var out []float64
	for _, a := range x {
		for _, b := range a {
			out = append(out, b...)
		}
	}
	return out
}

// TestHarnessDDP runs the code on two ranks (DDP over gloo, each rank its
// own shard of the data) at accumulation 2: the Trainer gathers
// num_items_in_batch over the ranks and multiplies the loss by their number,
// and DDP averages the parameters' gradients. Under the tokens weighting each
// rank's logit gradient is then 2× capsel's on the batch of both ranks; under
// the fork weighting the code divides the Trainer's factor back out, so it is
// capsel's on the micro-batch. auto-theory all-reduces its rate sums, so both
// ranks make capsel's choice on the tokens of both.
func TestHarnessDDP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python")
	}
	py := torchtest.Python(t)
	dir := t.TempDir()
	var cases []harnessCase
	for _, spec := range []string{"GeneralFamily-10", "OnlyTopLogP-0.2", "asft-0.1"} {
		for _, w := range []Weighting{WeightingTokens, WeightingFork} {
			o := objectives.MustParse(spec)
			c := harnessCase{spec: spec, weighting: w, File: writeExport(t, dir, spec, FormatTRL, w), Trainer: "sft",
				B: 2, T: 8, V: 24, Accum: 2, Steps: 2, Seed: 3, LR: 0.5, Init: 2.5, World: 2, Ref: o.Form() == objectives.FormAnchored}
			if c.Ref {
				c.Trainer = "capsel"
			}
			c.Name = fmt.Sprintf("%s/%s/ddp2", spec, w)
			c.Workdir = filepath.Join(dir, strings.NewReplacer("/", "_").Replace(c.Name))
			cases = append(cases, c)
		}
	}
	auto := harnessCase{Name: "auto-theory/ddp2", spec: "auto-theory", weighting: WeightingTokens, File: writeExport(t, dir, "auto-theory", FormatTRL, WeightingTokens),
		Trainer: "capsel", B: 2, T: 8, V: 24, Accum: 2, Steps: 10, Seed: 7, LR: 30, World: 2, Workdir: filepath.Join(dir, "auto")}
	cases = append(cases, auto)
	res := runHarness(t, py, cases)
	var dl, dg float64
	for i, c := range cases {
		if len(res[i].Ranks) != 2 {
			t.Fatalf("%s: %d ranks reported, want 2", c.Name, len(res[i].Ranks))
		}
		ranks := res[i].Ranks
		for _, r := range ranks {
			if r.Error != "" {
				t.Fatalf("%s: %s", c.Name, r.Error)
			}
		}
		var choices []string
		if c.spec == "auto-theory" {
			// capsel's choice on the step's micro-batches of both ranks.
			steps := make([]harnessStep, len(ranks[0].Steps))
			for k := range steps {
				steps[k] = harnessStep{MBs: append(slices.Clone(ranks[0].Steps[k].MBs), ranks[1].Steps[k].MBs...)}
			}
			want, margin := autoChoices(t, harnessAuto(), steps, false)
			if margin < 1e-4 {
				t.Fatalf("%s: a ranking was within %.2g of a tie; change the seed", c.Name, margin)
			}
			for rk, r := range ranks {
				if got := historyChoices(r.History, len(steps)); !slices.Equal(got, want) {
					t.Errorf("%s rank %d: choices %v, capsel's on both ranks' tokens %v", c.Name, rk, got, want)
				}
			}
			choices = want
			t.Logf("%s: choices %v on both ranks", c.Name, want)
		}
		for rk, r := range ranks {
			for k, st := range r.Steps {
				o := objectives.MustParse(c.spec)
				if choices != nil {
					o = objectives.MustParse(choices[k])
				}
				n := 0
				for _, other := range ranks {
					for _, mb := range other.Steps[k].MBs {
						n += len(scoredRows(0, mb))
					}
				}
				if st.NumItems != n {
					t.Errorf("%s rank %d step %d: num_items_in_batch %d, both ranks' scored tokens %d", c.Name, rk, k, st.NumItems, n)
				}
				for j, mb := range st.MBs {
					want := capselMB(t, o, mb, n, c.weighting)
					if c.weighting == WeightingTokens {
						want.loss *= 2 // the Trainer's × num_processes, which DDP's average undoes on the weights
						for b := range want.grad {
							for i := range want.grad[b] {
								for v := range want.grad[b][i] {
									want.grad[b][i][v] *= 2
								}
							}
						}
					}
					l, g := compareMB(t, fmt.Sprintf("%s rank %d", c.Name, rk), k, j, mb, want)
					dl, dg = math.Max(dl, l), math.Max(dg, g)
				}
			}
		}
	}
	t.Logf("two ranks, accumulation 2: max |Δ loss| %.2g, max |Δ ∂L/∂z| %.2g against capsel", dl, dg)
}
