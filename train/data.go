package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/capsel/capsel/sftdata"
)

// Special token ids. Characters start at FirstChar.
const (
	PadID     = 0 // padding: never a scored target
	BOSID     = 1 // starts every sequence
	EOSID     = 2 // ends every response; generation stops here
	FirstChar = 3
)

// Tokenizer is a character-level tokenizer. It is stored inside checkpoints
// so that a model always decodes with the alphabet it was trained on.
type Tokenizer struct {
	chars []rune
	index map[rune]int
}

// NewTokenizer builds the alphabet of every character in texts, sorted.
func NewTokenizer(texts ...string) *Tokenizer {
	seen := map[rune]bool{}
	for _, s := range texts {
		for _, r := range s {
			seen[r] = true
		}
	}
	chars := make([]rune, 0, len(seen))
	for r := range seen {
		chars = append(chars, r)
	}
	sort.Slice(chars, func(i, j int) bool { return chars[i] < chars[j] })
	return tokenizerOf(chars)
}

func tokenizerOf(chars []rune) *Tokenizer {
	t := &Tokenizer{chars: chars, index: make(map[rune]int, len(chars))}
	for i, r := range chars {
		t.index[r] = FirstChar + i
	}
	return t
}

// Size is the vocabulary size: the special tokens plus the characters.
func (t *Tokenizer) Size() int { return FirstChar + len(t.chars) }

// Alphabet returns the characters in id order.
func (t *Tokenizer) Alphabet() string { return string(t.chars) }

// UnknownCharError reports a character outside the alphabet.
type UnknownCharError struct {
	Char rune
	Pos  int // byte offset in the text
}

func (e *UnknownCharError) Error() string {
	return fmt.Sprintf("character %q (U+%04X) at byte %d is not in the model's alphabet", e.Char, e.Char, e.Pos)
}

// Encode maps each character to its id.
func (t *Tokenizer) Encode(s string) ([]int, error) {
	ids := make([]int, 0, len(s))
	for pos, r := range s {
		id, ok := t.index[r]
		if !ok {
			return nil, &UnknownCharError{Char: r, Pos: pos}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Decode maps ids back to text; special tokens are dropped.
func (t *Tokenizer) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if id >= FirstChar && id < t.Size() {
			b.WriteRune(t.chars[id-FirstChar])
		}
	}
	return b.String()
}

// MarshalJSON stores the alphabet as one string.
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"alphabet": string(t.chars)})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (t *Tokenizer) UnmarshalJSON(b []byte) error {
	var v struct {
		Alphabet *string `json:"alphabet"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Alphabet == nil {
		return errors.New(`tokenizer: missing "alphabet"`)
	}
	chars := []rune(*v.Alphabet)
	for i := 1; i < len(chars); i++ {
		if chars[i] <= chars[i-1] {
			return errors.New("tokenizer: alphabet is not sorted and unique")
		}
	}
	*t = *tokenizerOf(chars)
	return nil
}

// Example is one training or evaluation example. For SFT the loss covers
// the response (and the end-of-sequence token) only; pretraining text is an
// example with an empty prompt, so the loss covers all of it.
type Example struct {
	Prompt   string
	Response string
	Source   string // file name, for errors
	Line     int    // 1-based line in Source
}

// ReadExamples reads training data with package sftdata, the project's one
// reader of SFT files: JSONL with "prompt" and "response" (or TRL's
// "completion"), chat "messages" (the last assistant turn is the response;
// the turns before it are rendered as sftdata.ChatTemplate says), or "text"
// (pretraining), or plain text with one pretraining document per line. An
// example's prompt is empty for pretraining text, so the loss covers all
// of it. Errors name the file and line.
func ReadExamples(r io.Reader, name string) ([]Example, error) {
	in, err := sftdata.ReadAll(r, name)
	if err != nil {
		return nil, err
	}
	out := make([]Example, len(in))
	for i, ex := range in {
		out[i] = Example{Prompt: ex.PromptText(), Response: ex.Response, Source: ex.Source, Line: ex.Line}
	}
	return out, nil
}

// encoded is one example as a fixed-length row of the batch matrix.
type encoded struct {
	ids, targets []int
	mask         []bool
	promptLen    int // tokens of BOS + prompt
	example      int // index of the example in the data
}

// DataStats counts what encoding did to a data set.
type DataStats struct {
	Examples  int `json:"examples"`  // encoded examples
	Truncated int `json:"truncated"` // examples cut on the right to fit the context
	Dropped   int `json:"dropped"`   // examples with no response token left after truncation
	Tokens    int `json:"tokens"`    // scored target tokens over all examples
}

// encode turns examples into rows of length T: inputs BOS·prompt·response,
// targets shifted by one and ending in EOS, scored on the response and EOS.
// Examples longer than T are truncated on the right (as in the paper's code)
// and counted; an example whose response falls entirely outside the context
// is dropped and counted.
func encode(tok *Tokenizer, data []Example, t int) ([]encoded, DataStats, error) {
	var st DataStats
	out := make([]encoded, 0, len(data))
	for k, ex := range data {
		p, err := tok.Encode(ex.Prompt)
		if err != nil {
			return nil, st, fmt.Errorf("%s:%d: prompt: %w", ex.Source, ex.Line, err)
		}
		r, err := tok.Encode(ex.Response)
		if err != nil {
			return nil, st, fmt.Errorf("%s:%d: response: %w", ex.Source, ex.Line, err)
		}
		seq := make([]int, 0, len(p)+len(r)+2)
		seq = append(seq, BOSID)
		seq = append(seq, p...)
		seq = append(seq, r...)
		seq = append(seq, EOSID)
		e := encoded{ids: make([]int, t), targets: make([]int, t), mask: make([]bool, t), promptLen: 1 + len(p), example: k}
		n := len(seq) - 1 // positions
		if n > t {
			n = t
			st.Truncated++
		}
		scored := 0
		for i := range n {
			e.ids[i], e.targets[i] = seq[i], seq[i+1]
			if i+1 >= e.promptLen { // predicts a response token or EOS
				e.mask[i] = true
				scored++
			}
		}
		if scored == 0 {
			st.Dropped++
			continue
		}
		st.Tokens += scored
		out = append(out, e)
	}
	st.Examples = len(out)
	if len(out) == 0 {
		where := "the data"
		if len(data) > 0 && data[0].Source != "" {
			where = data[0].Source
		}
		return nil, st, fmt.Errorf("%s: no example has a response token within the context of %d positions", where, t)
	}
	return out, st, nil
}

// sampler yields batches in a fixed order: epoch e visits the examples in
// the permutation drawn from PCG(seed, e), and batch k covers positions
// [k·B, (k+1)·B) of the concatenated epochs. Batch k depends only on the
// seed and k, so a resumed run sees the same data as an uninterrupted one.
type sampler struct {
	n, batch int
	seed     uint64
	epoch    int
	perm     []int
}

func (s *sampler) indices(k int) []int {
	out := make([]int, s.batch)
	for i := range out {
		pos := k*s.batch + i
		e := pos / s.n
		if s.perm == nil || e != s.epoch {
			s.perm = rand.New(rand.NewPCG(s.seed, uint64(e)+0x5a17)).Perm(s.n)
			s.epoch = e
		}
		out[i] = s.perm[pos%s.n]
	}
	return out
}

// makeBatch stacks encoded rows.
func makeBatch(rows []encoded, idx []int) Batch {
	b := Batch{Seqs: len(idx)}
	for _, i := range idx {
		b.IDs = append(b.IDs, rows[i].ids...)
		b.Targets = append(b.Targets, rows[i].targets...)
		b.Mask = append(b.Mask, rows[i].mask...)
	}
	return b
}
