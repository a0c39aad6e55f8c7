package main

var cmdBench = &command{
	name:  "bench",
	usage: "selector bench train --vocab V --d D --layers L --heads H --context T --batch B [--json]",
	short: "measure training throughput of the spago trainer",
	long:  `Measures training tokens per second and peak memory of the trainer.`,
}

func init() { cmdBench.run = notYet(cmdBench) }
