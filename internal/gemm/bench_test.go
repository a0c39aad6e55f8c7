package gemm_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/capsel/capsel/internal/gemm"
)

// benchShapes are the products of one training step with 512 tokens:
// m×n×k = (tokens × out × in) for forward linears, (in × out × tokens) with
// transA for weight gradients, and transB for input gradients.
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	{"d64-qkv", false, false, 512, 64, 64},
	{"d64-mlpup", false, false, 512, 256, 64},
	{"d64-mlpdown", false, false, 512, 64, 256},
	{"d64-wgradTA", true, false, 64, 64, 512},
	{"d64-xgradTB", false, true, 512, 64, 64},
	{"d128-proj", false, false, 512, 128, 128},
	{"d128-mlpup", false, false, 512, 512, 128},
	{"d128-mlpdown", false, false, 512, 128, 512},
	{"cube", false, false, 512, 512, 512},
}

func randSlice(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(2*rng.Float64() - 1)
	}
	return x
}

func reportGFLOPS(b *testing.B, m, n, k int) {
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm compares, per shape, this package at GOMAXPROCS 1 and 2 with
// spago's Dense.Mul and gonum's blas32.Gemm (which parallelises by itself
// over GOMAXPROCS). spago has no transposed product, so its column always
// multiplies m×k by k×n: it is the cost of the product alone, without the
// transpose spago would have to materialise first.
func BenchmarkSgemm(b *testing.B) {
	for _, sh := range benchShapes {
		m, n, k := sh.m, sh.n, sh.k
		rng := rand.New(rand.NewPCG(1, uint64(m*n*k)))
		a := randSlice(rng, m*k)
		bb := randSlice(rng, k*n)
		c := make([]float32, m*n)
		lda, ldb := k, n
		if sh.transA {
			lda = m
		}
		if sh.transB {
			ldb = k
		}
		prefix := fmt.Sprintf("%s_%dx%dx%d", sh.name, m, n, k)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/gemm-%dt", prefix, th), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(th))
				for b.Loop() {
					gemm.Sgemm(sh.transA, sh.transB, m, n, k, 1, a, lda, bb, ldb, 0, c, n)
				}
				reportGFLOPS(b, m, n, k)
			})
		}
		b.Run(prefix+"/spago", func(b *testing.B) {
			am := mat.NewDense[float32](mat.WithShape(m, k), mat.WithBacking(a))
			bm := mat.NewDense[float32](mat.WithShape(k, n), mat.WithBacking(bb))
			for b.Loop() {
				_ = am.Mul(bm)
			}
			reportGFLOPS(b, m, n, k)
		})
		b.Run(prefix+"/gonum", func(b *testing.B) {
			tA, tB := blas.NoTrans, blas.NoTrans
			ar, ac, br, bc := m, k, k, n
			if sh.transA {
				tA, ar, ac = blas.Trans, k, m
			}
			if sh.transB {
				tB, br, bc = blas.Trans, n, k
			}
			ga := blas32.General{Rows: ar, Cols: ac, Stride: lda, Data: a}
			gb := blas32.General{Rows: br, Cols: bc, Stride: ldb, Data: bb}
			gc := blas32.General{Rows: m, Cols: n, Stride: n, Data: c}
			for b.Loop() {
				blas32.Gemm(tA, tB, 1, ga, gb, 0, gc)
			}
			reportGFLOPS(b, m, n, k)
		})
	}
}
