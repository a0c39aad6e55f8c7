//go:build amd64 && gc && !purego

// AVX2/FMA kernels for package simd. Hand-written. Conventions (ABI0 stack
// arguments, NOSPLIT leaf functions, VZEROUPPER before returning to Go) follow
// gonum's internal/asm/f32 and spago's mat/internal/matfuncs; like gonum's
// DotUnitary, reductions keep vector partial sums and add them horizontally
// (VHADDPS) at the end. The exponential is Cephes' expf (S. L. Moshier):
// Cody-Waite reduction x = n·ln 2 + r with ln 2 split in two, a degree-5
// polynomial for (e^r − 1 − r)/r², and 2^n built in the exponent bits — the
// algorithm and coefficients spago's matfuncs/exp_amd64.s uses, here with FMA
// and with a mask that returns exactly 0 below −87.34 (so exp(−Inf) = 0).
//
// Every kernel processes whole vectors of 8 floats; the Go wrappers in
// simd.go deal with lengths that are not multiples of 8.

#include "textflag.h"

// 1.0; also 127<<23, the exponent bias as an integer
DATA c_one<>+0(SB)/4, $0x3f800000
DATA c_one<>+4(SB)/4, $0x3f800000
DATA c_one<>+8(SB)/4, $0x3f800000
DATA c_one<>+12(SB)/4, $0x3f800000
DATA c_one<>+16(SB)/4, $0x3f800000
DATA c_one<>+20(SB)/4, $0x3f800000
DATA c_one<>+24(SB)/4, $0x3f800000
DATA c_one<>+28(SB)/4, $0x3f800000
GLOBL c_one<>(SB), RODATA|NOPTR, $32

// 88.37626: largest x with round(x·log2 e) ≤ 127
DATA c_hi<>+0(SB)/4, $0x42b0c0a5
DATA c_hi<>+4(SB)/4, $0x42b0c0a5
DATA c_hi<>+8(SB)/4, $0x42b0c0a5
DATA c_hi<>+12(SB)/4, $0x42b0c0a5
DATA c_hi<>+16(SB)/4, $0x42b0c0a5
DATA c_hi<>+20(SB)/4, $0x42b0c0a5
DATA c_hi<>+24(SB)/4, $0x42b0c0a5
DATA c_hi<>+28(SB)/4, $0x42b0c0a5
GLOBL c_hi<>(SB), RODATA|NOPTR, $32

// -87.33655 ≈ ln 2^-126: below it exp returns 0
DATA c_lo<>+0(SB)/4, $0xc2aeac50
DATA c_lo<>+4(SB)/4, $0xc2aeac50
DATA c_lo<>+8(SB)/4, $0xc2aeac50
DATA c_lo<>+12(SB)/4, $0xc2aeac50
DATA c_lo<>+16(SB)/4, $0xc2aeac50
DATA c_lo<>+20(SB)/4, $0xc2aeac50
DATA c_lo<>+24(SB)/4, $0xc2aeac50
DATA c_lo<>+28(SB)/4, $0xc2aeac50
GLOBL c_lo<>(SB), RODATA|NOPTR, $32

// log2 e
DATA c_log2e<>+0(SB)/4, $0x3fb8aa3b
DATA c_log2e<>+4(SB)/4, $0x3fb8aa3b
DATA c_log2e<>+8(SB)/4, $0x3fb8aa3b
DATA c_log2e<>+12(SB)/4, $0x3fb8aa3b
DATA c_log2e<>+16(SB)/4, $0x3fb8aa3b
DATA c_log2e<>+20(SB)/4, $0x3fb8aa3b
DATA c_log2e<>+24(SB)/4, $0x3fb8aa3b
DATA c_log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL c_log2e<>(SB), RODATA|NOPTR, $32

// 0.693359375: ln 2 rounded to 9 bits (Cody-Waite)
DATA c_ln2hi<>+0(SB)/4, $0x3f318000
DATA c_ln2hi<>+4(SB)/4, $0x3f318000
DATA c_ln2hi<>+8(SB)/4, $0x3f318000
DATA c_ln2hi<>+12(SB)/4, $0x3f318000
DATA c_ln2hi<>+16(SB)/4, $0x3f318000
DATA c_ln2hi<>+20(SB)/4, $0x3f318000
DATA c_ln2hi<>+24(SB)/4, $0x3f318000
DATA c_ln2hi<>+28(SB)/4, $0x3f318000
GLOBL c_ln2hi<>(SB), RODATA|NOPTR, $32

// -2.12194440e-4: ln 2 − ln2hi
DATA c_ln2lo<>+0(SB)/4, $0xb95e8083
DATA c_ln2lo<>+4(SB)/4, $0xb95e8083
DATA c_ln2lo<>+8(SB)/4, $0xb95e8083
DATA c_ln2lo<>+12(SB)/4, $0xb95e8083
DATA c_ln2lo<>+16(SB)/4, $0xb95e8083
DATA c_ln2lo<>+20(SB)/4, $0xb95e8083
DATA c_ln2lo<>+24(SB)/4, $0xb95e8083
DATA c_ln2lo<>+28(SB)/4, $0xb95e8083
GLOBL c_ln2lo<>(SB), RODATA|NOPTR, $32

// Cephes expf polynomial, 1.9875691500e-4
DATA c_p0<>+0(SB)/4, $0x39506967
DATA c_p0<>+4(SB)/4, $0x39506967
DATA c_p0<>+8(SB)/4, $0x39506967
DATA c_p0<>+12(SB)/4, $0x39506967
DATA c_p0<>+16(SB)/4, $0x39506967
DATA c_p0<>+20(SB)/4, $0x39506967
DATA c_p0<>+24(SB)/4, $0x39506967
DATA c_p0<>+28(SB)/4, $0x39506967
GLOBL c_p0<>(SB), RODATA|NOPTR, $32

// 1.3981999507e-3
DATA c_p1<>+0(SB)/4, $0x3ab743ce
DATA c_p1<>+4(SB)/4, $0x3ab743ce
DATA c_p1<>+8(SB)/4, $0x3ab743ce
DATA c_p1<>+12(SB)/4, $0x3ab743ce
DATA c_p1<>+16(SB)/4, $0x3ab743ce
DATA c_p1<>+20(SB)/4, $0x3ab743ce
DATA c_p1<>+24(SB)/4, $0x3ab743ce
DATA c_p1<>+28(SB)/4, $0x3ab743ce
GLOBL c_p1<>(SB), RODATA|NOPTR, $32

// 8.3334519073e-3
DATA c_p2<>+0(SB)/4, $0x3c088908
DATA c_p2<>+4(SB)/4, $0x3c088908
DATA c_p2<>+8(SB)/4, $0x3c088908
DATA c_p2<>+12(SB)/4, $0x3c088908
DATA c_p2<>+16(SB)/4, $0x3c088908
DATA c_p2<>+20(SB)/4, $0x3c088908
DATA c_p2<>+24(SB)/4, $0x3c088908
DATA c_p2<>+28(SB)/4, $0x3c088908
GLOBL c_p2<>(SB), RODATA|NOPTR, $32

// 4.1665795894e-2
DATA c_p3<>+0(SB)/4, $0x3d2aa9c1
DATA c_p3<>+4(SB)/4, $0x3d2aa9c1
DATA c_p3<>+8(SB)/4, $0x3d2aa9c1
DATA c_p3<>+12(SB)/4, $0x3d2aa9c1
DATA c_p3<>+16(SB)/4, $0x3d2aa9c1
DATA c_p3<>+20(SB)/4, $0x3d2aa9c1
DATA c_p3<>+24(SB)/4, $0x3d2aa9c1
DATA c_p3<>+28(SB)/4, $0x3d2aa9c1
GLOBL c_p3<>(SB), RODATA|NOPTR, $32

// 1.6666665459e-1
DATA c_p4<>+0(SB)/4, $0x3e2aaaaa
DATA c_p4<>+4(SB)/4, $0x3e2aaaaa
DATA c_p4<>+8(SB)/4, $0x3e2aaaaa
DATA c_p4<>+12(SB)/4, $0x3e2aaaaa
DATA c_p4<>+16(SB)/4, $0x3e2aaaaa
DATA c_p4<>+20(SB)/4, $0x3e2aaaaa
DATA c_p4<>+24(SB)/4, $0x3e2aaaaa
DATA c_p4<>+28(SB)/4, $0x3e2aaaaa
GLOBL c_p4<>(SB), RODATA|NOPTR, $32

// 5.0000001201e-1 (rounds to 0.5)
DATA c_p5<>+0(SB)/4, $0x3f000000
DATA c_p5<>+4(SB)/4, $0x3f000000
DATA c_p5<>+8(SB)/4, $0x3f000000
DATA c_p5<>+12(SB)/4, $0x3f000000
DATA c_p5<>+16(SB)/4, $0x3f000000
DATA c_p5<>+20(SB)/4, $0x3f000000
DATA c_p5<>+24(SB)/4, $0x3f000000
DATA c_p5<>+28(SB)/4, $0x3f000000
GLOBL c_p5<>(SB), RODATA|NOPTR, $32

// -2·√(2/π): GELU's exponent, linear term
DATA c_g1<>+0(SB)/4, $0xbfcc422a
DATA c_g1<>+4(SB)/4, $0xbfcc422a
DATA c_g1<>+8(SB)/4, $0xbfcc422a
DATA c_g1<>+12(SB)/4, $0xbfcc422a
DATA c_g1<>+16(SB)/4, $0xbfcc422a
DATA c_g1<>+20(SB)/4, $0xbfcc422a
DATA c_g1<>+24(SB)/4, $0xbfcc422a
DATA c_g1<>+28(SB)/4, $0xbfcc422a
GLOBL c_g1<>(SB), RODATA|NOPTR, $32

// -2·√(2/π)·0.044715: cubic term
DATA c_g2<>+0(SB)/4, $0xbd922279
DATA c_g2<>+4(SB)/4, $0xbd922279
DATA c_g2<>+8(SB)/4, $0xbd922279
DATA c_g2<>+12(SB)/4, $0xbd922279
DATA c_g2<>+16(SB)/4, $0xbd922279
DATA c_g2<>+20(SB)/4, $0xbd922279
DATA c_g2<>+24(SB)/4, $0xbd922279
DATA c_g2<>+28(SB)/4, $0xbd922279
GLOBL c_g2<>(SB), RODATA|NOPTR, $32

// 2·√(2/π): GELU derivative, constant term
DATA c_g3<>+0(SB)/4, $0x3fcc422a
DATA c_g3<>+4(SB)/4, $0x3fcc422a
DATA c_g3<>+8(SB)/4, $0x3fcc422a
DATA c_g3<>+12(SB)/4, $0x3fcc422a
DATA c_g3<>+16(SB)/4, $0x3fcc422a
DATA c_g3<>+20(SB)/4, $0x3fcc422a
DATA c_g3<>+24(SB)/4, $0x3fcc422a
DATA c_g3<>+28(SB)/4, $0x3fcc422a
GLOBL c_g3<>(SB), RODATA|NOPTR, $32

// 6·√(2/π)·0.044715: quadratic term
DATA c_g4<>+0(SB)/4, $0x3e5b33b6
DATA c_g4<>+4(SB)/4, $0x3e5b33b6
DATA c_g4<>+8(SB)/4, $0x3e5b33b6
DATA c_g4<>+12(SB)/4, $0x3e5b33b6
DATA c_g4<>+16(SB)/4, $0x3e5b33b6
DATA c_g4<>+20(SB)/4, $0x3e5b33b6
DATA c_g4<>+24(SB)/4, $0x3e5b33b6
DATA c_g4<>+28(SB)/4, $0x3e5b33b6
GLOBL c_g4<>(SB), RODATA|NOPTR, $32

// EXP8 replaces the 8 floats in X by exp(X). N, T, U, M are scratch.
#define EXP8(X, N, T, U, M) \
	VCMPPS       $1, c_lo<>(SB), X, M; \
	VMINPS       c_hi<>(SB), X, X; \
	VMAXPS       c_lo<>(SB), X, X; \
	VMULPS       c_log2e<>(SB), X, N; \
	VROUNDPS     $0, N, N; \
	VFNMADD231PS c_ln2hi<>(SB), N, X; \
	VFNMADD231PS c_ln2lo<>(SB), N, X; \
	VMULPS       X, X, T; \
	VMOVUPS      c_p0<>(SB), U; \
	VFMADD213PS  c_p1<>(SB), X, U; \
	VFMADD213PS  c_p2<>(SB), X, U; \
	VFMADD213PS  c_p3<>(SB), X, U; \
	VFMADD213PS  c_p4<>(SB), X, U; \
	VFMADD213PS  c_p5<>(SB), X, U; \
	VFMADD213PS  X, T, U; \
	VADDPS       c_one<>(SB), U, X; \
	VCVTPS2DQ    N, N; \
	VPSLLD       $23, N, N; \
	VPADDD       c_one<>(SB), N, N; \
	VMULPS       N, X, X; \
	VANDNPS      X, M, X

// HSUM8 leaves in the low float of XR the sum of the 8 floats of YR, as
// ((y0+y1)+(y2+y3)) + ((y4+y5)+(y6+y7)) — the same association as the
// four-row reduction in dotRowsAVX2. XT is scratch.
#define HSUM8(YR, XR, XT) \
	VHADDPS      YR, YR, YR; \
	VHADDPS      YR, YR, YR; \
	VEXTRACTF128 $1, YR, XT; \
	VADDSS       XT, XR, XR

// func expSumAVX2(x *float32, n int, shift float32) float32
// x[i] = exp(x[i] − shift); returns the sum of the new x.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y15
	VXORPS       Y14, Y14, Y14
	SHRQ         $3, CX
	JZ           expsum_done

expsum_loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y0, (SI)
	VADDPS  Y0, Y14, Y14
	ADDQ    $32, SI
	DECQ    CX
	JNZ     expsum_loop

expsum_done:
	HSUM8(Y14, X14, X13)
	VMOVSS X14, ret+24(FP)
	VZEROUPPER
	RET

// func sumExpAVX2(x *float32, n int, shift float32) float32
// Returns Σ exp(x[i] − shift); x is not written.
TEXT ·sumExpAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y15
	VXORPS       Y14, Y14, Y14
	SHRQ         $3, CX
	JZ           sumexp_done

sumexp_loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4)
	VADDPS  Y0, Y14, Y14
	ADDQ    $32, SI
	DECQ    CX
	JNZ     sumexp_loop

sumexp_done:
	HSUM8(Y14, X14, X13)
	VMOVSS X14, ret+24(FP)
	VZEROUPPER
	RET

// func expScaleAVX2(dst, x *float32, n int, shift, scale float32)
// dst[i] = exp(x[i] − shift)·scale.
TEXT ·expScaleAVX2(SB), NOSPLIT, $0-32
	MOVQ         dst+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS shift+24(FP), Y15
	VBROADCASTSS scale+28(FP), Y14
	SHRQ         $3, CX
	JZ           expscale_done

expscale_loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4)
	VMULPS  Y14, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     expscale_loop

expscale_done:
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
// n ≥ 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ    $32, SI
	SHRQ    $3, CX
	DECQ    CX
	JZ      max_done

max_loop:
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	DECQ   CX
	JNZ    max_loop

max_done:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSS       X0, ret+16(FP)
	VZEROUPPER
	RET

// func scaleAVX2(x *float32, n int, s float32)
// x[i] *= s.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y15
	SHRQ         $3, CX
	JZ           scale_done

scale_loop:
	VMULPS  (SI), Y15, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     scale_loop

scale_done:
	VZEROUPPER
	RET

// func addAVX2(dst, src *float32, n int)
// dst[i] += src[i].
TEXT ·addAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   add_done

add_loop:
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     add_loop

add_done:
	VZEROUPPER
	RET

// func mulAddAVX2(dst, a, b *float32, n int)
// dst[i] += a[i]·b[i], fused.
TEXT ·mulAddAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   muladd_done

muladd_loop:
	VMOVUPS     (DI), Y0
	VMOVUPS     (SI), Y1
	VFMADD231PS (DX), Y1, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, DI
	DECQ        CX
	JNZ         muladd_loop

muladd_done:
	VZEROUPPER
	RET

// func geluAVX2(dst, x *float32, n int)
// dst = x/(1 + exp(−2·√(2/π)·(x + 0.044715x³))) = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   gelu_done

gelu_loop:
	VMOVUPS     (SI), Y5
	VMULPS      Y5, Y5, Y6
	VMOVUPS     c_g1<>(SB), Y0
	VFMADD231PS c_g2<>(SB), Y6, Y0
	VMULPS      Y5, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4)
	VADDPS      c_one<>(SB), Y0, Y0
	VDIVPS      Y0, Y5, Y5
	VMOVUPS     Y5, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         gelu_loop

gelu_done:
	VZEROUPPER
	RET

// func geluGradAVX2(dst, x, grad *float32, n int)
// With e = exp(−2·√(2/π)·(x + 0.044715x³)), s = 1/(1 + e) and t = e·s = 1 − s:
// dst = g·s·(1 + x·t·(2√(2/π) + 6√(2/π)·0.044715·x²)), the derivative of GELU.
TEXT ·geluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ grad+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   geluGrad_done

geluGrad_loop:
	VMOVUPS     (SI), Y5
	VMULPS      Y5, Y5, Y6
	VMOVUPS     c_g1<>(SB), Y0
	VFMADD231PS c_g2<>(SB), Y6, Y0
	VMULPS      Y5, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS     c_g3<>(SB), Y7
	VFMADD231PS c_g4<>(SB), Y6, Y7
	VADDPS      c_one<>(SB), Y0, Y1
	VMOVUPS     c_one<>(SB), Y8
	VDIVPS      Y1, Y8, Y8
	VMULPS      Y8, Y0, Y0
	VMULPS      Y5, Y0, Y0
	VMULPS      Y7, Y0, Y0
	VADDPS      c_one<>(SB), Y0, Y0
	VMULPS      Y8, Y0, Y0
	VMULPS      (DX), Y0, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, DI
	DECQ        CX
	JNZ         geluGrad_loop

geluGrad_done:
	VZEROUPPER
	RET

// DOTROWS: the row loop of dotRowsAVX2. In: DI = dst, CX = n, SI = x,
// DX = k in bytes (a multiple of 32), R8 = m, R9 = ldm in bytes, Y15 = alpha
// in every lane. Clobbers AX, CX, DI, R8, R11-R13, Y0-Y5. Once per function
// (it has labels).
#define DOTROWS \
dot_rows4: \
	CMPQ   CX, $4; \
	JL     dot_rows1; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	LEAQ   (R8)(R9*1), R11; \
	LEAQ   (R11)(R9*1), R12; \
	LEAQ   (R12)(R9*1), R13; \
	XORQ   AX, AX; \
dot_inner4: \
	VMOVUPS     (SI)(AX*1), Y4; \
	VFMADD231PS (R8)(AX*1), Y4, Y0; \
	VFMADD231PS (R11)(AX*1), Y4, Y1; \
	VFMADD231PS (R12)(AX*1), Y4, Y2; \
	VFMADD231PS (R13)(AX*1), Y4, Y3; \
	ADDQ        $32, AX; \
	CMPQ        AX, DX; \
	JL          dot_inner4; \
	VHADDPS      Y1, Y0, Y4; \
	VHADDPS      Y3, Y2, Y5; \
	VHADDPS      Y5, Y4, Y4; \
	VEXTRACTF128 $1, Y4, X5; \
	VADDPS       X5, X4, X4; \
	VMULPS       X15, X4, X4; \
	VMOVUPS      X4, (DI); \
	ADDQ         $16, DI; \
	LEAQ         (R13)(R9*1), R8; \
	SUBQ         $4, CX; \
	JMP          dot_rows4; \
dot_rows1: \
	TESTQ  CX, CX; \
	JZ     dot_done; \
	VXORPS Y0, Y0, Y0; \
	XORQ   AX, AX; \
dot_inner1: \
	VMOVUPS     (SI)(AX*1), Y4; \
	VFMADD231PS (R8)(AX*1), Y4, Y0; \
	ADDQ        $32, AX; \
	CMPQ        AX, DX; \
	JL          dot_inner1; \
	HSUM8(Y0, X0, X5); \
	VMULSS X15, X0, X0; \
	VMOVSS X0, (DI); \
	ADDQ   $4, DI; \
	ADDQ   R9, R8; \
	DECQ   CX; \
	JMP    dot_rows1; \
dot_done:

// AXPYROWS: the body of axpyRowsAVX2. In: DI = dst, DX = k (floats, a
// multiple of 8), SI = coef, R9 = inc in bytes, R8 = m, R10 = ldm in bytes,
// CX = n, BX = add. Clobbers DI, DX, R8, R11-R13, Y0-Y11. Once per
// function.
#define AXPYROWS \
axpy_block32: \
	CMPQ   DX, $32; \
	JL     axpy_block16; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	MOVQ   SI, R11; \
	MOVQ   R8, R12; \
	MOVQ   CX, R13; \
axpy_j32x2: \
	CMPQ         R13, $2; \
	JL           axpy_j32tail; \
	VBROADCASTSS (R11), Y8; \
	ADDQ         R9, R11; \
	VBROADCASTSS (R11), Y9; \
	ADDQ         R9, R11; \
	VFMADD231PS  (R12), Y8, Y0; \
	VFMADD231PS  32(R12), Y8, Y1; \
	VFMADD231PS  64(R12), Y8, Y2; \
	VFMADD231PS  96(R12), Y8, Y3; \
	ADDQ         R10, R12; \
	VFMADD231PS  (R12), Y9, Y4; \
	VFMADD231PS  32(R12), Y9, Y5; \
	VFMADD231PS  64(R12), Y9, Y6; \
	VFMADD231PS  96(R12), Y9, Y7; \
	ADDQ         R10, R12; \
	SUBQ         $2, R13; \
	JMP          axpy_j32x2; \
axpy_j32tail: \
	TESTQ        R13, R13; \
	JZ           axpy_sum32; \
	VBROADCASTSS (R11), Y8; \
	VFMADD231PS  (R12), Y8, Y0; \
	VFMADD231PS  32(R12), Y8, Y1; \
	VFMADD231PS  64(R12), Y8, Y2; \
	VFMADD231PS  96(R12), Y8, Y3; \
axpy_sum32: \
	VADDPS Y4, Y0, Y0; \
	VADDPS Y5, Y1, Y1; \
	VADDPS Y6, Y2, Y2; \
	VADDPS Y7, Y3, Y3; \
	TESTQ  BX, BX; \
	JZ     axpy_store32; \
	VADDPS (DI), Y0, Y0; \
	VADDPS 32(DI), Y1, Y1; \
	VADDPS 64(DI), Y2, Y2; \
	VADDPS 96(DI), Y3, Y3; \
axpy_store32: \
	VMOVUPS Y0, (DI); \
	VMOVUPS Y1, 32(DI); \
	VMOVUPS Y2, 64(DI); \
	VMOVUPS Y3, 96(DI); \
	ADDQ    $128, DI; \
	ADDQ    $128, R8; \
	SUBQ    $32, DX; \
	JMP     axpy_block32; \
axpy_block16: \
	CMPQ   DX, $16; \
	JL     axpy_block8; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	MOVQ   SI, R11; \
	MOVQ   R8, R12; \
	MOVQ   CX, R13; \
axpy_j16x4: \
	CMPQ         R13, $4; \
	JL           axpy_j16tail; \
	VBROADCASTSS (R11), Y8; \
	ADDQ         R9, R11; \
	VBROADCASTSS (R11), Y9; \
	ADDQ         R9, R11; \
	VBROADCASTSS (R11), Y10; \
	ADDQ         R9, R11; \
	VBROADCASTSS (R11), Y11; \
	ADDQ         R9, R11; \
	VFMADD231PS  (R12), Y8, Y0; \
	VFMADD231PS  32(R12), Y8, Y1; \
	ADDQ         R10, R12; \
	VFMADD231PS  (R12), Y9, Y2; \
	VFMADD231PS  32(R12), Y9, Y3; \
	ADDQ         R10, R12; \
	VFMADD231PS  (R12), Y10, Y4; \
	VFMADD231PS  32(R12), Y10, Y5; \
	ADDQ         R10, R12; \
	VFMADD231PS  (R12), Y11, Y6; \
	VFMADD231PS  32(R12), Y11, Y7; \
	ADDQ         R10, R12; \
	SUBQ         $4, R13; \
	JMP          axpy_j16x4; \
axpy_j16tail: \
	TESTQ        R13, R13; \
	JZ           axpy_sum16; \
	VBROADCASTSS (R11), Y8; \
	VFMADD231PS  (R12), Y8, Y0; \
	VFMADD231PS  32(R12), Y8, Y1; \
	ADDQ         R9, R11; \
	ADDQ         R10, R12; \
	DECQ         R13; \
	JMP          axpy_j16tail; \
axpy_sum16: \
	VADDPS Y2, Y0, Y0; \
	VADDPS Y3, Y1, Y1; \
	VADDPS Y6, Y4, Y4; \
	VADDPS Y7, Y5, Y5; \
	VADDPS Y4, Y0, Y0; \
	VADDPS Y5, Y1, Y1; \
	TESTQ  BX, BX; \
	JZ     axpy_store16; \
	VADDPS (DI), Y0, Y0; \
	VADDPS 32(DI), Y1, Y1; \
axpy_store16: \
	VMOVUPS Y0, (DI); \
	VMOVUPS Y1, 32(DI); \
	ADDQ    $64, DI; \
	ADDQ    $64, R8; \
	SUBQ    $16, DX; \
	JMP     axpy_block16; \
axpy_block8: \
	CMPQ   DX, $8; \
	JL     axpy_done; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	MOVQ   SI, R11; \
	MOVQ   R8, R12; \
	MOVQ   CX, R13; \
axpy_j8x4: \
	CMPQ         R13, $4; \
	JL           axpy_j8tail; \
	VBROADCASTSS (R11), Y8; \
	ADDQ         R9, R11; \
	VBROADCASTSS (R11), Y9; \
	ADDQ         R9, R11; \
	VBROADCASTSS (R11), Y10; \
	ADDQ         R9, R11; \
	VBROADCASTSS (R11), Y11; \
	ADDQ         R9, R11; \
	VFMADD231PS  (R12), Y8, Y0; \
	ADDQ         R10, R12; \
	VFMADD231PS  (R12), Y9, Y1; \
	ADDQ         R10, R12; \
	VFMADD231PS  (R12), Y10, Y2; \
	ADDQ         R10, R12; \
	VFMADD231PS  (R12), Y11, Y3; \
	ADDQ         R10, R12; \
	SUBQ         $4, R13; \
	JMP          axpy_j8x4; \
axpy_j8tail: \
	TESTQ        R13, R13; \
	JZ           axpy_sum8; \
	VBROADCASTSS (R11), Y8; \
	VFMADD231PS  (R12), Y8, Y0; \
	ADDQ         R9, R11; \
	ADDQ         R10, R12; \
	DECQ         R13; \
	JMP          axpy_j8tail; \
axpy_sum8: \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	TESTQ  BX, BX; \
	JZ     axpy_store8; \
	VADDPS (DI), Y0, Y0; \
axpy_store8: \
	VMOVUPS Y0, (DI); \
	ADDQ    $32, DI; \
	ADDQ    $32, R8; \
	SUBQ    $8, DX; \
	JMP     axpy_block8; \
axpy_done:

// func dotRowsAVX2(dst *float32, n int, x *float32, k int, m *float32, ldm int, alpha float32)
// dst[j] = alpha·Σ_c x[c]·m[j·ldm + c] for j < n, c < k (k a multiple of 8).
// Rows go four at a time; each keeps one 8-lane FMA accumulator over c, and
// the horizontal sums associate as HSUM8 does, so a row's result does not
// depend on whether it fell in a group of four or in the tail.
TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-52
	MOVQ         dst+0(FP), DI
	MOVQ         n+8(FP), CX
	MOVQ         x+16(FP), SI
	MOVQ         k+24(FP), DX
	MOVQ         m+32(FP), R8
	MOVQ         ldm+40(FP), R9
	VBROADCASTSS alpha+48(FP), Y15
	SHLQ         $2, DX
	SHLQ         $2, R9

	DOTROWS
	VZEROUPPER
	RET

// func axpyRowsAVX2(dst *float32, k int, coef *float32, inc int, m *float32, ldm int, n int, add int)
// dst[c] = (add ≠ 0 ? dst[c] : 0) + Σ_j coef[j·inc]·m[j·ldm + c] for c < k
// (a multiple of 8), j < n. A single chain of FMAs over j would be bound by
// the FMA latency (n·4 cycles), so the terms are spread over independent
// accumulator sets by j mod S — S = 2 for column blocks of 32, S = 4 for
// blocks of 16 and of 8 — each summed in increasing j, and the sets are
// added at the end: for S = 4 as ((s0 + s1) + (s2 + s3)), then dst is
// added (when add ≠ 0). Column blocks: 32 while they fit, then 16, then 8.
TEXT ·axpyRowsAVX2(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ k+8(FP), DX
	MOVQ coef+16(FP), SI
	MOVQ inc+24(FP), R9
	MOVQ m+32(FP), R8
	MOVQ ldm+40(FP), R10
	MOVQ n+48(FP), CX
	MOVQ add+56(FP), BX
	SHLQ $2, R9
	SHLQ $2, R10

	AXPYROWS
	VZEROUPPER
	RET

// func softmaxGradAVX2(ds, p, dp *float32, n int, scale float32)
// D = Σ p[i]·dp[i]; ds[i] = p[i]·(dp[i] − D)·scale.
TEXT ·softmaxGradAVX2(SB), NOSPLIT, $0-36
	MOVQ   ds+0(FP), DI
	MOVQ   p+8(FP), SI
	MOVQ   dp+16(FP), DX
	MOVQ   n+24(FP), CX
	SHRQ   $3, CX
	JZ     smg_done
	VXORPS Y0, Y0, Y0
	MOVQ   SI, R8
	MOVQ   DX, R9
	MOVQ   CX, R10

smg_sum:
	VMOVUPS     (R8), Y1
	VFMADD231PS (R9), Y1, Y0
	ADDQ        $32, R8
	ADDQ        $32, R9
	DECQ        R10
	JNZ         smg_sum
	HSUM8(Y0, X0, X1)
	VBROADCASTSS X0, Y0
	VBROADCASTSS scale+32(FP), Y15

smg_loop:
	VMOVUPS (DX), Y1
	VSUBPS  Y0, Y1, Y1
	VMULPS  (SI), Y1, Y1
	VMULPS  Y15, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     smg_loop

smg_done:
	VZEROUPPER
	RET

// func sumAVX2(x *float32, n int) float32
TEXT ·sumAVX2(SB), NOSPLIT, $0-20
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPS Y0, Y0, Y0
	SHRQ   $3, CX
	JZ     sum_done

sum_loop:
	VADDPS (SI), Y0, Y0
	ADDQ   $32, SI
	DECQ   CX
	JNZ    sum_loop

sum_done:
	HSUM8(Y0, X0, X1)
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func sumSqDevAVX2(x *float32, n int, mu float32) float32
// Returns Σ (x[i] − mu)².
TEXT ·sumSqDevAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS mu+16(FP), Y15
	VXORPS       Y0, Y0, Y0
	SHRQ         $3, CX
	JZ           ssd_done

ssd_loop:
	VMOVUPS     (SI), Y1
	VSUBPS      Y15, Y1, Y1
	VFMADD231PS Y1, Y1, Y0
	ADDQ        $32, SI
	DECQ        CX
	JNZ         ssd_loop

ssd_done:
	HSUM8(Y0, X0, X1)
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func lnApplyAVX2(xh, y, x, gain, b *float32, n int, mu, r float32)
// xh = (x − mu)·r; y = xh·g + b (fused).
TEXT ·lnApplyAVX2(SB), NOSPLIT, $0-56
	MOVQ         xh+0(FP), DI
	MOVQ         y+8(FP), R8
	MOVQ         x+16(FP), SI
	MOVQ         gain+24(FP), R9
	MOVQ         b+32(FP), R10
	MOVQ         n+40(FP), CX
	VBROADCASTSS mu+48(FP), Y15
	VBROADCASTSS r+52(FP), Y14
	SHRQ         $3, CX
	JZ           lna_done

lna_loop:
	VMOVUPS     (SI), Y0
	VSUBPS      Y15, Y0, Y0
	VMULPS      Y14, Y0, Y0
	VMOVUPS     Y0, (DI)
	VMOVUPS     (R10), Y1
	VFMADD231PS (R9), Y0, Y1
	VMOVUPS     Y1, (R8)
	ADDQ        $32, SI
	ADDQ        $32, DI
	ADDQ        $32, R8
	ADDQ        $32, R9
	ADDQ        $32, R10
	DECQ        CX
	JNZ         lna_loop

lna_done:
	VZEROUPPER
	RET

// func lnGradSumsAVX2(dy, gain, xh *float32, n int) (m1, m2 float32)
// m1 = Σ dy·g, m2 = Σ dy·g·xh.
TEXT ·lnGradSumsAVX2(SB), NOSPLIT, $0-40
	MOVQ   dy+0(FP), SI
	MOVQ   gain+8(FP), DX
	MOVQ   xh+16(FP), R8
	MOVQ   n+24(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	SHRQ   $3, CX
	JZ     lngs_done

lngs_loop:
	VMOVUPS     (SI), Y2
	VMULPS      (DX), Y2, Y2
	VADDPS      Y2, Y0, Y0
	VFMADD231PS (R8), Y2, Y1
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, R8
	DECQ        CX
	JNZ         lngs_loop

lngs_done:
	HSUM8(Y0, X0, X2)
	HSUM8(Y1, X1, X2)
	VMOVSS X0, m1+32(FP)
	VMOVSS X1, m2+36(FP)
	VZEROUPPER
	RET

// func lnGradApplyAVX2(dx, dy, gain, xh *float32, n int, r, m1, m2 float32)
// dx = r·(dy·g − m1 − xh·m2).
TEXT ·lnGradApplyAVX2(SB), NOSPLIT, $0-52
	MOVQ         dx+0(FP), DI
	MOVQ         dy+8(FP), SI
	MOVQ         gain+16(FP), DX
	MOVQ         xh+24(FP), R8
	MOVQ         n+32(FP), CX
	VBROADCASTSS r+40(FP), Y15
	VBROADCASTSS m1+44(FP), Y14
	VBROADCASTSS m2+48(FP), Y13
	SHRQ         $3, CX
	JZ           lnga_done

lnga_loop:
	VMOVUPS      (SI), Y0
	VMULPS       (DX), Y0, Y0
	VSUBPS       Y14, Y0, Y0
	VMOVUPS      (R8), Y1
	VFNMADD231PS Y13, Y1, Y0
	VMULPS       Y15, Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, R8
	ADDQ         $32, DI
	DECQ         CX
	JNZ          lnga_loop

lnga_done:
	VZEROUPPER
	RET

// func adamwAVX2(w, grad, m, v *float32, n int, c *[8]float32)
// c = {β₁, 1−β₁, β₂, 1−β₂, √(1−β₂ᵗ), ε, 1−lr·λ, lr/(1−β₁ᵗ)}. Per element,
// with every product and sum rounded separately (no FMA), exactly as the
// scalar Go update in package train:
//
//	m = β₁·m + (1−β₁)·g;  v = β₂·v + ((1−β₂)·g)·g
//	w = w·(1−lr·λ) − (step·m)/(√v/√(1−β₂ᵗ) + ε)
TEXT ·adamwAVX2(SB), NOSPLIT, $0-48
	MOVQ         w+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         m+16(FP), R8
	MOVQ         v+24(FP), R9
	MOVQ         n+32(FP), CX
	MOVQ         c+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	VBROADCASTSS 28(AX), Y15
	SHRQ         $3, CX
	JZ           adamw_done

adamw_loop:
	VMOVUPS (SI), Y0
	VMULPS  (R8), Y8, Y1
	VMULPS  Y0, Y9, Y2
	VADDPS  Y2, Y1, Y1
	VMOVUPS Y1, (R8)
	VMULPS  (R9), Y10, Y3
	VMULPS  Y0, Y11, Y2
	VMULPS  Y0, Y2, Y2
	VADDPS  Y2, Y3, Y3
	VMOVUPS Y3, (R9)
	VSQRTPS Y3, Y3
	VDIVPS  Y12, Y3, Y3
	VADDPS  Y13, Y3, Y3
	VMULPS  Y1, Y15, Y1
	VDIVPS  Y3, Y1, Y1
	VMULPS  (DI), Y14, Y4
	VSUBPS  Y1, Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     adamw_loop

adamw_done:
	VZEROUPPER
	RET

// func sumSqAVX2(x *float32, n int) float64
// Returns Σ x[i]² in float64 (each square is exact in float64), with two
// 4-lane accumulators.
TEXT ·sumSqAVX2(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	SHRQ   $3, CX
	JZ     sumsq_done

sumsq_loop:
	VCVTPS2PD   (SI), Y2
	VCVTPS2PD   16(SI), Y3
	VFMADD231PD Y2, Y2, Y0
	VFMADD231PD Y3, Y3, Y1
	ADDQ        $32, SI
	DECQ        CX
	JNZ         sumsq_loop

sumsq_done:
	VADDPD       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VHADDPD      X0, X0, X0
	VMOVSD       X0, ret+16(FP)
	VZEROUPPER
	RET

// func attnRowAVX2(row *float32, tp, n int, q, k, v *float32, dh int, out *float32, scale float32)
// One query row of causal attention, over one head's packed K and V (rows
// dh floats apart), with the arithmetic of DotRows, Max, ExpSum, Scale and
// AxpyRows in turn:
//
//	row[j] = scale·(q·k_j) for j < n, −Inf for n ≤ j < tp (tp a multiple of 8)
//	row ← exp(row − max row)·(1/Σ exp(row − max row))
//	out = Σ_{j<n} row[j]·v_j
TEXT ·attnRowAVX2(SB), NOSPLIT, $0-68
	MOVQ         row+0(FP), DI
	MOVQ         n+16(FP), CX
	MOVQ         q+24(FP), SI
	MOVQ         dh+48(FP), DX
	SHLQ         $2, DX
	MOVQ         k+32(FP), R8
	MOVQ         DX, R9
	VBROADCASTSS scale+64(FP), Y15
	DOTROWS

	// −Inf beyond the diagonal (DI points at row[n]).
	MOVQ tp+8(FP), CX
	SUBQ n+16(FP), CX
	JZ   attn_max
	MOVL $0xff800000, AX

attn_fill:
	MOVL AX, (DI)
	ADDQ $4, DI
	DECQ CX
	JNZ  attn_fill

attn_max:
	MOVQ    row+0(FP), SI
	MOVQ    tp+8(FP), CX
	SHRQ    $3, CX
	VMOVUPS (SI), Y0
	ADDQ    $32, SI
	DECQ    CX
	JZ      attn_max_done

attn_max_loop:
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	DECQ   CX
	JNZ    attn_max_loop

attn_max_done:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VBROADCASTSS X0, Y14

	// exp(row − max) and its sum.
	MOVQ   row+0(FP), SI
	MOVQ   tp+8(FP), CX
	SHRQ   $3, CX
	VXORPS Y13, Y13, Y13

attn_exp:
	VMOVUPS (SI), Y0
	VSUBPS  Y14, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4)
	VMOVUPS Y0, (SI)
	VADDPS  Y0, Y13, Y13
	ADDQ    $32, SI
	DECQ    CX
	JNZ     attn_exp
	HSUM8(Y13, X13, X12)
	VMOVSS       c_one<>(SB), X12
	VDIVSS       X13, X12, X12
	VBROADCASTSS X12, Y12

	// Normalise.
	MOVQ row+0(FP), SI
	MOVQ tp+8(FP), CX
	SHRQ $3, CX

attn_scale:
	VMULPS  (SI), Y12, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     attn_scale

	// out = Σ_{j<n} row[j]·v_j.
	MOVQ out+56(FP), DI
	MOVQ dh+48(FP), DX
	MOVQ row+0(FP), SI
	MOVQ $4, R9
	MOVQ v+40(FP), R8
	MOVQ DX, R10
	SHLQ $2, R10
	MOVQ n+16(FP), CX
	XORQ BX, BX
	AXPYROWS
	VZEROUPPER
	RET

// func attnRowGradAVX2(ds, p *float32, tp, n int, gy, v, k *float32, dh int, dq *float32, scale float32)
// The backward pass of one query row, with the arithmetic of DotRows,
// SoftmaxGrad and AxpyRows in turn (K and V packed, rows dh floats apart):
//
//	ds[j] = gy·v_j for j < n, 0 for n ≤ j < tp         (dP)
//	ds[j] = p[j]·(ds[j] − Σ_i p[i]·ds[i])·scale         (dS)
//	dq = Σ_{j<n} ds[j]·k_j
TEXT ·attnRowGradAVX2(SB), NOSPLIT, $0-76
	MOVQ         ds+0(FP), DI
	MOVQ         n+24(FP), CX
	MOVQ         gy+32(FP), SI
	MOVQ         dh+56(FP), DX
	SHLQ         $2, DX
	MOVQ         v+40(FP), R8
	MOVQ         DX, R9
	VBROADCASTSS c_one<>(SB), Y15
	DOTROWS

	// Zeros beyond the diagonal (DI points at ds[n]).
	MOVQ tp+16(FP), CX
	SUBQ n+24(FP), CX
	JZ   ag_sum
	XORL AX, AX

ag_fill:
	MOVL AX, (DI)
	ADDQ $4, DI
	DECQ CX
	JNZ  ag_fill

ag_sum:
	MOVQ   ds+0(FP), DX
	MOVQ   p+8(FP), SI
	MOVQ   tp+16(FP), CX
	SHRQ   $3, CX
	VXORPS Y0, Y0, Y0
	MOVQ   SI, R8
	MOVQ   DX, R9
	MOVQ   CX, R10

ag_sum_loop:
	VMOVUPS     (R8), Y1
	VFMADD231PS (R9), Y1, Y0
	ADDQ        $32, R8
	ADDQ        $32, R9
	DECQ        R10
	JNZ         ag_sum_loop
	HSUM8(Y0, X0, X1)
	VBROADCASTSS X0, Y0
	VBROADCASTSS scale+72(FP), Y15
	MOVQ         DX, DI

ag_ds:
	VMOVUPS (DX), Y1
	VSUBPS  Y0, Y1, Y1
	VMULPS  (SI), Y1, Y1
	VMULPS  Y15, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     ag_ds

	// dq = Σ_{j<n} ds[j]·k_j.
	MOVQ dq+64(FP), DI
	MOVQ dh+56(FP), DX
	MOVQ ds+0(FP), SI
	MOVQ $4, R9
	MOVQ k+48(FP), R8
	MOVQ DX, R10
	SHLQ $2, R10
	MOVQ n+24(FP), CX
	XORQ BX, BX
	AXPYROWS
	VZEROUPPER
	RET
