package main

var cmdProbe = &command{
	name:  "probe",
	usage: "selector probe (--model CKPT --data SFT.jsonl | --logprobs FILE... [--format F] | --server URL --served-model NAME --data SFT.jsonl) [--out REPORT.json] [--plot DIR] [--json]",
	short: "measure a base model's token probabilities on held-out SFT data",
	long: `Reads per-token log-probabilities of the base model on the response tokens of
held-out SFT data and writes a capability report: mean p (the paper's Eq. 5)
with a bootstrap CI, quantiles, the share of tokens with p > 0.55, and the
placement on the capability continuum.`,
}

func init() { cmdProbe.run = notYet(cmdProbe) }
