package theory

import (
	"errors"
	"math"
	"testing"

	"github.com/capsel/capsel/objectives"
)

// TestRefusesObjectivesBeyondP: the rates are the paper's, for f(p); the
// trainers' gated and anchored objectives get an error, not a number.
func TestRefusesObjectivesBeyondP(t *testing.T) {
	ctxs := []Context{{Q: []float64{0.7, 0.2, 0.1}, Label: 0, Truth: Unknown}}
	for _, s := range []string{"eaft-1", "eaft-axolotl-1-20", "deft", "Cayley_Trans", "asft-0.1"} {
		o := objectives.MustParse(s)
		if _, err := EstimateRate(o, ctxs, NoiseModel{E: 0.1}); err == nil || !errors.Is(err, objectives.ErrNotP) {
			t.Errorf("%s: EstimateRate error %v, want one wrapping ErrNotP", s, err)
		}
		if _, err := Rank([]objectives.Objective{objectives.NLL(), o}, ctxs, NoiseModel{E: 0.1}); err == nil {
			t.Errorf("%s: Rank accepted it", s)
		}
		if _, err := Compare(o, objectives.NLL(), ctxs, NoiseModel{E: 0.1}); err == nil {
			t.Errorf("%s: Compare accepted it", s)
		}
		if !math.IsNaN(Rate(o, ctxs[0].Q, 0, 0)) || !math.IsNaN(WeakEnd(o, objectives.NLL(), 10, 0.1)) {
			t.Errorf("%s: Rate and WeakEnd must be NaN, not a number", s)
		}
	}
	if err := Covers(objectives.MustParse("GeneralFamily-10")); err != nil {
		t.Errorf("Covers(GeneralFamily-10) = %v", err)
	}
}
