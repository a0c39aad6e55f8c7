package theory

import (
	"fmt"
	"math"

	"github.com/capsel/capsel/objectives"
)

// Covers reports whether the rates of this package apply to o: they are
// the paper's, for an objective that is a function f of the target's p
// alone. The objectives the trainers ship beyond that family (eaft, deft,
// deft-cayley, asft; see objectives.Form) are refused with an error that
// wraps objectives.ErrNotP: a gate read from the whole distribution, the
// batch's mean p, or a KL anchor to a reference model is outside the
// paper's Lemma 3.1, and their rates are not implemented yet.
func Covers(o objectives.Objective) error {
	if o.Valid() && !o.Adaptive() && !o.OfP() {
		return fmt.Errorf("theory: %v is a %s, %w: the paper's rate covers objectives f(p), and the rates of gated and anchored objectives are not implemented yet", o, o.Form(), objectives.ErrNotP)
	}
	return nil
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
// for the distribution q, the training label ỹ = label and the true label
// y* = truth (paper Eq. 14 with Assumption E.3). It panics if an index is out
// of range and returns NaN for adaptive objectives and those Covers refuses.
func Rate(o objectives.Objective, q []float64, label, truth int) float64 {
	return q[truth] * o.S(q[label]) * Inner(q, label, truth)
}

// GradNorm returns ‖∇_z f(q_ỹ)‖ = s_f(q_ỹ)·‖e_ỹ − q‖, the length of the
// objective's gradient with respect to free logits for one context.
func GradNorm(o objectives.Objective, q []float64, label int) float64 {
	n2 := sqNorm(q) - 2*q[label] + 1 // ‖e_ỹ − q‖² = 1 − 2q_ỹ + ‖q‖²
	return o.S(q[label]) * math.Sqrt(math.Max(n2, 0))
}

// WeakEnd returns Δ = Ṙ₁ − Ṙ₂ at the model-weak end, where the model predicts
// uniformly over a vocabulary of V tokens and labels are noisy at rate E:
//
//	Δ = (f₂′ − f₁′)(1/V) · [(V − 1)(1 − E) − E] / V³
//	  = (s₁ − s₂)(1/V) · [(V − 1)(1 − E) − E] / V²        (f′ = −s/p)
//
// (paper, proof of Theorem E.8, model-weak case). Δ > 0 means o1 reduces
// risk faster. For o1 more prior-leaning than o2 (s₁ < s₂ at small p) Δ < 0
// whenever E < (V − 1)/V: NLL-like objectives win.
func WeakEnd(o1, o2 objectives.Objective, V int, E float64) float64 {
	p := 1 / float64(V)
	v := float64(V)
	return (o1.S(p) - o2.S(p)) * ((v-1)*(1-E) - E) / (v * v)
}

func sqNorm(q []float64) float64 {
	var s float64
	for _, x := range q {
		s += x * x
	}
	return s
}
