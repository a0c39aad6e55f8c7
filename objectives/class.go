package objectives

import "math"

// Class places an objective relative to the model's prior (the paper's
// Definition 3.3).
type Class int

// The classes. Adaptive objectives have no fixed class, and objectives
// that are not functions of p alone (see OfP) have none by Definition 3.3,
// which places f by where its weight W(p) sits on [0, 1].
const (
	ClassInvalid Class = iota
	PriorAverse
	PriorLeaning
	ClassAdaptive
	ClassNotP
)

func (c Class) String() string {
	switch c {
	case PriorAverse:
		return "prior-averse"
	case PriorLeaning:
		return "prior-leaning"
	case ClassAdaptive:
		return "adaptive"
	case ClassNotP:
		return "not a function of p"
	}
	return "invalid"
}

// ClassThreshold is τ of the paper's Definition 3.3: an objective is
// prior-leaning when most of its gradient weight W_f sits on tokens with
// p ≥ τ. The paper leaves τ task-dependent and draws p = 0.5 as the reference
// line of its Fig. 3; 0.5 also splits the family at its convexity boundary
// (Proposition 3.2: W of a concave f peaks in [½, 1], of a convex f in [0, ½]).
const ClassThreshold = 0.5

// LeaningShare returns the share of W_f's mass on [ClassThreshold, 1]:
//
//	∫_τ^1 W_f(p) dp / ∫_0^1 W_f(p) dp
//
// It is 0.25 for NLL (W = 1 − p), exactly 0.5 for "p" (W = p(1 − p), the
// paper's boundary case), and 0.75 for log1mp (W = p). NaN for adaptive
// objectives and for those that are not functions of p alone.
func (o Objective) LeaningShare() float64 {
	if !o.OfP() {
		return math.NaN()
	}
	cuts := []float64{0, ClassThreshold, 1}
	if o.Thresholded() {
		cuts = insertSorted(cuts, o.param)
	}
	if o.kind == KindLog1mP {
		cuts = insertSorted(cuts, 1-Log1mPClamp)
	}
	var lo, hi float64
	for i := 0; i+1 < len(cuts); i++ {
		m := simpson(o.W, cuts[i], cuts[i+1], 2000)
		if cuts[i+1] <= ClassThreshold {
			lo += m
		} else {
			hi += m
		}
	}
	return hi / (lo + hi)
}

// Class returns o's class. A hard threshold decides it where the paper labels
// one: OnlyTop* masks away low-p tokens and is prior-leaning, OnlyBottom*
// keeps only them and is prior-averse. Otherwise o is prior-leaning when
// LeaningShare ≥ ½, so that "p" (the boundary, share exactly ½) counts as
// prior-leaning as the paper calls it, GeneralFamily-α is prior-leaning for
// α ≥ 1 and prior-averse below, and NLL and focal loss are prior-averse.
func (o Objective) Class() Class {
	switch {
	case !o.Valid():
		return ClassInvalid
	case o.Adaptive():
		return ClassAdaptive
	case !o.OfP():
		return ClassNotP
	case o.kind == KindOnlyTopP || o.kind == KindOnlyTopLogP:
		return PriorLeaning
	case o.kind == KindOnlyBottomP || o.kind == KindOnlyBottomLogP:
		return PriorAverse
	}
	// The tolerance absorbs quadrature error at the exact boundary (p, GeneralFamily-1).
	if o.LeaningShare() >= ClassThreshold-1e-9 {
		return PriorLeaning
	}
	return PriorAverse
}

// PeakP returns the p in [0, 1] at which W_f is largest (the smallest such p
// when the maximum is attained on a set), found on a grid of 10⁴ cells and
// refined by golden-section search. For GeneralFamily-α the closed form is
// α/(α + 1); for NLL it is 0 and for log1mp just below the clamp. NaN for
// adaptive objectives and for those that are not functions of p alone.
func (o Objective) PeakP() float64 {
	if !o.OfP() {
		return math.NaN()
	}
	const n = 10000
	best, bestW := 0.0, math.Inf(-1)
	for i := 0; i <= n; i++ {
		p := float64(i) / n
		if w := o.W(p); w > bestW {
			best, bestW = p, w
		}
	}
	a, b := math.Max(best-1.0/n, 0), math.Min(best+1.0/n, 1)
	g := (math.Sqrt(5) - 1) / 2
	for range 100 {
		c, d := b-g*(b-a), a+g*(b-a)
		if o.W(c) >= o.W(d) {
			b = d
		} else {
			a = c
		}
	}
	if m := (a + b) / 2; o.W(m) > bestW {
		return m
	}
	return best
}

// simpson integrates f over [a, b] with the composite Simpson rule on n
// (even) panels.
func simpson(f func(float64) float64, a, b float64, n int) float64 {
	if b <= a {
		return 0
	}
	h := (b - a) / float64(n)
	sum := f(a) + f(b)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * f(a+float64(i)*h)
	}
	return sum * h / 3
}

func insertSorted(xs []float64, x float64) []float64 {
	for i, v := range xs {
		if x == v {
			return xs
		}
		if x < v {
			out := append([]float64{}, xs[:i]...)
			out = append(out, x)
			return append(out, xs[i:]...)
		}
	}
	return append(xs, x)
}
