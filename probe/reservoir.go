package probe

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/capsel/capsel/theory"
)

// Record is one scored token kept in the report's reservoir, with what the
// source knew of the model's distribution at that position, so that theory
// can estimate risk-reduction rates from it later.
type Record struct {
	// Seq is the sequence's ID (empty when the source gave none) and Pos
	// the token's position in it.
	Seq string `json:"seq,omitempty"`
	Pos int    `json:"pos"`
	// LogProb is the target token's log-prob (NegInf for p = 0).
	LogProb float64 `json:"logprob"`
	// Token is the target token's text, when known.
	Token string `json:"token,omitempty"`
	// Top lists other tokens' log-probs (a top-k list), when known.
	Top []TopToken `json:"top,omitempty"`
	// Full is the whole next-token distribution, when the source had it
	// (the project's own checkpoints), and Target the target's token id.
	Full   []float64 `json:"full,omitempty"`
	Target int       `json:"target_id,omitempty"`

	priority uint64
}

type recordJSON Record

// MarshalJSON adds the record's sampling priority, so that reservoirs
// read back from report files still merge exactly.
func (r Record) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		recordJSON
		Priority string `json:"priority"`
	}{recordJSON(r), strconv.FormatUint(r.priority, 16)})
}

// UnmarshalJSON reads a record written by MarshalJSON.
func (r *Record) UnmarshalJSON(b []byte) error {
	var v struct {
		recordJSON
		Priority string `json:"priority"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	pr, err := strconv.ParseUint(v.Priority, 16, 64)
	if err != nil {
		return fmt.Errorf("record priority %q: want hexadecimal digits", v.Priority)
	}
	*r = Record(v.recordJSON)
	r.priority = pr
	return nil
}

// Context turns the record into a theory context with label = the target.
// A full distribution gives a full context. Otherwise the listed tokens are
// the top list plus the target when the list lacks it (its own log-prob is
// known), and the unlisted mass becomes theory's remainder bucket; vocab is
// the vocabulary size V (0: unknown). ok is false when the record does not
// make a valid context (for example listed probabilities summing above 1).
func (r Record) Context(vocab int) (c theory.Context, ok bool) {
	if r.Full != nil {
		c = theory.Context{Q: r.Full, Label: r.Target, Truth: theory.Unknown}
		return c, c.Validate() == nil
	}
	listed := make([]float64, 0, len(r.Top)+1)
	label := -1
	for j, t := range r.Top {
		listed = append(listed, math.Exp(t.LogProb))
		if label < 0 && sameToken(t, r.Token, t.LogProb, r.LogProb) {
			label = j
		}
	}
	if label < 0 {
		label = len(listed)
		listed = append(listed, math.Exp(r.LogProb))
	}
	c = theory.NewTopK(listed, label, theory.Unknown, vocab)
	if len(c.Q) < 2 { // a lone target with p = 1: all mass listed
		c.Q = append(c.Q, 0)
		c.Bucket = true
	}
	return c, c.Validate() == nil
}

// makeRecord copies position i of seq into a record that owns its memory.
func makeRecord(seq Sequence, i int, lp float64, pr uint64) Record {
	r := Record{Seq: seq.ID, Pos: i, LogProb: lp, priority: pr}
	if seq.Names != nil {
		seq.Names(i)
	}
	if seq.Tokens != nil {
		r.Token = strings.Clone(seq.Tokens[i])
	}
	if seq.Top != nil && len(seq.Top[i]) > 0 {
		r.Top = make([]TopToken, len(seq.Top[i]))
		for j, t := range seq.Top[i] {
			r.Top[j] = TopToken{Token: strings.Clone(t.Token), LogProb: clampLP(t.LogProb)}
		}
	}
	if seq.Full != nil {
		q, target := seq.Full(i)
		r.Full = slices.Clone(q)
		r.Target = target
	}
	return r
}

// reservoir keeps the size records of smallest priority (bottom-k
// sampling). A token's priority is a hash of its sequence's key, its
// position and the seed, so it is a uniform sample of the scored tokens,
// deterministic for a seed, independent of the order of the input, and
// mergeable: the bottom-k of a union is the bottom-k of the parts' bottom-ks.
type reservoir struct {
	size int
	recs []Record // a max-heap on (priority, Seq, Pos)
}

// wants is the quick test of whether priority pr could enter.
func (r *reservoir) wants(pr uint64) bool {
	return len(r.recs) < r.size || pr <= r.recs[0].priority
}

func recLess(a, b *Record) bool {
	if a.priority != b.priority {
		return a.priority < b.priority
	}
	if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
		return c < 0
	}
	return a.Pos < b.Pos
}

func (r *reservoir) offer(rec Record) {
	h := r.recs
	if len(h) < r.size {
		h = append(h, rec)
		for j := len(h) - 1; j > 0; { // sift up
			p := (j - 1) / 2
			if !recLess(&h[p], &h[j]) {
				break
			}
			h[p], h[j] = h[j], h[p]
			j = p
		}
		r.recs = h
		return
	}
	if !recLess(&rec, &h[0]) {
		return
	}
	h[0] = rec
	for j := 0; ; { // sift down
		l, big := 2*j+1, j
		if l < len(h) && recLess(&h[big], &h[l]) {
			big = l
		}
		if l+1 < len(h) && recLess(&h[big], &h[l+1]) {
			big = l + 1
		}
		if big == j {
			break
		}
		h[j], h[big] = h[big], h[j]
		j = big
	}
}

// sorted returns the records in priority order.
func (r *reservoir) sorted() []Record {
	out := slices.Clone(r.recs)
	slices.SortFunc(out, func(a, b Record) int {
		if recLess(&a, &b) {
			return -1
		}
		if recLess(&b, &a) {
			return 1
		}
		return 0
	})
	return out
}

// mix is the finaliser of SplitMix64 (Steele, Lea and Flood 2014): a
// bijection of uint64 whose outputs look independent for nearby inputs.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

const golden = 0x9e3779b97f4a7c15

// seqHash hashes the sequence's identity: its ID when it has one, otherwise
// its content (log-probs and mask), so that the same sequence gets the same
// key in any shard.
func seqHash(seq Sequence) uint64 {
	h := uint64(14695981039346656037) // FNV-1a offset basis
	if seq.ID != "" {
		for i := 0; i < len(seq.ID); i++ {
			h = (h ^ uint64(seq.ID[i])) * 1099511628211
		}
	} else {
		for i, lp := range seq.LogProbs {
			x := math.Float64bits(lp)
			if seq.Mask != nil && !seq.Mask[i] {
				x = ^x
			}
			h = mix(h ^ x)
		}
	}
	return h
}

// seedKey is the sampling key of a sequence with hash h under a seed.
func seedKey(h, seed uint64) uint64 { return mix(h ^ mix(seed+golden)) }

// priority is the sampling priority of position i of a sequence with key k.
func priority(k uint64, i int) uint64 {
	return mix(k + uint64(i+1)*golden)
}
