package experiments

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
	"github.com/capsel/capsel/train"
)

// Predictor names, in report order.
const (
	// PredPaper is the paper's Ṙ on the base model's contexts of the data
	// as given, split by the known truth of every label (App. E): the
	// theory exactly as defined, at the data's own token noise rate.
	PredPaper = "paper_rate"
	// PredPosterior is the same with the truths hidden, the sample split
	// by the Bayes posterior at the data's true token noise rate: what a
	// user who knew the noise rate, but not which labels are wrong, could
	// compute.
	PredPosterior = "posterior_rate"
	// PredFlat is the flat split with the truths hidden (the first
	// experiments' estimate), at the same noise rate.
	PredFlat       = "flat_rate"
	PredNormalised = "normalised_rate" // Ṙ/‖∇L‖, known truths
	PredExact      = "exact_rate"      // ⟨∇_θ R, ∇_θ L_f⟩ by autograd on the model, R the held-out risk
	PredOneStep    = "one_step"        // measured change in held-out risk after one small step
)

// Predictors lists the predictors in report order.
var Predictors = []string{PredPaper, PredPosterior, PredFlat, PredNormalised, PredExact, PredOneStep}

// Prediction is one objective's scores by every predictor in a cell, means
// over the replicates' base models.
type Prediction struct {
	Objective string             `json:"objective"`
	Scores    map[string]float64 `json:"scores"` // by predictor
}

// TheoryCrossover is the noise rate E* at which an objective and NLL trade
// places (theory.Compare), over the replicates where it is defined (N
// counts them), by each way of splitting the sample; for the prior-leaning
// objectives and those beyond the paper's f(p) (see hasCrossover).
type TheoryCrossover struct {
	Objective string   `json:"objective"`
	Known     Interval `json:"known_truth"` // defined only where the data has noisy labels
	Posterior Interval `json:"posterior"`
	Flat      Interval `json:"flat"`
}

// TheoryCell is one condition of the theory experiment.
type TheoryCell struct {
	Condition
	MeanPGiven float64 `json:"mean_p_as_given"`
	// TokenNoise is the share of the contexts whose label is wrong, the E
	// of the theory (mean over replicates).
	TokenNoise float64 `json:"token_noise"`
	// Contexts is the number of scored targets per replicate, NoTruth
	// those without a true next token (replaced responses longer than the
	// true one), left out of the known-truth split.
	Contexts    int               `json:"contexts"`
	NoTruth     int               `json:"contexts_without_truth"`
	Predictions []Prediction      `json:"predictions"`
	Crossovers  []TheoryCrossover `json:"crossovers"`
	// Predicted is each predictor's winner; Final the measured verdict
	// among the fixed objectives per metric (from the continuum).
	Predicted map[string]string   `json:"predicted"`
	Final     map[string]Decision `json:"final"`
	// PredictedTied lists, per predictor, the other objectives whose score
	// equals the predicted winner's exactly (asft-α and −p have the same
	// rate at the base model, theory.Scope): the predictor names them all,
	// and agrees with a measured winner among them.
	PredictedTied map[string][]string `json:"predicted_tied,omitempty"`
}

// predicts reports whether predictor pred names obj in the cell: as its
// winner or tied with it.
func (c TheoryCell) predicts(pred, obj string) bool {
	return c.Predicted[pred] == obj || slices.Contains(c.PredictedTied[pred], obj)
}

// Agreement counts how often a predictor names the measured winner, over
// the cells that have one.
type Agreement struct {
	Task      string `json:"task"`
	Group     string `json:"group"` // "clean", a scheme, or "all"
	Metric    string `json:"metric"`
	Predictor string `json:"predictor"`
	Cells     int    `json:"cells"`
	Decided   int    `json:"decided"`
	Agree     int    `json:"agree"`
	// ViaTie counts the agreeing cells where the predictor named the
	// winner only as one of several objectives with exactly its best score
	// (asft-α beside −p): a predictor that cannot tell them apart.
	ViaTie int `json:"agree_via_tie"`
	// Rate is Agree/Decided, null without decided cells.
	Rate *float64 `json:"rate"`
}

// TheoryResult is the theory experiment's outcome.
type TheoryResult struct {
	Setup      Setup        `json:"setup"`
	Cells      []TheoryCell `json:"cells"`
	Agreements []Agreement  `json:"agreements"`
}

// repTheory is one replicate's theory figures in a cell.
type repTheory struct {
	scores     map[string]map[string]float64 // objective → predictor → score
	estar      map[string][3]float64         // objective → E* known, posterior, flat (NaN: undefined)
	tokenNoise float64
	contexts   int
	noTruth    int
}

// Theory computes, in every cell of a continuum result, the winner each
// predictor names among the fixed objectives, and how often it names the
// measured winner.
func (r *Runner) Theory(ctx context.Context, cont *ContinuumResult) (*TheoryResult, error) {
	s := r.Setup
	var fixed []objectives.Objective
	for _, spec := range fixedObjectives(s) {
		fixed = append(fixed, objectives.MustParse(spec))
	}
	reps := make([]repTheory, len(cont.Cells)*s.Replicates)
	if err := r.forEach(ctx, "theory", len(reps), func(i int) string {
		return fmt.Sprintf("%s, replicate %d", cont.Cells[i/s.Replicates].Condition, i%s.Replicates+1)
	}, func(ctx context.Context, i int) error {
		var err error
		reps[i], err = r.theoryOf(ctx, cont.Cells[i/s.Replicates].Condition, i%s.Replicates+1, fixed)
		return err
	}); err != nil {
		return nil, err
	}
	res := &TheoryResult{Setup: s}
	for ci, cell := range cont.Cells {
		tc := summariseTheory(cell, reps[ci*s.Replicates:(ci+1)*s.Replicates], fixed)
		res.Cells = append(res.Cells, tc)
	}
	res.Agreements = agreements(res.Cells, s.Tasks)
	return res, nil
}

// theoryOf computes the predictors of one cell and replicate.
func (r *Runner) theoryOf(ctx context.Context, c Condition, rep int, fixed []objectives.Objective) (repTheory, error) {
	out := repTheory{scores: map[string]map[string]float64{}, estar: map[string][3]float64{}}
	ck, err := r.Base(ctx, c.Task, c.Base, rep)
	if err != nil {
		return out, err
	}
	t, err := r.Task(c.Task)
	if err != nil {
		return out, err
	}
	d, err := r.SFTData(c, rep)
	if err != nil {
		return out, err
	}
	m, err := ck.NewModel()
	if err != nil {
		return out, err
	}
	all, err := truthContexts(ctx, m, ck.Tokenizer, d)
	if err != nil {
		return out, err
	}
	var known, hidden []theory.Context
	noisy := 0
	for _, cx := range all {
		h := cx
		h.Truth = theory.Unknown
		hidden = append(hidden, h)
		if cx.Truth == theory.Unknown {
			out.noTruth++
			continue
		}
		if cx.Truth != cx.Label {
			noisy++
		}
		known = append(known, cx)
	}
	out.contexts = len(all)
	out.tokenNoise = float64(noisy) / float64(len(known))
	e := out.tokenNoise
	split := map[string]struct {
		ctxs []theory.Context
		nm   theory.NoiseModel
	}{
		PredPaper:     {known, theory.NoiseModel{E: e}},
		PredPosterior: {hidden, theory.NoiseModel{E: e, Posterior: true}},
		PredFlat:      {hidden, theory.NoiseModel{E: e}},
	}
	heldOut := t.HeldOut()
	gR, err := train.Gradient(ctx, m, ck.Tokenizer, heldOut, objectives.P()) // R = 1 − mean p, up to a constant
	if err != nil {
		return out, err
	}
	r0, err := heldOutRisk(ctx, m, ck.Tokenizer, heldOut)
	if err != nil {
		return out, err
	}
	for _, o := range fixed {
		sc := map[string]float64{}
		for _, p := range []string{PredPaper, PredPosterior, PredFlat} {
			est, err := theory.EstimateRate(o, split[p].ctxs, split[p].nm)
			if err != nil {
				return out, fmt.Errorf("%s, %s, replicate %d: %w", c, p, rep, err)
			}
			sc[p] = est.Rate
			if p == PredPaper {
				sc[PredNormalised] = est.Normalised
			}
		}
		gL, err := train.Gradient(ctx, m, ck.Tokenizer, d.Examples, gradientObjective(o))
		if err != nil {
			return out, err
		}
		sc[PredExact] = train.Dot(gR, gL)
		stepped, err := ck.NewModel()
		if err != nil {
			return out, err
		}
		if err := train.Step(stepped, gL, r.Setup.Eta); err != nil {
			return out, err
		}
		r1, err := heldOutRisk(ctx, stepped, ck.Tokenizer, heldOut)
		if err != nil {
			return out, err
		}
		sc[PredOneStep] = (r0 - r1) / r.Setup.Eta
		out.scores[o.String()] = sc
		if hasCrossover(o) {
			var es [3]float64
			for j, p := range []string{PredPaper, PredPosterior, PredFlat} {
				cmp, err := theory.Compare(o, objectives.NLL(), split[p].ctxs, split[p].nm)
				if err != nil {
					return out, err
				}
				es[j] = cmp.Crossover
			}
			out.estar[o.String()] = es
		}
	}
	return out, nil
}

// gradientObjective is the objective whose loss has o's gradient at the
// base model: o itself, except for an objective anchored to the model it
// starts from (asft-α), whose KL anchor has gradient α·(q − r) = 0 there
// (theory.Scope), so that its gradient is DFT's, −sg(p)·log p, exactly.
func gradientObjective(o objectives.Objective) objectives.Objective {
	if o.Form() == objectives.FormAnchored {
		return objectives.MustParse("dft")
	}
	return o
}

// hasCrossover reports whether the theory experiment reports o's E*
// against NLL: the prior-leaning objectives, and the trainers' objectives
// beyond f(p), whose gates scale NLL's gradient down (or, asft, follow
// DFT's) and so trade places with it as the prior-leaning ones do.
func hasCrossover(o objectives.Objective) bool {
	return o.Kind() != objectives.KindNLL && (o.Class() == objectives.PriorLeaning || !o.OfP())
}

// truthContexts scores the data as given with the model and returns one
// theory context per scored target: the model's full distribution, the
// label as given, and its true next token (theory.Unknown where none is
// defined).
func truthContexts(ctx context.Context, m *train.Model, tok *train.Tokenizer, d SFTData) ([]theory.Context, error) {
	id := func(r rune) (int, error) {
		switch r {
		case UnknownTruth:
			return theory.Unknown, nil
		case EOS:
			return train.EOSID, nil
		}
		ids, err := tok.Encode(string(r))
		if err != nil {
			return 0, err
		}
		return ids[0], nil
	}
	var out []theory.Context
	var ferr error
	_, err := train.Score(ctx, m, tok, d.Examples, 64, func(i int, tf train.TokenScores) {
		truth := TokenTruth(d.Labels[i], d.Examples[i].Response)
		for j, label := range tf.Target {
			if j >= len(truth) {
				ferr = fmt.Errorf("example %d: %d scored targets, %d truths", i, len(tf.Target), len(truth))
				return
			}
			tr, err := id(truth[j])
			if err != nil {
				ferr = err
				return
			}
			out = append(out, theory.Context{Q: tf.Dist(j), Label: label, Truth: tr})
		}
	})
	if err != nil {
		return nil, err
	}
	return out, ferr
}

// heldOutRisk is R = 1 − mean p of the held-out targets (the paper's risk,
// the negative expected accuracy, shifted by 1).
func heldOutRisk(ctx context.Context, m *train.Model, tok *train.Tokenizer, data []train.Example) (float64, error) {
	ev, err := train.Evaluate(ctx, m, tok, data, train.EvalOptions{NoGenerate: true})
	return 1 - ev.MeanP, err
}

// summariseTheory averages a cell's replicates and names the winners.
func summariseTheory(cell Cell, reps []repTheory, fixed []objectives.Objective) TheoryCell {
	tc := TheoryCell{Condition: cell.Condition, MeanPGiven: cell.ProbeGiven.MeanP.Mean, Predicted: map[string]string{}, Final: cell.Decisions}
	n := float64(len(reps))
	for _, rp := range reps {
		tc.TokenNoise += rp.tokenNoise / n
		tc.Contexts += rp.contexts
		tc.NoTruth += rp.noTruth
	}
	tc.Contexts /= len(reps)
	tc.NoTruth /= len(reps)
	for _, o := range fixed {
		p := Prediction{Objective: o.String(), Scores: map[string]float64{}}
		for _, pred := range Predictors {
			for _, rp := range reps {
				p.Scores[pred] += rp.scores[o.String()][pred] / n
			}
		}
		tc.Predictions = append(tc.Predictions, p)
		if !hasCrossover(o) {
			continue
		}
		x := TheoryCrossover{Objective: o.String()}
		for j, dst := range []*Interval{&x.Known, &x.Posterior, &x.Flat} {
			var vs []float64
			for _, rp := range reps {
				if v := rp.estar[o.String()][j]; !math.IsNaN(v) {
					vs = append(vs, v)
				}
			}
			*dst = MeanCI(vs)
		}
		tc.Crossovers = append(tc.Crossovers, x)
	}
	for _, pred := range Predictors {
		best := 0
		for i, p := range tc.Predictions {
			if p.Scores[pred] > tc.Predictions[best].Scores[pred] {
				best = i
			}
		}
		tc.Predicted[pred] = tc.Predictions[best].Objective
		for i, p := range tc.Predictions {
			if i != best && p.Scores[pred] == tc.Predictions[best].Scores[pred] {
				if tc.PredictedTied == nil {
					tc.PredictedTied = map[string][]string{}
				}
				tc.PredictedTied[pred] = append(tc.PredictedTied[pred], p.Objective)
			}
		}
	}
	return tc
}

// group is a cell's noise group: "clean" or its scheme.
func group(c Condition) string {
	if c.Noise == 0 {
		return "clean"
	}
	return string(c.Scheme)
}

// agreements counts, per task, group and metric, how often each predictor
// names the decided winner.
func agreements(cells []TheoryCell, tasks []string) []Agreement {
	var groups []string
	seen := map[string]bool{}
	for _, c := range cells {
		if g := group(c.Condition); !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	groups = append(groups, "all")
	var out []Agreement
	for _, task := range tasks {
		for _, g := range groups {
			for _, m := range Metrics {
				for _, pred := range Predictors {
					a := Agreement{Task: task, Group: g, Metric: m.Key, Predictor: pred}
					for _, c := range cells {
						if c.Task != task || (g != "all" && group(c.Condition) != g) {
							continue
						}
						a.Cells++
						d := c.Final[m.Key]
						if d.Decided() {
							a.Decided++
							if c.predicts(pred, d.Winner) {
								a.Agree++
								if len(c.PredictedTied[pred]) > 0 {
									a.ViaTie++
								}
							}
						}
					}
					if a.Decided > 0 {
						rate := float64(a.Agree) / float64(a.Decided)
						a.Rate = &rate
					}
					if a.Cells > 0 {
						out = append(out, a)
					}
				}
			}
		}
	}
	return out
}

// AutoOutcome is one adaptive objective in a cell.
type AutoOutcome struct {
	Objective string              `json:"objective"`
	Scores    map[string]Interval `json:"scores"`
	// VsBest is the paired difference against the cell's best fixed
	// objective per metric.
	VsBest map[string]Interval `json:"vs_best_fixed"`
	// Usage is the share of steps spent under each concrete objective.
	Usage map[string]float64 `json:"usage"`
}

// AutoCell compares the adaptive objectives with the best fixed one.
type AutoCell struct {
	Condition
	MeanPGiven float64 `json:"mean_p_as_given"`
	// BestFixed is, per metric, the fixed objective with the highest mean
	// over replicates, picked after the fact: a comparison that favours it.
	BestFixed map[string]string `json:"best_fixed"`
	Adaptive  []AutoOutcome     `json:"adaptive"`
}

// AutoSummary counts an adaptive objective's standing against the best
// fixed objective over a group of cells.
type AutoSummary struct {
	Task      string `json:"task"`
	Group     string `json:"group"`
	Metric    string `json:"metric"`
	Objective string `json:"objective"`
	Cells     int    `json:"cells"`
	// Behind and Ahead count the cells whose paired CI lies below or above
	// 0; Tied the others.
	Behind  int     `json:"behind"`
	Tied    int     `json:"tied"`
	Ahead   int     `json:"ahead"`
	MeanGap float64 `json:"mean_gap"` // mean over the cells of the mean difference
	// Worst is the cell with the most negative mean difference.
	Worst    Condition `json:"worst"`
	WorstGap Interval  `json:"worst_gap"`
}

// AutoblendResult is the autoblend experiment's outcome.
type AutoblendResult struct {
	Setup     Setup         `json:"setup"`
	Cells     []AutoCell    `json:"cells"`
	Summaries []AutoSummary `json:"summaries"`
}

// Autoblend compares every adaptive objective of the setup with the best
// fixed objective of each cell, on the continuum's runs.
func Autoblend(cont *ContinuumResult) (*AutoblendResult, error) {
	s := cont.Setup
	var adaptive []string
	for _, o := range s.Objectives {
		if objectives.MustParse(o).Adaptive() {
			adaptive = append(adaptive, o)
		}
	}
	if len(adaptive) == 0 {
		return nil, fmt.Errorf("autoblend: the setup has no adaptive objective (auto, auto-theory)")
	}
	// The baselines (clean, then NLL) stand against the best fixed
	// objective in the same way.
	adaptive = append(adaptive, s.Baselines...)
	fixed := fixedObjectives(s)
	res := &AutoblendResult{Setup: s}
	for _, cell := range cont.Cells {
		ac := AutoCell{Condition: cell.Condition, MeanPGiven: cell.ProbeGiven.MeanP.Mean, BestFixed: map[string]string{}}
		for _, m := range Metrics {
			best := math.Inf(-1)
			for _, o := range fixed {
				if v := cell.Outcome(o).Scores[m.Key].Mean; v > best {
					best, ac.BestFixed[m.Key] = v, o
				}
			}
		}
		for _, a := range adaptive {
			o := AutoOutcome{Objective: a, Scores: cell.Outcome(a).Scores, VsBest: map[string]Interval{}, Usage: map[string]float64{}}
			for _, m := range Metrics {
				av, err := pick(cont.Runs, cell.Condition, a, s.Replicates, m.Of)
				if err != nil {
					return nil, err
				}
				bv, err := pick(cont.Runs, cell.Condition, ac.BestFixed[m.Key], s.Replicates, m.Of)
				if err != nil {
					return nil, err
				}
				if o.VsBest[m.Key], err = Paired(av, bv); err != nil {
					return nil, err
				}
			}
			total := 0
			for _, r := range cont.Runs {
				if r.Condition == cell.Condition && r.Objective == a {
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
	for _, task := range s.Tasks {
		for _, g := range append(groupsOf(cont.Cells), "all") {
			for _, m := range Metrics {
				for ai, a := range adaptive {
					sum := AutoSummary{Task: task, Group: g, Metric: m.Key, Objective: a}
					for _, c := range res.Cells {
						if c.Task != task || (g != "all" && group(c.Condition) != g) {
							continue
						}
						d := c.Adaptive[ai].VsBest[m.Key]
						sum.Cells++
						sum.MeanGap += d.Mean
						switch {
						case d.Hi < 0:
							sum.Behind++
						case d.Lo > 0:
							sum.Ahead++
						default:
							sum.Tied++
						}
						if sum.Cells == 1 || d.Mean < sum.WorstGap.Mean {
							sum.Worst, sum.WorstGap = c.Condition, d
						}
					}
					if sum.Cells > 0 {
						sum.MeanGap /= float64(sum.Cells)
						res.Summaries = append(res.Summaries, sum)
					}
				}
			}
		}
	}
	return res, nil
}

// groupsOf lists the noise groups of the cells, in order of appearance.
func groupsOf(cells []Cell) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range cells {
		if g := group(c.Condition); !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}
