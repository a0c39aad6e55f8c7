package selector

import (
	"math"
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
		leaning     bool
		dropFlagged bool
		reason      string
	}{
		{"strong, clean, knowledge in whole examples",
			labelnoise.Result{Capability: *est(0.9, 0.88, 0.92), RawMeanP: 0.9, Noise: est(0, 0, 0.02), Known: est(0.9, 0.85, 0.95)},
			"OnlyTopLogP-0.2", true, false, "model-strong"},
		{"intermediate, measurably noisy, whole examples",
			labelnoise.Result{Capability: *est(0.5, 0.45, 0.55), RawMeanP: 0.35, Noise: est(0.3, 0.2, 0.4), Known: est(0.5, 0.4, 0.6), Flags: flags(18)},
			"OnlyTopLogP-0.2", true, false, "measurably noisy"},
		{"intermediate, noisy tokens, knowledge spread over the examples",
			labelnoise.Result{Capability: *est(0.56, 0.54, 0.58), RawMeanP: 0.4, TokenNoise: est(0.3, 0.25, 0.35)},
			"p", true, false, "confident tokens"},
		{"intermediate, clean",
			labelnoise.Result{Capability: *est(0.5, 0.45, 0.55), RawMeanP: 0.5, Noise: est(0.01, 0, 0.03), Known: est(0.5, 0.4, 0.6), Flags: flags(1)},
			"nll", false, true, "Drop the 1 flagged"},
		{"weak, noise not measurable",
			labelnoise.Result{Capability: *est(0.06, 0.05, 0.07), RawMeanP: 0.06},
			"nll", false, false, "cannot be measured"},
	}
	for _, c := range cases {
		got := Decide(&c.m, cuts)
		if got.Objective != c.objective || got.Leaning != c.leaning || got.DropFlagged != c.dropFlagged {
			t.Errorf("%s: %s leaning %v drop %v; want %s %v %v", c.name, got.Objective, got.Leaning, got.DropFlagged, c.objective, c.leaning, c.dropFlagged)
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

// With the noise-aware measurement the recommendation places the model by Ĉ,
// evaluates the theory at the measured noise rate, and keeps the raw mean p
// beside Ĉ.
func TestRecommendNoiseAware(t *testing.T) {
	ev := syntheticEvidence(t, 0.5, math.NaN(), 5) // raw mean p 0.5: intermediate as given
	ev.NoiseAware = &labelnoise.Result{Method: labelnoise.Greedy, Examples: 200, Agree: 90,
		Capability: *est(0.82, 0.8, 0.84), RawMeanP: ev.MeanP, Noise: est(0.4, 0.32, 0.48), Known: est(0.75, 0.7, 0.8),
		Flags: make([]labelnoise.Flag, 60)}
	r, err := Recommend(ev, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if r.Region != RegionStrong || r.CapabilitySource != "noise-aware" || r.Capability != 0.82 || r.RawMeanP != ev.MeanP {
		t.Errorf("region %s, capability %v (%s), raw %v", r.Region, r.Capability, r.CapabilitySource, r.RawMeanP)
	}
	if r.Objective != "OnlyTopLogP-0.2" || !r.Leaning {
		t.Errorf("objective %s (leaning %v), want OnlyTopLogP-0.2", r.Objective, r.Leaning)
	}
	if r.NoiseSource != "measured" || r.Noise != 0.4 {
		t.Errorf("theory at noise %v (%s), want the measured 0.4", r.Noise, r.NoiseSource)
	}
	if r.NoiseAware == nil || r.NoiseAware.Flagged != 60 {
		t.Errorf("noise-aware summary %+v", r.NoiseAware)
	}
	if !strings.Contains(r.Rationale[0], "Ĉ = 0.820") {
		t.Errorf("the rationale starts with %q, not the capability", r.Rationale[0])
	}
	// --noise overrides the measurement only when asked to.
	opt := DefaultOptions()
	opt.AssumeNoise, opt.Noise = true, 0.05
	r2, _ := Recommend(ev, opt)
	if r2.NoiseSource != "assumed" || r2.Noise != 0.05 {
		t.Errorf("assumed noise: %v (%s)", r2.Noise, r2.NoiseSource)
	}
}
