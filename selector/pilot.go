package selector

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/capsel/capsel/objectives"
)

// PilotArm is one objective's scores in a pilot sweep: one value per
// held-out example, the same examples in the same order for every arm
// (averaged over the sweep's seeds where it ran several).
type PilotArm struct {
	Objective     string
	ExactMatch    []float64 // 1 when greedy generation reproduced the response
	TokenAccuracy []float64 // share of the response's targets that were the argmax
}

// Pilot metrics, in the order DecidePilot consults them.
const (
	MetricExactMatch    = "exact_match"
	MetricTokenAccuracy = "token_accuracy"
)

// MinPilotExamples is the fewest held-out examples on which DecidePilot
// names a winner. Below it a paired interval rests on too few differences:
// with five examples that all favour one objective, even an exact sign
// test leaves a 6 % two-sided chance of that under no difference at all.
const MinPilotExamples = 10

// PilotLead is the leader's paired difference over one other objective on
// one metric: the mean over held-out examples of leader − other, with its
// 95 % Student-t interval.
type PilotLead struct {
	Over   string  `json:"over"`
	Metric string  `json:"metric"`
	Diff   float64 `json:"diff"`
	Lo     float64 `json:"lo"`
	Hi     float64 `json:"hi"`
}

// PilotDecision is what a pilot sweep settles.
type PilotDecision struct {
	// Winner is the objective that beat every other one, or "" when the
	// sweep did not separate them.
	Winner string `json:"winner,omitempty"`
	// DecidedBy is the metric that separated them (MetricExactMatch or
	// MetricTokenAccuracy), "" without a winner.
	DecidedBy string `json:"decided_by,omitempty"`
	// Leader is the objective with the best mean on the last metric
	// consulted, and Leads its paired differences over each other one.
	Leader string      `json:"leader"`
	Leads  []PilotLead `json:"leads"`
	// BestFixed is the winner among the objectives a trainer can run
	// without adapting (not auto or auto-theory), by the same rule, or ""
	// when they are not separated.
	BestFixed string `json:"best_fixed,omitempty"`
	Examples  int    `json:"examples"`
	// Reason says why there is no winner; Notes are caveats for the user.
	Reason string   `json:"reason,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

// DecidePilot picks the winner of a pilot sweep, honestly: an objective
// wins only when, on the held-out examples, the paired 95 % confidence
// interval of its lead over every other objective excludes 0. (So a false
// winner needs each of its comparisons, one-sided at 2.5 %, to err in its
// favour; with k objectives of equal merit the chance that one of them
// passes all its comparisons is at most k·2.5 %.)
// Exact match decides first (it is what the paper's accuracies measure);
// where it does not separate the objectives — with short pilot runs it is
// often 0 for all — token accuracy is consulted the same way. Fewer than
// MinPilotExamples held-out examples decide nothing.
//
// Every arm must score the same examples; a mismatch is an error.
func DecidePilot(arms []PilotArm) (PilotDecision, error) {
	var d PilotDecision
	if len(arms) < 2 {
		return d, fmt.Errorf("selector: pilot of %d objectives; it compares at least two", len(arms))
	}
	n := len(arms[0].ExactMatch)
	for _, a := range arms {
		if len(a.ExactMatch) != n || len(a.TokenAccuracy) != n {
			return d, fmt.Errorf("selector: pilot arm %s has %d and %d scores, want %d of each", a.Objective, len(a.ExactMatch), len(a.TokenAccuracy), n)
		}
	}
	d.Examples = n
	if n < MinPilotExamples {
		d.Leader, d.Leads = lead(arms, MetricExactMatch)
		d.Reason = fmt.Sprintf("only %d held-out examples; the pilot needs at least %d to separate objectives, so give it more data", n, MinPilotExamples)
		return d, nil
	}
	for _, metric := range []string{MetricExactMatch, MetricTokenAccuracy} {
		if v, same := allEqual(arms, metric); same {
			d.Notes = append(d.Notes, fmt.Sprintf("%s is %.3g for every objective on every held-out example: it cannot separate them here", metricName(metric), v))
			continue
		}
		if d.Leader != "" { // the earlier metric did not decide: say how close it came
			d.Notes = append(d.Notes, "not decided by "+undecided(d.Leader, weakest(d.Leads)))
		}
		d.Leader, d.Leads = lead(arms, metric)
		if separated(d.Leads) {
			d.Winner, d.DecidedBy = d.Leader, metric
			break
		}
	}
	switch {
	case d.Winner != "":
	case d.Leader == "":
		d.Leader, d.Leads = lead(arms, MetricTokenAccuracy)
		d.Reason = "every objective scored the same on every held-out example"
	default:
		d.Reason = undecided(d.Leader, weakest(d.Leads))
	}
	// The best objective that every trainer can run, by the same rule.
	var fixed []PilotArm
	for _, a := range arms {
		if o, err := objectives.Parse(a.Objective); err == nil && !o.Adaptive() {
			fixed = append(fixed, a)
		}
	}
	switch {
	case len(fixed) == 1:
		d.BestFixed = fixed[0].Objective
	case len(fixed) == len(arms):
		d.BestFixed = d.Winner
	case len(fixed) > 1:
		if f, err := DecidePilot(fixed); err == nil {
			d.BestFixed = f.Winner
		}
	}
	return d, nil
}

// undecided describes a leader's closest call.
func undecided(leader string, w *PilotLead) string {
	return fmt.Sprintf("%s: %s leads %s by %+.3f, but the 95%% CI of that lead (%+.3f to %+.3f) includes 0",
		metricName(w.Metric), leader, w.Over, w.Diff, w.Lo, w.Hi)
}

func metricName(metric string) string {
	if metric == MetricExactMatch {
		return "exact match"
	}
	return "token accuracy"
}

func scores(a PilotArm, metric string) []float64 {
	if metric == MetricExactMatch {
		return a.ExactMatch
	}
	return a.TokenAccuracy
}

// allEqual reports whether every arm scores the same value v on every
// example.
func allEqual(arms []PilotArm, metric string) (v float64, same bool) {
	v = scores(arms[0], metric)[0]
	for _, a := range arms {
		for _, x := range scores(a, metric) {
			if x != v {
				return v, false
			}
		}
	}
	return v, true
}

// lead returns the arm with the best mean on metric (the earlier one on a
// tie) and its paired differences over every other arm.
func lead(arms []PilotArm, metric string) (string, []PilotLead) {
	best, bestMean := 0, math.Inf(-1)
	for i, a := range arms {
		if m := stat.Mean(scores(a, metric), nil); m > bestMean {
			best, bestMean = i, m
		}
	}
	var leads []PilotLead
	for i, a := range arms {
		if i == best {
			continue
		}
		diff, lo, hi := pairedCI(scores(arms[best], metric), scores(a, metric))
		leads = append(leads, PilotLead{Over: a.Objective, Metric: metric, Diff: diff, Lo: lo, Hi: hi})
	}
	return arms[best].Objective, leads
}

// separated reports whether every lead's interval lies above 0.
func separated(leads []PilotLead) bool {
	for _, l := range leads {
		if !(l.Lo > 0) {
			return false
		}
	}
	return len(leads) > 0
}

// weakest returns the lead with the lowest interval bound.
func weakest(leads []PilotLead) *PilotLead {
	var w *PilotLead
	for i := range leads {
		if w == nil || leads[i].Lo < w.Lo {
			w = &leads[i]
		}
	}
	return w
}

// pairedCI returns the mean of the differences a[i] − b[i] and its
// two-sided 95 % Student-t interval, mean ± t₀.₉₇₅,ₙ₋₁·s/√n (s the sample
// standard deviation of the differences). With one difference the
// interval is unbounded.
func pairedCI(a, b []float64) (mean, lo, hi float64) {
	d := make([]float64, len(a))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	mean = stat.Mean(d, nil)
	if len(d) < 2 {
		return mean, math.Inf(-1), math.Inf(1)
	}
	se := stat.StdDev(d, nil) / math.Sqrt(float64(len(d)))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(d) - 1)}.Quantile(0.975)
	return mean, mean - t*se, mean + t*se
}

// ApplyPilot makes the pilot's outcome the recommendation, or says why
// not: a winner becomes the recommended objective (and, when a trainer can
// run it, the fallback), with a rationale line and at least medium
// confidence — the pilot measured it on the user's own data, but in short
// runs on a tenth of it; without a winner the recommendation stands and
// the rationale says why the pilot did not change it.
func (r *Recommendation) ApplyPilot(d PilotDecision) {
	r.PilotDecision = &d
	if d.Winner == "" {
		r.Rationale = append(r.Rationale, fmt.Sprintf("The pilot sweep did not settle it: %s. So the recommendation stays %s.", d.Reason, r.Objective))
		if r.Objective == "auto" && d.BestFixed == "" {
			r.Rationale = append(r.Rationale, fmt.Sprintf("For a trainer that cannot run auto, %s remains the fallback: the pilot found no fixed objective ahead of the others either.", r.Fallback))
		}
		return
	}
	w := weakest(d.Leads)
	line := fmt.Sprintf("The pilot sweep settles it on your data: %s beat every other candidate on %s over %d held-out examples (its smallest lead, over %s, is %+.3f, 95%% CI %+.3f to %+.3f).",
		d.Winner, metricName(d.DecidedBy), d.Examples, w.Over, w.Diff, w.Lo, w.Hi)
	if d.Winner == r.Objective {
		line += " That confirms the recommendation."
	} else {
		line += fmt.Sprintf(" So train with %s rather than %s.", d.Winner, r.Objective)
	}
	r.Rationale = append(r.Rationale, line)
	r.Objective = d.Winner
	if o, err := objectives.Parse(d.Winner); err == nil && !o.Adaptive() {
		r.Fallback = d.Winner
	} else if d.BestFixed != "" {
		r.Fallback = d.BestFixed
		r.Rationale = append(r.Rationale, fmt.Sprintf("For a trainer that cannot run %s, use %s: the best of the fixed objectives in the pilot, by the same rule.", d.Winner, d.BestFixed))
	}
	if r.Confidence == "low" {
		r.Confidence = "medium"
	}
}
