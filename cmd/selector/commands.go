package main

// commands lists the subcommands in the order "selector help" shows them.
func commands() []*command {
	return []*command{cmdRecommend, cmdProbe, cmdClean, cmdExport, cmdObjectives, cmdTheory, cmdTrain, cmdEval, cmdBench, cmdExperiment}
}
