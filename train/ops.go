package train

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/capsel/capsel/objectives"
)

// The model's operators. Each one is a spago ag.AutoGradFunction with a
// hand-written fused forward and backward, so that a step builds a few dozen
// graph nodes rather than one per token or per element. Activations are
// row-major float32 matrices with one row per token (N = batch·context rows):
// a token's features, and a sequence's T consecutive tokens, are contiguous.
//
// Determinism: every parallel loop partitions the *output* among workers and
// never splits a reduction, so results do not depend on the number of
// workers. Each node of the graph has at most two consumers, so spago's
// concurrent gradient accumulation (a + b = b + a in floating point) cannot
// reorder a sum either.

func newMat(r, c int) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(r, c))
}

// vals returns the row-major data of a node's value without copying.
func vals(t mat.Tensor) []float32 { return mat.Data[float32](t.Value()) }

// parallelFor runs fn over [0, n) split into contiguous chunks, one per
// worker. Chunks are disjoint, so fn must write only to its own indices.
func parallelFor(n int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range w {
		lo, hi := i*n/w, (i+1)*n/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// ---- embedding --------------------------------------------------------------

// embedOp: X[i] = tok[ids[i]] + pos[i mod T].
type embedOp struct {
	tok, pos mat.Tensor
	ids      []int
	t, d     int
}

func (o *embedOp) Operands() []mat.Tensor { return []mat.Tensor{o.tok, o.pos} }

func (o *embedOp) Forward() (mat.Tensor, error) {
	tok, pos := vals(o.tok), vals(o.pos)
	d := o.d
	y := newMat(len(o.ids), d)
	yd := mat.Data[float32](y)
	for i, id := range o.ids {
		tr := tok[id*d : id*d+d]
		pr := pos[(i%o.t)*d : (i%o.t)*d+d]
		out := yd[i*d : i*d+d]
		for j := range out {
			out[j] = tr[j] + pr[j]
		}
	}
	return y, nil
}

func (o *embedOp) Backward(gy mat.Tensor) error {
	g := vals(gy)
	d := o.d
	if o.tok.RequiresGrad() {
		shape := o.tok.Shape()
		dt := newMat(shape[0], shape[1])
		dd := mat.Data[float32](dt)
		for i, id := range o.ids { // in row order: deterministic
			row := dd[id*d : id*d+d]
			gr := g[i*d : i*d+d]
			for j := range row {
				row[j] += gr[j]
			}
		}
		o.tok.AccGrad(dt)
	}
	if o.pos.RequiresGrad() {
		shape := o.pos.Shape()
		dp := newMat(shape[0], shape[1])
		dd := mat.Data[float32](dp)
		for i := range o.ids {
			p := i % o.t
			row := dd[p*d : p*d+d]
			gr := g[i*d : i*d+d]
			for j := range row {
				row[j] += gr[j]
			}
		}
		o.pos.AccGrad(dp)
	}
	return nil
}

// ---- layer norm -------------------------------------------------------------

const lnEps = 1e-5

// layerNormOp: y = (x − μ)/√(σ² + ε)·g + b per row, σ² the biased variance.
type layerNormOp struct {
	x, g, b mat.Tensor
	n, d    int
	xhat    []float32
	rstd    []float32
}

func (o *layerNormOp) Operands() []mat.Tensor { return []mat.Tensor{o.x, o.g, o.b} }

func (o *layerNormOp) Forward() (mat.Tensor, error) {
	x, g, b := vals(o.x), vals(o.g), vals(o.b)
	n, d := o.n, o.d
	o.xhat = make([]float32, n*d)
	o.rstd = make([]float32, n)
	y := newMat(n, d)
	yd := mat.Data[float32](y)
	parallelFor(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr := x[i*d : i*d+d]
			var s float32
			for _, v := range xr {
				s += v
			}
			mu := s / float32(d)
			var ss float32
			for _, v := range xr {
				c := v - mu
				ss += c * c
			}
			r := float32(1 / math.Sqrt(float64(ss/float32(d))+lnEps))
			o.rstd[i] = r
			xh := o.xhat[i*d : i*d+d]
			yr := yd[i*d : i*d+d]
			for j, v := range xr {
				h := (v - mu) * r
				xh[j] = h
				yr[j] = h*g[j] + b[j]
			}
		}
	})
	return y, nil
}

func (o *layerNormOp) Backward(gy mat.Tensor) error {
	dy, g := vals(gy), vals(o.g)
	n, d := o.n, o.d
	if o.x.RequiresGrad() {
		dx := newMat(n, d)
		dxd := mat.Data[float32](dx)
		parallelFor(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				dr, xh := dy[i*d:i*d+d], o.xhat[i*d:i*d+d]
				var m1, m2 float32 // mean(dxhat), mean(dxhat·xhat)
				for j := range dr {
					dh := dr[j] * g[j]
					m1 += dh
					m2 += dh * xh[j]
				}
				m1 /= float32(d)
				m2 /= float32(d)
				r := o.rstd[i]
				out := dxd[i*d : i*d+d]
				for j := range dr {
					out[j] = r * (dr[j]*g[j] - m1 - xh[j]*m2)
				}
			}
		})
		o.x.AccGrad(dx)
	}
	if o.g.RequiresGrad() || o.b.RequiresGrad() {
		dg, db := newMat(1, d), newMat(1, d)
		dgd, dbd := mat.Data[float32](dg), mat.Data[float32](db)
		parallelFor(d, func(lo, hi int) {
			for i := range n {
				dr, xh := dy[i*d:i*d+d], o.xhat[i*d:i*d+d]
				for j := lo; j < hi; j++ {
					dgd[j] += dr[j] * xh[j]
					dbd[j] += dr[j]
				}
			}
		})
		if o.g.RequiresGrad() {
			o.g.AccGrad(dg)
		}
		if o.b.RequiresGrad() {
			o.b.AccGrad(db)
		}
	}
	return nil
}

// ---- linear -----------------------------------------------------------------

// linearOp: Y = X·W + b, X n×in, W in×out, b 1×out.
type linearOp struct {
	x, w, b    mat.Tensor
	n, in, out int
}

func (o *linearOp) Operands() []mat.Tensor { return []mat.Tensor{o.x, o.w, o.b} }

func (o *linearOp) Forward() (mat.Tensor, error) {
	x, w, b := vals(o.x), vals(o.w), vals(o.b)
	y := newMat(o.n, o.out)
	yd := mat.Data[float32](y)
	for i := range o.n {
		copy(yd[i*o.out:(i+1)*o.out], b)
	}
	sgemm(false, false, o.n, o.out, o.in, 1, x, o.in, w, o.out, 1, yd, o.out)
	return y, nil
}

func (o *linearOp) Backward(gy mat.Tensor) error {
	g := vals(gy)
	if o.x.RequiresGrad() {
		dx := newMat(o.n, o.in)
		sgemm(false, true, o.n, o.in, o.out, 1, g, o.out, vals(o.w), o.out, 0, mat.Data[float32](dx), o.in)
		o.x.AccGrad(dx)
	}
	if o.w.RequiresGrad() {
		dw := newMat(o.in, o.out)
		sgemm(true, false, o.in, o.out, o.n, 1, vals(o.x), o.in, g, o.out, 0, mat.Data[float32](dw), o.out)
		o.w.AccGrad(dw)
	}
	if o.b.RequiresGrad() {
		db := newMat(1, o.out)
		dbd := mat.Data[float32](db)
		parallelFor(o.out, func(lo, hi int) {
			for i := range o.n {
				gr := g[i*o.out : (i+1)*o.out]
				for j := lo; j < hi; j++ {
					dbd[j] += gr[j]
				}
			}
		})
		o.b.AccGrad(db)
	}
	return nil
}

// ---- GELU -------------------------------------------------------------------

const geluC = 0.7978845608028654 // √(2/π)

// geluOp: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))), the tanh approximation.
type geluOp struct {
	x    mat.Tensor
	n, d int
}

func (o *geluOp) Operands() []mat.Tensor { return []mat.Tensor{o.x} }

func (o *geluOp) Forward() (mat.Tensor, error) {
	x := vals(o.x)
	y := newMat(o.n, o.d)
	yd := mat.Data[float32](y)
	parallelFor(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			yd[i] = float32(0.5 * v * (1 + math.Tanh(geluC*(v+0.044715*v*v*v))))
		}
	})
	return y, nil
}

func (o *geluOp) Backward(gy mat.Tensor) error {
	x, g := vals(o.x), vals(gy)
	dx := newMat(o.n, o.d)
	dd := mat.Data[float32](dx)
	parallelFor(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			t := math.Tanh(geluC * (v + 0.044715*v*v*v))
			der := 0.5*(1+t) + 0.5*v*(1-t*t)*geluC*(1+3*0.044715*v*v)
			dd[i] = g[i] * float32(der)
		}
	})
	o.x.AccGrad(dx)
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
//	dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//	dQ = dS·K/√dₕ,  dK = dSᵀ·Q/√dₕ
type attentionOp struct {
	qkv        mat.Tensor
	seqs, t, d int
	heads      int
	probs      []float32 // seqs·heads·t·t, row-major per (s, h)
}

func (o *attentionOp) Operands() []mat.Tensor { return []mat.Tensor{o.qkv} }

func (o *attentionOp) Forward() (mat.Tensor, error) {
	qkv := vals(o.qkv)
	t, d, H := o.t, o.d, o.heads
	dh := d / H
	scale := float32(1 / math.Sqrt(float64(dh)))
	ld := 3 * d
	o.probs = make([]float32, o.seqs*H*t*t)
	y := newMat(o.seqs*t, d)
	yd := mat.Data[float32](y)
	parallelFor(o.seqs*H, func(lo, hi int) {
		for sh := lo; sh < hi; sh++ {
			s, h := sh/H, sh%H
			base := s * t
			P := o.probs[sh*t*t : (sh+1)*t*t]
			for i := range t {
				qi := qkv[(base+i)*ld+h*dh : (base+i)*ld+h*dh+dh]
				row := P[i*t : i*t+t]
				mx := float32(math.Inf(-1))
				for j := 0; j <= i; j++ {
					kj := qkv[(base+j)*ld+d+h*dh : (base+j)*ld+d+h*dh+dh]
					var dot float32
					for c := range dh {
						dot += qi[c] * kj[c]
					}
					dot *= scale
					row[j] = dot
					mx = max(mx, dot)
				}
				var sum float32
				for j := 0; j <= i; j++ {
					e := float32(math.Exp(float64(row[j] - mx)))
					row[j] = e
					sum += e
				}
				inv := 1 / sum
				out := yd[(base+i)*d+h*dh : (base+i)*d+h*dh+dh]
				for j := 0; j <= i; j++ {
					row[j] *= inv
					pj := row[j]
					vj := qkv[(base+j)*ld+2*d+h*dh : (base+j)*ld+2*d+h*dh+dh]
					for c := range dh {
						out[c] += pj * vj[c]
					}
				}
			}
		}
	})
	return y, nil
}

func (o *attentionOp) Backward(gy mat.Tensor) error {
	qkv, g := vals(o.qkv), vals(gy)
	t, d, H := o.t, o.d, o.heads
	dh := d / H
	scale := float32(1 / math.Sqrt(float64(dh)))
	ld := 3 * d
	dqkv := newMat(o.seqs*t, ld)
	dd := mat.Data[float32](dqkv)
	parallelFor(o.seqs*H, func(lo, hi int) {
		dP := make([]float32, t)
		for sh := lo; sh < hi; sh++ {
			s, h := sh/H, sh%H
			base := s * t
			P := o.probs[sh*t*t : (sh+1)*t*t]
			for i := range t {
				gi := g[(base+i)*d+h*dh : (base+i)*d+h*dh+dh]
				row := P[i*t : i*t+t]
				// dP_ij = dO_i·V_j; dV_j += P_ij·dO_i.
				var dot float32
				for j := 0; j <= i; j++ {
					vj := qkv[(base+j)*ld+2*d+h*dh : (base+j)*ld+2*d+h*dh+dh]
					dvj := dd[(base+j)*ld+2*d+h*dh : (base+j)*ld+2*d+h*dh+dh]
					var a float32
					pij := row[j]
					for c := range dh {
						a += gi[c] * vj[c]
						dvj[c] += pij * gi[c]
					}
					dP[j] = a
					dot += a * pij
				}
				qi := qkv[(base+i)*ld+h*dh : (base+i)*ld+h*dh+dh]
				dqi := dd[(base+i)*ld+h*dh : (base+i)*ld+h*dh+dh]
				for j := 0; j <= i; j++ {
					ds := row[j] * (dP[j] - dot) * scale
					kj := qkv[(base+j)*ld+d+h*dh : (base+j)*ld+d+h*dh+dh]
					dkj := dd[(base+j)*ld+d+h*dh : (base+j)*ld+d+h*dh+dh]
					for c := range dh {
						dqi[c] += ds * kj[c]
						dkj[c] += ds * qi[c]
					}
				}
			}
		}
	})
	o.qkv.AccGrad(dqkv)
	return nil
}

// ---- the objective ------------------------------------------------------------

// lossOp computes the objective's mean loss from logits (n×V) and targets.
// Per row t: log p_t = z_t[y_t] − logsumexp(z_t); objectives.Batch turns the
// log-probs into the loss and the per-token scales, and the gradient is
//
//	∂Loss/∂z_t = scale_t · (softmax(z_t) − e_{y_t})
//
// (Lemma 3.1 of the paper; scale_t = s_f(p_t)·keep_t / kept).
type lossOp struct {
	logits  mat.Tensor
	targets []int
	mask    []bool
	obj     objectives.Objective
	n, v    int

	logp  []float64
	lse   []float32
	scale []float64
	stats objectives.BatchStats
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
	parallelFor(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := z[i*v : i*v+v]
			mx := row[0]
			for _, x := range row {
				mx = max(mx, x)
			}
			var s float64
			for _, x := range row {
				s += math.Exp(float64(x - mx))
			}
			l := float64(mx) + math.Log(s)
			o.lse[i] = float32(l)
			o.logp[i] = math.Min(float64(row[o.targets[i]])-l, 0)
		}
	})
}

// apply evaluates the objective on the log-probs: the loss and the scales.
func (o *lossOp) apply(obj objectives.Objective) error {
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
	dz := newMat(n, v)
	dd := mat.Data[float32](dz)
	parallelFor(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sc := o.scale[i] * gs
			if sc == 0 {
				continue
			}
			row, out := z[i*v:i*v+v], dd[i*v:i*v+v]
			l := o.lse[i]
			for k, x := range row {
				out[k] = float32(sc * math.Exp(float64(x-l)))
			}
			out[o.targets[i]] -= float32(sc)
		}
	})
	o.logits.AccGrad(dz)
	return nil
}

// run wraps an AutoGradFunction in a graph node and evaluates it.
func run(fn ag.AutoGradFunction) *ag.Operator { return ag.NewOperator(fn).Run() }
