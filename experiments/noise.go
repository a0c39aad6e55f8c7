package experiments

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/capsel/capsel/train"
)

// Scheme is a way of corrupting a fine-tuning label.
type Scheme string

// The noise schemes. Real SFT noise is mostly partial: a response that is
// right but for a token, or that says the right thing with a word too many
// or too few; whole-value replacement is the extreme.
const (
	// Replace swaps the whole response for a random one of the task's shape.
	Replace Scheme = "replace"
	// Substitute changes one letter of the response to another letter.
	Substitute Scheme = "substitute"
	// Indel inserts one random letter into the response or deletes one of
	// its letters (even odds): a paraphrase-like edit that shifts the rest.
	Indel Scheme = "indel"
	// Token replaces every letter of every response independently, at the
	// noise rate, by another letter: dense per-token noise, under which
	// almost no response is the model's answer. The grid probes it
	// (Setup.ProbeSchemes) to show where the noise-aware probe fails; it
	// fine-tunes on none.
	Token Scheme = "token"
)

// Schemes lists every scheme, in report order.
var Schemes = []Scheme{Replace, Substitute, Indel}

// ParseScheme checks a scheme name.
func ParseScheme(s string) (Scheme, error) {
	for _, sc := range append(slices.Clone(Schemes), Token) {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("unknown noise scheme %q (replace, substitute, indel or token)", s)
}

// Label is the truth about one fine-tuning example's label: whether the
// noise corrupted it, its true response, and the edit made.
type Label struct {
	Corrupted bool   `json:"corrupted"`
	Clean     string `json:"clean"` // the true response
	// Edit is "replace", "substitute", "insert" or "delete" for a corrupted
	// label; Pos is the letter position of a one-letter edit.
	Edit string `json:"edit,omitempty"`
	Pos  int    `json:"pos,omitempty"`
}

// SFTData is a fine-tuning set as given to the trainer, with the truth about
// every label: what the next issue's noise-aware probe and a "clean, then
// NLL" baseline are scored against.
type SFTData struct {
	Task     string          `json:"task"`
	Scheme   Scheme          `json:"scheme"`
	Noise    float64         `json:"noise"` // share of examples corrupted (round(noise·n) of them)
	Seed     uint64          `json:"seed"`
	Examples []train.Example `json:"-"` // as given (responses possibly corrupted)
	Labels   []Label         `json:"labels"`
}

// Corrupted returns the number of corrupted examples.
func (d SFTData) Corrupted() int {
	n := 0
	for _, l := range d.Labels {
		if l.Corrupted {
			n++
		}
	}
	return n
}

// TokenNoise returns the share of scored targets (response letters and EOS)
// whose label is wrong: the noise rate E of the paper's theory, which counts
// tokens, not examples.
func (d SFTData) TokenNoise() float64 {
	var wrong, all int
	for i, ex := range d.Examples {
		truth := TokenTruth(d.Labels[i], ex.Response)
		for j, r := range truth {
			all++
			if r != labelAt(ex.Response, j) {
				wrong++
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(wrong) / float64(all)
}

// EOS and UnknownTruth are the non-letter values of TokenTruth.
const (
	EOS          rune = -1 // the end of the response
	UnknownTruth rune = -2 // no true next token is defined
)

// labelAt is the given label at response position j (EOS at the end).
func labelAt(given string, j int) rune {
	if j < len(given) {
		return rune(given[j])
	}
	return EOS
}

// TokenTruth returns, for each scored position of an example whose response
// as given is given (its letters, then EOS), the true next token: the
// label itself where the position is clean, the true letter (or EOS) where
// the noise put a wrong one, and UnknownTruth where no true next token is
// defined. Positions are aligned by the edit:
//
//   - substitute at p: p is noisy (true letter Clean[p]);
//   - insert at p: p holds the inserted letter, truly Clean[p] (or EOS);
//     the positions after it continue the true response and count as clean;
//   - delete at p: p holds Clean[p+1] (or EOS), truly Clean[p]; the rest is
//     clean;
//   - replace and token: every position j is compared with Clean[j] (EOS
//     at len(Clean)); positions past that have no true next token.
func TokenTruth(l Label, given string) []rune {
	out := make([]rune, len(given)+1)
	for j := range out {
		out[j] = labelAt(given, j)
	}
	if !l.Corrupted {
		return out
	}
	switch l.Edit {
	case "substitute", "insert", "delete":
		out[l.Pos] = labelAt(l.Clean, l.Pos)
	case "replace", "token":
		for j := range out {
			switch {
			case j <= len(l.Clean):
				out[j] = labelAt(l.Clean, j)
			default:
				out[j] = UnknownTruth
			}
		}
	}
	return out
}

// corrupt draws the fine-tuning set at a noise rate: exactly round(noise·n)
// examples, drawn from seed, get a wrong label by the scheme; responses
// holds the task's letters. The replacement draws (the permutation, then
// each replaced example's length and letters, in order) are those of the
// first experiments, so that the demo stays reproducible.
func corrupt(task string, clean []train.Example, scheme Scheme, noise float64, seed uint64, random func(*rand.Rand) string) SFTData {
	rng := rand.New(rand.NewPCG(seed, 0x5f7))
	n := len(clean)
	if scheme == Token {
		return perToken(task, clean, noise, seed, rng)
	}
	wrong := map[int]bool{}
	for _, i := range rng.Perm(n)[:int(noise*float64(n)+0.5)] {
		wrong[i] = true
	}
	d := SFTData{Task: task, Scheme: scheme, Noise: noise, Seed: seed, Examples: make([]train.Example, n), Labels: make([]Label, n)}
	for i, ex := range clean {
		d.Labels[i] = Label{Clean: ex.Response}
		if wrong[i] {
			ex.Response, d.Labels[i] = edit(rng, ex.Response, scheme, random)
		}
		d.Examples[i] = ex
	}
	return d
}

// perToken is the Token scheme: every letter independently replaced, at
// rate noise, by one of the other 25.
func perToken(task string, clean []train.Example, noise float64, seed uint64, rng *rand.Rand) SFTData {
	d := SFTData{Task: task, Scheme: Token, Noise: noise, Seed: seed, Examples: make([]train.Example, len(clean)), Labels: make([]Label, len(clean))}
	for i, ex := range clean {
		b := []byte(ex.Response)
		for j := range b {
			if rng.Float64() < noise {
				c := letters[rng.IntN(len(letters)-1)]
				if c >= b[j] {
					c++
				}
				b[j] = c
			}
		}
		d.Labels[i] = Label{Clean: ex.Response}
		if g := string(b); g != ex.Response {
			d.Labels[i] = Label{Corrupted: true, Clean: ex.Response, Edit: string(Token)}
			ex.Response = g
		}
		d.Examples[i] = ex
	}
	return d
}

// edit corrupts one response.
func edit(rng *rand.Rand, clean string, scheme Scheme, random func(*rand.Rand) string) (string, Label) {
	l := Label{Corrupted: true, Clean: clean, Edit: string(scheme)}
	switch scheme {
	case Substitute:
		l.Pos = rng.IntN(len(clean))
		c := letters[rng.IntN(len(letters)-1)]
		if c >= clean[l.Pos] { // skip the true letter: uniform over the other 25
			c++
		}
		return clean[:l.Pos] + string(c) + clean[l.Pos+1:], l
	case Indel:
		if rng.IntN(2) == 0 || len(clean) == 1 {
			l.Edit, l.Pos = "insert", rng.IntN(len(clean)+1)
			return clean[:l.Pos] + string(letters[rng.IntN(len(letters))]) + clean[l.Pos:], l
		}
		l.Edit, l.Pos = "delete", rng.IntN(len(clean))
		return clean[:l.Pos] + clean[l.Pos+1:], l
	default:
		for {
			if r := random(rng); r != clean {
				return r, l
			}
		}
	}
}

// randomWord draws a word of lo to hi letters (the length is drawn only
// when lo < hi).
func randomWord(rng *rand.Rand, lo, hi int) string {
	n := lo
	if hi > lo {
		n += rng.IntN(hi - lo + 1)
	}
	b := make([]byte, n)
	for j := range b {
		b[j] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}
