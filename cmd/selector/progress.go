package main

import (
	"fmt"
	"strings"
	"time"
)

// progress shows how long work is going: a single self-rewriting line on
// stderr when it is a terminal, a log line every few seconds otherwise.
type progress struct {
	e       *env
	what    string // "probe"
	unit    string // "tokens"
	start   time.Time
	last    time.Time
	drawn   bool
	logGap  time.Duration
	drawGap time.Duration
}

// logInterval is how often long-running commands log their progress when
// stderr is not a terminal (a terminal gets a live progress line instead).
const logInterval = 5 * time.Second

func newProgress(e *env, what, unit string) *progress {
	now := time.Now()
	return &progress{e: e, what: what, unit: unit, start: now, last: now, logGap: logInterval, drawGap: 100 * time.Millisecond}
}

// update reports the fraction done (negative: unknown) and the count of
// units processed so far; it draws at most every 100 ms.
func (p *progress) update(frac float64, count int64) {
	now := time.Now()
	gap := p.logGap
	if p.e.tty {
		gap = p.drawGap
	}
	if now.Sub(p.last) < gap {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	rate := float64(count) / max(el, 1e-9)
	eta := ""
	if frac > 0 && frac < 1 {
		eta = fmtDuration(time.Duration(el * (1 - frac) / frac * float64(time.Second)))
	}
	if !p.e.tty {
		ev := p.e.log.Info().Int64(p.unit, count).Float64(p.unit+"_per_s", rate)
		if frac >= 0 {
			ev = ev.Float64("done", frac)
		}
		if eta != "" {
			ev = ev.Str("eta", eta)
		}
		ev.Msg(p.what + " progress")
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\r%s ", p.what)
	if frac >= 0 {
		const width = 24
		full := int(frac * width)
		fmt.Fprintf(&b, "[%s%s] %3.0f%% ", strings.Repeat("█", full), strings.Repeat("·", width-full), 100*frac)
	}
	fmt.Fprintf(&b, " %s %s  %s %s/s", fmtCount(float64(count)), p.unit, fmtCount(rate), p.unit)
	if eta != "" {
		fmt.Fprintf(&b, "  ETA %s", eta)
	}
	b.WriteString("\x1b[K")
	p.e.stderr.Write([]byte(b.String()))
	p.drawn = true
}

// finish clears the progress line.
func (p *progress) finish() {
	if p.drawn {
		p.e.stderr.Write([]byte("\r\x1b[K"))
		p.drawn = false
	}
}

// fmtCount writes 1234567 as 1.23M.
func fmtCount(x float64) string {
	switch {
	case x >= 1e9:
		return fmt.Sprintf("%.2fG", x/1e9)
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e4:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}
