package train

import (
	"context"
	"strconv"

	"github.com/capsel/capsel/probe"
)

// ProbeSource returns a probe.Source that scores data with the model.
//
// Deprecated: use package probe/ckprobe (ckprobe.Source, or ckprobe.Report
// to score a checkpoint into a report). This shim keeps
// experiments/runner.go building until its Probe switches to
// ckprobe.Report; delete this file then, and train no longer imports probe.
func ProbeSource(ctx context.Context, m *Model, tok *Tokenizer, data []Example, batch int) (probe.Source, error) {
	sc, err := NewScorer(ctx, m, tok, data, batch)
	if err != nil {
		return nil, err
	}
	return probe.SourceFunc(func() (probe.Sequence, error) {
		s, err := sc.Next()
		if err != nil {
			return probe.Sequence{}, err
		}
		return probe.Sequence{ID: s.Example.Source + ":" + strconv.Itoa(s.Example.Line), LogProbs: s.LogP, Tokens: s.Tokens,
			Full:   func(i int) ([]float64, int) { return s.Dist(i), s.Target[i] },
			Source: s.Example.Source, Line: s.Example.Line}, nil
	}), nil
}
