package experiments

import (
	"context"
	"fmt"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
	"github.com/capsel/capsel/train"
)

// Predictor names, in report order.
const (
	PredPaper      = "paper_rate"      // (a) the paper's Ṙ on the probe sample, noise model at the cell's E
	PredNormalised = "normalised_rate" // (b) Ṙ/‖∇L‖ on the same sample
	PredExact      = "exact_rate"      // (c) ⟨∇_θ R, ∇_θ L_f⟩ by autograd on the model
	PredOneStep    = "one_step"        // (d) measured change in held-out risk after one small step
	PredFinalToken = "final_token_accuracy"
	PredFinalExact = "final_exact_match"
)

// Prediction is one objective's scores by every predictor in a cell.
type Prediction struct {
	Objective  string   `json:"objective"`
	PaperRate  float64  `json:"paper_rate"`
	Normalised float64  `json:"normalised_rate"`
	Exact      float64  `json:"exact_rate"`
	OneStep    float64  `json:"one_step"`
	FinalToken Interval `json:"final_token_accuracy"`
	FinalExact Interval `json:"final_exact_match"`
}

// TheoryCell is one (base model, noise rate) cell of the theory experiment.
type TheoryCell struct {
	Coverage    float64           `json:"coverage"`
	Noise       float64           `json:"noise"`
	MeanP       float64           `json:"mean_p"`
	Contexts    int               `json:"contexts"`
	Predictions []Prediction      `json:"predictions"`
	Winners     map[string]string `json:"winners"`
}

// TheoryResult is the theory experiment's outcome.
type TheoryResult struct {
	Setup Setup        `json:"setup"`
	Cells []TheoryCell `json:"cells"`
	// Agreement[p][t] is the share of cells where predictor p names the same
	// winner as target t (one_step, final_token_accuracy, final_exact_match).
	Agreement map[string]map[string]float64 `json:"agreement"`
}

// Theory computes, in every cell of a continuum result, the winner each
// predictor names among the fixed objectives, and how often the predictors
// agree with the measured one-step change and with the final accuracy.
func (r *Runner) Theory(ctx context.Context, cont *ContinuumResult) (*TheoryResult, error) {
	s := r.Setup
	task := s.Task()
	var fixed []objectives.Objective
	for _, spec := range s.Objectives {
		if o := objectives.MustParse(spec); !o.Adaptive() {
			fixed = append(fixed, o)
		}
	}
	if len(fixed) < 2 {
		return nil, fmt.Errorf("the theory experiment needs at least two fixed objectives, the setup has %d", len(fixed))
	}
	res := &TheoryResult{Setup: s}
	evalData := task.Eval()
	for ci, cell := range cont.Cells {
		r.emit(Event{Stage: "theory", Cell: fmt.Sprintf("coverage %.2f, noise %.2f", cell.Coverage, cell.Noise), Done: ci, Total: len(cont.Cells)})
		ck, err := r.Base(ctx, cell.Coverage)
		if err != nil {
			return nil, err
		}
		sft := task.SFT(cell.Noise, 1)
		rep, err := Probe(ctx, ck, sft)
		if err != nil {
			return nil, err
		}
		ctxs := rep.Contexts()
		m, err := ck.NewModel()
		if err != nil {
			return nil, err
		}
		gR, err := train.Gradient(ctx, m, ck.Tokenizer, evalData, objectives.P()) // R = 1 − mean p, up to a constant
		if err != nil {
			return nil, err
		}
		r0, err := heldOutRisk(ctx, m, ck.Tokenizer, evalData)
		if err != nil {
			return nil, err
		}
		tc := TheoryCell{Coverage: cell.Coverage, Noise: cell.Noise, MeanP: rep.MeanP, Contexts: len(ctxs), Winners: map[string]string{}}
		for _, o := range fixed {
			est, err := theory.EstimateRate(o, ctxs, theory.NoiseModel{E: cell.Noise})
			if err != nil {
				return nil, err
			}
			gL, err := train.Gradient(ctx, m, ck.Tokenizer, sft, o)
			if err != nil {
				return nil, err
			}
			stepped, err := ck.NewModel()
			if err != nil {
				return nil, err
			}
			if err := train.Step(stepped, gL, s.Eta); err != nil {
				return nil, err
			}
			r1, err := heldOutRisk(ctx, stepped, ck.Tokenizer, evalData)
			if err != nil {
				return nil, err
			}
			p := Prediction{Objective: o.String(), PaperRate: est.Rate, Normalised: est.Normalised,
				Exact: train.Dot(gR, gL), OneStep: (r0 - r1) / s.Eta}
			for _, mt := range cell.Results {
				if mt.Objective == o.String() {
					p.FinalToken, p.FinalExact = mt.TokenAccuracy, mt.ExactMatch
				}
			}
			tc.Predictions = append(tc.Predictions, p)
		}
		for name, score := range map[string]func(Prediction) float64{
			PredPaper:      func(p Prediction) float64 { return p.PaperRate },
			PredNormalised: func(p Prediction) float64 { return p.Normalised },
			PredExact:      func(p Prediction) float64 { return p.Exact },
			PredOneStep:    func(p Prediction) float64 { return p.OneStep },
			PredFinalToken: func(p Prediction) float64 { return p.FinalToken.Mean },
			PredFinalExact: func(p Prediction) float64 { return p.FinalExact.Mean },
		} {
			best := 0
			for i, p := range tc.Predictions {
				if score(p) > score(tc.Predictions[best]) {
					best = i
				}
			}
			tc.Winners[name] = tc.Predictions[best].Objective
		}
		res.Cells = append(res.Cells, tc)
	}
	res.Agreement = map[string]map[string]float64{}
	for _, p := range []string{PredPaper, PredNormalised, PredExact, PredOneStep} {
		res.Agreement[p] = map[string]float64{}
		for _, t := range []string{PredOneStep, PredFinalToken, PredFinalExact} {
			n := 0
			for _, c := range res.Cells {
				if c.Winners[p] == c.Winners[t] {
					n++
				}
			}
			res.Agreement[p][t] = float64(n) / float64(len(res.Cells))
		}
	}
	return res, nil
}

// heldOutRisk is R = 1 − mean p of the clean targets (the paper's risk, the
// negative expected accuracy, shifted by 1).
func heldOutRisk(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example) (float64, error) {
	ev, err := train.Evaluate(ctx, m, tok, data, train.EvalOptions{NoGenerate: true})
	return 1 - ev.MeanP, err
}

// AutoCell compares the adaptive objectives with the best fixed one.
type AutoCell struct {
	Coverage  float64       `json:"coverage"`
	Noise     float64       `json:"noise"`
	MeanP     float64       `json:"mean_p"`
	BestFixed string        `json:"best_fixed"` // by mean token accuracy over seeds
	BestToken Interval      `json:"best_fixed_token_accuracy"`
	Adaptive  []AutoOutcome `json:"adaptive"`
}

// AutoOutcome is one adaptive objective in a cell.
type AutoOutcome struct {
	Objective     string   `json:"objective"`
	TokenAccuracy Interval `json:"token_accuracy"`
	ExactMatch    Interval `json:"exact_match"`
	DiffToken     Interval `json:"diff_token_accuracy_vs_best"` // paired over seeds
	DiffExact     Interval `json:"diff_exact_match_vs_best"`
	// Usage is the share of steps spent under each concrete objective.
	Usage map[string]float64 `json:"usage"`
}

// AutoblendResult is the autoblend experiment's outcome.
type AutoblendResult struct {
	Setup Setup      `json:"setup"`
	Cells []AutoCell `json:"cells"`
}

// Autoblend runs auto-theory in every cell (auto comes from the continuum
// runs) and compares both with the best fixed objective of the cell, chosen
// after the fact by mean token accuracy — a comparison that favours the
// fixed objectives.
func (r *Runner) Autoblend(ctx context.Context, cont *ContinuumResult) (*AutoblendResult, error) {
	s := r.Setup
	var jobs []job
	for _, c := range s.Coverages {
		for _, e := range s.Noises {
			for _, o := range []string{"auto", "auto-theory"} {
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
	res := &AutoblendResult{Setup: s}
	all := append(append([]RunResult(nil), cont.Runs...), runs...)
	for _, cell := range cont.Cells {
		ac := AutoCell{Coverage: cell.Coverage, Noise: cell.Noise, MeanP: cell.Base.MeanP}
		best := -1.0
		for _, m := range cell.Results {
			if !objectives.MustParse(m.Objective).Adaptive() && m.TokenAccuracy.Mean > best {
				best, ac.BestFixed, ac.BestToken = m.TokenAccuracy.Mean, m.Objective, m.TokenAccuracy
			}
		}
		pick := func(obj string, f func(train.EvalResult) float64) []float64 {
			out := make([]float64, s.Seeds)
			for _, r := range all {
				if r.Coverage == cell.Coverage && r.Noise == cell.Noise && r.Objective == obj && r.Seed >= 1 && r.Seed <= s.Seeds {
					out[r.Seed-1] = f(r.Eval)
				}
			}
			return out
		}
		tok := func(e train.EvalResult) float64 { return e.TokenAccuracy }
		ex := func(e train.EvalResult) float64 { return e.ExactMatch }
		for _, a := range []string{"auto", "auto-theory"} {
			o := AutoOutcome{Objective: a, TokenAccuracy: MeanCI(pick(a, tok)), ExactMatch: MeanCI(pick(a, ex)),
				DiffToken: Paired(pick(a, tok), pick(ac.BestFixed, tok)), DiffExact: Paired(pick(a, ex), pick(ac.BestFixed, ex)),
				Usage: map[string]float64{}}
			total := 0
			for _, r := range all {
				if r.Coverage == cell.Coverage && r.Noise == cell.Noise && r.Objective == a {
					for k, v := range r.Objectives {
						o.Usage[k] += float64(v)
						total += v
					}
				}
			}
			for k := range o.Usage {
				o.Usage[k] /= float64(total)
			}
			ac.Adaptive = append(ac.Adaptive, o)
		}
		res.Cells = append(res.Cells, ac)
	}
	return res, nil
}
