// Package ckprobe runs the probe on the project's own checkpoints: it
// scores SFT examples with a capsel model by teacher forcing and turns the
// scores into probe sequences, with the model's full next-token
// distributions for the reservoir's theory contexts.
//
// It is the one place where a checkpoint is scored into a report, and the
// only package that imports both train and probe.
package ckprobe

import (
	"context"
	"fmt"
	"strconv"

	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/train"
)

// Batch is the number of examples per forward pass.
const Batch = 32

// Source returns a probe.Source that scores data with the model, batch
// examples per forward pass. Each example is one sequence: its response
// tokens and the end token, named by its file and line. It fails at once on
// characters outside the model's alphabet and on examples whose response
// falls outside the model's context.
func Source(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example, batch int) (probe.Source, error) {
	sc, err := train.NewScorer(ctx, m, tok, data, batch)
	if err != nil {
		return nil, err
	}
	return probe.SourceFunc(func() (probe.Sequence, error) {
		s, err := sc.Next()
		if err != nil {
			return probe.Sequence{}, err
		}
		return probe.Sequence{
			ID:       s.Example.Source + ":" + strconv.Itoa(s.Example.Line),
			LogProbs: s.LogP,
			Tokens:   s.Tokens,
			Full:     func(i int) ([]float64, int) { return s.Dist(i), s.Target[i] },
			Source:   s.Example.Source,
			Line:     s.Example.Line,
		}, nil
	}), nil
}

// Report scores data with the checkpoint into a probe report. The report
// lists the data as one input, named dataName, of format "checkpoint
// ckName"; cfg.Vocab defaults to the model's vocabulary, and cfg.Progress,
// when set, sees every sequence. Cancelling ctx stops it between batches.
func Report(ctx context.Context, ck *train.Checkpoint, ckName string, data []train.Example, dataName string, cfg probe.Config) (*probe.Report, error) {
	m, err := ck.NewModel()
	if err != nil {
		return nil, err
	}
	src, err := Source(ctx, m, ck.Tokenizer, data, Batch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dataName, err)
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
	if err := acc.Consume(src); err != nil {
		return nil, err
	}
	return acc.Report()
}
