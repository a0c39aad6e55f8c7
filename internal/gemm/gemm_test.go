package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// u is the unit roundoff of float32 (round to nearest): 2⁻²⁴.
const u = 1.0 / (1 << 24)

// kernels lists the micro-kernels this machine can run, so that every
// correctness test covers the pure-Go path as well as the assembly one.
func kernels() []struct {
	name string
	asm  bool
} {
	ks := []struct {
		name string
		asm  bool
	}{{"go", false}}
	if haveAsm {
		ks = append(ks, struct {
			name string
			asm  bool
		}{"avx2", true})
	}
	return ks
}

// withKernel runs f with the assembly kernel switched on or off.
func withKernel(t testing.TB, asm bool, f func()) {
	t.Helper()
	old := useAsm
	useAsm = asm
	defer func() { useAsm = old }()
	f()
}

// withProcs runs f at GOMAXPROCS n and restores the setting; Sgemm splits
// large products among as many goroutines.
func withProcs(n int, f func()) {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	f()
}

// problem is one Sgemm call with its stored operands.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
}

// newProblem fills stored A, B and C with uniform values in [-1, 1); pad
// extra columns are added to each row stride. Padding elements are set to
// NaN so that a read outside the logical matrix poisons the result.
func newProblem(rng *rand.Rand, transA, transB bool, m, n, k, pad int, alpha, beta float32) *problem {
	p := &problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	p.lda, p.ldb, p.ldc = max(1, ac)+pad, max(1, bc)+pad, max(1, n)+pad
	fill := func(rows, cols, ld int) []float32 {
		x := make([]float32, rows*ld)
		for i := range x {
			if i%ld < cols {
				x[i] = float32(2*rng.Float64() - 1)
			} else {
				x[i] = float32(math.NaN())
			}
		}
		return x
	}
	p.a = fill(ar, ac, p.lda)
	p.b = fill(br, bc, p.ldb)
	p.c = fill(m, n, p.ldc)
	return p
}

func (p *problem) opA(i, l int) float64 {
	if p.transA {
		return float64(p.a[l*p.lda+i])
	}
	return float64(p.a[i*p.lda+l])
}

func (p *problem) opB(l, j int) float64 {
	if p.transB {
		return float64(p.b[j*p.ldb+l])
	}
	return float64(p.b[l*p.ldb+j])
}

// reference returns the exact-as-float64 result and, per element, the error
// bound derived below.
//
// Error bound. Each C element is a length-k dot product accumulated in
// float32, one rounding per step (a fused multiply-add, or a product and a
// sum), then scaled by alpha and combined with beta·c. The standard
// recursive-summation analysis (Higham, Accuracy and Stability of Numerical
// Algorithms, 2nd ed., §3.1, eq. 3.5) bounds the dot-product error by
// γ_k·Σ|a_l·b_l| with γ_k = k·u/(1 − k·u) and u = 2⁻²⁴; the alpha scaling
// and the beta update add at most three more roundings. So
//
//	|C − C_exact| ≤ γ_{k+3}·(|alpha|·Σ_l |a_l·b_l| + |beta·c|)
//
// holds for every input, with no probabilistic slack: a test using it cannot
// flake. It is still tight enough to catch indexing mistakes: one wrong or
// missing term changes an element by about |a_l·b_l| ≈ 1/3 on average, while
// the bound is ≲ k²·u/3 ≈ 5e-3 even at k = 512 (and about 8e-6 at k = 7).
// Typical errors are smaller still, ≈ √k·u·‖·‖, since roundings are
// uncorrelated.
func (p *problem) reference() (want, tol []float64) {
	want = make([]float64, p.m*p.n)
	tol = make([]float64, p.m*p.n)
	g := float64(p.k+3) * u / (1 - float64(p.k+3)*u)
	// Contiguous float64 copies of op(A) (row i) and op(B)ᵀ (row j).
	af := make([]float64, p.m*p.k)
	bt := make([]float64, p.n*p.k)
	for l := 0; l < p.k; l++ {
		for i := 0; i < p.m; i++ {
			af[i*p.k+l] = p.opA(i, l)
		}
		for j := 0; j < p.n; j++ {
			bt[j*p.k+l] = p.opB(l, j)
		}
	}
	for i := 0; i < p.m; i++ {
		ai := af[i*p.k : (i+1)*p.k]
		for j := 0; j < p.n; j++ {
			bj := bt[j*p.k : (j+1)*p.k]
			var s, sa float64
			for l, x := range ai {
				x *= bj[l]
				s += x
				sa += math.Abs(x)
			}
			w := float64(p.alpha) * s
			bound := math.Abs(float64(p.alpha)) * sa
			if p.beta != 0 {
				bc := float64(p.beta) * float64(p.c[i*p.ldc+j])
				w += bc
				bound += math.Abs(bc)
			}
			want[i*p.n+j] = w
			// The smallest positive float32 normal guards elements whose exact
			// value and bound are both 0.
			tol[i*p.n+j] = g*bound + 0x1p-126
		}
	}
	return want, tol
}

// run calls Sgemm on a copy of C and returns it.
func (p *problem) run() []float32 {
	c := append([]float32(nil), p.c...)
	Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, c, p.ldc)
	return c
}

// check compares got with the reference and verifies that the padding of C
// was left untouched.
func (p *problem) check(t *testing.T, got []float32) {
	t.Helper()
	want, tol := p.reference()
	bad := 0
	for i := 0; i < p.m; i++ {
		for j := 0; j < p.ldc; j++ {
			g := got[i*p.ldc+j]
			if j >= p.n {
				if !math.IsNaN(float64(g)) {
					t.Errorf("C[%d][%d] (padding) = %v, want it untouched (NaN)", i, j, g)
					bad++
				}
				continue
			}
			w, e := want[i*p.n+j], tol[i*p.n+j]
			if d := math.Abs(float64(g) - w); !(d <= e) {
				t.Errorf("C[%d][%d] = %v, want %v ± %.3g (off by %.3g)", i, j, g, w, e, d)
				bad++
			}
			if bad > 10 {
				t.Fatal("too many mismatches")
			}
		}
	}
}

func (p *problem) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d alpha=%g beta=%g lda=%d ldb=%d ldc=%d",
		p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.beta, p.lda, p.ldb, p.ldc)
}

func TestSgemmShapes(t *testing.T) {
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {7, 13, 5}, {6, 16, 1}, {6, 16, 4}, {12, 32, 9}, {5, 17, 3},
		{65, 33, 129}, {1, 100, 300}, {100, 1, 300}, {145, 40, 257},
		{64, 64, 512}, {512, 64, 64}, {13, 200, 270},
	}
	if !testing.Short() {
		shapes = append(shapes, struct{ m, n, k int }{512, 512, 512})
	}
	scalars := []struct{ alpha, beta float32 }{{1, 0}, {1, 1}, {-0.5, 2.5}}
	rng := rand.New(rand.NewPCG(1, 2))
	t.Logf("assembly kernel available: %v", haveAsm)
	for _, kn := range kernels() {
		for _, sh := range shapes {
			for tr := 0; tr < 4; tr++ {
				transA, transB := tr&1 != 0, tr&2 != 0
				big := sh.m*sh.n*sh.k >= 1<<24
				for si, sc := range scalars {
					if big && (si > 0 || transA != transB) {
						continue // two cases per kernel are enough at 512³
					}
					pad := 0
					if si == 2 {
						pad = 3 // strides larger than the width
					}
					p := newProblem(rng, transA, transB, sh.m, sh.n, sh.k, pad, sc.alpha, sc.beta)
					t.Run(kn.name+"/"+p.String(), func(t *testing.T) {
						withKernel(t, kn.asm, func() { p.check(t, p.run()) })
					})
				}
			}
		}
	}
}

// TestSgemmRandomShapes sweeps seeded random shapes, transposes, strides and
// scalars.
func TestSgemmRandomShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 60
	if testing.Short() {
		n = 15
	}
	for _, kn := range kernels() {
		for i := 0; i < n; i++ {
			alphas := []float32{1, -1, 0.75, 3}
			betas := []float32{0, 1, -0.5, 2}
			p := newProblem(rng, rng.IntN(2) == 1, rng.IntN(2) == 1,
				1+rng.IntN(80), 1+rng.IntN(80), 1+rng.IntN(300), rng.IntN(4),
				alphas[rng.IntN(4)], betas[rng.IntN(4)])
			t.Run(kn.name+"/"+p.String(), func(t *testing.T) {
				withKernel(t, kn.asm, func() { p.check(t, p.run()) })
			})
		}
	}
}

// TestSgemmBetaZeroOverwritesNaN: with beta = 0 the old C must not be read.
func TestSgemmBetaZeroOverwritesNaN(t *testing.T) {
	for _, kn := range kernels() {
		withKernel(t, kn.asm, func() {
			for _, sh := range []struct{ m, n, k int }{{6, 16, 3}, {7, 13, 5}, {40, 70, 20}} {
				rng := rand.New(rand.NewPCG(5, 6))
				p := newProblem(rng, false, false, sh.m, sh.n, sh.k, 0, 1, 0)
				for i := range p.c {
					p.c[i] = float32(math.NaN())
				}
				got := p.run()
				for i, v := range got {
					if math.IsNaN(float64(v)) {
						t.Fatalf("%s: %s: C[%d] = NaN, want it overwritten", kn.name, p, i)
					}
				}
				p.check(t, got)
			}
		})
	}
}

// TestSgemmDegenerate covers k = 0, alpha = 0 and empty outputs, where A and
// B must not be read and C becomes beta·C.
func TestSgemmDegenerate(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name        string
		k           int
		alpha, beta float32
		c0, want    float32
	}{
		{"k=0 beta=0 clears NaN", 0, 1, 0, nan, 0},
		{"k=0 beta=1 keeps", 0, 1, 1, 3, 3},
		{"k=0 beta=2 scales", 0, 1, 2, 3, 6},
		{"alpha=0 beta=0.5", 4, 0, 0.5, 3, 1.5},
		{"alpha=0 beta=0", 4, 0, 0, nan, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const m, n = 3, 5
			a := make([]float32, max(1, m*tc.k))
			b := make([]float32, max(1, tc.k*n))
			for i := range a {
				a[i] = nan // alpha = 0 must not read A
			}
			c := make([]float32, m*n)
			for i := range c {
				c[i] = tc.c0
			}
			Sgemm(false, false, m, n, tc.k, tc.alpha, a, max(1, tc.k), b, n, tc.beta, c, n)
			for i, v := range c {
				if v != tc.want {
					t.Fatalf("C[%d] = %v, want %v", i, v, tc.want)
				}
			}
		})
	}
	// Empty outputs: nothing is touched and nothing panics.
	Sgemm(false, false, 0, 5, 3, 1, nil, 3, make([]float32, 15), 5, 0, nil, 5)
	Sgemm(false, false, 4, 0, 3, 1, make([]float32, 12), 3, nil, 1, 0, nil, 1)
}

// TestSgemmDeterministic checks bit-identical results across GOMAXPROCS
// settings for both kernels, on shapes whose split changes with it: row
// blocks and column blocks, one and two k slices, and one shape too small
// to split.
func TestSgemmDeterministic(t *testing.T) {
	shapes := []struct {
		transA, transB bool
		m, n, k        int
	}{
		{false, false, 512, 64, 64},
		{true, false, 64, 64, 512},
		{false, true, 97, 250, 300},
		{true, true, 130, 45, 600},
		{false, false, 7, 13, 5},
		{false, false, 20, 300, 100}, // column chunks
		{true, true, 13, 200, 270},   // column chunks, two k slices
	}
	split2 := map[bool]bool{} // by rows → some shape splits that way at GOMAXPROCS 2
	for _, kn := range kernels() {
		withKernel(t, kn.asm, func() {
			for _, sh := range shapes {
				rng := rand.New(rand.NewPCG(7, 8))
				p := newProblem(rng, sh.transA, sh.transB, sh.m, sh.n, sh.k, 1, 0.9, 1.1)
				var first []float32
				if blocks, byRows := split(sh.m, sh.n, sh.k, 2); blocks > 1 {
					split2[byRows] = true
				}
				for _, th := range []int{1, 2, 3, 4, 7} {
					var got []float32
					withProcs(th, func() { got = p.run() })
					if first == nil {
						first = got
						continue
					}
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(first[i]) {
							t.Fatalf("%s: %s: GOMAXPROCS %d differs from 1 at %d: %v vs %v",
								kn.name, p, th, i, got[i], first[i])
						}
					}
				}
			}
		})
	}
	if !split2[true] || !split2[false] {
		t.Errorf("the shapes split by rows: %v, by columns: %v; both paths must be covered", split2[true], split2[false])
	}
}

// TestSplit pins where run splits C: both directions occur, blocks are at
// least minBlock wide, and small products stay on one goroutine.
func TestSplit(t *testing.T) {
	for _, c := range []struct {
		m, n, k, procs int
		blocks         int
		byRows         bool
	}{
		{512, 64, 64, 2, 4, true},    // a forward linear at 512 tokens
		{64, 64, 512, 2, 1, true},    // a weight gradient at d = 64: 64 rows make one block
		{128, 512, 512, 2, 4, false}, // wider than tall: column blocks
		{512, 64, 64, 1, 1, true},    // one proc: no split
		{32, 32, 32, 4, 1, true},     // below parallelMinMACs
		{4096, 64, 64, 3, 6, true},   // at most two blocks per goroutine
	} {
		blocks, byRows := split(c.m, c.n, c.k, c.procs)
		if blocks != c.blocks || byRows != c.byRows {
			t.Errorf("split(%d, %d, %d, %d) = %d, %v; want %d, %v", c.m, c.n, c.k, c.procs, blocks, byRows, c.blocks, c.byRows)
		}
	}
}

// TestSgemmConcurrentCallers runs several Sgemm calls at once (as spago's
// backward pass does) and checks each against a serial result.
func TestSgemmConcurrentCallers(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	ps := make([]*problem, 6)
	want := make([][]float32, len(ps))
	for i := range ps {
		ps[i] = newProblem(rng, i%2 == 0, i%3 == 0, 100+i, 90, 70, 0, 1, 0.5)
		withProcs(1, func() { want[i] = ps[i].run() })
	}
	withProcs(2, func() {
		errs := make(chan error, len(ps))
		for i, p := range ps {
			go func() {
				for rep := 0; rep < 5; rep++ {
					got := p.run()
					for j := range got {
						if math.Float32bits(got[j]) != math.Float32bits(want[i][j]) {
							errs <- fmt.Errorf("call %d rep %d differs at %d", i, rep, j)
							return
						}
					}
				}
				errs <- nil
			}()
		}
		for range ps {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

// TestSgemmAllocs: a steady-state Sgemm on one goroutine allocates nothing
// (packing buffers come from a free list that survives collections); split
// among goroutines it allocates only par.For's loop and the closure it
// runs, whatever the size.
func TestSgemmAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ procs, m, max int }{{1, 128, 0}, {2, 128, 2}, {2, 512, 2}} {
		p := newProblem(rng, false, false, c.m, 128, 128, 0, 1, 0)
		withProcs(c.procs, func() {
			p.run() // warm the free list
			allocs := testing.AllocsPerRun(20, func() {
				Sgemm(false, false, p.m, p.n, p.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
				runtime.GC() // buffers must survive collections
			})
			if allocs > float64(c.max) {
				t.Errorf("GOMAXPROCS %d, %d×128×128: Sgemm allocates %.1f times per call at steady state, want ≤ %d", c.procs, c.m, allocs, c.max)
			}
		})
	}
}

func TestSgemmPanics(t *testing.T) {
	buf := make([]float32, 100)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 2, 1, buf, 2, buf, 2, 0, buf, 2) }},
		{"lda too small", func() { Sgemm(false, false, 3, 3, 4, 1, buf, 3, buf, 3, 0, buf, 3) }},
		{"lda too small transA", func() { Sgemm(true, false, 5, 3, 4, 1, buf, 4, buf, 3, 0, buf, 3) }},
		{"ldb too small transB", func() { Sgemm(false, true, 3, 3, 4, 1, buf, 4, buf, 3, 0, buf, 3) }},
		{"c too short", func() { Sgemm(false, false, 10, 10, 1, 1, buf, 1, buf, 10, 0, buf[:99], 10) }},
		{"a too short", func() { Sgemm(false, false, 10, 10, 10, 1, buf[:99], 10, buf, 10, 0, buf, 10) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil {
					t.Error("no panic")
				}
			}()
			tc.f()
		})
	}
}

// FuzzSgemm checks small random problems against the reference; `go test`
// runs the seed corpus, `go test -fuzz FuzzSgemm` explores further.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint16(1), uint8(0), uint8(0), uint64(1))
	f.Add(uint8(7), uint8(13), uint16(5), uint8(3), uint8(2), uint64(2))
	f.Add(uint8(65), uint8(33), uint16(129), uint8(1), uint8(1), uint64(3))
	f.Add(uint8(6), uint8(16), uint16(300), uint8(2), uint8(0), uint64(4))
	f.Fuzz(func(t *testing.T, m, n uint8, k uint16, trans, pad uint8, seed uint64) {
		if m == 0 || n == 0 || k > 600 {
			t.Skip()
		}
		rng := rand.New(rand.NewPCG(seed, 99))
		p := newProblem(rng, trans&1 != 0, trans&2 != 0, int(m), int(n), int(k), int(pad%4), 1.5, 0.5)
		for _, kn := range kernels() {
			withKernel(t, kn.asm, func() { p.check(t, p.run()) })
		}
	})
}

// BenchmarkPureGo measures the portable kernel (what non-AVX2 machines get)
// at one trainer-sized shape, single-threaded.
func BenchmarkPureGo(b *testing.B) {
	const m, n, k = 512, 128, 128
	rng := rand.New(rand.NewPCG(13, 14))
	p := newProblem(rng, false, false, m, n, k, 0, 1, 0)
	withKernel(b, false, func() {
		withProcs(1, func() {
			for b.Loop() {
				Sgemm(false, false, m, n, k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
			}
		})
	})
	b.ReportMetric(2*m*n*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
