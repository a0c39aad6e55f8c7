package theory

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/capsel/capsel/objectives"
)

// strongContext is a model-strong distribution over v tokens: most of the
// mass on token top, a plausible runner-up, the rest spread thin.
func strongContext(rng *rand.Rand, v, top int) []float64 {
	q := randomSimplex(rng, v, 1)
	for i := range q {
		q[i] *= 0.15
	}
	q[top] += 0.7
	q[(top+1)%v] += 0.15
	return q
}

// TestSplitKnownTruth builds a clean part (labels equal to the truth) and a
// noisy part (labels that differ from it) once, and mixes them at several
// noise rates by repeating each part. The paper's A is the mean Δ over the
// clean part and B over the noisy part, so E* = |A|/(B − A) must come out
// the same at every mix, equal to the value computed from the parts by hand.
// The flat split of the same samples with the truths hidden moves with the
// mix: the defect that the split fixes.
func TestSplitKnownTruth(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const v = 12
	var clean, noisy []Context
	for i := range 40 {
		top := i % v
		q := strongContext(rng, v, top)
		clean = append(clean, Context{Q: q, Label: top, Truth: top})
		// A noisy label: the truth is the model's favourite, the label a
		// token it finds unlikely.
		q = strongContext(rng, v, top)
		noisy = append(noisy, Context{Q: q, Label: (top + 2 + i%(v-2)) % v, Truth: top})
	}
	o1, o2 := objectives.P(), objectives.NLL()
	// By hand: A and B straight from the per-context rate.
	var a, b float64
	for _, c := range clean {
		a += Rate(o1, c.Q, c.Label, c.Truth) - Rate(o2, c.Q, c.Label, c.Truth)
	}
	for _, c := range noisy {
		b += Rate(o1, c.Q, c.Label, c.Truth) - Rate(o2, c.Q, c.Label, c.Truth)
	}
	a /= float64(len(clean))
	b /= float64(len(noisy))
	if !(a < 0 && b > 0) {
		t.Fatalf("constructed parts: A = %v, B = %v; want A < 0 < B (model-strong)", a, b)
	}
	want := -a / (b - a)
	mixes := [][2]int{{9, 1}, {7, 3}, {1, 1}, {1, 4}} // copies of the clean and noisy parts: E = 0.1, 0.3, 0.5, 0.8
	var flat []float64
	for _, m := range mixes {
		var sample, hidden []Context
		for range m[0] {
			sample = append(sample, clean...)
		}
		for range m[1] {
			sample = append(sample, noisy...)
		}
		e := float64(m[1]) / float64(m[0]+m[1])
		cmp, err := Compare(o1, o2, sample, NoiseModel{E: e})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(cmp.A-a) > 1e-15 || math.Abs(cmp.B-b) > 1e-15 || math.Abs(cmp.Crossover-want) > 1e-12 {
			t.Errorf("noise %.1f: A %v B %v E* %v, want %v, %v, %v (independent of the mix)", e, cmp.A, cmp.B, cmp.Crossover, a, b, want)
		}
		// At the sample's own noise rate the rate is the observed one.
		if math.Abs(cmp.First.Rate-cmp.First.Observed) > 1e-15 {
			t.Errorf("noise %.1f: rate at the sample's noise %v, observed %v", e, cmp.First.Rate, cmp.First.Observed)
		}
		if cmp.First.CleanWeight != float64(m[0]*len(clean)) || cmp.First.NoisyWeight != float64(m[1]*len(noisy)) {
			t.Errorf("noise %.1f: weights %v, %v", e, cmp.First.CleanWeight, cmp.First.NoisyWeight)
		}
		for _, c := range sample {
			c.Truth = Unknown
			hidden = append(hidden, c)
		}
		fc, err := Compare(o1, o2, hidden, NoiseModel{E: e})
		if err != nil {
			t.Fatal(err)
		}
		flat = append(flat, fc.Crossover)
	}
	t.Logf("E* by hand %.4f; flat split with the truths hidden: %.4f", want, flat)
	// The flat split is the old estimate: A and B are means over all contexts,
	// so the noisy labels leak into A, and E* falls as the mix gets noisier.
	if !(flat[0] > flat[len(flat)-1]+0.05) {
		t.Errorf("flat split: E* %v across the mixes; the test expects it to move (otherwise it shows nothing)", flat)
	}
}

// TestSplitPosteriorIsConsistent draws a calibrated sample: y* ~ q, and the
// label is y* or, at rate E, a uniformly drawn other token. With the truths
// hidden, the posterior split must recover the population's A and B (hence
// E*) at every noise rate of the sample; the flat split does not.
func TestSplitPosteriorIsConsistent(t *testing.T) {
	const v, n = 6, 20000
	o1, o2 := objectives.P(), objectives.NLL()
	rng := rand.New(rand.NewPCG(21, 22))
	qs := make([][]float64, n)
	for i := range qs {
		qs[i] = strongContext(rng, v, rng.IntN(v))
	}
	// The population's parts, exactly: A = E_x Σ_y q_y Δ(y, y),
	// B = E_x Σ_y* q_y* Σ_{ỹ≠y*} Δ(ỹ, y*)/(V − 1).
	var a, b float64
	delta := func(q []float64, label, truth int) float64 {
		return Rate(o1, q, label, truth) - Rate(o2, q, label, truth)
	}
	for _, q := range qs {
		for y, qy := range q {
			a += qy * delta(q, y, y)
			for l := range q {
				if l != y {
					b += qy * delta(q, l, y) / (v - 1)
				}
			}
		}
	}
	a /= n
	b /= n
	want := -a / (b - a)
	for _, e := range []float64{0.1, 0.3, 0.5} {
		ctxs := make([]Context, n)
		for i, q := range qs {
			y := draw(rng, q)
			l := y
			if rng.Float64() < e {
				l = (y + 1 + rng.IntN(v-1)) % v
			}
			ctxs[i] = Context{Q: q, Label: l, Truth: Unknown}
		}
		post, err := Compare(o1, o2, ctxs, NoiseModel{E: e, Posterior: true})
		if err != nil {
			t.Fatal(err)
		}
		// 20 000 draws: the sampling error of A and B is about 1 %; 5 % is a
		// loose bound that still fails a biased split (flat is off by > 20 %).
		if math.Abs(post.A-a) > 0.05*math.Abs(a) || math.Abs(post.B-b) > 0.05*math.Abs(b) || math.Abs(post.Crossover-want) > 0.05*want {
			t.Errorf("noise %.1f, posterior: A %.4g B %.4g E* %.4g; population %.4g %.4g %.4g", e, post.A, post.B, post.Crossover, a, b, want)
		}
		flat, err := Compare(o1, o2, ctxs, NoiseModel{E: e})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("noise %.1f: E* population %.4f, posterior %.4f, flat %.4f", e, want, post.Crossover, flat.Crossover)
		if math.Abs(flat.Crossover-want) < 0.2*want {
			t.Errorf("noise %.1f, flat: E* %.4g is within 20 %% of the population's %.4g; the test expects the flat split to be biased", e, flat.Crossover, want)
		}
	}
}

func draw(rng *rand.Rand, q []float64) int {
	u := rng.Float64()
	for i, x := range q {
		if u < x {
			return i
		}
		u -= x
	}
	return len(q) - 1
}

// TestSplitMissingPart checks that a part the rate needs but the sample
// lacks is an error, not a number, and that a sample mixing known and
// unknown truths is split as if none were known.
func TestSplitMissingPart(t *testing.T) {
	q := []float64{0.7, 0.2, 0.1}
	clean := []Context{{Q: q, Label: 0, Truth: 0}, {Q: q, Label: 1, Truth: 1}}
	est, err := EstimateRate(objectives.P(), clean, NoiseModel{})
	if err != nil {
		t.Fatalf("noise 0 needs only the clean part: %v", err)
	}
	if !math.IsNaN(est.Noisy) || est.NoisyWeight != 0 || est.Rate != est.Clean {
		t.Errorf("clean sample: %+v", est)
	}
	if _, err := EstimateRate(objectives.P(), clean, NoiseModel{E: 0.1}); err == nil || !strings.Contains(err.Error(), "no noisy context") {
		t.Errorf("noise 0.1 on a sample without noisy contexts: %v", err)
	}
	noisy := []Context{{Q: q, Label: 0, Truth: 1}}
	if _, err := EstimateRate(objectives.P(), noisy, NoiseModel{E: 0.5}); err == nil || !strings.Contains(err.Error(), "no clean context") {
		t.Errorf("noise 0.5 on a sample without clean contexts: %v", err)
	}
	if est, err := EstimateRate(objectives.P(), noisy, NoiseModel{E: 1}); err != nil || est.Rate != est.Noisy {
		t.Errorf("noise 1 needs only the noisy part: %+v, %v", est, err)
	}
	mixed := append([]Context{{Q: q, Label: 0, Truth: Unknown}}, clean...)
	est, err = EstimateRate(objectives.P(), mixed, NoiseModel{E: 0.1})
	if err != nil || est.CleanWeight != 3 || est.NoisyWeight != 3 || !math.IsNaN(est.Observed) {
		t.Errorf("mixed truths: %+v, %v; want all three contexts in both parts (flat)", est, err)
	}
	cmp, err := Compare(objectives.P(), objectives.NLL(), clean, NoiseModel{})
	if err != nil || !math.IsNaN(cmp.B) || !math.IsNaN(cmp.Crossover) {
		t.Errorf("no noisy part: B %v, E* %v, %v; want NaN, NaN", cmp.B, cmp.Crossover, err)
	}
}
