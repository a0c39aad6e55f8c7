package experiments

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/capsel/capsel/train"
)

// Fact is one key → value pair of the fact-recall task.
type Fact struct {
	Key, Value string
}

// FactTask is the project's task family with a capability dial: random facts
// (a 4-letter key and a 4-to-14-letter value) asked as prompt "key=" with
// response "value". Target facts are the ones fine-tuning trains and
// evaluation tests; distractor facts teach every base model the format and
// the letters, so that base models differ only in which target facts their
// pretraining covered — the paper's "pretraining coverage" axis (App. B.1).
//
// A base model that never saw a target fact can only guess its letters
// (p ≈ 1/26 each) and its length (values run from 4 to 14 letters so that
// the end token is hard to guess too), which puts its mean p near the
// paper's model-weak anchors (0.01–0.07); one that memorised the fact puts p
// near 1. Coverage moves the
// base model's mean p between the two.
type FactTask struct {
	Targets     []Fact
	Distractors []Fact
}

const letters = "abcdefghijklmnopqrstuvwxyz"

// NewFactTask draws nTargets target and nDistractors distractor facts with
// distinct keys, deterministically from seed.
func NewFactTask(seed uint64, nTargets, nDistractors int) FactTask {
	rng := rand.New(rand.NewPCG(seed, 0xfac7))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	seen := map[string]bool{}
	draw := func(n int) []Fact {
		out := make([]Fact, 0, n)
		for len(out) < n {
			k := word(4)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, Fact{Key: k, Value: word(4 + rng.IntN(11))})
		}
		return out
	}
	return FactTask{Targets: draw(nTargets), Distractors: draw(nDistractors)}
}

// Context is the number of positions the task needs: BOS, "key=" (5), the
// longest value (14) and EOS, minus one for the shift.
const Context = 20

func example(f Fact, source string, line int) train.Example {
	return train.Example{Prompt: f.Key + "=", Response: f.Value, Source: source, Line: line}
}

// Pretraining returns the base model's corpus: every distractor fact and the
// first ⌊coverage·n⌋ target facts, each as one document "key=value" (loss
// on all of it). The target facts' order is fixed, so a higher coverage
// covers a superset.
func (t FactTask) Pretraining(coverage float64) []train.Example {
	n := int(coverage*float64(len(t.Targets)) + 1e-9)
	var out []train.Example
	for i, f := range t.Distractors {
		out = append(out, train.Example{Response: f.Key + "=" + f.Value, Source: "pretraining", Line: i + 1})
	}
	for i, f := range t.Targets[:n] {
		out = append(out, train.Example{Response: f.Key + "=" + f.Value, Source: "pretraining", Line: len(t.Distractors) + i + 1})
	}
	return out
}

// SFT returns the fine-tuning set: every target fact as a prompt/response
// example, with the response replaced, at rate noise, by a fresh random
// value of the same length distribution (a wrong label the model has no
// reason to believe). The corrupted facts and their values are drawn from
// seed; the count is round(noise·n).
func (t FactTask) SFT(noise float64, seed uint64) []train.Example {
	rng := rand.New(rand.NewPCG(seed, 0x5f7))
	n := len(t.Targets)
	wrong := map[int]bool{}
	for _, i := range rng.Perm(n)[:int(noise*float64(n)+0.5)] {
		wrong[i] = true
	}
	out := make([]train.Example, n)
	for i, f := range t.Targets {
		ex := example(f, "sft", i+1)
		for wrong[i] && ex.Response == f.Value {
			b := make([]byte, 4+rng.IntN(11))
			for j := range b {
				b[j] = letters[rng.IntN(len(letters))]
			}
			ex.Response = string(b)
		}
		out[i] = ex
	}
	return out
}

// Noisy reports which SFT examples carry a wrong label.
func (t FactTask) Noisy(sft []train.Example) []bool {
	out := make([]bool, len(sft))
	for i, ex := range sft {
		out[i] = ex.Response != t.Targets[i].Value
	}
	return out
}

// Eval returns the target facts with their true values: the clean test of
// what the fine-tuned model recalls.
func (t FactTask) Eval() []train.Example {
	out := make([]train.Example, len(t.Targets))
	for i, f := range t.Targets {
		out[i] = example(f, "eval", i+1)
	}
	return out
}

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
