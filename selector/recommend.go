package selector

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/capsel/capsel/choose"
	"github.com/capsel/capsel/continuum"
	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
)

// Region names, as the probe reports them (package continuum is their one
// source).
const (
	RegionWeak         = string(continuum.Weak)
	RegionIntermediate = string(continuum.Intermediate)
	RegionStrong       = string(continuum.Strong)
)

// Evidence is what the recommendation rests on: the probe's capability
// measurement and its sample of token contexts.
type Evidence struct {
	MeanP      float64    // the paper's Eq. 5: mean p of the target tokens
	MeanPCI    [2]float64 // 95% bootstrap CI over sequences
	ShareGT055 float64    // share of target tokens with p > 0.55
	Tokens     int
	Sequences  int
	Region     string  // model-weak, model-intermediate or model-strong
	WeakBelow  float64 // the cut points the region was placed with
	StrongAt   float64
	Anchor     string // nearest paper anchor, for the rationale ("Qwen2.5-Math-7B, math: 0.81")
	Contexts   []theory.Context
	TopK       bool // contexts carry top-k lists (remainder bucket) rather than full distributions
	// CIDefined is false when too few sequences were scored for MeanPCI
	// to mean anything (probe.MinCISequences).
	CIDefined bool
	// NoiseAware is the noise-aware measurement (capability Ĉ, noise rate
	// Ê, flags); nil when the inputs cannot give it.
	NoiseAware *labelnoise.Result
}

// Options tune the decision.
type Options struct {
	// Noise is the label-noise rate E of the theory's noise model when none
	// was measured (or AssumeNoise is set). The paper gives no value for
	// real SFT data (its only noisy experiment, OpenBookQA, does not state
	// one); 0.1 is a moderate default, and the crossover E* printed next to
	// it shows how much the ranking depends on it.
	Noise float64
	// AssumeNoise makes the theory use Noise even when the noise rate was
	// measured.
	AssumeNoise bool
	Posterior   bool
	U           theory.TrueDist
	// Alphas and Lambdas are the grids of GeneralFamily-α and blend-λ
	// candidates.
	Alphas  []float64
	Lambdas []float64
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{Noise: 0.1, U: theory.UModel, Alphas: []float64{0.5, 2, 5, 10}, Lambdas: []float64{0.25, 0.5, 0.75}}
}

// Ranked is one candidate's theoretical rates.
type Ranked struct {
	Objective  string  `json:"objective"`
	Class      string  `json:"class"`
	Rate       float64 `json:"rate"`            // the paper's Ṙ under the noise model
	Normalised float64 `json:"normalised_rate"` // Ṙ/‖∇L‖
}

// Pilot is a small sweep to settle an undecided case empirically.
type Pilot struct {
	Objectives []string `json:"objectives"`
	Steps      string   `json:"steps"`
	Compare    string   `json:"compare"`
	Pick       string   `json:"pick"`
}

// Unranked is a candidate the theory could not rank on the evidence.
type Unranked struct {
	Objective string `json:"objective"`
	Reason    string `json:"reason"`
}

// Alternative is a trainer's objective worth a pilot arm beside the
// recommendation, with the evidence for it.
type Alternative struct {
	Objective string `json:"objective"`
	Why       string `json:"why"`
}

// Recommendation is the selector's answer with its evidence.
type Recommendation struct {
	Objective string `json:"objective"`
	// Leaning is the class-level call: a prior-leaning objective.
	Leaning bool `json:"prior_leaning"`
	// DropFlagged says to train without the flagged examples (selector
	// clean).
	DropFlagged bool   `json:"drop_flagged"`
	Region      string `json:"region"`
	// Capability is Ĉ (CapabilitySource "noise-aware") or, without the
	// noise-aware measurement, the raw mean p ("raw mean p").
	Capability       float64    `json:"capability"`
	CapabilityCI     [2]float64 `json:"capability_ci"`
	CapabilitySource string     `json:"capability_source"`
	// RawMeanP is the paper's Eq. 5 on the data as given.
	RawMeanP   float64            `json:"raw_mean_p"`
	ShareGT055 float64            `json:"share_p_gt_055"`
	NoiseAware *NoiseAwareSummary `json:"noise_aware"`
	Confidence string             `json:"confidence"` // high, medium or low
	Ranking    []Ranked           `json:"ranking"`    // by Rate, fastest first
	// Unranked are the peers (Peers) the contexts could not rank.
	Unranked []Unranked `json:"unranked,omitempty"`
	// Alternatives are the trainers' objectives that capsel's experiment
	// grid measured ahead where the call stands.
	Alternatives []Alternative `json:"alternatives"`
	// Noise is the noise rate the theory was evaluated at, measured (the
	// noise-aware Ê, or its token noise rate) or assumed (NoiseSource).
	Noise         float64  `json:"noise"`
	NoiseSource   string   `json:"noise_source"`
	BestLeaning   string   `json:"best_prior_leaning"`
	Crossover     *float64 `json:"crossover_noise"` // E* between BestLeaning and nll; null when none in [0, 1]
	TheoryAgrees  *bool    `json:"theory_agrees"`   // with the call: the theory's faster of the best prior-leaning objective and NLL is the called class
	Fallback      string   `json:"fallback"`        // a fixed objective for trainers that cannot run Objective
	Rationale     []string `json:"rationale"`
	Pilot         *Pilot   `json:"pilot,omitempty"`
	Contexts      int      `json:"contexts"`
	RemainderNote bool     `json:"remainder_bucket"`

	// PilotDecision is the outcome of a pilot sweep that was run
	// (ApplyPilot), nil otherwise.
	PilotDecision *PilotDecision `json:"pilot_outcome,omitempty"`
}

// NoiseAwareSummary is the noise-aware measurement without its flag list.
type NoiseAwareSummary struct {
	Method     labelnoise.Method     `json:"method"`
	Examples   int                   `json:"examples"`
	Agree      int                   `json:"agree"`
	Flagged    int                   `json:"flagged"`
	Capability labelnoise.Estimate   `json:"capability"`
	Noise      *labelnoise.Estimate  `json:"noise"`
	Known      *labelnoise.Estimate  `json:"known"`
	TokenNoise *labelnoise.Estimate  `json:"token_noise"`
	Null       *labelnoise.NullCheck `json:"null"`
	Notes      []string              `json:"notes"`
}

func summaryOf(m *labelnoise.Result) *NoiseAwareSummary {
	return &NoiseAwareSummary{Method: m.Method, Examples: m.Examples, Agree: m.Agree, Flagged: len(m.Flags),
		Capability: m.Capability, Noise: m.Noise, Known: m.Known, TokenNoise: m.TokenNoise, Null: m.Null, Notes: m.Notes}
}

// measuredRate is m's noise rate, nil without a measurement.
func measuredRate(m *labelnoise.Result) *labelnoise.Estimate {
	if m == nil {
		return nil
	}
	return m.NoiseRate()
}

// ErrEvidence is wrapped by errors about unusable evidence.
var ErrEvidence = errors.New("selector: unusable evidence")

func (ev Evidence) validate() error {
	switch {
	case ev.Tokens <= 0 || ev.Sequences <= 0:
		return fmt.Errorf("%w: the report has no scored tokens", ErrEvidence)
	case !(ev.MeanP >= 0 && ev.MeanP <= 1):
		return fmt.Errorf("%w: mean p %v is not a probability", ErrEvidence, ev.MeanP)
	case !(ev.MeanPCI[0] <= ev.MeanP+1e-9 && ev.MeanP <= ev.MeanPCI[1]+1e-9):
		return fmt.Errorf("%w: mean p %v lies outside its CI [%v, %v]", ErrEvidence, ev.MeanP, ev.MeanPCI[0], ev.MeanPCI[1])
	case !(ev.ShareGT055 >= 0 && ev.ShareGT055 <= 1):
		return fmt.Errorf("%w: share of p > 0.55 is %v", ErrEvidence, ev.ShareGT055)
	case !(ev.WeakBelow > 0 && ev.WeakBelow < ev.StrongAt && ev.StrongAt <= 1):
		return fmt.Errorf("%w: cut points %v and %v", ErrEvidence, ev.WeakBelow, ev.StrongAt)
	case len(ev.Contexts) == 0:
		return fmt.Errorf("%w: the report carries no token records for the theory", ErrEvidence)
	}
	want := RegionIntermediate
	if ev.MeanP < ev.WeakBelow {
		want = RegionWeak
	} else if ev.MeanP >= ev.StrongAt {
		want = RegionStrong
	}
	if ev.Region != want {
		return fmt.Errorf("%w: region %q disagrees with mean p %v and the cuts %v / %v (%s)", ErrEvidence, ev.Region, ev.MeanP, ev.WeakBelow, ev.StrongAt, want)
	}
	return nil
}

// Candidates returns the objectives the theory ranks: NLL, "p",
// GeneralFamily-α on opt's grid, the paper's thresholded −log p·1{p ≥ 0.2},
// blend-λ on opt's grid, and the trainers' own objectives (Peers).
func Candidates(opt Options) []objectives.Objective {
	return append(paperCandidates(opt), Peers()...)
}

// Peers are the token-level objectives the trainers ship, at the settings
// capsel's experiment grid measures: EAFT at α = 1 (LLaMA-Factory's and
// Axolotl's default), DEFT, and ASFT at LLaMA-Factory's default α = 0.1.
func Peers() []objectives.Objective {
	return []objectives.Objective{objectives.MustParse("eaft-1"), objectives.MustParse("deft"), objectives.MustParse(choose.Anchored)}
}

// paperCandidates are Candidates without the peers: the functions of p.
func paperCandidates(opt Options) []objectives.Objective {
	out := []objectives.Objective{objectives.NLL(), objectives.P()}
	for _, a := range opt.Alphas {
		if o, err := objectives.GeneralFamily(a); err == nil && a != 1 {
			out = append(out, o)
		}
	}
	o, _ := objectives.OnlyTopLogP(0.2)
	out = append(out, o)
	for _, l := range opt.Lambdas {
		if o, err := objectives.Blend(l); err == nil && l != 0 && l != 1 {
			out = append(out, o)
		}
	}
	return out
}

// Recommend decides. With the noise-aware measurement (Evidence.NoiseAware)
// the class-level call is Decide's: placement by the capability Ĉ,
// prior-leaning where Ĉ is model-strong or the labels are measurably noisy,
// NLL otherwise. Without it the paper's rollout (§7) runs on the raw mean p,
// which label noise lowers, and the output says so. The theory ranks the
// candidates at the measured noise rate (or, without a measurement, at
// Options.Noise) and the confidence drops when it disagrees with the call,
// when the capability's interval crosses the strong cut, when the own answers
// were approximated from log-prob files, or when few tokens were scored. The
// reasons are given in the order the decision was made, so none contradicts
// the headline; where the evidence conflicts, a pilot sweep is proposed.
func Recommend(ev Evidence, opt Options) (Recommendation, error) {
	if err := ev.validate(); err != nil {
		return Recommendation{}, err
	}
	cuts := continuum.Cuts{WeakBelow: ev.WeakBelow, StrongAt: ev.StrongAt}
	r := Recommendation{Capability: ev.MeanP, CapabilityCI: ev.MeanPCI, RawMeanP: ev.MeanP, ShareGT055: ev.ShareGT055,
		Contexts: len(ev.Contexts), RemainderNote: ev.TopK, CapabilitySource: "raw mean p"}
	level := 2 // high
	var call choose.Call
	m := ev.NoiseAware
	if m != nil {
		call = choose.Decide(m, cuts)
		r.Capability, r.CapabilityCI, r.CapabilitySource = m.Capability.Value, m.Capability.CI, "noise-aware"
		r.NoiseAware = summaryOf(m)
	} else {
		call = decideRaw(ev, cuts)
		level--
	}
	r.Region, r.Leaning, r.DropFlagged = string(call.Region), call.Leaning, call.DropFlagged
	r.Objective, r.Fallback = call.Objective, call.Fallback
	r.Rationale = append(r.Rationale, call.Reasons...)
	if a, ok := nearestAnchor(r.Capability); ok {
		r.Rationale = append(r.Rationale, "The nearest of the paper's measured base models is "+a+".")
	}

	// The theory, at the measured noise rate when there is one.
	r.Noise, r.NoiseSource = opt.Noise, "assumed"
	if rate := measuredRate(m); rate != nil && !opt.AssumeNoise {
		r.Noise, r.NoiseSource = rate.Value, "measured"
	}
	nm := theory.NoiseModel{E: r.Noise, Posterior: opt.Posterior, U: opt.U}
	if err := nm.Validate(); err != nil {
		return Recommendation{}, fmt.Errorf("selector: %w", err)
	}
	ests, err := theory.Rank(paperCandidates(opt), ev.Contexts, nm)
	if err != nil {
		return Recommendation{}, fmt.Errorf("selector: %w", err)
	}
	// A peer whose gate the contexts cannot give (EAFT's top-20 entropy from
	// a shorter top-k list) is left out of the ranking, with the reason.
	for _, o := range Peers() {
		e, err := theory.EstimateRate(o, ev.Contexts, nm)
		if err != nil {
			r.Unranked = append(r.Unranked, Unranked{Objective: o.String(), Reason: err.Error()})
			continue
		}
		ests = append(ests, e)
	}
	sort.SliceStable(ests, func(i, j int) bool { return ests[i].Rate > ests[j].Rate })
	var best objectives.Objective
	bestRate := math.Inf(-1)
	for _, e := range ests {
		o := objectives.MustParse(e.Objective)
		r.Ranking = append(r.Ranking, Ranked{Objective: e.Objective, Class: o.Class().String(), Rate: e.Rate, Normalised: e.Normalised})
		if o.Class() == objectives.PriorLeaning && e.Rate > bestRate {
			best, bestRate = o, e.Rate
		}
	}
	r.BestLeaning = best.String()
	cmp, err := theory.Compare(best, objectives.NLL(), ev.Contexts, nm)
	if err != nil {
		return r, fmt.Errorf("selector: %w", err)
	}
	if !math.IsNaN(cmp.Crossover) {
		x := cmp.Crossover
		r.Crossover = &x
	}
	agree := call.Leaning == (cmp.Delta > 0)
	r.TheoryAgrees = &agree
	r.Rationale = append(r.Rationale, theoryLine(r, best, cmp, agree))
	if !agree {
		level--
	}

	// What else lowers the confidence.
	if m != nil && m.Method == labelnoise.TeacherForced {
		level--
		r.Rationale = append(r.Rationale, "The model's own answers were approximated from the log-prob files (teacher forcing), not generated: a live server or a capsel checkpoint gives the firmer measurement.")
	}
	if !call.Noisy && r.CapabilityCI[0] < ev.StrongAt && r.CapabilityCI[1] >= ev.StrongAt {
		level--
		r.Rationale = append(r.Rationale, fmt.Sprintf("The capability's interval crosses the model-strong cut (%g): the region itself is uncertain.", ev.StrongAt))
	}
	if !ev.CIDefined {
		level--
		r.Rationale = append(r.Rationale, fmt.Sprintf("Only %d sequences were scored, too few for a confidence interval.", ev.Sequences))
	}
	if ev.Tokens < 1000 {
		level--
		r.Rationale = append(r.Rationale, fmt.Sprintf("Only %d target tokens were scored; probe more data for a firmer estimate.", ev.Tokens))
	}
	r.Confidence = []string{"low", "medium", "high"}[max(0, level)]
	r.Alternatives = alternatives(call)
	if r.Confidence != "high" {
		cands := []string{"nll", r.Objective, r.Fallback, "p", "OnlyTopLogP-0.2"}
		for _, a := range r.Alternatives {
			cands = append(cands, a.Objective)
		}
		if call.Noisy && call.Region != continuum.Strong {
			r.Rationale = append(r.Rationale, "The pilot below includes NLL on the data without the flagged examples (selector clean): on capsel's grid that fits the training data best in some noisy cells, while the prior-leaning objectives generalise better.")
		}
		r.Pilot = &Pilot{
			Objectives: uniq(cands),
			Steps:      "about 10% of the planned run, with the same data order and learning rate for each",
			Compare:    "exact match on 10% of the data kept aside, example by example (token accuracy where exact match does not separate them)",
			Pick:       "an objective only when the paired 95% CI of its lead over every other excludes 0; otherwise keep this recommendation",
		}
	}
	return r, nil
}

// alternatives names the trainers' objectives where capsel's experiment grid
// (experiments/results/README.md, "EAFT, DEFT and ASFT against NLL and −p")
// measured them ahead of the NLL the call names: ASFT wherever the base
// model is not weak, for what it keeps of the base model's knowledge, and
// DEFT. A prior-leaning call names ASFT itself (choose.Anchored).
func alternatives(call choose.Call) []Alternative {
	out := []Alternative{} // [] rather than null in JSON
	if call.Leaning {
		return out
	}
	if call.Region != continuum.Weak {
		out = append(out, Alternative{Objective: choose.Anchored, Why: asftWhy})
	}
	return append(out, Alternative{Objective: "deft", Why: deftWhy})
}

const (
	asftWhy = "ASFT (DFT with a KL anchor to the base model; LLaMA-Factory's use_asft_loss at its default α = 0.1): on capsel's fact task it kept more of the held-out facts the base model knew than NLL wherever the base model knew some of them, while NLL fit the training facts better; on the rule task it fell behind NLL at the weak end. Where learning the new data is the point, NLL stays the call."
	deftWhy = "DEFT (the DEFT fork's per-token gate between NLL-like and −p-like behaviour): on capsel's rule task, which asks for generalisation, it was among the leaders on held-out token accuracy in every cell but one and never behind −p; on the fact task it fell between NLL and −p."
)

// decideRaw is the paper's rollout on the raw mean p, for evidence without
// the noise-aware measurement: prior-leaning (choose.Anchored, with −p as
// its fallback) at the model-strong end, NLL elsewhere.
func decideRaw(ev Evidence, cuts continuum.Cuts) choose.Call {
	c := choose.Call{Region: cuts.Region(ev.MeanP), Objective: "nll", Fallback: "nll"}
	c.Reasons = append(c.Reasons, fmt.Sprintf("The base model gives its fine-tuning targets a mean probability of %.3f (95%% CI %.3f–%.3f; the paper's Eq. 5), and %.0f%% of them exceed 0.55: %s.",
		ev.MeanP, ev.MeanPCI[0], ev.MeanPCI[1], 100*ev.ShareGT055, c.Region))
	c.Reasons = append(c.Reasons, "Without the noise-aware measurement (it needs the top-k lists, or a model that can answer), wrong labels cannot be told from a model that does not know: both lower the mean p, so a noisy data set of a strong model reads as weaker than it is.")
	if c.Region == continuum.Strong {
		c.Objective, c.Fallback, c.Leaning = choose.Anchored, "p", true
		c.Reasons = append(c.Reasons, "At the model-strong end the paper found prior-leaning objectives ahead of NLL by 4 to 16 points (its Table 1): ASFT ("+choose.Anchored+"), −p's gradient with a KL anchor to the base model, which on capsel's experiment grid kept more of the base model's knowledge than −p; −p where the trainer cannot run it.")
	} else {
		c.Reasons = append(c.Reasons, "Below the model-strong end: NLL, which learns fastest what the model does not know (the paper's Tables 2 and 3).")
	}
	return c
}

func theoryLine(r Recommendation, best objectives.Objective, cmp theory.Comparison, agree bool) string {
	s := fmt.Sprintf("Theory (paper §6), at the %s label-noise rate %.2f: the fastest risk reduction among the candidates is %s", r.NoiseSource, r.Noise, r.Ranking[0].Objective)
	if r.Crossover != nil && cmp.FirstWinsAbove {
		s += fmt.Sprintf("; %s overtakes NLL above a noise rate of %.2f", best, *r.Crossover)
	} else if r.Crossover != nil {
		s += fmt.Sprintf("; %s is ahead of NLL below a noise rate of %.2f", best, *r.Crossover)
	}
	if agree {
		return s + ", which agrees."
	}
	if r.Leaning {
		return s + ". It disagrees: its first-order rate sees neither the forgetting a prior-leaning objective prevents nor which examples generalise (on capsel's grid it names the held-out winner rarely); the pilot sweep can settle it."
	}
	return s + ". It disagrees; the pilot sweep can settle it."
}

func nearestAnchor(x float64) (string, bool) {
	best, d := -1, math.Inf(1)
	for i, a := range continuum.Anchors {
		if dd := math.Abs(a.MeanP - x); dd < d {
			best, d = i, dd
		}
	}
	if best < 0 {
		return "", false
	}
	a := continuum.Anchors[best]
	return fmt.Sprintf("%s on %s (mean p %.2f, %s; the paper's Table 5)", a.Model, a.Domain, a.MeanP, a.Region), true
}

func uniq(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
