package probe

import (
	"math"
)

// The fine histogram of p has fixed bins, so that histograms of shards add
// up to the histogram of their concatenation and quantiles are exact to the
// bin:
//
//	bin 0                 p = 0 (log p ≤ −9999 or −∞)
//	bin 1                 0 < p < 10⁻¹²
//	bins 2 … 161          10⁻¹² ≤ p < 10⁻⁴, 20 bins per decade (width 10^0.05)
//	bins 162 … 10160      10⁻⁴ ≤ p ≤ 1, width 10⁻⁴ (p = 1 falls in the last)
//
// A quantile is reported as the midpoint of its bin (arithmetic for the
// linear bins, geometric for the logarithmic ones, 0 for the first two), so
// it is within 5·10⁻⁵ of the exact value for p ≥ 10⁻⁴, within 6 % of it for
// 10⁻¹² ≤ p < 10⁻⁴, and within 10⁻¹² below that.
const (
	histZero     = 0
	histTiny     = 1
	histLogFirst = 2
	logPerDecade = 20
	logDecades   = 8 // 10⁻¹² … 10⁻⁴
	histLinFirst = histLogFirst + logPerDecade*logDecades
	linBins      = 10000 // bins of width 10⁻⁴; the first ([0, 10⁻⁴)) is covered by the log bins
	histBins     = histLinFirst + linBins - 1

	// QuantileResolution is the width of the linear bins of the fine
	// histogram: quantiles of p ≥ 10⁻⁴ are exact to half of it.
	QuantileResolution = 1.0 / linBins

	log10e = 1 / math.Ln10
)

// histBin returns the fine-histogram bin of a token with probability p and
// log-probability lp (p = exp(lp)).
func histBin(p, lp float64) int {
	switch {
	case p >= 1e-4:
		k := int(p * linBins)
		if k >= linBins {
			k = linBins - 1
		}
		if k < 1 {
			k = 1
		}
		return histLinFirst + k - 1
	case p <= 0:
		return histZero
	case p < 1e-12:
		return histTiny
	}
	j := int(math.Floor(lp * log10e * logPerDecade)) // ⌊20·log₁₀ p⌋ in [−240, −81]
	j = min(max(j, -logPerDecade*12), -logPerDecade*4-1)
	return histLogFirst + j + logPerDecade*12
}

// binValue is the value a quantile falling in bin b reports.
func binValue(b int) float64 {
	switch {
	case b <= histTiny:
		return 0
	case b < histLinFirst:
		j := b - histLogFirst - logPerDecade*12
		return math.Pow(10, (float64(j)+0.5)/logPerDecade)
	}
	k := b - histLinFirst + 1
	return (float64(k) + 0.5) / linBins
}

// histQuantile returns the q-quantile of the fine histogram h holding n
// values: the value of the bin that holds the ⌈q·n⌉-th smallest value (the
// inverse of the empirical distribution function).
func histQuantile(h []uint64, n int64, q float64) float64 {
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var c uint64
	for b, x := range h {
		c += x
		if c >= rank {
			return binValue(b)
		}
	}
	return math.NaN()
}

// coarseEdges are the edges of the report's histogram: 20 bins of width 0.05.
func coarseEdges() []float64 {
	e := make([]float64, 21)
	for i := range e {
		e[i] = float64(i) / 20
	}
	return e
}

// coarse folds the fine histogram into the report's 20 bins of width 0.05.
func coarse(h []uint64) []uint64 {
	out := make([]uint64, 20)
	for b, x := range h {
		if x == 0 {
			continue
		}
		c := 0
		if b >= histLinFirst {
			k := b - histLinFirst + 1 // p ∈ [k, k+1)·10⁻⁴
			c = min(k/(linBins/20), 19)
		}
		out[c] += x
	}
	return out
}
