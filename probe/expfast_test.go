package probe

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExpNeg compares expNeg with math.Exp (the reference) over the range
// of log-probs, at random points and at the table's seams.
func TestExpNeg(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	xs := []float64{0, -1e-300, -math.Ln2 / 128, -math.Ln2 / 64, -math.Ln2, -1, -700, -707.9, -708, -708.5, -745, -746, -9999}
	for range 200000 {
		xs = append(xs, -rng.Float64()*20, -rng.ExpFloat64()*50, -rng.Float64()*1e-6)
	}
	worst := 0.0
	for _, x := range xs {
		want := math.Exp(x)
		got := expNeg(x)
		if want == 0 {
			if got != 0 {
				t.Fatalf("expNeg(%v) = %v, want 0", x, got)
			}
			continue
		}
		rel := math.Abs(got-want) / want
		if x >= -708 {
			worst = math.Max(worst, rel)
		}
		if rel > 1e-15 {
			t.Errorf("expNeg(%v) = %v, math.Exp = %v, relative error %.3g", x, got, want, rel)
		}
	}
	t.Logf("worst relative error %.3g (%.2f units of 2⁻⁵²)", worst, worst/0x1p-52)
}

func BenchmarkExpNeg(b *testing.B) {
	xs := make([]float64, 1024)
	for i := range xs {
		xs[i] = -float64(i) * 0.013
	}
	var s float64
	for b.Loop() {
		for _, x := range xs {
			s += expNeg(x)
		}
	}
	_ = s
}

func BenchmarkMathExp(b *testing.B) {
	xs := make([]float64, 1024)
	for i := range xs {
		xs[i] = -float64(i) * 0.013
	}
	var s float64
	for b.Loop() {
		for _, x := range xs {
			s += math.Exp(x)
		}
	}
	_ = s
}
