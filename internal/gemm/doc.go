// Package gemm multiplies row-major float32 matrices fast and reproducibly on the CPU.
//
// Sgemm computes C = alpha·op(A)·op(B) + beta·C with the blocking scheme of
// BLIS (Van Zee & van de Geijn, 2015):
//
//	for jc over columns of C in blocks of nc ≤ 4080
//	  for pc over k in slices of kc ≤ 256 (balanced: ⌈k/⌈k/256⌉⌉)
//	    pack op(B)[pc:pc+kc, jc:jc+nc] into kc×16 micro-panels   (L2/L3)
//	    for ic over rows in blocks of mc ≤ 144
//	      pack op(A)[ic:ic+mc, pc:pc+kc] into 6×kc micro-panels  (L2)
//	      for jr over 16-column micro-panels of B                  (L1)
//	        for ir over 6-row micro-panels of A
//	          6×16 micro-kernel: C_tile = alpha·A_panel·B_panel + beta'·C_tile
//
// where beta' is beta for the first k slice and 1 afterwards. Packing turns
// every transpose combination and stride into the same contiguous layout,
// so one kernel serves all four cases. On amd64 the micro-kernel is Go
// assembly using AVX2 and FMA3 (12 YMM accumulators, VFMADD231PS), chosen at
// start-up by CPUID/XGETBV; elsewhere, or with the purego build tag, a
// portable Go kernel with the same packed layout runs instead. Partial tiles
// at the matrix edges go through a 6×16 scratch tile and the same kernel.
//
// Parallelism: with GOMAXPROCS > 1, a product of at least parallelMinMACs
// multiply-adds is cut into blocks of whole micro-tiles of rows of C (of
// columns when C is wider than tall), at least minBlock wide and up to two
// per goroutine, which run on the pool of internal/par, the one the
// trainer's loops use too. Each block packs the operand that all blocks
// share (all of op(B) for row blocks) again, which is cheap next to its
// share of the multiply-adds. Packing buffers come from a free list that
// survives garbage collection.
//
// Determinism: the k reduction is never split across goroutines, and each
// element of C is produced by the same sequence of float32 operations — the
// FMA (or multiply-then-add) chain over its kc slices in increasing order,
// then alpha, then beta — regardless of its position within a tile or of
// which goroutine computes it. Results are therefore bit-identical for any
// GOMAXPROCS or scheduling. They do differ in the last bits between the
// assembly and the pure-Go kernel (fused versus separate rounding), so a
// given binary on a given CPU class is reproducible.
package gemm
