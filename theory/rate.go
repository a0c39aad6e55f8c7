package theory

import (
	"errors"
	"fmt"
	"math"

	"github.com/capsel/capsel/objectives"
)

// Covers reports whether the rates of this package apply to o. They apply
// to every valid objective with a fixed form: the paper's functions of p,
// and the trainers' gated and anchored objectives, whose gradient keeps
// NLL's direction at the start of training (see Scope for what that
// leaves out). Adaptive objectives (auto, auto-theory) are chosen during
// training and have no rate of their own.
func Covers(o objectives.Objective) error {
	switch {
	case !o.Valid():
		return errors.New("theory: invalid objective")
	case o.Adaptive():
		return fmt.Errorf("theory: %v is chosen during training and has no fixed rate; estimate a concrete objective", o)
	}
	return nil
}

// Scope says, in one sentence, where the paper's analysis does not cover
// o, and how this package extends it; "" for the paper's own functions of
// p (and for adaptive and invalid objectives).
func Scope(o objectives.Objective) string {
	switch o.Form() {
	case objectives.FormDist:
		if o.Kind() == objectives.KindDEFT {
			return "beyond the paper: its detached gate c = Σq² reads the context's whole distribution, so s = c·p^c/(c + 1e-6) is evaluated on each context's q (a top-k context spreads its remainder over the unlisted tokens, as for ‖q‖²), and the paper's Theorem 6.4, whose conditions are on s as a function of p, says nothing about it"
		}
		return fmt.Sprintf("beyond the paper: NLL's s = 1 times a detached gate from the entropy of the context's top %d tokens, evaluated on each context's q (exact from a top-%d list), so the paper's Theorem 6.4, whose conditions are on s as a function of p, says nothing about it", o.TopK(), o.TopK())
	case objectives.FormBatch:
		return "beyond the paper: its detached exponent reads the batch's mean p, for which the theory takes the sample's mean p of the labels as given (a real batch's mean scatters around it)"
	case objectives.FormAnchored:
		return "first order at the start only: the KL anchor's gradient α·(q − r) is zero where the model is its own reference (r = q), the one point the paper's analysis looks at, so the rate is DFT's (s = p) and ranks level with p and dft for every α; what the anchor does once the model moves away from its reference is outside the analysis"
	}
	return ""
}

// Inner returns ⟨e_truth − q, e_label − q⟩ = δ − q_truth − q_label + ‖q‖².
// It panics if an index is out of range.
func Inner(q []float64, label, truth int) float64 {
	d := 0.0
	if label == truth {
		d = 1
	}
	return d - q[truth] - q[label] + sqNorm(q)
}

// Rate returns the per-context risk-reduction rate of objective o,
//
//	Ṙ_f(x) = q_{y*} · s_f(q_ỹ) · ⟨e_{y*} − q, e_ỹ − q⟩,
//
// for the full distribution q, the training label ỹ = label and the true
// label y* = truth (paper Eq. 14 with Assumption E.3), with s the scale of
// the objective's gate evaluated on q for the objectives that are not
// functions of p (see Scope). It panics if an index is out of range and
// returns NaN for adaptive objectives, for deft-cayley (its gate reads a
// sample's mean p: use EstimateRate), and where the gate cannot be read
// (eaft-α on fewer than 20 tokens).
func Rate(o objectives.Objective, q []float64, label, truth int) float64 {
	s, err := fullScale(o, q, label)
	if err != nil {
		return math.NaN()
	}
	return q[truth] * s * Inner(q, label, truth)
}

// GradNorm returns ‖∇_z f(q_ỹ)‖ = s_f·‖e_ỹ − q‖, the length of the
// objective's gradient with respect to free logits for one context (NaN
// where Rate is).
func GradNorm(o objectives.Objective, q []float64, label int) float64 {
	s, err := fullScale(o, q, label)
	if err != nil {
		return math.NaN()
	}
	n2 := sqNorm(q) - 2*q[label] + 1 // ‖e_ỹ − q‖² = 1 − 2q_ỹ + ‖q‖²
	return s * math.Sqrt(math.Max(n2, 0))
}

// fullScale is the gradient scale of o on a full-distribution context.
func fullScale(o objectives.Objective, q []float64, label int) (float64, error) {
	if o.Form() == objectives.FormBatch {
		return math.NaN(), fmt.Errorf("theory: %v reads a sample's mean p", o)
	}
	c := Context{Q: q, Label: label, Truth: Unknown}
	return scaleOf(o, c, viewOf(c), math.NaN())
}

// WeakEnd returns Δ = Ṙ₁ − Ṙ₂ at the model-weak end, where the model predicts
// uniformly over a vocabulary of V tokens and labels are noisy at rate E:
//
//	Δ = (f₂′ − f₁′)(1/V) · [(V − 1)(1 − E) − E] / V³
//	  = (s₁ − s₂) · [(V − 1)(1 − E) − E] / V²        (f′ = −s/p)
//
// (paper, proof of Theorem E.8, model-weak case), with s the gradient
// scale at uniform q: for a gated objective the gate read from the uniform
// distribution (EAFT's top-k entropy log min(k, V), DEFT's c = 1/V), for
// deft-cayley the batch's mean p 1/V, and for asft DFT's p at its reference.
// Δ > 0 means o1 reduces risk faster. For o1 more prior-leaning than o2
// (s₁ < s₂ at small p) Δ < 0 whenever E < (V − 1)/V: NLL-like objectives
// win. NaN for adaptive objectives and for eaft-α when V < 20 (see
// objectives.Objective.CheckVocab).
func WeakEnd(o1, o2 objectives.Objective, V int, E float64) float64 {
	s1, s2 := uniformScale(o1, V), uniformScale(o2, V)
	v := float64(V)
	return (s1 - s2) * ((v-1)*(1-E) - E) / (v * v)
}

// uniformScale is o's gradient scale at the uniform distribution over V
// tokens: a top-k context that lists as many tokens as o's gate reads and
// spreads the rest, which is that distribution exactly without building V
// entries.
func uniformScale(o objectives.Objective, V int) float64 {
	if V < 2 {
		return math.NaN()
	}
	n := min(V, max(o.TopK(), 2))
	listed := make([]float64, n)
	for i := range listed {
		listed[i] = 1 / float64(V)
	}
	c := NewTopK(listed, 0, Unknown, V)
	c.TopK = n
	s, err := scaleOf(o, c, viewOf(c), 1/float64(V))
	if err != nil {
		return math.NaN()
	}
	return s
}

func sqNorm(q []float64) float64 {
	var s float64
	for _, x := range q {
		s += x * x
	}
	return s
}
