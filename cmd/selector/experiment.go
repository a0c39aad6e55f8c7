package main

var cmdExperiment = &command{
	name:  "experiment",
	usage: "selector experiment continuum | theory | autoblend [--quick] [--seeds N] [--out DIR]",
	short: "reproduce the capability continuum and test the theory on small models",
	long:  `Runs the project's experiments on models it trains itself.`,
}

func init() { cmdExperiment.run = notYet(cmdExperiment) }
