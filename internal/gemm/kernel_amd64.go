//go:build amd64 && gc && !purego

package gemm

// cpuid executes CPUID with the given leaf (EAX) and sub-leaf (ECX).
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// xgetbv0 reads extended control register XCR0.
func xgetbv0() (eax, edx uint32)

// kernel6x16 computes the mr×nr tile C = alpha·(Apanel·Bpanel) + beta·C over
// k packed steps; see kernel_amd64.s. The caller guarantees that a holds
// k·mr floats, b holds k·nr floats and c addresses a full 6×16 tile with row
// stride ldc.
//
//go:noescape
func kernel6x16(k int, a, b, c *float32, ldc int, alpha, beta float32)

// hasAVX2FMA reports whether the CPU has AVX2 and FMA3 and the OS saves the
// YMM registers on context switch. The bit positions are from the Intel SDM
// vol. 2A (CPUID leaf 1 ECX: FMA bit 12, OSXSAVE bit 27, AVX bit 28; leaf 7
// EBX: AVX2 bit 5) and vol. 1 §13.3 (XCR0 bits 1 and 2: SSE and AVX state).
func hasAVX2FMA() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&0b110 != 0b110 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}

// haveAsm is fixed at start-up; useAsm may be turned off by tests.
var haveAsm = hasAVX2FMA()

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
