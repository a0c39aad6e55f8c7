//go:build amd64 && gc && !purego

package cpu

// cpuid executes CPUID with the given leaf (EAX) and sub-leaf (ECX).
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// xgetbv0 reads extended control register XCR0.
func xgetbv0() (eax, edx uint32)

// HasAVX2FMA reports whether the CPU has AVX2 and FMA3 and the OS saves the
// YMM registers on context switch. The bit positions are from the Intel SDM
// vol. 2A (CPUID leaf 1 ECX: FMA bit 12, OSXSAVE bit 27, AVX bit 28; leaf 7
// EBX: AVX2 bit 5) and vol. 1 §13.3 (XCR0 bits 1 and 2: SSE and AVX state).
var HasAVX2FMA = detect()

func detect() bool {
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
