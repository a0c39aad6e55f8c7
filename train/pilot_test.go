package train

import (
	"context"
	"math"
	"strings"
	"testing"
)

// TestPilot runs a small sweep and checks what it reports against its own
// parts: the split, one score per held-out example per arm, totals that
// agree with Evaluate on the held-out set for a run trained the same way.
func TestPilot(t *testing.T) {
	base, err := New(toyConfig("nll", 20), nil, toyData())
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, base, 20)
	ck := base.Checkpoint()
	var data []Example
	for r := range 2 { // 24 examples: the 10th and 20th are held out
		for _, ex := range toyData() {
			ex.Line += 12 * r
			data = append(data, ex)
		}
	}
	cfg := PilotConfig{Objectives: []string{"nll", "p"}, Steps: 4, Batch: 4, LR: 1e-3, HoldEvery: 10, Seeds: 2}
	var calls, last int
	run, err := Pilot(context.Background(), ck, data, cfg, func(done, total int, _ string) {
		calls++
		if done != last+1 || total != 2*2*4 {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if run.Fit != 22 || run.Held != 2 || run.Seeds != 2 || run.Steps != 4 || len(run.Arms) != 2 || calls != 16 {
		t.Fatalf("run %+v after %d progress calls; want 22 fit, 2 held out, 2 arms, 16 steps", run, calls)
	}
	held := []Example{data[9], data[19]}
	for _, a := range run.Arms {
		if len(a.PerExample.ExactMatch) != 2 || len(a.PerExample.TokenAccuracy) != 2 || a.Examples != 2 {
			t.Fatalf("%s: %+v", a.Objective, a)
		}
		// Seed by seed, the same fine-tune evaluated on the held-out set as
		// a whole: the arm's totals are their means.
		var em, acc float64
		for seed := uint64(1); seed <= 2; seed++ {
			c := DefaultConfig()
			c.Objective, c.Steps, c.Batch, c.LR, c.Seed = a.Objective, 4, 4, 1e-3, seed
			tr, err := New(c, ck, append(append(append([]Example(nil), data[:9]...), data[10:19]...), data[20:]...))
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, tr, 4)
			ev, err := Evaluate(context.Background(), tr.Model(), tr.Tokenizer(), held, EvalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			em += ev.ExactMatch / 2
			acc += ev.TokenAccuracy / 2
		}
		if math.Abs(a.ExactMatch-em) > 1e-12 || math.Abs(a.TokenAccuracy-acc) > 1e-12 {
			t.Errorf("%s: exact match %v, token accuracy %v; the same runs evaluated on the held-out set give %v, %v",
				a.Objective, a.ExactMatch, a.TokenAccuracy, em, acc)
		}
		var meanEM float64
		for _, x := range a.PerExample.ExactMatch {
			meanEM += x / 2
		}
		if math.Abs(meanEM-a.ExactMatch) > 1e-12 {
			t.Errorf("%s: per-example exact matches average %v, total %v", a.Objective, meanEM, a.ExactMatch)
		}
	}

	// Too few examples to hold one out, and bad settings, are errors.
	if _, err := Pilot(context.Background(), ck, data[:9], cfg, nil); err == nil || !strings.Contains(err.Error(), "at least 10") {
		t.Errorf("9 examples: %v", err)
	}
	bad := cfg
	bad.Objectives = []string{"nll", "GeneralFamly-2"}
	if _, err := Pilot(context.Background(), ck, data, bad, nil); err == nil || !strings.Contains(err.Error(), "GeneralFamily") {
		t.Errorf("bad spec: %v", err)
	}
}
