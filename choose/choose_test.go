package choose

import (
	"strings"
	"testing"

	"github.com/capsel/capsel/continuum"
	"github.com/capsel/capsel/labelnoise"
)

func est(v, lo, hi float64) *labelnoise.Estimate {
	return &labelnoise.Estimate{Value: v, CI: [2]float64{lo, hi}}
}

func TestDecide(t *testing.T) {
	cuts := continuum.DefaultCuts
	flags := func(n int) []labelnoise.Flag { return make([]labelnoise.Flag, n) }
	cases := []struct {
		name        string
		m           labelnoise.Result
		objective   string
		fallback    string
		leaning     bool
		dropFlagged bool
		reason      string
	}{
		{"strong, clean, knowledge in whole examples",
			labelnoise.Result{Capability: *est(0.9, 0.88, 0.92), RawMeanP: 0.9, Noise: est(0, 0, 0.02), Known: est(0.9, 0.85, 0.95)},
			Anchored, "OnlyTopLogP-0.2", true, false, "model-strong"},
		{"intermediate, measurably noisy, whole examples",
			labelnoise.Result{Capability: *est(0.5, 0.45, 0.55), RawMeanP: 0.35, Noise: est(0.3, 0.2, 0.4), Known: est(0.5, 0.4, 0.6), Flags: flags(18)},
			Anchored, "OnlyTopLogP-0.2", true, false, "measurably noisy"},
		{"intermediate, noisy tokens, knowledge spread over the examples",
			labelnoise.Result{Capability: *est(0.56, 0.54, 0.58), RawMeanP: 0.4, TokenNoise: est(0.3, 0.25, 0.35)},
			Anchored, "p", true, false, "confident tokens"},
		{"intermediate, clean",
			labelnoise.Result{Capability: *est(0.5, 0.45, 0.55), RawMeanP: 0.5, Noise: est(0.01, 0, 0.03), Known: est(0.5, 0.4, 0.6), Flags: flags(1)},
			"nll", "nll", false, true, "Drop the 1 flagged"},
		{"weak, noise not measurable",
			labelnoise.Result{Capability: *est(0.06, 0.05, 0.07), RawMeanP: 0.06},
			"nll", "nll", false, false, "cannot be measured"},
	}
	for _, c := range cases {
		got := Decide(&c.m, cuts)
		if got.Objective != c.objective || got.Fallback != c.fallback || got.Leaning != c.leaning || got.DropFlagged != c.dropFlagged {
			t.Errorf("%s: %s (fallback %s) leaning %v drop %v; want %s (%s) %v %v", c.name, got.Objective, got.Fallback, got.Leaning, got.DropFlagged, c.objective, c.fallback, c.leaning, c.dropFlagged)
		}
		text := strings.Join(got.Reasons, " ")
		if !strings.Contains(text, c.reason) {
			t.Errorf("%s: reasons %q do not mention %q", c.name, text, c.reason)
		}
		// The last reason states the objective, so none contradicts it.
		last := got.Reasons[len(got.Reasons)-1]
		if !strings.HasPrefix(last, "So ") {
			t.Errorf("%s: the reasons end with %q, not the decision", c.name, last)
		}
	}
}
