package objectives

import (
	"fmt"
	"math"
)

// Shape is a named next-token distribution on which to read how much
// gradient an objective that is not a function of p alone gives a token:
// for those objectives W depends on the whole distribution, so a W(p) curve
// cannot show it.
type Shape struct {
	Name    string
	About   string
	LogQ    []float64 // log-probabilities over ShapeVocab tokens
	Targets []ShapeTarget
}

// ShapeTarget is a token of a Shape taken as the training target.
type ShapeTarget struct {
	Name  string
	Index int
}

// ShapeVocab is the vocabulary size of the Shapes: large enough for every
// top-20 gate, small enough that the tail tokens are not negligible.
const ShapeVocab = 1000

// Shapes returns three representative distributions over ShapeVocab tokens:
//
//	confident  0.9 on one token, the rest spread evenly (≈ 1e-4 each)
//	diffuse    uniform (1e-3 each)
//	bimodal    0.45 on each of two tokens, the rest spread evenly
//
// with the targets that tell the gates apart: a likely token, and a tail
// token, which on the confident shape is EAFT's "confident conflict" (low
// p, low entropy).
func Shapes() []Shape {
	spread := func(heads []float64) []float64 {
		lq := make([]float64, ShapeVocab)
		rest := 1.0
		for _, h := range heads {
			rest -= h
		}
		tail := math.Log(rest / float64(ShapeVocab-len(heads)))
		for i := range lq {
			if i < len(heads) {
				lq[i] = math.Log(heads[i])
			} else {
				lq[i] = tail
			}
		}
		return lq
	}
	tail := ShapeTarget{"a tail token", ShapeVocab - 1}
	return []Shape{
		{"confident", "0.9 on one token, 0.1 spread over the rest", spread([]float64{0.9}),
			[]ShapeTarget{{"the top token", 0}, tail}},
		{"diffuse", "uniform", spread(nil), []ShapeTarget{{"any token", 0}}},
		{"bimodal", "0.45 on each of two tokens, 0.1 spread over the rest", spread([]float64{0.45, 0.45}),
			[]ShapeTarget{{"a mode", 0}, tail}},
	}
}

// BatchToken returns deft-cayley's per-token loss f and gradient scale s
// (before the batch's 1/(N + 1e-8)) at log p lp in a batch whose mean p is
// meanP, with its detached exponent a:
//
//	f = (1 − p^a)/(a + 1e-8),  s = a·p^a/(a + 1e-8)
//
// It is an error for objectives of other forms.
func (o Objective) BatchToken(lp, meanP float64) (f, s, a float64, err error) {
	if o.Form() != FormBatch {
		return 0, 0, 0, fmt.Errorf("objectives: %v does not read the batch's mean p", o)
	}
	if math.IsNaN(lp) || lp > logpSlack || !(meanP >= 0 && meanP <= 1) {
		return 0, 0, 0, fmt.Errorf("objectives: log p %v or mean p %v out of range", lp, meanP)
	}
	lp = math.Min(lp, 0)
	f, s, a = generalised(lp, cayleyExponent(math.Exp(lp), meanP), cayleyEps)
	return f, s, a, nil
}
