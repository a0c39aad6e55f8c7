package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/capsel/capsel/selector"
	"github.com/capsel/capsel/train"
)

// runConfig is a training run as written in a RUN.toml file. Every key has a
// flag of the same name (underscores become dashes, the [auto] table's keys
// take an "auto-" prefix); flags override the file. The toml tags must be
// the keys of runSettings (TestRunSettingsKeysAreTheTOMLTags).
type runConfig struct {
	Data            string     `toml:"data"`
	Init            string     `toml:"init"`
	Out             string     `toml:"out"`
	Objective       string     `toml:"objective"`
	Steps           int        `toml:"steps"`
	Batch           int        `toml:"batch"`
	LR              float64    `toml:"lr"`
	Seed            uint64     `toml:"seed"`
	CheckpointEvery int        `toml:"checkpoint_every"`
	EvalData        string     `toml:"eval_data"`
	EvalEvery       int        `toml:"eval_every"`
	Model           modelTable `toml:"model"`
	Optim           optimTable `toml:"optim"`
	Auto            autoTable  `toml:"auto"`
}

type modelTable struct {
	D       int `toml:"d"`
	Layers  int `toml:"layers"`
	Heads   int `toml:"heads"`
	Context int `toml:"context"`
}

type optimTable struct {
	WarmupRatio float64 `toml:"warmup_ratio"`
	WeightDecay float64 `toml:"weight_decay"`
	Beta1       float64 `toml:"beta1"`
	Beta2       float64 `toml:"beta2"`
	Eps         float64 `toml:"eps"`
	Clip        float64 `toml:"clip"`
}

type autoTable struct {
	Null       int      `toml:"null"`
	Every      int      `toml:"every"`
	Noise      float64  `toml:"noise"`
	Rate       string   `toml:"rate"`
	Candidates []string `toml:"candidates"`
	Contexts   int      `toml:"contexts"`
}

func defaultRunConfig() runConfig {
	d := train.DefaultConfig()
	return runConfig{
		Objective: d.Objective, Steps: d.Steps, Batch: d.Batch, LR: d.LR, Seed: d.Seed, CheckpointEvery: 100,
		Model: modelTable{D: d.Model.D, Layers: d.Model.Layers, Heads: d.Model.Heads, Context: d.Model.Context},
		Optim: optimTable{WarmupRatio: d.WarmupRatio, WeightDecay: d.WeightDecay, Beta1: d.Beta1, Beta2: d.Beta2, Eps: d.Eps, Clip: d.Clip},
		Auto: autoTable{Null: d.Auto.Null, Every: d.Auto.Every,
			Noise: d.Auto.Noise, Rate: d.Auto.Rate, Candidates: d.Auto.Candidates, Contexts: d.Auto.Contexts},
	}
}

// trainConfig converts the file's settings into the library's.
func (r runConfig) trainConfig() train.Config {
	return train.Config{
		Model:     train.ModelConfig{D: r.Model.D, Layers: r.Model.Layers, Heads: r.Model.Heads, Context: r.Model.Context},
		Objective: r.Objective, Steps: r.Steps, Batch: r.Batch, LR: r.LR, Seed: r.Seed,
		WarmupRatio: r.Optim.WarmupRatio, WeightDecay: r.Optim.WeightDecay, Beta1: r.Optim.Beta1, Beta2: r.Optim.Beta2,
		Eps: r.Optim.Eps, Clip: r.Optim.Clip,
		Auto: train.AutoConfig{Null: r.Auto.Null, Every: r.Auto.Every,
			Noise: r.Auto.Noise, Rate: r.Auto.Rate, Candidates: r.Auto.Candidates, Contexts: r.Auto.Contexts},
	}
}

// setting is one row of the table that drives both the flags and the TOML
// documentation.
type setting struct {
	flag, key string
	field     func(*runConfig) any // pointer to the field
	help      string
	arch      bool // part of the architecture: fixed by --init
}

var runSettings = []setting{
	{"data", "data", func(c *runConfig) any { return &c.Data }, "training data `file`: JSONL with prompt/response (SFT) or text, or plain text lines (pretraining)", false},
	{"init", "init", func(c *runConfig) any { return &c.Init }, "start from this `checkpoint` (fine-tuning); without it the model is trained from scratch", false},
	{"out", "out", func(c *runConfig) any { return &c.Out }, "run `directory`: checkpoint, final, metrics.jsonl, run.json", false},
	{"objective", selector.TOMLObjectiveKey, func(c *runConfig) any { return &c.Objective }, "objective `spec` (see 'selector objectives list'), auto or auto-theory", false},
	{"steps", "steps", func(c *runConfig) any { return &c.Steps }, "optimisation steps", false},
	{"batch", "batch", func(c *runConfig) any { return &c.Batch }, "sequences per step", false},
	{"lr", "lr", func(c *runConfig) any { return &c.LR }, "peak learning rate", false},
	{"seed", "seed", func(c *runConfig) any { return &c.Seed }, "seed of the initialisation and the data order", false},
	{"checkpoint-every", "checkpoint_every", func(c *runConfig) any { return &c.CheckpointEvery }, "write DIR/checkpoint every N steps (0: only at the end)", false},
	{"eval-data", "eval_data", func(c *runConfig) any { return &c.EvalData }, "held-out `file` to evaluate on (exact match, token accuracy, mean p, NLL)", false},
	{"eval-every", "eval_every", func(c *runConfig) any { return &c.EvalEvery }, "evaluate every N steps (0: only at the end, when --eval-data is set)", false},
	{"d", "model.d", func(c *runConfig) any { return &c.Model.D }, "model width", true},
	{"layers", "model.layers", func(c *runConfig) any { return &c.Model.Layers }, "transformer blocks", true},
	{"heads", "model.heads", func(c *runConfig) any { return &c.Model.Heads }, "attention heads (must divide d)", true},
	{"context", "model.context", func(c *runConfig) any { return &c.Model.Context }, "context length in characters; longer examples are cut on the right", true},
	{"warmup-ratio", "optim.warmup_ratio", func(c *runConfig) any { return &c.Optim.WarmupRatio }, "share of steps with linear warm-up before the cosine decay", false},
	{"weight-decay", "optim.weight_decay", func(c *runConfig) any { return &c.Optim.WeightDecay }, "AdamW weight decay", false},
	{"beta1", "optim.beta1", func(c *runConfig) any { return &c.Optim.Beta1 }, "AdamW β₁", false},
	{"beta2", "optim.beta2", func(c *runConfig) any { return &c.Optim.Beta2 }, "AdamW β₂", false},
	{"eps", "optim.eps", func(c *runConfig) any { return &c.Optim.Eps }, "AdamW ε", false},
	{"clip", "optim.clip", func(c *runConfig) any { return &c.Optim.Clip }, "clip the global gradient norm at this value (0: off)", false},
	{"auto-null", "auto.null", func(c *runConfig) any { return &c.Auto.Null }, "auto, auto-theory: null prompts (shuffled) of the measurement before the first step (negative: none)", false},
	{"auto-every", "auto.every", func(c *runConfig) any { return &c.Auto.Every }, "auto-theory: re-rank the candidates every N steps", false},
	{"auto-noise", "auto.noise", func(c *runConfig) any { return &c.Auto.Noise }, "auto-theory: label-noise rate of its noise model where the measurement gives none", false},
	{"auto-rate", "auto.rate", func(c *runConfig) any { return &c.Auto.Rate }, "auto-theory: maximise the paper's \"raw\" rate Ṙ or the \"normalised\" rate Ṙ/‖∇L‖", false},
	{"auto-candidates", "auto.candidates", func(c *runConfig) any { return &c.Auto.Candidates }, "auto-theory: comma-separated candidate `specs`", false},
	{"auto-contexts", "auto.contexts", func(c *runConfig) any { return &c.Auto.Contexts }, "auto-theory: contexts per ranking", false},
}

// listValue is a comma-separated list flag.
type listValue struct{ p *[]string }

func (l listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listValue) Set(s string) error {
	*l.p = splitList(s)
	return nil
}

// bindRunFlags registers every setting as a flag writing into c.
func bindRunFlags(fs *flag.FlagSet, c *runConfig) {
	for _, s := range runSettings {
		help := s.help + " [toml: " + s.key + "]"
		switch p := s.field(c).(type) {
		case *string:
			fs.StringVar(p, s.flag, *p, help)
		case *int:
			fs.IntVar(p, s.flag, *p, help)
		case *uint64:
			fs.Uint64Var(p, s.flag, *p, help)
		case *float64:
			fs.Float64Var(p, s.flag, *p, help)
		case *[]string:
			fs.Var(listValue{p}, s.flag, help)
		default:
			panic(fmt.Sprintf("runSettings: %s has an unsupported type %T", s.flag, p))
		}
	}
}

// resolveRun builds the run's settings: defaults, then the TOML file (unknown
// keys are errors), then the flags the user set. It returns the names of the
// flags that were set, for checks that depend on them.
func resolveRun(f *flags, fromFlags *runConfig, configPath string) (runConfig, map[string]bool, error) {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if configPath == "" {
		return *fromFlags, set, nil
	}
	rc := defaultRunConfig()
	md, err := toml.DecodeFile(configPath, &rc)
	if err != nil {
		if _, statErr := os.Stat(configPath); statErr != nil {
			return rc, set, statErr
		}
		return rc, set, f.usagef("--config %s: %v", configPath, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var known []string
		for _, s := range runSettings {
			known = append(known, s.key)
		}
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
			if s := closest(keys[i], known); s != "" {
				keys[i] += " (did you mean " + s + "?)"
			}
		}
		return rc, set, f.usagef("--config %s: unknown keys: %s", configPath, strings.Join(keys, ", "))
	}
	// Re-apply the flags that were given, so that they win over the file.
	fs2 := flag.NewFlagSet("", flag.ContinueOnError)
	bindRunFlags(fs2, &rc)
	for name := range set {
		if fl := f.Lookup(name); fl != nil && fs2.Lookup(name) != nil {
			if err := fs2.Set(name, fl.Value.String()); err != nil {
				return rc, set, f.usagef("--%s: %v", name, err)
			}
		}
	}
	return rc, set, nil
}

// configKeysHelp documents the TOML keys, generated from runSettings.
func configKeysHelp() string {
	var b strings.Builder
	b.WriteString("RUN.toml keys (each is also a flag; flags win):\n")
	for _, s := range runSettings {
		fmt.Fprintf(&b, "  %-20s --%s\n", s.key, s.flag)
	}
	return b.String()
}
