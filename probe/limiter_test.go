package probe

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"
)

// simServer is a server that runs at most capacity requests at once, each
// for latency, and queues the rest; overloadAt > 0 makes it answer 429 to
// a request that arrives with that many or more already in it.
type simServer struct {
	capacity   int
	latency    time.Duration
	overloadAt int
	jitter     float64 // each request takes latency·(1 ± jitter), uniformly
}

// event is a request finishing at t.
type event struct {
	t   time.Time
	tk  ticket
	how outcome
}

type events []event

func (e events) Len() int           { return len(e) }
func (e events) Less(i, j int) bool { return e[i].t.Before(e[j].t) }
func (e events) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)        { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// simulate runs a client that keeps the limiter full against s for d of
// virtual time and returns the completions per second over the second
// half, and the limit at the end.
func simulate(s simServer, l *limiter, d time.Duration) (float64, int) {
	from := d / 2
	t0 := time.Unix(0, 0)
	now := t0
	rng := rand.New(rand.NewPCG(1, 2))
	l.now = func() time.Time { return now }
	var ev events
	var busyUntil []time.Time // when each of the capacity slots frees
	for range s.capacity {
		busyUntil = append(busyUntil, t0)
	}
	inServer := 0
	completed := 0
	for now.Before(t0.Add(d)) {
		for {
			tk, ok, _ := l.tryAcquire(nil)
			if !ok {
				break
			}
			if s.overloadAt > 0 && inServer >= s.overloadAt {
				heap.Push(&ev, event{t: now.Add(time.Millisecond), tk: tk, how: overloaded})
				continue
			}
			// The earliest free slot serves it (FIFO queue).
			k := 0
			for i := range busyUntil {
				if busyUntil[i].Before(busyUntil[k]) {
					k = i
				}
			}
			begin := maxTime(busyUntil[k], now)
			busyUntil[k] = begin.Add(time.Duration(float64(s.latency) * (1 + s.jitter*(2*rng.Float64()-1))))
			inServer++
			heap.Push(&ev, event{t: busyUntil[k], tk: tk, how: done})
		}
		if ev.Len() == 0 {
			now = now.Add(10 * time.Millisecond) // paused
			continue
		}
		e := heap.Pop(&ev).(event)
		now = e.t
		if e.how == done {
			inServer--
			if now.After(t0.Add(from)) {
				completed++
			}
		}
		l.release(e.tk, e.how, 0)
	}
	lim, _ := l.current()
	return float64(completed) / (d - from).Seconds(), lim
}

// TestLimiterFindsCapacity: from the default start, the limiter reaches at
// least 90 % of the throughput of servers of very different sizes, without
// piling up more than a few times their capacity.
func TestLimiterFindsCapacity(t *testing.T) {
	for _, capacity := range []int{1, 4, 32, 100, 300} {
		s := simServer{capacity: capacity, latency: 200 * time.Millisecond}
		l := newLimiter(DefaultStartConcurrency, DefaultMaxConcurrency, false)
		tp, lim := simulate(s, l, 120*time.Second)
		full := float64(capacity) / s.latency.Seconds()
		if tp < 0.9*full || lim > max(4*capacity, 2*DefaultStartConcurrency) {
			t.Errorf("capacity %d: %.1f/s of %.1f/s (%.0f %%), limit %d", capacity, tp, full, 100*tp/full, lim)
		}
	}
}

// TestLimiterNoise: with latencies jittering by ±30 %, the limit does not
// ratchet up over an hour of probes, and throughput stays near capacity.
func TestLimiterNoise(t *testing.T) {
	s := simServer{capacity: 32, latency: 200 * time.Millisecond, jitter: 0.3}
	l := newLimiter(DefaultStartConcurrency, DefaultMaxConcurrency, false)
	tp, lim := simulate(s, l, time.Hour)
	if full := 32 / s.latency.Seconds(); tp < 0.9*full || lim > 4*32 {
		t.Errorf("%.1f/s of %.1f/s, limit %d", tp, full, lim)
	}
}

// TestLimiterBacksOff: a server that answers 429 past 20 requests at once
// holds the limit near 20, and the throughput near its capacity.
func TestLimiterBacksOff(t *testing.T) {
	s := simServer{capacity: 20, latency: 100 * time.Millisecond, overloadAt: 20}
	l := newLimiter(DefaultStartConcurrency, DefaultMaxConcurrency, false)
	tp, lim := simulate(s, l, 60*time.Second)
	if full := 20 / s.latency.Seconds(); tp < 0.5*full || lim > 40 {
		t.Errorf("%.1f/s of %.1f/s, limit %d", tp, full, lim)
	}
}

// TestLimiterFixed: a fixed limit stays.
func TestLimiterFixed(t *testing.T) {
	l := newLimiter(6, 6, true)
	tp, lim := simulate(simServer{capacity: 100, latency: 100 * time.Millisecond}, l, 20*time.Second)
	if lim != 6 || tp < 59 || tp > 61 {
		t.Errorf("%.1f/s, limit %d; want 60/s, 6", tp, lim)
	}
}
