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
	"fmt"
	"strconv"

	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/probe"
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

// Progress is how far a measurement has come: Stage is "answers" (greedy
// decoding of the examples), "null answers", "scoring" or "null scoring".
type Progress struct {
	Stage       string
	Done, Total int
}

// Options say how Report measures the noise-aware section (when
// cfg.NoiseAware): Null is the null set (nil: train.NullData(data,
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
		if own, err = train.Answers(ctx, m, tok, data, Batch, stage("answers", len(data))); err != nil {
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
		null = train.NullData(data, cfg.NullPrompts, cfg.Seed)
	}
	if len(null) == 0 {
		return nil
	}
	var nullOwn []labelnoise.Answer
	if greedy {
		if nullOwn, err = train.Answers(ctx, m, tok, null, Batch, stage("null answers", len(null))); err != nil {
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
// and a null set of up to labelnoise.DefaultNullPrompts shuffled prompts.
type NoiseOptions struct {
	// TeacherForced uses the teacher-forced approximation instead of
	// greedy answers (method teacher-forced).
	TeacherForced bool
	// Null is the null set; nil builds it with train.NullData(data, NullPrompts,
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
