// Command mkdemo writes the demo that 'selector recommend' runs when it is
// given no input: a small base model pretrained on the fact-recall task with
// full coverage, and the task's fine-tuning set with 10 % label noise.
//
//	go run ./experiments/mkdemo -out cmd/selector/demo
//
// The output is deterministic for a given seed, GOMAXPROCS notwithstanding.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/capsel/capsel/experiments"
	"github.com/capsel/capsel/internal/atomicfile"
	"github.com/capsel/capsel/train"
)

func main() {
	out := flag.String("out", "cmd/selector/demo", "output directory")
	coverage := flag.Float64("coverage", 1, "share of the target facts in pretraining")
	noise := flag.Float64("noise", 0.1, "label-noise rate of the fine-tuning sample")
	flag.Parse()
	if err := run(*out, *coverage, *noise); err != nil {
		fmt.Fprintln(os.Stderr, "mkdemo:", err)
		os.Exit(1)
	}
}

// The demo's recipe: the first experiments' fact task (120 facts, 240
// distractors, task seed 1) and base model (d 64, 2 layers, 4 heads, context
// 20, 600 steps of 32 at lr 3e-3, seed 1), and their whole-value noise.
func run(out string, coverage, noise float64) error {
	task := experiments.NewFactTask(1, 120, 0, 240, 0)
	data, err := task.Pretraining(experiments.Base{Coverage: coverage})
	if err != nil {
		return err
	}
	cfg := train.DefaultConfig()
	cfg.Model = train.ModelConfig{D: 64, Layers: 2, Heads: 4, Context: 20}
	cfg.Steps, cfg.Batch, cfg.LR, cfg.Seed = 600, 32, 3e-3, 1
	ck, err := experiments.Pretrain(context.Background(), cfg, data, func(info train.StepInfo) {
		if info.Step%100 == 0 {
			fmt.Fprintf(os.Stderr, "pretraining step %d/%d loss %.3f\n", info.Step, info.Steps, info.Loss)
		}
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(out, "base.ckpt"), func(w io.Writer) error {
		_, err := ck.WriteTo(w)
		return err
	}); err != nil {
		return err
	}
	sft := experiments.JSONL(task.SFT(experiments.Replace, noise, 1).Examples)
	return atomicfile.WriteBytes(filepath.Join(out, "sft.jsonl"), []byte(sft))
}
