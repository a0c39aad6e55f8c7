package train

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/capsel/capsel/internal/gemm"
	"github.com/capsel/capsel/internal/par"
	"github.com/capsel/capsel/internal/simd"
	"github.com/capsel/capsel/objectives"
)

// The model's operators. Each one is a spago ag.AutoGradFunction with a
// hand-written fused forward and backward, so that a step builds a few dozen
// graph nodes rather than one per token or per element. Activations are
// row-major float32 matrices with one row per token (N = batch·context rows):
// a token's features, and a sequence's T consecutive tokens, are contiguous.
// The inner loops are the vector kernels of internal/simd; buffers come from
// the step's workspace (see act.go).
//
// Determinism: every parallel loop partitions the *output* among workers,
// the simd kernels treat an element the same wherever a chunk boundary
// falls, and the only reductions that are split — the column sums of bias
// and gain gradients — are split into fixed blocks of rows (rowBlock) that
// do not depend on the workers, so results do not depend on the number of
// workers. Each node of the graph has at most two consumers, so the
// concurrent gradient accumulation of spago's backward goroutines (a + b =
// b + a in floating point) cannot reorder a sum either.

func newMat(r, c int) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(r, c))
}

// ---- embedding --------------------------------------------------------------

// embedOp: X[i] = tok[ids[i]] + pos[i mod T].
type embedOp struct {
	tok, pos mat.Tensor
	ids      []int
	t, d     int
	ws       *workspace
}

func (o *embedOp) Operands() []mat.Tensor { return []mat.Tensor{o.tok, o.pos} }

func (o *embedOp) Forward() (mat.Tensor, error) {
	tok, pos := vals(o.tok), vals(o.pos)
	d := o.d
	y := o.ws.act(len(o.ids), d)
	for i, id := range o.ids {
		out := y.data[i*d : i*d+d]
		copy(out, tok[id*d:id*d+d])
		simd.Add(out, pos[(i%o.t)*d:(i%o.t)*d+d])
	}
	return y, nil
}

func (o *embedOp) Backward(gy mat.Tensor) error {
	g := vals(gy)
	d := o.d
	if o.tok.RequiresGrad() {
		o.ws.addParamGrad(o.tok, func(dd []float32) {
			for i, id := range o.ids { // in row order: deterministic
				simd.Add(dd[id*d:id*d+d], g[i*d:i*d+d])
			}
		})
	}
	if o.pos.RequiresGrad() {
		o.ws.addParamGrad(o.pos, func(dd []float32) {
			for i := range o.ids {
				p := i % o.t
				simd.Add(dd[p*d:p*d+d], g[i*d:i*d+d])
			}
		})
	}
	o.ws.releaseMat(gy)
	return nil
}

// ---- layer norm -------------------------------------------------------------

const lnEps = 1e-5

// layerNormOp: y = (x − μ)/√(σ² + ε)·g + b per row, σ² the biased variance.
type layerNormOp struct {
	x, g, b mat.Tensor
	n, d    int
	ws      *workspace
	xhat    []float32
	rstd    []float32
}

func (o *layerNormOp) Operands() []mat.Tensor { return []mat.Tensor{o.x, o.g, o.b} }

func (o *layerNormOp) Forward() (mat.Tensor, error) {
	x, g, b := vals(o.x), vals(o.g), vals(o.b)
	n, d := o.n, o.d
	o.xhat = o.ws.floats(n * d)
	o.rstd = o.ws.floats(n)
	y := o.ws.act(n, d)
	par.For(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr := x[i*d : i*d+d]
			mu := simd.Sum(xr) / float32(d)
			v := simd.SumSqDev(xr, mu) / float32(d)
			r := float32(1 / math.Sqrt(float64(v)+lnEps))
			o.rstd[i] = r
			simd.LayerNormApply(o.xhat[i*d:i*d+d], y.data[i*d:i*d+d], xr, g, b, mu, r)
		}
	})
	return y, nil
}

func (o *layerNormOp) Backward(gy mat.Tensor) error {
	dy, g := vals(gy), vals(o.g)
	n, d := o.n, o.d
	needX := o.x.RequiresGrad()
	needGB := o.g.RequiresGrad() || o.b.RequiresGrad()
	var dx *mat.Dense[float32]
	var dxd []float32
	if needX {
		dx, dxd = o.ws.grad(n, d, false)
	}
	// Rows in fixed blocks: each block computes its rows of dx and its
	// partial sums of dg and db; the partials are then added in block order.
	nb := (n + rowBlock - 1) / rowBlock
	var pg, pb []float32
	if needGB {
		pg, pb = o.ws.floats(nb*d), o.ws.floats(nb*d)
	}
	par.For(nb, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			r0, r1 := blk*rowBlock, min(n, (blk+1)*rowBlock)
			if needGB {
				clear(pg[blk*d : blk*d+d])
				clear(pb[blk*d : blk*d+d])
			}
			for i := r0; i < r1; i++ {
				dr, xh := dy[i*d:i*d+d], o.xhat[i*d:i*d+d]
				if needX {
					m1, m2 := simd.LayerNormGradSums(dr, g, xh) // Σ dxhat, Σ dxhat·xhat
					simd.LayerNormGradApply(dxd[i*d:i*d+d], dr, g, xh, o.rstd[i], m1/float32(d), m2/float32(d))
				}
				if needGB {
					simd.MulAdd(pg[blk*d:blk*d+d], dr, xh)
					simd.Add(pb[blk*d:blk*d+d], dr)
				}
			}
		}
	})
	if o.g.RequiresGrad() {
		o.ws.addParamGrad(o.g, func(dst []float32) { addRows(dst, pg, nb) })
	}
	if o.b.RequiresGrad() {
		o.ws.addParamGrad(o.b, func(dst []float32) { addRows(dst, pb, nb) })
	}
	if needX {
		o.x.AccGrad(dx)
	}
	o.ws.release(pg)
	o.ws.release(pb)
	o.ws.release(o.xhat)
	o.ws.release(o.rstd)
	o.ws.releaseMat(gy)
	return nil
}

// rowBlock is the number of rows whose column sums (bias and gain
// gradients) one partial sum covers. It is fixed, so the association of
// those sums depends on the number of rows only, never on the workers.
const rowBlock = 32

// addRows adds the rows of the rows×len(dst) matrix m to dst, in order.
func addRows(dst, m []float32, rows int) {
	c := len(dst)
	for r := range rows {
		simd.Add(dst, m[r*c:r*c+c])
	}
}

// blockSums sets row blk of part (nb×c) to the sum, in row order, of the
// rows of block blk of the n×c matrix g.
func blockSums(part, g []float32, blk, n, c int) {
	p := part[blk*c : blk*c+c]
	r0, r1 := blk*rowBlock, min(n, (blk+1)*rowBlock)
	copy(p, g[r0*c:r0*c+c])
	for i := r0 + 1; i < r1; i++ {
		simd.Add(p, g[i*c:i*c+c])
	}
}

// ---- linear -----------------------------------------------------------------

// linearOp: Y = X·W + b, X n×in, W in×out, b 1×out; with gelu set,
// Y = GELU(X·W + b); with res set (a node n×out), Y = res + X·W + b, the
// residual connection folded into the projection that ends a block branch.
type linearOp struct {
	x, w, b    mat.Tensor
	res        mat.Tensor // optional residual input
	gelu       bool
	n, in, out int
	ws         *workspace
	pre        []float32 // with gelu: X·W + b, kept for the backward pass
}

func (o *linearOp) Operands() []mat.Tensor {
	if o.res != nil {
		return []mat.Tensor{o.x, o.w, o.b, o.res}
	}
	return []mat.Tensor{o.x, o.w, o.b}
}

func (o *linearOp) Forward() (mat.Tensor, error) {
	x, w, b := vals(o.x), vals(o.w), vals(o.b)
	y := o.ws.act(o.n, o.out)
	c := y.data
	if o.gelu {
		o.pre = o.ws.floats(o.n * o.out)
		c = o.pre
	}
	var res []float32
	if o.res != nil {
		res = vals(o.res)
	}
	par.For(o.n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := c[i*o.out : (i+1)*o.out]
			if res != nil {
				copy(row, res[i*o.out:(i+1)*o.out])
				simd.Add(row, b)
			} else {
				copy(row, b)
			}
		}
	})
	gemm.Sgemm(false, false, o.n, o.out, o.in, 1, x, o.in, w, o.out, 1, c, o.out)
	if o.gelu {
		par.For(o.n, func(lo, hi int) {
			simd.GELU(y.data[lo*o.out:hi*o.out], o.pre[lo*o.out:hi*o.out])
		})
	}
	return y, nil
}

func (o *linearOp) Backward(gy mat.Tensor) error {
	g := vals(gy)
	n, out := o.n, o.out
	needB := o.b.RequiresGrad()
	// Row blocks: through the activation first (g ← g ⊙ GELU′(X·W + b)),
	// then each block's column sums for the bias gradient.
	nb := (n + rowBlock - 1) / rowBlock
	var part []float32
	if needB {
		part = o.ws.floats(nb * out)
	}
	if o.gelu {
		dpre := o.ws.floats(n * out)
		par.For(nb, func(lo, hi int) {
			s, e := lo*rowBlock*out, min(n, hi*rowBlock)*out
			simd.GELUGrad(dpre[s:e], o.pre[s:e], g[s:e])
			if needB {
				for blk := lo; blk < hi; blk++ {
					blockSums(part, dpre, blk, n, out)
				}
			}
		})
		g = dpre
	} else if needB {
		par.For(nb, func(lo, hi int) {
			for blk := lo; blk < hi; blk++ {
				blockSums(part, g, blk, n, out)
			}
		})
	}
	if needB {
		o.ws.addParamGrad(o.b, func(dst []float32) { addRows(dst, part, nb) })
	}
	if o.x.RequiresGrad() {
		dx, dxd := o.ws.grad(n, o.in, false)
		gemm.Sgemm(false, true, n, o.in, out, 1, g, out, vals(o.w), out, 0, dxd, o.in)
		o.x.AccGrad(dx)
	}
	if o.w.RequiresGrad() {
		x := vals(o.x)
		o.ws.addParamGrad(o.w, func(dst []float32) {
			gemm.Sgemm(true, false, o.in, out, n, 1, x, o.in, g, out, 1, dst, out)
		})
	}
	if o.gelu {
		o.ws.release(g) // the gradient through the activation
		o.ws.release(o.pre)
	}
	o.ws.release(part)
	// The residual's gradient is the output gradient itself, handed on
	// last: after this the operator no longer reads it (see act).
	if o.res != nil && o.res.RequiresGrad() {
		o.res.AccGrad(gy.(mat.Matrix))
	} else {
		o.ws.releaseMat(gy)
	}
	return nil
}

// ---- causal self-attention ----------------------------------------------------

// attentionOp: per sequence s and head h, with Q, K, V the h-th head's
// columns of the rows of s in the fused projection QKV = [Q | K | V]:
//
//	P = softmax_causal(Q·Kᵀ/√dₕ),  O = P·V
//
// P is kept for the backward pass:
//
//	dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P))/√dₕ,
//	dQ = dS·K,  dK = dSᵀ·Q
//
// Each (s, h) pair is independent; rows of P are padded to a multiple of 8
// (tp) with zeros beyond the diagonal, so that the vector kernels work on
// whole rows and the transposed products can walk P's columns.
type attentionOp struct {
	qkv        mat.Tensor
	seqs, t, d int
	heads      int
	ws         *workspace
	probs      []float32 // seqs·heads·t·tp, row-major per (s, h)
}

func (o *attentionOp) Operands() []mat.Tensor { return []mat.Tensor{o.qkv} }

// tp is the padded row length of P.
func (o *attentionOp) tp() int { return (o.t + 7) &^ 7 }

func (o *attentionOp) Forward() (mat.Tensor, error) {
	qkv := vals(o.qkv)
	t, d, H, tp := o.t, o.d, o.heads, o.tp()
	dh := d / H
	scale := float32(1 / math.Sqrt(float64(dh)))
	o.probs = o.ws.floats(o.seqs * H * t * tp)
	y := o.ws.act(o.seqs*t, d)
	par.For(o.seqs*H, func(lo, hi int) {
		pk := o.ws.floats(3 * t * dh)
		q, k, v := pk[:t*dh], pk[t*dh:2*t*dh], pk[2*t*dh:]
		for sh := lo; sh < hi; sh++ {
			s, h := sh/H, sh%H
			base := s * t
			o.pack(q, qkv, base, h*dh, dh)
			o.pack(k, qkv, base, d+h*dh, dh)
			o.pack(v, qkv, base, 2*d+h*dh, dh)
			P := o.probs[sh*t*tp : (sh+1)*t*tp]
			for i := range t {
				out := y.data[(base+i)*d+h*dh : (base+i)*d+h*dh+dh]
				simd.AttentionRow(P[i*tp:i*tp+tp], q[i*dh:i*dh+dh], k, v, out, i+1, scale)
			}
		}
		o.ws.release(pk)
	})
	return y, nil
}

// pack copies the t rows from row base of the n×3d matrix qkv, columns
// [c, c+dh), into the contiguous t×dh matrix dst, so that one head's
// products work in a few kilobytes of cache.
func (o *attentionOp) pack(dst, qkv []float32, base, c, dh int) {
	ld := 3 * o.d
	for i := range o.t {
		copy(dst[i*dh:i*dh+dh], qkv[(base+i)*ld+c:])
	}
}

func (o *attentionOp) Backward(gy mat.Tensor) error {
	qkv, g := vals(o.qkv), vals(gy)
	t, d, H, tp := o.t, o.d, o.heads, o.tp()
	dh := d / H
	scale := float32(1 / math.Sqrt(float64(dh)))
	ld := 3 * d
	dqkv, dd := o.ws.grad(o.seqs*t, ld, false)
	par.For(o.seqs*H, func(lo, hi int) {
		buf := o.ws.floats(t*tp + 4*t*dh)
		dS, pk := buf[:t*tp], buf[t*tp:]
		q, k, v, gh := pk[:t*dh], pk[t*dh:2*t*dh], pk[2*t*dh:3*t*dh], pk[3*t*dh:]
		for sh := lo; sh < hi; sh++ {
			s, h := sh/H, sh%H
			base := s * t
			o.pack(q, qkv, base, h*dh, dh)
			o.pack(k, qkv, base, d+h*dh, dh)
			o.pack(v, qkv, base, 2*d+h*dh, dh)
			for i := range t {
				copy(gh[i*dh:i*dh+dh], g[(base+i)*d+h*dh:])
			}
			P := o.probs[sh*t*tp : (sh+1)*t*tp]
			for i := range t {
				// dP_ij = dO_i·V_j for j ≤ i, then dS's row and dQ_i = Σ_j dS_ij K_j.
				dq := dd[(base+i)*ld+h*dh : (base+i)*ld+h*dh+dh]
				simd.AttentionRowGrad(dS[i*tp:i*tp+tp], P[i*tp:i*tp+tp], gh[i*dh:i*dh+dh], v, k, dq, i+1, scale)
			}
			for j := range t {
				// dK_j = Σ_{i≥j} dS_ij Q_i and dV_j = Σ_{i≥j} P_ij dO_i: column j
				// of dS and P, read with stride tp.
				r := (base + j) * ld
				simd.AxpyRows(dd[r+d+h*dh:r+d+h*dh+dh], dS[j*tp+j:], tp, q[j*dh:], dh, t-j, false)
				simd.AxpyRows(dd[r+2*d+h*dh:r+2*d+h*dh+dh], P[j*tp+j:], tp, gh[j*dh:], dh, t-j, false)
			}
		}
		o.ws.release(buf)
	})
	o.qkv.AccGrad(dqkv)
	o.ws.release(o.probs)
	o.ws.releaseMat(gy)
	return nil
}

// ---- the objective ------------------------------------------------------------

// lossOp computes the objective's mean loss from logits (n×V) and targets.
// Per row t: log p_t = z_t[y_t] − logsumexp(z_t); objectives.Batch turns the
// log-probs into the loss and the per-token scales, and the gradient is
//
//	∂Loss/∂z_t = scale_t · (softmax(z_t) − e_{y_t})
//
// (Lemma 3.1 of the paper; scale_t = s_f(p_t)·keep_t / kept). Objectives
// that read the whole distribution or a reference model add to this (see
// lossdist.go).
type lossOp struct {
	logits  mat.Tensor
	targets []int
	mask    []bool
	obj     objectives.Objective
	n, v    int
	ws      *workspace

	logp  []float64
	lse   []float32
	lse64 []float64 // lse before rounding, for the rows' log-softmax
	scale []float64
	stats objectives.BatchStats

	anchor []float64 // coefficients of softmax(z) − r; nil unless anchored
	refZ   []float32 // the reference model's logits (n×V), or nil
	refLSE []float64 // their per-row log-sum-exp
}

func (o *lossOp) Operands() []mat.Tensor { return []mat.Tensor{o.logits} }

// Forward returns the loss computed by prepare.
func (o *lossOp) Forward() (mat.Tensor, error) {
	return mat.Scalar[float32](float32(o.stats.Loss)), nil
}

// logprobs computes log p of every target and keeps each row's
// log-sum-exp for the backward pass. It runs before the node is created,
// because spago ends the process on a Forward error.
func (o *lossOp) logprobs() {
	z := vals(o.logits)
	n, v := o.n, o.v
	o.logp = make([]float64, n)
	o.lse = make([]float32, n)
	o.lse64 = make([]float64, n)
	par.For(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := z[i*v : i*v+v]
			mx := simd.Max(row)
			l := float64(mx) + math.Log(float64(simd.SumExp(row, mx)))
			o.lse[i] = float32(l)
			o.lse64[i] = l
			o.logp[i] = math.Min(float64(row[o.targets[i]])-l, 0)
		}
	})
}

// apply evaluates the objective on the log-probs: the loss and the scales.
func (o *lossOp) apply(obj objectives.Objective) error {
	if f := obj.Form(); f == objectives.FormDist || f == objectives.FormAnchored {
		return o.applyDist(obj)
	}
	o.obj = obj
	o.scale = make([]float64, o.n)
	st, err := obj.Batch(o.logp, o.mask, nil, o.scale)
	if err != nil {
		return fmt.Errorf("train: loss: %w", err)
	}
	o.stats = st
	return nil
}

// meanP is the mean p over scored targets (the paper's Eq. 5 on the batch).
func (o *lossOp) meanP() float64 {
	var s float64
	n := 0
	for i, lp := range o.logp {
		if o.mask[i] {
			s += math.Exp(lp)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

func (o *lossOp) Backward(gy mat.Tensor) error {
	z := vals(o.logits)
	gs := float64(vals(gy)[0])
	n, v := o.n, o.v
	dz, dd := o.ws.grad(n, v, false)
	if o.anchor != nil {
		o.backwardAnchored(gs, dd)
		o.logits.AccGrad(dz)
		return nil
	}
	par.For(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sc := o.scale[i] * gs
			out := dd[i*v : i*v+v]
			if sc == 0 {
				clear(out)
				continue
			}
			simd.ExpScale(out, z[i*v:i*v+v], o.lse[i], float32(sc))
			out[o.targets[i]] -= float32(sc)
		}
	})
	o.logits.AccGrad(dz)
	return nil
}

// run wraps an AutoGradFunction in a graph node and evaluates it.
func run(fn ag.AutoGradFunction) *ag.Operator { return ag.NewOperator(fn).Run() }
