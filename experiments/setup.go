package experiments

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/train"
)

// FactSizes sizes the fact task.
type FactSizes struct {
	Train       int `json:"train"`       // facts fine-tuned on
	HeldOut     int `json:"held_out"`    // facts tested, never fine-tuned on
	Distractors int `json:"distractors"` // facts every base model pretrains on
	Unfamiliar  int `json:"unfamiliar"`  // random facts of the uninformed base model
	Steps       int `json:"steps"`       // pretraining steps
}

// RuleSizes sizes the rule task.
type RuleSizes struct {
	Train    int `json:"train"`    // words fine-tuned on
	HeldOut  int `json:"held_out"` // words tested
	Pretrain int `json:"pretrain"` // pretraining documents
	Steps    int `json:"steps"`    // pretraining steps
}

// Setup fixes every experiment's tasks, models, grid and budgets.
type Setup struct {
	// Quick marks the pipeline check, whose numbers mean nothing.
	Quick    bool      `json:"quick,omitempty"`
	TaskSeed uint64    `json:"task_seed"`
	Tasks    []string  `json:"tasks"` // "fact", "rule"
	Fact     FactSizes `json:"fact"`
	Rule     RuleSizes `json:"rule"`
	// Coverages are the capability dial of every task; Variants adds each
	// task's other weak base model (Task.Variant).
	Coverages []float64 `json:"coverages"`
	Variants  bool      `json:"variants"`
	// Noises are the label-noise rates (shares of fine-tuning examples
	// corrupted) and Schemes how a label is corrupted. The grid is not full
	// factorial: every base model runs with clean labels and with each
	// scheme at the largest noise rate; the noise rates in between run on
	// the dial's base models from coverage SweepFrom up, where the paper
	// puts the crossover in E (see Conditions).
	Noises    []float64 `json:"noises"`
	Schemes   []Scheme  `json:"schemes"`
	SweepFrom float64   `json:"sweep_from"`
	// Objectives are the fine-tuning objectives compared: an objective joins
	// every experiment by being named here. It must include nll.
	Objectives []string `json:"objectives"`
	// Baselines are data interventions fine-tuned beside the objectives
	// and compared with the best fixed objective like auto: CleanNLL.
	Baselines []string `json:"baselines"`
	// ProbeSchemes are noise schemes the noise-aware probe is measured on
	// but nothing is fine-tuned on (Token), at every noise rate above 0,
	// on the dial's base models from coverage SweepFrom up.
	ProbeSchemes []Scheme `json:"probe_schemes"`
	// Replicates is the number of base models per point of the grid: base
	// model r is pretrained with seed r and fine-tuned with seed r on the
	// noise draw r, so that the intervals cover the base model, the noise
	// draw and the fine-tuning seed together.
	Replicates int `json:"replicates"`
	// Base is the pretraining run (its Objective is nll; the task sets the
	// context and steps); SFT the fine-tuning run, whose Objective each
	// run sets.
	Base train.Config `json:"base"`
	SFT  train.Config `json:"sft"`
	// Eta is the step length of the measured one-step change (theory).
	Eta float64 `json:"eta"`
}

// DefaultSetup is the full experiment. The budgets were chosen before the
// results were produced, so that both ends of each dial are meaningful:
// pretraining memorises the covered facts and learns the covered letters of
// the rule, and fine-tuning at lr 5e-4 for 120 steps of 16 (16 epochs of
// the 120 examples) is enough for NLL to learn what a weak base model lacks.
func DefaultSetup() Setup {
	base := train.DefaultConfig()
	base.Model = train.ModelConfig{D: 64, Layers: 2, Heads: 4}
	base.Batch, base.LR = 32, 3e-3
	sft := train.DefaultConfig()
	sft.Steps, sft.Batch, sft.LR = 120, 16, 5e-4
	return Setup{
		TaskSeed:     1,
		Tasks:        []string{"fact", "rule"},
		Fact:         FactSizes{Train: 120, HeldOut: 120, Distractors: 240, Unfamiliar: 1920, Steps: 1000},
		Rule:         RuleSizes{Train: 120, HeldOut: 120, Pretrain: 19200, Steps: 600},
		Coverages:    []float64{0, 0.25, 0.5, 0.75, 1},
		Variants:     true,
		Noises:       []float64{0, 0.1, 0.2, 0.3, 0.5},
		Schemes:      slices.Clone(Schemes),
		SweepFrom:    0.75,
		Objectives:   []string{"nll", "p", "GeneralFamily-10", "OnlyTopLogP-0.2", "eaft-1", "deft", "asft-0.1", "auto", "auto-theory"},
		Baselines:    []string{CleanNLL},
		ProbeSchemes: []Scheme{Token},
		Replicates:   4,
		Base:         base, SFT: sft, Eta: 1e-2,
	}
}

// QuickSetup checks the pipeline in seconds: small models and tasks, the
// ends of the dial, two noise rates and schemes, three objectives, two
// replicates. Its numbers say nothing about the science.
func QuickSetup() Setup {
	s := DefaultSetup()
	s.Quick = true
	s.Fact = FactSizes{Train: 30, HeldOut: 30, Distractors: 30, Unfamiliar: 120, Steps: 150}
	s.Rule = RuleSizes{Train: 30, HeldOut: 30, Pretrain: 1200, Steps: 150}
	s.Coverages = []float64{0, 1}
	s.Noises = []float64{0, 0.5}
	s.Schemes = []Scheme{Replace, Substitute}
	s.Objectives = []string{"nll", "p", "eaft-1", "asft-0.1", "auto"}
	s.Replicates = 2
	s.Base.Model = train.ModelConfig{D: 32, Layers: 1, Heads: 2}
	s.SFT.Steps = 20
	return s
}

// Validate checks the setup.
func (s Setup) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(s.Tasks) == 0 {
		bad("name at least one task (fact, rule)")
	}
	for _, t := range s.Tasks {
		if t != "fact" && t != "rule" {
			bad("unknown task %q (fact, rule)", t)
		}
	}
	if f := s.Fact; slices.Contains(s.Tasks, "fact") && (f.Train < 2 || f.HeldOut < 1 || f.Distractors < 0 || f.Unfamiliar < 0 || f.Steps < 1 || (s.Variants && f.Unfamiliar < 1)) {
		bad("fact task sizes %+v: need ≥ 2 train and ≥ 1 held-out facts, ≥ 1 step, and unfamiliar facts for the %s base model", f, FactVariant)
	}
	if r := s.Rule; slices.Contains(s.Tasks, "rule") && (r.Train < 2 || r.HeldOut < 1 || r.Pretrain < 2 || r.Steps < 1) {
		bad("rule task sizes %+v: need ≥ 2 train words, ≥ 1 held-out word, ≥ 2 pretraining documents, ≥ 1 step", r)
	}
	if len(s.Coverages) == 0 {
		bad("need at least one coverage")
	}
	for _, c := range s.Coverages {
		if !(c >= 0 && c <= 1) {
			bad("coverage %v outside [0, 1]", c)
		}
	}
	if len(s.Noises) == 0 {
		bad("need at least one noise rate")
	}
	for _, e := range s.Noises {
		if !(e >= 0 && e < 1) {
			bad("noise %v outside [0, 1)", e)
		}
	}
	if slices.ContainsFunc(s.Noises, func(e float64) bool { return e > 0 }) && len(s.Schemes) == 0 {
		bad("noise rates above 0 need at least one noise scheme")
	}
	for _, sc := range s.Schemes {
		if _, err := ParseScheme(string(sc)); err != nil {
			errs = append(errs, err)
		} else if sc == Token {
			bad("scheme %s is for the noise-aware probe only (probe_schemes): under it almost no label is the model's answer", sc)
		}
	}
	for _, sc := range s.ProbeSchemes {
		if _, err := ParseScheme(string(sc)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, b := range s.Baselines {
		if b != CleanNLL {
			bad("unknown baseline %q (%s)", b, CleanNLL)
		}
	}
	fixed := 0
	for _, o := range s.Objectives {
		obj, err := objectives.Parse(o)
		if err != nil {
			errs = append(errs, err)
		} else if !obj.Adaptive() {
			fixed++
		}
	}
	if !slices.Contains(s.Objectives, "nll") || fixed < 2 {
		bad("objectives %v: need nll and at least one other fixed objective", s.Objectives)
	}
	if s.Replicates < 2 {
		bad("replicates %d: need at least 2 for a confidence interval", s.Replicates)
	}
	if err := s.Base.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("base: %w", err))
	}
	if err := s.SFT.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("sft: %w", err))
	}
	if !(s.Eta > 0) {
		bad("eta %v: need > 0", s.Eta)
	}
	return errors.Join(errs...)
}

// Task returns a task of the setup by name.
func (s Setup) Task(name string) (Task, error) {
	switch name {
	case "fact":
		f := s.Fact
		return NewFactTask(s.TaskSeed, f.Train, f.HeldOut, f.Distractors, f.Unfamiliar), nil
	case "rule":
		r := s.Rule
		return NewRuleTask(s.TaskSeed, r.Train, r.HeldOut, r.Pretrain), nil
	}
	return nil, fmt.Errorf("unknown task %q (fact, rule)", name)
}

// Bases returns a task's base models: the dial, then the variant.
func (s Setup) Bases(t Task) []Base {
	var out []Base
	for _, c := range s.Coverages {
		out = append(out, Base{Coverage: c})
	}
	if s.Variants {
		out = append(out, Base{Variant: t.Variant()})
	}
	return out
}

// ProbeConditions lists the conditions the noise-aware probe is measured on
// without fine-tuning: every ProbeSchemes scheme at every noise rate above
// 0, for the dial's base models from coverage SweepFrom up.
func (s Setup) ProbeConditions() ([]Condition, error) {
	var out []Condition
	for _, name := range s.Tasks {
		t, err := s.Task(name)
		if err != nil {
			return nil, err
		}
		for _, b := range s.Bases(t) {
			if b.Variant != "" || b.Coverage < s.SweepFrom {
				continue
			}
			for _, sc := range s.ProbeSchemes {
				for _, e := range s.Noises {
					if e > 0 {
						out = append(out, Condition{Task: name, Base: b, Scheme: sc, Noise: e})
					}
				}
			}
		}
	}
	return out, nil
}

// Condition is one point of the grid: a base model of a task and the
// fine-tuning data's noise.
type Condition struct {
	Task   string  `json:"task"`
	Base   Base    `json:"base"`
	Scheme Scheme  `json:"scheme,omitempty"` // "" for clean labels
	Noise  float64 `json:"noise"`
}

func (c Condition) String() string {
	if c.Noise == 0 {
		return fmt.Sprintf("%s, %s, clean labels", c.Task, c.Base)
	}
	return fmt.Sprintf("%s, %s, %s noise %g", c.Task, c.Base, c.Scheme, c.Noise)
}

// Key names the condition stably, for citing it: task/base/noise, as in
// "fact/c1.000/clean", "fact/uninformed/replace0.5" or
// "rule/c0.750/substitute0.1".
func (c Condition) Key() string {
	noise := "clean"
	if c.Noise > 0 {
		noise = fmt.Sprintf("%s%g", c.Scheme, c.Noise)
	}
	return c.Task + "/" + c.Base.key() + "/" + noise
}

func (c Condition) key() string {
	return fmt.Sprintf("%s-%s-%s-n%.3f", c.Task, c.Base.key(), c.Scheme, c.Noise)
}

// Conditions lists the grid, task by task and base by base: clean labels
// for every base model; every scheme at the largest noise rate for every
// base model (the crossover along the dial); every scheme at the noise
// rates in between for the dial's base models from coverage SweepFrom up
// (the crossover in E, which the paper puts at the strong end; at the weak
// end NLL wins at any noise rate below (V − 1)/V, theory.WeakEnd).
func (s Setup) Conditions() ([]Condition, error) {
	top := slices.Max(s.Noises)
	var out []Condition
	for _, name := range s.Tasks {
		t, err := s.Task(name)
		if err != nil {
			return nil, err
		}
		for _, b := range s.Bases(t) {
			if slices.Contains(s.Noises, 0) {
				out = append(out, Condition{Task: name, Base: b})
			}
			for _, sc := range s.Schemes {
				for _, e := range s.Noises {
					if e > 0 && (e == top || (b.Variant == "" && b.Coverage >= s.SweepFrom)) {
						out = append(out, Condition{Task: name, Base: b, Scheme: sc, Noise: e})
					}
				}
			}
		}
	}
	return out, nil
}

// SFTData returns the fine-tuning set of a condition for replicate rep,
// with the truth about every label (which examples were corrupted, their
// true responses, the edits): the noise draw of the runs of that
// replicate.
func (s Setup) SFTData(c Condition, rep int) (SFTData, error) {
	t, err := s.Task(c.Task)
	if err != nil {
		return SFTData{}, err
	}
	return sftData(t, c, rep)
}

// sftData is the fine-tuning set of a condition's task for a replicate.
func sftData(t Task, c Condition, rep int) (SFTData, error) {
	if c.Noise > 0 {
		if _, err := ParseScheme(string(c.Scheme)); err != nil {
			return SFTData{}, err
		}
	}
	return t.SFT(c.Scheme, c.Noise, uint64(rep)), nil
}

// Pretrain trains base model b of a task for replicate rep (seed rep) and
// returns its final checkpoint, weights only. progress, when set, is called
// after each step.
func (s Setup) Pretrain(ctx context.Context, t Task, b Base, rep int, progress func(train.StepInfo)) (*train.Checkpoint, error) {
	data, err := t.Pretraining(b)
	if err != nil {
		return nil, err
	}
	cfg := s.Base
	cfg.Model.Context = t.Context()
	cfg.Steps = s.Fact.Steps
	if t.Name() == "rule" {
		cfg.Steps = s.Rule.Steps
	}
	cfg.Objective, cfg.Seed = "nll", uint64(rep)
	return Pretrain(ctx, cfg, data, progress)
}

// Pretrain trains a model from scratch on data with cfg and returns its
// final checkpoint, weights only.
func Pretrain(ctx context.Context, cfg train.Config, data []train.Example, progress func(train.StepInfo)) (*train.Checkpoint, error) {
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
