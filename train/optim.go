package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/capsel/capsel/internal/par"
	"github.com/capsel/capsel/internal/simd"
)

// AdamW is decoupled-weight-decay Adam (Loshchilov and Hutter 2019) with
// PyTorch's update, the one the paper's trainer uses (AdamW, betas 0.9/0.95,
// weight decay 0.01). At step t (from 1), for every parameter w with
// gradient g:
//
//	w ← w − lr·λ·w
//	m ← β₁·m + (1 − β₁)·g,  v ← β₂·v + (1 − β₂)·g²
//	w ← w − lr · (m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ε)
//
// spago's own Adam scales the decay and ε by the bias-correction factor,
// which PyTorch does not. The state lives in each parameter's State field as
// *AdamState. optimize applies it to all parameters; spago's
// optimizers.Optimizer does not (see optimize).
type AdamW struct {
	LR          float64 // set before every step by the schedule
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	T           int // the step being taken, from 1
}

// AdamState is the per-parameter state of AdamW.
type AdamState struct {
	M, V []float32
}

// OptimizeParams updates one parameter and clears its gradient. It has the
// signature of spago's optimizers.OptimizationStrategy. Clearing sets the
// gradient to zeros rather than dropping it — equivalent for spago ("a
// matrix full of zeros and the nil value are considered equivalent",
// mat.Tensor.Grad) — so that the next backward pass adds into the same
// buffer (workspace.addParamGrad) instead of spago's Dense.AccGrad cloning
// a fresh one for every parameter (TestSpagoAccGradClones).
func (a *AdamW) OptimizeParams(p *nn.Param) error {
	w := mat.Data[float32](p)
	g := mat.Data[float32](p.Grad())
	if len(g) != len(w) {
		return fmt.Errorf("train: adamw: gradient of %d values for a parameter of %d", len(g), len(w))
	}
	st, _ := p.State.(*AdamState)
	if st == nil {
		st = &AdamState{M: make([]float32, len(w)), V: make([]float32, len(w))}
		p.State = st
	}
	t := float64(a.T)
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	c := simd.AdamW{
		Beta1: b1, OneMinusBeta1: 1 - b1,
		Beta2: b2, OneMinusBeta2: 1 - b2,
		BiasCorr2: float32(math.Sqrt(1 - math.Pow(a.Beta2, t))),
		Eps:       float32(a.Eps),
		Decay:     float32(1 - a.LR*a.WeightDecay),
		Step:      float32(a.LR) / float32(1-math.Pow(a.Beta1, t)),
	}
	c.Update(w, g, st.M, st.V)
	clear(g)
	return nil
}

// optimize applies a to every parameter that has a gradient, in parallel,
// and returns when all updates are done. It replaces spago's
// optimizers.Optimizer, whose Optimize (v1.1.0) returns on success without
// waiting for its update goroutines, so that the next forward pass would
// race with the weight updates (TestSpagoOptimizeDoesNotWait).
func optimize(a *AdamW, params []NamedParam) error {
	errs := make([]error, len(params))
	par.For(len(params), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if params[i].Param.HasGrad() {
				errs[i] = a.OptimizeParams(params[i].Param)
			}
		}
	})
	return errors.Join(errs...)
}

// Schedule returns the learning rate at step s (0-based) of total: linear
// warm-up over the first ⌈warmup·total⌉ steps from 0, then cosine decay to 0
// — the shape of Hugging Face's get_cosine_schedule_with_warmup, which the
// paper's verl trainer uses with warm-up ratio 0.1.
func Schedule(base float64, s, total int, warmup float64) float64 {
	w := int(math.Ceil(warmup * float64(total)))
	if s < w {
		return base * float64(s) / float64(max(1, w))
	}
	progress := float64(s-w) / float64(max(1, total-w))
	return base * 0.5 * (1 + math.Cos(math.Pi*math.Min(progress, 1)))
}

// clipGradients scales every gradient so that their global L2 norm is at
// most maxNorm (PyTorch's clip_grad_norm_: factor maxNorm/(norm + 1e-6) when
// it is below 1). It returns the norm before clipping. The squares are
// summed in float64, parameter by parameter in order (within a parameter in
// a fixed vector-lane order), so the norm is deterministic.
func clipGradients(params []NamedParam, maxNorm float64) float64 {
	var ss float64
	for _, np := range params {
		if np.Param.HasGrad() {
			ss += simd.SumSquares(mat.Data[float32](np.Param.Grad()))
		}
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 {
		if c := maxNorm / (norm + 1e-6); c < 1 {
			cf := float32(c)
			for _, np := range params {
				if np.Param.HasGrad() {
					simd.Scale(mat.Data[float32](np.Param.Grad()), cf)
				}
			}
		}
	}
	return norm
}
