package train

import (
	"runtime"

	"github.com/capsel/capsel/internal/gemm"
)

// One pool runs all of a step's parallel work. internal/gemm has its own
// persistent, polling helper goroutines; with both pools polling on a
// two-core machine, a helper woken by one pool waits behind the other
// pool's poller (the Go scheduler keeps re-running a goroutine that yields
// rather than stealing the woken one), and measured GEMMs ran hardly faster
// than on one core. So train splits each product into blocks of C itself,
// on the parallelFor helpers, and gemm multiplies each block on one thread.
// (gemm is used by this package only.)
func init() { gemm.SetThreads(1) }

// parallelMinMACs is the smallest m·n·k that sgemm splits among
// goroutines (gemm's own threshold).
const parallelMinMACs = 64 * 64 * 32

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32
// matrices with internal/gemm. Large products are cut into blocks of rows
// of C (or of columns, when C is wider than tall) that run in parallel;
// gemm computes every element of C by the same sequence of operations
// whatever block it falls in, so the result does not depend on the number
// of threads.
//
// Blocks are a multiple of gemm's micro-tile (6 rows, 16 columns) and at
// least minBlock wide, since each block packs the whole shared operand
// again; there are up to two per goroutine, for balance.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	w := runtime.GOMAXPROCS(0)
	if w <= 1 || m*n*k < parallelMinMACs {
		gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	const minBlock = 48
	byRows := m >= n
	size, unit := n, 16
	if byRows {
		size, unit = m, 6
	}
	blocks := min(2*w, max(1, size/minBlock))
	if blocks <= 1 {
		gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	units := (size + unit - 1) / unit
	parallelFor(blocks, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			s := min(size, blk*units/blocks*unit)
			e := min(size, (blk+1)*units/blocks*unit)
			if s >= e {
				continue
			}
			if byRows {
				sa := a[s*lda:]
				if transA {
					sa = a[s:]
				}
				gemm.Sgemm(transA, transB, e-s, n, k, alpha, sa, lda, b, ldb, beta, c[s*ldc:], ldc)
			} else {
				sb := b[s:]
				if transB {
					sb = b[s*ldb:]
				}
				gemm.Sgemm(transA, transB, m, e-s, k, alpha, a, lda, sb, ldb, beta, c[s:], ldc)
			}
		}
	})
}
