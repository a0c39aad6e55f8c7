package selector

import (
	"math"
	"strings"
	"testing"

	"github.com/capsel/capsel/labelnoise"
)

func est(v, lo, hi float64) *labelnoise.Estimate {
	return &labelnoise.Estimate{Value: v, CI: [2]float64{lo, hi}}
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
	if r.Objective != "asft-0.1" || r.Fallback != "OnlyTopLogP-0.2" || !r.Leaning {
		t.Errorf("objective %s, fallback %s (leaning %v), want asft-0.1, OnlyTopLogP-0.2", r.Objective, r.Fallback, r.Leaning)
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
