//go:build amd64 && gc && !purego

// AVX2/FMA kernels for package gemm. Hand-written; conventions (ABI0 stack
// arguments named sym+off(FP), NOSPLIT leaf functions, VZEROUPPER before
// returning to Go code) follow the amd64 assembly in gonum's internal/asm/f32
// and spago's mat/internal/matfuncs. The register blocking is the classic
// BLIS-style 6x16 single-precision layout (Van Zee & van de Geijn, "BLIS: A
// Framework for Rapidly Instantiating BLAS Functionality", 2015).

#include "textflag.h"

// func kernel6x16(k int, a, b, c *float32, ldc int, alpha, beta float32)
//
// Computes the 6x16 tile C = alpha*(A·B) + beta*C, where A is a packed
// micro-panel (k steps of 6 floats, row index fastest) and B is a packed
// micro-panel (k steps of 16 floats). C is row-major with row stride ldc
// (in elements). When beta == ±0, C is only written, never read, so NaN or
// Inf already in C does not leak into the result.
//
// Registers: Y0..Y11 hold the 6x16 accumulator (row i in Y(2i), Y(2i+1));
// Y12, Y13 hold one row of the B panel; Y14, Y15 alternate as the broadcast
// A element. Each C element is the FMA chain over p = 0..k-1 in order, then
// one multiply by alpha and one fused beta·C + t, whatever its position in
// the tile: this is what makes the results independent of how the output is
// split among threads.
TEXT ·kernel6x16(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	// Pull the C tile towards L1 while the FMAs run.
	MOVQ DX, R10
	PREFETCHT0   (R10)
	PREFETCHT0   60(R10)
	ADDQ         R8, R10
	PREFETCHT0   (R10)
	PREFETCHT0   60(R10)
	ADDQ         R8, R10
	PREFETCHT0   (R10)
	PREFETCHT0   60(R10)
	ADDQ         R8, R10
	PREFETCHT0   (R10)
	PREFETCHT0   60(R10)
	ADDQ         R8, R10
	PREFETCHT0   (R10)
	PREFETCHT0   60(R10)
	ADDQ         R8, R10
	PREFETCHT0   (R10)
	PREFETCHT0   60(R10)

	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	VXORPS       Y4, Y4, Y4
	VXORPS       Y5, Y5, Y5
	VXORPS       Y6, Y6, Y6
	VXORPS       Y7, Y7, Y7
	VXORPS       Y8, Y8, Y8
	VXORPS       Y9, Y9, Y9
	VXORPS       Y10, Y10, Y10
	VXORPS       Y11, Y11, Y11

	MOVQ CX, R9
	SHRQ $2, R9
	JZ   tail

loop4:
	// k step 0
	VMOVUPS      0(DI), Y12
	VMOVUPS      32(DI), Y13
	VBROADCASTSS 0(SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS 4(SI), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 8(SI), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS 12(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 16(SI), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS 20(SI), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	// k step 1
	VMOVUPS      64(DI), Y12
	VMOVUPS      96(DI), Y13
	VBROADCASTSS 24(SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS 28(SI), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 32(SI), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS 36(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 40(SI), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS 44(SI), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	// k step 2
	VMOVUPS      128(DI), Y12
	VMOVUPS      160(DI), Y13
	VBROADCASTSS 48(SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS 52(SI), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 56(SI), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS 60(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 64(SI), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS 68(SI), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	// k step 3
	VMOVUPS      192(DI), Y12
	VMOVUPS      224(DI), Y13
	VBROADCASTSS 72(SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS 76(SI), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 80(SI), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS 84(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 88(SI), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS 92(SI), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ         $96, SI
	ADDQ         $256, DI
	DECQ         R9
	JNZ          loop4

tail:
	ANDQ $3, CX
	JZ   epilogue

loop1:
	VMOVUPS      0(DI), Y12
	VMOVUPS      32(DI), Y13
	VBROADCASTSS 0(SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS 4(SI), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 8(SI), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS 12(SI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 16(SI), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS 20(SI), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ         $24, SI
	ADDQ         $64, DI
	DECQ         CX
	JNZ          loop1

epilogue:
	VBROADCASTSS alpha+40(FP), Y12
	VMULPS       Y12, Y0, Y0
	VMULPS       Y12, Y1, Y1
	VMULPS       Y12, Y2, Y2
	VMULPS       Y12, Y3, Y3
	VMULPS       Y12, Y4, Y4
	VMULPS       Y12, Y5, Y5
	VMULPS       Y12, Y6, Y6
	VMULPS       Y12, Y7, Y7
	VMULPS       Y12, Y8, Y8
	VMULPS       Y12, Y9, Y9
	VMULPS       Y12, Y10, Y10
	VMULPS       Y12, Y11, Y11
	VBROADCASTSS beta+44(FP), Y13
	MOVL         beta+44(FP), AX
	ANDL         $0x7fffffff, AX
	JZ           overwrite

	VFMADD231PS  (DX), Y13, Y0
	VFMADD231PS  32(DX), Y13, Y1
	VMOVUPS      Y0, (DX)
	VMOVUPS      Y1, 32(DX)
	ADDQ         R8, DX
	VFMADD231PS  (DX), Y13, Y2
	VFMADD231PS  32(DX), Y13, Y3
	VMOVUPS      Y2, (DX)
	VMOVUPS      Y3, 32(DX)
	ADDQ         R8, DX
	VFMADD231PS  (DX), Y13, Y4
	VFMADD231PS  32(DX), Y13, Y5
	VMOVUPS      Y4, (DX)
	VMOVUPS      Y5, 32(DX)
	ADDQ         R8, DX
	VFMADD231PS  (DX), Y13, Y6
	VFMADD231PS  32(DX), Y13, Y7
	VMOVUPS      Y6, (DX)
	VMOVUPS      Y7, 32(DX)
	ADDQ         R8, DX
	VFMADD231PS  (DX), Y13, Y8
	VFMADD231PS  32(DX), Y13, Y9
	VMOVUPS      Y8, (DX)
	VMOVUPS      Y9, 32(DX)
	ADDQ         R8, DX
	VFMADD231PS  (DX), Y13, Y10
	VFMADD231PS  32(DX), Y13, Y11
	VMOVUPS      Y10, (DX)
	VMOVUPS      Y11, 32(DX)
	VZEROUPPER
	RET

overwrite:
	VMOVUPS      Y0, (DX)
	VMOVUPS      Y1, 32(DX)
	ADDQ         R8, DX
	VMOVUPS      Y2, (DX)
	VMOVUPS      Y3, 32(DX)
	ADDQ         R8, DX
	VMOVUPS      Y4, (DX)
	VMOVUPS      Y5, 32(DX)
	ADDQ         R8, DX
	VMOVUPS      Y6, (DX)
	VMOVUPS      Y7, 32(DX)
	ADDQ         R8, DX
	VMOVUPS      Y8, (DX)
	VMOVUPS      Y9, 32(DX)
	ADDQ         R8, DX
	VMOVUPS      Y10, (DX)
	VMOVUPS      Y11, 32(DX)
	VZEROUPPER
	RET
