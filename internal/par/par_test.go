package par

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// withProcs runs f at GOMAXPROCS n and restores the setting.
func withProcs(n int, f func()) {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	f()
}

// cover runs For over n and checks that the chunks are non-empty,
// contiguous, disjoint and cover [0, n) exactly once.
func cover(t *testing.T, n int) {
	t.Helper()
	hits := make([]atomic.Int32, max(n, 0))
	var calls atomic.Int32
	For(n, func(lo, hi int) {
		calls.Add(1)
		if lo < 0 || hi > n || lo >= hi {
			t.Errorf("n=%d: chunk [%d, %d)", n, lo, hi)
			return
		}
		for i := lo; i < hi; i++ {
			hits[i].Add(1)
		}
	})
	for i := range hits {
		if h := hits[i].Load(); h != 1 {
			t.Fatalf("n=%d GOMAXPROCS=%d: index %d run %d times", n, runtime.GOMAXPROCS(0), i, h)
		}
	}
	if n <= 0 && calls.Load() != 0 {
		t.Errorf("n=%d: fn called %d times, want never", n, calls.Load())
	}
}

func TestForCoversEachIndexOnce(t *testing.T) {
	for _, procs := range []int{1, 2, 3, 4, 7} {
		withProcs(procs, func() {
			for _, n := range []int{-3, 0, 1, 2, 3, 5, 8, 9, 31, 100, 1000} {
				cover(t, n)
			}
		})
	}
}

// TestForSerialOnOneProc: with GOMAXPROCS 1 (or one index) fn runs once,
// over everything, on the calling goroutine.
func TestForSerialOnOneProc(t *testing.T) {
	withProcs(1, func() {
		var got [][2]int
		For(10, func(lo, hi int) { got = append(got, [2]int{lo, hi}) })
		if len(got) != 1 || got[0] != [2]int{0, 10} {
			t.Errorf("GOMAXPROCS 1: chunks %v, want [[0 10]]", got)
		}
	})
	withProcs(4, func() {
		var got [][2]int
		For(1, func(lo, hi int) { got = append(got, [2]int{lo, hi}) })
		if len(got) != 1 || got[0] != [2]int{0, 1} {
			t.Errorf("n = 1: chunks %v, want [[0 1]]", got)
		}
	})
}

// TestForNested calls For from inside fn, as a caller on a helper would.
func TestForNested(t *testing.T) {
	withProcs(4, func() {
		const outer, inner = 13, 29
		var sum atomic.Int64
		For(outer, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				For(inner, func(lo, hi int) {
					for j := lo; j < hi; j++ {
						sum.Add(int64(i*inner + j))
					}
				})
			}
		})
		n := int64(outer * inner)
		if want := n * (n - 1) / 2; sum.Load() != want {
			t.Errorf("nested sum %d, want %d", sum.Load(), want)
		}
	})
}

// TestForConcurrentCallers runs many loops at once from several goroutines
// (spago runs backward functions concurrently) and checks each result.
func TestForConcurrentCallers(t *testing.T) {
	withProcs(3, func() {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := 50 + 17*g
				for rep := range 20 {
					out := make([]int, n)
					For(n, func(lo, hi int) {
						for i := lo; i < hi; i++ {
							out[i] = i*g + rep
						}
					})
					for i, v := range out {
						if v != i*g+rep {
							errs <- fmt.Errorf("caller %d rep %d: out[%d] = %d", g, rep, i, v)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func BenchmarkFor(b *testing.B) {
	data := make([]float64, 4096)
	for b.Loop() {
		For(len(data), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				data[i] += 1
			}
		})
	}
}
