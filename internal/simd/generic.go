package simd

import "math"

// Portable versions of the kernels: the reference semantics, and the code
// that runs without the assembly.

const geluC = 0.7978845608028654 // √(2/π)

func expSumGo(x []float32, shift float32) float32 {
	var s float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - shift)))
		x[i] = e
		s += e
	}
	return s
}

func sumExpGo(x []float32, shift float32) float32 {
	var s float32
	for _, v := range x {
		s += float32(math.Exp(float64(v - shift)))
	}
	return s
}

func expScaleGo(dst, x []float32, shift, scale float32) {
	for i, v := range x {
		dst[i] = float32(math.Exp(float64(v-shift))) * scale
	}
}

func maxGo(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

func geluGo(dst, x []float32) {
	for i, xv := range x {
		v := float64(xv)
		dst[i] = float32(v / (1 + math.Exp(-2*geluC*(v+0.044715*v*v*v))))
	}
}

func geluGradGo(dst, x, g []float32) {
	for i, xv := range x {
		v := float64(xv)
		e := math.Exp(-2 * geluC * (v + 0.044715*v*v*v))
		s := 1 / (1 + e)
		t := e * s
		dst[i] = g[i] * float32(s*(1+v*t*(2*geluC+6*geluC*0.044715*v*v)))
	}
}

func dotRowsGo(dst, x, m []float32, ldm int, alpha float32) {
	k := len(x)
	for j := range dst {
		row := m[j*ldm : j*ldm+k]
		var s float32
		for c, v := range x {
			s += v * row[c]
		}
		dst[j] = alpha * s
	}
}

func axpyRowsGo(dst, coef []float32, inc int, m []float32, ldm, n int, add bool) {
	if !add {
		clear(dst)
	}
	k := len(dst)
	for j := range n {
		a := coef[j*inc]
		row := m[j*ldm : j*ldm+k]
		for c := range dst {
			dst[c] += a * row[c]
		}
	}
}

func softmaxGradGo(ds, p, dp []float32, scale float32) {
	var d float32
	for i := range p {
		d += p[i] * dp[i]
	}
	for i := range p {
		ds[i] = p[i] * (dp[i] - d) * scale
	}
}

func sumGo(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}

func sumSqDevGo(x []float32, mu float32) float32 {
	var s float32
	for _, v := range x {
		c := v - mu
		s += c * c
	}
	return s
}

func lnApplyGo(xh, y, x, g, b []float32, mu, r float32) {
	for j, v := range x {
		h := (v - mu) * r
		xh[j] = h
		y[j] = h*g[j] + b[j]
	}
}

func lnGradSumsGo(dy, g, xh []float32) (m1, m2 float32) {
	for j := range dy {
		d := dy[j] * g[j]
		m1 += d
		m2 += d * xh[j]
	}
	return m1, m2
}

func lnGradApplyGo(dx, dy, g, xh []float32, r, m1, m2 float32) {
	for j := range dy {
		dx[j] = r * (dy[j]*g[j] - m1 - xh[j]*m2)
	}
}

func adamwGo(w, g, m, v []float32, c *AdamW) {
	b1, omb1, b2, omb2, bc2, eps, decay, step := c.Beta1, c.OneMinusBeta1, c.Beta2, c.OneMinusBeta2, c.BiasCorr2, c.Eps, c.Decay, c.Step
	for i := range w {
		gi := g[i]
		mi := b1*m[i] + omb1*gi
		vi := b2*v[i] + omb2*gi*gi
		m[i], v[i] = mi, vi
		denom := float32(math.Sqrt(float64(vi)))/bc2 + eps
		w[i] = w[i]*decay - step*mi/denom
	}
}
