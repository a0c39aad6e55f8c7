package probe

import (
	"math"
	"testing"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
)

func TestRecordContext(t *testing.T) {
	ln := math.Log
	for _, c := range []struct {
		name   string
		rec    Record
		vocab  int
		ok     bool
		q      []float64 // want Q
		label  int
		bucket bool
	}{
		// The target is listed (found by its text): listed 0.6, 0.3 and the
		// remainder 0.1 as theory's bucket.
		{"listed", Record{LogProb: ln(0.6), Token: "a", Top: []TopToken{{"b", ln(0.3)}, {"a", ln(0.6)}}}, 100, true, []float64{0.3, 0.6, 0.1}, 1, true},
		// Names unknown: found by equal log-prob.
		{"by logprob", Record{LogProb: ln(0.6), Top: []TopToken{{"", ln(0.6)}, {"", ln(0.3)}}}, 0, true, []float64{0.6, 0.3, 0.1}, 0, true},
		// Not listed: the target's own p joins the list.
		{"unlisted", Record{LogProb: ln(0.05), Token: "z", Top: []TopToken{{"a", ln(0.7)}, {"b", ln(0.2)}}}, 0, true, []float64{0.7, 0.2, 0.05, 0.05}, 2, true},
		// No top-k: the target and the rest of the mass.
		{"alone", Record{LogProb: ln(0.25)}, 0, true, []float64{0.25, 0.75}, 0, true},
		{"certain", Record{LogProb: 0}, 0, true, []float64{1, 0}, 0, true},
		{"full", Record{LogProb: ln(0.5), Full: []float64{0.2, 0.5, 0.3}, Target: 1}, 0, true, []float64{0.2, 0.5, 0.3}, 1, false},
		{"too much mass", Record{LogProb: ln(0.9), Top: []TopToken{{"", ln(0.9)}, {"", ln(0.5)}}}, 0, false, nil, 0, false},
		{"vocab too small", Record{LogProb: ln(0.5), Top: []TopToken{{"a", ln(0.5)}, {"b", ln(0.2)}, {"c", ln(0.1)}}}, 2, false, nil, 0, false},
	} {
		ctx, ok := c.rec.Context(c.vocab)
		if ok != c.ok {
			t.Errorf("%s: ok = %v (%v)", c.name, ok, ctx.Validate())
			continue
		}
		if !ok {
			continue
		}
		if ctx.Label != c.label || ctx.Bucket != c.bucket || len(ctx.Q) != len(c.q) || ctx.Truth != theory.Unknown {
			t.Errorf("%s: context %+v, want q %v label %d bucket %v", c.name, ctx, c.q, c.label, c.bucket)
			continue
		}
		for i := range c.q {
			if !near(ctx.Q[i], c.q[i], 1e-12) {
				t.Errorf("%s: q = %v, want %v", c.name, ctx.Q, c.q)
				break
			}
		}
	}
}

// TestContextsForTheory: a report's reservoir, full distributions included,
// feeds theory.Rank directly.
func TestContextsForTheory(t *testing.T) {
	full := [][]float64{{0.7, 0.2, 0.1}, {0.1, 0.6, 0.3}}
	seq := Sequence{ID: "own", LogProbs: []float64{math.Log(0.7), math.Log(0.6)}, Source: "ckpt",
		Full: func(i int) ([]float64, int) { return full[i], i }}
	seq2 := Sequence{ID: "topk", LogProbs: []float64{math.Log(0.5)}, Top: [][]TopToken{{{"x", math.Log(0.5)}, {"y", math.Log(0.4)}}}, Source: "f"}
	acc := NewAccumulator(Config{Vocab: 3})
	if err := acc.Consume(&SliceSource{Seqs: []Sequence{seq, seq2}}); err != nil {
		t.Fatal(err)
	}
	rep, err := acc.Report()
	if err != nil {
		t.Fatal(err)
	}
	ctxs := rep.Contexts()
	if len(ctxs) != 3 {
		t.Fatalf("%d contexts, want 3", len(ctxs))
	}
	nFull := 0
	for _, c := range ctxs {
		if !c.Bucket {
			nFull++
		} else if c.Vocab != 3 {
			t.Errorf("top-k context without the vocabulary size: %+v", c)
		}
	}
	if nFull != 2 {
		t.Errorf("%d full contexts, want 2", nFull)
	}
	ranked, err := theory.Rank([]objectives.Objective{objectives.NLL(), objectives.P()}, ctxs, theory.NoiseModel{E: 0.1})
	if err != nil || len(ranked) != 2 {
		t.Fatalf("theory.Rank: %v", err)
	}
}

func TestPlacement(t *testing.T) {
	for _, c := range []struct {
		x          float64
		ci         [2]float64
		share      float64
		region     Region
		anchor     string
		borderline bool
		strong     bool
	}{
		{0.80, [2]float64{0.79, 0.81}, 0.78, Strong, "LLaMA-3.1-8B", false, true}, // first of the 0.80 anchors
		{0.02, [2]float64{0.01, 0.03}, 0.01, Weak, "LLaMA-3.2-3B", false, false},
		{0.55, [2]float64{0.54, 0.56}, 0.5, Intermediate, "Qwen2.5-1.5B", false, false},
		{0.68, [2]float64{0.66, 0.70}, 0.71, Strong, "DeepSeekMath-7B", true, true}, // CI holds 0.675; 0.76 − 0.68 < 0.68 − 0.59
		{0.30, [2]float64{0.29, 0.31}, 0.2, Intermediate, "LLaMA-3.2-3B", true, false},
	} {
		pl := Place(c.x, c.ci, c.share, DefaultCuts)
		if pl.Region != c.region || pl.NearestAnchor.Model != c.anchor || pl.Borderline != c.borderline || pl.TheoryStrongCondition != c.strong {
			t.Errorf("Place(%v, %v, %v) = %+v", c.x, c.ci, c.share, pl)
		}
	}
}
