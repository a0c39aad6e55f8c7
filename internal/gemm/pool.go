package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// threadSetting is the value given to SetThreads; 0 means GOMAXPROCS.
var threadSetting atomic.Int64

// SetThreads sets how many goroutines Sgemm may use per call. n < 1 restores
// the default, runtime.GOMAXPROCS(0). The thread count never changes results.
func SetThreads(n int) {
	if n < 1 {
		n = 0
	}
	threadSetting.Store(int64(n))
}

// Threads returns how many goroutines Sgemm may use per call.
func Threads() int {
	if n := threadSetting.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// maxHelpers bounds the helper goroutines one call can enlist.
const maxHelpers = 63

// A token invites a worker to help with one call. The caller may revoke it
// (when it has run out of chunks before any worker picked the token up);
// the generation number makes a stale token from a finished call harmless.
type token struct {
	cl   *call
	gen  uint64
	slot int
}

// Slot states, stored in the low two bits of call.slots[i] below gen<<2.
const (
	slotPosted  = 0
	slotClaimed = 1
	slotRevoked = 2
)

// Persistent workers read tokens from one shared channel. They are started
// lazily and never exit. After finishing a token a worker polls for the next
// one for spinFor before parking, because waking a parked goroutine on
// another core costs tens of microseconds on a VM — as long as a small GEMM.
// It yields (runtime.Gosched) between polls so that other goroutines still
// get the processor.
var (
	workerMu sync.Mutex
	nWorkers int
	tokens   = make(chan token, 4*maxHelpers)
	genSeq   atomic.Uint64
)

const spinFor = 100 * time.Microsecond

func ensureWorkers(n int) {
	workerMu.Lock()
	for ; nWorkers < n; nWorkers++ {
		go worker()
	}
	workerMu.Unlock()
}

func worker() {
	for {
		t, ok := pollToken()
		if !ok {
			t = <-tokens
		}
		cl := t.cl
		if !cl.slots[t.slot].CompareAndSwap(t.gen<<2|slotPosted, t.gen<<2|slotClaimed) {
			continue // revoked, or a token of an earlier call
		}
		s := scratches.get()
		cl.work(s)
		scratches.put(s)
		cl.finished.Add(1)
	}
}

// pollToken spins on the channel for up to spinFor, yielding the processor
// between polls so that other goroutines are not starved.
func pollToken() (token, bool) {
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case t := <-tokens:
			return t, true
		default:
		}
		if i&63 == 63 {
			if time.Since(start) > spinFor {
				return token{}, false
			}
			runtime.Gosched()
		}
	}
}

// freeList keeps up to cap(ch) values for reuse. Unlike sync.Pool it is not
// emptied by garbage collection, so packing buffers survive the frequent
// GCs of an allocation-heavy autograd loop and a steady-state Sgemm
// allocates nothing.
type freeList[T any] struct{ ch chan *T }

func newFreeList[T any](n int) freeList[T] { return freeList[T]{ch: make(chan *T, n)} }

func (f freeList[T]) get() *T {
	select {
	case x := <-f.ch:
		return x
	default:
		return new(T)
	}
}

func (f freeList[T]) put(x *T) {
	select {
	case f.ch <- x:
	default: // full: let the GC have it
	}
}

// Per-call state and per-goroutine packing space are recycled through
// free lists; 2·(maxHelpers+1) covers concurrent callers comfortably.
var (
	calls     = newFreeList[call](2 * (maxHelpers + 1))
	scratches = newFreeList[scratch](2 * (maxHelpers + 1))
)

// scratch is one goroutine's packing space.
type scratch struct {
	a    []float32 // packed op(A): one mc×kc block, or all of it
	b    []float32 // packed op(B): one kc×nc block, or all of it
	rowA []float32 // one packed mc×kc block of op(A) for row chunks
	colB []float32 // one packed kc×(chunk width) slice of op(B) for column chunks
	tile [mr * nr]float32
}

// grow returns buf resized to n elements, reallocating only when too small.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}
