package simd

import "math"

// useAsm selects the assembly kernels. It starts as haveAsm; tests switch
// it off to compare with the portable code.
var useAsm = haveAsm

// Accelerated reports whether the assembly kernels are in use.
func Accelerated() bool { return useAsm }

// whole returns n rounded down to a multiple of 8.
func whole(n int) int { return n &^ 7 }

// ExpSum replaces each x[i] by exp(x[i] − shift) and returns their sum:
//
//	x[i] ← exp(x[i] − shift),  returns Σᵢ x[i]
//
// With shift = max(x) this is the unnormalised softmax of x and its
// normaliser. −Inf entries become 0.
func ExpSum(x []float32, shift float32) float32 {
	if !useAsm {
		return expSumGo(x, shift)
	}
	n := whole(len(x))
	var s float32
	if n > 0 {
		s = expSumAVX2(&x[0], n, shift)
	}
	if t := x[n:]; len(t) > 0 {
		pad := negInfPad(t)
		s += expSumAVX2(&pad[0], 8, shift)
		copy(t, pad[:])
	}
	return s
}

// negInfPad returns a tail of fewer than 8 values padded with −Inf, whose
// exponentials are 0, so a whole-vector kernel can run on it.
func negInfPad(t []float32) [8]float32 {
	var pad [8]float32
	for i := range pad {
		pad[i] = float32(math.Inf(-1))
	}
	copy(pad[:], t)
	return pad
}

// SumExp returns Σᵢ exp(x[i] − shift) without writing x.
func SumExp(x []float32, shift float32) float32 {
	if !useAsm {
		return sumExpGo(x, shift)
	}
	n := whole(len(x))
	var s float32
	if n > 0 {
		s = sumExpAVX2(&x[0], n, shift)
	}
	if t := x[n:]; len(t) > 0 {
		pad := negInfPad(t)
		s += sumExpAVX2(&pad[0], 8, shift)
	}
	return s
}

// ExpScale sets dst[i] = exp(x[i] − shift)·scale. dst and x have the same
// length and may be the same slice.
func ExpScale(dst, x []float32, shift, scale float32) {
	dst = dst[:len(x)]
	if !useAsm {
		expScaleGo(dst, x, shift, scale)
		return
	}
	n := whole(len(x))
	if n > 0 {
		expScaleAVX2(&dst[0], &x[0], n, shift, scale)
	}
	if t := x[n:]; len(t) > 0 {
		var pad [8]float32
		copy(pad[:], t)
		expScaleAVX2(&pad[0], &pad[0], 8, shift, scale)
		copy(dst[n:], pad[:])
	}
}

// Max returns the largest element of x (−Inf for an empty x).
func Max(x []float32) float32 {
	n := whole(len(x))
	if !useAsm || n == 0 {
		return maxGo(x)
	}
	return max(maxAVX2(&x[0], n), maxGo(x[n:]))
}

// Scale multiplies x by s in place.
func Scale(x []float32, s float32) {
	if !useAsm {
		for i := range x {
			x[i] *= s
		}
		return
	}
	n := whole(len(x))
	if n > 0 {
		scaleAVX2(&x[0], n, s)
	}
	for i := n; i < len(x); i++ {
		x[i] *= s // one rounded product, as in the vector code
	}
}

// Add adds src to dst element-wise: dst[i] += src[i].
func Add(dst, src []float32) {
	src = src[:len(dst)]
	if !useAsm {
		for i := range dst {
			dst[i] += src[i]
		}
		return
	}
	n := whole(len(dst))
	if n > 0 {
		addAVX2(&dst[0], &src[0], n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] += src[i] // one rounded sum, as in the vector code
	}
}

// MulAdd accumulates the element-wise product: dst[i] += a[i]·b[i] (fused
// multiply-add in the assembly version).
func MulAdd(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	if !useAsm {
		for i := range dst {
			dst[i] += a[i] * b[i]
		}
		return
	}
	n := whole(len(dst))
	if n > 0 {
		mulAddAVX2(&dst[0], &a[0], &b[0], n)
	}
	if len(dst) > n {
		var pd, pa, pb [8]float32
		copy(pd[:], dst[n:])
		copy(pa[:], a[n:])
		copy(pb[:], b[n:])
		mulAddAVX2(&pd[0], &pa[0], &pb[0], 8)
		copy(dst[n:], pd[:])
	}
}

// GELU sets dst to the tanh approximation of GELU of x:
//
//	gelu(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) = x / (1 + exp(−2√(2/π)(x + 0.044715x³)))
//
// The second form, which is what is computed, has no cancellation for
// negative x.
func GELU(dst, x []float32) {
	dst = dst[:len(x)]
	if !useAsm {
		geluGo(dst, x)
		return
	}
	n := whole(len(x))
	if n > 0 {
		geluAVX2(&dst[0], &x[0], n)
	}
	if t := x[n:]; len(t) > 0 {
		var px, pd [8]float32
		copy(px[:], t)
		geluAVX2(&pd[0], &px[0], 8)
		copy(dst[n:], pd[:])
	}
}

// GELUGrad sets dst[i] = g[i]·gelu′(x[i]). With u = √(2/π)(x + 0.044715x³),
// e = exp(−2u), s = 1/(1 + e) and t = e·s = 1 − s:
//
//	gelu′(x) = s + x·s·t·2√(2/π)(1 + 3·0.044715x²)
func GELUGrad(dst, x, g []float32) {
	dst, g = dst[:len(x)], g[:len(x)]
	if !useAsm {
		geluGradGo(dst, x, g)
		return
	}
	n := whole(len(x))
	if n > 0 {
		geluGradAVX2(&dst[0], &x[0], &g[0], n)
	}
	if t := x[n:]; len(t) > 0 {
		var px, pg, pd [8]float32
		copy(px[:], t)
		copy(pg[:], g[n:])
		geluGradAVX2(&pd[0], &px[0], &pg[0], 8)
		copy(dst[n:], pd[:])
	}
}

// DotRows sets dst[j] to alpha times the dot product of x with row j of m,
// whose rows start ldm elements apart:
//
//	dst[j] = alpha · Σ_c x[c]·m[j·ldm + c],  j < len(dst), c < len(x)
func DotRows(dst, x, m []float32, ldm int, alpha float32) {
	n, k := len(dst), len(x)
	if n == 0 {
		return
	}
	_ = m[(n-1)*ldm+k-1]
	if !useAsm || k%8 != 0 || k == 0 {
		dotRowsGo(dst, x, m, ldm, alpha)
		return
	}
	dotRowsAVX2(&dst[0], n, &x[0], k, &m[0], ldm, alpha)
}

// AxpyRows adds to dst (or, with add false, stores into it) a combination of
// n rows of m, rows ldm apart, with coefficients inc apart:
//
//	dst[c] = [dst[c] +] Σ_{j<n} coef[j·inc]·m[j·ldm + c],  c < len(dst)
//
// The association of the sum depends only on len(dst) and n (see
// axpyRowsAVX2: the terms are spread over interleaved partial sums), never
// on where the slices start.
func AxpyRows(dst, coef []float32, inc int, m []float32, ldm, n int, add bool) {
	k := len(dst)
	if k == 0 {
		return
	}
	if n == 0 {
		if !add {
			clear(dst)
		}
		return
	}
	_ = coef[(n-1)*inc]
	_ = m[(n-1)*ldm+k-1]
	if !useAsm || k%8 != 0 {
		axpyRowsGo(dst, coef, inc, m, ldm, n, add)
		return
	}
	a := 0
	if add {
		a = 1
	}
	axpyRowsAVX2(&dst[0], k, &coef[0], inc, &m[0], ldm, n, a)
}

// SoftmaxGrad back-propagates through a softmax row p with output gradient
// dp, and multiplies by scale:
//
//	ds[i] = p[i]·(dp[i] − Σ_j p[j]·dp[j])·scale
func SoftmaxGrad(ds, p, dp []float32, scale float32) {
	ds, dp = ds[:len(p)], dp[:len(p)]
	if !useAsm || len(p)%8 != 0 || len(p) == 0 {
		softmaxGradGo(ds, p, dp, scale)
		return
	}
	softmaxGradAVX2(&ds[0], &p[0], &dp[0], len(p), scale)
}

// Sum returns Σᵢ x[i].
func Sum(x []float32) float32 {
	n := whole(len(x))
	if !useAsm || n == 0 {
		return sumGo(x)
	}
	return sumAVX2(&x[0], n) + sumGo(x[n:])
}

// SumSqDev returns Σᵢ (x[i] − mu)².
func SumSqDev(x []float32, mu float32) float32 {
	n := whole(len(x))
	if !useAsm || n == 0 {
		return sumSqDevGo(x, mu)
	}
	return sumSqDevAVX2(&x[0], n, mu) + sumSqDevGo(x[n:], mu)
}

// LayerNormApply normalises one row and applies the gain and bias:
//
//	xh[j] = (x[j] − mu)·r,  y[j] = xh[j]·g[j] + b[j]
func LayerNormApply(xh, y, x, g, b []float32, mu, r float32) {
	d := len(x)
	xh, y, g, b = xh[:d], y[:d], g[:d], b[:d]
	n := whole(d)
	if !useAsm || n == 0 {
		lnApplyGo(xh, y, x, g, b, mu, r)
		return
	}
	lnApplyAVX2(&xh[0], &y[0], &x[0], &g[0], &b[0], n, mu, r)
	lnApplyGo(xh[n:], y[n:], x[n:], g[n:], b[n:], mu, r)
}

// LayerNormGradSums returns the two row sums of the layer-norm backward pass:
//
//	m1 = Σ_j dy[j]·g[j],  m2 = Σ_j dy[j]·g[j]·xh[j]
func LayerNormGradSums(dy, g, xh []float32) (m1, m2 float32) {
	d := len(dy)
	g, xh = g[:d], xh[:d]
	n := whole(d)
	if !useAsm || n == 0 {
		return lnGradSumsGo(dy, g, xh)
	}
	m1, m2 = lnGradSumsAVX2(&dy[0], &g[0], &xh[0], n)
	t1, t2 := lnGradSumsGo(dy[n:], g[n:], xh[n:])
	return m1 + t1, m2 + t2
}

// LayerNormGradApply sets the input gradient of one layer-norm row, given
// the means m1/d and m2/d of LayerNormGradSums' sums (passed as m1, m2):
//
//	dx[j] = r·(dy[j]·g[j] − m1 − xh[j]·m2)
func LayerNormGradApply(dx, dy, g, xh []float32, r, m1, m2 float32) {
	d := len(dy)
	dx, g, xh = dx[:d], g[:d], xh[:d]
	n := whole(d)
	if !useAsm || n == 0 {
		lnGradApplyGo(dx, dy, g, xh, r, m1, m2)
		return
	}
	lnGradApplyAVX2(&dx[0], &dy[0], &g[0], &xh[0], n, r, m1, m2)
	lnGradApplyGo(dx[n:], dy[n:], g[n:], xh[n:], r, m1, m2)
}

// AdamW holds the per-step constants of a decoupled-weight-decay Adam update
// (see Update).
type AdamW struct {
	Beta1, OneMinusBeta1 float32 // β₁ and 1 − β₁ (rounded as the caller rounds it)
	Beta2, OneMinusBeta2 float32
	BiasCorr2            float32 // √(1 − β₂ᵗ)
	Eps                  float32
	Decay                float32 // 1 − lr·λ
	Step                 float32 // lr/(1 − β₁ᵗ)
}

// Update applies one AdamW step to the weights w with gradient g and
// moments m, v (all the same length), element by element:
//
//	m ← β₁·m + (1−β₁)·g,  v ← β₂·v + ((1−β₂)·g)·g
//	w ← w·(1 − lr·λ) − (step·m) / (√v/√(1−β₂ᵗ) + ε)
//
// Every product, quotient, sum and square root is rounded separately (no
// fused operations), in this order, so the vector code gives bit for bit
// the results of the plain float32 loop.
func (c *AdamW) Update(w, g, m, v []float32) {
	d := len(w)
	g, m, v = g[:d], m[:d], v[:d]
	if !useAsm {
		adamwGo(w, g, m, v, c)
		return
	}
	k := [8]float32{c.Beta1, c.OneMinusBeta1, c.Beta2, c.OneMinusBeta2, c.BiasCorr2, c.Eps, c.Decay, c.Step}
	n := whole(d)
	if n > 0 {
		adamwAVX2(&w[0], &g[0], &m[0], &v[0], n, &k)
	}
	adamwGo(w[n:], g[n:], m[n:], v[n:], c) // the same rounded operations
}

// SumSquares returns Σᵢ x[i]², accumulated in float64.
func SumSquares(x []float32) float64 {
	n := whole(len(x))
	var s float64
	if useAsm && n > 0 {
		s = sumSqAVX2(&x[0], n)
	} else {
		n = 0
	}
	for _, v := range x[n:] {
		s += float64(v) * float64(v)
	}
	return s
}

// AttentionRow computes one query row of causal softmax attention over one
// head whose keys and values are packed in k and v (rows of len(q) floats):
//
//	row[j] = softmax_j(scale·q·k_j) for j < n, 0 for n ≤ j < len(row)
//	out = Σ_{j<n} row[j]·v_j
//
// len(row) must be a multiple of 8 and at least n; len(out) = len(q). The
// arithmetic is that of DotRows, Max, ExpSum, Scale and AxpyRows applied
// in turn, whichever code runs.
func AttentionRow(row, q, k, v, out []float32, n int, scale float32) {
	dh, tp := len(q), len(row)
	if tp%8 != 0 || n < 1 || n > tp || len(out) < dh {
		panic("simd: AttentionRow: bad lengths")
	}
	_ = k[n*dh-1]
	_ = v[n*dh-1]
	if useAsm && dh%8 == 0 {
		attnRowAVX2(&row[0], tp, n, &q[0], &k[0], &v[0], dh, &out[0], scale)
		return
	}
	DotRows(row[:n], q, k, dh, scale)
	for j := n; j < tp; j++ {
		row[j] = float32(math.Inf(-1))
	}
	sum := ExpSum(row, Max(row[:n]))
	Scale(row, 1/sum)
	AxpyRows(out[:dh], row, 1, v, dh, n, false)
}

// AttentionRowGrad is the backward pass of AttentionRow for one query row:
// given the row p of probabilities and the output gradient g, it sets
//
//	ds[j] = p[j]·(dp[j] − Σ_i p[i]·dp[i])·scale,  dp[j] = g·v_j (j < n, else 0)
//	dq = Σ_{j<n} ds[j]·k_j
//
// with the arithmetic of DotRows, SoftmaxGrad and AxpyRows in turn.
func AttentionRowGrad(ds, p, g, v, k, dq []float32, n int, scale float32) {
	dh, tp := len(g), len(p)
	if tp%8 != 0 || len(ds) != tp || n < 1 || n > tp || len(dq) < dh {
		panic("simd: AttentionRowGrad: bad lengths")
	}
	_ = k[n*dh-1]
	_ = v[n*dh-1]
	if useAsm && dh%8 == 0 {
		attnRowGradAVX2(&ds[0], &p[0], tp, n, &g[0], &v[0], &k[0], dh, &dq[0], scale)
		return
	}
	DotRows(ds[:n], g, v, dh, 1)
	clear(ds[n:])
	SoftmaxGrad(ds, p, ds, scale)
	AxpyRows(dq[:dh], ds, 1, k, dh, n, false)
}
