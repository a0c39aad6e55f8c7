package train

import (
	"context"
	"errors"
	"fmt"

	"github.com/capsel/capsel/objectives"
)

// PilotConfig is a pilot sweep: short fine-tunes of one base model, one per
// objective and seed, each evaluated on the same held-out examples.
type PilotConfig struct {
	Objectives []string // specs to compare; auto and auto-theory are allowed
	Steps      int      // fine-tuning steps of each run
	Batch      int      // sequences per step
	LR         float64  // peak learning rate (AdamW with the paper's other defaults)
	// HoldEvery holds out every HoldEvery-th example (the 10th, 20th, … for
	// 10): a fixed, spread-out tenth that no run trains on.
	HoldEvery int
	// Seeds is the number of data orders (seeds 1 … Seeds) each objective is
	// fine-tuned with; per-example scores are averaged over them.
	Seeds int
}

// DefaultPilotConfig returns the pilot of 'selector recommend --pilot': 100
// steps of 16 sequences at learning rate 5·10⁻⁴ (half the trainer's default:
// the runs fine-tune a trained model), a tenth of the data held out, one
// seed.
func DefaultPilotConfig() PilotConfig {
	return PilotConfig{Steps: 100, Batch: 16, LR: 5e-4, HoldEvery: 10, Seeds: 1}
}

// Validate checks the settings that do not depend on the data.
func (c PilotConfig) Validate() error {
	var errs []error
	if len(c.Objectives) < 2 {
		errs = append(errs, fmt.Errorf("pilot: %d objectives; a pilot compares at least two", len(c.Objectives)))
	}
	for _, s := range c.Objectives {
		if _, err := objectives.Parse(s); err != nil {
			errs = append(errs, fmt.Errorf("pilot: %w", err))
		}
	}
	if c.Steps < 1 || c.Batch < 1 || c.Seeds < 1 {
		errs = append(errs, fmt.Errorf("pilot: steps %d, batch %d, seeds %d: each must be ≥ 1", c.Steps, c.Batch, c.Seeds))
	}
	if !(c.LR > 0) {
		errs = append(errs, fmt.Errorf("pilot: lr %v: need > 0", c.LR))
	}
	if c.HoldEvery < 2 {
		errs = append(errs, fmt.Errorf("pilot: hold_every %d: need ≥ 2", c.HoldEvery))
	}
	return errors.Join(errs...)
}

// PilotArm is one objective's runs, scored on the held-out examples.
type PilotArm struct {
	Objective string `json:"objective"`
	// The held-out totals, averaged over the seeds, as Evaluate reports
	// them (token accuracy and mean p over all tokens).
	EvalResult
	PerExample PilotScores `json:"per_example"`
}

// PilotScores are per held-out example, in order, averaged over the seeds:
// the share of runs whose greedy generation equals the response, and the
// share of the response's targets (and EOS) that are the model's argmax
// under teacher forcing.
type PilotScores struct {
	ExactMatch    []float64 `json:"exact_match"`
	TokenAccuracy []float64 `json:"token_accuracy"`
}

// PilotRun is what a pilot sweep measured.
type PilotRun struct {
	Fit   int        `json:"fit_examples"`      // examples the runs trained on
	Held  int        `json:"held_out_examples"` // examples they were scored on
	Seeds int        `json:"seeds"`
	Steps int        `json:"steps"`
	Arms  []PilotArm `json:"arms"` // in the order of PilotConfig.Objectives
}

// Pilot fine-tunes the checkpoint's model with each objective on the
// examples that are not held out (one run per seed) and scores every run
// on each held-out example separately, so that objectives can be compared
// example by example. progress, when not nil, is called after every step
// with the steps done and the total. It returns an error when there are
// too few examples to hold any out.
func Pilot(ctx context.Context, ck *Checkpoint, data []Example, cfg PilotConfig, progress func(done, total int, objective string)) (PilotRun, error) {
	if err := cfg.Validate(); err != nil {
		return PilotRun{}, err
	}
	var fit, held []Example
	for i, ex := range data {
		if i%cfg.HoldEvery == cfg.HoldEvery-1 {
			held = append(held, ex)
		} else {
			fit = append(fit, ex)
		}
	}
	if len(held) == 0 {
		return PilotRun{}, fmt.Errorf("pilot: %d examples: it holds out every %dth, so it needs at least %d", len(data), cfg.HoldEvery, cfg.HoldEvery)
	}
	run := PilotRun{Fit: len(fit), Held: len(held), Seeds: cfg.Seeds, Steps: cfg.Steps}
	tc := DefaultConfig()
	tc.Steps, tc.Batch, tc.LR = cfg.Steps, cfg.Batch, cfg.LR
	total := len(cfg.Objectives) * cfg.Seeds * cfg.Steps
	done := 0
	for _, spec := range cfg.Objectives {
		arm := PilotArm{Objective: spec, PerExample: PilotScores{ExactMatch: make([]float64, len(held)), TokenAccuracy: make([]float64, len(held))}}
		var sum EvalResult
		for seed := 1; seed <= cfg.Seeds; seed++ {
			tc.Objective, tc.Seed = spec, uint64(seed)
			tr, err := New(tc, ck, fit)
			if err != nil {
				return run, fmt.Errorf("pilot %s: %w", spec, err)
			}
			for !tr.Done() {
				if _, err := tr.Step(ctx); err != nil {
					return run, fmt.Errorf("pilot %s, seed %d: %w", spec, seed, err)
				}
				done++
				if progress != nil {
					progress(done, total, spec)
				}
			}
			var tokens, correct int
			var sumP, sumNLL float64
			for i, ex := range held {
				ev, err := Evaluate(ctx, tr.Model(), tr.Tokenizer(), []Example{ex}, EvalOptions{Batch: 1})
				if err != nil {
					return run, fmt.Errorf("pilot %s: held-out example %d: %w", spec, i+1, err)
				}
				arm.PerExample.ExactMatch[i] += ev.ExactMatch / float64(cfg.Seeds)
				arm.PerExample.TokenAccuracy[i] += ev.TokenAccuracy / float64(cfg.Seeds)
				n := float64(ev.Tokens)
				tokens += ev.Tokens
				correct += int(ev.TokenAccuracy*n + 0.5)
				sumP += ev.MeanP * n
				sumNLL += ev.NLL * n
				sum.ExactMatch += ev.ExactMatch
				sum.Truncated += ev.Truncated
			}
			if tokens > 0 {
				sum.TokenAccuracy += float64(correct) / float64(tokens)
				sum.MeanP += sumP / float64(tokens)
				sum.NLL += sumNLL / float64(tokens)
			}
			sum.Tokens = tokens
		}
		s := float64(cfg.Seeds)
		arm.EvalResult = EvalResult{Examples: len(held), Tokens: sum.Tokens, ExactMatch: sum.ExactMatch / s / float64(len(held)),
			TokenAccuracy: sum.TokenAccuracy / s, MeanP: sum.MeanP / s, NLL: sum.NLL / s, Truncated: sum.Truncated / cfg.Seeds}
		run.Arms = append(run.Arms, arm)
	}
	return run, nil
}
