//go:build amd64 && gc && !purego

package gemm

import "github.com/capsel/capsel/internal/cpu"

// kernel6x16 computes the mr×nr tile C = alpha·(Apanel·Bpanel) + beta·C over
// k packed steps; see kernel_amd64.s. The caller guarantees that a holds
// k·mr floats, b holds k·nr floats and c addresses a full 6×16 tile with row
// stride ldc.
//
//go:noescape
func kernel6x16(k int, a, b, c *float32, ldc int, alpha, beta float32)

// haveAsm is fixed at start-up; useAsm may be turned off by tests.
var haveAsm = cpu.HasAVX2FMA

// asmKernel runs the assembly micro-kernel on a full tile starting at c[0].
func asmKernel(k int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[k*mr-1]
	_ = b[k*nr-1]
	_ = c[(mr-1)*ldc+nr-1]
	kernel6x16(k, &a[0], &b[0], &c[0], ldc, alpha, beta)
}

// Packing moves; see pack_amd64.s. Lengths are checked by the callers in
// pack.go.

//go:noescape
func copy16(dst, src *float32, n, ld int)

//go:noescape
func copy6(dst, src *float32, n, ld int)

//go:noescape
func gather6(dst, src *float32, n, ld int)

//go:noescape
func gather4(dst, src *float32, n, ld, ldd int)
