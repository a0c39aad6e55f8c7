// Package simd holds the vectorised float32 kernels of the trainer's fused
// operators: exponentials and softmax pieces, tanh-GELU and its derivative,
// the small row-by-row products of attention, layer-norm rows and the AdamW
// update.
//
// On amd64 with AVX2 and FMA (detected at start-up) the kernels are Go
// assembly working on 8 floats at a time; elsewhere, or with the purego
// build tag, portable Go code computes the same functions. Results of the
// two differ in the last bits (fused multiply-adds, a polynomial
// exponential), but each is deterministic: the arithmetic applied to an
// element never depends on where a slice starts or on how a caller splits
// its work, because lengths that are not multiples of 8 are finished by
// running the same vector code on a padded copy (element-wise kernels) or
// depend only on the length (reductions over a whole row).
//
// Accuracy of the assembly exponential (Cephes expf, see kernels_amd64.s),
// measured against math.Exp over [−87, 88] by TestExpAccuracy: at most 2
// ulp of relative error; it returns exactly 0 below −87.34 (so exp(−Inf)
// = 0) and saturates at exp(88.38) above. GELU and its derivative inherit
// it: relative error within a few ulp where the value is not tiny (see
// TestGELUAccuracy).
package simd
