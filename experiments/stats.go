package experiments

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Interval is a mean with its 95 % confidence interval.
type Interval struct {
	Mean float64 `json:"mean"`
	Lo   float64 `json:"lo"`
	Hi   float64 `json:"hi"`
	N    int     `json:"n"`
}

// MeanCI returns the mean of xs with the two-sided 95 % Student-t interval
// mean ± t_{0.975, n−1}·s/√n (s the sample standard deviation). With one
// value the interval is the point itself; with none, N is 0 and the rest 0.
func MeanCI(xs []float64) Interval {
	n := len(xs)
	if n == 0 {
		return Interval{}
	}
	m := stat.Mean(xs, nil)
	if n == 1 {
		return Interval{Mean: m, Lo: m, Hi: m, N: 1}
	}
	se := stat.StdDev(xs, nil) / math.Sqrt(float64(n))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(0.975)
	return Interval{Mean: m, Lo: m - t*se, Hi: m + t*se, N: n}
}

// Excludes reports whether the interval lies entirely on one side of x.
func (iv Interval) Excludes(x float64) bool { return iv.N > 0 && (iv.Lo > x || iv.Hi < x) }

// Paired returns the interval of the paired differences a[i] − b[i]. Paired
// samples have one value per replicate on each side: unequal lengths are an
// error, not a truncation.
func Paired(a, b []float64) (Interval, error) {
	if len(a) != len(b) {
		return Interval{}, fmt.Errorf("paired samples of unequal length (%d and %d)", len(a), len(b))
	}
	if len(a) == 0 {
		return Interval{}, fmt.Errorf("paired samples are empty")
	}
	d := make([]float64, len(a))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return MeanCI(d), nil
}

// Decision is a cell's verdict among objectives on one metric.
type Decision struct {
	// Winner is the objective whose paired CI against every other
	// objective lies above 0; "" when there is none: a tie.
	Winner string `json:"winner,omitempty"`
	// Leaders are the objectives that no other beats with a CI that
	// excludes 0: the winner alone, or the objectives tied at the top.
	Leaders []string `json:"leaders"`
}

// Decided reports whether the cell has a winner.
func (d Decision) Decided() bool { return d.Winner != "" }

// Decide returns the verdict among the named objectives, each with one
// score per replicate, paired by replicate.
func Decide(names []string, scores map[string][]float64) (Decision, error) {
	if len(names) < 2 {
		return Decision{}, fmt.Errorf("a verdict needs at least two objectives, got %d", len(names))
	}
	beaten := map[string]bool{}
	var dec Decision
	for _, a := range names {
		wins := 0
		for _, b := range names {
			if a == b {
				continue
			}
			d, err := Paired(scores[a], scores[b])
			if err != nil {
				return Decision{}, fmt.Errorf("%s vs %s: %w", a, b, err)
			}
			if d.Lo > 0 {
				wins++
				beaten[b] = true
			}
		}
		if wins == len(names)-1 {
			dec.Winner = a
		}
	}
	for _, a := range names {
		if !beaten[a] {
			dec.Leaders = append(dec.Leaders, a)
		}
	}
	return dec, nil
}
