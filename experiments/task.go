package experiments

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/capsel/capsel/train"
)

// Base names one base model of a task: a point on its capability dial, or
// the task's other kind of weak model.
type Base struct {
	// Coverage is the share of the targets that pretraining covers.
	Coverage float64 `json:"coverage"`
	// Variant is "" on the dial, or the name of the task's other weak base
	// model (Task.Variant), pretrained at coverage 0 in another way.
	Variant string `json:"variant,omitempty"`
}

func (b Base) String() string {
	if b.Variant != "" {
		return b.Variant
	}
	return fmt.Sprintf("coverage %.2f", b.Coverage)
}

// key is the base's name in cache files.
func (b Base) key() string {
	if b.Variant != "" {
		return b.Variant
	}
	return fmt.Sprintf("c%.3f", b.Coverage)
}

// Task is a family of base models whose pretraining covers a share of what
// fine-tuning asks (the paper's pretraining-coverage axis, App. B.1), with
// the fine-tuning set and a test set that fine-tuning never sees.
type Task interface {
	Name() string
	// Context is the number of positions the task's sequences need, edits
	// included.
	Context() int
	// Variant names the task's other weak base model.
	Variant() string
	// Pretraining returns the corpus of a base model (documents scored on
	// every token).
	Pretraining(b Base) ([]train.Example, error)
	// SFT returns the fine-tuning set at a noise rate and scheme, with the
	// truth about every label.
	SFT(scheme Scheme, noise float64, seed uint64) SFTData
	// HeldOut returns the test set: prompts fine-tuning never saw, with
	// their true responses.
	HeldOut() []train.Example
	// TrainFit returns the fine-tuning prompts with their true responses,
	// to measure how well fine-tuning fit its own inputs.
	TrainFit() []train.Example
}

const letters = "abcdefghijklmnopqrstuvwxyz"

// Fact is one key → value pair of the fact-recall task.
type Fact struct {
	Key, Value string
}

// FactTask is recall of random facts: a 4-letter key and a 4-to-14-letter
// value, asked as prompt "key=" with response "value".
//
// Fine-tuning trains on the Train facts; the held-out test asks the HeldOut
// facts, which fine-tuning never sees. Pretraining covers the same share of
// both (the first ⌊coverage·n⌋ of each, so a higher coverage covers a
// superset), together with Distractor facts that teach every base model the
// format and the letters. A held-out fact the base model memorised in
// pretraining is what the paper's claim is about: fine-tuning with a
// prior-leaning objective should keep (or bring out) what the base model
// knows. A held-out fact it never saw cannot be recalled after fine-tuning
// on other facts by any objective, so the held-out score at coverage c is at
// most about c; the weak end is therefore measured on the training facts
// (TrainFit), where NLL can learn what the base lacks.
//
// The dial's weak end is confidently wrong: the base has memorised the
// distractors and answers an unseen key with letters of some memorised
// value. The "uninformed" variant pretrains on the distractors and on
// Unfamiliar facts, random keys with random values seen a few times each,
// which teaches it that a key it does not know says nothing about the value:
// it answers an unseen key with diffuse letters.
type FactTask struct {
	Train, HeldOutFacts, Distractors, Unfamiliar []Fact
}

// FactVariant is the fact task's other weak base model.
const FactVariant = "uninformed"

// NewFactTask draws the facts with distinct keys, deterministically from
// seed, in the order train, distractors, held-out, unfamiliar (so that a
// task without held-out or unfamiliar facts is the first experiments').
func NewFactTask(seed uint64, nTrain, nHeldOut, nDistractors, nUnfamiliar int) FactTask {
	rng := rand.New(rand.NewPCG(seed, 0xfac7))
	seen := map[string]bool{}
	draw := func(n int) []Fact {
		out := make([]Fact, 0, n)
		for len(out) < n {
			k := randomWord(rng, 4, 4)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, Fact{Key: k, Value: randomWord(rng, 4, 14)})
		}
		return out
	}
	var t FactTask
	t.Train = draw(nTrain)
	t.Distractors = draw(nDistractors)
	t.HeldOutFacts = draw(nHeldOut)
	t.Unfamiliar = draw(nUnfamiliar)
	return t
}

// Name implements Task.
func (FactTask) Name() string { return "fact" }

// Variant implements Task.
func (FactTask) Variant() string { return FactVariant }

// Context is BOS, "key=" (5), the longest value with an inserted letter
// (15) and EOS, minus one for the shift.
func (FactTask) Context() int { return 21 }

func covered(coverage float64, n int) int { return int(coverage*float64(n) + 1e-9) }

// unfamiliarCopies is how many times the uninformed variant's corpus
// repeats each distractor, so that the distractors stay memorised among the
// many unfamiliar facts.
const unfamiliarCopies = 8

// Pretraining implements Task. Every corpus ends with a document of the
// whole alphabet, so that noisy labels never hold a character a base model
// cannot encode.
func (t FactTask) Pretraining(b Base) ([]train.Example, error) {
	var out []train.Example
	add := func(f Fact) {
		out = append(out, train.Example{Response: f.Key + "=" + f.Value, Source: "pretraining", Line: len(out) + 1})
	}
	switch b.Variant {
	case "":
		for _, f := range t.Distractors {
			add(f)
		}
		for _, f := range t.Train[:covered(b.Coverage, len(t.Train))] {
			add(f)
		}
		for _, f := range t.HeldOutFacts[:covered(b.Coverage, len(t.HeldOutFacts))] {
			add(f)
		}
	case FactVariant:
		if b.Coverage != 0 {
			return nil, fmt.Errorf("fact task: the %s base model has coverage 0, not %v", b.Variant, b.Coverage)
		}
		if len(t.Unfamiliar) == 0 {
			return nil, fmt.Errorf("fact task: the %s base model needs unfamiliar facts", b.Variant)
		}
		for range unfamiliarCopies {
			for _, f := range t.Distractors {
				add(f)
			}
		}
		for _, f := range t.Unfamiliar {
			add(f)
		}
	default:
		return nil, fmt.Errorf("fact task: no base model variant %q (%s)", b.Variant, FactVariant)
	}
	return append(out, train.Example{Response: letters + "=", Source: "alphabet", Line: 1}), nil
}

func factExamples(fs []Fact, source string) []train.Example {
	out := make([]train.Example, len(fs))
	for i, f := range fs {
		out[i] = train.Example{Prompt: f.Key + "=", Response: f.Value, Source: source, Line: i + 1}
	}
	return out
}

// SFT implements Task: the train facts, round(noise·n) of them corrupted by
// the scheme (a replaced value has the task's length distribution).
func (t FactTask) SFT(scheme Scheme, noise float64, seed uint64) SFTData {
	return corrupt(t.Name(), factExamples(t.Train, "sft"), scheme, noise, seed, func(r *rand.Rand) string { return randomWord(r, 4, 14) })
}

// HeldOut implements Task.
func (t FactTask) HeldOut() []train.Example { return factExamples(t.HeldOutFacts, "held-out") }

// TrainFit implements Task.
func (t FactTask) TrainFit() []train.Example { return factExamples(t.Train, "train-fit") }

// RuleTask is a letter substitution: the response to an input word w
// followed by ">" is σ(w), σ applied letter by letter, for a fixed random
// permutation σ of the alphabet. Fine-tuning trains on the Train words and
// the held-out test asks new words, so doing well there needs the rule, not
// memory of examples.
//
// Pretraining exposure is the dial: the base model's corpus holds rule
// documents "w>…" in which the letters of a covered share of the alphabet
// (the first ⌊coverage·26⌋ of Order) are mapped by σ and the others by a
// letter drawn at random for every document, and as many distractor
// documents "w<τ(w)" of another substitution τ, which teach every base
// model the format and how to align output with input. A letter the base
// model never saw mapped is one it is uninformed about (p ≈ 1/26), so the
// dial's weak end is diffuse, the paper's model-weak picture. The
// "misinformed" variant instead maps every letter of its rule documents by
// a third permutation: it is confidently wrong about all of them.
type RuleTask struct {
	Sigma, Wrong, Distractor []byte // σ, the misinformed rule, τ: the image of each letter
	Order                    []byte // the letters in the order coverage reveals them
	Train, HeldOutWords      []string
	Pretrain                 []string // input words of the pretraining documents
	seed                     uint64
}

// RuleVariant is the rule task's other weak base model.
const RuleVariant = "misinformed"

// RuleLength is the length of the rule task's words.
const RuleLength = 8

// NewRuleTask draws the permutations and words deterministically from seed:
// nTrain and nHeldOut distinct words for fine-tuning and test, nPretrain
// words for the pretraining documents.
func NewRuleTask(seed uint64, nTrain, nHeldOut, nPretrain int) RuleTask {
	rng := rand.New(rand.NewPCG(seed, 0x5ab5))
	perm := func() []byte {
		out := make([]byte, len(letters))
		for i, j := range rng.Perm(len(letters)) {
			out[i] = letters[j]
		}
		return out
	}
	t := RuleTask{Sigma: perm(), Wrong: perm(), Distractor: perm(), Order: perm(), seed: seed}
	seen := map[string]bool{}
	words := func(n int) []string {
		out := make([]string, 0, n)
		for len(out) < n {
			w := randomWord(rng, RuleLength, RuleLength)
			if !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
		return out
	}
	t.Train, t.HeldOutWords = words(nTrain), words(nHeldOut)
	for range nPretrain {
		t.Pretrain = append(t.Pretrain, randomWord(rng, RuleLength, RuleLength))
	}
	return t
}

// Name implements Task.
func (RuleTask) Name() string { return "rule" }

// Variant implements Task.
func (RuleTask) Variant() string { return RuleVariant }

// Context is BOS, the word and ">" (9), the response with an inserted letter
// (9) and EOS, minus one for the shift.
func (RuleTask) Context() int { return 2*RuleLength + 3 }

func apply(perm []byte, w string) string {
	b := []byte(w)
	for i, c := range b {
		b[i] = perm[c-'a']
	}
	return string(b)
}

// Pretraining implements Task: rule and distractor documents alternate.
func (t RuleTask) Pretraining(b Base) ([]train.Example, error) {
	if b.Variant != "" && b.Variant != RuleVariant {
		return nil, fmt.Errorf("rule task: no base model variant %q (%s)", b.Variant, RuleVariant)
	}
	if b.Variant != "" && b.Coverage != 0 {
		return nil, fmt.Errorf("rule task: the %s base model has coverage 0, not %v", b.Variant, b.Coverage)
	}
	known := map[byte]bool{}
	for _, c := range t.Order[:covered(b.Coverage, len(t.Order))] {
		known[c] = true
	}
	rng := rand.New(rand.NewPCG(t.seed, 0xd0c5)) // the letters of uncovered positions
	out := make([]train.Example, 0, len(t.Pretrain)+1)
	for i, w := range t.Pretrain {
		doc := w + "<" + apply(t.Distractor, w)
		if i%2 == 0 {
			var resp strings.Builder
			for j := range len(w) {
				switch {
				case b.Variant == RuleVariant:
					resp.WriteByte(t.Wrong[w[j]-'a'])
				case known[w[j]]:
					resp.WriteByte(t.Sigma[w[j]-'a'])
				default:
					resp.WriteByte(letters[rng.IntN(len(letters))])
				}
			}
			doc = w + ">" + resp.String()
		}
		out = append(out, train.Example{Response: doc, Source: "pretraining", Line: i + 1})
	}
	return append(out, train.Example{Response: letters + "<>", Source: "alphabet", Line: 1}), nil
}

func (t RuleTask) examples(words []string, source string) []train.Example {
	out := make([]train.Example, len(words))
	for i, w := range words {
		out[i] = train.Example{Prompt: w + ">", Response: apply(t.Sigma, w), Source: source, Line: i + 1}
	}
	return out
}

// SFT implements Task: the train words, round(noise·n) of them corrupted by
// the scheme (a replaced response is a random word of the same length).
func (t RuleTask) SFT(scheme Scheme, noise float64, seed uint64) SFTData {
	return corrupt(t.Name(), t.examples(t.Train, "sft"), scheme, noise, seed, func(r *rand.Rand) string { return randomWord(r, RuleLength, RuleLength) })
}

// HeldOut implements Task.
func (t RuleTask) HeldOut() []train.Example { return t.examples(t.HeldOutWords, "held-out") }

// TrainFit implements Task.
func (t RuleTask) TrainFit() []train.Example { return t.examples(t.Train, "train-fit") }

// JSONL renders examples as prompt/response JSONL.
func JSONL(ex []train.Example) string {
	var b strings.Builder
	for _, e := range ex {
		if e.Prompt == "" {
			fmt.Fprintf(&b, "{\"text\":%q}\n", e.Response)
		} else {
			fmt.Fprintf(&b, "{\"prompt\":%q,\"response\":%q}\n", e.Prompt, e.Response)
		}
	}
	return b.String()
}
