package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/capsel/capsel/choose"
	"github.com/capsel/capsel/continuum"
	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/probe/ckprobe"
	"github.com/capsel/capsel/selector"
	"github.com/capsel/capsel/theory"
	"github.com/capsel/capsel/train"
)

// The embedded demo: a base model pretrained on capsel's fact-recall task
// with every target fact covered, and the task's fine-tuning set with 10 %
// label noise. Regenerate with: go run ./experiments/mkdemo -out cmd/selector/demo
//
//go:embed demo/base.ckpt
var demoCheckpoint []byte

//go:embed demo/sft.jsonl
var demoSFT []byte

var cmdRecommend = &command{
	name:  "recommend",
	usage: "selector recommend [REPORT.json | --logprobs FILE... | --server URL... [--served-model NAME] --data SFT.jsonl | --model CKPT --data SFT.jsonl] [--noise E] [--json] [--export FORMAT] [--pilot]",
	short: "recommend the fine-tuning objective for a base model and its data",
	long: strings.NewReplacer("{strong}", fmt.Sprint(continuum.DefaultCuts.StrongAt), "{whole}", fmt.Sprint(100*choose.WholeExampleShare)).Replace(
		`Tells you which objective to fine-tune a base model with on your data, why,
and what to put in your trainer's config.

It measures (or reads) how much the base model already believes the targets
— the mean probability of the response tokens, the paper's Eq. 5 — and
tells apart the two things that lower it: a model that does not know, and
labels that are wrong. It compares each label with the model's own answer
and the model's confidence in it, and reports the capability Ĉ (mean p with
the noise it can see taken out) and the noise rate Ê, with 95 % CIs. The
call places Ĉ on the capability continuum of Li et al. (ICML 2026):

  model-strong (Ĉ ≥ {strong}), or   prior-leaning (the paper measured −p and
  labels measurably noisy        its kin 4–16 points ahead of NLL there):
                                 asft-0.1, −p's gradient with a KL anchor
                                 to the base model, which kept more of its
                                 knowledge on capsel's grid; for trainers
                                 without it, −log p·1{p ≥ 0.2} when the
                                 model reproduces at least {whole} % of the
                                 examples whole, −p otherwise
  otherwise                      NLL, which learns fastest what the model
                                 does not know yet, without the flagged
                                 examples (selector clean)

Without the noise-aware measurement (no top-k lists, no model to answer),
the call falls back to the paper's rule on the raw mean p, and says so.

The paper's gradient-flow theory then ranks the candidates (NLL, −p,
GeneralFamily-α, −log p·1{p ≥ 0.2}, blends, and the trainers' EAFT, DEFT
and ASFT) by their risk-reduction rate at the measured noise rate (--noise
where none was measured), reports the rate E* at which the best
prior-leaning objective overtakes NLL, and lowers the confidence where it
disagrees with the call or the capability is borderline. Where capsel's
experiment grid measured one of the trainers' objectives ahead, the output
names it as an alternative, and the pilot sweep includes it.

Inputs (one of):
  (nothing)                   the embedded demo: a small model capsel trained,
                              and its fine-tuning data
  REPORT.json                 a report written by 'selector probe --out'
  --logprobs FILE...          log-prob files, as 'selector probe' reads them
  --server URL... [--served-model NAME] --data SFT.jsonl
                              score the data on vLLM, SGLang or TGI servers
                              (see 'selector probe -h')
  --model CKPT --data SFT.jsonl
                              a capsel checkpoint (also enables --pilot)

Your own model, in two commands (vLLM, SGLang or TGI serving it on
localhost:8000):
  selector probe --server http://localhost:8000 --served-model MODEL \
                 --data sft.jsonl --out report.json
  selector recommend report.json --export trl

--export prints the exact config for toml (capsel), verl (the paper's fork),
trl, llamafactory, swift or axolotl, and says plainly where a trainer cannot
express the recommendation. --pilot (capsel checkpoints only) runs the pilot
sweep: short fine-tunes on 90 % of the data, compared example by example on
the other 10 %. An objective that beats every other one there (a paired 95 %
CI that excludes 0; exact match first, token accuracy where exact match does
not separate them) becomes the recommendation; otherwise the output says
why the recommendation stands.`),
}

func init() { cmdRecommend.run = runRecommend }

type recommendJSON struct {
	selector.Recommendation
	Input  string          `json:"input"`
	Export *exportJSON     `json:"export,omitempty"`
	Pilots *train.PilotRun `json:"pilot_results,omitempty"`
}

type exportJSON struct {
	Format string   `json:"format"`
	Text   string   `json:"text"`
	Exact  bool     `json:"exact"`
	Notes  []string `json:"notes"`
}

func runRecommend(e *env, args []string) error {
	f := newFlags(e, "recommend", cmdRecommend.usage, cmdRecommend.long)
	pi := addProbeInputs(f)
	noise := f.Float64("noise", selector.DefaultOptions().Noise, "label-noise rate E for the theory's ranking; without the flag, the noise-aware probe's measured rate, and this default only where nothing was measured")
	posterior := f.Bool("posterior", false, "use the Bayes posterior clean probability π(q) instead of 1 − E")
	u := f.String("u", "model", "true-token distribution for noisy labels: model or uniform")
	asJSON := f.Bool("json", false, "print JSON")
	export := f.String("export", "", "also print the config for `format`: "+formatList())
	pilot := f.Bool("pilot", false, "run the pilot sweep (with --model CKPT --data FILE, or the demo)")
	pilotSteps := f.Int("pilot-steps", train.DefaultPilotConfig().Steps, "steps of each pilot fine-tune")
	pilotSeeds := f.Int("pilot-seeds", train.DefaultPilotConfig().Seeds, "data orders per pilot objective; scores are averaged over them")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	opt := selector.DefaultOptions()
	opt.Noise, opt.Posterior, opt.AssumeNoise = *noise, *posterior, f.set("noise")
	switch *u {
	case "model":
		opt.U = theory.UModel
	case "uniform":
		opt.U = theory.UUniform
	default:
		return f.usagef("--u: %q is not model or uniform", *u)
	}
	if !(opt.Noise >= 0 && opt.Noise <= 1) {
		return f.usagef("--noise: %v is not in [0, 1]", opt.Noise)
	}
	var format selector.Format
	if *export != "" {
		if format, err = selector.ParseFormat(*export); err != nil {
			return f.usagef("--export: %v", err)
		}
	}
	if *pilotSteps < 1 || *pilotSeeds < 1 {
		return f.usagef("--pilot-steps and --pilot-seeds must be ≥ 1")
	}
	demo := len(pos) == 0 && len(pi.logprobs) == 0 && len(pi.servers) == 0 && *pi.model == ""
	if *pilot && !demo && *pi.model == "" {
		return f.usagef("--pilot fine-tunes the model itself: it needs --model CKPT --data FILE (or the demo)")
	}
	var rep *probe.Report
	input := "demo: a capsel model pretrained on the fact-recall task, with its fine-tuning data"
	if demo {
		cfg, err := pi.config(f)
		if err != nil {
			return err
		}
		rep, err = demoReport(e.ctx, cfg)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	} else {
		if rep, err = pi.report(e, f, pos); err != nil {
			return err
		}
		input = pi.describe(pos)
	}
	rec, err := selector.Recommend(selector.FromReport(rep), opt)
	if err != nil {
		return err
	}
	out := recommendJSON{Input: input}
	switch {
	case *pilot && rec.Pilot == nil:
		e.log.Warn().Str("confidence", rec.Confidence).Msg("--pilot: the recommendation is already confident; no pilot sweep to run")
	case *pilot:
		ck, data, err := pilotInputs(demo, *pi.model, *pi.data)
		if err != nil {
			return err
		}
		cfg := train.DefaultPilotConfig()
		cfg.Objectives, cfg.Steps, cfg.Seeds = rec.Pilot.Objectives, *pilotSteps, *pilotSeeds
		if out.Pilots, err = runPilot(e, ck, data, cfg); err != nil {
			return err
		}
		arms := make([]selector.PilotArm, len(out.Pilots.Arms))
		for i, a := range out.Pilots.Arms {
			arms[i] = selector.PilotArm{Objective: a.Objective, ExactMatch: a.PerExample.ExactMatch, TokenAccuracy: a.PerExample.TokenAccuracy}
		}
		d, err := selector.DecidePilot(arms)
		if err != nil {
			return err
		}
		rec.ApplyPilot(d)
	}
	out.Recommendation = rec
	if *export != "" {
		fb, why := autoFallback(rec)
		ex, err := selector.ExportRecommendation(rec, format,
			selector.ExportOptions{AutoFallback: fb, FallbackWhy: why, AutoTheory: autoTheorySettings()})
		if err != nil {
			return err
		}
		out.Export = &exportJSON{Format: string(ex.Format), Text: ex.Text, Exact: ex.Exact, Notes: ex.Notes}
	}
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	printRecommendation(e.stdout, out, *pilot)
	return nil
}

// autoFallback is what a trainer that cannot run an adaptive
// recommendation should use instead, and where it comes from: the fixed
// objective the pilot sweep measured ahead of the other fixed ones, or the
// recommendation's fallback.
func autoFallback(rec selector.Recommendation) (objectives.Objective, string) {
	if d := rec.PilotDecision; d != nil && d.BestFixed != "" {
		return objectives.MustParse(d.BestFixed), "the best fixed objective of your pilot sweep"
	}
	if o, err := objectives.Parse(rec.Fallback); err == nil && !o.Adaptive() {
		return o, "the recommendation's fallback for trainers that cannot run " + rec.Objective + " (settle it with the pilot sweep it lists)"
	}
	return objectives.Objective{}, ""
}

func formatList() string {
	var s []string
	for _, f := range selector.Formats() {
		s = append(s, string(f))
	}
	return strings.Join(s, ", ")
}

// demoReport probes the embedded checkpoint on the embedded data.
func demoReport(ctx context.Context, cfg probe.Config) (*probe.Report, error) {
	ck, data, err := pilotInputs(true, "", "")
	if err != nil {
		return nil, err
	}
	return ckprobe.Report(ctx, ck, "demo/base.ckpt", data, "demo/sft.jsonl", cfg)
}

// pilotInputs loads the model and data the pilot fine-tunes.
func pilotInputs(demo bool, model, data string) (*train.Checkpoint, []train.Example, error) {
	if demo {
		ck, err := train.ReadCheckpoint(bytes.NewReader(demoCheckpoint), "demo/base.ckpt")
		if err != nil {
			return nil, nil, err
		}
		ex, err := train.ReadExamples(bytes.NewReader(demoSFT), "demo/sft.jsonl")
		return ck, ex, err
	}
	ck, err := readCheckpointFile(model)
	if err != nil {
		return nil, nil, err
	}
	ex, err := readExamplesFile(data)
	return ck, ex, err
}

// runPilot runs the pilot sweep with a progress bar and logs each arm's
// held-out scores.
func runPilot(e *env, ck *train.Checkpoint, data []train.Example, cfg train.PilotConfig) (*train.PilotRun, error) {
	bar := newProgressBar(e, "pilot", len(cfg.Objectives)*cfg.Seeds*cfg.Steps)
	run, err := train.Pilot(e.ctx, ck, data, cfg, func(done, _ int, spec string) { bar.update(done, 0, "", spec) })
	bar.finish()
	if err != nil {
		return nil, err
	}
	for _, a := range run.Arms {
		e.log.Info().Str("objective", a.Objective).Float64("exact_match", a.ExactMatch).Float64("token_accuracy", a.TokenAccuracy).Msg("pilot")
	}
	return &run, nil
}

func printRecommendation(w io.Writer, r recommendJSON, pilotRan bool) {
	fmt.Fprintf(w, "Recommended objective: %s   (confidence: %s)\n", r.Objective, r.Confidence)
	switch {
	case r.Objective == "auto":
		fmt.Fprintf(w, "  for trainers that cannot adapt the objective during training: %s\n", r.Fallback)
	case r.Fallback != "" && r.Fallback != r.Objective:
		fmt.Fprintf(w, "  for trainers that cannot run it: %s\n", r.Fallback)
	}
	fmt.Fprintf(w, "  input: %s\n", r.Input)
	if na := r.NoiseAware; na != nil {
		fmt.Fprintf(w, "  capability: Ĉ %.3f (95%% CI %.3f–%.3f) with the visible noise taken out; as given, mean p %.3f (the paper's Eq. 5) → %s\n",
			r.Capability, r.CapabilityCI[0], r.CapabilityCI[1], r.RawMeanP, r.Region)
		fmt.Fprintf(w, "  label noise: %s; %d of %d examples flagged (%s answers)\n", noiseLine(na), na.Flagged, na.Examples, na.Method)
		if r.DropFlagged {
			fmt.Fprintln(w, "  train without the flagged examples: selector clean writes the data without them")
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "  capability: mean p %.3f (95%% CI %.3f–%.3f), %.0f%% of tokens above 0.55 → %s (no noise-aware measurement)\n\n",
			r.Capability, r.CapabilityCI[0], r.CapabilityCI[1], 100*r.ShareGT055, r.Region)
	}
	fmt.Fprintln(w, "Why:")
	for _, s := range r.Rationale {
		fmt.Fprintf(w, "  - %s\n", wrap(s, 76, "    "))
	}
	fmt.Fprintf(w, "\nTheory's ranking (paper §6; noise E = %.3g, %s; %d token contexts):\n", r.Noise, r.NoiseSource, r.Contexts)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tOBJECTIVE\tCLASS\tRATE Ṙ\tRATE/‖∇L‖\t")
	for i, x := range r.Ranking {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t\n", i+1, x.Objective, x.Class, fmtG(x.Rate), fmtG(x.Normalised))
	}
	tw.Flush()
	if r.Crossover != nil {
		fmt.Fprintf(w, "  crossover: %s and nll trade places at a label-noise rate of E* = %.3f\n", r.BestLeaning, *r.Crossover)
	} else {
		fmt.Fprintf(w, "  crossover: none in [0, 1] between %s and nll\n", r.BestLeaning)
	}
	for _, u := range r.Unranked {
		fmt.Fprintf(w, "  %s\n", wrap("not ranked: "+u.Objective+": "+u.Reason, 76, "    "))
	}
	if len(r.Alternatives) > 0 {
		fmt.Fprintln(w, "\nAlso worth trying (the trainers' objectives, on capsel's experiment grid):")
		for _, a := range r.Alternatives {
			fmt.Fprintf(w, "  - %s\n", wrap(a.Objective+": "+a.Why, 76, "    "))
		}
	}
	if r.RemainderNote {
		fmt.Fprintln(w, "  (top-k inputs: the unlisted probability mass is spread evenly over the unlisted tokens, or lumped when the vocabulary size is unknown)")
	}
	if r.Pilot != nil {
		fmt.Fprintln(w, "\nPilot sweep, to settle it on your data:")
		fmt.Fprintf(w, "  objectives  %s\n  budget      %s\n  compare     %s\n  pick        %s\n",
			strings.Join(r.Pilot.Objectives, ", "), r.Pilot.Steps, r.Pilot.Compare, r.Pilot.Pick)
		if !pilotRan {
			fmt.Fprintln(w, "  (capsel checkpoints: add --pilot to run it now)")
		}
	}
	if p, d := r.Pilots, r.PilotDecision; p != nil && d != nil {
		fmt.Fprintf(w, "\nPilot results (%d steps per run, %d seed(s); trained on %d examples, scored on the %d held out):\n", p.Steps, p.Seeds, p.Fit, p.Held)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  OBJECTIVE\tEXACT MATCH\tTOKEN ACC\tMEAN P\t")
		for _, a := range p.Arms {
			fmt.Fprintf(tw, "  %s\t%.3f\t%.3f\t%.3f\t\n", a.Objective, a.ExactMatch, a.TokenAccuracy, a.MeanP)
		}
		tw.Flush()
		for _, n := range d.Notes {
			fmt.Fprintf(w, "  %s\n", wrap("note: "+n, 76, "        "))
		}
		if d.Winner != "" {
			fmt.Fprintf(w, "  %s\n", wrap(fmt.Sprintf("winner: %s, on %s: ahead of every other objective, with paired 95%% CIs that exclude 0",
				d.Winner, strings.ReplaceAll(d.DecidedBy, "_", " ")), 76, "    "))
		} else {
			fmt.Fprintf(w, "  %s\n", wrap("no winner: "+d.Reason, 76, "    "))
		}
	}
	if r.Export != nil {
		fmt.Fprintf(w, "\nExport for %s (exact: %v):\n\n%s", r.Export.Format, r.Export.Exact, r.Export.Text)
		for _, n := range r.Export.Notes {
			fmt.Fprintf(w, "  note: %s\n", wrap(n, 74, "        "))
		}
	} else {
		fmt.Fprintln(w, "\nPut it in your trainer: add --export toml|verl|trl|llamafactory|swift|axolotl")
	}
}

// noiseLine says what the noise-aware probe measured of the labels.
func noiseLine(na *selector.NoiseAwareSummary) string {
	switch {
	case na.Noise != nil:
		return fmt.Sprintf("Ê %.3f (95%% CI %.3f–%.3f) of the %.0f%% of examples the model knows", na.Noise.Value, na.Noise.CI[0], na.Noise.CI[1], 100*na.Known.Value)
	case na.TokenNoise != nil:
		return fmt.Sprintf("%.3f of the model's confident tokens contradicted (95%% CI %.3f–%.3f)", na.TokenNoise.Value, na.TokenNoise.CI[0], na.TokenNoise.CI[1])
	}
	return "not measurable (the model knows too little of the data)"
}

// wrap breaks s into lines of at most width runes, indenting continuations.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		l := len([]rune(word))
		if i > 0 {
			if n+1+l > width {
				b.WriteString("\n" + indent)
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += l
	}
	return b.String()
}
