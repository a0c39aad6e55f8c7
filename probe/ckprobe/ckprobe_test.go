package ckprobe

import (
	"context"
	"math"
	"os"
	"testing"

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
