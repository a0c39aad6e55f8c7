package main

var cmdTrain = &command{
	name:  "train",
	usage: "selector train --config RUN.toml [flags that override it]",
	short: "pretrain or fine-tune a small causal LM with any objective",
	long: `Trains a small decoder-only transformer on CPU with spago: pretraining from
text, or supervised fine-tuning with any objective spec, auto or auto-theory.`,
}

func init() { cmdTrain.run = notYet(cmdTrain) }
