package probe

import (
	"context"
	"slices"
	"sync"
	"time"
)

// limiter holds the number of requests in flight to one server to an
// adaptive limit. vLLM and SGLang batch the requests they hold, so more in
// flight means more throughput, up to the point where the server is busy;
// past it requests only queue and wait longer. The limiter finds that point
// from what it sees:
//
//   - It measures throughput and latency over windows of completions (at
//     least max(limit, windowMin) of them, none of a request started under
//     an older limit).
//   - While growing, it doubles the limit as long as a window's throughput
//     beats the best so far by growthGain. When it does not, the server was
//     busy at the best limit: it settles there with headroom×, so that a
//     queue at the server covers the client's own gaps between requests.
//   - Settled, it tries headroom× more now and then (every probeEvery
//     windows) and keeps it only if throughput grows; and it backs off by
//     a tenth when latency passes latencyLimit× the least it has seen
//     without throughput to show for it.
//   - A 429 or 503 halves the limit at once; a failed connection halves it
//     and holds the server off for a growing pause.
//
// With a fixed limit it only counts.
type limiter struct {
	mu       sync.Mutex
	wake     chan struct{} // closed and replaced when a slot may have freed
	limit    float64
	min, max float64
	fixed    bool
	inflight int

	growing  bool
	changed  time.Time // when the limit last changed
	winStart time.Time
	winDone  int
	winLat   []time.Duration
	bestTP   float64 // best throughput (completions/s) of a window so far
	bestLim  float64 // the limit that gave it
	minLat   time.Duration
	windows  int     // windows since settling or the last probe
	probing  float64 // the limit before a probe, 0 when not probing
	probeTP  float64 // throughput at that limit

	pauseUntil time.Time // no new request before this
	failures   int       // consecutive connection failures

	now func() time.Time // the clock (tests replace it)
}

// Tuning of the limiter (see limiter).
const (
	windowMin    = 8
	growthGain   = 1.10
	headroom     = 1.5
	probeEvery   = 8
	latencyLimit = 3.0
	maxPause     = 30 * time.Second
)

func newLimiter(start, max int, fixed bool) *limiter {
	if start < 1 {
		start = 1
	}
	if max < start {
		max = start
	}
	return &limiter{wake: make(chan struct{}), limit: float64(start), min: 1, max: float64(max), fixed: fixed, growing: !fixed, now: time.Now}
}

// acquire waits for a slot and returns the time the request starts.
func (l *limiter) acquire(ctx context.Context) (time.Time, error) {
	for {
		l.mu.Lock()
		now := l.now()
		if l.inflight < int(l.limit) && !now.Before(l.pauseUntil) {
			l.inflight++
			l.mu.Unlock()
			return now, nil
		}
		wake, wait := l.wake, l.pauseUntil.Sub(now)
		l.mu.Unlock()
		var t *time.Timer
		var timer <-chan time.Time
		if wait > 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-wake:
		case <-timer:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
	}
}

// outcome is how a request ended.
type outcome int

const (
	done        outcome = iota // the server answered (whatever the example's fate)
	overloaded                 // 429 or 503: the server asks for less
	unreachable                // no answer: connection refused, reset, timed out
	cancelled                  // the run stopped it
)

// release frees the slot of a request started at start.
func (l *limiter) release(start time.Time, how outcome, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	close(l.wake)
	l.wake = make(chan struct{})
	now := l.now()
	switch how {
	case cancelled:
		return
	case overloaded:
		l.failures = 0
		l.pauseUntil = maxTime(l.pauseUntil, now.Add(min(retryAfter, maxPause)))
		l.cut(0.5, now)
		l.growing = false
		return
	case unreachable:
		l.failures++
		l.pauseUntil = maxTime(l.pauseUntil, now.Add(min(time.Duration(1<<min(l.failures-1, 6))*250*time.Millisecond, maxPause)))
		l.cut(0.5, now)
		return
	}
	l.failures = 0
	if l.fixed || start.Before(l.changed) {
		return
	}
	lat := now.Sub(start)
	if l.minLat == 0 || lat < l.minLat {
		l.minLat = lat
	}
	if l.winDone == 0 {
		l.winStart = start
	}
	l.winDone++
	l.winLat = append(l.winLat, lat)
	if l.winDone < max(int(l.limit), windowMin) {
		return
	}
	el := now.Sub(l.winStart).Seconds()
	tp := float64(l.winDone) / max(el, 1e-9)
	slices.Sort(l.winLat)
	med := l.winLat[len(l.winLat)/2]
	l.winDone, l.winLat = 0, l.winLat[:0]
	l.window(tp, med, now)
}

// window adjusts the limit after a window with throughput tp and median
// latency med.
func (l *limiter) window(tp float64, med time.Duration, now time.Time) {
	switch {
	case l.growing:
		if tp >= l.bestTP*growthGain {
			l.bestTP, l.bestLim = tp, l.limit
			if l.limit >= l.max {
				l.growing = false
				return
			}
			l.set(l.limit*2, now)
			return
		}
		// No gain: the server was busy at the best limit.
		l.growing = false
		l.set(l.bestLim*headroom, now)
	case l.probing > 0:
		if tp >= l.probeTP*growthGain {
			l.bestTP, l.bestLim = tp, l.limit
			l.probing = 0
			l.growing = true
			l.set(l.limit*2, now)
			return
		}
		l.set(l.probing, now)
		l.probing = 0
	case float64(med) > latencyLimit*float64(l.minLat) && tp < l.bestTP*growthGain:
		l.cut(0.9, now)
	default:
		l.windows++
		if l.windows >= probeEvery && l.limit < l.max {
			l.windows = 0
			l.probing, l.probeTP = l.limit, tp
			l.set(l.limit*headroom, now)
		}
	}
}

func (l *limiter) set(x float64, now time.Time) {
	l.limit = min(max(x, l.min), l.max)
	l.changed = now
	l.winDone, l.winLat = 0, l.winLat[:0]
}

func (l *limiter) cut(f float64, now time.Time) {
	if !l.fixed {
		l.set(l.limit*f, now)
	}
}

// current returns the limit and the requests in flight.
func (l *limiter) current() (limit, inflight int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit), l.inflight
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
