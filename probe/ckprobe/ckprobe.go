// Package ckprobe runs the probe on the project's own checkpoints: it
// scores SFT examples with a capsel model by teacher forcing and turns the
// scores into probe sequences, with the model's full next-token
// distributions for the reservoir's theory contexts and, for the
// noise-aware analysis (package labelnoise), the model's first choice at
// every target and its own greedy answer to every prompt.
//
// It is the one place where a checkpoint is scored into a report, and the
// only package that imports both train and probe.
package ckprobe

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
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/sftdata"
	"github.com/capsel/capsel/train"
)

// Batch is the number of examples per forward pass.
const Batch = 32

// Source returns a probe.Source that scores data with the model, batch
// examples per forward pass. Each example is one sequence: its response
// tokens and the end token, named by its file and line, with the model's
// first choice at each. It fails at once on characters outside the model's
// alphabet and on examples whose response falls outside the model's
// context.
func Source(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example, batch int) (probe.Source, error) {
	return source(ctx, m, tok, data, batch, nil)
}

// source is Source with the examples' own answers (nil: none).
func source(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example, batch int, own []labelnoise.Answer) (probe.Source, error) {
	sc, err := train.NewScorer(ctx, m, tok, data, batch)
	if err != nil {
		return nil, err
	}
	k := 0
	var match []bool
	return probe.SourceFunc(func() (probe.Sequence, error) {
		s, err := sc.Next()
		if err != nil {
			return probe.Sequence{}, err
		}
		match = match[:0]
		for j, am := range s.Argmax {
			match = append(match, am == s.Target[j])
		}
		seq := probe.Sequence{
			ID:         s.Example.Source + ":" + strconv.Itoa(s.Example.Line),
			LogProbs:   s.LogP,
			Tokens:     s.Tokens,
			Full:       func(i int) ([]float64, int) { return s.Dist(i), s.Target[i] },
			First:      s.Top1P,
			FirstMatch: match,
			Source:     s.Example.Source,
			Line:       s.Example.Line,
			Record:     k + 1, // the example's place in data
		}
		if own != nil {
			seq.Own = &own[k]
		}
		k++
		return seq, nil
	}), nil
}

// Answers returns the model's own greedy answer to each example's prompt:
// greedy decoding (train.Generate) of at most the response's length plus
// one tokens (room for the end token), stopping at the end token; the
// probability of each of its tokens by teacher forcing on the answer; and
// Agree when the answer equals the label (the response and the end token,
// as far as they fit the context) token for token. progress, when set, is
// called with the number of examples answered so far.
func Answers(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example, batch int, progress func(done int)) ([]labelnoise.Answer, error) {
	if batch < 1 {
		batch = Batch
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
		seq := append(append(append([]int{train.BOSID}, p...), r...), train.EOSID)
		pl := 1 + len(p)
		n := min(len(seq)-1, t) // positions scored under teacher forcing end at n−1
		if pl > n {
			return nil, fmt.Errorf("%s:%d: the prompt fills the model's context of %d positions: no response token to answer", ex.Source, ex.Line, t)
		}
		items[i] = item{prompt: seq[:pl], label: seq[pl : n+1], budget: len(r) + 1}
	}
	// Generate in batches of similar budgets: train.Generate takes one
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
		gen, err := train.Generate(ctx, m, prompts, maxNew, len(idx))
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
// fits the context plus one (as train.Generate leaves it).
func forced(m *train.Model, prompts, answers [][]int) ([][]float64, error) {
	t, v := m.Cfg.Context, m.Cfg.Vocab
	b := train.Batch{Seqs: len(prompts)}
	for k := range prompts {
		seq := append(slices.Clip(prompts[k]), answers[k]...)
		if len(seq)-1 > t {
			return nil, errors.New("ckprobe: an answer longer than the context")
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

// NullData returns the null set of data (see probe.NullRecipe): the
// examples with their prompts' letters and digits shuffled
// (probe.NullExample), responses unchanged, for at most max of them
// (probe.PickNull; 0 means probe.DefaultNullPrompts, negative none). The
// prompt is shuffled as one text: a chat rendered by sftdata.RenderChat
// would have its role names shuffled too, so build a chat's null set with
// NullSFT from the sftdata examples instead (the command line does).
func NullData(data []train.Example, max int, seed uint64) []train.Example {
	exs := make([]sftdata.Example, len(data))
	for i, ex := range data {
		exs[i] = sftdata.Example{Kind: sftdata.PromptResponse, Prompt: ex.Prompt, Response: ex.Response, Source: ex.Source, Line: ex.Line}
	}
	return NullSFT(exs, max, seed)
}

// NullSFT returns the null set of SFT examples as examples for a capsel
// model: each picked example's prompt, or each turn of a chat's context,
// shuffled (probe.NullExample), then rendered as the model reads it
// (sftdata.Example.PromptText). max is as for NullData.
func NullSFT(exs []sftdata.Example, max int, seed uint64) []train.Example {
	if max == 0 {
		max = probe.DefaultNullPrompts
	}
	pick := probe.PickNull(len(exs), max, func(i int) string { return exs[i].Source + ":" + strconv.Itoa(exs[i].Line) })
	var out []train.Example
	for i, ex := range exs {
		if !pick[i] {
			continue
		}
		if null, ok := probe.NullExample(ex, seed); ok {
			out = append(out, train.Example{Prompt: null.PromptText(), Response: null.Response, Source: ex.Source, Line: ex.Line})
		}
	}
	return out
}

// Progress is how far a measurement has come: Stage is "answers" (greedy
// decoding of the examples), "null answers", "scoring" or "null scoring".
type Progress struct {
	Stage       string
	Done, Total int
}

// Options say how Report measures the noise-aware section (when
// cfg.NoiseAware): Null is the null set (nil: NullData(data,
// cfg.NullPrompts, cfg.Seed)); Progress, when set, sees every stage.
type Options struct {
	Null     []train.Example
	Progress func(Progress)
}

// Report scores data with the checkpoint into a probe report. The report
// lists the data as one input, named dataName, of format "checkpoint
// ckName"; cfg.Vocab defaults to the model's vocabulary, and cfg.Progress,
// when set, sees every sequence. With cfg.NoiseAware the report has its
// noise-aware section, with the model's own greedy answers (unless
// cfg.TeacherForced) and a null set of shuffled prompts. Cancelling ctx
// stops it between batches.
func Report(ctx context.Context, ck *train.Checkpoint, ckName string, data []train.Example, dataName string, cfg probe.Config) (*probe.Report, error) {
	return ReportWith(ctx, ck, ckName, data, dataName, cfg, Options{})
}

// ReportWith is Report with a given null set and progress.
func ReportWith(ctx context.Context, ck *train.Checkpoint, ckName string, data []train.Example, dataName string, cfg probe.Config, opt Options) (*probe.Report, error) {
	m, err := ck.NewModel()
	if err != nil {
		return nil, err
	}
	if cfg.Vocab == 0 {
		cfg.Vocab = ck.Model.Vocab
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	acc := probe.NewAccumulator(cfg)
	format := "checkpoint"
	if ckName != "" {
		format += " " + ckName
	}
	acc.AddSource(dataName, format)
	if err := measure(ctx, m, ck.Tokenizer, data, dataName, acc, cfg, opt); err != nil {
		return nil, err
	}
	return acc.Report()
}

// measure feeds the accumulator the data's sequences and, with
// cfg.NoiseAware, the null set's.
func measure(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example, dataName string, acc *probe.Accumulator, cfg probe.Config, opt Options) error {
	stage := func(name string, total int) func(int) {
		if opt.Progress == nil {
			return nil
		}
		opt.Progress(Progress{Stage: name, Total: total})
		return func(done int) { opt.Progress(Progress{Stage: name, Done: done, Total: total}) }
	}
	greedy := cfg.NoiseAware && !cfg.TeacherForced
	var own []labelnoise.Answer
	if greedy {
		var err error
		if own, err = Answers(ctx, m, tok, data, Batch, stage("answers", len(data))); err != nil {
			return fmt.Errorf("%s: %w", dataName, err)
		}
	}
	src, err := source(ctx, m, tok, data, Batch, own)
	if err != nil {
		return fmt.Errorf("%s: %w", dataName, err)
	}
	if p := stage("scoring", len(data)); p != nil {
		prev := cfg.Progress
		acc.SetProgress(func(pr probe.Progress) {
			p(int(pr.Sequences + pr.Skipped))
			if prev != nil {
				prev(pr)
			}
		})
	}
	if err := acc.Consume(src); err != nil {
		return err
	}
	if !cfg.NoiseAware {
		return nil
	}
	null := opt.Null
	if null == nil {
		null = NullData(data, cfg.NullPrompts, cfg.Seed)
	}
	if len(null) == 0 {
		return nil
	}
	var nullOwn []labelnoise.Answer
	if greedy {
		if nullOwn, err = Answers(ctx, m, tok, null, Batch, stage("null answers", len(null))); err != nil {
			return fmt.Errorf("%s: null set: %w", dataName, err)
		}
	}
	nsrc, err := source(ctx, m, tok, null, Batch, nullOwn)
	if err != nil {
		return fmt.Errorf("%s: null set: %w", dataName, err)
	}
	acc.SetProgress(nil)
	p := stage("null scoring", len(null))
	k := 0
	return acc.ConsumeNull(probe.SourceFunc(func() (probe.Sequence, error) {
		seq, err := nsrc.Next()
		if err == nil && p != nil {
			k++
			p(k)
		}
		return seq, err
	}))
}

// NoiseOptions tune LabelNoise. The zero value measures with greedy answers
// and a null set of up to probe.DefaultNullPrompts shuffled prompts.
type NoiseOptions struct {
	// TeacherForced uses the teacher-forced approximation instead of
	// greedy answers (method teacher-forced).
	TeacherForced bool
	// Null is the null set; nil builds it with NullData(data, NullPrompts,
	// Seed).
	Null        []train.Example
	NullPrompts int
	// Seed seeds the null prompts' shuffle and the bootstrap.
	Seed uint64
	// Analysis tunes the estimator (its Seed defaults to Seed).
	Analysis labelnoise.Options
	// Progress, when set, sees every stage.
	Progress func(Progress)
}

// NoiseRun is a noise-aware measurement: the analysis and the per-example
// records it came from.
type NoiseRun struct {
	// Result is the analysis; nil when none could be made, and then
	// Unavailable says why.
	Result      *labelnoise.Result
	Unavailable string
	// Examples holds one record per data example, in data order (ID
	// "file:line"), and Null one per null prompt; Result.Flags[i].Index
	// indexes Examples (and data).
	Examples, Null []labelnoise.Example
}

// LabelNoise measures the model on data for the noise-aware analysis: per
// example the label path under teacher forcing (p of each target and the
// model's first choice), the model's own greedy answer (see Answers) and
// the same on a null set of shuffled prompts, then labelnoise.Analyze. It
// is what Report's noise-aware section holds, for callers that need the
// records (the experiments, or a trainer that drops flagged examples).
func LabelNoise(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example, opt NoiseOptions) (*NoiseRun, error) {
	cfg := probe.Config{Reservoir: -1, Seed: opt.Seed, Bootstrap: opt.Analysis.Resamples, NoiseAware: true,
		TeacherForced: opt.TeacherForced, NullPrompts: opt.NullPrompts, Noise: opt.Analysis, Vocab: m.Cfg.Vocab}
	acc := probe.NewAccumulator(cfg)
	name := "data"
	if len(data) > 0 && data[0].Source != "" {
		name = data[0].Source
	}
	if err := measure(ctx, m, tok, data, name, acc, cfg, Options{Null: opt.Null, Progress: opt.Progress}); err != nil {
		return nil, err
	}
	rep, err := acc.Report()
	if err != nil {
		return nil, err
	}
	run := &NoiseRun{Result: rep.NoiseAware.Result, Unavailable: rep.NoiseAware.Unavailable}
	ex, refs, null := acc.NoiseExamples()
	run.Null = null
	// The analysis orders examples by file and line; put them back in the
	// data's order (Record is each one's place in data), and the flags'
	// indices with them.
	run.Examples = make([]labelnoise.Example, len(data))
	for i, r := range refs {
		run.Examples[r.Record-1] = ex[i]
	}
	if run.Result != nil {
		for k, f := range run.Result.Flags {
			run.Result.Flags[k].Index = refs[f.Index].Record - 1
		}
	}
	return run, nil
}
