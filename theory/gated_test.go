package theory

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/capsel/capsel/objectives"
)

// The trainers' objectives that are not functions of p, written out here
// from the trainers' formulas (files and commits in objectives/torch_test.go)
// independently of package objectives, as per-token losses of the logits z
// whose detached parts are frozen at the logits z0 where the rate is taken:
// that is what detaching means for a gradient.

// topEntropy is the entropy of the softmax of the k largest log-probs of
// lq, −Σ π·log(π + eps), found by sorting.
func topEntropy(lq []float64, k int, eps float64) float64 {
	s := append([]float64(nil), lq...)
	sort.Sort(sort.Reverse(sort.Float64Slice(s)))
	s = s[:k]
	var z float64
	for _, l := range s {
		z += math.Exp(l - s[0])
	}
	var h float64
	for _, l := range s {
		pi := math.Exp(l-s[0]) / z
		if eps == 0 {
			h -= pi * math.Log(pi)
		} else {
			h -= pi * math.Log(pi+eps)
		}
	}
	return h
}

// cayleyExp is Cayley_Trans's exponent at p for the batch's mean p m
// (main_verl/trainer/fsdp_sft_trainer.py, luludus/DEFT bbe7896).
func cayleyExp(p, m float64) float64 {
	floor := m / 2
	d := 1 - p + 1e-8
	local := (1 - d) / (1 + d + 1e-8)
	return math.Min(math.Max(floor+(1-floor)*local, 0.001), 1)
}

// detachedLoss returns the per-token loss of spec as a function of z, with
// its detached parts frozen at z0; meanP is the batch's mean p that
// deft-cayley reads.
func detachedLoss(spec string, z0 []float64, label int, meanP float64) func(z []float64) float64 {
	q0 := softmax(z0)
	lq0 := make([]float64, len(q0))
	var c float64
	for i, x := range q0 {
		lq0[i] = math.Log(x)
		c += x * x
	}
	p0 := q0[label]
	logp := func(z []float64) float64 { return math.Log(softmax(z)[label]) }
	switch spec {
	case "eaft-1", "eaft-0.5":
		alpha := map[string]float64{"eaft-1": 1, "eaft-0.5": 0.5}[spec]
		w := math.Pow(topEntropy(lq0, 20, 0)/3, alpha) // LLaMA-Factory: (H₂₀/3)^α
		return func(z []float64) float64 { return -w * logp(z) }
	case "eaft-axolotl-1.5-7":
		w := math.Pow(topEntropy(lq0, 7, 1e-10), 1.5) // Axolotl: H_k^α, log(π + 1e-10)
		return func(z []float64) float64 { return -w * logp(z) }
	case "deft":
		return func(z []float64) float64 { return -math.Expm1(c*logp(z)) / (c + 1e-6) }
	case "deft-cayley":
		a := cayleyExp(p0, meanP)
		return func(z []float64) float64 { return -math.Expm1(a*logp(z)) / (a + 1e-8) }
	case "asft-0.1", "asft-2":
		alpha := map[string]float64{"asft-0.1": 0.1, "asft-2": 2}[spec]
		return func(z []float64) float64 {
			q := softmax(z)
			var kl float64 // KL(r ‖ q), r the frozen reference = the model at z0
			for i, r := range q0 {
				kl += r * (lq0[i] - math.Log(q[i]))
			}
			return -p0*logp(z) + alpha*kl
		}
	}
	panic(spec)
}

// bruteRate is the rate by brute force on free logits: ∇L by central
// differences, then the change of the risk −q_truth along a step ±η·∇L.
func bruteRate(loss func([]float64) float64, z []float64, truth int) float64 {
	n := len(z)
	g := make([]float64, n)
	for k := range z {
		zp := append([]float64(nil), z...)
		zm := append([]float64(nil), z...)
		zp[k] += 1e-6
		zm[k] -= 1e-6
		g[k] = (loss(zp) - loss(zm)) / 2e-6
	}
	const eta = 1e-6
	zp, zm := make([]float64, n), make([]float64, n)
	for k := range z {
		zm[k] = z[k] - eta*g[k]
		zp[k] = z[k] + eta*g[k]
	}
	return (-softmax(zp)[truth] + softmax(zm)[truth]) / (2 * eta)
}

// TestGatedRateAgainstBruteForce checks the rates of the gated and anchored
// objectives where the orthonormal-feature assumption holds exactly (the
// logits are the parameters), as TestRateAgainstBruteForce does for the
// functions of p: the loss with its gates detached, written out above from
// the trainers' code, is differentiated by finite differences and stepped
// along, and the change in the risk is compared with the paper's formula
// with s replaced by the gate's scale on q. Vocabularies of 20 to 31 tokens,
// so that LLaMA-Factory's top-20 gate runs, and temperatures from diffuse to
// confident.
func TestGatedRateAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	worst := map[string]float64{}
	for trial := range 36 {
		n := 20 + trial%12
		temp := []float64{0.5, 1.5, 4}[trial%3]
		z := make([]float64, n)
		for i := range z {
			z[i] = temp * rng.NormFloat64()
		}
		label := rng.IntN(n)
		truth := label
		if trial%2 == 1 {
			truth = (label + 1 + rng.IntN(n-1)) % n // a noisy label
		}
		q := softmax(z)
		for _, spec := range []string{"eaft-1", "eaft-0.5", "eaft-axolotl-1.5-7", "deft", "asft-0.1", "asft-2"} {
			o := objectives.MustParse(spec)
			brute := bruteRate(detachedLoss(spec, z, label, math.NaN()), z, truth)
			got := Rate(o, q, label, truth)
			// Two nested central differences: absolute error about 1e-8 on rates of O(1e-1).
			if d := math.Abs(got - brute); d > 1e-7+1e-6*math.Abs(brute) {
				t.Errorf("trial %d %s (V %d, label %d, truth %d): Rate = %v, brute force = %v", trial, spec, n, label, truth, got, brute)
			} else {
				worst[spec] = math.Max(worst[spec], d)
			}
			// Known truth through the sample estimator: the same number.
			e := 0.0 // the sample's own noise rate: a one-context sample is all clean or all noisy
			if truth != label {
				e = 1
			}
			est, err := EstimateRate(o, []Context{{Q: q, Label: label, Truth: truth}}, NoiseModel{E: e})
			if err != nil {
				t.Fatal(spec, err)
			}
			if math.Abs(est.Observed-got) > 1e-15 {
				t.Errorf("trial %d %s: EstimateRate observed %v, Rate %v", trial, spec, est.Observed, got)
			}
		}
	}
	// deft-cayley reads the batch's mean p: a sample of contexts, each its
	// own block of free logits, with the sample's mean p as the batch's.
	var ctxs []Context
	var zs [][]float64
	var meanP float64
	for i := range 24 {
		n := 20 + i%5
		z := make([]float64, n)
		for k := range z {
			z[k] = []float64{0.5, 1.5, 4}[i%3] * rng.NormFloat64()
		}
		label := rng.IntN(n)
		truth := label
		if i%3 == 1 {
			truth = (label + 1) % n
		}
		zs = append(zs, z)
		ctxs = append(ctxs, Context{Q: softmax(z), Label: label, Truth: truth})
		meanP += softmax(z)[label] / 24
	}
	var brute float64
	for i, c := range ctxs {
		brute += bruteRate(detachedLoss("deft-cayley", zs[i], c.Label, meanP), zs[i], c.Truth) / float64(len(ctxs))
	}
	est, err := EstimateRate(objectives.MustParse("deft-cayley"), ctxs, NoiseModel{E: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(est.Observed - brute); d > 1e-7+1e-6*math.Abs(brute) {
		t.Errorf("deft-cayley: mean rate %v, brute force %v", est.Observed, brute)
	} else {
		worst["deft-cayley"] = d
	}
	specs := make([]string, 0, len(worst))
	for spec := range worst {
		specs = append(specs, spec)
	}
	sort.Strings(specs)
	for _, spec := range specs {
		t.Logf("%s: worst |Rate − brute force| = %.2g", spec, worst[spec])
	}
}

// TestTopKGate: from a top-k context the gates read what they read from
// the full distribution. EAFT's top-20 entropy is exact from a top list of
// 20 or more, whether or not V is known; DEFT's Σq² spreads the remainder
// like ‖q‖², so with V known the estimates equal those of the full
// distribution with the remainder spread.
func TestTopKGate(t *testing.T) {
	const V = 60
	rng := rand.New(rand.NewPCG(31, 32))
	listed := make([]float64, 24)
	var sum float64
	for i := range listed {
		listed[i] = 0.02 + 0.1*rng.Float64()
		sum += listed[i]
	}
	for i := range listed {
		listed[i] *= 0.8 / sum // 0.2 left for the 36 unlisted tokens, each ≈ 0.0056 < every listed one
	}
	full := make([]float64, V)
	copy(full, listed)
	for i := len(listed); i < V; i++ {
		full[i] = 0.2 / float64(V-len(listed))
	}
	top := NewTopK(listed, 3, Unknown, V)
	top.TopK = len(listed)
	lumped := top
	lumped.Vocab = 0
	for _, spec := range []string{"eaft-1", "eaft-axolotl-0.5-20", "deft", "deft-cayley", "asft-0.1"} {
		o := objectives.MustParse(spec)
		for _, nm := range []NoiseModel{{E: 0.2}, {E: 0.2, U: UUniform}, {E: 0.3, Posterior: true}} {
			a, err1 := EstimateRate(o, []Context{top}, nm)
			b, err2 := EstimateRate(o, []Context{{Q: full, Label: 3, Truth: Unknown}}, nm)
			if err1 != nil || err2 != nil {
				t.Fatal(spec, err1, err2)
			}
			for _, pair := range [][2]float64{{a.Rate, b.Rate}, {a.Clean, b.Clean}, {a.Noisy, b.Noisy}, {a.GradNorm, b.GradNorm}} {
				if math.Abs(pair[0]-pair[1]) > 1e-14 {
					t.Errorf("%s %+v: top-k %v, full %v", spec, nm, pair[0], pair[1])
				}
			}
		}
	}
	// EAFT's gate does not need V: the lumped context reads the same entropy.
	o := objectives.MustParse("eaft-1")
	g1, err1 := gateStat(o, lumped, viewOf(lumped))
	g2, err2 := gateStat(o, Context{Q: full, Label: 3}, viewOf(Context{Q: full, Label: 3}))
	if err1 != nil || err2 != nil || math.Abs(g1-g2) > 1e-15 {
		t.Errorf("eaft gate lumped %v (%v), full %v (%v)", g1, err1, g2, err2)
	}
	// A top list shorter than the gate's k is refused, not filled in.
	short := NewTopK(listed[:12], 2, Unknown, V)
	short.TopK = 12
	if _, err := EstimateRate(o, []Context{short}, NoiseModel{E: 0.1}); err == nil || !strings.Contains(err.Error(), "top 20") {
		t.Errorf("eaft on a top-12 list: error %v, want one asking for the top 20", err)
	}
	if _, err := EstimateRate(objectives.MustParse("eaft-axolotl-1-12"), []Context{short}, NoiseModel{E: 0.1}); err != nil {
		t.Errorf("eaft-axolotl-1-12 on a top-12 list: %v", err)
	}
	// TopK unknown: a label appended last and no likelier than the list
	// counts as an addition, so 20 listed tokens of which it is the last
	// make a top-19 list; a label in the middle leaves the list whole.
	l20 := append([]float64(nil), listed[:20]...)
	l20[19] = 0.001
	c := NewTopK(l20, 19, Unknown, V)
	if got := c.topCount(); got != 19 {
		t.Errorf("label appended last: top count %d, want 19", got)
	}
	if _, err := EstimateRate(o, []Context{c}, NoiseModel{E: 0.1}); err == nil {
		t.Error("eaft on a top-19 list plus its label: want an error")
	}
	c.Label = 4
	if got := c.topCount(); got != 20 {
		t.Errorf("label inside the list: top count %d, want 20", got)
	}
	// The contexts file says how long the top list is.
	line := `{"top":{`
	for i := range 20 {
		if i > 0 {
			line += ","
		}
		line += `"t` + string(rune('a'+i)) + `":` + formatLog(0.04)
	}
	for _, tc := range []struct {
		label string
		ok    bool
	}{{`"label":"tb"`, true}, {`"label":"zz","label_logprob":-9`, true}} {
		cs, err := ReadContexts(strings.NewReader(line+`},`+tc.label+`,"vocab":100}`), "ctx.jsonl", 0)
		if err != nil {
			t.Fatal(err)
		}
		if cs[0].TopK != 20 {
			t.Errorf("%s: TopK = %d, want 20", tc.label, cs[0].TopK)
		}
		if _, err := EstimateRate(o, cs, NoiseModel{E: 0.1}); (err == nil) != tc.ok {
			t.Errorf("%s: eaft error %v", tc.label, err)
		}
	}
}

func formatLog(p float64) string { return strconv.FormatFloat(math.Log(p), 'g', -1, 64) }

// TestASFTRanksWithDFT: at the start the anchor's gradient vanishes, so
// asft-α's rate, parts, gradient norm and normalised rate are DFT's and
// −p's for every α, and Rank keeps them in the given order.
func TestASFTRanksWithDFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	var ctxs []Context
	for i := range 50 {
		ctxs = append(ctxs, Context{Q: randomSimplex(rng, 9, 2), Label: i % 9, Truth: Unknown})
	}
	objs := []objectives.Objective{objectives.MustParse("asft-0.1"), objectives.MustParse("dft"), objectives.P(), objectives.MustParse("asft-3")}
	ranked, err := Rank(append(objs, objectives.NLL()), ctxs, NoiseModel{E: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range ranked {
		order = append(order, e.Objective)
	}
	ref := ranked[0]
	if ref.Objective == "nll" {
		ref = ranked[1]
	}
	for _, e := range ranked {
		if e.Objective == "nll" {
			continue
		}
		if e.Rate != ref.Rate || e.Clean != ref.Clean || e.Noisy != ref.Noisy || e.GradNorm != ref.GradNorm || e.Normalised != ref.Normalised {
			t.Errorf("%s: %+v, want the same figures as %s: %+v", e.Objective, e, ref.Objective, ref)
		}
	}
	if got := strings.Join(order, " "); !strings.Contains(got, "asft-0.1 dft p asft-3") {
		t.Errorf("ranking %q: tied objectives must keep the given order", got)
	}
}

// TestGatedWeakEnd: the closed form at uniform q, with each gate read from
// the uniform distribution, equals the general formula, for the gated
// objectives as for the paper's.
func TestGatedWeakEnd(t *testing.T) {
	for _, pr := range [][2]string{{"eaft-1", "nll"}, {"eaft-axolotl-1-20", "p"}, {"deft", "nll"}, {"asft-0.1", "nll"}, {"deft-cayley", "eaft-0.5"}} {
		o1, o2 := objectives.MustParse(pr[0]), objectives.MustParse(pr[1])
		for _, V := range []int{20, 64, 1000} {
			q := make([]float64, V)
			for i := range q {
				q[i] = 1 / float64(V)
			}
			for _, E := range []float64{0, 0.1, 0.5} {
				ctx := []Context{{Q: q, Label: 0, Truth: Unknown}}
				cmp, err := Compare(o1, o2, ctx, NoiseModel{E: E})
				if err != nil {
					t.Fatal(err)
				}
				got := WeakEnd(o1, o2, V, E)
				if math.Abs(got-cmp.Delta) > 1e-14*(1+math.Abs(cmp.Delta)) || math.IsNaN(got) {
					t.Errorf("%s vs %s V=%d E=%v: WeakEnd %v, general %v", pr[0], pr[1], V, E, got, cmp.Delta)
				}
			}
		}
	}
	// Closed forms of the gates at uniform q over V = 1000: EAFT's top-20
	// entropy is log 20, DEFT's c is 1/V, ASFT's DFT weight is 1/V.
	const V = 1000
	for _, c := range []struct {
		spec string
		s    float64
	}{{"eaft-1", math.Log(20) / 3}, {"eaft-2", math.Pow(math.Log(20)/3, 2)}, {"deft", 1e-3 * math.Pow(1e-3, 1e-3) / (1e-3 + 1e-6)}, {"asft-0.5", 1e-3}} {
		want := (c.s - 1) * (V - 1) / (V * V)
		if got := WeakEnd(objectives.MustParse(c.spec), objectives.NLL(), V, 0); math.Abs(got-want) > 1e-15 {
			t.Errorf("%s: WeakEnd %v, want %v", c.spec, got, want)
		}
	}
	// LLaMA-Factory's EAFT cannot run on fewer than 20 tokens: no number.
	if d := WeakEnd(objectives.MustParse("eaft-1"), objectives.NLL(), 10, 0.1); !math.IsNaN(d) {
		t.Errorf("eaft-1 at V = 10: WeakEnd %v, want NaN", d)
	}
	if d := WeakEnd(objectives.MustParse("eaft-axolotl-1-20"), objectives.NLL(), 10, 0.1); math.IsNaN(d) {
		t.Error("eaft-axolotl at V = 10 takes min(k, V): want a number")
	}
}

// TestCoversAndScope: every fixed objective is covered, adaptive ones are
// not; Scope names the objectives the paper's analysis does not cover.
func TestCoversAndScope(t *testing.T) {
	for _, s := range []string{"nll", "GeneralFamily-10", "eaft-1", "eaft-axolotl-1-20", "deft", "Cayley_Trans", "asft-0.1"} {
		o := objectives.MustParse(s)
		if err := Covers(o); err != nil {
			t.Errorf("Covers(%s) = %v", s, err)
		}
		if scoped := Scope(o) != ""; scoped == o.OfP() {
			t.Errorf("Scope(%s) = %q: want a caveat exactly for the objectives beyond f(p)", s, Scope(o))
		}
	}
	if !strings.Contains(Scope(objectives.MustParse("asft-0.1")), "zero where the model is its own reference") ||
		!strings.Contains(Scope(objectives.MustParse("deft-cayley")), "sample's mean p") {
		t.Error("Scope: asft must say the anchor's gradient vanishes at the start, deft-cayley what stands for the batch's mean p")
	}
	for _, s := range []string{"auto", "auto-theory"} {
		if err := Covers(objectives.MustParse(s)); err == nil {
			t.Errorf("Covers(%s): want an error", s)
		}
	}
	// deft-cayley has no per-context rate: its gate reads the sample.
	q := []float64{0.7, 0.2, 0.1}
	if r := Rate(objectives.MustParse("deft-cayley"), q, 0, 0); !math.IsNaN(r) {
		t.Errorf("Rate(deft-cayley) = %v, want NaN", r)
	}
	if r := Rate(objectives.MustParse("eaft-1"), q, 0, 0); !math.IsNaN(r) {
		t.Errorf("Rate(eaft-1) on 3 tokens = %v, want NaN", r)
	}
	if _, err := EstimateRate(objectives.MustParse("eaft-1"), []Context{{Q: q, Label: 0, Truth: Unknown}}, NoiseModel{}); err == nil || !strings.Contains(err.Error(), "eaft-axolotl-1-3") {
		t.Errorf("eaft-1 on 3 tokens: %v, want the pointer to Axolotl's form", err)
	}
}
