package main

var cmdEval = &command{
	name:  "eval",
	usage: "selector eval --model CKPT --data FILE [--json]",
	short: "evaluate a checkpoint: exact match, token accuracy, mean p, NLL",
	long:  `Evaluates a checkpoint on held-out SFT data.`,
}

func init() { cmdEval.run = notYet(cmdEval) }
