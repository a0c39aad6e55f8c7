package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The assembly kernels are checked against float64 references computed
// straight from the definitions, at tolerances derived from float32
// rounding: u = 2⁻²⁴ ≈ 6·10⁻⁸ per operation, times the number of
// operations chained (a length-k sum contributes at most k·u relative to
// the sum of magnitudes).

const u = 1.0 / (1 << 24)

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(scale * rng.NormFloat64())
	}
	return x
}

// ulps returns |got − want| in units of float32 spacing at want.
func ulps(got float32, want float64) float64 {
	if want == 0 {
		if got == 0 {
			return 0
		}
		return math.Inf(1)
	}
	w := float32(want)
	sp := math.Nextafter32(float32(math.Abs(float64(w))), float32(math.Inf(1))) - float32(math.Abs(float64(w)))
	return math.Abs(float64(got)-want) / float64(sp)
}

// TestExpAccuracy sweeps [−87, 88.3] and bounds the error of the vector
// exponential against math.Exp, for the assembly kernel and the portable
// code alike.
func TestExpAccuracy(t *testing.T) { withBoth(t, testExpAccuracy) }

func testExpAccuracy(t *testing.T) {
	const n = 1 << 20
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(-87 + 175.3*float64(i)/n)
	}
	got := make([]float32, n)
	ExpScale(got, x, 0, 1)
	worst := 0.0
	for i, v := range x {
		worst = math.Max(worst, ulps(got[i], math.Exp(float64(v))))
	}
	t.Logf("exp: max error %.2f ulp over [−87, 88.3] (accelerated %v)", worst, Accelerated())
	if worst > 2 {
		t.Errorf("exp: max error %.2f ulp, want ≤ 2", worst)
	}
	// Underflow, −Inf and (assembly only; math.Exp overflows) saturation.
	for _, c := range []struct{ x, want float32 }{
		{float32(math.Inf(-1)), 0}, {-1000, 0}, {-88, 0},
	} {
		var d [1]float32
		ExpScale(d[:], []float32{c.x}, 0, 1)
		if useAsm && d[0] != c.want {
			t.Errorf("exp(%v) = %v, want %v", c.x, d[0], c.want)
		}
	}
	var d [1]float32
	ExpScale(d[:], []float32{1000}, 0, 1)
	if useAsm && (math.IsInf(float64(d[0]), 0) || math.IsNaN(float64(d[0])) || d[0] < 1e38) {
		t.Errorf("exp(1000) = %v, want a large finite value", d[0])
	}
}

// refGELU returns GELU and its derivative in float64 from the sigmoid form
// (x·σ(2u), u = √(2/π)(x + 0.044715x³), an identity of the tanh form that
// keeps its accuracy in the negative tail), and the magnitude of the
// derivative's two terms, the scale its rounding errors are relative to.
func refGELU(v float64) (f, d, dmag float64) {
	c := math.Sqrt(2 / math.Pi)
	e := math.Exp(-2 * c * (v + 0.044715*v*v*v))
	s := 1 / (1 + e)
	t := e * s
	q := 2 * c * (1 + 3*0.044715*v*v)
	return v * s, s + v*s*t*q, s + math.Abs(v*s*t*q)
}

// TestGELUAccuracy compares GELU and its derivative with float64 on
// [−10, 10]. GELU's error is relative to its value; the derivative's, which
// is a difference of two terms near its zero at x ≈ −0.75, to the
// magnitude of those terms.
//
// Bound: the exponent A = x·(a + b·x²) is computed with three rounded
// operations, so it is off by up to 3u·|A| absolutely, which is a relative
// error of 3u·|A| in e = exp(A); exp adds 2 ulp, and the sigmoid 1/(1 + e)
// passes the relative error of e on damped by e/(1 + e) ≤ 1, then two more
// roundings: (3|A| + 5)u for GELU. The derivative uses e twice (s and
// t = e·s) and chains about ten operations: (6|A| + 12)u. The |A| term
// only matters in the negative tail, where GELU is tiny (|A| = 11 and
// GELU ≈ −7·10⁻⁵ at x = −4). Below x ≈ −9.9 the exponent saturates at the
// kernel's limit; there GELU is under 10⁻³⁷ and only an absolute error of
// 10⁻³⁰ is asked for. Both the assembly kernels and the portable code are
// held to these bounds.
func TestGELUAccuracy(t *testing.T) { withBoth(t, testGELUAccuracy) }

func testGELUAccuracy(t *testing.T) {
	const n = 1 << 18
	x := make([]float32, n+5) // a tail that is not a multiple of 8
	for i := range x {
		x[i] = float32(-10 + 20*float64(i)/n)
	}
	y := make([]float32, len(x))
	dy := make([]float32, len(x))
	ones := make([]float32, len(x))
	for i := range ones {
		ones[i] = 1
	}
	GELU(y, x)
	GELUGrad(dy, x, ones)
	var worstF, worstD float64 // in units of the bound
	var worstMid float64       // relative error of GELU on [−1, 1], in u
	for i, v := range x {
		f, d, dmag := refGELU(float64(v))
		ef := math.Abs(float64(y[i]) - f)
		ed := math.Abs(float64(dy[i]) - d)
		if math.Abs(f) < 1e-30 {
			if ef > 1e-30 {
				t.Errorf("gelu(%v) = %v, want %v", v, y[i], f)
			}
			continue
		}
		xv := math.Abs(float64(v))
		a := xv * (1.5957691216057308 + 0.07135481627260025*xv*xv)
		worstF = math.Max(worstF, ef/math.Abs(f)/((3*a+5)*u))
		worstD = math.Max(worstD, ed/dmag/((6*a+12)*u))
		if xv <= 1 {
			worstMid = math.Max(worstMid, ef/math.Abs(f)/u)
		}
	}
	t.Logf("gelu: worst error %.2f of the bound, %.1f u on [−1, 1]; derivative %.2f of the bound (accelerated %v)", worstF, worstMid, worstD, Accelerated())
	if worstF > 1 || worstD > 1 {
		t.Errorf("gelu error %.2f× its bound, derivative %.2f×", worstF, worstD)
	}
}

// withBoth runs f with the assembly kernels and with the portable code.
func withBoth(t *testing.T, f func(t *testing.T)) {
	t.Run("asm", func(t *testing.T) {
		if !haveAsm {
			t.Skip("no assembly kernels on this machine")
		}
		f(t)
	})
	t.Run("go", func(t *testing.T) {
		old := useAsm
		useAsm = false
		defer func() { useAsm = old }()
		f(t)
	})
}

var lengths = []int{1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 64, 100, 128, 129}

func TestReductions(t *testing.T) {
	withBoth(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, n := range lengths {
			x := randSlice(rng, n, 2)
			var mx, sum, ss, se float64 = math.Inf(-1), 0, 0, 0
			var mag float64
			for _, v := range x {
				mx = math.Max(mx, float64(v))
				sum += float64(v)
				mag += math.Abs(float64(v))
			}
			mu := float32(sum / float64(n))
			for _, v := range x {
				ss += (float64(v) - float64(mu)) * (float64(v) - float64(mu))
				se += math.Exp(float64(v) - mx)
			}
			if got := Max(x); float64(got) != mx {
				t.Errorf("n=%d: Max = %v, want %v", n, got, mx)
			}
			tol := float64(n) * u
			if got := Sum(x); math.Abs(float64(got)-sum) > tol*mag {
				t.Errorf("n=%d: Sum = %v, want %v", n, got, sum)
			}
			if got := SumSqDev(x, mu); math.Abs(float64(got)-ss) > 2*tol*ss {
				t.Errorf("n=%d: SumSqDev = %v, want %v", n, got, ss)
			}
			if got := SumExp(x, float32(mx)); math.Abs(float64(got)-se) > (tol+3*u)*se {
				t.Errorf("n=%d: SumExp = %v, want %v", n, got, se)
			}
			y := append([]float32(nil), x...)
			if got := ExpSum(y, float32(mx)); math.Abs(float64(got)-se) > (tol+3*u)*se {
				t.Errorf("n=%d: ExpSum = %v, want %v", n, got, se)
			}
			for i, v := range x {
				// The argument x − shift is rounded to float32 first.
				if want := math.Exp(float64(v - float32(mx))); math.Abs(float64(y[i])-want) > 3*u*want {
					t.Errorf("n=%d: ExpSum x[%d] = %v, want %v", n, i, y[i], want)
				}
			}
		}
	})
}

func TestRowKernels(t *testing.T) {
	withBoth(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, k := range []int{4, 8, 16, 24, 32, 40, 64, 72} {
			for _, n := range []int{0, 1, 3, 4, 5, 8, 13} {
				ldm := k + 3
				m := randSlice(rng, max(1, n*ldm), 1)
				x := randSlice(rng, k, 1)
				dst := make([]float32, n)
				DotRows(dst, x, m, ldm, 0.5)
				for j := range n {
					var s, mag float64
					for c := range k {
						s += float64(x[c]) * float64(m[j*ldm+c])
						mag += math.Abs(float64(x[c]) * float64(m[j*ldm+c]))
					}
					if math.Abs(float64(dst[j])-0.5*s) > float64(k+1)*u*mag {
						t.Errorf("DotRows k=%d n=%d row %d: %v, want %v", k, n, j, dst[j], 0.5*s)
					}
				}
				// AxpyRows with a strided coefficient vector, adding and storing.
				inc := 2
				coef := randSlice(rng, max(1, n*inc), 1)
				for _, add := range []bool{false, true} {
					acc := randSlice(rng, k, 1)
					orig := append([]float32(nil), acc...)
					AxpyRows(acc, coef, inc, m, ldm, n, add)
					for c := range k {
						var s, mag float64
						if add {
							s, mag = float64(orig[c]), math.Abs(float64(orig[c]))
						}
						for j := range n {
							p := float64(coef[j*inc]) * float64(m[j*ldm+c])
							s += p
							mag += math.Abs(p)
						}
						if math.Abs(float64(acc[c])-s) > float64(n+1)*u*mag {
							t.Errorf("AxpyRows k=%d n=%d add=%v col %d: %v, want %v", k, n, add, c, acc[c], s)
						}
					}
				}
			}
		}
	})
}

// TestRowConsistency checks that a row's dot product does not depend on
// whether it was computed in a group of four or alone: the property that
// keeps results independent of how callers split rows.
func TestRowConsistency(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const k, ldm = 32, 40
	m := randSlice(rng, 9*ldm, 1)
	x := randSlice(rng, k, 1)
	all := make([]float32, 9)
	DotRows(all, x, m, ldm, 0.25)
	for j := range 9 {
		one := make([]float32, 1)
		DotRows(one, x, m[j*ldm:], ldm, 0.25)
		if math.Float32bits(one[0]) != math.Float32bits(all[j]) {
			t.Errorf("row %d: alone %v, in a group %v", j, one[0], all[j])
		}
	}
	// Element-wise kernels: an element's result does not depend on its
	// offset in the slice (vector body or padded tail).
	xs := randSlice(rng, 37, 2)
	g := randSlice(rng, 37, 1)
	full := make([]float32, 37)
	GELUGrad(full, xs, g)
	for off := range 9 {
		part := make([]float32, 37-off)
		GELUGrad(part, xs[off:], g[off:])
		for i := range part {
			if math.Float32bits(part[i]) != math.Float32bits(full[off+i]) {
				t.Fatalf("GELUGrad element %d differs at offset %d", off+i, off)
			}
		}
	}
}

func TestSoftmaxGradAndLayerNorm(t *testing.T) {
	withBoth(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for _, n := range lengths {
			p := randSlice(rng, n, 1)
			dp := randSlice(rng, n, 1)
			ds := make([]float32, n)
			SoftmaxGrad(ds, p, dp, 0.5)
			var d, mag float64
			for i := range p {
				d += float64(p[i]) * float64(dp[i])
				mag += math.Abs(float64(p[i]) * float64(dp[i]))
			}
			for i := range p {
				want := float64(p[i]) * (float64(dp[i]) - d) * 0.5
				tol := (float64(n)*u*mag + 3*u*(math.Abs(float64(dp[i]))+math.Abs(d))) * math.Abs(float64(p[i])) * 0.5
				if math.Abs(float64(ds[i])-want) > tol+1e-30 {
					t.Errorf("SoftmaxGrad n=%d [%d]: %v, want %v", n, i, ds[i], want)
				}
			}
			x := randSlice(rng, n, 1)
			gain := randSlice(rng, n, 1)
			b := randSlice(rng, n, 1)
			xh := make([]float32, n)
			y := make([]float32, n)
			LayerNormApply(xh, y, x, gain, b, 0.25, 1.5)
			for j := range x {
				h := (float64(x[j]) - 0.25) * 1.5
				if math.Abs(float64(xh[j])-h) > 2*u*math.Abs(h)+1e-7 ||
					math.Abs(float64(y[j])-(h*float64(gain[j])+float64(b[j]))) > 4*u*(math.Abs(h*float64(gain[j]))+math.Abs(float64(b[j])))+1e-7 {
					t.Errorf("LayerNormApply n=%d [%d]: %v %v", n, j, xh[j], y[j])
				}
			}
			m1, m2 := LayerNormGradSums(dp, gain, xh)
			var w1, w2, a1, a2 float64
			for j := range dp {
				v := float64(dp[j]) * float64(gain[j])
				w1 += v
				w2 += v * float64(xh[j])
				a1 += math.Abs(v)
				a2 += math.Abs(v * float64(xh[j]))
			}
			if math.Abs(float64(m1)-w1) > float64(n+1)*u*a1 || math.Abs(float64(m2)-w2) > float64(n+2)*u*a2 {
				t.Errorf("LayerNormGradSums n=%d: %v %v, want %v %v", n, m1, m2, w1, w2)
			}
			dx := make([]float32, n)
			LayerNormGradApply(dx, dp, gain, xh, 2, 0.1, 0.2)
			for j := range dx {
				want := 2 * (float64(dp[j])*float64(gain[j]) - 0.1 - float64(xh[j])*0.2)
				mag := 2 * (math.Abs(float64(dp[j])*float64(gain[j])) + 0.1 + math.Abs(float64(xh[j])*0.2))
				if math.Abs(float64(dx[j])-want) > 4*u*mag {
					t.Errorf("LayerNormGradApply n=%d [%d]: %v, want %v", n, j, dx[j], want)
				}
			}
		}
	})
}

func TestElementwise(t *testing.T) {
	withBoth(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		for _, n := range lengths {
			a := randSlice(rng, n, 1)
			b := randSlice(rng, n, 1)
			d := randSlice(rng, n, 1)
			orig := append([]float32(nil), d...)
			MulAdd(d, a, b)
			for i := range d {
				want := float64(orig[i]) + float64(a[i])*float64(b[i])
				if math.Abs(float64(d[i])-want) > 2*u*(math.Abs(float64(orig[i]))+math.Abs(float64(a[i]*b[i]))) {
					t.Errorf("MulAdd n=%d [%d]: %v, want %v", n, i, d[i], want)
				}
			}
			copy(d, orig)
			Add(d, a)
			for i := range d {
				if d[i] != orig[i]+a[i] {
					t.Errorf("Add n=%d [%d]: %v, want %v", n, i, d[i], orig[i]+a[i])
				}
			}
			copy(d, orig)
			Scale(d, 3)
			for i := range d {
				if d[i] != orig[i]*3 {
					t.Errorf("Scale n=%d [%d]: %v", n, i, d[i])
				}
			}
		}
	})
}

// TestAdamWMatchesScalarLoop checks that the vector update is bit for bit
// the plain float32 loop, at lengths with and without a tail.
func TestAdamWMatchesScalarLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	c := &AdamW{Beta1: 0.9, OneMinusBeta1: 1 - float32(0.9), Beta2: 0.95, OneMinusBeta2: 1 - float32(0.95),
		BiasCorr2: 0.3, Eps: 1e-8, Decay: 1 - 1e-5, Step: 1e-3 / 0.19}
	for _, n := range lengths {
		w, g := randSlice(rng, n, 1), randSlice(rng, n, 1)
		m, v := randSlice(rng, n, 0.1), randSlice(rng, n, 0.1)
		for i := range v {
			v[i] *= v[i]
		}
		w2, m2, v2 := append([]float32(nil), w...), append([]float32(nil), m...), append([]float32(nil), v...)
		c.Update(w, g, m, v)
		adamwGo(w2, g, m2, v2, c)
		for i := range w {
			if math.Float32bits(w[i]) != math.Float32bits(w2[i]) || m[i] != m2[i] || v[i] != v2[i] {
				t.Fatalf("n=%d [%d]: vector (%v %v %v), scalar (%v %v %v)", n, i, w[i], m[i], v[i], w2[i], m2[i], v2[i])
			}
		}
	}
}

func BenchmarkGELU(b *testing.B) {
	x := randSlice(rand.New(rand.NewPCG(1, 1)), 512*256, 1)
	y := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		GELU(y, x)
	}
}

func BenchmarkDotRows(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := randSlice(rng, 64*192, 1)
	x := randSlice(rng, 16, 1)
	dst := make([]float32, 64)
	for b.Loop() {
		DotRows(dst, x, m, 192, 0.25)
	}
}

func BenchmarkAxpyRows(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := randSlice(rng, 64*192, 1)
	coef := randSlice(rng, 64, 1)
	dst := make([]float32, 32)
	for b.Loop() {
		AxpyRows(dst, coef, 1, m, 192, 64, false)
	}
}

func TestSumSquares(t *testing.T) {
	withBoth(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(13, 14))
		for _, n := range lengths {
			x := randSlice(rng, n, 3)
			var want float64
			for _, v := range x {
				want += float64(v) * float64(v)
			}
			// Squares are exact in float64; n sums at 2⁻⁵³ each.
			if got := SumSquares(x); math.Abs(got-want) > float64(n)*0x1p-53*want {
				t.Errorf("n=%d: SumSquares = %v, want %v", n, got, want)
			}
		}
	})
}

// TestAttentionRowMatchesParts checks that the fused attention-row kernels
// give bit for bit what their parts give in turn.
func TestAttentionRowMatchesParts(t *testing.T) {
	if !haveAsm {
		t.Skip("no assembly kernels on this machine")
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, dh := range []int{8, 16, 24, 32, 40, 64} {
		for _, tp := range []int{8, 16, 32, 64} {
			for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 15, 31, 33, 64} {
				if n > tp {
					continue
				}
				q, k, v := randSlice(rng, dh, 1), randSlice(rng, n*dh, 1), randSlice(rng, n*dh, 1)
				row1, row2 := make([]float32, tp), make([]float32, tp)
				out1, out2 := make([]float32, dh), make([]float32, dh)
				AttentionRow(row1, q, k, v, out1, n, 0.3)
				// The parts, each with its own assembly kernel.
				DotRows(row2[:n], q, k, dh, 0.3)
				for j := n; j < tp; j++ {
					row2[j] = float32(math.Inf(-1))
				}
				sum := ExpSum(row2, Max(row2[:n]))
				Scale(row2, 1/sum)
				AxpyRows(out2, row2, 1, v, dh, n, false)
				for j := range row1 {
					if math.Float32bits(row1[j]) != math.Float32bits(row2[j]) {
						t.Fatalf("dh=%d tp=%d n=%d: row[%d] fused %v, parts %v", dh, tp, n, j, row1[j], row2[j])
					}
				}
				for c := range out1 {
					if math.Float32bits(out1[c]) != math.Float32bits(out2[c]) {
						t.Fatalf("dh=%d tp=%d n=%d: out[%d] fused %v, parts %v", dh, tp, n, c, out1[c], out2[c])
					}
				}
				g := randSlice(rng, dh, 1)
				ds1, ds2 := make([]float32, tp), make([]float32, tp)
				dp := make([]float32, tp)
				dq1, dq2 := make([]float32, dh), make([]float32, dh)
				AttentionRowGrad(ds1, row1, g, v, k, dq1, n, 0.3)
				DotRows(dp[:n], g, v, dh, 1)
				SoftmaxGrad(ds2, row1, dp, 0.3)
				AxpyRows(dq2, ds2, 1, k, dh, n, false)
				for j := range ds1 {
					if math.Float32bits(ds1[j]) != math.Float32bits(ds2[j]) {
						t.Fatalf("dh=%d tp=%d n=%d: ds[%d] fused %v, parts %v", dh, tp, n, j, ds1[j], ds2[j])
					}
				}
				for c := range dq1 {
					if math.Float32bits(dq1[c]) != math.Float32bits(dq2[c]) {
						t.Fatalf("dh=%d tp=%d n=%d: dq[%d] fused %v, parts %v", dh, tp, n, c, dq1[c], dq2[c])
					}
				}
			}
		}
	}
}
