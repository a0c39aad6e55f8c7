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
// and the last entry of Q is the mass of all unlisted tokens, treated as one
// outcome: ‖q‖² then counts that mass as if it sat on a single token, which
// overstates ‖q‖² by at most the bucket's mass squared. Reports say so.
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

// noisyRate returns s_f(q_ỹ)·Σ_{k≠ỹ} u_k·q_k·(‖q‖² − q_k − q_ỹ): the rate when
// the label is wrong and y* ~ u.
func noisyRate(o objectives.Objective, c Context, u TrueDist) float64 {
	q, l := c.Q, c.Label
	n2 := sqNorm(q)
	ql := q[l]
	var sum float64
	switch u {
	case UModel:
		if ql >= 1 {
			return 0
		}
		for k, qk := range q {
			if k != l {
				sum += qk / (1 - ql) * qk * (n2 - qk - ql)
			}
		}
	case UUniform:
		v := float64(c.V())
		for k, qk := range q {
			if k == l {
				continue
			}
			w := 1 / (v - 1)
			if c.Bucket && k == len(q)-1 {
				w = (v - float64(len(q)-1)) / (v - 1) // the unlisted tokens, lumped
			}
			sum += w * qk * (n2 - qk - ql)
		}
	}
	return o.S(ql) * sum
}

// Estimate is one objective's expected risk-reduction rate over a sample.
type Estimate struct {
	Objective string
	Contexts  int
	Kept      int     // contexts inside a threshold objective's interval
	Rate      float64 // mean of π·clean + (1 − π)·noisy, with kept-token averaging
	Clean     float64 // the same with π = 1 (every label right)
	Noisy     float64 // the same with π = 0 (every label wrong, y* ~ u)
	GradNorm  float64 // √(mean ‖∇_z L‖²), with kept-token averaging
	// Normalised is Rate/GradNorm: risk reduction per unit length of the
	// gradient step, which compares objectives at equal step length.
	Normalised float64
	// Observed is the mean rate with the contexts' own true labels; NaN unless
	// every context has one.
	Observed float64
}

// ErrEmpty is returned for an empty sample.
var ErrEmpty = errors.New("theory: no contexts")

// Estimate computes o's expected rate over the contexts under nm.
//
// Thresholded objectives are trained with the loss averaged over kept tokens
// (the paper's code), which multiplies their gradient by n/n_kept; the
// estimate includes that factor so that it describes the loss actually
// trained. The normalised rate does not depend on it.
func EstimateRate(o objectives.Objective, ctxs []Context, nm NoiseModel) (Estimate, error) {
	est := Estimate{Objective: o.String(), Contexts: len(ctxs), Observed: math.NaN()}
	if o.Adaptive() || !o.Valid() {
		return est, fmt.Errorf("theory: %v has no fixed rate; estimate a concrete objective", o)
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
		cr := Rate(o, c.Q, c.Label, c.Label)
		nr := noisyRate(o, c, nm.U)
		pi := nm.clean(c, nm.E)
		clean += cr
		noisy += nr
		rate += pi*cr + (1-pi)*nr
		gn := GradNorm(o, c.Q, c.Label)
		g2 += gn * gn
		if c.Truth == Unknown {
			allTruth = false
		} else {
			obs += Rate(o, c.Q, c.Label, c.Truth)
		}
	}
	n := float64(len(ctxs))
	if est.Kept == 0 {
		return est, nil // nothing trains: all rates are 0
	}
	k := 1.0
	if o.Thresholded() {
		k = n / float64(est.Kept)
	}
	est.Rate = k * rate / n
	est.Clean = k * clean / n
	est.Noisy = k * noisy / n
	est.GradNorm = k * math.Sqrt(g2/n)
	if est.GradNorm > 0 {
		est.Normalised = est.Rate / est.GradNorm
	}
	if allTruth {
		est.Observed = k * obs / n
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
		return deltaAt(o1, o2, ctxs, m, cmp.First, cmp.Second)
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

// deltaAt is Rate(o1) − Rate(o2) at the model's noise rate, reusing the
// kept-token factors of the given estimates.
func deltaAt(o1, o2 objectives.Objective, ctxs []Context, nm NoiseModel, e1, e2 Estimate) float64 {
	factor := func(o objectives.Objective, e Estimate) float64 {
		if e.Kept == 0 {
			return 0
		}
		if o.Thresholded() {
			return float64(e.Contexts) / float64(e.Kept)
		}
		return 1
	}
	k1, k2 := factor(o1, e1), factor(o2, e2)
	var d float64
	for _, c := range ctxs {
		pi := nm.clean(c, nm.E)
		r1 := pi*Rate(o1, c.Q, c.Label, c.Label) + (1-pi)*noisyRate(o1, c, nm.U)
		r2 := pi*Rate(o2, c.Q, c.Label, c.Label) + (1-pi)*noisyRate(o2, c, nm.U)
		d += k1*r1 - k2*r2
	}
	return d / float64(len(ctxs))
}
