package ckprobe

import (
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/train"
)

// demo loads the checkpoint and data that selector embeds.
func demo(t *testing.T) (*train.Checkpoint, []train.Example) {
	t.Helper()
	f, err := os.Open("../../cmd/selector/demo/base.ckpt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ck, err := train.ReadCheckpoint(f, "base.ckpt")
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.Open("../../cmd/selector/demo/sft.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	data, err := train.ReadExamples(g, "sft.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return ck, data
}

// The report's counts and mean p equal those of the trainer's own scorer
// (train.Score), computed independently of the probe.
func TestReportMatchesTrainScore(t *testing.T) {
	ck, data := demo(t)
	rep, err := Report(context.Background(), ck, "base.ckpt", data, "sft.jsonl", probe.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := ck.NewModel()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var n int
	if _, err := train.Score(context.Background(), m, ck.Tokenizer, data, 16, func(_ int, tf train.TokenScores) {
		for _, lp := range tf.LogP {
			sum += math.Exp(lp)
			n++
		}
	}); err != nil {
		t.Fatal(err)
	}
	if rep.Sequences != int64(len(data)) || rep.Tokens != int64(n) || math.Abs(rep.MeanP-sum/float64(n)) > 1e-12 {
		t.Errorf("report: %d sequences, %d tokens, mean p %v; train.Score: %d examples, %d tokens, mean p %v",
			rep.Sequences, rep.Tokens, rep.MeanP, len(data), n, sum/float64(n))
	}
	if rep.Vocab != ck.Model.Vocab || len(rep.Sources) != 1 || rep.Sources[0].Format != "checkpoint base.ckpt" || rep.Sources[0].File != "sft.jsonl" {
		t.Errorf("vocab %d, sources %+v", rep.Vocab, rep.Sources)
	}
	// The reservoir carries full distributions that make theory contexts.
	if ctxs := rep.Contexts(); len(ctxs) == 0 || len(ctxs[0].Q) != ck.Model.Vocab {
		t.Errorf("%d contexts", len(ctxs))
	}
}

func TestReportRefusesUnknownCharacters(t *testing.T) {
	ck, _ := demo(t)
	data := []train.Example{{Prompt: "x", Response: "\u2603", Source: "d.jsonl", Line: 4}}
	if _, err := Report(context.Background(), ck, "", data, "d.jsonl", probe.Config{}); err == nil {
		t.Fatal("a character outside the alphabet was scored")
	}
}

func TestReportStopsWhenCancelled(t *testing.T) {
	ck, data := demo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Report(ctx, ck, "", data, "d", probe.Config{}); err == nil {
		t.Fatal("a cancelled run made a report")
	}
}

// Answers are the model's greedy answers: the same tokens as train.Generate
// continuing each prompt alone, with the log-probs teacher forcing on the
// answer gives (computed here by train.Score on the answer as a response),
// and Agree exactly when the label is the answer, which by induction over
// the positions is when the label is the model's first choice at every
// target (Evaluate's exact-match argument).
func TestAnswersOnTrainedModel(t *testing.T) {
	ck, data := demo(t)
	m, err := ck.NewModel()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	own, err := train.Answers(ctx, m, ck.Tokenizer, data, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	agree := 0
	_, err = train.Score(ctx, m, ck.Tokenizer, data, 16, func(i int, tf train.TokenScores) {
		all := true
		for j, am := range tf.Argmax {
			all = all && am == tf.Target[j]
		}
		if own[i].Agree != all {
			t.Errorf("example %d: agree %v, but the label is the first choice everywhere: %v", i, own[i].Agree, all)
		}
		if own[i].Agree {
			agree++
			for j := range tf.LogP {
				if math.Abs(own[i].LogP[j]-tf.LogP[j]) > 1e-5 {
					t.Errorf("example %d, token %d: own %v, label %v", i, j, own[i].LogP[j], tf.LogP[j])
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if agree < 10 || agree == len(data) {
		t.Fatalf("%d of %d answers agree: the demo should know some and not others", agree, len(data))
	}
	for i, ex := range data {
		p, _ := ck.Tokenizer.Encode(ex.Prompt)
		r, _ := ck.Tokenizer.Encode(ex.Response)
		gen, err := train.Generate(ctx, m, [][]int{append([]int{train.BOSID}, p...)}, len(r)+1, 1)
		if err != nil {
			t.Fatal(err)
		}
		ids := gen[0]
		if ck.Tokenizer.Decode(ids) != own[i].Text || len(ids) != len(own[i].LogP) {
			t.Errorf("example %d: own %q (%d log-probs), Generate %q (%d tokens)", i, own[i].Text, len(own[i].LogP), ck.Tokenizer.Decode(ids), len(ids))
			continue
		}
		// Teacher forcing on the answer through train.Score: its targets
		// are the answer's characters and an EOS, which the answer has
		// only when the model stopped.
		var lps []float64
		as := []train.Example{{Prompt: ex.Prompt, Response: own[i].Text, Source: "x", Line: i + 1}}
		if own[i].Text == "" {
			continue // the answer is the end token alone: nothing to score as a response
		}
		train.Score(ctx, m, ck.Tokenizer, as, 1, func(_ int, tf train.TokenScores) { lps = tf.LogP })
		if ids[len(ids)-1] != train.EOSID {
			lps = lps[:len(lps)-1]
		}
		for k := range lps {
			if math.Abs(lps[k]-own[i].LogP[k]) > 1e-5 {
				t.Errorf("example %d, answer token %d: log-prob %v, teacher forcing %v", i, k, own[i].LogP[k], lps[k])
			}
		}
	}
}

// LabelNoise gives the analysis the report's noise-aware section holds, with
// one record per example in data order and the null set of shuffled
// prompts; a flag's index is its example's.
func TestLabelNoise(t *testing.T) {
	ck, data := demo(t)
	m, _ := ck.NewModel()
	ctx := context.Background()
	run, err := LabelNoise(ctx, m, ck.Tokenizer, data, NoiseOptions{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Report(ctx, ck, "", data, "sft.jsonl", probe.Config{Seed: 5, NoiseAware: true})
	if err != nil {
		t.Fatal(err)
	}
	r, want := run.Result, rep.NoiseAware.Result
	if r == nil || want == nil || r.Method != labelnoise.Greedy || r.Capability != want.Capability || *r.Noise != *want.Noise || len(r.Flags) != len(want.Flags) {
		t.Fatalf("LabelNoise %+v, Report %+v", r, want)
	}
	if len(run.Examples) != len(data) || len(run.Null) == 0 || len(run.Null) > len(data) || r.Null.Prompts != len(run.Null) {
		t.Errorf("%d records for %d examples, %d null", len(run.Examples), len(data), len(run.Null))
	}
	for _, f := range r.Flags {
		e := run.Examples[f.Index]
		if e.Own == nil || e.Own.Agree || e.ID != f.ID || f.ID != fmt.Sprintf("%s:%d", data[f.Index].Source, data[f.Index].Line) {
			t.Errorf("flag %+v points at %+v", f, e)
		}
	}
	tf, err := LabelNoise(ctx, m, ck.Tokenizer, data, NoiseOptions{Seed: 5, TeacherForced: true, NullPrompts: -1})
	if err != nil {
		t.Fatal(err)
	}
	if tf.Result.Method != labelnoise.TeacherForced || tf.Result.Null != nil || tf.Examples[0].Own != nil || len(tf.Null) != 0 {
		t.Errorf("teacher-forced without a null set: %+v", tf.Result)
	}
}

// A model that knows nothing (fresh weights) reproduces no label: no cut,
// and the note says why.
func TestLabelNoiseUntrained(t *testing.T) {
	ck, data := demo(t)
	m, err := train.NewModel(ck.Model, 3)
	if err != nil {
		t.Fatal(err)
	}
	run, err := LabelNoise(context.Background(), m, ck.Tokenizer, data[:30], NoiseOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if run.Result.Cut != nil || run.Result.Noise != nil || !strings.Contains(strings.Join(run.Result.Notes, " "), "knows too little") {
		t.Errorf("untrained: %+v", run.Result)
	}
}

// The null set shuffles each prompt's letters, keeps the responses, and
// is the same for the same seed.
func TestNullData(t *testing.T) {
	_, data := demo(t)
	a, b := train.NullData(data, 0, 1), train.NullData(data, 0, 1)
	if len(a) < len(data)-5 || !reflect.DeepEqual(a, b) {
		t.Fatalf("%d null examples of %d, deterministic: %v", len(a), len(data), reflect.DeepEqual(a, b))
	}
	if capped := train.NullData(data, 10, 1); len(capped) > 10 || len(train.NullData(data, -1, 1)) != 0 {
		t.Errorf("cap 10: %d", len(capped))
	}
	for _, n := range a[:5] {
		var orig train.Example
		for _, d := range data {
			if d.Line == n.Line {
				orig = d
			}
		}
		if n.Prompt == orig.Prompt || n.Response != orig.Response || len(n.Prompt) != len(orig.Prompt) || n.Prompt[len(n.Prompt)-1] != '=' {
			t.Errorf("null %+v of %+v", n, orig)
		}
	}
}

// Records and flags follow the data's order even when the data
// interleaves files (the analysis itself orders by file and line).
func TestLabelNoiseDataOrder(t *testing.T) {
	ck, data := demo(t)
	m, _ := ck.NewModel()
	mixed := make([]train.Example, len(data))
	for i, ex := range data {
		ex.Source = []string{"b.jsonl", "a.jsonl"}[i%2]
		ex.Line = len(data) - i
		mixed[i] = ex
	}
	run, err := LabelNoise(context.Background(), m, ck.Tokenizer, mixed, NoiseOptions{Seed: 2, NullPrompts: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range run.Examples {
		if e.ID != fmt.Sprintf("%s:%d", mixed[i].Source, mixed[i].Line) {
			t.Fatalf("record %d is %s, data %s:%d", i, e.ID, mixed[i].Source, mixed[i].Line)
		}
	}
	if len(run.Result.Flags) == 0 {
		t.Fatal("no flags")
	}
	for _, f := range run.Result.Flags {
		if f.ID != run.Examples[f.Index].ID || run.Examples[f.Index].Own.Agree {
			t.Errorf("flag %s has index %d: %s", f.ID, f.Index, run.Examples[f.Index].ID)
		}
	}
}
