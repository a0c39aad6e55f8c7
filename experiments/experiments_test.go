package experiments

import (
	"math"
	"strings"
	"testing"
)

func TestMeanCI(t *testing.T) {
	// Mean 2, sample sd 1 over n = 4: half-width t_{0.975,3}·1/2 with
	// t_{0.975,3} = 3.182446 (standard t table).
	iv := MeanCI([]float64{1, 2, 2, 3})
	sd := math.Sqrt(2.0 / 3)
	want := 3.182446305 * sd / 2
	if math.Abs(iv.Mean-2) > 1e-12 || math.Abs((iv.Hi-iv.Lo)/2-want) > 1e-6 {
		t.Errorf("MeanCI = %+v, want 2 ± %v", iv, want)
	}
	if d := Paired([]float64{3, 4, 5}, []float64{1, 2, 3}); d.Mean != 2 || d.Lo != 2 || !d.Excludes(0) {
		t.Errorf("Paired constant difference: %+v", d)
	}
	if one := MeanCI([]float64{0.5}); one.Lo != 0.5 || one.Hi != 0.5 {
		t.Errorf("one value: %+v", one)
	}
}

func TestFactTask(t *testing.T) {
	task := NewFactTask(7, 50, 30)
	again := NewFactTask(7, 50, 30)
	if task.Targets[3] != again.Targets[3] || len(task.Distractors) != 30 {
		t.Fatal("the task is not deterministic")
	}
	keys := map[string]bool{}
	for _, f := range append(append([]Fact(nil), task.Targets...), task.Distractors...) {
		if keys[f.Key] || len(f.Key) != 4 || len(f.Value) < 4 || len(f.Value) > 14 {
			t.Fatalf("fact %+v: keys must be unique, 4 letters; values 4–14", f)
		}
		keys[f.Key] = true
	}
	// Coverage 0.4 puts the first 20 targets after all 30 distractors.
	pre := task.Pretraining(0.4)
	if len(pre) != 50 || pre[30].Response != task.Targets[0].Key+"="+task.Targets[0].Value {
		t.Errorf("pretraining: %d documents, first target %q", len(pre), pre[30].Response)
	}
	// Noise 0.3 corrupts round(0.3·50) = 15 labels, and only labels.
	sft := task.SFT(0.3, 1)
	n := 0
	for i, bad := range task.Noisy(sft) {
		if bad {
			n++
		}
		if sft[i].Prompt != task.Targets[i].Key+"=" {
			t.Fatalf("prompt %d changed", i)
		}
	}
	if n != 15 {
		t.Errorf("%d noisy labels, want 15", n)
	}
	// Another seed corrupts another subset.
	same := true
	for i, bad := range task.Noisy(task.SFT(0.3, 2)) {
		if bad != task.Noisy(sft)[i] {
			same = false
		}
	}
	if same {
		t.Error("seeds 1 and 2 corrupt the same facts")
	}
	if strings.Count(JSONL(sft), "\n") != 50 {
		t.Error("JSONL: one line per example")
	}
}

func TestVerdicts(t *testing.T) {
	iv := func(m, lo, hi float64) Interval { return Interval{Mean: m, Lo: lo, Hi: hi, N: 5} }
	cell := func(c, mp float64, pDiff Interval) Cell {
		return Cell{Coverage: c, Noise: 0.5, Base: BaseInfo{MeanP: mp}, Results: []Metrics{
			{Objective: "nll"},
			{Objective: "p", DiffToken: pDiff, DiffExact: pDiff, DiffMeanP: pDiff},
			{Objective: "auto", DiffToken: iv(1, 1, 1)}, // adaptive: never counted
		}}
	}
	res := &ContinuumResult{Setup: Setup{Coverages: []float64{0, 1}, Noises: []float64{0.5}},
		Cells: []Cell{cell(0, 0.06, iv(-0.3, -0.35, -0.25)), cell(1, 0.83, iv(0.08, 0.05, 0.11))}}
	v := res.Verdicts()
	if len(v) != 3 || !strings.Contains(v[0], "**The crossover shows**") {
		t.Fatalf("verdicts: %q", v)
	}
	res.Cells[1] = cell(1, 0.83, iv(0.02, -0.01, 0.05))
	if v := res.Verdicts(); !strings.Contains(v[0], "**no crossover**") {
		t.Errorf("a CI that includes 0 is not a win: %q", v[0])
	}
}
