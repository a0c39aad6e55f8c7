package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progressBar draws one self-overwriting line on a terminal:
//
//	train  412/1000 ▕██████▌        ▏ 41%  loss 0.62  mean p 0.71  3.2k tok/s  ETA 1m12s
//
// It does nothing when stderr is not a terminal; callers log plain lines then.
type progressBar struct {
	w       io.Writer
	label   string
	total   int
	start   time.Time
	last    time.Time
	enabled bool
	drawn   bool
}

func newProgressBar(e *env, label string, total int) *progressBar {
	return &progressBar{w: e.stderr, label: label, total: total, start: time.Now(), enabled: e.tty}
}

// update redraws the bar, at most ten times a second (always at the end).
// rate is work per second for the ETA; extra is appended as is.
func (p *progressBar) update(done int, unitsPerSec float64, unit, extra string) {
	if !p.enabled {
		return
	}
	now := time.Now()
	if done < p.total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 20
	frac := 0.0
	if p.total > 0 {
		frac = min(1, float64(done)/float64(p.total))
	}
	eighths := int(frac * width * 8)
	bar := strings.Repeat("█", eighths/8)
	if r := eighths % 8; r > 0 {
		bar += string([]rune("▏▎▍▌▋▊▉")[r-1])
	}
	bar += strings.Repeat(" ", width-len([]rune(bar)))
	eta := "–"
	if done > 0 && done < p.total {
		el := now.Sub(p.start)
		eta = (time.Duration(float64(el) / float64(done) * float64(p.total-done))).Round(time.Second).String()
	} else if done >= p.total {
		eta = now.Sub(p.start).Round(time.Second).String() + " total"
	}
	rate := ""
	if unitsPerSec > 0 {
		rate = fmt.Sprintf("  %s %s/s", human(unitsPerSec), unit)
	}
	fmt.Fprintf(p.w, "\r\033[K%s %*d/%d ▕%s▏ %3.0f%%%s  %s  ETA %s", p.label, len(fmt.Sprint(p.total)), done, p.total, bar, 100*frac, rate, extra, eta)
	p.drawn = true
}

// finish ends the bar's line.
func (p *progressBar) finish() {
	if p.enabled && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// human formats a rate compactly: 950, 3.2k, 1.5M.
func human(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.1fM", x/1e6)
	case x >= 1e4:
		return fmt.Sprintf("%.0fk", x/1e3)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}
