package experiments

import (
	"context"
	"errors"
	"fmt"

	"github.com/capsel/capsel/train"
)

// Setup fixes every experiment's task, models and budgets.
type Setup struct {
	TaskSeed    uint64    `json:"task_seed"`
	Targets     int       `json:"targets"`     // target facts (fine-tuned and evaluated)
	Distractors int       `json:"distractors"` // facts every base model pretrains on
	Coverages   []float64 `json:"coverages"`   // the capability dial: share of target facts in pretraining
	Noises      []float64 `json:"noises"`      // label-noise rates of the fine-tuning data
	Objectives  []string  `json:"objectives"`  // fine-tuning objectives compared
	Seeds       int       `json:"seeds"`       // fine-tuning seeds per cell
	// Base is the pretraining run (its Objective is nll); SFT the
	// fine-tuning run, whose Objective each experiment sets.
	Base train.Config `json:"base"`
	SFT  train.Config `json:"sft"`
	// Eta is the step length of the measured one-step change (theory).
	Eta float64 `json:"eta"`
}

// DefaultSetup is the full experiment. The budgets were chosen once, before
// the results below were produced, so that both ends of the dial are
// meaningful: pretraining memorises the covered facts (mean p ≈ 0.83 at full
// coverage, ≈ 0.06 at none); fine-tuning at lr 5e-4 for 120 steps of 16
// (16 epochs of the 120 facts) is enough for NLL to learn facts the base
// model lacks and small enough not to wipe out what it knows.
func DefaultSetup() Setup {
	base := train.DefaultConfig()
	base.Model = train.ModelConfig{D: 64, Layers: 2, Heads: 4, Context: Context}
	base.Steps, base.Batch, base.LR = 600, 32, 3e-3
	sft := train.DefaultConfig()
	sft.Steps, sft.Batch, sft.LR = 120, 16, 5e-4
	return Setup{
		TaskSeed: 1, Targets: 120, Distractors: 240,
		Coverages:  []float64{0, 0.2, 0.4, 0.6, 0.8, 1},
		Noises:     []float64{0, 0.5},
		Objectives: []string{"nll", "p", "GeneralFamily-10", "OnlyTopLogP-0.2", "auto"},
		Seeds:      5,
		Base:       base, SFT: sft, Eta: 1e-2,
	}
}

// QuickSetup checks the pipeline in about a minute: a smaller model, two
// coverages, one noise rate, two objectives, two seeds and short budgets.
// Its numbers say nothing about the science.
func QuickSetup() Setup {
	s := DefaultSetup()
	s.Targets, s.Distractors = 40, 40
	s.Coverages = []float64{0, 1}
	s.Noises = []float64{0.5}
	s.Objectives = []string{"nll", "p", "auto"}
	s.Seeds = 2
	s.Base.Model = train.ModelConfig{D: 32, Layers: 1, Heads: 2, Context: Context}
	s.Base.Steps = 150
	s.SFT.Steps = 20
	return s
}

// Validate checks the setup.
func (s Setup) Validate() error {
	var errs []error
	if s.Targets < 2 || s.Distractors < 0 {
		errs = append(errs, fmt.Errorf("targets %d, distractors %d", s.Targets, s.Distractors))
	}
	for _, c := range s.Coverages {
		if c < 0 || c > 1 {
			errs = append(errs, fmt.Errorf("coverage %v outside [0, 1]", c))
		}
	}
	for _, e := range s.Noises {
		if e < 0 || e >= 1 {
			errs = append(errs, fmt.Errorf("noise %v outside [0, 1)", e))
		}
	}
	if len(s.Coverages) == 0 || len(s.Noises) == 0 || len(s.Objectives) == 0 || s.Seeds < 1 {
		errs = append(errs, errors.New("need at least one coverage, noise rate, objective and seed"))
	}
	if err := s.Base.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("base: %w", err))
	}
	if err := s.SFT.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("sft: %w", err))
	}
	return errors.Join(errs...)
}

// Task returns the setup's fact task.
func (s Setup) Task() FactTask { return NewFactTask(s.TaskSeed, s.Targets, s.Distractors) }

// alphabetDoc makes every letter part of every base model's alphabet, so
// that noisy labels never hold a character a model cannot encode.
var alphabetDoc = train.Example{Response: letters + "=", Source: "alphabet", Line: 1}

// Pretrain trains the base model at one coverage and returns its final
// checkpoint, weights only. progress, when set, is called after each step.
func (s Setup) Pretrain(ctx context.Context, coverage float64, progress func(train.StepInfo)) (*train.Checkpoint, error) {
	data := append(s.Task().Pretraining(coverage), alphabetDoc)
	cfg := s.Base
	cfg.Objective = "nll"
	tr, err := train.New(cfg, nil, data)
	if err != nil {
		return nil, err
	}
	for !tr.Done() {
		info, err := tr.Step(ctx)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(info)
		}
	}
	ck := tr.Checkpoint()
	ck.Run = nil
	for i := range ck.Tensors {
		ck.Tensors[i].M, ck.Tensors[i].V = nil, nil
	}
	return ck, nil
}
