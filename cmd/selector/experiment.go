package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/capsel/capsel/experiments"
	"github.com/capsel/capsel/internal/atomicfile"
)

var cmdExperiment = &command{
	name:  "experiment",
	usage: "selector experiment continuum | theory | autoblend | all [--quick] [--seeds N] [--task-seed N] [--tasks T,...] [--noises E,...] [--schemes S,...] [--out DIR] [--json] [--parallel N] [--cache DIR]",
	short: "reproduce the capability continuum and test the theory on small models",
	long: `Checks the paper's claims on models capsel trains itself, with statistics.

Two tasks, each with a capability dial (the share of the targets that the
base models' pretraining covers, the paper's App. B.1):

  fact   recall of random facts; fine-tuned on one set of facts, tested on
         facts it never fine-tuned on (which pretraining covered at the same
         rate), with the fit to the training facts as its own column
  rule   a letter substitution; fine-tuned on some words, tested on new
         ones, so the test needs the rule, not memory

Each task adds its other kind of weak base model: the fact dial's weak end
is confidently wrong, so an "uninformed" one is added; the rule dial's is
diffuse, so a "misinformed" one is added. Every base model has --seeds
replicates (its own seed, fine-tuning seed and noise draw), and is
fine-tuned on clean labels and on labels corrupted by each scheme at the
largest noise rate (the dial's upper base models at every rate): replace (a
random response), substitute (one letter wrong), indel (one letter inserted
or deleted).

  continuum   the probe's figures of every base model on clean data and on
              the data as given, and the noise-aware probe's Ĉ and Ê (greedy
              and teacher-forced) against the truth, with a dense per-token
              noise scheme probed only; held-out exact match, token accuracy
              and mean p and the training-set fit of every objective, with
              95 % CIs over replicates, paired differences against NLL and −p
              and the cell's winner (or a tie); the crossover along the dial;
              where each objective stands against NLL and −p per noise group;
              how often the noise-aware call and the region rules name the
              measured class-level winner; PNGs against the probe's mean p on
              the data as given
  theory      in every cell, the winner predicted by the paper's rate (with
              known truths, the posterior split and the flat split), the
              step-normalised rate, the exact first-order rate and the
              measured one-step change, against the decided final outcome;
              the crossover noise rate E*
  autoblend   auto, auto-theory and the baseline clean-nll (NLL without the
              examples the noise-aware probe flags) against the best fixed
              objective per cell
  all         the three

The objectives: NLL, −p, −p¹⁰, −log p·1{p ≥ 0.2}, the trainers' eaft-1
(LLaMA-Factory's EAFT at its default α), deft (the DEFT fork's) and asft-0.1
(LLaMA-Factory's ASFT at its default α, anchored to the base model), auto
(which measures the base model once, before its first step) and auto-theory.

Runs are cached (--cache) so that the three share them. --quick checks the
pipeline in seconds on tiny models and tasks; its numbers mean nothing and
its output says so. --task-seed draws other facts, words and another
substitution: the same grid on other data, to check out of sample what was
found on the first. Results go to DIR as markdown, JSON and PNG, each file
stating the command that produced it. The per-example noise truth of every
fine-tuning set is available from the experiments package
(Setup.SFTData).`,
}

func init() { cmdExperiment.run = runExperiment }

func runExperiment(e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "name an experiment: continuum, theory, autoblend or all"}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fmt.Fprintf(e.stdout, "usage: %s\n\n%s\n", cmdExperiment.usage, cmdExperiment.long)
		return errHelpShown
	}
	which := args[0]
	if which != "continuum" && which != "theory" && which != "autoblend" && which != "all" {
		return &usageError{msg: fmt.Sprintf("unknown experiment %q (continuum, theory, autoblend or all)", which)}
	}
	f := newFlags(e, "experiment "+which, cmdExperiment.usage, cmdExperiment.long)
	quick := f.Bool("quick", false, "check the pipeline quickly (tiny models; the numbers mean nothing)")
	seeds := f.Int("seeds", 0, "replicates per grid point, ≥ 2: base models, each with its own fine-tuning seed and noise draw (default 4, quick 2)")
	taskSeed := f.Uint64("task-seed", 1, "seed of the tasks' data (the facts, the words and the substitution): another seed replicates the whole grid on other data")
	tasks := f.String("tasks", "", "comma-separated tasks: fact, rule (default both)")
	noises := f.String("noises", "", "comma-separated label-noise rates (default 0,0.1,0.2,0.3,0.5; quick 0,0.5)")
	schemes := f.String("schemes", "", "comma-separated noise schemes: replace, substitute, indel (default all; quick replace,substitute)")
	out := f.String("out", "experiments/results", "results `directory`")
	asJSON := f.Bool("json", false, "also print the results as JSON on stdout")
	parallel := f.Int("parallel", 2, "fine-tunes run at once")
	defCache := ""
	if d, err := os.UserCacheDir(); err == nil {
		defCache = filepath.Join(d, "capsel", "experiments")
	}
	cache := f.String("cache", defCache, "cache `directory` for base models and runs (\"\" turns it off)")
	if err := f.parseNoArgs(args[1:]); err != nil {
		return err
	}
	setup := experiments.DefaultSetup()
	if *quick {
		setup = experiments.QuickSetup()
	}
	if f.set("seeds") {
		if *seeds < 2 {
			return f.usagef("--seeds %d: need at least 2 replicates for a confidence interval", *seeds)
		}
		setup.Replicates = *seeds
	}
	if f.set("task-seed") {
		if *taskSeed == 0 {
			return f.usagef("--task-seed 0: give a seed of 1 or more")
		}
		setup.TaskSeed = *taskSeed
	}
	if f.set("tasks") {
		setup.Tasks = splitList(*tasks)
	}
	if f.set("noises") {
		var err error
		if setup.Noises, err = parseFloats(*noises); err != nil {
			return f.usagef("--noises: %v", err)
		}
	}
	if f.set("schemes") {
		setup.Schemes = nil
		for _, name := range splitList(*schemes) {
			sc, err := experiments.ParseScheme(name)
			if err != nil {
				return f.usagef("--schemes: %v", err)
			}
			setup.Schemes = append(setup.Schemes, sc)
		}
	}
	if *parallel < 1 {
		return f.usagef("--parallel must be ≥ 1")
	}
	if err := setup.Validate(); err != nil {
		return f.usagef("%v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	// The command as typed, empty and spaced arguments quoted.
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			quoted[i] = strconv.Quote(a)
		}
	}
	command := "selector experiment " + strings.Join(quoted, " ")
	var bar *progressBar
	stage := ""
	r := &experiments.Runner{Setup: setup, Cache: *cache, Parallel: *parallel, Events: func(ev experiments.Event) {
		if ev.Stage != stage {
			if bar != nil {
				bar.finish()
			}
			stage = ev.Stage
			bar = newProgressBar(e, fmt.Sprintf("%-9s", ev.Stage), ev.Total)
		}
		bar.total = ev.Total
		bar.update(ev.Done, 0, "", ev.Cell)
		// Without a terminal, log about twenty lines per stage.
		if !e.tty && (ev.Done == ev.Total || ev.Done%max(1, ev.Total/20) == 0) {
			e.log.Info().Str("stage", ev.Stage).Str("cell", ev.Cell).Int("done", ev.Done).Int("total", ev.Total).Msg("progress")
		}
	}}
	start := time.Now()
	results := map[string]any{}
	write := func(name string, v any, md string) error {
		if err := atomicfile.WriteBytes(filepath.Join(*out, name+".md"), []byte(md)); err != nil {
			return err
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("%s.json: %w", name, err)
		}
		results[name] = v
		return atomicfile.WriteBytes(filepath.Join(*out, name+".json"), append(b, '\n'))
	}
	cont, err := r.Continuum(e.ctx)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	if which == "continuum" || which == "all" {
		if err := write("continuum", cont, cont.Markdown(command)); err != nil {
			return err
		}
		files, err := cont.Plots(*out)
		if err != nil {
			return err
		}
		e.log.Info().Int("plots", len(files)).Msg("wrote continuum figures")
	}
	var th *experiments.TheoryResult
	if which == "theory" || which == "all" {
		stage = ""
		th, err = r.Theory(e.ctx, cont)
		if bar != nil {
			bar.finish()
		}
		if err != nil {
			return err
		}
		if err := write("theory", th, th.Markdown(command)); err != nil {
			return err
		}
	}
	if which == "autoblend" || which == "all" {
		ab, err := experiments.Autoblend(cont)
		if err != nil {
			return err
		}
		if err := write("autoblend", ab, ab.Markdown(command)); err != nil {
			return err
		}
		if which == "all" {
			if err := atomicfile.WriteBytes(filepath.Join(*out, "summary.md"), []byte(experiments.Summary(cont, th, ab, command))); err != nil {
				return err
			}
		}
	}
	elapsed := time.Since(start).Round(time.Second)
	e.log.Info().Str("out", *out).Str("elapsed", elapsed.String()).Msg("done")
	if *asJSON {
		return writeJSON(e.stdout, results)
	}
	fmt.Fprintf(e.stdout, "wrote %s results to %s in %s\n", which, *out, elapsed)
	if setup.Quick {
		fmt.Fprintln(e.stdout, "quick mode: tiny models and tasks; the numbers check the pipeline and mean nothing")
	}
	return nil
}
