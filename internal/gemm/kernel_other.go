//go:build !amd64 || !gc || purego

package gemm

// Without the amd64 assembly (other architectures, gccgo, or the purego
// build tag) only the pure-Go micro-kernel exists.
const haveAsm = false

func asmKernel(k int, a, b, c []float32, ldc int, alpha, beta float32) {
	panic("gemm: assembly kernel not built")
}
