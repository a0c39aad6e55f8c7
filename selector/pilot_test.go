package selector

import (
	"math"
	"strings"
	"testing"
)

// arm builds a pilot arm from per-example exact matches and token
// accuracies.
func arm(name string, em, acc []float64) PilotArm {
	return PilotArm{Objective: name, ExactMatch: em, TokenAccuracy: acc}
}

func repeat(x float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = x
	}
	return out
}

// TestPairedCI checks the interval against a hand computation: the
// differences 1, 2, 3, 4 have mean 2.5 and standard deviation
// √(5/3) = 1.2910, so s/√4 = 0.6455; t₀.₉₇₅ with 3 degrees of freedom is
// 3.182446 (any t table), giving 2.5 ± 2.0543.
func TestPairedCI(t *testing.T) {
	mean, lo, hi := pairedCI([]float64{2, 4, 6, 8}, []float64{1, 2, 3, 4})
	half := 3.182446305284263 * math.Sqrt(5.0/3) / 2
	if math.Abs(mean-2.5) > 1e-12 || math.Abs(lo-(2.5-half)) > 1e-9 || math.Abs(hi-(2.5+half)) > 1e-9 {
		t.Errorf("pairedCI = %v [%v, %v], want 2.5 [%v, %v]", mean, lo, hi, 2.5-half, 2.5+half)
	}
	if _, lo, hi := pairedCI([]float64{1}, []float64{0}); !math.IsInf(lo, -1) || !math.IsInf(hi, 1) {
		t.Errorf("one difference: [%v, %v], want unbounded", lo, hi)
	}
}

func TestDecidePilotExactMatch(t *testing.T) {
	const n = 12
	// p matches every held-out example, nll none, auto half of them.
	half := make([]float64, n)
	for i := 0; i < n; i += 2 {
		half[i] = 1
	}
	d, err := DecidePilot([]PilotArm{
		arm("nll", repeat(0, n), repeat(0.5, n)),
		arm("p", repeat(1, n), repeat(0.9, n)),
		arm("auto", half, repeat(0.7, n)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Winner != "p" || d.DecidedBy != MetricExactMatch || d.Examples != n || len(d.Leads) != 2 {
		t.Fatalf("decision %+v, want p by exact match over 2 others", d)
	}
	for _, l := range d.Leads {
		if !(l.Lo > 0) {
			t.Errorf("winning lead %+v has an interval reaching 0", l)
		}
	}
	// Over auto: differences 0, 1, 0, 1, …: mean 0.5, sd √(3/11).
	for _, l := range d.Leads {
		if l.Over == "auto" && math.Abs(l.Diff-0.5) > 1e-12 {
			t.Errorf("lead over auto %v, want 0.5", l.Diff)
		}
	}
	if d.BestFixed != "p" {
		t.Errorf("best fixed %q, want p", d.BestFixed)
	}
}

// TestDecidePilotFallsBackToTokenAccuracy: exact match 0 for every
// objective (the first-hour report's pilot) cannot decide, which the
// decision says; token accuracy then does.
func TestDecidePilotFallsBackToTokenAccuracy(t *testing.T) {
	const n = 15
	acc := func(base float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = base + 0.01*float64(i%3) // per-example variation, same for every arm
		}
		return out
	}
	d, err := DecidePilot([]PilotArm{
		arm("nll", repeat(0, n), acc(0.40)),
		arm("OnlyTopLogP-0.2", repeat(0, n), acc(0.55)),
		arm("p", repeat(0, n), acc(0.48)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Winner != "OnlyTopLogP-0.2" || d.DecidedBy != MetricTokenAccuracy {
		t.Fatalf("decision %+v, want OnlyTopLogP-0.2 by token accuracy", d)
	}
	if len(d.Notes) != 1 || !strings.Contains(d.Notes[0], "exact match is 0 for every objective") {
		t.Errorf("notes %q: want one saying exact match cannot separate them", d.Notes)
	}
}

// TestDecidePilotTie: a lead inside the noise is no win.
func TestDecidePilotTie(t *testing.T) {
	em1 := []float64{1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0}
	em2 := []float64{0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0}
	acc1 := []float64{0.9, 0.5, 0.8, 0.7, 0.4, 0.9, 0.5, 0.8, 0.9, 0.3, 0.8, 0.4}
	acc2 := []float64{0.6, 0.8, 0.8, 0.8, 0.5, 0.8, 0.7, 0.5, 0.7, 0.5, 0.5, 0.5}
	d, err := DecidePilot([]PilotArm{arm("nll", em1, acc1), arm("auto", em2, acc2)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Winner != "" || d.BestFixed != "nll" {
		t.Fatalf("decision %+v: want no winner (and nll as the only fixed arm)", d)
	}
	if !strings.Contains(d.Reason, "includes 0") || len(d.Notes) != 1 || !strings.Contains(d.Notes[0], "not decided by exact match") {
		t.Errorf("reason %q, notes %q: want the closest call on both metrics", d.Reason, d.Notes)
	}
	r := Recommendation{Objective: "auto", Fallback: "nll", Confidence: "low"}
	r.ApplyPilot(d)
	if r.Objective != "auto" || r.Confidence != "low" || r.PilotDecision == nil || len(r.Rationale) != 1 ||
		!strings.Contains(r.Rationale[0], "did not settle it") || !strings.Contains(r.Rationale[0], "stays auto") {
		t.Errorf("after a tie: %+v", r)
	}
}

func TestDecidePilotTooFewExamples(t *testing.T) {
	d, err := DecidePilot([]PilotArm{arm("nll", []float64{0}, []float64{0.2}), arm("p", []float64{1}, []float64{0.9})})
	if err != nil {
		t.Fatal(err)
	}
	if d.Winner != "" || !strings.Contains(d.Reason, "only 1 held-out examples") {
		t.Errorf("decision %+v: want no winner on one example, and why", d)
	}
	if _, err := DecidePilot([]PilotArm{arm("nll", []float64{0, 1}, []float64{0.2}), arm("p", []float64{1}, []float64{0.9})}); err == nil {
		t.Error("arms of different lengths: no error")
	}
	if _, err := DecidePilot([]PilotArm{arm("nll", nil, nil)}); err == nil {
		t.Error("one arm: no error")
	}
}

// TestApplyPilotWinner: the winner becomes the recommendation; auto's
// fallback becomes the best fixed objective when the pilot separates those.
func TestApplyPilotWinner(t *testing.T) {
	const n = 10
	d, err := DecidePilot([]PilotArm{
		arm("nll", repeat(0, n), repeat(0.3, n)),
		arm("p", repeat(0.5, n), repeat(0.5, n)),
		arm("auto", repeat(1, n), repeat(0.8, n)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Winner != "auto" || d.BestFixed != "p" {
		t.Fatalf("decision %+v: want auto, best fixed p", d)
	}
	r := Recommendation{Objective: "nll", Fallback: "nll", Confidence: "low"}
	r.ApplyPilot(d)
	if r.Objective != "auto" || r.Fallback != "p" || r.Confidence != "medium" || len(r.Rationale) != 2 ||
		!strings.Contains(r.Rationale[0], "train with auto rather than nll") {
		t.Errorf("after the pilot: %+v", r)
	}
	// A fixed winner is its own fallback.
	d.Winner, d.BestFixed = "p", "p"
	r = Recommendation{Objective: "auto", Fallback: "nll", Confidence: "medium"}
	r.ApplyPilot(d)
	if r.Objective != "p" || r.Fallback != "p" || r.Confidence != "medium" {
		t.Errorf("after a fixed winner: %+v", r)
	}
}
