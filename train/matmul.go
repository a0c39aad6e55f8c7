package train

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32
// matrices (op(X) = X or Xᵀ; op(A) m×k, op(B) k×n, C m×n). Rows of C are
// split among workers; each element's sum over k runs in a fixed order, so
// the result does not depend on the number of workers.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	parallelFor(m, func(lo, hi int) {
		acc := make([]float32, n)
		for i := lo; i < hi; i++ {
			clear(acc)
			for p := range k {
				var av float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if av == 0 {
					continue
				}
				if transB {
					for j := range n {
						acc[j] += av * b[j*ldb+p]
					}
				} else {
					br := b[p*ldb : p*ldb+n]
					for j, bv := range br {
						acc[j] += av * bv
					}
				}
			}
			cr := c[i*ldc : i*ldc+n]
			if beta == 0 {
				for j := range cr {
					cr[j] = alpha * acc[j]
				}
			} else {
				for j := range cr {
					cr[j] = alpha*acc[j] + beta*cr[j]
				}
			}
		}
	})
}
