package theory

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/capsel/capsel/objectives"
)

var testSpecs = []string{"nll", "p", "GeneralFamily-0.5", "GeneralFamily-10", "OnlyTopLogP-0.2", "focal-2", "blend-0.3", "log1mp"}

func randomSimplex(rng *rand.Rand, n int, temp float64) []float64 {
	z := make([]float64, n)
	for i := range z {
		z[i] = temp * rng.NormFloat64()
	}
	return softmax(z)
}

// TestRateAgainstBruteForce checks the per-context rate in the setting where
// the paper's orthonormal-feature assumption holds exactly: the logits are
// the free parameters. The gradient of f(q_ỹ(z)) is taken by finite
// differences (not from s_f), a tiny step is taken along it, and the change in
// the risk −q_{y*} is divided by the step length.
func TestRateAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 40 {
		n := 3 + trial%5
		z := make([]float64, n)
		for i := range z {
			z[i] = 1.5 * rng.NormFloat64()
		}
		label := rng.IntN(n)
		truth := label
		if trial%2 == 1 {
			truth = (label + 1 + rng.IntN(n-1)) % n // a noisy label
		}
		q := softmax(z)
		for _, spec := range testSpecs {
			o := objectives.MustParse(spec)
			if o.Thresholded() && math.Abs(q[label]-o.Param()) < 1e-3 {
				continue // the mask flips inside the finite-difference step
			}
			loss := func(z []float64) float64 { return o.F(softmax(z)[label]) }
			risk := func(z []float64) float64 { return -softmax(z)[truth] }
			// ∇L by central differences, h = 1e-6: error O(h²) ≈ 1e-12.
			g := make([]float64, n)
			for k := range z {
				zp := append([]float64(nil), z...)
				zm := append([]float64(nil), z...)
				zp[k] += 1e-6
				zm[k] -= 1e-6
				g[k] = (loss(zp) - loss(zm)) / 2e-6
			}
			// Ṙ = lim (R(z) − R(z − ηg))/η, here as a central difference along g.
			const eta = 1e-6
			zm := make([]float64, n)
			zp := make([]float64, n)
			for k := range z {
				zm[k] = z[k] - eta*g[k]
				zp[k] = z[k] + eta*g[k]
			}
			brute := (risk(zp) - risk(zm)) / (2 * eta)
			got := Rate(o, q, label, truth)
			// Two nested central differences: absolute error about 1e-8 on rates of O(1e-1).
			if math.Abs(got-brute) > 1e-7+1e-6*math.Abs(brute) {
				t.Errorf("trial %d %s (label %d truth %d): Rate = %v, brute force = %v", trial, spec, label, truth, got, brute)
			}
		}
	}
}

// TestPaperExample checks Remark 6.5: for f₁ = 1 − p and f₂ = −log p,
// Δ(x) = −q_{y*}·(1 − q_ỹ)·⟨e_{y*} − q, e_ỹ − q⟩ (paper-notes §5.4).
func TestPaperExample(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		q := randomSimplex(rng, 6, 2)
		l, y := rng.IntN(6), rng.IntN(6)
		got := Rate(objectives.P(), q, l, y) - Rate(objectives.NLL(), q, l, y)
		want := -q[y] * (1 - q[l]) * Inner(q, l, y)
		if math.Abs(got-want) > 1e-15 {
			t.Fatalf("Δ = %v, want %v", got, want)
		}
	}
	// Clean labels: Δ ≤ 0 always (NLL faster); noisy labels with the model's mass on
	// {y*, ỹ}: q_y* + q_ỹ > ‖q‖², so Δ > 0 (the prior-leaning objective faster).
	q := []float64{0.5, 0.4, 0.05, 0.05}
	if d := Rate(objectives.P(), q, 0, 0) - Rate(objectives.NLL(), q, 0, 0); d >= 0 {
		t.Errorf("clean Δ = %v, want < 0", d)
	}
	if d := Rate(objectives.P(), q, 0, 1) - Rate(objectives.NLL(), q, 0, 1); d <= 0 {
		t.Errorf("noisy Δ = %v, want > 0", d)
	}
}

// TestWeakEndClosedForm compares the closed form with the general formula at
// uniform q, for several pairs, vocabularies and noise rates.
func TestWeakEndClosedForm(t *testing.T) {
	pairs := [][2]string{{"p", "nll"}, {"GeneralFamily-10", "nll"}, {"GeneralFamily-0.5", "GeneralFamily-2"}, {"blend-0.3", "focal-2"}, {"log1mp", "p"}}
	for _, pr := range pairs {
		o1, o2 := objectives.MustParse(pr[0]), objectives.MustParse(pr[1])
		for _, V := range []int{2, 3, 10, 1000} {
			q := make([]float64, V)
			for i := range q {
				q[i] = 1 / float64(V)
			}
			for _, E := range []float64{0, 0.1, 0.5, 0.9, 1} {
				clean := Rate(o1, q, 0, 0) - Rate(o2, q, 0, 0)
				noisy := Rate(o1, q, 0, 1) - Rate(o2, q, 0, 1)
				general := (1-E)*clean + E*noisy
				// The paper's printed form, with f′ = −s/p.
				p := 1 / float64(V)
				f2p, f1p := -o2.S(p)/p, -o1.S(p)/p
				paper := (f2p - f1p) * (float64(V-1)*(1-E) - E) / math.Pow(float64(V), 3)
				got := WeakEnd(o1, o2, V, E)
				tol := 1e-14 * (1 + math.Abs(general))
				if math.Abs(got-general) > tol || math.Abs(paper-general) > tol {
					t.Errorf("%s vs %s V=%d E=%v: WeakEnd %v, paper form %v, general %v", pr[0], pr[1], V, E, got, paper, general)
				}
				// The same through the sample estimator with the model's own u (uniform here).
				ctx := []Context{{Q: q, Label: 0, Truth: Unknown}}
				cmp, err := Compare(o1, o2, ctx, NoiseModel{E: E})
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(cmp.Delta-general) > tol {
					t.Errorf("%s vs %s V=%d E=%v: Compare Δ %v, general %v", pr[0], pr[1], V, E, cmp.Delta, general)
				}
			}
		}
	}
	// NLL beats "p" at the weak end whenever E < (V − 1)/V.
	if WeakEnd(objectives.P(), objectives.NLL(), 100, 0.98) >= 0 || WeakEnd(objectives.P(), objectives.NLL(), 100, 0.995) <= 0 {
		t.Error("weak end: the sign should flip at E = (V − 1)/V = 0.99")
	}
}

// TestNoisyRateIsLinear checks the u-averaged noisy part against the rate
// summed over each possible true token, weighted by u (Ṙ is linear in r).
func TestNoisyRateIsLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 30 {
		q := randomSimplex(rng, 7, 1.5)
		l := rng.IntN(7)
		c := Context{Q: q, Label: l, Truth: Unknown}
		for _, spec := range testSpecs {
			o := objectives.MustParse(spec)
			var model, uniform float64
			for k := range q {
				if k != l {
					model += q[k] / (1 - q[l]) * Rate(o, q, l, k)
					uniform += Rate(o, q, l, k) / 6
				}
			}
			if got := noisyRate(o, c, UModel); math.Abs(got-model) > 1e-15 {
				t.Errorf("%s: noisy rate (u = model) %v, want %v", spec, got, model)
			}
			if got := noisyRate(o, c, UUniform); math.Abs(got-uniform) > 1e-15 {
				t.Errorf("%s: noisy rate (u = uniform) %v, want %v", spec, got, uniform)
			}
		}
	}
}

// TestCrossover builds a model-strong sample and checks that Δ vanishes at
// E* and changes sign there, for the flat and the posterior π.
func TestCrossover(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var ctxs []Context
	for range 200 {
		// The paper's model-strong picture: the mass sits on the label and one
		// plausible alternative (q_ỹ + q_alt = 0.9 ≥ 0.55), the rest is spread thin.
		q := randomSimplex(rng, 20, 1)
		for i := range q {
			q[i] *= 0.1
		}
		q[0] += 0.6
		q[1] += 0.3
		ctxs = append(ctxs, Context{Q: q, Label: 0, Truth: Unknown})
	}
	o1, o2 := objectives.P(), objectives.NLL()
	for _, post := range []bool{false, true} {
		cmp, err := Compare(o1, o2, ctxs, NoiseModel{E: 0.1, Posterior: post})
		if err != nil {
			t.Fatal(err)
		}
		if !(cmp.A < 0 && cmp.B > 0) {
			t.Fatalf("posterior=%v: want A < 0 < B at the strong end, got A=%v B=%v", post, cmp.A, cmp.B)
		}
		if math.IsNaN(cmp.Crossover) || !cmp.FirstWinsAbove {
			t.Fatalf("posterior=%v: no crossover found: %+v", post, cmp)
		}
		// Δ(E) = (1 − E)·A + E·B for this split of the sample.
		at := cmp.At
		if d := at(cmp.Crossover); math.Abs(d) > 1e-12 {
			t.Errorf("posterior=%v: Δ(E*) = %v, want 0", post, d)
		}
		if d := at(0.1); math.Abs(d-cmp.Delta) > 1e-15 {
			t.Errorf("posterior=%v: At(E) = %v, Delta = %v", post, d, cmp.Delta)
		}
		if at(math.Max(cmp.Crossover-0.01, 0)) >= 0 || at(math.Min(cmp.Crossover+0.01, 1)) <= 0 {
			t.Errorf("posterior=%v: Δ should go from < 0 to > 0 across E* = %v", post, cmp.Crossover)
		}
		if want := -cmp.A / (cmp.B - cmp.A); math.Abs(cmp.Crossover-want) > 1e-15 {
			t.Errorf("posterior=%v: E* = %v, want |A|/(B − A) = %v", post, cmp.Crossover, want)
		}
	}
	// With u uniform and π flat the crossover is (V − 1)/V on every sample, not only
	// at the weak end: Σ_k q_k·⟨e_k − q, e_ỹ − q⟩ = ⟨q − q, e_ỹ − q⟩ = 0, so each
	// context's noisy part is −1/(V − 1) times its clean part.
	if cmp, _ := Compare(o1, o2, ctxs, NoiseModel{U: UUniform}); math.Abs(cmp.Crossover-0.95) > 1e-12 {
		t.Errorf("uniform u: crossover %v, want (V − 1)/V = 0.95", cmp.Crossover)
	}
	// At the weak end there is no crossover below (V − 1)/V = 0.95.
	u := make([]float64, 20)
	for i := range u {
		u[i] = 0.05
	}
	cmp, _ := Compare(o1, o2, []Context{{Q: u, Label: 0, Truth: Unknown}}, NoiseModel{})
	if math.Abs(cmp.Crossover-0.95) > 1e-12 || cmp.FirstWinsAbove != true {
		t.Errorf("weak end: crossover %v, want (V − 1)/V = 0.95", cmp.Crossover)
	}
}

// TestSpreadBucket checks that a top-k context with a known vocabulary gives
// the same estimates as the full distribution in which the unlisted mass is
// spread evenly over the unlisted tokens.
func TestSpreadBucket(t *testing.T) {
	const V = 50
	listed := []float64{0.5, 0.2, 0.1}
	full := make([]float64, V)
	copy(full, listed)
	for i := 3; i < V; i++ {
		full[i] = 0.2 / (V - 3)
	}
	top := NewTopK(listed, 1, Unknown, V)
	for _, nm := range []NoiseModel{{E: 0.2}, {E: 0.2, U: UUniform}, {E: 0.3, Posterior: true}} {
		for _, spec := range testSpecs {
			o := objectives.MustParse(spec)
			a, err1 := EstimateRate(o, []Context{top}, nm)
			b, err2 := EstimateRate(o, []Context{{Q: full, Label: 1, Truth: Unknown}}, nm)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			for _, pair := range [][2]float64{{a.Rate, b.Rate}, {a.Clean, b.Clean}, {a.Noisy, b.Noisy}, {a.GradNorm, b.GradNorm}} {
				if math.Abs(pair[0]-pair[1]) > 1e-14 {
					t.Errorf("%s %+v: top-k %v, full %v", spec, nm, pair[0], pair[1])
				}
			}
		}
	}
}

func TestPosterior(t *testing.T) {
	// π = (1 − E)·q / ((1 − E)·q + E·(1 − q)/(V − 1)); at q = 1/V it is 1 − E
	// (a uniform model learns nothing from the label), and it rises with q.
	c := Context{Q: []float64{0.25, 0.25, 0.25, 0.25}, Label: 0}
	// The split's weights are the likelihood ratios π/(1 − E) and (1 − π)/E.
	nm := NoiseModel{E: 0.3, Posterior: true}
	pi := func(c Context) float64 {
		wc, wn := nm.weights(c)
		if math.Abs((1-nm.E)*wc+nm.E*wn-1) > 1e-15 {
			t.Errorf("π + (1 − π) = %v", (1-nm.E)*wc+nm.E*wn)
		}
		return (1 - nm.E) * wc
	}
	if got := pi(c); math.Abs(got-0.7) > 1e-15 {
		t.Errorf("π at uniform q = %v, want 0.7", got)
	}
	c.Q = []float64{0.7, 0.1, 0.1, 0.1}
	want := 0.7 * 0.7 / (0.7*0.7 + 0.3*0.3/3)
	if got := pi(c); math.Abs(got-want) > 1e-15 {
		t.Errorf("π = %v, want %v", got, want)
	}
	// The flat split counts every context fully in both parts.
	if wc, wn := (NoiseModel{E: 0.3}).weights(c); wc != 1 || wn != 1 {
		t.Errorf("flat weights %v, %v, want 1, 1", wc, wn)
	}
}

func TestStepNormalised(t *testing.T) {
	// One context, free logits: Normalised = Ṙ/‖∇L‖ does not depend on how the
	// objective is scaled, so blend-1 (= NLL) and nll agree, and GradNorm is s·‖e − q‖.
	q := []float64{0.6, 0.3, 0.1}
	ctx := []Context{{Q: q, Label: 0, Truth: 0}}
	e, err := EstimateRate(objectives.P(), ctx, NoiseModel{})
	if err != nil {
		t.Fatal(err)
	}
	norm := math.Sqrt(0.4*0.4 + 0.3*0.3 + 0.1*0.1)
	if math.Abs(e.GradNorm-0.6*norm) > 1e-15 || math.Abs(GradNorm(objectives.P(), q, 0)-0.6*norm) > 1e-15 {
		t.Errorf("GradNorm = %v (per context %v), want 0.6·‖e − q‖ = %v", e.GradNorm, GradNorm(objectives.P(), q, 0), 0.6*norm)
	}
	// Ṙ = q·s·‖e − q‖², so Ṙ/‖∇L‖ = q·‖e − q‖ for every objective on a clean context.
	if math.Abs(e.Normalised-0.6*norm) > 1e-15 || math.Abs(e.Observed-e.Rate) > 1e-15 {
		t.Errorf("Normalised = %v, want %v; Observed %v vs Rate %v", e.Normalised, 0.6*norm, e.Observed, e.Rate)
	}
}

func TestThresholdMasksContexts(t *testing.T) {
	// Two contexts, one below the 0.2 threshold: OnlyTopLogP-0.2 is NLL on the
	// first and silent on the second, so its rate is half the first's NLL rate
	// (no kept-token renormalisation; see EstimateRate).
	c1 := Context{Q: []float64{0.8, 0.2}, Label: 0, Truth: 0}
	c2 := Context{Q: []float64{0.1, 0.9}, Label: 0, Truth: 0}
	e, _ := EstimateRate(objectives.MustParse("OnlyTopLogP-0.2"), []Context{c1, c2}, NoiseModel{})
	want := Rate(objectives.NLL(), c1.Q, 0, 0) / 2
	if e.Kept != 1 || math.Abs(e.Rate-want) > 1e-15 {
		t.Errorf("kept %d rate %v, want 1 and %v", e.Kept, e.Rate, want)
	}
}

func TestLemmaE7(t *testing.T) {
	res, err := CheckLemmaE7(1)
	if err != nil {
		t.Fatal(err)
	}
	// Closed form (11√33 − 59)/768 = 0.00545603…; BFGS on a smooth interior maximum
	// reaches it to machine precision in value and about 1e-8 in position.
	if res.AbsError > 1e-9 {
		t.Errorf("max %v vs closed form %v: error %v", res.Max, res.ClosedForm, res.AbsError)
	}
	if res.ArgError > 1e-6 {
		t.Errorf("argmax %v vs (9 − √33)/24 = %v", res.Argmax, LemmaE7Argmax)
	}
	if math.Abs(LemmaE7Max-0.0054560) > 1e-7 {
		t.Errorf("closed form = %v, paper says ≈ 0.0054560", LemmaE7Max)
	}
}

func TestReadContexts(t *testing.T) {
	in := `{"q":[0.7,0.2,0.1],"label":0,"truth":1}

{"logq":[-0.35667494393873245,-1.6094379124341003,-2.3025850929940455],"label":2}
{"top":{"A":-0.1,"B":-2.5},"label":"A","truth":"C","vocab":50}
{"top":{"A":-0.1},"label":"Z","label_logprob":-4.2}
`
	cs, err := ReadContexts(strings.NewReader(in), "ctx.jsonl", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 4 {
		t.Fatalf("read %d contexts, want 4", len(cs))
	}
	if cs[0].Truth != 1 || cs[1].Label != 2 || cs[1].Truth != Unknown || math.Abs(cs[1].Q[0]-0.7) > 1e-12 {
		t.Errorf("full contexts: %+v %+v", cs[0], cs[1])
	}
	c := cs[2] // listed A, B; truth C unlisted → bucket
	if !c.Bucket || len(c.Q) != 3 || c.Truth != 2 || c.V() != 50 {
		t.Errorf("top-k context: %+v", c)
	}
	if rest := 1 - math.Exp(-0.1) - math.Exp(-2.5); math.Abs(c.Q[2]-rest) > 1e-15 {
		t.Errorf("bucket mass %v, want %v", c.Q[2], rest)
	}
	if c := cs[3]; c.Q[c.Label] != math.Exp(-4.2) || c.V() != 0 {
		t.Errorf("label outside top: %+v", c)
	}
	for _, bad := range []struct{ in, want string }{
		{`{"q":[0.7,0.2],"label":0}`, "ctx.jsonl:1: q sums to"},
		{"\n" + `{"q":[0.7,0.3],"label":5}`, "ctx.jsonl:2: label index 5"},
		{`{"q":[0.7,0.3],"label":0,"lable":1}`, "unknown field"},
		{`{"q":[0.7,0.3]}`, `missing "label"`},
		{`{"q":[0.7,0.3],"label":0`, "bad JSON"},
		{`{"top":{"A":-0.1},"label":"Z"}`, `give "label_logprob"`},
		{`{"top":{"A":0.5},"label":"A"}`, "not a log-probability"},
		{`{"q":[0.5,0.5],"top":{"A":-0.1},"label":0}`, "exactly one of"},
		{``, "no contexts"},
	} {
		_, err := ReadContexts(strings.NewReader(bad.in), "ctx.jsonl", 0)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want it to contain %q", bad.in, err, bad.want)
		}
	}
	if _, err := EstimateRate(objectives.P(), cs[3:], NoiseModel{U: UUniform}); err == nil {
		t.Error("uniform u on a top-k context without vocab: want an error")
	}
}
