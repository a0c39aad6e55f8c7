package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/capsel/capsel/experiments"
	"github.com/capsel/capsel/internal/atomicfile"
)

var cmdExperiment = &command{
	name:  "experiment",
	usage: "selector experiment continuum | theory | autoblend | all [--quick] [--seeds N] [--noises E,...] [--out DIR] [--json] [--parallel N] [--cache DIR]",
	short: "reproduce the capability continuum and test the theory on small models",
	long: `Checks the paper's claims on models capsel trains itself, with statistics.

The task is fact recall with a capability dial: base models pretrain on
distractor facts and on a share (the coverage) of the target facts, from 0 %
(the probe measures mean p ≈ 0.06, the paper's model-weak anchors are
0.01–0.07) to 100 % (≈ 0.83; model-strong anchors ≈ 0.8). Each base model is
fine-tuned on all target facts, a share of them with a wrong label, with each
objective and several seeds, and evaluated on the true values.

  continuum   the probe's mean p of every base model, and held-out exact
              match, token accuracy and mean p for every objective, with 95 %
              CIs over seeds and paired differences against NLL; PNGs of
              accuracy against capability (the continuum figure)
  theory      in every cell, the winner predicted by the paper's rate, the
              step-normalised rate and the exact first-order rate by autograd,
              against the measured one-step change and the final outcome
  autoblend   auto and auto-theory against the best fixed objective per cell
  all         the three

Runs are cached (--cache) so that theory and autoblend reuse the continuum's.
--quick checks the pipeline in about a minute (small models, two coverages,
two seeds); its numbers mean nothing. Results go to DIR as markdown, JSON and
PNG, each file stating the command that produced it.`,
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
	quick := f.Bool("quick", false, "check the pipeline quickly (small models; the numbers mean nothing)")
	seeds := f.Int("seeds", 0, "fine-tuning seeds per cell (default 5, quick 2)")
	noises := f.String("noises", "", "comma-separated label-noise rates (default 0,0.5; quick 0.5)")
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
	if *seeds != 0 {
		setup.Seeds = *seeds
	}
	if *noises != "" {
		var err error
		if setup.Noises, err = parseFloats(*noises); err != nil {
			return f.usagef("--noises: %v", err)
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
	command := "selector experiment " + strings.Join(args, " ")
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
		if !e.tty && (ev.Stage != "pretrain" || ev.Done == ev.Total) {
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
			return err
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
		e.log.Info().Strs("plots", files).Msg("wrote continuum figures")
	}
	if which == "theory" || which == "all" {
		stage = ""
		th, err := r.Theory(e.ctx, cont)
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
		stage = ""
		ab, err := r.Autoblend(e.ctx, cont)
		if bar != nil {
			bar.finish()
		}
		if err != nil {
			return err
		}
		if err := write("autoblend", ab, ab.Markdown(command)); err != nil {
			return err
		}
	}
	e.log.Info().Str("out", *out).Str("elapsed", time.Since(start).Round(time.Second).String()).Msg("done")
	if *asJSON {
		return writeJSON(e.stdout, results)
	}
	fmt.Fprintf(e.stdout, "wrote %s results to %s in %s\n", which, *out, time.Since(start).Round(time.Second))
	return nil
}
