package main

var cmdRecommend = &command{
	name:  "recommend",
	usage: "selector recommend [REPORT.json | --model CKPT --data SFT.jsonl | --logprobs FILE... | --server URL ...] [--noise E] [--json] [--export FORMAT]",
	short: "recommend the fine-tuning objective for a base model and its data",
	long: `Reads a probe report (or runs the probe), places the base model on the
capability continuum, ranks candidate objectives by their estimated
risk-reduction rate, and prints the recommended objective with its evidence
and the config lines for your trainer.`,
}

func init() { cmdRecommend.run = notYet(cmdRecommend) }
