package par

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// For runs fn over [0, n), cut into contiguous chunks [lo, hi) that the
// calling goroutine and up to GOMAXPROCS−1 helpers take in turn, about four
// per participant so that the load balances when a core is busy with
// something else. It returns when every chunk is done. With GOMAXPROCS 1,
// or n ≤ 1, it calls fn(0, n) on the calling goroutine (and nothing when
// n ≤ 0).
//
// For may be called from several goroutines at once and from inside fn.
// The caller works on its own loop's chunks and waits only for chunks that
// another goroutine has started, so a loop finishes even when every helper
// is busy elsewhere.
//
// Determinism is fn's part of the contract: fn must compute each index's
// results independently of how [0, n) is cut into chunks (partition the
// outputs, never split a reduction across chunks). Which goroutine runs a
// chunk, and how many take part, then cannot change any result.
func For(n int, fn func(lo, hi int)) {
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
		case queue <- l:
		default: // the helpers are backed up: the caller does the work
		}
	}
	l.work()
	// The chunks still running were taken by helpers that are at most one
	// chunk from done, so the caller polls (yielding the processor) rather
	// than parks: waking a parked goroutine costs as much as a chunk.
	for i := 0; l.left.Load() > 0; i++ {
		if i&63 == 63 {
			runtime.Gosched()
		}
	}
}

// loop is one For call. A helper that takes it from the queue after its
// chunks are gone finds none left and drops it.
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

// The helpers read loops from one queue. They start on first use, never
// exit, and number GOMAXPROCS−1 at the most GOMAXPROCS seen by For.
var (
	helperMu sync.Mutex
	helpers  int
	queue    = make(chan *loop, 256)
)

// spinFor is how long an idle helper polls the queue before parking:
// longer than the gap between two loops of a training step, shorter than a
// step, so that helpers stay awake through a step and sleep between runs.
const spinFor = 200 * time.Microsecond

func ensureHelpers(n int) {
	helperMu.Lock()
	for ; helpers < n; helpers++ {
		go helper()
	}
	helperMu.Unlock()
}

func helper() {
	for {
		l, ok := poll()
		if !ok {
			l = <-queue
		}
		l.work()
	}
}

// poll takes a loop from the queue, trying for up to spinFor and yielding
// the processor between tries so that other goroutines still run.
func poll() (*loop, bool) {
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case l := <-queue:
			return l, true
		default:
		}
		if i&63 == 63 {
			if time.Since(start) > spinFor {
				return nil, false
			}
			runtime.Gosched()
		}
	}
}
