package theory

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/capsel/capsel/objectives"
)

// Unknown marks a context whose true label y* is not known.
const Unknown = -1

// Context is one next-token prediction in a sample.
//
// Q holds the model's probabilities. For a full distribution it sums to 1 and
// Vocab may be left 0 (it is then len(Q)). For a top-k list, Bucket is true
// and the last entry of Q is the mass m of all unlisted tokens. With the
// vocabulary size V known, that mass is spread evenly over the V − k
// unlisted tokens (each m/(V − k)); without it, it is treated as a single
// outcome, which overstates ‖q‖² by up to m² and makes a diffuse model look
// confident. A truth index pointing at the bucket means "some unlisted
// token". Reports say which approximation was used.
type Context struct {
	Q      []float64
	Label  int  // index of the training label ỹ in Q
	Truth  int  // index of the true label y* in Q, or Unknown
	Bucket bool // Q's last entry is the unlisted remainder of a top-k list
	Vocab  int  // vocabulary size V; needed with Bucket for the uniform u and the posterior π
}

// NewTopK builds a context from the probabilities of listed tokens (which
// must include the label) and appends the unlisted mass 1 − Σ listed as a
// remainder bucket when it is positive. truth is an index into listed,
// Unknown, or len(listed) for "some unlisted token".
func NewTopK(listed []float64, label, truth, vocab int) Context {
	q := append([]float64(nil), listed...)
	var s float64
	for _, x := range listed {
		s += x
	}
	c := Context{Q: q, Label: label, Truth: truth, Vocab: vocab}
	if rest := 1 - s; rest > 1e-12 || truth == len(listed) {
		c.Q = append(c.Q, math.Max(rest, 0))
		c.Bucket = true
	}
	return c
}

// V returns the vocabulary size: Vocab when set, otherwise len(Q) for a full
// distribution and 0 (unknown) for a top-k list.
func (c Context) V() int {
	if c.Vocab > 0 {
		return c.Vocab
	}
	if c.Bucket {
		return 0
	}
	return len(c.Q)
}

// Validate checks that c is usable: probabilities in [0, 1] that sum to 1
// (within 1e-3), indices in range, a label that is a listed token.
func (c Context) Validate() error {
	if len(c.Q) < 2 {
		return errors.New("need at least two outcomes in q")
	}
	var s float64
	for i, x := range c.Q {
		if !(x >= 0 && x <= 1) {
			return fmt.Errorf("q[%d] = %v is not a probability", i, x)
		}
		s += x
	}
	if math.Abs(s-1) > 1e-3 {
		return fmt.Errorf("q sums to %v, not 1", s)
	}
	last := len(c.Q)
	if c.Bucket {
		last-- // the label must be a listed token, not the bucket
	}
	if c.Label < 0 || c.Label >= last {
		return fmt.Errorf("label index %d out of range [0, %d)", c.Label, last)
	}
	if c.Truth != Unknown && (c.Truth < 0 || c.Truth >= len(c.Q)) {
		return fmt.Errorf("truth index %d out of range [0, %d)", c.Truth, len(c.Q))
	}
	if c.Vocab > 0 && c.Vocab < last {
		return fmt.Errorf("vocab %d is smaller than the %d listed tokens", c.Vocab, last)
	}
	return nil
}

// TrueDist says what the true token is believed to be when the label is noisy.
type TrueDist int

const (
	// UModel takes the model's own q renormalised over k ≠ ỹ: the Bayes
	// posterior of y* given a noisy label when noise replaces y* uniformly.
	UModel TrueDist = iota
	// UUniform spreads the true token evenly over the other V − 1 tokens.
	// Because Σ_k q_k·⟨e_k − q, e_ỹ − q⟩ = 0, each context's noisy part is then
	// exactly −1/(V − 1) of its clean part, so with a flat π every pair of
	// objectives crosses at E* = (V − 1)/V, whatever q is: the model-weak
	// picture. Only UModel lets a model-strong q favour prior-leaning objectives.
	UUniform
)

func (u TrueDist) String() string {
	if u == UUniform {
		return "uniform"
	}
	return "model"
}

// NoiseModel says how labels are corrupted and what is believed about y*.
type NoiseModel struct {
	// E is the label-noise rate: the probability that ỹ ≠ y*.
	E float64
	// Posterior replaces the flat clean probability π = 1 − E by its Bayes
	// posterior given the model's belief q_ỹ, under uniform replacement noise:
	//
	//	π(x) = (1 − E)·q_ỹ / ((1 − E)·q_ỹ + E·(1 − q_ỹ)/(V − 1))
	Posterior bool
	// U is the distribution of y* given a noisy label.
	U TrueDist
}

// Validate checks the noise rate.
func (nm NoiseModel) Validate() error {
	if !(nm.E >= 0 && nm.E <= 1) {
		return fmt.Errorf("noise rate %v outside [0, 1]", nm.E)
	}
	return nil
}

// clean returns π for context c at noise rate e.
func (nm NoiseModel) clean(c Context, e float64) float64 {
	if !nm.Posterior {
		return 1 - e
	}
	v := float64(c.V())
	ql := c.Q[c.Label]
	num := (1 - e) * ql
	den := num + e*(1-ql)/(v-1)
	if den == 0 {
		return 1 - e
	}
	return num / den
}

// view is a context's outcomes with multiplicities: each listed token once,
// and the remainder bucket either as n tokens of mass m/n (V known) or as one
// outcome of mass m.
type view struct {
	q    []float64 // per-token probability of each outcome
	mult []float64 // how many tokens share it
	n2   float64   // ‖q‖² over the whole vocabulary
}

func viewOf(c Context) view {
	v := view{q: append([]float64(nil), c.Q...), mult: make([]float64, len(c.Q))}
	for i := range v.mult {
		v.mult[i] = 1
	}
	if c.Bucket && c.V() > 0 {
		b := len(c.Q) - 1
		if n := float64(c.V() - b); n >= 1 {
			v.q[b] /= n
			v.mult[b] = n
		}
	}
	for i, x := range v.q {
		v.n2 += v.mult[i] * x * x
	}
	return v
}

// rate is Ṙ_f for one context, with y* a token of outcome truth.
func (v view) rate(o objectives.Objective, label, truth int) float64 {
	d := 0.0
	if label == truth {
		d = 1
	}
	return v.q[truth] * o.S(v.q[label]) * (d - v.q[truth] - v.q[label] + v.n2)
}

// gradNorm is s_f(q_ỹ)·‖e_ỹ − q‖.
func (v view) gradNorm(o objectives.Objective, label int) float64 {
	return o.S(v.q[label]) * math.Sqrt(math.Max(1-2*v.q[label]+v.n2, 0))
}

// noisyRate returns s_f(q_ỹ)·Σ_{k≠ỹ} u_k·q_k·(‖q‖² − q_k − q_ỹ): the rate when
// the label is wrong and y* ~ u, summed over every token of the vocabulary.
func (v view) noisyRate(o objectives.Objective, label int, u TrueDist, vocab int) float64 {
	ql := v.q[label]
	var sum float64
	switch u {
	case UModel:
		if ql >= 1 {
			return 0
		}
		for k, qk := range v.q {
			if k != label {
				sum += v.mult[k] * qk / (1 - ql) * qk * (v.n2 - qk - ql)
			}
		}
	case UUniform:
		w := 1 / float64(vocab-1)
		for k, qk := range v.q {
			if k == label {
				continue
			}
			sum += w * v.mult[k] * qk * (v.n2 - qk - ql) // V is known here, so a bucket is spread
		}
	}
	return o.S(ql) * sum
}

// noisyRate is view.noisyRate for a context.
func noisyRate(o objectives.Objective, c Context, u TrueDist) float64 {
	return viewOf(c).noisyRate(o, c.Label, u, c.V())
}

// Estimate is one objective's expected risk-reduction rate over a sample.
type Estimate struct {
	Objective string
	Contexts  int
	Kept      int     // contexts inside a threshold objective's interval
	Rate      float64 // mean of π·clean + (1 − π)·noisy
	Clean     float64 // the same with π = 1 (every label right)
	Noisy     float64 // the same with π = 0 (every label wrong, y* ~ u)
	GradNorm  float64 // √(mean ‖∇_z L‖²)
	// Normalised is Rate/GradNorm: risk reduction per unit length of the
	// gradient step, which compares objectives at equal step length.
	Normalised float64
	// Observed is the mean rate with the contexts' own true labels; NaN unless
	// every context has one.
	Observed float64
}

// ErrEmpty is returned for an empty sample.
var ErrEmpty = errors.New("theory: no contexts")

// EstimateRate computes o's expected rate over the contexts under nm: the
// mean over contexts of π·Ṙ_clean + (1 − π)·Ṙ_noisy, for the loss
// L_f = mean f(q_ỹ) of the paper's theory.
//
// The paper's code averages a thresholded objective's loss over the tokens
// it keeps, which multiplies the gradient by n/n_kept. The estimate leaves
// that factor out, as the theory does: it is a constant rescaling of the
// step, which AdamW (the paper's optimiser) cancels, and with it the raw
// rates of thresholded objectives would balloon wherever they keep few
// tokens. The normalised rate does not depend on it either way.
func EstimateRate(o objectives.Objective, ctxs []Context, nm NoiseModel) (Estimate, error) {
	est := Estimate{Objective: o.String(), Contexts: len(ctxs), Observed: math.NaN()}
	if o.Adaptive() || !o.Valid() {
		return est, fmt.Errorf("theory: %v has no fixed rate; estimate a concrete objective", o)
	}
	if err := Covers(o); err != nil {
		return est, err
	}
	if len(ctxs) == 0 {
		return est, ErrEmpty
	}
	if err := nm.Validate(); err != nil {
		return est, fmt.Errorf("theory: %w", err)
	}
	allTruth := true
	var rate, clean, noisy, g2, obs float64
	for i, c := range ctxs {
		if err := c.Validate(); err != nil {
			return est, fmt.Errorf("theory: context %d: %w", i, err)
		}
		if (nm.Posterior || nm.U == UUniform) && c.V() < 2 {
			return est, fmt.Errorf("theory: context %d: the %s needs the vocabulary size of a top-k context", i, needsV(nm))
		}
		if o.Keep(c.Q[c.Label]) {
			est.Kept++
		}
		v := viewOf(c)
		cr := v.rate(o, c.Label, c.Label)
		nr := v.noisyRate(o, c.Label, nm.U, c.V())
		pi := nm.clean(c, nm.E)
		clean += cr
		noisy += nr
		rate += pi*cr + (1-pi)*nr
		gn := v.gradNorm(o, c.Label)
		g2 += gn * gn
		if c.Truth == Unknown {
			allTruth = false
		} else {
			obs += v.rate(o, c.Label, c.Truth)
		}
	}
	n := float64(len(ctxs))
	est.Rate = rate / n
	est.Clean = clean / n
	est.Noisy = noisy / n
	est.GradNorm = math.Sqrt(g2 / n)
	if est.GradNorm > 0 {
		est.Normalised = est.Rate / est.GradNorm
	}
	if allTruth {
		est.Observed = obs / n
	}
	return est, nil
}

func needsV(nm NoiseModel) string {
	if nm.Posterior {
		return "posterior clean probability"
	}
	return "uniform true-token distribution"
}

// Rank estimates every objective and orders them by Rate, fastest first
// (ties keep the given order).
func Rank(objs []objectives.Objective, ctxs []Context, nm NoiseModel) ([]Estimate, error) {
	out := make([]Estimate, 0, len(objs))
	for _, o := range objs {
		e, err := EstimateRate(o, ctxs, nm)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Rate > out[j].Rate })
	return out, nil
}

// Comparison is the difference Δ = Ṙ₁ − Ṙ₂ of two objectives over a sample.
type Comparison struct {
	First  Estimate
	Second Estimate
	// A and B are Δ's clean and noisy parts: Δ(E) = (1 − E)·A + E·B when
	// π = 1 − E.
	A float64
	B float64
	// Delta is Δ at the noise model's rate E. Positive: First is faster.
	Delta float64
	// Crossover is the noise rate E* in [0, 1] at which Δ changes sign, NaN
	// when it keeps one sign on [0, 1]. With π = 1 − E it is A/(A − B).
	Crossover float64
	// FirstWinsAbove is true when First is faster for E > E* (A < 0 < B:
	// the paper's model-strong case for a prior-leaning First).
	FirstWinsAbove bool
}

// Compare returns the comparison of o1 against o2 on the contexts.
func Compare(o1, o2 objectives.Objective, ctxs []Context, nm NoiseModel) (Comparison, error) {
	var cmp Comparison
	var err error
	if cmp.First, err = EstimateRate(o1, ctxs, nm); err != nil {
		return cmp, err
	}
	if cmp.Second, err = EstimateRate(o2, ctxs, nm); err != nil {
		return cmp, err
	}
	cmp.A = cmp.First.Clean - cmp.Second.Clean
	cmp.B = cmp.First.Noisy - cmp.Second.Noisy
	cmp.Delta = cmp.First.Rate - cmp.Second.Rate
	cmp.Crossover = math.NaN()
	if !nm.Posterior {
		if (cmp.A < 0 && cmp.B > 0) || (cmp.A > 0 && cmp.B < 0) {
			cmp.Crossover = cmp.A / (cmp.A - cmp.B)
			cmp.FirstWinsAbove = cmp.A < 0
		}
		return cmp, nil
	}
	delta := func(e float64) float64 {
		m := nm
		m.E = e
		return deltaAt(o1, o2, ctxs, m)
	}
	const steps = 1000
	prev := delta(0)
	for i := 1; i <= steps; i++ {
		e := float64(i) / steps
		cur := delta(e)
		if (prev < 0 && cur > 0) || (prev > 0 && cur < 0) {
			lo, hi := float64(i-1)/steps, e
			for range 60 {
				mid := (lo + hi) / 2
				if dm := delta(mid); (dm < 0) == (prev < 0) {
					lo = mid
				} else {
					hi = mid
				}
			}
			cmp.Crossover = (lo + hi) / 2
			cmp.FirstWinsAbove = prev < 0
			break
		}
		prev = cur
	}
	return cmp, nil
}

// deltaAt is Rate(o1) − Rate(o2) under nm.
func deltaAt(o1, o2 objectives.Objective, ctxs []Context, nm NoiseModel) float64 {
	var d float64
	for _, c := range ctxs {
		pi := nm.clean(c, nm.E)
		v := viewOf(c)
		r1 := pi*v.rate(o1, c.Label, c.Label) + (1-pi)*v.noisyRate(o1, c.Label, nm.U, c.V())
		r2 := pi*v.rate(o2, c.Label, c.Label) + (1-pi)*v.noisyRate(o2, c.Label, nm.U, c.V())
		d += r1 - r2
	}
	return d / float64(len(ctxs))
}
