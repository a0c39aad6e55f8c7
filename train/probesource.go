package train

import (
	"context"
	"fmt"
	"io"

	"github.com/capsel/capsel/probe"
)

// probeSource scores examples with a model, a batch at a time, and hands
// them to the probe one sequence per example: the log-probs of the response
// tokens and EOS, the target characters, and the full next-token
// distribution for the reservoir's theory contexts.
type probeSource struct {
	ctx   context.Context
	m     *Model
	tok   *Tokenizer
	rows  []encoded
	data  []Example
	batch int

	next    int // next row to hand out
	pending []TokenScores
	first   int // row index of pending[0]
}

var _ probe.Source = (*probeSource)(nil)

// ProbeSource returns a probe.Source that scores data with the model by
// teacher forcing, batch examples per forward pass. It fails at once on
// characters outside the model's alphabet and on examples whose response
// falls outside the context.
func ProbeSource(ctx context.Context, m *Model, tok *Tokenizer, data []Example, batch int) (probe.Source, error) {
	rows, st, err := encode(tok, data, m.Cfg.Context)
	if err != nil {
		return nil, err
	}
	if st.Dropped > 0 {
		return nil, fmt.Errorf("%d examples have no response token within the model's context of %d positions", st.Dropped, m.Cfg.Context)
	}
	return &probeSource{ctx: ctx, m: m, tok: tok, rows: rows, data: data, batch: max(1, batch)}, nil
}

func (s *probeSource) Next() (probe.Sequence, error) {
	if s.next >= len(s.rows) {
		return probe.Sequence{}, io.EOF
	}
	if s.next >= s.first+len(s.pending) {
		hi := min(s.next+s.batch, len(s.rows))
		s.pending, s.first = s.pending[:0], s.next
		err := teacherForced(s.ctx, s.m, s.rows[s.next:hi], s.batch, func(_ int, tf TokenScores) {
			s.pending = append(s.pending, tf)
		})
		if err != nil {
			return probe.Sequence{}, err
		}
	}
	tf := s.pending[s.next-s.first]
	ex := s.data[s.next]
	s.next++
	toks := make([]string, len(tf.Target))
	for i, id := range tf.Target {
		if id == EOSID {
			toks[i] = "</s>"
		} else {
			toks[i] = s.tok.Decode([]int{id})
		}
	}
	return probe.Sequence{
		ID:       fmt.Sprintf("%s:%d", ex.Source, ex.Line),
		LogProbs: tf.LogP,
		Tokens:   toks,
		Full: func(i int) ([]float64, int) {
			return tf.Dist(i), tf.Target[i]
		},
		Source: ex.Source,
		Line:   ex.Line,
	}, nil
}
