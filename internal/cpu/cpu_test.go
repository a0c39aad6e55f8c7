package cpu

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestAgreesWithProcCPUInfo compares the CPUID answer with the flags Linux
// reports (an independent reading of the same bits, plus the OS support).
func TestAgreesWithProcCPUInfo(t *testing.T) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || runtime.GOARCH != "amd64" {
		t.Skip("needs Linux on amd64")
	}
	var flags []string
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = strings.Fields(v)
			break
		}
	}
	has := func(f string) bool {
		for _, x := range flags {
			if x == f {
				return true
			}
		}
		return false
	}
	// /proc/cpuinfo does not list OSXSAVE, so only the avx2 and fma bits are
	// compared; HasAVX2FMA may be false where they are listed (no OS support).
	want := has("avx2") && has("fma")
	if HasAVX2FMA && !want {
		t.Errorf("HasAVX2FMA is true but /proc/cpuinfo lacks avx2 or fma")
	}
	if !HasAVX2FMA && want && !strings.Contains(os.Getenv("GOFLAGS"), "purego") {
		t.Logf("HasAVX2FMA is false although /proc/cpuinfo lists avx2 and fma (purego build?)")
	}
}
