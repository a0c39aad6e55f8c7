package train

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// EvalResult measures a model on held-out examples.
type EvalResult struct {
	Examples      int     `json:"examples"`
	Tokens        int     `json:"tokens"`         // scored targets: response tokens and EOS
	ExactMatch    float64 `json:"exact_match"`    // share of examples whose greedy generation equals the response
	TokenAccuracy float64 `json:"token_accuracy"` // share of targets that are the argmax (teacher forcing)
	MeanP         float64 `json:"mean_p"`         // the paper's Eq. 5: mean p of the targets
	MedianP       float64 `json:"median_p"`       // median p of the targets
	NLL           float64 `json:"nll"`            // mean −log p of the targets
	// Entropy is the mean entropy, in nats, of the model's next-token
	// distribution at the scored positions, and Top1P the mean probability
	// of its most likely token there. With MeanP they tell a diffuse model
	// (high entropy, low top-1) from a confidently wrong one (low entropy,
	// high top-1, low p of the targets).
	Entropy   float64 `json:"entropy"`
	Top1P     float64 `json:"top1_p"`
	Truncated int     `json:"truncated"` // examples cut to fit the context
}

// EvalOptions tunes Evaluate. The zero value evaluates everything in batches
// of 32.
type EvalOptions struct {
	Batch      int  // examples per forward pass (default 32)
	NoGenerate bool // leave ExactMatch at 0
}

// Evaluate scores a model on examples with teacher forcing: token accuracy,
// mean and median p, NLL, entropy and top-1 probability over the response
// tokens and EOS, and the exact match of greedy generation from each prompt.
//
// Exact match needs no generation: greedy decoding reproduces the response
// and its EOS exactly when, with the true prefix, the model's argmax is the
// target at every scored position (by induction over the positions, since
// each step then sees the true prefix). So it is read off the teacher-forced
// argmaxes, ties broken towards the lower id as Generate does; an example
// cut to fit the context counts as a miss, as it would in generation.
func Evaluate(ctx context.Context, m *Model, tok *Tokenizer, data []Example, opt EvalOptions) (EvalResult, error) {
	rows, st, err := encode(tok, data, m.Cfg.Context)
	if err != nil {
		return EvalResult{}, err
	}
	var res EvalResult
	res.Examples, res.Truncated = len(rows), st.Truncated
	var correct, exact int
	var sumP, sumNLL, sumH, sumTop float64
	var ps []float64
	err = teacherForced(ctx, m, rows, opt.Batch, func(_ int, tf TokenScores) {
		// A row that fits the context ends with its EOS target; a truncated
		// one does not.
		all := len(tf.Target) > 0 && tf.Target[len(tf.Target)-1] == EOSID
		for j, lp := range tf.LogP {
			res.Tokens++
			p := math.Exp(lp)
			sumP += p
			ps = append(ps, p)
			sumNLL -= lp
			sumH += tf.Entropy[j]
			sumTop += tf.Top1P[j]
			if tf.Argmax[j] == tf.Target[j] {
				correct++
			} else {
				all = false
			}
		}
		if all {
			exact++
		}
	})
	if err != nil {
		return res, err
	}
	if res.Tokens > 0 {
		n := float64(res.Tokens)
		res.TokenAccuracy = float64(correct) / n
		res.MeanP, res.NLL = sumP/n, sumNLL/n
		res.Entropy, res.Top1P = sumH/n, sumTop/n
		res.MedianP = median(ps)
	}
	if !opt.NoGenerate && len(data) > 0 {
		res.ExactMatch = float64(exact) / float64(len(data))
	}
	return res, nil
}

// median returns the median of xs (the mean of the middle two for an even
// count); it reorders xs.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// TokenScores are one example's scored targets under teacher forcing.
type TokenScores struct {
	Target []int     // target ids of the scored positions
	LogP   []float64 // log p of each target
	Argmax []int     // the model's most likely token at each position
	// Top1P is the probability of the argmax, and Entropy the entropy in
	// nats of the model's next-token distribution, at each position.
	Top1P   []float64
	Entropy []float64
	// Dist returns the model's full next-token distribution at scored
	// position j (a fresh slice that sums to 1).
	Dist func(j int) []float64
}

// Score runs the model with teacher forcing over examples and calls fn with
// each example's index and the scores of its response tokens and EOS, in
// order. Examples are encoded as in training (truncated on the right to the
// context); an example whose response falls outside the context is an error.
func Score(ctx context.Context, m *Model, tok *Tokenizer, data []Example, batch int, fn func(i int, tf TokenScores)) (DataStats, error) {
	rows, st, err := encode(tok, data, m.Cfg.Context)
	if err != nil {
		return st, err
	}
	if st.Dropped > 0 {
		return st, fmt.Errorf("%d examples have no response token within the context of %d positions", st.Dropped, m.Cfg.Context)
	}
	return st, teacherForced(ctx, m, rows, batch, fn)
}

// teacherForced runs the model over encoded rows in batches and calls fn with
// each row's index and scores, in row order.
func teacherForced(ctx context.Context, m *Model, rows []encoded, batch int, fn func(i int, tf TokenScores)) error {
	if batch < 1 {
		batch = 32
	}
	v := m.Cfg.Vocab
	for lo := 0; lo < len(rows); lo += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+batch, len(rows))
		idx := make([]int, hi-lo)
		for i := range idx {
			idx[i] = lo + i
		}
		b := makeBatch(rows, idx)
		logits, err := m.Logits(b)
		if err != nil {
			return err
		}
		op := &lossOp{logits: logits, targets: b.Targets, mask: b.Mask, n: len(b.Targets), v: v}
		op.logprobs()
		z := vals(logits)
		t := m.Cfg.Context
		for r := range idx {
			var tf TokenScores
			var pos []int
			for p := range t {
				k := r*t + p
				if !b.Mask[k] {
					continue
				}
				pos = append(pos, k)
				tf.Target = append(tf.Target, b.Targets[k])
				tf.LogP = append(tf.LogP, op.logp[k])
				row := z[k*v : (k+1)*v]
				lse := float64(op.lse[k])
				am := 0
				var pz float64 // Σ_c q_c·z_c, so that H = lse − Σ q·z
				for c, x := range row {
					if x > row[am] {
						am = c
					}
					pz += math.Exp(float64(x)-lse) * float64(x)
				}
				tf.Argmax = append(tf.Argmax, am)
				tf.Top1P = append(tf.Top1P, math.Exp(float64(row[am])-lse))
				tf.Entropy = append(tf.Entropy, lse-pz)
			}
			tf.Dist = func(j int) []float64 {
				k := pos[j]
				q := make([]float64, v)
				for c := range q {
					q[c] = math.Exp(float64(z[k*v+c] - op.lse[k]))
				}
				return normalise(q)
			}
			fn(idx[r], tf)
		}
	}
	return nil
}

// Generate continues each prompt greedily until EOS, maxNew new tokens, or a
// full context, and returns the new tokens (with the EOS when one came).
func Generate(ctx context.Context, m *Model, prompts [][]int, maxNew, batch int) ([][]int, error) {
	if batch < 1 {
		batch = 32
	}
	t, v := m.Cfg.Context, m.Cfg.Vocab
	out := make([][]int, len(prompts))
	for lo := 0; lo < len(prompts); lo += batch {
		hi := min(lo+batch, len(prompts))
		seqs := make([][]int, hi-lo)
		done := make([]bool, hi-lo)
		for i := range seqs {
			seqs[i] = append([]int(nil), prompts[lo+i]...)
			// A sequence of t tokens can still predict one more (from position t − 1).
			done[i] = len(seqs[i]) > t || len(seqs[i]) == 0
		}
		for step := 0; step < maxNew; step++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var active []int
			for i := range seqs {
				if !done[i] {
					active = append(active, i)
				}
			}
			if len(active) == 0 {
				break
			}
			b := Batch{Seqs: len(active)}
			for _, i := range active {
				row := make([]int, t)
				copy(row, seqs[i])
				b.IDs = append(b.IDs, row...)
			}
			b.Targets = make([]int, len(b.IDs))
			b.Mask = make([]bool, len(b.IDs))
			logits, err := m.Logits(b)
			if err != nil {
				return nil, err
			}
			z := vals(logits)
			for r, i := range active {
				k := r*t + len(seqs[i]) - 1
				row := z[k*v : (k+1)*v]
				am := 0
				for c, x := range row {
					if x > row[am] {
						am = c
					}
				}
				seqs[i] = append(seqs[i], am)
				out[lo+i] = append(out[lo+i], am)
				if am == EOSID || len(seqs[i]) > t {
					done[i] = true
				}
			}
		}
	}
	return out, nil
}
