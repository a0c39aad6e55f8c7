package experiments

import (
	"context"
	"fmt"
	"sort"

	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/train"
)

// BaseInfo is the probe's view of one base model.
type BaseInfo struct {
	Coverage   float64    `json:"coverage"`
	MeanP      float64    `json:"mean_p"` // on the clean fine-tuning targets
	MeanPCI    [2]float64 `json:"mean_p_ci"`
	ShareGT055 float64    `json:"share_p_gt_055"`
	Region     string     `json:"region"`
	// NoisyMeanP is the probe's mean p on each noise rate's fine-tuning
	// data (seed 1): what a user would measure before training.
	NoisyMeanP map[string]float64 `json:"noisy_mean_p"`
	// Before fine-tuning, on the clean target facts.
	Eval train.EvalResult `json:"eval"`
}

// Metrics are the per-objective summaries of one cell.
type Metrics struct {
	Objective     string   `json:"objective"`
	ExactMatch    Interval `json:"exact_match"`
	TokenAccuracy Interval `json:"token_accuracy"`
	MeanP         Interval `json:"mean_p"`
	// Paired differences against NLL (same seeds), per metric.
	DiffExact Interval `json:"diff_exact_match_vs_nll"`
	DiffToken Interval `json:"diff_token_accuracy_vs_nll"`
	DiffMeanP Interval `json:"diff_mean_p_vs_nll"`
}

// Cell is one (base model, noise rate) pair.
type Cell struct {
	Coverage float64   `json:"coverage"`
	Noise    float64   `json:"noise"`
	Base     BaseInfo  `json:"base"`
	Results  []Metrics `json:"results"`
}

// ContinuumResult is the continuum experiment's outcome.
type ContinuumResult struct {
	Setup Setup       `json:"setup"`
	Bases []BaseInfo  `json:"bases"`
	Cells []Cell      `json:"cells"`
	Runs  []RunResult `json:"runs"`
}

// Continuum pretrains a base model per coverage, probes it, fine-tunes it
// with every objective at every noise rate and seed, and summarises the
// held-out outcomes with 95 % CIs over seeds.
func (r *Runner) Continuum(ctx context.Context) (*ContinuumResult, error) {
	s := r.Setup
	if err := s.Validate(); err != nil {
		return nil, err
	}
	res := &ContinuumResult{Setup: s}
	task := s.Task()
	for i, c := range s.Coverages {
		ck, err := r.Base(ctx, c)
		if err != nil {
			return nil, err
		}
		r.emit(Event{Stage: "probe", Cell: fmt.Sprintf("coverage %.2f", c), Done: i + 1, Total: len(s.Coverages)})
		rep, err := Probe(ctx, ck, task.SFT(0, 1))
		if err != nil {
			return nil, err
		}
		b := BaseInfo{Coverage: c, MeanP: rep.MeanP, MeanPCI: rep.MeanPCI, ShareGT055: rep.ShareGT055, Region: string(rep.Region), NoisyMeanP: map[string]float64{}}
		for _, e := range s.Noises {
			nrep, err := Probe(ctx, ck, task.SFT(e, 1))
			if err != nil {
				return nil, err
			}
			b.NoisyMeanP[fmt.Sprint(e)] = nrep.MeanP
		}
		m, err := ck.NewModel()
		if err != nil {
			return nil, err
		}
		if b.Eval, err = train.Evaluate(ctx, m, ck.Tokenizer, task.Eval(), train.EvalOptions{}); err != nil {
			return nil, err
		}
		res.Bases = append(res.Bases, b)
	}
	var jobs []job
	for _, c := range s.Coverages {
		for _, e := range s.Noises {
			for _, o := range s.Objectives {
				for seed := 1; seed <= s.Seeds; seed++ {
					jobs = append(jobs, job{c, e, o, seed})
				}
			}
		}
	}
	runs, err := r.runAll(ctx, jobs)
	if err != nil {
		return nil, err
	}
	res.Runs = runs
	res.Cells = summarise(res.Bases, runs, s)
	return res, nil
}

// summarise groups runs into cells and computes the intervals.
func summarise(bases []BaseInfo, runs []RunResult, s Setup) []Cell {
	type key struct {
		c, e float64
		o    string
	}
	by := map[key][]RunResult{}
	for _, r := range runs {
		k := key{r.Coverage, r.Noise, r.Objective}
		by[k] = append(by[k], r)
	}
	metric := func(rs []RunResult, f func(train.EvalResult) float64) []float64 {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Seed < rs[j].Seed })
		out := make([]float64, len(rs))
		for i, r := range rs {
			out[i] = f(r.Eval)
		}
		return out
	}
	exact := func(e train.EvalResult) float64 { return e.ExactMatch }
	token := func(e train.EvalResult) float64 { return e.TokenAccuracy }
	meanp := func(e train.EvalResult) float64 { return e.MeanP }
	var cells []Cell
	for i, c := range s.Coverages {
		for _, e := range s.Noises {
			cell := Cell{Coverage: c, Noise: e, Base: bases[i]}
			nll := by[key{c, e, "nll"}]
			for _, o := range s.Objectives {
				rs := by[key{c, e, o}]
				m := Metrics{Objective: o,
					ExactMatch: MeanCI(metric(rs, exact)), TokenAccuracy: MeanCI(metric(rs, token)), MeanP: MeanCI(metric(rs, meanp))}
				if nll != nil {
					m.DiffExact = Paired(metric(rs, exact), metric(nll, exact))
					m.DiffToken = Paired(metric(rs, token), metric(nll, token))
					m.DiffMeanP = Paired(metric(rs, meanp), metric(nll, meanp))
				}
				cell.Results = append(cell.Results, m)
			}
			cells = append(cells, cell)
		}
	}
	return cells
}

// ProbeRegion maps a base model to the probe's region under its default cuts.
func ProbeRegion(meanP float64) string { return string(probe.DefaultCuts.Region(meanP)) }
