package train

import "github.com/capsel/capsel/internal/gemm"

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32
// matrices with internal/gemm, whose result does not depend on the number of
// threads (it splits C, never the sum over k).
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
