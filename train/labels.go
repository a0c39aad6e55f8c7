package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/nlpodyssey/spago/mat"

	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/sftdata"
)

// LabelExamples scores data with the model for the noise-aware analysis
// (package labelnoise, method Greedy): per example the label path under
// teacher forcing (log p of each target, the model's first choice and
// whether the target is it) and the model's own greedy answer (Answers).
// The null set is the same for the null prompts of up to maxNull examples
// (NullData; 0 means labelnoise.DefaultNullPrompts, negative none),
// shuffled with seed. IDs are "source:line".
func LabelExamples(ctx context.Context, m *Model, tok *Tokenizer, data []Example, maxNull int, seed uint64) (ex, null []labelnoise.Example, err error) {
	if ex, err = labelExamples(ctx, m, tok, data); err != nil {
		return nil, nil, err
	}
	nd := NullData(data, maxNull, seed)
	if len(nd) == 0 {
		return ex, nil, nil
	}
	if null, err = labelExamples(ctx, m, tok, nd); err != nil {
		return nil, nil, fmt.Errorf("null prompts: %w", err)
	}
	for i := range null {
		null[i].ID = "null:" + null[i].ID
	}
	return ex, null, nil
}

func labelExamples(ctx context.Context, m *Model, tok *Tokenizer, data []Example) ([]labelnoise.Example, error) {
	out := make([]labelnoise.Example, len(data))
	_, err := Score(ctx, m, tok, data, 64, func(i int, tf TokenScores) {
		e := labelnoise.Example{ID: data[i].Source + ":" + strconv.Itoa(data[i].Line),
			LogP: slices.Clone(tf.LogP), Top1: slices.Clone(tf.Top1P), Match: make([]bool, len(tf.Target))}
		for j := range tf.Target {
			e.Match[j] = tf.Argmax[j] == tf.Target[j]
		}
		out[i] = e
	})
	if err != nil {
		return nil, err
	}
	own, err := Answers(ctx, m, tok, data, 64, nil)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Own = &own[i]
	}
	return out, nil
}

// Answers returns the model's own greedy answer to each example's prompt:
// greedy decoding (Generate) of at most the response's length plus
// one tokens (room for the end token), stopping at the end token; the
// probability of each of its tokens by teacher forcing on the answer; and
// Agree when the answer equals the label (the response and the end token,
// as far as they fit the context) token for token. progress, when set, is
// called with the number of examples answered so far.
func Answers(ctx context.Context, m *Model, tok *Tokenizer, data []Example, batch int, progress func(done int)) ([]labelnoise.Answer, error) {
	if batch < 1 {
		batch = 64
	}
	t := m.Cfg.Context
	type item struct {
		prompt []int // BOS and the prompt
		label  []int // the scored targets: response and EOS, cut to the context
		budget int
	}
	items := make([]item, len(data))
	for i, ex := range data {
		p, err := tok.Encode(ex.Prompt)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: prompt: %w", ex.Source, ex.Line, err)
		}
		r, err := tok.Encode(ex.Response)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: response: %w", ex.Source, ex.Line, err)
		}
		seq := append(append(append([]int{BOSID}, p...), r...), EOSID)
		pl := 1 + len(p)
		n := min(len(seq)-1, t) // positions scored under teacher forcing end at n−1
		if pl > n {
			return nil, fmt.Errorf("%s:%d: the prompt fills the model's context of %d positions: no response token to answer", ex.Source, ex.Line, t)
		}
		items[i] = item{prompt: seq[:pl], label: seq[pl : n+1], budget: len(r) + 1}
	}
	// Generate in batches of similar budgets: Generate takes one
	// length per call, and greedy decoding of a row does not depend on the
	// other rows, so a longer run cut to the row's budget is its answer.
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return items[order[a]].budget < items[order[b]].budget })
	out := make([]labelnoise.Answer, len(items))
	done := 0
	for lo := 0; lo < len(order); lo += batch {
		idx := order[lo:min(lo+batch, len(order))]
		prompts := make([][]int, len(idx))
		maxNew := 0
		for k, i := range idx {
			prompts[k] = items[i].prompt
			maxNew = max(maxNew, items[i].budget)
		}
		gen, err := Generate(ctx, m, prompts, maxNew, len(idx))
		if err != nil {
			return nil, err
		}
		answers := make([][]int, len(idx))
		for k, i := range idx {
			a := gen[k][:min(len(gen[k]), items[i].budget)]
			if len(a) == 0 {
				ex := data[i]
				return nil, fmt.Errorf("%s:%d: the model generated nothing (the prompt fills the context of %d positions)", ex.Source, ex.Line, t)
			}
			answers[k] = a
		}
		lps, err := forced(m, prompts, answers)
		if err != nil {
			return nil, err
		}
		for k, i := range idx {
			out[i] = labelnoise.Answer{Text: tok.Decode(answers[k]), LogP: lps[k], Agree: slices.Equal(answers[k], items[i].label)}
		}
		done += len(idx)
		if progress != nil {
			progress(done)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// forced returns, for each prompt and answer, the log-probability of each
// answer token by teacher forcing on prompt·answer. Every prompt·answer
// fits the context plus one (as Generate leaves it).
func forced(m *Model, prompts, answers [][]int) ([][]float64, error) {
	t, v := m.Cfg.Context, m.Cfg.Vocab
	b := Batch{Seqs: len(prompts)}
	for k := range prompts {
		seq := append(slices.Clip(prompts[k]), answers[k]...)
		if len(seq)-1 > t {
			return nil, errors.New("train: an answer longer than the context")
		}
		ids, tg, mask := make([]int, t), make([]int, t), make([]bool, t)
		for i := 0; i+1 < len(seq); i++ {
			ids[i], tg[i] = seq[i], seq[i+1]
			mask[i] = i+1 >= len(prompts[k])
		}
		b.IDs, b.Targets, b.Mask = append(b.IDs, ids...), append(b.Targets, tg...), append(b.Mask, mask...)
	}
	logits, err := m.Logits(b)
	if err != nil {
		return nil, err
	}
	z := mat.Data[float32](logits.Value())
	out := make([][]float64, len(prompts))
	for k := range prompts {
		for i := range t {
			r := k*t + i
			if !b.Mask[r] {
				continue
			}
			row := z[r*v : (r+1)*v]
			mx := float64(row[0])
			for _, x := range row {
				mx = math.Max(mx, float64(x))
			}
			var s float64
			for _, x := range row {
				s += math.Exp(float64(x) - mx)
			}
			out[k] = append(out[k], float64(row[b.Targets[r]])-mx-math.Log(s))
		}
	}
	return out, nil
}

// NullData returns the null set of data (see labelnoise.NullRecipe): the
// examples with their prompts' letters and digits shuffled
// (labelnoise.NullExample), responses unchanged, for at most max of them
// (labelnoise.PickNull; 0 means labelnoise.DefaultNullPrompts, negative none). The
// prompt is shuffled as one text: a chat rendered by sftdata.RenderChat
// would have its role names shuffled too, so build a chat's null set with
// NullSFT from the sftdata examples instead (the command line does).
func NullData(data []Example, max int, seed uint64) []Example {
	exs := make([]sftdata.Example, len(data))
	for i, ex := range data {
		exs[i] = sftdata.Example{Kind: sftdata.PromptResponse, Prompt: ex.Prompt, Response: ex.Response, Source: ex.Source, Line: ex.Line}
	}
	return NullSFT(exs, max, seed)
}

// NullSFT returns the null set of SFT examples as examples for a capsel
// model: each picked example's prompt, or each turn of a chat's context,
// shuffled (labelnoise.NullExample), then rendered as the model reads it
// (sftdata.Example.PromptText). max is as for NullData.
func NullSFT(exs []sftdata.Example, max int, seed uint64) []Example {
	if max == 0 {
		max = labelnoise.DefaultNullPrompts
	}
	pick := labelnoise.PickNull(len(exs), max, func(i int) string { return exs[i].Source + ":" + strconv.Itoa(exs[i].Line) })
	var out []Example
	for i, ex := range exs {
		if !pick[i] {
			continue
		}
		if null, ok := labelnoise.NullExample(ex, seed); ok {
			out = append(out, Example{Prompt: null.PromptText(), Response: null.Response, Source: ex.Source, Line: ex.Line})
		}
	}
	return out
}
