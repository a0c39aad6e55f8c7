package probe

import (
	"errors"
	"fmt"
	"io"

	"github.com/capsel/capsel/labelnoise"
)

// Sequence is one scored example: the base model's log-probabilities of the
// target tokens of one training sequence, in order.
//
// A Source may reuse the slices of a Sequence for the next one, so they are
// valid only until the next call to Next; strings are never reused.
type Sequence struct {
	// ID names the sequence; it may be empty. When set it should be unique:
	// the reservoir's sample is keyed on it, which makes the sample the same
	// however the input is split into shards.
	ID string
	// LogProbs[i] is log p of the target token at position i (natural log).
	// Values at or below −9999 (vLLM's clamp of −∞) or −Inf mean p = 0.
	LogProbs []float64
	// Mask[i] says whether position i is scored (a response token). nil
	// means every position is scored.
	Mask []bool
	// Top[i] lists other tokens' log-probs at position i (a top-k list,
	// which may include the target). nil when the source has none; a nil
	// entry means none at that position.
	Top [][]TopToken
	// Names, when non-nil, fills in the text of Tokens[i] and of Top[i]'s
	// entries where the source left it empty to save time; like Full, the
	// accumulator calls it only for positions it keeps and before it asks
	// for the next sequence. Where texts are empty, listed tokens are
	// matched to the target by log-prob.
	Names func(i int)
	// Tokens[i] is the target token's text, when the source gives it.
	Tokens []string
	// Full, when non-nil, returns the model's whole next-token distribution
	// at position i (probabilities indexed by token id, summing to 1) and
	// the target's token id. The accumulator calls it only for the positions
	// it keeps in the reservoir, and before it asks for the next sequence,
	// so a scorer can hand out a view of its logits buffer.
	Full func(i int) (q []float64, target int)
	// First[i], when First is non-nil, is the probability of the model's
	// most likely token at position i, and FirstMatch[i] says that token is
	// the target: sources that know the whole distribution (a capsel
	// checkpoint) set them. Elsewhere the noise-aware analysis takes them
	// from Top: the first choice is the largest of the listed log-probs and
	// the target's, and it is the target when the target's log-prob is that
	// largest (ties count as the target).
	First      []float64
	FirstMatch []bool
	// Own is the model's own greedy answer to the example's prompt, when
	// the source has it (a server run with greedy answers, a checkpoint,
	// or a line with "own_answer"). It is read, never kept: the
	// accumulator copies what it needs.
	Own *labelnoise.Answer
	// Source and Line say where the sequence came from, for error messages.
	Source string
	Line   int
	// Record is the 1-based number of the input line among the non-blank
	// lines of the inputs read so far (0 when the source does not count
	// them): selector clean matches log-prob lines to SFT lines by it.
	Record int

	pre *seqStats // computed ahead by a parallel reader (see summarize)
}

// TopToken is one listed alternative at a position.
type TopToken struct {
	Token   string  `json:"token"`
	LogProb float64 `json:"logprob"`
}

// Source yields sequences. Next returns io.EOF after the last one. An error
// about one input line is a *LineError, after which the Source keeps going
// (the next call reads the next line), so that a caller may count the bad
// line and continue; any other error (reading a file, say) ends it.
//
// Every reader in this package is a Source; so is the trainer's checkpoint
// scorer.
type Source interface {
	Next() (Sequence, error)
}

// LineError is a problem with one line of an input.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

func lineErr(file string, line int, format string, args ...any) error {
	return &LineError{File: file, Line: line, Err: fmt.Errorf(format, args...)}
}

// IsLineError reports whether err concerns one input line, after which the
// Source can continue.
func IsLineError(err error) bool {
	var le *LineError
	return errors.As(err, &le)
}

// SliceSource serves sequences from memory; it is handy in tests and for
// callers that already hold their data.
type SliceSource struct {
	Seqs []Sequence
	i    int
}

// Next returns the next sequence or io.EOF.
func (s *SliceSource) Next() (Sequence, error) {
	if s.i >= len(s.Seqs) {
		return Sequence{}, io.EOF
	}
	s.i++
	return s.Seqs[s.i-1], nil
}

// SourceFunc adapts a function to a Source.
type SourceFunc func() (Sequence, error)

// Next calls f.
func (f SourceFunc) Next() (Sequence, error) { return f() }
