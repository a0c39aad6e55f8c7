package train

import (
	"context"
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/capsel/capsel/objectives"
)

// Gradient returns ∇_θ of the paper's loss L_f = (1/N)·Σ_t f(p_t) over the
// N scored target tokens of the examples (response tokens and EOS), as one
// flat vector in Params order. Unlike training, a thresholded objective's
// loss is divided by all N tokens, not by the kept ones (the paper's
// theory; see theory.EstimateRate). The model's gradients are left cleared.
func Gradient(ctx context.Context, m *Model, tok *Tokenizer, data []Example, obj objectives.Objective) ([]float64, error) {
	if obj.Adaptive() {
		return nil, fmt.Errorf("train: gradient of %v: pick a concrete objective", obj)
	}
	rows, _, err := encode(tok, data, m.Cfg.Context)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	b := makeBatch(rows, idx)
	loss, st, err := m.Loss(b, obj)
	if err != nil {
		return nil, err
	}
	ps := m.Params()
	defer func() {
		for _, p := range ps {
			p.Param.ZeroGrad()
		}
	}()
	for _, p := range ps {
		p.Param.ZeroGrad()
	}
	var out []float64
	if st.Kept == 0 {
		for _, p := range ps {
			out = append(out, make([]float64, p.Param.Size())...)
		}
		return out, nil
	}
	if err := ag.Backward(loss); err != nil {
		return nil, err
	}
	// Batch divides by the kept tokens; the paper's L_f divides by all of them.
	scale := float64(st.Kept) / float64(st.Scored)
	for _, p := range ps {
		if !p.Param.HasGrad() {
			out = append(out, make([]float64, p.Param.Size())...)
			continue
		}
		for _, g := range mat.Data[float32](p.Param.Grad()) {
			out = append(out, scale*float64(g))
		}
	}
	return out, nil
}

// Step moves the weights by −eta·g (plain gradient descent; g as returned by
// Gradient).
func Step(m *Model, g []float64, eta float64) error {
	i := 0
	for _, p := range m.Params() {
		w := mat.Data[float32](p.Param)
		if i+len(w) > len(g) {
			return fmt.Errorf("train: gradient of %d values for a model of more", len(g))
		}
		for j := range w {
			w[j] -= float32(eta * g[i+j])
		}
		i += len(w)
	}
	if i != len(g) {
		return fmt.Errorf("train: gradient of %d values for a model of %d", len(g), i)
	}
	return nil
}

// Dot is the inner product of two flat gradients.
func Dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
