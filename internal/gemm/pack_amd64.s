//go:build amd64 && gc && !purego

// Packing helpers for package gemm (SSE/AVX moves and 4×4 transposes).
// The 4×4 transpose is the unpack/movlhps/movhlps sequence of Intel's
// _MM_TRANSPOSE4_PS macro (xmmintrin.h), written here with VEX 3-operand
// forms. Go assembler operand order is reversed from Intel's: the
// destination comes last.

#include "textflag.h"

// func copy16(dst, src *float32, n, ld int)
// dst[p*16+j] = src[p*ld+j] for p < n, j < 16.
TEXT ·copy16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	TESTQ CX, CX
	JZ   copy16done

copy16loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    R8, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     copy16loop

copy16done:
	VZEROUPPER
	RET

// func copy6(dst, src *float32, n, ld int)
// dst[p*6+i] = src[p*ld+i] for p < n, i < 6.
TEXT ·copy6(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	TESTQ CX, CX
	JZ   copy6done

copy6loop:
	VMOVUPS (SI), X0
	MOVQ   16(SI), AX
	VMOVUPS X0, (DI)
	MOVQ   AX, 16(DI)
	ADDQ   R8, SI
	ADDQ   $24, DI
	DECQ   CX
	JNZ    copy6loop

copy6done:
	RET

// func gather6(dst, src *float32, n, ld int)
// dst[p*6+i] = src[i*ld+p] for p < n (n a multiple of 4), i < 6.
// Four steps at a time: rows 0-3 go through a 4×4 transpose, rows 4-5
// through one unpack pair.
TEXT ·gather6(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9 // 3 rows
	SHRQ $2, CX
	JZ   gather6done

gather6loop:
	MOVQ    SI, R10
	VMOVUPS (R10), X0        // a0..a3 (row 0, steps p..p+3)
	VMOVUPS (R10)(R8*1), X1  // b
	VMOVUPS (R10)(R8*2), X2  // c
	VMOVUPS (R10)(R9*1), X3  // d
	LEAQ    (R10)(R8*4), R10
	VMOVUPS (R10), X4        // e
	VMOVUPS (R10)(R8*1), X5  // f

	VUNPCKLPS X1, X0, X6  // a0 b0 a1 b1
	VUNPCKLPS X3, X2, X7  // c0 d0 c1 d1
	VUNPCKHPS X1, X0, X8  // a2 b2 a3 b3
	VUNPCKHPS X3, X2, X9  // c2 d2 c3 d3
	VUNPCKLPS X5, X4, X10 // e0 f0 e1 f1
	VUNPCKHPS X5, X4, X11 // e2 f2 e3 f3
	VMOVLHPS  X7, X6, X0  // a0 b0 c0 d0
	VMOVHLPS  X6, X7, X1  // a1 b1 c1 d1
	VMOVLHPS  X9, X8, X2  // a2 b2 c2 d2
	VMOVHLPS  X8, X9, X3  // a3 b3 c3 d3

	VMOVUPS X0, (DI)
	VMOVLPS X10, 16(DI)
	VMOVUPS X1, 24(DI)
	VMOVHPS X10, 40(DI)
	VMOVUPS X2, 48(DI)
	VMOVLPS X11, 64(DI)
	VMOVUPS X3, 72(DI)
	VMOVHPS X11, 88(DI)

	ADDQ $16, SI
	ADDQ $96, DI
	DECQ CX
	JNZ  gather6loop

gather6done:
	RET

// func gather4(dst, src *float32, n, ld, ldd int)
// dst[p*ldd+i] = src[i*ld+p] for p < n (n a multiple of 4), i < 4.
TEXT ·gather4(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ ldd+32(FP), R11
	SHLQ $2, R11
	LEAQ (R8)(R8*2), R9
	LEAQ (R11)(R11*2), R12
	SHRQ $2, CX
	JZ   gather4done

gather4loop:
	VMOVUPS (SI), X0
	VMOVUPS (SI)(R8*1), X1
	VMOVUPS (SI)(R8*2), X2
	VMOVUPS (SI)(R9*1), X3

	VUNPCKLPS X1, X0, X6
	VUNPCKLPS X3, X2, X7
	VUNPCKHPS X1, X0, X8
	VUNPCKHPS X3, X2, X9
	VMOVLHPS  X7, X6, X0
	VMOVHLPS  X6, X7, X1
	VMOVLHPS  X9, X8, X2
	VMOVHLPS  X8, X9, X3

	VMOVUPS X0, (DI)
	VMOVUPS X1, (DI)(R11*1)
	VMOVUPS X2, (DI)(R11*2)
	VMOVUPS X3, (DI)(R12*1)

	ADDQ $16, SI
	LEAQ (DI)(R11*4), DI
	DECQ CX
	JNZ  gather4loop

gather4done:
	RET
