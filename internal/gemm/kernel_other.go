//go:build !amd64 || !gc || purego

package gemm

// Without the amd64 assembly (other architectures, gccgo, or the purego
// build tag) only the pure-Go micro-kernel exists.
const haveAsm = false

func asmKernel(k int, a, b, c []float32, ldc int, alpha, beta float32) {
	panic("gemm: assembly kernel not built")
}

func copy16(dst, src *float32, n, ld int)       { panic("gemm: assembly not built") }
func copy6(dst, src *float32, n, ld int)        { panic("gemm: assembly not built") }
func gather6(dst, src *float32, n, ld int)      { panic("gemm: assembly not built") }
func gather4(dst, src *float32, n, ld, ldd int) { panic("gemm: assembly not built") }
