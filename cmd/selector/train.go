package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/capsel/capsel/internal/atomicfile"
	"github.com/capsel/capsel/internal/plots"
	"github.com/capsel/capsel/train"
)

var cmdTrain = &command{
	name:  "train",
	usage: "selector train --data FILE --out DIR [--init CKPT] [--objective SPEC] [--steps N] [--seed N] [--resume] [--config RUN.toml] [flags]",
	short: "pretrain or fine-tune a small causal LM with any objective",
	long: `Trains a small decoder-only transformer on the CPU (spago, float32).

Without --init it trains from scratch (pretraining): the character alphabet
comes from the data and the architecture from --d, --layers, --heads and
--context. With --init CKPT it fine-tunes that model, keeping its
architecture and alphabet; the loss covers the response tokens (and the end
token) of each prompt/response example, as in SFT.

  selector train --data corpus.txt --out runs/base --steps 2000
  selector train --init runs/base/final --data sft.jsonl --out runs/sft-p --objective p
  selector train --config run.toml --objective auto        (flags override the file)
  selector train --out runs/sft-p --data sft.jsonl --resume (after a crash or Ctrl-C)

The objective is any spec of 'selector objectives list', or:
  auto          before the first step, measures the base model on the training
                data as 'selector probe' does with a capsel checkpoint: its own
                greedy answers, how confident it is in them, and which labels
                contradict answers it is sure of (the noise-aware probe, with
                --auto-null shuffled prompts as the null set). From capability
                Ĉ and label noise Ê it makes the recommendation's call: a
                prior-leaning objective where Ĉ is model-strong or the labels
                are measurably noisy (asft-0.1, anchored to the base model),
                else NLL without the flagged examples. The measurement and
                the choice are logged, written to metrics.jsonl and the
                summary, and kept in the checkpoints for --resume.
  auto-theory   every --auto-every steps, ranks --auto-candidates by their
                estimated risk-reduction rate on the current batch (see
                'selector theory -h') and trains with the best, at the noise
                rate measured as for auto (--auto-noise where none is
                measurable).
  eaft-α, eaft-axolotl-α-k, deft, deft-cayley
                the trainers' gated objectives: each token's gate is read from
                its whole next-token distribution (deft-cayley: the batch's
                mean p) and detached, as LLaMA-Factory, Axolotl and the DEFT
                fork compute them. eaft-α needs a vocabulary of 20 tokens.
  asft-α        DFT plus α·KL to a frozen reference: the model the run starts
                from (the --init checkpoint's weights, or the seeded
                initialisation). The reference runs forward on every batch
                and is saved in each checkpoint, so --resume anchors to the
                same weights; it costs a forward pass and a copy of the
                weights (see bench/README.md).

Optimisation follows the paper: AdamW (betas 0.9/0.95, weight decay 0.01),
cosine schedule with warm-up ratio 0.1, gradient clipping at 1.0. Training is
deterministic for a seed: an interrupted run resumed with --resume ends with
the same weights, bit for bit, as an uninterrupted one.

DIR receives: checkpoint (written atomically every --checkpoint-every steps,
with the optimizer state), final (at the end), metrics.jsonl (one line per
step and per evaluation), run.json (the resolved settings), and with --plot
the training curves. On a terminal a progress bar shows the run; otherwise
a log line goes to stderr every few seconds and at the end.

`,
}

func init() { cmdTrain.long += configKeysHelp(); cmdTrain.run = runTrain }

// runDefining lists the settings a resumed run must keep.
var resumeMayChange = map[string]bool{"data": true, "out": true, "checkpoint-every": true, "eval-data": true, "eval-every": true, "init": true}

type trainSummary struct {
	Steps        int     `json:"steps"`
	Objective    string  `json:"objective"`
	FinalLoss    float64 `json:"final_loss"`
	FinalMeanP   float64 `json:"final_mean_p"`
	Params       int     `json:"params"`
	Checkpoint   string  `json:"checkpoint"`
	Final        string  `json:"final"`
	ElapsedSec   float64 `json:"elapsed_sec"`
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"` // of this invocation's steps
	// AlreadyDone is true when --resume found the run finished: no step
	// was taken, and the final loss and mean p are the last step's.
	AlreadyDone bool              `json:"already_done,omitempty"`
	Data        train.DataStats   `json:"data"`
	Eval        *train.EvalResult `json:"eval,omitempty"`
	// Measurement is what auto or auto-theory measured of the base model.
	Measurement *train.Measurement `json:"measurement,omitempty"`
}

func runTrain(e *env, args []string) error {
	rc := defaultRunConfig()
	f := newFlags(e, "train", cmdTrain.usage, cmdTrain.long)
	bindRunFlags(f.FlagSet, &rc)
	configPath := f.String("config", "", "read settings from this TOML `file` (unknown keys are errors)")
	resume := f.Bool("resume", false, "continue the run saved in DIR/checkpoint")
	plotPath := f.String("plot", "", "write loss and mean-p curves to this PNG `file` at the end")
	asJSON := f.Bool("json", false, "print the final summary as JSON")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return f.usagef("unexpected argument %q (the data file goes after --data)", pos[0])
	}
	rc, set, err := resolveRun(f, &rc, *configPath)
	if err != nil {
		return err
	}
	if rc.Data == "" {
		return f.usagef("--data FILE is required")
	}
	if rc.Out == "" {
		return f.usagef("--out DIR is required")
	}
	cfg := rc.trainConfig()
	if err := cfg.Validate(); err != nil {
		return f.usagef("%v", err)
	}
	data, err := readExamplesFile(rc.Data)
	if err != nil {
		return err
	}
	ckPath, finalPath := filepath.Join(rc.Out, "checkpoint"), filepath.Join(rc.Out, "final")
	var tr *train.Trainer
	if *resume {
		ck, err := readCheckpointFile(ckPath)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--resume: %s holds no checkpoint to resume", rc.Out)
		}
		if err != nil {
			return err
		}
		if ck.Run == nil {
			return fmt.Errorf("--resume: %s holds weights only", ckPath)
		}
		saved := runConfigFrom(ck.Run.Config)
		fsSaved := flag.NewFlagSet("", flag.ContinueOnError)
		bindRunFlags(fsSaved, &saved)
		for name := range set {
			if resumeMayChange[name] || fsSaved.Lookup(name) == nil {
				continue
			}
			if got, was := f.Lookup(name).Value.String(), fsSaved.Lookup(name).Value.String(); got != was {
				return f.usagef("--resume continues the saved run, which has --%s %s; drop --%s %s", name, was, name, got)
			}
		}
		if tr, err = train.Resume(ck, data); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
		e.log.Info().Int("step", tr.StepsDone()).Str("checkpoint", ckPath).Msg("resuming")
	} else {
		if _, err := os.Stat(ckPath); err == nil {
			return fmt.Errorf("%s already holds a run; continue it with --resume or choose another --out", rc.Out)
		}
		var init *train.Checkpoint
		if rc.Init != "" {
			for _, s := range runSettings {
				if s.arch && set[s.flag] {
					return f.usagef("--%s: the architecture comes from --init %s", s.flag, rc.Init)
				}
			}
			if init, err = readCheckpointFile(rc.Init); err != nil {
				return err
			}
		}
		if tr, err = train.New(cfg, init, data); err != nil {
			return err // data errors name the file and line already
		}
	}
	if err := os.MkdirAll(rc.Out, 0o755); err != nil {
		return err
	}
	tc := tr.Config()
	ds := tr.Data()
	if ds.Truncated > 0 || ds.Dropped > 0 {
		e.log.Warn().Int("truncated", ds.Truncated).Int("dropped", ds.Dropped).Int("context", tc.Model.Context).
			Msg("examples longer than the context were cut on the right; those with no response left were dropped")
	}
	if !*resume {
		runJSON, err := json.MarshalIndent(map[string]any{"config": tc, "data_file": rc.Data, "init": rc.Init,
			"data": ds, "params": tc.Model.NumParams(), "alphabet": tr.Tokenizer().Alphabet()}, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(rc.Out, "run.json"), append(runJSON, '\n')); err != nil {
			return err
		}
	}
	metricsPath := filepath.Join(rc.Out, "metrics.jsonl")
	metrics, last, err := openMetrics(metricsPath, tr.StepsDone())
	if err != nil {
		return err
	}
	defer metrics.Close() // on the error paths; the others close it with closeMetrics
	var evalData []train.Example
	if rc.EvalData != "" {
		if evalData, err = readExamplesFile(rc.EvalData); err != nil {
			return err
		}
	}
	e.log.Info().Str("objective", tc.Objective).Int("params", tc.Model.NumParams()).Int("examples", ds.Examples).
		Int("steps", tc.Steps).Int("batch", tc.Batch).Msg("training")

	save := func(path string) error {
		return atomicfile.Write(path, func(w io.Writer) error {
			_, err := tr.Checkpoint().WriteTo(w)
			return err
		})
	}
	evaluate := func(step int) (*train.EvalResult, error) {
		res, err := train.Evaluate(e.ctx, tr.Model(), tr.Tokenizer(), evalData, train.EvalOptions{})
		if err != nil {
			return nil, err // data errors name the file and line already
		}
		e.log.Info().Int("step", step).Float64("exact_match", res.ExactMatch).Float64("token_accuracy", res.TokenAccuracy).
			Float64("mean_p", res.MeanP).Float64("nll", res.NLL).Msg("eval")
		return &res, writeMetric(metrics, map[string]any{"step": step, "eval": res})
	}

	bar := newProgressBar(e, "train", tc.Steps)
	start, startStep := time.Now(), tr.StepsDone()
	var tokens int
	curves := [2]plots.Curve{{Name: "loss"}, {Name: "mean p of targets"}}
	lastLog := start
	measured := tr.Measurement() != nil
	for !tr.Done() {
		info, err := tr.Step(e.ctx)
		if err != nil {
			bar.finish()
			if errors.Is(err, context.Canceled) {
				if serr := save(ckPath); serr != nil {
					return serr
				}
				if merr := closeMetrics(metrics); merr != nil {
					return merr
				}
				return fmt.Errorf("interrupted at step %d; the checkpoint is saved: continue with --resume", tr.StepsDone())
			}
			return err
		}
		last = info
		if m := tr.Measurement(); m != nil && !measured {
			measured = true
			logMeasurement(e, m)
			if err := writeMetric(metrics, map[string]any{"step": 0, "measurement": m}); err != nil {
				return err
			}
		}
		tokens += info.Tokens
		el := time.Since(start).Seconds()
		tps := float64(tokens) / el
		if err := writeMetric(metrics, struct {
			train.StepInfo
			ElapsedSec float64 `json:"elapsed_sec"`
		}{info, el}); err != nil {
			return err
		}
		curves[0].X, curves[0].Y = append(curves[0].X, float64(info.Step)), append(curves[0].Y, info.Loss)
		curves[1].X, curves[1].Y = append(curves[1].X, float64(info.Step)), append(curves[1].Y, info.MeanP)
		bar.update(info.Step, tps, "tok", fmt.Sprintf("loss %.3f  mean p %.3f  %s", info.Loss, info.MeanP, info.Objective))
		// Without a terminal, a line every logInterval and at the end
		// (metrics.jsonl has every step); auto-theory's switches always.
		if now := time.Now(); info.Switched || (!e.tty && (now.Sub(lastLog) >= logInterval || info.Step == tc.Steps)) {
			lastLog = now
			e.log.Info().Int("step", info.Step).Float64("loss", info.Loss).Float64("mean_p", info.MeanP).
				Str("objective", info.Objective).Bool("switched", info.Switched).Float64("lr", info.LR).
				Float64("tokens_per_sec", tps).Msg("step")
		}
		if rc.EvalEvery > 0 && evalData != nil && info.Step%rc.EvalEvery == 0 && info.Step < tc.Steps {
			if _, err := evaluate(info.Step); err != nil {
				return err
			}
		}
		if rc.CheckpointEvery > 0 && info.Step%rc.CheckpointEvery == 0 && info.Step < tc.Steps {
			if err := save(ckPath); err != nil {
				return err
			}
		}
	}
	bar.finish()
	if err := save(ckPath); err != nil {
		return err
	}
	if err := save(finalPath); err != nil {
		return err
	}
	sum := trainSummary{Steps: tc.Steps, Objective: tc.Objective, FinalLoss: last.Loss, FinalMeanP: last.MeanP,
		Params: tc.Model.NumParams(), Checkpoint: ckPath, Final: finalPath, ElapsedSec: time.Since(start).Seconds(), Data: ds,
		Measurement: tr.Measurement()}
	if sum.ElapsedSec > 0 && tr.StepsDone() > startStep {
		sum.TokensPerSec = float64(tokens) / sum.ElapsedSec
	}
	sum.AlreadyDone = startStep == tc.Steps
	if evalData != nil {
		if sum.Eval, err = evaluate(tc.Steps); err != nil {
			return err
		}
	}
	if err := closeMetrics(metrics); err != nil {
		return err
	}
	if *plotPath != "" && len(curves[0].X) > 1 {
		if err := plots.Lines(*plotPath, "Training: "+tc.Objective, "step", "value", curves[:]); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(e.stdout, sum)
	}
	if sum.AlreadyDone {
		fmt.Fprintf(e.stdout, "the run in %s had already taken all %d steps with %s: nothing left to resume; its last step: loss %.4f, mean p of targets %.3f\n",
			rc.Out, sum.Steps, sum.Objective, sum.FinalLoss, sum.FinalMeanP)
	} else {
		fmt.Fprintf(e.stdout, "trained %d steps with %s: loss %.4f, mean p of targets %.3f (%s tokens/s)\n",
			sum.Steps, sum.Objective, sum.FinalLoss, sum.FinalMeanP, human(sum.TokensPerSec))
	}
	fmt.Fprintf(e.stdout, "final model: %s\n", finalPath)
	if sum.Eval != nil {
		fmt.Fprintf(e.stdout, "held-out: exact match %.3f, token accuracy %.3f, mean p %.3f, NLL %.4f\n",
			sum.Eval.ExactMatch, sum.Eval.TokenAccuracy, sum.Eval.MeanP, sum.Eval.NLL)
	}
	return nil
}

// runConfigFrom is the inverse of runConfig.trainConfig.
func runConfigFrom(c train.Config) runConfig {
	return runConfig{
		Objective: c.Objective, Steps: c.Steps, Batch: c.Batch, LR: c.LR, Seed: c.Seed,
		Model: modelTable{D: c.Model.D, Layers: c.Model.Layers, Heads: c.Model.Heads, Context: c.Model.Context},
		Optim: optimTable{WarmupRatio: c.WarmupRatio, WeightDecay: c.WeightDecay, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, Clip: c.Clip},
		Auto: autoTable{Null: c.Auto.Null, Every: c.Auto.Every,
			Noise: c.Auto.Noise, Rate: c.Auto.Rate, Candidates: c.Auto.Candidates, Contexts: c.Auto.Contexts},
	}
}

// logMeasurement logs what auto or auto-theory measured of the base model
// and why auto chose its objective.
func logMeasurement(e *env, m *train.Measurement) {
	ev := e.log.Info().Float64("capability", m.Capability.Value).Float64("raw_mean_p", m.RawMeanP).Int("flagged", m.Flagged).
		Int("dropped", len(m.Dropped)).Str("objective", m.Objective)
	if m.Noise != nil {
		ev = ev.Float64("noise", m.Noise.Value).Floats64("noise_ci", m.Noise.CI[:])
	} else if m.TokenNoise != nil {
		ev = ev.Float64("token_noise", m.TokenNoise.Value).Floats64("token_noise_ci", m.TokenNoise.CI[:])
	}
	ev.Msg("measured the base model")
	for _, r := range m.Reasons {
		e.log.Info().Msg(r)
	}
}

func readExamplesFile(path string) ([]train.Example, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return train.ReadExamples(fh, path)
}

func readCheckpointFile(path string) (*train.Checkpoint, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return train.ReadCheckpoint(fh, path)
}

// openMetrics opens DIR/metrics.jsonl for appending. Resuming at step k
// first drops every line after step k (and a torn last line), so that the
// file holds each step once; it also returns step k's line, which is what a
// resumed run that has no step left reports.
func openMetrics(path string, step int) (*os.File, train.StepInfo, error) {
	var last train.StepInfo
	if step == 0 {
		f, err := os.Create(path)
		return f, last, err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, last, err
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var v struct {
			train.StepInfo
			Step *int            `json:"step"`
			Eval json.RawMessage `json:"eval"` // evaluation lines carry a step too
		}
		if json.Unmarshal(sc.Bytes(), &v) != nil || v.Step == nil || *v.Step > step {
			continue
		}
		if *v.Step == step && v.Eval == nil {
			last = v.StepInfo
			last.Step = step
		}
		kept.Write(sc.Bytes())
		kept.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, last, fmt.Errorf("%s: %w", path, err)
	}
	if err := atomicfile.WriteBytes(path, kept.Bytes()); err != nil {
		return nil, last, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	return f, last, err
}

// closeMetrics flushes the metrics file to disk and closes it, so that
// what a finished or interrupted run reports is on disk with its
// checkpoint.
func closeMetrics(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return f.Close()
}

func writeMetric(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
