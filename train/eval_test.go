package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
)

// TestEvaluateAgainstGeneration checks Evaluate's figures against
// independent computations on a partly trained model (so that some examples
// match and some do not): exact match against greedy generation with
// Generate, and the entropy, top-1 probability and median p against the full
// distributions of Score.
func TestEvaluateAgainstGeneration(t *testing.T) {
	ctx := context.Background()
	var data []Example
	for i := range 40 {
		// Responses of 1 to 6 characters; the longest ones do not fit the
		// context of 8 (BOS + 4 prompt + 6 + EOS = 12 tokens), so truncated
		// examples are covered too.
		data = append(data, Example{Prompt: fmt.Sprintf("k%02d=", i), Response: "abcdef"[:1+i%6], Source: "toy", Line: i + 1})
	}
	cfg := toyConfig("nll", 150)
	cfg.Model.Context = 8
	// 16 rows of 8 tokens: at least as many tokens as the MLP's 4·D = 128
	// hidden units (sgemm's row split slices A before checking transA and
	// panics when a weight gradient has fewer tokens than rows).
	cfg.Batch = 16
	tr, err := New(cfg, nil, data)
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, tr, 150)
	m, tok := tr.Model(), tr.Tokenizer()
	res, err := Evaluate(ctx, m, tok, data, EvalOptions{Batch: 7})
	if err != nil {
		t.Fatal(err)
	}
	prompts := make([][]int, len(data))
	for i, ex := range data {
		p, err := tok.Encode(ex.Prompt)
		if err != nil {
			t.Fatal(err)
		}
		prompts[i] = append([]int{BOSID}, p...)
	}
	gens, err := Generate(ctx, m, prompts, 8, 5)
	if err != nil {
		t.Fatal(err)
	}
	exact := 0
	for i, g := range gens {
		want, _ := tok.Encode(data[i].Response)
		if slices.Equal(g, append(want, EOSID)) {
			exact++
		}
	}
	if got := float64(exact) / float64(len(data)); res.ExactMatch != got {
		t.Errorf("exact match %v from teacher forcing, %v from greedy generation", res.ExactMatch, got)
	}
	t.Logf("%d of %d generations match, %d examples truncated", exact, len(data), res.Truncated)
	if exact == 0 || exact == len(data) || res.Truncated == 0 {
		t.Errorf("%d of %d generations match, %d truncated: the test needs some of each", exact, len(data), res.Truncated)
	}
	var ps []float64
	var h, top float64
	_, err = Score(ctx, m, tok, data, 3, func(_ int, tf TokenScores) {
		for j, lp := range tf.LogP {
			ps = append(ps, math.Exp(lp))
			q := tf.Dist(j)
			best := 0.0
			for _, x := range q {
				if x > 0 {
					h -= x * math.Log(x)
				}
				best = math.Max(best, x)
			}
			top += best
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ps)
	n := float64(len(ps))
	// Float32 logits: the two routes agree to about 1e-6.
	if math.Abs(res.Entropy-h/n) > 1e-5 || math.Abs(res.Top1P-top/n) > 1e-6 {
		t.Errorf("entropy %v, top-1 %v; from the distributions %v, %v", res.Entropy, res.Top1P, h/n, top/n)
	}
	wantMed := ps[len(ps)/2]
	if len(ps)%2 == 0 {
		wantMed = (ps[len(ps)/2-1] + ps[len(ps)/2]) / 2
	}
	if math.Abs(res.MedianP-wantMed) > 1e-12 || res.Tokens != len(ps) {
		t.Errorf("median p %v over %d tokens, want %v over %d", res.MedianP, res.Tokens, wantMed, len(ps))
	}
}
