package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"

	"github.com/capsel/capsel/internal/par"
	"github.com/capsel/capsel/internal/simd"
	"github.com/capsel/capsel/objectives"
)

// The loss operator's part for objectives that read more than the target's
// log-probability (objectives.FormDist and FormAnchored: EAFT, DEFT, ASFT).
// Per scored row it hands objectives.BatchDist the row's gate statistic
// (objectives.DistStat of the row's log-softmax) or its KL to the frozen
// reference model's row, and the backward pass adds the anchor term:
//
//	∂Loss/∂z_t = scale_t·(softmax(z_t) − e_{y_t}) + anchor_t·(softmax(z_t) − r_t)
//
// with r_t = softmax of the reference's logits. Rows are independent, so the
// parallel loops do not change any result.

// errNoReference is returned when an anchored objective has no reference.
var errNoReference = errors.New("train: the objective anchors to a reference model, and none was given")

// setReference runs the frozen reference model forward on b and keeps its
// logits and per-row log-sum-exp for the loss. It runs about refChunkRows
// rows (whole sequences) at a time in ws, reset between chunks, keeping only
// their logits: with no backward pass to feed, the activations of a whole
// batch need not be held at once (see BenchmarkObjectiveCost for what that
// saves and costs).
func (o *lossOp) setReference(ref *Model, b Batch, ws *workspace) error {
	if ref.Cfg.Vocab != o.v {
		return fmt.Errorf("train: reference model of %d tokens for a model of %d", ref.Cfg.Vocab, o.v)
	}
	v, t := o.v, ref.Cfg.Context
	chunk := max(1, refChunkRows/t)
	o.refZ = make([]float32, o.n*v)
	for s0 := 0; s0 < b.Seqs; s0 += chunk {
		s1 := min(b.Seqs, s0+chunk)
		r0, r1 := s0*t, s1*t
		if r1 > len(b.IDs) {
			return fmt.Errorf("train: reference model: %w", errBatch)
		}
		sub := Batch{Seqs: s1 - s0, IDs: b.IDs[r0:r1], Targets: b.Targets[r0:r1], Mask: b.Mask[r0:r1]}
		ws.reset()
		z, err := ref.logits(sub, ws)
		if err != nil {
			return fmt.Errorf("train: reference model: %w", err)
		}
		copy(o.refZ[r0*v:r1*v], vals(z))
	}
	ws.reset()
	o.refLSE = make([]float64, o.n)
	par.For(o.n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := o.refZ[i*v : i*v+v]
			mx := simd.Max(row)
			o.refLSE[i] = float64(mx) + math.Log(float64(simd.SumExp(row, mx)))
		}
	})
	return nil
}

// refChunkRows is about how many rows the reference model runs at a time.
const refChunkRows = 256

// applyDist evaluates an objective of FormDist or FormAnchored: the gate
// statistics or KLs of the scored rows, then BatchDist.
func (o *lossOp) applyDist(obj objectives.Objective) error {
	form := obj.Form()
	if err := obj.CheckVocab(o.v); err != nil {
		return fmt.Errorf("train: loss: %w", err)
	}
	if form == objectives.FormAnchored && o.refZ == nil {
		return errNoReference
	}
	in := objectives.DistBatch{LogP: o.logp, Mask: o.mask}
	var stat []float64
	if form == objectives.FormDist {
		stat = make([]float64, o.n)
		in.Stat = stat
	} else {
		stat = make([]float64, o.n)
		in.KL = stat
	}
	z, v := vals(o.logits), o.v
	par.For(o.n, func(lo, hi int) {
		lq := make([]float64, v)
		var lr []float64
		if form == objectives.FormAnchored {
			lr = make([]float64, v)
		}
		for i := lo; i < hi; i++ {
			if !o.mask[i] {
				continue
			}
			l := o.lse64[i]
			for k, x := range z[i*v : i*v+v] {
				lq[k] = float64(x) - l
			}
			if form == objectives.FormDist {
				stat[i] = obj.DistStat(lq)
				continue
			}
			lr0 := o.refLSE[i]
			for k, x := range o.refZ[i*v : i*v+v] {
				lr[k] = float64(x) - lr0
			}
			stat[i] = objectives.KL(lr, lq)
		}
	})
	o.obj = obj
	o.scale = make([]float64, o.n)
	if form == objectives.FormAnchored {
		o.anchor = make([]float64, o.n)
	}
	st, err := obj.BatchDist(in, nil, o.scale, o.anchor)
	if err != nil {
		return fmt.Errorf("train: loss: %w", err)
	}
	o.stats = st
	return nil
}

// backwardAnchored is Backward for rows with an anchor term: with
// c = scale + anchor,
//
//	∂Loss/∂z_k = c·softmax(z)_k − scale·δ_{k,y} − anchor·r_k
func (o *lossOp) backwardAnchored(gs float64, dd []float32) {
	z, v := vals(o.logits), o.v
	par.For(o.n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sc, an := o.scale[i]*gs, o.anchor[i]*gs
			out := dd[i*v : i*v+v]
			if sc == 0 && an == 0 {
				clear(out)
				continue
			}
			simd.ExpScale(out, z[i*v:i*v+v], o.lse[i], float32(sc+an))
			out[o.targets[i]] -= float32(sc)
			lr := o.refLSE[i]
			for k, x := range o.refZ[i*v : i*v+v] {
				out[k] -= float32(an * math.Exp(float64(x)-lr))
			}
		}
	})
}

// frozenCopy returns a copy of m whose parameters take no gradient: the
// reference model of an anchored objective.
func (m *Model) frozenCopy() (*Model, error) {
	c, err := NewModel(m.Cfg, 0)
	if err != nil {
		return nil, err
	}
	src := m.Params()
	for i, np := range c.Params() {
		copy(mat.Data[float32](np.Param), mat.Data[float32](src[i].Param))
		np.Param.SetRequiresGrad(false)
	}
	return c, nil
}

// LossWithReference is Loss for an objective that anchors to a reference
// model (asft-α): ref is run forward on the same batch. For other
// objectives ref is ignored and it is Loss.
func (m *Model) LossWithReference(b Batch, obj objectives.Objective, ref *Model) (mat.Tensor, objectives.BatchStats, error) {
	return m.lossRef(b, obj, ref, nil, nil)
}
