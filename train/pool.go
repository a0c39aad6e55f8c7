package train

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Parallel loops. A step runs a few dozen of them, each a fraction of a
// millisecond long, so starting goroutines and waking parked ones (tens of
// microseconds on this VM) was a visible share of the step. parallelFor
// instead hands chunks to persistent helper goroutines that poll for work
// for a while before parking — the scheme of internal/gemm's worker pool —
// and the calling goroutine works on chunks too.
//
// Determinism: fn must compute each index's results independently of how
// [0, n) is cut into chunks (partition outputs, never split a reduction).
// Which goroutine runs a chunk, and how many there are, then cannot change
// any result.

// loop is one parallelFor call.
type loop struct {
	fn        func(lo, hi int)
	n, chunks int
	next      atomic.Int64 // next chunk to take
	left      atomic.Int64 // chunks not yet finished
}

// work runs chunks until none are left.
func (l *loop) work() {
	for {
		c := int(l.next.Add(1)) - 1
		if c >= l.chunks {
			return
		}
		l.fn(c*l.n/l.chunks, (c+1)*l.n/l.chunks)
		l.left.Add(-1)
	}
}

var (
	poolMu    sync.Mutex
	poolSize  int
	poolLoops = make(chan *loop, 256)
)

// helperSpin is how long an idle helper polls before parking: longer than
// the gap between two loops of a step, shorter than a step.
const helperSpin = 200 * time.Microsecond

func ensureHelpers(n int) {
	poolMu.Lock()
	for ; poolSize < n; poolSize++ {
		go helper()
	}
	poolMu.Unlock()
}

func helper() {
	for {
		l, ok := pollLoop()
		if !ok {
			l = <-poolLoops
		}
		l.work()
	}
}

// pollLoop polls the loop channel for up to helperSpin, yielding the
// processor between polls so that other goroutines still run.
func pollLoop() (*loop, bool) {
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case l := <-poolLoops:
			return l, true
		default:
		}
		if i&63 == 63 {
			if time.Since(start) > helperSpin {
				return nil, false
			}
			runtime.Gosched()
		}
	}
}

// parallelFor runs fn over [0, n), cut into contiguous chunks that the
// caller and up to GOMAXPROCS−1 helpers take in turn (about four per
// participant, for balance when a core is busy with something else). It
// returns when every chunk is done.
func parallelFor(n int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	l := &loop{fn: fn, n: n, chunks: min(n, 4*w)}
	l.left.Store(int64(l.chunks))
	ensureHelpers(w - 1)
	for range w - 1 {
		select {
		case poolLoops <- l:
		default: // helpers are backed up: do the work here
		}
	}
	l.work()
	for i := 0; l.left.Load() > 0; i++ {
		if i&63 == 63 {
			runtime.Gosched()
		}
	}
}
