package experiments

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/train"
)

// Metric is a figure of a fine-tuned model compared across objectives.
type Metric struct {
	Key  string // key in the results JSON
	Name string
	Of   func(RunResult) float64
}

// Metrics are the compared figures: the held-out test first, then the fit
// to the training set, named so.
var Metrics = []Metric{
	{"held_out_exact_match", "held-out exact match", func(r RunResult) float64 { return r.HeldOut.ExactMatch }},
	{"held_out_token_accuracy", "held-out token accuracy", func(r RunResult) float64 { return r.HeldOut.TokenAccuracy }},
	{"held_out_mean_p", "held-out mean p of the true targets", func(r RunResult) float64 { return r.HeldOut.MeanP }},
	{"train_fit_exact_match", "training-set fit: exact match", func(r RunResult) float64 { return r.TrainFit.ExactMatch }},
	{"train_fit_token_accuracy", "training-set fit: token accuracy", func(r RunResult) float64 { return r.TrainFit.TokenAccuracy }},
}

// ProbeFigures are the probe's capability figures, over replicates.
type ProbeFigures struct {
	MeanP      Interval `json:"mean_p"`         // paper Eq. 5
	ShareGT055 Interval `json:"share_p_gt_055"` // the paper's Table 6 proxy
	Region     string   `json:"region"`         // of the mean p under the probe's default cuts
}

// EvalSummary is a model's evaluation over replicates.
type EvalSummary struct {
	ExactMatch    Interval `json:"exact_match"`
	TokenAccuracy Interval `json:"token_accuracy"`
	MeanP         Interval `json:"mean_p"`
}

// BaseInfo describes one base model (over its replicates) before
// fine-tuning.
type BaseInfo struct {
	Task string `json:"task"`
	Base Base   `json:"base"`
	// Probe is the probe on the clean fine-tuning data.
	Probe ProbeFigures `json:"probe"`
	// MedianP, Entropy (nats) and Top1P are teacher-forced on the clean
	// fine-tuning targets: they tell a diffuse weak model (entropy near
	// log V, top-1 near 1/V) from a confidently wrong one. LogV is the
	// reference.
	MedianP Interval `json:"median_p"`
	Entropy Interval `json:"entropy"`
	Top1P   Interval `json:"top1_p"`
	LogV    float64  `json:"log_vocab"`
	// HeldOut and TrainFit evaluate the base model itself.
	HeldOut  EvalSummary `json:"held_out"`
	TrainFit EvalSummary `json:"train_fit"`
}

// Outcome is one objective's results in a cell.
type Outcome struct {
	Objective string `json:"objective"`
	// Scores, VsNLL and VsP (paired differences against NLL and against
	// −p over replicates; VsP when the setup has p) are keyed by
	// Metric.Key.
	Scores map[string]Interval `json:"scores"`
	VsNLL  map[string]Interval `json:"vs_nll,omitempty"`
	VsP    map[string]Interval `json:"vs_p,omitempty"`
}

// Cell is one condition of the grid with its outcomes.
type Cell struct {
	Condition
	// Key names the cell stably (Condition.Key), for citing it.
	Key string `json:"key"`
	// ProbeClean is the probe of the cell's base models on the clean
	// fine-tuning data, ProbeGiven on the data as given: what a user with
	// this data measures.
	ProbeClean ProbeFigures `json:"probe_clean"`
	ProbeGiven ProbeFigures `json:"probe_as_given"`
	// NoiseAware is the noise-aware probe of the cell's base models on the
	// data as given, beside the truth.
	NoiseAware *NoiseAwareFigures `json:"noise_aware_probe"`
	// Corrupted is the number of corrupted fine-tuning examples (the same
	// in every replicate) and TokenNoise the share of wrong target tokens.
	Corrupted  int       `json:"corrupted_examples"`
	TokenNoise Interval  `json:"token_noise"`
	Results    []Outcome `json:"results"`
	// Decisions are the verdicts among the fixed objectives, per metric.
	Decisions map[string]Decision `json:"decisions"`
}

// Outcome returns the outcome of an objective, or nil.
func (c *Cell) Outcome(obj string) *Outcome {
	for i := range c.Results {
		if c.Results[i].Objective == obj {
			return &c.Results[i]
		}
	}
	return nil
}

// ContinuumResult is the continuum experiment's outcome.
type ContinuumResult struct {
	Setup      Setup       `json:"setup"`
	Bases      []BaseInfo  `json:"bases"`
	Cells      []Cell      `json:"cells"`
	Crossovers []Crossover `json:"crossovers"`
	NoiseFlips []NoiseFlip `json:"noise_flips"`
	Standings  []Standing  `json:"standings"`
	// NoiseProbes are the probe-only conditions (Setup.ProbeSchemes),
	// NoiseAccuracy scores the noise-aware probe against the truth, and
	// Selector scores the class-level calls against the measured winners.
	NoiseProbes   []NoiseProbeCell     `json:"noise_probes"`
	NoiseAccuracy []NoiseAwareAccuracy `json:"noise_accuracy"`
	Selector      []SelectorScore      `json:"selector"`
	Runs          []RunResult          `json:"runs"`
}

// probeRun is one probe of one replicate.
type probeRun struct {
	meanP, share float64
}

// Continuum pretrains every base model, probes it on the clean data and on
// every condition's data as given, fine-tunes it with every objective, and
// summarises the outcomes with 95 % CIs over replicates.
func (r *Runner) Continuum(ctx context.Context) (*ContinuumResult, error) {
	s := r.Setup
	if err := s.Validate(); err != nil {
		return nil, err
	}
	conds, err := s.Conditions()
	if err != nil {
		return nil, err
	}
	res := &ContinuumResult{Setup: s}
	// Base models, two at a time (each parallelises inside too).
	var keys []baseKey
	for _, name := range s.Tasks {
		t, err := r.Task(name)
		if err != nil {
			return nil, err
		}
		for _, b := range s.Bases(t) {
			for rep := 1; rep <= s.Replicates; rep++ {
				keys = append(keys, baseKey{name, b, rep})
			}
		}
	}
	label := func(k baseKey) string { return fmt.Sprintf("%s, %s, replicate %d", k.task, k.base, k.rep) }
	if err := r.forEach(ctx, "pretrain", len(keys), func(i int) string { return label(keys[i]) }, func(ctx context.Context, i int) error {
		_, err := r.Base(ctx, keys[i].task, keys[i].base, keys[i].rep)
		return err
	}); err != nil {
		return nil, err
	}
	// The base models before fine-tuning, and the probe on every data set.
	baseEval := make([][2]train.EvalResult, len(keys)) // train fit (the clean fine-tuning data), held-out
	baseProbe := make([]probeRun, len(keys))
	if err := r.forEach(ctx, "probe", len(keys), func(i int) string { return label(keys[i]) }, func(ctx context.Context, i int) error {
		k := keys[i]
		ck, err := r.Base(ctx, k.task, k.base, k.rep)
		if err != nil {
			return err
		}
		t, err := r.Task(k.task)
		if err != nil {
			return err
		}
		m, err := ck.NewModel()
		if err != nil {
			return err
		}
		for j, data := range [][]train.Example{t.TrainFit(), t.HeldOut()} {
			if baseEval[i][j], err = train.Evaluate(ctx, m, ck.Tokenizer, data, train.EvalOptions{}); err != nil {
				return err
			}
		}
		rep, err := Probe(ctx, ck, t.TrainFit(), 1)
		if err != nil {
			return err
		}
		baseProbe[i] = probeRun{rep.MeanP, rep.ShareGT055}
		return nil
	}); err != nil {
		return nil, err
	}
	for i := 0; i < len(keys); i += s.Replicates {
		b := summariseBase(keys[i], baseEval[i:i+s.Replicates], baseProbe[i:i+s.Replicates])
		ck, err := r.Base(ctx, keys[i].task, keys[i].base, keys[i].rep)
		if err != nil {
			return nil, err
		}
		b.LogV = math.Log(float64(ck.Model.Vocab))
		res.Bases = append(res.Bases, b)
	}
	given := make([]probeRun, len(conds)*s.Replicates)
	noise := make([]float64, len(conds)*s.Replicates)
	if err := r.forEach(ctx, "probe", len(given), func(i int) string {
		return fmt.Sprintf("%s, replicate %d", conds[i/s.Replicates], i%s.Replicates+1)
	}, func(ctx context.Context, i int) error {
		c, rep := conds[i/s.Replicates], i%s.Replicates+1
		ck, err := r.Base(ctx, c.Task, c.Base, rep)
		if err != nil {
			return err
		}
		d, err := r.SFTData(c, rep)
		if err != nil {
			return err
		}
		pr, err := Probe(ctx, ck, d.Examples, 1)
		if err != nil {
			return err
		}
		given[i], noise[i] = probeRun{pr.MeanP, pr.ShareGT055}, d.TokenNoise()
		return nil
	}); err != nil {
		return nil, err
	}
	// The noise-aware probe on every condition's data as given, and on the
	// probe-only conditions.
	probeConds, err := s.ProbeConditions()
	if err != nil {
		return nil, err
	}
	allConds := append(slices.Clone(conds), probeConds...)
	noiseRuns := make([]*NoiseAwareRun, len(allConds)*s.Replicates)
	if err := r.forEach(ctx, "noise-aware probe", len(noiseRuns), func(i int) string {
		return fmt.Sprintf("%s, replicate %d", allConds[i/s.Replicates], i%s.Replicates+1)
	}, func(ctx context.Context, i int) error {
		var err error
		noiseRuns[i], err = r.NoiseAware(ctx, allConds[i/s.Replicates], i%s.Replicates+1)
		return err
	}); err != nil {
		return nil, err
	}
	for i, c := range probeConds {
		j := (len(conds) + i) * s.Replicates
		res.NoiseProbes = append(res.NoiseProbes, NoiseProbeCell{Condition: c, Key: c.Key(), NoiseAware: noiseAwareFigures(noiseRuns[j : j+s.Replicates])})
	}
	res.NoiseAccuracy = noiseAccuracy(noiseRuns, s.Tasks, s.ProbeSchemes)
	type job struct {
		c   Condition
		obj string
		rep int
	}
	var jobs []job
	for _, c := range conds {
		for _, o := range append(slices.Clone(s.Objectives), s.Baselines...) {
			for rep := 1; rep <= s.Replicates; rep++ {
				jobs = append(jobs, job{c, o, rep})
			}
		}
	}
	res.Runs = make([]RunResult, len(jobs))
	if err := r.forEach(ctx, "fine-tune", len(jobs), func(i int) string {
		return fmt.Sprintf("%s, %s, replicate %d", jobs[i].c, jobs[i].obj, jobs[i].rep)
	}, func(ctx context.Context, i int) error {
		var err error
		res.Runs[i], err = r.FineTune(ctx, jobs[i].c, jobs[i].obj, jobs[i].rep)
		return err
	}); err != nil {
		return nil, err
	}
	for i, c := range conds {
		cell := Cell{Condition: c, Key: c.Key(), ProbeGiven: probeFigures(given[i*s.Replicates : (i+1)*s.Replicates]), TokenNoise: MeanCI(noise[i*s.Replicates : (i+1)*s.Replicates]),
			NoiseAware: noiseAwareFigures(noiseRuns[i*s.Replicates : (i+1)*s.Replicates])}
		if b := res.base(c.Task, c.Base); b != nil {
			cell.ProbeClean = b.Probe
		}
		d, err := r.SFTData(c, 1)
		if err != nil {
			return nil, err
		}
		cell.Corrupted = d.Corrupted()
		if err := cell.summarise(s, res.Runs); err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		res.Cells = append(res.Cells, cell)
	}
	if res.Crossovers, err = crossovers(res); err != nil {
		return nil, err
	}
	if res.NoiseFlips, err = noiseFlips(res); err != nil {
		return nil, err
	}
	res.Standings = standings(res)
	res.Selector = selectorScores(res)
	return res, nil
}

func probeFigures(runs []probeRun) ProbeFigures {
	var mp, sh []float64
	for _, p := range runs {
		mp = append(mp, p.meanP)
		sh = append(sh, p.share)
	}
	f := ProbeFigures{MeanP: MeanCI(mp), ShareGT055: MeanCI(sh)}
	f.Region = string(probe.DefaultCuts.Region(f.MeanP.Mean))
	return f
}

func summariseBase(k baseKey, evals [][2]train.EvalResult, probes []probeRun) BaseInfo {
	col := func(f func(e [2]train.EvalResult) float64) Interval {
		var xs []float64
		for _, e := range evals {
			xs = append(xs, f(e))
		}
		return MeanCI(xs)
	}
	sum := func(j int) EvalSummary {
		return EvalSummary{
			ExactMatch:    col(func(e [2]train.EvalResult) float64 { return e[j].ExactMatch }),
			TokenAccuracy: col(func(e [2]train.EvalResult) float64 { return e[j].TokenAccuracy }),
			MeanP:         col(func(e [2]train.EvalResult) float64 { return e[j].MeanP }),
		}
	}
	return BaseInfo{Task: k.task, Base: k.base, Probe: probeFigures(probes),
		MedianP:  col(func(e [2]train.EvalResult) float64 { return e[0].MedianP }),
		Entropy:  col(func(e [2]train.EvalResult) float64 { return e[0].Entropy }),
		Top1P:    col(func(e [2]train.EvalResult) float64 { return e[0].Top1P }),
		TrainFit: sum(0),
		HeldOut:  sum(1),
	}
}

// base returns the info of a base model, or nil.
func (res *ContinuumResult) base(task string, b Base) *BaseInfo {
	for i := range res.Bases {
		if res.Bases[i].Task == task && res.Bases[i].Base == b {
			return &res.Bases[i]
		}
	}
	return nil
}

// pick returns a metric of a condition and objective, one value per
// replicate in replicate order. A missing or repeated replicate is an
// error, never a filled-in value.
func pick(runs []RunResult, c Condition, obj string, replicates int, m func(RunResult) float64) ([]float64, error) {
	out := make([]float64, replicates)
	seen := make([]bool, replicates)
	for _, r := range runs {
		if r.Condition != c || r.Objective != obj {
			continue
		}
		if r.Replicate < 1 || r.Replicate > replicates {
			return nil, fmt.Errorf("%s, %s: replicate %d outside 1–%d", c, obj, r.Replicate, replicates)
		}
		if seen[r.Replicate-1] {
			return nil, fmt.Errorf("%s, %s: replicate %d appears twice", c, obj, r.Replicate)
		}
		seen[r.Replicate-1] = true
		out[r.Replicate-1] = m(r)
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("%s, %s: replicate %d is missing", c, obj, i+1)
		}
	}
	return out, nil
}

// fixedObjectives returns the setup's non-adaptive objectives.
func fixedObjectives(s Setup) []string {
	var out []string
	for _, o := range s.Objectives {
		if !objectives.MustParse(o).Adaptive() {
			out = append(out, o)
		}
	}
	return out
}

// priorLeaning reports whether an objective is prior-leaning (paper Def. 3.3).
func priorLeaning(o string) bool {
	obj, err := objectives.Parse(o)
	return err == nil && !obj.Adaptive() && obj.Class() == objectives.PriorLeaning
}

// summarise fills a cell's outcomes and decisions from the runs.
func (c *Cell) summarise(s Setup, runs []RunResult) error {
	c.Decisions = map[string]Decision{}
	// The references every objective is paired against: NLL, and −p when
	// the setup has it.
	refs := map[string]map[string][]float64{}
	for _, ref := range []string{"nll", "p"} {
		if !slices.Contains(s.Objectives, ref) {
			continue
		}
		refs[ref] = map[string][]float64{}
		for _, m := range Metrics {
			v, err := pick(runs, c.Condition, ref, s.Replicates, m.Of)
			if err != nil {
				return err
			}
			refs[ref][m.Key] = v
		}
	}
	for _, o := range append(slices.Clone(s.Objectives), s.Baselines...) {
		out := Outcome{Objective: o, Scores: map[string]Interval{}}
		vs := map[string]*map[string]Interval{"nll": &out.VsNLL, "p": &out.VsP}
		for ref := range refs {
			if o != ref {
				*vs[ref] = map[string]Interval{}
			}
		}
		for _, m := range Metrics {
			v, err := pick(runs, c.Condition, o, s.Replicates, m.Of)
			if err != nil {
				return err
			}
			out.Scores[m.Key] = MeanCI(v)
			for ref, sc := range refs {
				if o == ref {
					continue
				}
				if (*vs[ref])[m.Key], err = Paired(v, sc[m.Key]); err != nil {
					return err
				}
			}
		}
		c.Results = append(c.Results, out)
	}
	fixed := fixedObjectives(s)
	for _, m := range Metrics {
		scores := map[string][]float64{}
		for _, o := range fixed {
			v, err := pick(runs, c.Condition, o, s.Replicates, m.Of)
			if err != nil {
				return err
			}
			scores[o] = v
		}
		d, err := Decide(fixed, scores)
		if err != nil {
			return err
		}
		c.Decisions[m.Key] = d
	}
	return nil
}

// Crossover is the paper's crossover along the capability dial, for one
// task, noise setting and metric: NLL ahead of every prior-leaning
// objective at the weak end, a prior-leaning objective ahead of NLL at the
// strong end, each with a paired CI that excludes 0.
type Crossover struct {
	Task   string  `json:"task"`
	Scheme Scheme  `json:"scheme,omitempty"` // "" for clean labels
	Noise  float64 `json:"noise"`
	Metric string  `json:"metric"`
	// Points are the base models in order of the probe's mean p on the
	// data as given.
	Points []CrossPoint `json:"points"`
	// Seen is true when a point where NLL is ahead is followed, further up,
	// by a point where a prior-leaning objective is ahead; Below and Above
	// index those two points (the last NLL point before the first
	// prior-leaning one).
	Seen  bool `json:"seen"`
	Below int  `json:"below"`
	Above int  `json:"above"`
}

// CrossPoint is one base model's standing in a crossover.
type CrossPoint struct {
	Base       Base    `json:"base"`
	MeanPGiven float64 `json:"mean_p_as_given"`
	MeanPClean float64 `json:"mean_p_clean"`
	// Best is the prior-leaning objective with the largest mean difference
	// to NLL, and Diff that difference (best − NLL).
	Best string   `json:"best_prior_leaning"`
	Diff Interval `json:"diff_vs_nll"`
	// NLLAhead: every prior-leaning objective's CI against NLL lies below
	// 0. LeaningAhead: some prior-leaning objective's CI lies above 0 (then
	// Best is one of them).
	NLLAhead     bool `json:"nll_ahead"`
	LeaningAhead bool `json:"prior_leaning_ahead"`
}

// standing returns a cell's crossover point for a metric.
func standing(c *Cell, metric string, leaning []string) CrossPoint {
	p := CrossPoint{Base: c.Base, MeanPGiven: c.ProbeGiven.MeanP.Mean, MeanPClean: c.ProbeClean.MeanP.Mean, NLLAhead: true}
	for _, o := range leaning {
		d := c.Outcome(o).VsNLL[metric]
		if !(d.Hi < 0) {
			p.NLLAhead = false
		}
		ahead := d.Lo > 0
		if p.Best == "" || (ahead && !p.LeaningAhead) || (ahead == p.LeaningAhead && d.Mean > p.Diff.Mean) {
			p.Best, p.Diff = o, d
		}
		p.LeaningAhead = p.LeaningAhead || ahead
	}
	return p
}

func leaningObjectives(s Setup) []string {
	var out []string
	for _, o := range s.Objectives {
		if priorLeaning(o) {
			out = append(out, o)
		}
	}
	return out
}

// crossovers finds the crossover of every task, noise setting with the
// whole dial, and metric.
func crossovers(res *ContinuumResult) ([]Crossover, error) {
	leaning := leaningObjectives(res.Setup)
	if len(leaning) == 0 {
		return nil, nil
	}
	type setting struct {
		task   string
		scheme Scheme
		noise  float64
	}
	var order []setting
	groups := map[setting][]*Cell{}
	for i := range res.Cells {
		c := &res.Cells[i]
		k := setting{c.Task, c.Scheme, c.Noise}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], c)
	}
	var out []Crossover
	for _, k := range order {
		cells := groups[k]
		dial := 0
		for _, c := range cells {
			if c.Base.Variant == "" {
				dial++
			}
		}
		if dial < len(res.Setup.Coverages) {
			continue // a noise rate run on part of the dial only: see NoiseFlips
		}
		sort.SliceStable(cells, func(i, j int) bool { return cells[i].ProbeGiven.MeanP.Mean < cells[j].ProbeGiven.MeanP.Mean })
		for _, m := range Metrics {
			x := Crossover{Task: k.task, Scheme: k.scheme, Noise: k.noise, Metric: m.Key, Below: -1, Above: -1}
			for _, c := range cells {
				x.Points = append(x.Points, standing(c, m.Key, leaning))
			}
			for i, p := range x.Points {
				if p.NLLAhead {
					x.Below = i
				}
				if p.LeaningAhead && x.Below >= 0 {
					x.Seen, x.Above = true, i
					break
				}
			}
			if !x.Seen {
				x.Below = -1
			}
			out = append(out, x)
		}
	}
	return out, nil
}

// NoiseFlip follows one dial base model along the noise rates of a scheme:
// the best prior-leaning objective's difference to NLL at each rate, and
// the lowest rate at which a prior-leaning objective is ahead with a CI that
// excludes 0.
type NoiseFlip struct {
	Task   string       `json:"task"`
	Base   Base         `json:"base"`
	Scheme Scheme       `json:"scheme"`
	Metric string       `json:"metric"`
	Noises []float64    `json:"noises"`
	Points []CrossPoint `json:"points"`
	// TokenNoise is the share of wrong target tokens at each rate.
	TokenNoise []float64 `json:"token_noise"`
	// Flip is the lowest noise rate with a prior-leaning objective ahead, -1
	// when there is none.
	Flip float64 `json:"flip"`
}

// noiseFlips follows every swept base model along the noise rates.
func noiseFlips(res *ContinuumResult) ([]NoiseFlip, error) {
	s := res.Setup
	leaning := leaningObjectives(s)
	if len(leaning) == 0 {
		return nil, nil
	}
	find := func(task string, b Base, sc Scheme, e float64) *Cell {
		for i := range res.Cells {
			c := &res.Cells[i]
			if c.Task == task && c.Base == b && c.Noise == e && (e == 0 || c.Scheme == sc) {
				return c
			}
		}
		return nil
	}
	noises := slices.Sorted(slices.Values(s.Noises))
	var out []NoiseFlip
	for _, task := range s.Tasks {
		for _, cov := range s.Coverages {
			if cov < s.SweepFrom {
				continue
			}
			b := Base{Coverage: cov}
			for _, sc := range s.Schemes {
				for _, m := range Metrics {
					f := NoiseFlip{Task: task, Base: b, Scheme: sc, Metric: m.Key, Flip: -1}
					for _, e := range noises {
						c := find(task, b, sc, e)
						if c == nil {
							continue
						}
						p := standing(c, m.Key, leaning)
						f.Noises = append(f.Noises, e)
						f.Points = append(f.Points, p)
						f.TokenNoise = append(f.TokenNoise, c.TokenNoise.Mean)
						if p.LeaningAhead && f.Flip < 0 {
							f.Flip = e
						}
					}
					if len(f.Noises) > 1 {
						out = append(out, f)
					}
				}
			}
		}
	}
	return out, nil
}

// Standing is where one objective stands against a reference objective
// (NLL or −p) over a group of cells, on one metric: the cells where the
// paired CI of the difference lies above 0 (ahead), below 0 (behind), or
// around it (tied).
type Standing struct {
	Task      string `json:"task"`
	Group     string `json:"group"` // "clean", a scheme at every noise rate, or "all"
	Metric    string `json:"metric"`
	Objective string `json:"objective"`
	Vs        string `json:"vs"`
	Cells     int    `json:"cells"`
	// Ahead and Behind are the keys of the cells (Cell.Key), in grid order.
	Ahead  []string `json:"ahead"`
	Behind []string `json:"behind"`
	Tied   int      `json:"tied"`
	// MeanDiff is the mean over the cells of the mean paired difference
	// (objective − reference).
	MeanDiff float64 `json:"mean_diff"`
	// Best and Worst are the cells with the largest and the smallest mean
	// difference.
	Best  CellDiff `json:"best"`
	Worst CellDiff `json:"worst"`
}

// CellDiff is a paired difference in one cell.
type CellDiff struct {
	Cell string   `json:"cell"`
	Diff Interval `json:"diff"`
}

// vs returns the paired differences of an outcome against a reference.
func (o *Outcome) vs(ref string) map[string]Interval {
	switch ref {
	case "nll":
		return o.VsNLL
	case "p":
		return o.VsP
	}
	return nil
}

// standings counts, per task, noise group (and all cells), metric and
// objective, where each objective stands against NLL and against −p.
func standings(res *ContinuumResult) []Standing {
	s := res.Setup
	var out []Standing
	for _, task := range s.Tasks {
		for _, g := range append(groupsOf(res.Cells), "all") {
			for _, m := range Metrics {
				for _, o := range s.Objectives {
					for _, ref := range []string{"nll", "p"} {
						if o == ref || !slices.Contains(s.Objectives, ref) {
							continue
						}
						st := Standing{Task: task, Group: g, Metric: m.Key, Objective: o, Vs: ref, Ahead: []string{}, Behind: []string{}}
						for i := range res.Cells {
							c := &res.Cells[i]
							if c.Task != task || (g != "all" && group(c.Condition) != g) {
								continue
							}
							d := c.Outcome(o).vs(ref)[m.Key]
							st.Cells++
							st.MeanDiff += d.Mean
							switch {
							case d.Lo > 0:
								st.Ahead = append(st.Ahead, c.Key)
							case d.Hi < 0:
								st.Behind = append(st.Behind, c.Key)
							default:
								st.Tied++
							}
							if st.Cells == 1 || d.Mean > st.Best.Diff.Mean {
								st.Best = CellDiff{c.Key, d}
							}
							if st.Cells == 1 || d.Mean < st.Worst.Diff.Mean {
								st.Worst = CellDiff{c.Key, d}
							}
						}
						if st.Cells > 0 {
							st.MeanDiff /= float64(st.Cells)
							out = append(out, st)
						}
					}
				}
			}
		}
	}
	return out
}
