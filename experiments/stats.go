package experiments

import (
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
// value the interval is the point itself.
func MeanCI(xs []float64) Interval {
	n := len(xs)
	if n == 0 {
		return Interval{Mean: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
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
func (iv Interval) Excludes(x float64) bool { return iv.Lo > x || iv.Hi < x }

// Paired returns the interval of the per-seed differences a[i] − b[i].
func Paired(a, b []float64) Interval {
	d := make([]float64, min(len(a), len(b)))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return MeanCI(d)
}
