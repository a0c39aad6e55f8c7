package train

import (
	"errors"
	"fmt"

	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/objectives"
)

// Config is a training run: the architecture (used when training from
// scratch), the objective and the optimisation settings. The defaults are the
// paper's (AdamW with betas 0.9/0.95 and weight decay 0.01, cosine schedule
// with warm-up ratio 0.1, gradient clipping at 1.0; paper-notes §7.2).
type Config struct {
	Model       ModelConfig `json:"model"`
	Objective   string      `json:"objective"`
	Steps       int         `json:"steps"`
	Batch       int         `json:"batch"`
	LR          float64     `json:"lr"`
	WarmupRatio float64     `json:"warmup_ratio"`
	WeightDecay float64     `json:"weight_decay"`
	Beta1       float64     `json:"beta1"`
	Beta2       float64     `json:"beta2"`
	Eps         float64     `json:"eps"`
	Clip        float64     `json:"clip"`
	Seed        uint64      `json:"seed"`
	Auto        AutoConfig  `json:"auto"`
}

// AutoConfig tunes the adaptive objectives. Both measure the base model on
// the training data once, before the first step (Trainer.Measurement).
type AutoConfig struct {
	// Null caps the null prompts of that measurement (0 means
	// labelnoise.DefaultNullPrompts, negative none; see labelnoise.NullRecipe).
	Null int `json:"null"`
	// Every is how often, in steps, auto-theory re-ranks its candidates.
	Every int `json:"every"`
	// Noise is the label-noise rate auto-theory's noise model assumes
	// where the measurement cannot give one.
	Noise float64 `json:"noise"`
	// Rate is the criterion auto-theory maximises: "raw", the paper's Ṙ
	// (the default), or "normalised", Ṙ/‖∇L‖ per unit step length
	// (experiments/results/theory.md compares how often each names the
	// measured winner).
	Rate string `json:"rate"`
	// Candidates are the objectives auto-theory chooses among.
	Candidates []string `json:"candidates"`
	// Contexts caps the contexts of a batch that auto-theory ranks on.
	Contexts int `json:"contexts"`
}

// DefaultConfig returns the paper's optimisation defaults with a small model.
func DefaultConfig() Config {
	return Config{
		Model:       ModelConfig{D: 64, Layers: 2, Heads: 4, Context: 64},
		Objective:   "nll",
		Steps:       1000,
		Batch:       16,
		LR:          1e-3,
		WarmupRatio: 0.1,
		WeightDecay: 0.01,
		Beta1:       0.9,
		Beta2:       0.95,
		Eps:         1e-8,
		Clip:        1.0,
		Seed:        1,
		Auto: AutoConfig{
			Null: labelnoise.DefaultNullPrompts, Every: 10, Noise: 0.1, Rate: "raw", Contexts: 256,
			Candidates: []string{"nll", "p", "GeneralFamily-10", "OnlyTopLogP-0.2", "blend-0.5"},
		},
	}
}

// Validate checks the settings that do not depend on the data.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, err := objectives.Parse(c.Objective); err != nil {
		errs = append(errs, fmt.Errorf("objective: %w", err))
	}
	if c.Steps < 1 {
		bad("steps %d: need at least 1", c.Steps)
	}
	if c.Batch < 1 {
		bad("batch %d: need at least 1", c.Batch)
	}
	if !(c.LR > 0) {
		bad("lr %v: need > 0", c.LR)
	}
	if !(c.WarmupRatio >= 0 && c.WarmupRatio < 1) {
		bad("warmup_ratio %v: need [0, 1)", c.WarmupRatio)
	}
	if !(c.WeightDecay >= 0) {
		bad("weight_decay %v: need ≥ 0", c.WeightDecay)
	}
	if !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1) {
		bad("beta1 %v, beta2 %v: need [0, 1)", c.Beta1, c.Beta2)
	}
	if !(c.Eps > 0) {
		bad("eps %v: need > 0", c.Eps)
	}
	if !(c.Clip >= 0) {
		bad("clip %v: need ≥ 0 (0 turns clipping off)", c.Clip)
	}
	a := c.Auto
	if a.Every < 1 {
		bad("auto every %d: need ≥ 1", a.Every)
	}
	if !(a.Noise >= 0 && a.Noise <= 1) {
		bad("auto noise %v: need [0, 1]", a.Noise)
	}
	if a.Rate != "normalised" && a.Rate != "raw" {
		bad(`auto rate %q: need "normalised" or "raw"`, a.Rate)
	}
	if a.Contexts < 1 {
		bad("auto contexts %d: need ≥ 1", a.Contexts)
	}
	if len(a.Candidates) == 0 {
		bad("auto candidates: need at least one")
	}
	for _, s := range a.Candidates {
		o, err := objectives.Parse(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("auto candidates: %w", err))
		} else if o.Adaptive() {
			bad("auto candidates: %s is itself adaptive", s)
		} else if !o.OfP() {
			bad("auto candidates: %s is %s: auto-theory ranks candidates by the paper's rate, which covers functions of p alone", s, objectives.ErrNotP)
		}
	}
	return errors.Join(errs...)
}
