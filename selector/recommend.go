package selector

import (
	"errors"
	"fmt"
	"math"
	"strconv"

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
	// Noise is the noise-aware probe's analysis (Ĉ, Ê, the known share and
	// the flags); nil when the report has none.
	Noise *labelnoise.Result
}

// Options tune the decision.
type Options struct {
	// Noise is the label-noise rate E of the theory's noise model. The paper
	// gives no value for real SFT data (its only noisy experiment,
	// OpenBookQA, does not state one); 0.1 is a moderate default, and the
	// crossover E* printed next to it shows how much the ranking depends on
	// it.
	Noise     float64
	Posterior bool
	U         theory.TrueDist
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

// Recommendation is the selector's answer with its evidence.
type Recommendation struct {
	Objective     string     `json:"objective"`
	Region        string     `json:"region"`
	Capability    float64    `json:"capability"`
	CapabilityCI  [2]float64 `json:"capability_ci"`
	ShareGT055    float64    `json:"share_p_gt_055"`
	Confidence    string     `json:"confidence"` // high, medium or low
	Ranking       []Ranked   `json:"ranking"`    // by Rate, fastest first
	Noise         float64    `json:"noise"`
	BestLeaning   string     `json:"best_prior_leaning"`
	Crossover     *float64   `json:"crossover_noise"` // E* between BestLeaning and nll; null when none in [0, 1]
	TheoryAgrees  *bool      `json:"theory_agrees"`   // with the paper's rollout; null in the intermediate band
	Fallback      string     `json:"fallback"`        // a fixed objective for trainers that cannot run Objective
	Rationale     []string   `json:"rationale"`
	Pilot         *Pilot     `json:"pilot,omitempty"`
	Contexts      int        `json:"contexts"`
	RemainderNote bool       `json:"remainder_bucket"`

	// PilotDecision is the outcome of a pilot sweep that was run
	// (ApplyPilot), nil otherwise.
	PilotDecision *PilotDecision `json:"pilot_outcome,omitempty"`
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
// and blend-λ on opt's grid.
func Candidates(opt Options) []objectives.Objective {
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

// Recommend decides. It follows the paper's rollout (§7): model-strong →
// a prior-leaning objective, model-weak → NLL, intermediate → no fixed
// winner, so auto and a pilot sweep. The theory sharpens it: among
// prior-leaning candidates it picks the one with the largest rate, and the
// confidence drops when the theory's ranking at the assumed noise rate
// disagrees with the rollout or when the capability CI straddles a cut.
func Recommend(ev Evidence, opt Options) (Recommendation, error) {
	if err := ev.validate(); err != nil {
		return Recommendation{}, err
	}
	nm := theory.NoiseModel{E: opt.Noise, Posterior: opt.Posterior, U: opt.U}
	if err := nm.Validate(); err != nil {
		return Recommendation{}, fmt.Errorf("selector: %w", err)
	}
	ests, err := theory.Rank(Candidates(opt), ev.Contexts, nm)
	if err != nil {
		return Recommendation{}, fmt.Errorf("selector: %w", err)
	}
	r := Recommendation{Region: ev.Region, Capability: ev.MeanP, CapabilityCI: ev.MeanPCI, ShareGT055: ev.ShareGT055,
		Noise: opt.Noise, Contexts: len(ev.Contexts), RemainderNote: ev.TopK}
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
	borderline := ev.MeanPCI[0] < ev.WeakBelow && ev.MeanPCI[1] >= ev.WeakBelow ||
		ev.MeanPCI[0] < ev.StrongAt && ev.MeanPCI[1] >= ev.StrongAt
	level := 2 // high
	pct := func(x float64) string { return strconv.FormatFloat(100*x, 'f', 0, 64) + "%" }
	capLine := fmt.Sprintf("The base model gives its fine-tuning targets a mean probability of %.3f (95%% CI %.3f–%.3f; the paper's Eq. 5), and %s of them exceed 0.55.",
		ev.MeanP, ev.MeanPCI[0], ev.MeanPCI[1], pct(ev.ShareGT055))
	r.Rationale = append(r.Rationale, capLine)
	if ev.Anchor != "" {
		r.Rationale = append(r.Rationale, "The nearest of the paper's measured base models is "+ev.Anchor+".")
	}
	theoryLine := func(agree bool) string {
		s := fmt.Sprintf("Theory (paper §6): at an assumed label-noise rate of %g, the fastest risk reduction among the candidates is %s", opt.Noise, r.Ranking[0].Objective)
		if r.Crossover != nil && cmp.FirstWinsAbove {
			s += fmt.Sprintf("; %s overtakes NLL once more than %.0f%% of the labels are wrong (E* = %.2f)", best, 100**r.Crossover, *r.Crossover)
		} else if r.Crossover != nil {
			s += fmt.Sprintf("; %s is ahead of NLL below a noise rate of %.2f", best, *r.Crossover)
		}
		if agree {
			return s + ", which agrees with the paper's measurements."
		}
		return s + ", which does not match the paper's measurements here: trust the measurements, and check with a pilot sweep."
	}
	switch ev.Region {
	case RegionStrong:
		r.Objective, r.Fallback = best.String(), best.String()
		agree := cmp.Delta > 0
		r.TheoryAgrees = &agree
		if !agree {
			level--
		}
		r.Rationale = append(r.Rationale,
			fmt.Sprintf("That places it at the model-strong end (mean p ≥ %g), where the paper found prior-leaning objectives (−p, −p¹⁰, −log p·1{p ≥ 0.2}) ahead of NLL by 4 to 16 points on math (its Table 1): they stop spending gradient on tokens the model already disbelieves.", ev.StrongAt),
			theoryLine(agree))
	case RegionWeak:
		r.Objective, r.Fallback = "nll", "nll"
		agree := r.Ranking[0].Objective == "nll" || cmp.Delta < 0
		r.TheoryAgrees = &agree
		if !agree {
			level--
		}
		r.Rationale = append(r.Rationale,
			fmt.Sprintf("That places it at the model-weak end (mean p < %g), where the paper found NLL far ahead: prior-leaning objectives scale each token's gradient by about p and barely learn what the model does not yet know (its Table 3: −p collapsed on figfont puzzles).", ev.WeakBelow),
			theoryLine(agree))
	default:
		r.Objective, r.Fallback = "auto", "nll"
		level = 0
		r.Rationale = append(r.Rationale,
			fmt.Sprintf("That places it in the intermediate band (%g ≤ mean p < %g), where the paper found no fixed winner (medical: NLL and −p within 2 points, its Table 2).", ev.WeakBelow, ev.StrongAt),
			"So train with auto, which blends NLL and −p as the model's mean p moves during training, or settle it with the pilot sweep below.")
	}
	if borderline && ev.Region != RegionIntermediate {
		level--
		r.Rationale = append(r.Rationale, "The confidence interval of the mean p crosses a region boundary: the region itself is uncertain.")
	}
	if ev.Tokens < 1000 {
		level--
		r.Rationale = append(r.Rationale, fmt.Sprintf("Only %d target tokens were scored; probe more data for a firmer estimate.", ev.Tokens))
	}
	r.Confidence = []string{"low", "medium", "high"}[max(0, level)]
	if r.Confidence != "high" {
		r.Pilot = &Pilot{
			Objectives: uniq([]string{"nll", r.BestLeaning, "p", "OnlyTopLogP-0.2", "auto"}),
			Steps:      "about 10% of the planned run, with the same data order and learning rate for each",
			Compare:    "exact match on 10% of the data kept aside, example by example (token accuracy where exact match does not separate them)",
			Pick:       "an objective only when the paired 95% CI of its lead over every other excludes 0; otherwise keep this recommendation",
		}
	}
	return r, nil
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
