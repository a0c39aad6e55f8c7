package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
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

// A task is one rectangle of C for one worker.
type task struct {
	call           *call
	i0, i1, j0, j1 int
}

// Persistent workers read tasks from one shared channel. They are started
// lazily and never exit; a parked worker costs a goroutine stack and nothing
// else.
var (
	workerMu sync.Mutex
	nWorkers int
	tasks    = make(chan task, 64)
)

func ensureWorkers(n int) {
	workerMu.Lock()
	for ; nWorkers < n; nWorkers++ {
		go worker()
	}
	workerMu.Unlock()
}

func worker() {
	for t := range tasks {
		s := scratchPool.Get().(*scratch)
		t.call.block(s, t.i0, t.i1, t.j0, t.j1)
		scratchPool.Put(s)
		t.call.done <- struct{}{}
	}
}

// maxDone bounds the number of helper tasks one call can wait for.
const maxDone = 256

// callPool recycles per-call state so that a steady-state Sgemm allocates
// nothing.
var callPool = sync.Pool{New: func() any {
	return &call{done: make(chan struct{}, maxDone)}
}}

// scratch is one goroutine's packing space.
type scratch struct {
	a    []float32 // packed block of op(A): mcMax × kc
	b    []float32 // packed block of op(B): kc × nc
	tile [mr * nr]float32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// grow returns buf resized to n elements, reallocating only when too small.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}
