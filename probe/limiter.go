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
//   - It measures throughput on cohorts of requests. A cohort is the
//     requests started in a window that opens once every request started
//     under the previous limit is done, and closes after max(limit,
//     windowMin) starts and at least the shortest latency seen.
//     When the whole cohort is done, throughput is the time-averaged number
//     in flight while it started, over its mean latency (Little's law).
//     Unlike completions per second, this does not depend on whether
//     replies come in bursts; waiting for the whole cohort keeps slow
//     requests in the mean.
//   - While growing, it doubles the limit as long as a cohort's throughput
//     beats the best so far by growthGain. When it does not, the server was
//     busy at the best limit: it settles there with headroom×, so that a
//     queue at the server covers the client's own gaps between requests.
//   - Settled, it tries headroom× more now and then (every probeEvery
//     cohorts) and keeps it only if throughput grows by growthGain in two
//     cohorts in a row (one may be noise); and it backs off by a
//     tenth, down to the best limit, when the median latency passes
//     latencyLimit× the least it has seen without throughput to show for it.
//   - A 429 or 503 halves the limit (once for the requests in flight then)
//     and stops the growth; a failed connection halves it and holds the
//     server off for a growing pause.
//
// With a fixed limit it only counts.
type limiter struct {
	mu       sync.Mutex
	waiters  []chan struct{} // requests waiting for a slot, first come first
	limit    float64
	min, max float64
	fixed    bool
	inflight int
	old      int    // requests in flight that started before the limit changed
	gen      uint64 // generation of the limit: it grows with every change

	growing bool
	changed time.Time // when the limit last changed
	last    time.Time // when inflight last changed

	// The cohort being measured.
	open       bool      // it takes new members
	measuring  bool      // a cohort exists (open, or waiting for its members)
	cohort     uint64    // its number
	cohortFrom time.Time // its first start
	cohortTo   time.Time // when it closed
	area       float64   // ∫ inflight dt while it was open, in request·seconds
	members    int       // requests started in it
	finished   int       // of them, done
	lats       []time.Duration

	bestTP    float64 // best throughput (completions/s) so far
	bestLim   float64 // the limit that gave it
	minLat    time.Duration
	cohorts   int     // cohorts since settling or the last probe
	probing   float64 // the limit before a probe, 0 when not probing
	probeTP   float64 // throughput at that limit
	probeWins int     // cohorts of the probe that beat it

	pauseUntil time.Time // no new request before this
	failures   int       // consecutive connection failures
	cut429     time.Time // the last cut for overload

	now func() time.Time // the clock (tests replace it)
}

// ticket is a slot taken: when, under which limit and in which cohort.
type ticket struct {
	start  time.Time
	gen    uint64 // the limit's generation
	cohort uint64 // the cohort it belongs to, 0 for none
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
	l := &limiter{limit: float64(start), min: 1, max: float64(max), fixed: fixed, growing: !fixed, now: time.Now}
	l.startCohort()
	return l
}

// tryAcquire takes a slot if one is free; otherwise, when wake is not nil,
// it queues wake to be signalled when one may be, and returns how long a
// pause still lasts.
func (l *limiter) tryAcquire(wake chan struct{}) (t ticket, ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.inflight >= int(l.limit) || now.Before(l.pauseUntil) {
		if wake != nil {
			l.waiters = append(l.waiters, wake)
		}
		return ticket{}, false, l.pauseUntil.Sub(now)
	}
	l.tick(now)
	l.inflight++
	t = ticket{start: now, gen: l.gen}
	if l.open {
		if l.members == 0 {
			l.cohortFrom, l.area = now, 0
		}
		l.members++
		t.cohort = l.cohort
		if l.members >= max(int(l.limit), windowMin) && (l.minLat == 0 || now.Sub(l.cohortFrom) >= l.minLat) {
			l.open, l.cohortTo = false, now
		}
	}
	return t, true, 0
}

// signal wakes as many waiters as there are free slots (one more, so that
// a waiter that gave up does not leave a slot unnoticed).
func (l *limiter) signal() {
	n := int(l.limit) - l.inflight + 1
	for ; n > 0 && len(l.waiters) > 0; n-- {
		select {
		case l.waiters[0] <- struct{}{}:
		default:
		}
		l.waiters = l.waiters[1:]
	}
}

// tick adds the time since inflight last changed to the open cohort's area.
func (l *limiter) tick(now time.Time) {
	if l.open && l.members > 0 {
		l.area += float64(l.inflight) * now.Sub(l.last).Seconds()
	}
	l.last = now
}

// acquire waits for a slot.
func (l *limiter) acquire(ctx context.Context) (ticket, error) {
	wake := make(chan struct{}, 1)
	for {
		t, ok, wait := l.tryAcquire(wake)
		if ok {
			return t, nil
		}
		var tm *time.Timer
		var timer <-chan time.Time
		if wait > 0 {
			tm = time.NewTimer(wait)
			timer = tm.C
		}
		select {
		case <-wake:
		case <-timer:
		case <-ctx.Done():
		}
		if tm != nil {
			tm.Stop()
		}
		if ctx.Err() != nil {
			return ticket{}, ctx.Err()
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

// release frees the slot of a ticket.
func (l *limiter) release(t ticket, how outcome, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.tick(now)
	l.inflight--
	defer l.signal()
	start := t.start
	old := t.gen != l.gen
	if old {
		l.old--
	}
	member := !old && l.measuring && t.cohort == l.cohort && t.cohort != 0
	switch how {
	case overloaded:
		l.failures = 0
		l.pauseUntil = maxTime(l.pauseUntil, now.Add(min(retryAfter, maxPause)))
		if !start.Before(l.cut429) { // one cut for the requests in flight at the last one
			l.cut429 = now
			l.growing, l.probing = false, 0
			l.cut(0.5, now)
		}
		return
	case unreachable:
		l.failures++
		l.pauseUntil = maxTime(l.pauseUntil, now.Add(min(time.Duration(1<<min(l.failures-1, 6))*250*time.Millisecond, maxPause)))
		l.cut(0.5, now)
		return
	case done:
		l.failures = 0
	}
	if old {
		if l.old <= 0 && !l.measuring {
			l.startCohort() // what is in flight now started under the new limit
		}
		return
	}
	if !member || l.fixed {
		return
	}
	l.finished++
	if how == done {
		lat := now.Sub(start)
		l.lats = append(l.lats, lat)
		if l.minLat == 0 || lat < l.minLat {
			l.minLat = lat
		}
	}
	if l.open || l.finished < l.members {
		return
	}
	// The whole cohort is done.
	l.measuring = false
	if len(l.lats) == 0 {
		l.startCohort()
		return
	}
	var sum time.Duration
	for _, d := range l.lats {
		sum += d
	}
	busy := l.area / max(l.cohortTo.Sub(l.cohortFrom).Seconds(), 1e-9)
	if l.cohortTo.Equal(l.cohortFrom) {
		busy = float64(l.members)
	}
	tp := busy / max(sum.Seconds()/float64(len(l.lats)), 1e-9)
	slices.Sort(l.lats)
	med := l.lats[len(l.lats)/2]
	l.judge(tp, med, now)
	if !l.measuring && l.old == 0 {
		l.startCohort()
	}
}

// startCohort opens a new cohort.
func (l *limiter) startCohort() {
	l.cohort++
	l.open, l.measuring = true, true
	l.members, l.finished, l.area, l.lats = 0, 0, 0, l.lats[:0]
}

// judge adjusts the limit after a cohort with throughput tp and median
// latency med.
func (l *limiter) judge(tp float64, med time.Duration, now time.Time) {
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
		if tp < l.probeTP*growthGain {
			l.set(l.probing, now)
			l.probing, l.probeWins = 0, 0
			return
		}
		// A gain must hold for two cohorts: one may be noise.
		if l.probeWins++; l.probeWins < 2 {
			return
		}
		l.bestTP, l.bestLim = tp, l.limit
		l.probing, l.probeWins = 0, 0
		l.growing = true
		l.set(l.limit*2, now)
	case float64(med) > latencyLimit*float64(l.minLat) && tp < l.bestTP*growthGain && l.limit > l.bestLim:
		// Latency without throughput: less headroom, down to the best limit.
		l.set(max(l.limit*0.9, l.bestLim), now)
	default:
		l.bestTP = max(l.bestTP, tp)
		l.cohorts++
		if l.cohorts >= probeEvery && l.limit < l.max {
			l.cohorts = 0
			l.probing, l.probeTP = l.limit, tp
			l.set(l.limit*headroom, now)
		}
	}
}

// set changes the limit; the next cohort opens when the requests in flight
// now are done.
func (l *limiter) set(x float64, now time.Time) {
	x = min(max(x, l.min), l.max)
	if x == l.limit {
		return
	}
	l.limit = x
	l.changed = now
	l.gen++
	l.old = l.inflight
	l.open, l.measuring = false, false
	if l.old == 0 {
		l.startCohort()
	}
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
