package main

import (
	"fmt"

	"github.com/capsel/capsel/train"
)

var cmdEval = &command{
	name:  "eval",
	usage: "selector eval --model CKPT --data FILE [--batch N] [--no-generate] [--json]",
	short: "evaluate a checkpoint: exact match, token accuracy, mean p, NLL",
	long: `Evaluates a capsel checkpoint on held-out examples (the same formats as
'selector train --data'):

  exact_match     share of examples whose greedy continuation of the prompt is
                  exactly the response followed by the end token
  token_accuracy  share of response tokens (and end tokens) that are the
                  model's most likely next token, with teacher forcing
  mean_p          mean probability of those tokens: the paper's Eq. 5, the
                  capability statistic 'selector probe' reports
  nll             their mean negative log-likelihood (nats)

  selector eval --model runs/sft-p/final --data heldout.jsonl --json`,
}

func init() { cmdEval.run = runEval }

func runEval(e *env, args []string) error {
	f := newFlags(e, "eval", cmdEval.usage, cmdEval.long)
	model := f.String("model", "", "checkpoint `file` (a run's final or checkpoint)")
	data := f.String("data", "", "held-out `file`")
	batch := f.Int("batch", 32, "examples per forward pass")
	noGen := f.Bool("no-generate", false, "skip greedy generation (exact_match is then 0)")
	asJSON := f.Bool("json", false, "print JSON")
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	if *model == "" || *data == "" {
		return f.usagef("--model CKPT and --data FILE are required")
	}
	if *batch < 1 {
		return f.usagef("--batch must be ≥ 1")
	}
	ck, err := readCheckpointFile(*model)
	if err != nil {
		return err
	}
	m, err := ck.NewModel()
	if err != nil {
		return err
	}
	ex, err := readExamplesFile(*data)
	if err != nil {
		return err
	}
	res, err := train.Evaluate(e.ctx, m, ck.Tokenizer, ex, train.EvalOptions{Batch: *batch, NoGenerate: *noGen})
	if err != nil {
		return err // data errors name the file and line already
	}
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "%d examples, %d scored tokens (%d truncated to the context)\n", res.Examples, res.Tokens, res.Truncated)
	if !*noGen {
		fmt.Fprintf(e.stdout, "  exact match     %.4f\n", res.ExactMatch)
	}
	fmt.Fprintf(e.stdout, "  token accuracy  %.4f\n  mean p          %.4f\n  NLL             %.4f\n", res.TokenAccuracy, res.MeanP, res.NLL)
	return nil
}
