package train

import (
	"context"
	"fmt"
	"io"
)

// Scorer scores examples with a model by teacher forcing, a batch per
// forward pass, and hands them out one at a time in order: the scores of
// each example's response tokens and EOS, their texts, and the model's full
// next-token distributions. It is how the probe reads the project's own
// models (package probe/ckprobe turns it into a probe.Source).
type Scorer struct {
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

// Scored is one example's scores.
type Scored struct {
	Example Example
	// Tokens[i] is the text of target Target[i] ("</s>" for EOS).
	Tokens []string
	TokenScores
}

// NewScorer returns a Scorer of data. It fails at once on characters
// outside the model's alphabet and on examples whose response falls outside
// the context.
func NewScorer(ctx context.Context, m *Model, tok *Tokenizer, data []Example, batch int) (*Scorer, error) {
	rows, st, err := encode(tok, data, m.Cfg.Context)
	if err != nil {
		return nil, err
	}
	if st.Dropped > 0 {
		return nil, fmt.Errorf("%d examples have no response token within the model's context of %d positions", st.Dropped, m.Cfg.Context)
	}
	return &Scorer{ctx: ctx, m: m, tok: tok, rows: rows, data: data, batch: max(1, batch)}, nil
}

// Next returns the next example's scores, or io.EOF after the last.
func (s *Scorer) Next() (Scored, error) {
	if s.next >= len(s.rows) {
		return Scored{}, io.EOF
	}
	if s.next >= s.first+len(s.pending) {
		hi := min(s.next+s.batch, len(s.rows))
		s.pending, s.first = s.pending[:0], s.next
		err := teacherForced(s.ctx, s.m, s.rows[s.next:hi], s.batch, func(_ int, tf TokenScores) {
			s.pending = append(s.pending, tf)
		})
		if err != nil {
			return Scored{}, err
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
	return Scored{Example: ex, Tokens: toks, TokenScores: tf}, nil
}
