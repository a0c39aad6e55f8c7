package train

import (
	"context"
	"fmt"
	"slices"

	"github.com/capsel/capsel/labelnoise"
)

// NullSeed seeds the shuffle of the null prompts (labelnoise.NullPrompt).
const NullSeed = 1

// LabelExamples scores data with the model for the noise-aware analysis
// (package labelnoise, method Greedy): per example the label path under
// teacher forcing (log p of each target, the model's first choice and
// whether the target is it) and the model's own greedy answer, at most one
// token longer than the label, with its tokens' probabilities under teacher
// forcing (the end token included) and whether it is the label token for
// token. The null set is the same for the prompts with their letters and
// digits shuffled (labelnoise.NullPrompt), up to maxNull of them (all for
// maxNull < 0). IDs are "source:line".
func LabelExamples(ctx context.Context, m *Model, tok *Tokenizer, data []Example, maxNull int) (ex, null []labelnoise.Example, err error) {
	labels, err := labelPaths(ctx, m, tok, data)
	if err != nil {
		return nil, nil, err
	}
	own, err := ownAnswers(ctx, m, tok, data, labels)
	if err != nil {
		return nil, nil, err
	}
	ex = make([]labelnoise.Example, len(data))
	for i, d := range data {
		ex[i] = labels[i]
		ex[i].ID = fmt.Sprintf("%s:%d", d.Source, d.Line)
		ex[i].Own = own[i]
	}
	n := len(data)
	if maxNull >= 0 && maxNull < n {
		n = maxNull
	}
	if n == 0 {
		return ex, nil, nil
	}
	nd := make([]Example, n)
	for i := range nd {
		// Spread the null prompts over the data when they are fewer.
		d := data[i*len(data)/n]
		nd[i] = Example{Prompt: labelnoise.NullPrompt(d.Prompt, NullSeed), Response: d.Response, Source: "null:" + d.Source, Line: d.Line}
	}
	nl, err := labelPaths(ctx, m, tok, nd)
	if err != nil {
		return nil, nil, fmt.Errorf("null prompts: %w", err)
	}
	nown, err := ownAnswers(ctx, m, tok, nd, nl)
	if err != nil {
		return nil, nil, fmt.Errorf("null prompts: %w", err)
	}
	null = make([]labelnoise.Example, n)
	for i := range null {
		null[i] = nl[i]
		null[i].ID = fmt.Sprintf("%s:%d", nd[i].Source, nd[i].Line)
		null[i].Own = nown[i]
	}
	return ex, null, nil
}

// labelPaths scores the data's labels by teacher forcing.
func labelPaths(ctx context.Context, m *Model, tok *Tokenizer, data []Example) ([]labelnoise.Example, error) {
	out := make([]labelnoise.Example, len(data))
	_, err := Score(ctx, m, tok, data, 64, func(i int, tf TokenScores) {
		e := labelnoise.Example{LogP: slices.Clone(tf.LogP), Top1: slices.Clone(tf.Top1P), Match: make([]bool, len(tf.Target))}
		for j := range tf.Target {
			e.Match[j] = tf.Argmax[j] == tf.Target[j]
		}
		out[i] = e
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ownAnswers generates the model's greedy answers to the data's prompts, at
// most one token longer than each label path, and scores them by teacher
// forcing.
func ownAnswers(ctx context.Context, m *Model, tok *Tokenizer, data []Example, labels []labelnoise.Example) ([]*labelnoise.Answer, error) {
	prompts := make([][]int, len(data))
	longest := 0
	for i, d := range data {
		p, err := tok.Encode(d.Prompt)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: prompt: %w", d.Source, d.Line, err)
		}
		prompts[i] = append([]int{BOSID}, p...)
		longest = max(longest, len(labels[i].LogP)+1)
	}
	gens, err := Generate(ctx, m, prompts, longest, 64)
	if err != nil {
		return nil, err
	}
	answers := make([]Example, len(data))
	agree := make([]bool, len(data))
	for i, g := range gens {
		want, err := tok.Encode(data[i].Response)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: response: %w", data[i].Source, data[i].Line, err)
		}
		// The label as the model would produce it: its tokens and the end
		// token. Generation stops after an end token, so agreeing means
		// generating exactly this.
		want = append(want, EOSID)
		agree[i] = slices.Equal(g, want)
		// The answer's text: up to its end token, without special tokens
		// (the model may emit any id).
		var text []int
		for _, id := range g {
			if id == EOSID {
				break
			}
			if id >= FirstChar {
				text = append(text, id)
			}
		}
		answers[i] = Example{Prompt: data[i].Prompt, Response: tok.Decode(text), Source: data[i].Source, Line: data[i].Line}
	}
	scored, err := labelPaths(ctx, m, tok, answers)
	if err != nil {
		return nil, fmt.Errorf("own answers: %w", err)
	}
	out := make([]*labelnoise.Answer, len(data))
	for i := range out {
		out[i] = &labelnoise.Answer{Text: answers[i].Response, LogP: scored[i].LogP, Agree: agree[i]}
	}
	return out, nil
}
