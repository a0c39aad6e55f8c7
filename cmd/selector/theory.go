package main

import (
	"fmt"
	"math"
	"os"
	"text/tabwriter"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
)

var cmdTheory = &command{
	name:  "theory",
	usage: "selector theory rate | crossover | ends | lemma [flags]",
	short: "risk-reduction rates of objectives under gradient flow (paper §6)",
	long: `The paper compares objectives by how fast one gradient-flow step reduces the
risk R = −E[q_{y*}] (negative expected sampling accuracy). Per context, with
the model's distribution q, training label ỹ and true label y*:

  Ṙ_f = q_{y*} · s_f(q_ỹ) · ⟨e_{y*} − q, e_ỹ − q⟩          (larger = faster)

The trainers' objectives that are not functions of p keep NLL's direction
with a detached gate, so s is their scale with the gate read from the
context's q: eaft-α (H₂₀/3)^α from the entropy of q's top 20 (exact from a
top-20 list), deft c·p^c/(c + 1e-6) with c = Σq², deft-cayley with the
sample's mean p standing for the batch's. asft-α's KL anchor has zero
gradient where the model is its own reference, the start of training and
the only point this first-order theory sees, so asft ranks level with dft
and p for every α. The paper's analysis covers none of them; the output
says where.

A sample splits into clean contexts (ỹ = y*) and noisy ones, and with noise
rate E the rate is (1 − E)·clean part + E·noisy part (paper §6). Contexts
that give their truth are split exactly. When y* is unknown, each context
enters the clean part with y* = ỹ and the noisy part with y* drawn from u
(the model's own q over the other tokens, or uniform with --u uniform): every
context fully in both parts (the default; right for clean data, biased when
the data is noisy), or weighted by the Bayes posterior that its label is
clean at noise E (--posterior, consistent for a calibrated model).

  selector theory rate --objective nll,p,GeneralFamily-10 --contexts ctx.jsonl --noise 0.1
      each objective's expected rate, its clean and noisy parts and the
      step-normalised rate Ṙ/‖∇L‖, ranked
  selector theory crossover --objective p --vs nll --contexts ctx.jsonl
      the clean and noisy parts A, B of Δ = Ṙ₁ − Ṙ₂ and the noise rate E*
      at which the winner changes
  selector theory ends --objective p --vs nll --vocab 32000 --noise 0.1
      the paper's closed form at the model-weak end (uniform q)
  selector theory lemma
      maximises q_i q_j(‖q‖² − q_i − q_j) over the simplex numerically and
      compares it with Lemma E.7's (11√33 − 59)/768

Contexts file format:
` + theory.ContextsFormat,
}

func init() { cmdTheory.run = runTheory }

func runTheory(e *env, args []string) error {
	return subcommand(e, cmdTheory, args, map[string]func(*env, []string) error{
		"rate":      theoryRate,
		"crossover": theoryCrossover,
		"ends":      theoryEnds,
		"lemma":     theoryLemma,
	})
}

func theoryLemma(e *env, args []string) error {
	f := newFlags(e, "theory lemma", "selector theory lemma [--seed N] [--json]",
		`Maximises F(q) = q_i·q_j·(‖q‖² − q_i − q_j) over the probability simplex with
BFGS from random starts (dimensions 3 to 5) and compares the result with the
paper's Lemma E.7: max F = (11√33 − 59)/768 ≈ 0.0054560 at
q_i = q_j = (9 − √33)/24 ≈ 0.13564.`)
	asJSON := f.Bool("json", false, "print JSON")
	seed := f.Uint64("seed", 1, "seed of the random starting points")
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	res, err := theory.CheckLemmaE7(*seed)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "Lemma E.7: max over the simplex of q_i q_j (‖q‖² − q_i − q_j)\n")
	fmt.Fprintf(e.stdout, "  numerical   %.10f at q_i = %.8f, q_j = %.8f (rest %.8f)\n", res.Max, res.Argmax[0], res.Argmax[1], 1-res.Argmax[0]-res.Argmax[1])
	fmt.Fprintf(e.stdout, "  closed form %.10f at q_i = q_j = (9 − √33)/24 = %.8f\n", res.ClosedForm, res.ArgmaxForm)
	fmt.Fprintf(e.stdout, "  |error|     %.2e in value, %.2e in position (BFGS, %d starts × dims %v)\n", res.AbsError, res.ArgError, res.Starts, res.Dims)
	return nil
}

type endsJSON struct {
	Objective string   `json:"objective"`
	Vs        string   `json:"vs"`
	Vocab     int      `json:"vocab"`
	Noise     float64  `json:"noise"`
	Delta     float64  `json:"delta"`
	Winner    string   `json:"winner"`
	Crossover *float64 `json:"crossover_noise"`
}

func theoryEnds(e *env, args []string) error {
	f := newFlags(e, "theory ends", "selector theory ends --objective SPEC --vs SPEC --vocab V --noise E [--json]",
		`The model-weak end of the paper's Theorem 6.4: the model predicts uniformly
over V tokens, labels are wrong with probability E, and

  Δ = Ṙ₁ − Ṙ₂ = (f₂′ − f₁′)(1/V) · [(V − 1)(1 − E) − E] / V³

Δ > 0 means --objective reduces risk faster than --vs. The sign flips at
E = (V − 1)/V for every pair, so NLL-like objectives win at any realistic
noise rate.`)
	asJSON := f.Bool("json", false, "print JSON")
	o1s := f.String("objective", "", "the first objective `spec`")
	o2s := f.String("vs", "nll", "the objective `spec` to compare against")
	vocab := f.Int("vocab", 0, "vocabulary size V (≥ 2)")
	noise := f.Float64("noise", 0, "label-noise rate E in [0, 1]")
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	o1, o2, err := parsePair(f, *o1s, *o2s)
	if err != nil {
		return err
	}
	if *vocab < 2 {
		return f.usagef("--vocab: need a vocabulary size ≥ 2, got %d", *vocab)
	}
	if !(*noise >= 0 && *noise <= 1) {
		return f.usagef("--noise: %v is not in [0, 1]", *noise)
	}
	for _, o := range []objectives.Objective{o1, o2} {
		if err := o.CheckVocab(*vocab); err != nil {
			return f.usagef("--vocab: %v", err)
		}
	}
	d := theory.WeakEnd(o1, o2, *vocab, *noise)
	if math.IsNaN(d) {
		return fmt.Errorf("theory ends: no rate for %s against %s at V = %d", o1, o2, *vocab)
	}
	out := endsJSON{Objective: o1.String(), Vs: o2.String(), Vocab: *vocab, Noise: *noise, Delta: d, Winner: winner(d, o1, o2)}
	if theory.WeakEnd(o1, o2, *vocab, 0) != 0 { // Δ(E) ∝ (s₁ − s₂)·[(V − 1)(1 − E) − E]
		out.Crossover = num(float64(*vocab-1) / float64(*vocab))
	}
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "model-weak end (uniform q over V = %d), noise E = %g\n", *vocab, *noise)
	fmt.Fprintf(e.stdout, "  Δ = Ṙ[%s] − Ṙ[%s] = %.6g\n", o1, o2, d)
	fmt.Fprintf(e.stdout, "  faster: %s\n", out.Winner)
	if out.Crossover != nil {
		fmt.Fprintf(e.stdout, "  the sign flips at E = (V − 1)/V = %.6g\n", *out.Crossover)
	}
	return nil
}

func winner(d float64, o1, o2 objectives.Objective) string {
	switch {
	case d > 0:
		return o1.String()
	case d < 0:
		return o2.String()
	}
	return "tie"
}

func parsePair(f *flags, s1, s2 string) (objectives.Objective, objectives.Objective, error) {
	if s1 == "" {
		return objectives.Objective{}, objectives.Objective{}, f.usagef("--objective is required")
	}
	o1, err := parseFixed(f, "--objective", s1)
	if err != nil {
		return o1, o1, err
	}
	o2, err := parseFixed(f, "--vs", s2)
	return o1, o2, err
}

// parseFixed parses a spec that must have a fixed f (not auto).
func parseFixed(f *flags, flagName, s string) (objectives.Objective, error) {
	o, err := objectives.Parse(s)
	if err != nil {
		return o, f.usagef("%s: %v", flagName, err)
	}
	if o.Adaptive() {
		return o, f.usagef("%s: %s is chosen during training and has no fixed rate; name a concrete objective", flagName, o)
	}
	if err := theory.Covers(o); err != nil {
		return o, f.usagef("%s: %v", flagName, err)
	}
	return o, nil
}

// noiseFlags are the flags shared by rate and crossover.
type noiseFlags struct {
	contexts  *string
	noise     *float64
	posterior *bool
	u         *string
	limit     *int
}

func addNoiseFlags(f *flags) noiseFlags {
	return noiseFlags{
		contexts:  f.String("contexts", "", "JSONL `file` of contexts (format in 'selector theory -h')"),
		noise:     f.Float64("noise", 0, "label-noise rate E in [0, 1]"),
		posterior: f.Bool("posterior", false, "split unknown truths by the Bayes posterior π(q_ỹ) at noise E (needs V)"),
		u:         f.String("u", "model", "true-token distribution for noisy labels: model or uniform"),
		limit:     f.Int("limit", 0, "read at most N contexts (0: all)"),
	}
}

func (nf noiseFlags) load(f *flags) ([]theory.Context, theory.NoiseModel, error) {
	var nm theory.NoiseModel
	if *nf.contexts == "" {
		return nil, nm, f.usagef("--contexts FILE is required")
	}
	if !(*nf.noise >= 0 && *nf.noise <= 1) {
		return nil, nm, f.usagef("--noise: %v is not in [0, 1]", *nf.noise)
	}
	nm.E, nm.Posterior = *nf.noise, *nf.posterior
	switch *nf.u {
	case "model":
		nm.U = theory.UModel
	case "uniform":
		nm.U = theory.UUniform
	default:
		return nil, nm, f.usagef("--u: %q is not model or uniform", *nf.u)
	}
	fh, err := os.Open(*nf.contexts)
	if err != nil {
		return nil, nm, err
	}
	defer fh.Close()
	ctxs, err := theory.ReadContexts(fh, *nf.contexts, *nf.limit)
	return ctxs, nm, err
}

type estimateJSON struct {
	Objective  string   `json:"objective"`
	Class      string   `json:"class"`
	Scope      string   `json:"beyond_paper,omitempty"` // where the paper's analysis does not cover it (theory.Scope)
	Rate       float64  `json:"rate"`
	Clean      *float64 `json:"clean_rate"` // null when the sample has no clean context
	Noisy      *float64 `json:"noisy_rate"` // null when the sample has no noisy context
	Normalised float64  `json:"normalised_rate"`
	GradNorm   float64  `json:"grad_norm"`
	Kept       int      `json:"kept_contexts"`
	Observed   *float64 `json:"observed_rate"`
}

func toEstimateJSON(est theory.Estimate) estimateJSON {
	o := objectives.MustParse(est.Objective)
	return estimateJSON{Objective: est.Objective, Class: o.Class().String(), Scope: theory.Scope(o), Rate: est.Rate, Clean: num(est.Clean), Noisy: num(est.Noisy),
		Normalised: est.Normalised, GradNorm: est.GradNorm, Kept: est.Kept, Observed: num(est.Observed)}
}

type noiseJSON struct {
	Noise      float64 `json:"noise"`
	Posterior  bool    `json:"posterior"`
	U          string  `json:"u"`
	Contexts   int     `json:"contexts"`
	RemainderB bool    `json:"remainder_bucket"` // some contexts are top-k lists with an unlisted remainder
	// Lumped counts the top-k contexts without V, whose remainder is one
	// outcome; the others spread it over the V − k unlisted tokens.
	Lumped int `json:"remainder_lumped"`
}

// newNoiseJSON describes the noise model and the sample.
func newNoiseJSON(nm theory.NoiseModel, ctxs []theory.Context) noiseJSON {
	n := noiseJSON{Noise: nm.E, Posterior: nm.Posterior, U: nm.U.String(), Contexts: len(ctxs)}
	for _, c := range ctxs {
		if c.Bucket {
			n.RemainderB = true
			if c.V() == 0 {
				n.Lumped++
			}
		}
	}
	return n
}

type rateJSON struct {
	noiseJSON
	Ranking []estimateJSON `json:"ranking"`
}

func theoryRate(e *env, args []string) error {
	f := newFlags(e, "theory rate", "selector theory rate --objective SPEC[,SPEC...] --contexts FILE [--noise E] [--posterior] [--u model|uniform] [--json]",
		`Estimates each objective's risk-reduction rate over a sample of contexts and
ranks the objectives, fastest first. For each: the expected rate under the
noise model, its clean part (every label right) and noisy part (every label
wrong), the step-normalised rate Ṙ/‖∇L‖ (risk reduction per unit step length),
and, when every context gives its true label, the observed rate. The
trainers' gated and anchored objectives (eaft-α, eaft-axolotl-α-k, deft,
deft-cayley, asft-α) rank beside the paper's, each with a note on what its
rate stands on.`)
	asJSON := f.Bool("json", false, "print JSON")
	specs := f.String("objective", "nll,p,GeneralFamily-10,OnlyTopLogP-0.2", "comma-separated objective `specs`")
	nf := addNoiseFlags(f)
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	var objs []objectives.Objective
	for _, s := range splitList(*specs) {
		o, err := parseFixed(f, "--objective", s)
		if err != nil {
			return err
		}
		objs = append(objs, o)
	}
	if len(objs) == 0 {
		return f.usagef("--objective: name at least one objective")
	}
	ctxs, nm, err := nf.load(f)
	if err != nil {
		return err
	}
	ranked, err := theory.Rank(objs, ctxs, nm)
	if err != nil {
		return err
	}
	out := rateJSON{noiseJSON: newNoiseJSON(nm, ctxs)}
	for _, est := range ranked {
		out.Ranking = append(out.Ranking, toEstimateJSON(est))
	}
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	printNoiseHeader(e, out.noiseJSON)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tOBJECTIVE\tCLASS\tRATE\tCLEAN\tNOISY\tRATE/‖∇L‖\tOBSERVED")
	for i, r := range out.Ranking {
		obs := deref(r.Observed)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, r.Objective, r.Class, fmtG(r.Rate), fmtG(deref(r.Clean)), fmtG(deref(r.Noisy)), fmtG(r.Normalised), fmtG(obs))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printScopes(e, out.Ranking...)
	return nil
}

// printScopes notes, for each objective the paper's analysis does not
// cover, what the rate stands on.
func printScopes(e *env, ests ...estimateJSON) {
	for _, r := range ests {
		if r.Scope != "" {
			fmt.Fprintf(e.stdout, "note: %s: %s\n", r.Objective, r.Scope)
		}
	}
}

// deref is *x, or NaN for nil.
func deref(x *float64) float64 {
	if x == nil {
		return math.NaN()
	}
	return *x
}

func printNoiseHeader(e *env, n noiseJSON) {
	pi := "π = 1 − E"
	if n.Posterior {
		pi = "π = Bayes posterior"
	}
	fmt.Fprintf(e.stdout, "%d contexts, noise E = %g (%s, u = %s)\n", n.Contexts, n.Noise, pi, n.U)
	switch {
	case n.Lumped > 0:
		fmt.Fprintf(e.stdout, "note: top-k contexts; %d without a vocabulary size treat the unlisted mass as one outcome, which overstates ‖q‖² (and deft's Σq²) by at most its square; give \"vocab\" to spread it\n", n.Lumped)
	case n.RemainderB:
		fmt.Fprintln(e.stdout, "note: top-k contexts; the unlisted mass is spread evenly over the unlisted tokens")
	}
}

type crossoverJSON struct {
	noiseJSON
	Objective      estimateJSON `json:"objective"`
	Vs             estimateJSON `json:"vs"`
	A              *float64     `json:"clean_part"`
	B              *float64     `json:"noisy_part"`
	Delta          float64      `json:"delta"`
	Winner         string       `json:"winner"`
	Crossover      *float64     `json:"crossover_noise"`
	ObjectiveAbove *bool        `json:"objective_wins_above"`
}

func theoryCrossover(e *env, args []string) error {
	f := newFlags(e, "theory crossover", "selector theory crossover --objective SPEC --vs SPEC --contexts FILE [--noise E] [--posterior] [--u model|uniform] [--json]",
		`Splits Δ = Ṙ[objective] − Ṙ[vs] over the sample into its clean part A
(its mean over the contexts whose label is right) and noisy part B (over
those whose label is wrong; with unknown truths, see --posterior), so that
Δ(E) = (1 − E)·A + E·B, and reports the noise rate E* = A/(A − B) at which
the faster objective changes. At the model-strong end a prior-leaning
objective has A < 0 < B and wins only above E* (paper §6).`)
	asJSON := f.Bool("json", false, "print JSON")
	o1s := f.String("objective", "", "the first objective `spec`")
	o2s := f.String("vs", "nll", "the objective `spec` to compare against")
	nf := addNoiseFlags(f)
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	o1, o2, err := parsePair(f, *o1s, *o2s)
	if err != nil {
		return err
	}
	ctxs, nm, err := nf.load(f)
	if err != nil {
		return err
	}
	cmp, err := theory.Compare(o1, o2, ctxs, nm)
	if err != nil {
		return err
	}
	out := crossoverJSON{
		noiseJSON: newNoiseJSON(nm, ctxs),
		Objective: toEstimateJSON(cmp.First), Vs: toEstimateJSON(cmp.Second),
		A: num(cmp.A), B: num(cmp.B), Delta: cmp.Delta, Winner: winner(cmp.Delta, o1, o2), Crossover: num(cmp.Crossover),
	}
	if out.Crossover != nil {
		above := cmp.FirstWinsAbove
		out.ObjectiveAbove = &above
	}
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	printNoiseHeader(e, out.noiseJSON)
	printScopes(e, out.Objective, out.Vs)
	fmt.Fprintf(e.stdout, "Δ = Ṙ[%s] − Ṙ[%s] = (1 − E)·A + E·B\n", o1, o2)
	fmt.Fprintf(e.stdout, "  A (clean part) = %.6g\n  B (noisy part) = %.6g\n  Δ at E = %g   = %.6g → faster: %s\n", cmp.A, cmp.B, nm.E, cmp.Delta, out.Winner)
	if out.Crossover == nil {
		fmt.Fprintf(e.stdout, "  no crossover in [0, 1]: the same objective is faster at every noise rate\n")
		return nil
	}
	lo, hi := o2, o1
	if !cmp.FirstWinsAbove {
		lo, hi = o1, o2
	}
	fmt.Fprintf(e.stdout, "  crossover E* = %.4g: %s is faster below it, %s above it\n", cmp.Crossover, lo, hi)
	return nil
}
