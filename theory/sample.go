package theory

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/capsel/capsel/objectives"
)

// Unknown marks a context whose true label y* is not known.
const Unknown = -1

// Context is one next-token prediction in a sample.
//
// Q holds the model's probabilities. For a full distribution it sums to 1 and
// Vocab may be left 0 (it is then len(Q)). For a top-k list, Bucket is true
// and the last entry of Q is the mass m of all unlisted tokens. With the
// vocabulary size V known, that mass is spread evenly over the V − k
// unlisted tokens (each m/(V − k)); without it, it is treated as a single
// outcome, which overstates ‖q‖² by up to m² and makes a diffuse model look
// confident. A truth index pointing at the bucket means "some unlisted
// token". Reports say which approximation was used.
//
// The listed tokens of a top-k list are the model's most likely tokens,
// and the label beside them when the list lacks it. TopK says how many of
// them are the list; it matters only to gates that read the model's top
// tokens (EAFT's entropy of its top 20), which are exact when TopK is at
// least the gate's k. Left 0, the label counts as an addition when it is
// the last listed token and no likelier than any other, as NewTopK's
// callers append it.
type Context struct {
	Q      []float64
	Label  int  // index of the training label ỹ in Q
	Truth  int  // index of the true label y* in Q, or Unknown
	Bucket bool // Q's last entry is the unlisted remainder of a top-k list
	Vocab  int  // vocabulary size V; needed with Bucket for the uniform u and the posterior π
	TopK   int  // with Bucket: how many listed tokens are the model's top list (0: see above)
}

// NewTopK builds a context from the probabilities of listed tokens (which
// must include the label) and appends the unlisted mass 1 − Σ listed as a
// remainder bucket when it is positive. truth is an index into listed,
// Unknown, or len(listed) for "some unlisted token".
func NewTopK(listed []float64, label, truth, vocab int) Context {
	q := append([]float64(nil), listed...)
	var s float64
	for _, x := range listed {
		s += x
	}
	c := Context{Q: q, Label: label, Truth: truth, Vocab: vocab}
	if rest := 1 - s; rest > 1e-12 || truth == len(listed) {
		c.Q = append(c.Q, math.Max(rest, 0))
		c.Bucket = true
	}
	return c
}

// V returns the vocabulary size: Vocab when set, otherwise len(Q) for a full
// distribution and 0 (unknown) for a top-k list.
func (c Context) V() int {
	if c.Vocab > 0 {
		return c.Vocab
	}
	if c.Bucket {
		return 0
	}
	return len(c.Q)
}

// Validate checks that c is usable: probabilities in [0, 1] that sum to 1
// (within 1e-3), indices in range, a label that is a listed token.
func (c Context) Validate() error {
	if len(c.Q) < 2 {
		return errors.New("need at least two outcomes in q")
	}
	var s float64
	for i, x := range c.Q {
		if !(x >= 0 && x <= 1) {
			return fmt.Errorf("q[%d] = %v is not a probability", i, x)
		}
		s += x
	}
	if math.Abs(s-1) > 1e-3 {
		return fmt.Errorf("q sums to %v, not 1", s)
	}
	last := len(c.Q)
	if c.Bucket {
		last-- // the label must be a listed token, not the bucket
	}
	if c.Label < 0 || c.Label >= last {
		return fmt.Errorf("label index %d out of range [0, %d)", c.Label, last)
	}
	if c.Truth != Unknown && (c.Truth < 0 || c.Truth >= len(c.Q)) {
		return fmt.Errorf("truth index %d out of range [0, %d)", c.Truth, len(c.Q))
	}
	if c.Vocab > 0 && c.Vocab < last {
		return fmt.Errorf("vocab %d is smaller than the %d listed tokens", c.Vocab, last)
	}
	if c.TopK < 0 || (c.Bucket && c.TopK > last) {
		return fmt.Errorf("top-k size %d outside [0, %d], the number of listed tokens", c.TopK, last)
	}
	return nil
}

// topCount is how many listed tokens of a top-k context are known to be
// the model's most likely tokens (see TopK).
func (c Context) topCount() int {
	listed := len(c.Q) - 1
	if c.TopK > 0 {
		return c.TopK
	}
	if c.Label != listed-1 {
		return listed
	}
	for _, x := range c.Q[:listed-1] {
		if x < c.Q[c.Label] {
			return listed // the label outranks a token of the list, so it is in it
		}
	}
	return listed - 1
}

// TrueDist says what the true token is believed to be when the label is noisy.
type TrueDist int

const (
	// UModel takes the model's own q renormalised over k ≠ ỹ: the Bayes
	// posterior of y* given a noisy label when noise replaces y* uniformly.
	UModel TrueDist = iota
	// UUniform spreads the true token evenly over the other V − 1 tokens.
	// Because Σ_k q_k·⟨e_k − q, e_ỹ − q⟩ = 0, each context's noisy part is then
	// exactly −1/(V − 1) of its clean part, so with the flat split every pair
	// of objectives crosses at E* = (V − 1)/V, whatever q is: the model-weak
	// picture. Only UModel lets a model-strong q favour prior-leaning
	// objectives.
	UUniform
)

func (u TrueDist) String() string {
	if u == UUniform {
		return "uniform"
	}
	return "model"
}

// NoiseModel says how labels are corrupted and how a sample whose true
// labels are unknown is split into its clean and noisy parts.
type NoiseModel struct {
	// E is the label-noise rate, the probability that ỹ ≠ y*: the rate at
	// which Estimate.Rate and Comparison.Delta are evaluated, and, with
	// Posterior, the noise rate the sample itself is believed to have.
	E float64
	// Posterior splits a sample of unknown truths by the Bayes posterior
	// that each label is clean, given the model's belief q_ỹ, under uniform
	// replacement noise at rate E (it needs V):
	//
	//	π(x) = (1 − E)·q_ỹ / ((1 − E)·q_ỹ + E·(1 − q_ỹ)/(V − 1))
	//
	// Without it the split is flat: every context counts fully in both parts
	// (see EstimateRate).
	Posterior bool
	// U is the distribution of y* given a noisy label.
	U TrueDist
}

// Validate checks the noise rate.
func (nm NoiseModel) Validate() error {
	if !(nm.E >= 0 && nm.E <= 1) {
		return fmt.Errorf("noise rate %v outside [0, 1]", nm.E)
	}
	return nil
}

// weights returns a context's weights in the clean and the noisy part of a
// sample whose truths are unknown: the likelihood ratios π(x)/(1 − E) and
// (1 − π(x))/E, which stay finite at E = 0 and E = 1 (the limits). They are
// 1 and 1 for the flat split.
func (nm NoiseModel) weights(c Context) (clean, noisy float64) {
	if !nm.Posterior {
		return 1, 1
	}
	// Keep q_ỹ inside (0, 1) so that the limits E → 0 and E → 1 stay finite
	// for labels the model rules out or is certain of.
	ql := math.Min(math.Max(c.Q[c.Label], 1e-12), 1-1e-12)
	other := (1 - ql) / float64(c.V()-1) // P(this label | the label is noisy), uniform replacement
	den := (1-nm.E)*ql + nm.E*other
	return ql / den, other / den
}

// view is a context's outcomes with multiplicities: each listed token once,
// and the remainder bucket either as n tokens of mass m/n (V known) or as one
// outcome of mass m.
type view struct {
	q    []float64 // per-token probability of each outcome
	mult []float64 // how many tokens share it
	n2   float64   // ‖q‖² over the whole vocabulary
}

func viewOf(c Context) view {
	v := view{q: append([]float64(nil), c.Q...), mult: make([]float64, len(c.Q))}
	for i := range v.mult {
		v.mult[i] = 1
	}
	if c.Bucket && c.V() > 0 {
		b := len(c.Q) - 1
		if n := float64(c.V() - b); n >= 1 {
			v.q[b] /= n
			v.mult[b] = n
		}
	}
	for i, x := range v.q {
		v.n2 += v.mult[i] * x * x
	}
	return v
}

// scaleOf is the objective's per-token gradient scale s at the context's
// label, the one place where an objective meets a context (the rates below
// are per unit of it):
//
//   - a function f of p: s_f(q_ỹ), the paper's;
//   - a detached gate read from the distribution (eaft, eaft-axolotl,
//     deft): the gated scale with the gate evaluated on the context's q
//     (gateStat);
//   - deft-cayley: its scale at q_ỹ with the batch's mean p taken as
//     meanP, the sample's mean p of the labels;
//   - asft: DFT's s = p. Its KL anchor adds α·(q − r) to the logit
//     gradient, zero where the model is its own reference (r = q), which is
//     where this first-order rate is taken.
//
// The trainers divide every scale by the batch's token count; like the
// kept-token factor of thresholded objectives (EstimateRate), the theory
// leaves that constant out.
func scaleOf(o objectives.Objective, c Context, v view, meanP float64) (float64, error) {
	var gate float64
	switch o.Form() {
	case objectives.FormP, objectives.FormAnchored:
	case objectives.FormDist:
		g, err := gateStat(o, c, v)
		if err != nil {
			return math.NaN(), err
		}
		gate = g
	case objectives.FormBatch:
		gate = meanP
	default:
		return math.NaN(), fmt.Errorf("theory: %v has no fixed rate", o)
	}
	s := o.TokenScale(math.Log(v.q[c.Label]), gate)
	if math.IsNaN(s) {
		return s, fmt.Errorf("theory: %v has no gradient scale at q_ỹ = %v", o, v.q[c.Label])
	}
	return s, nil
}

// gateStat is the statistic of the context's distribution that o's
// detached gate reads (objectives.Objective.DistStat): for deft the
// collision probability Σ q² over the whole vocabulary, with a top-k
// context's remainder spread as for ‖q‖² (lumped when V is unknown); for
// eaft and eaft-axolotl the entropy of the model's top k tokens, exact from
// a full distribution or a top-k list of at least k tokens, and refused
// from a shorter list, whose missing tokens no spread can stand for.
func gateStat(o objectives.Objective, c Context, v view) (float64, error) {
	if o.Kind() == objectives.KindDEFT {
		return v.n2, nil
	}
	vocab := c.V()
	if vocab > 0 {
		if err := o.CheckVocab(vocab); err != nil {
			return math.NaN(), err
		}
	}
	k := o.TopK()
	if vocab > 0 {
		k = min(k, vocab)
	}
	listed := len(c.Q)
	if c.Bucket {
		listed--
		if top := c.topCount(); top < k {
			return math.NaN(), fmt.Errorf("%v reads the entropy of the model's %d most likely tokens, and this top-k context lists %d of them: give at least the top %d log-probs (vLLM and SGLang return up to 20 per token by default)", o, k, top, k)
		}
	}
	lq := make([]float64, max(listed, k))
	for i := range lq {
		lq[i] = math.Inf(-1) // tokens of zero probability beyond a short full distribution
		if i < listed {
			lq[i] = math.Log(c.Q[i])
		}
	}
	st := o.DistStat(lq)
	if math.IsNaN(st) {
		return st, fmt.Errorf("%v: cannot read its gate from %d tokens", o, listed)
	}
	return st, nil
}

// rate is Ṙ_f/s for one context, with y* a token of outcome truth.
func (v view) rate(label, truth int) float64 {
	d := 0.0
	if label == truth {
		d = 1
	}
	return v.q[truth] * (d - v.q[truth] - v.q[label] + v.n2)
}

// gradLen is ‖e_ỹ − q‖, the gradient's length per unit of s.
func (v view) gradLen(label int) float64 {
	return math.Sqrt(math.Max(1-2*v.q[label]+v.n2, 0))
}

// noisyRate returns Σ_{k≠ỹ} u_k·q_k·(‖q‖² − q_k − q_ỹ), the rate per unit
// of s when the label is wrong and y* ~ u, summed over every token of the
// vocabulary.
func (v view) noisyRate(label int, u TrueDist, vocab int) float64 {
	ql := v.q[label]
	var sum float64
	switch u {
	case UModel:
		if ql >= 1 {
			return 0
		}
		for k, qk := range v.q {
			if k != label {
				sum += v.mult[k] * qk / (1 - ql) * qk * (v.n2 - qk - ql)
			}
		}
	case UUniform:
		w := 1 / float64(vocab-1)
		for k, qk := range v.q {
			if k == label {
				continue
			}
			sum += w * v.mult[k] * qk * (v.n2 - qk - ql) // V is known here, so a bucket is spread
		}
	}
	return sum
}

// noisyRate is the noisy rate of o on a context whose scale needs no
// sample (every objective but deft-cayley).
func noisyRate(o objectives.Objective, c Context, u TrueDist) float64 {
	v := viewOf(c)
	s, err := scaleOf(o, c, v, math.NaN())
	if err != nil {
		return math.NaN()
	}
	return s * v.noisyRate(c.Label, u, c.V())
}

// Estimate is one objective's expected risk-reduction rate over a sample.
type Estimate struct {
	Objective string
	Contexts  int
	Kept      int // contexts inside a threshold objective's interval
	// Clean is the paper's clean part: the mean rate over the clean
	// contexts (ỹ = y*). Noisy is the noisy part: the mean rate over the
	// noisy contexts (ỹ ≠ y*). How a sample is split is EstimateRate's
	// business; a part with no context is NaN.
	Clean float64
	Noisy float64
	// CleanWeight and NoisyWeight are the total weights behind Clean and
	// Noisy: the numbers of clean and noisy contexts when every truth is
	// known.
	CleanWeight float64
	NoisyWeight float64
	// Rate is (1 − E)·Clean + E·Noisy at the noise model's E.
	Rate     float64
	GradNorm float64 // √(mean ‖∇_z L‖²)
	// Normalised is Rate/GradNorm: risk reduction per unit length of the
	// gradient step, which compares objectives at equal step length.
	Normalised float64
	// Observed is the mean rate with the contexts' own true labels, the
	// rate at the sample's own noise rate; NaN unless every context has one.
	Observed float64
}

// ErrEmpty is returned for an empty sample.
var ErrEmpty = errors.New("theory: no contexts")

// EstimateRate computes o's expected rate over the contexts under nm, for
// the loss L_f = mean f(q_ỹ) of the paper's theory, following the paper's
// definition (§6, App. E): Δ(E) = (1 − E)·A + E·B with A the mean over the
// clean contexts and B the mean over the noisy ones. Each part is estimated
// from the contexts that belong to it, so E* = |A|/(B − A) does not depend
// on how many noisy contexts the sample happens to hold.
//
// When every context has its true label, the split is exact: a context is
// clean when Truth = Label, and its noisy rate uses Truth as y*.
//
// When y* is unknown (real data; a sample that mixes known and unknown
// truths is treated as all unknown), Ṙ is linear in r = e_{y*}, so each
// context enters the clean part with y* = ỹ and the noisy part with y* ~ u,
// weighted by how likely it is to belong there:
//
//	A = Σ w_clean·Ṙ(ỹ) / Σ w_clean        B = Σ w_noisy·Ṙ(u) / Σ w_noisy
//
// The weights come from the noise model:
//
//   - With the Posterior, w_clean ∝ π(x) and w_noisy ∝ 1 − π(x), the Bayes
//     posterior at the sample's noise rate E: a label the model finds
//     unlikely is probably a noisy one. If the model is calibrated and the
//     noise replaces labels uniformly, A and B are consistent estimates of
//     the paper's parts whatever E the sample has (u = UModel is then the
//     posterior of y*). At E = 0 the noisy part is the limit E → 0, weighted
//     towards the labels the model finds least likely.
//   - Flat (the default), every context counts fully in both parts: A is
//     the mean rate as if every label were right, B as if every label were
//     wrong with y* ~ u. That is right for a sample of clean labels when u
//     describes where a wrong label would come from, and biased for noisy
//     data: a wrong label then enters A as if it were the truth, and E*
//     moves with the sample's own noise rate.
//
// For the objectives that are not functions of p each context's scale s
// is the objective's gate evaluated on that context's q (see the package
// doc and scaleOf); deft-cayley's batch mean p is the sample's mean p of
// the labels as given, in the clean and the noisy part alike, since that is
// what a trainer's batch computes. A gate that cannot be read from a
// context (EAFT's top 20 from a shorter top list) is an error naming the
// context.
//
// The paper's code averages a thresholded objective's loss over the tokens
// it keeps, which multiplies the gradient by n/n_kept. The estimate leaves
// that factor out, as the theory does: it is a constant rescaling of the
// step, which AdamW (the paper's optimiser) cancels, and with it the raw
// rates of thresholded objectives would balloon wherever they keep few
// tokens. The normalised rate does not depend on it either way.
func EstimateRate(o objectives.Objective, ctxs []Context, nm NoiseModel) (Estimate, error) {
	est := Estimate{Objective: o.String(), Contexts: len(ctxs), Observed: math.NaN()}
	if err := Covers(o); err != nil {
		return est, err
	}
	if len(ctxs) == 0 {
		return est, ErrEmpty
	}
	if err := nm.Validate(); err != nil {
		return est, fmt.Errorf("theory: %w", err)
	}
	known := true
	var meanP float64 // of the labels: what deft-cayley's batch mean stands for
	for i, c := range ctxs {
		if err := c.Validate(); err != nil {
			return est, fmt.Errorf("theory: context %d: %w", i, err)
		}
		if (nm.Posterior || nm.U == UUniform) && c.V() < 2 {
			return est, fmt.Errorf("theory: context %d: the %s needs the vocabulary size of a top-k context", i, needsV(nm))
		}
		known = known && c.Truth != Unknown
		meanP += c.Q[c.Label] / float64(len(ctxs))
	}
	var clean, noisy, g2, obs float64
	for i, c := range ctxs {
		if o.Keep(c.Q[c.Label]) {
			est.Kept++
		}
		v := viewOf(c)
		s, err := scaleOf(o, c, v, meanP)
		if err != nil {
			return est, fmt.Errorf("theory: context %d: %w", i, err)
		}
		cr := s * v.rate(c.Label, c.Label)
		switch {
		case known && c.Truth == c.Label:
			clean += cr
			est.CleanWeight++
			obs += cr
		case known:
			r := s * v.rate(c.Label, c.Truth)
			noisy += r
			est.NoisyWeight++
			obs += r
		default:
			wc, wn := nm.weights(c)
			clean += wc * cr
			noisy += wn * s * v.noisyRate(c.Label, nm.U, c.V())
			est.CleanWeight += wc
			est.NoisyWeight += wn
		}
		gn := s * v.gradLen(c.Label)
		g2 += gn * gn
	}
	n := float64(len(ctxs))
	est.Clean, est.Noisy = part(clean, est.CleanWeight), part(noisy, est.NoisyWeight)
	est.GradNorm = math.Sqrt(g2 / n)
	if known {
		est.Observed = obs / n
	}
	var err error
	if est.Rate, err = mix(nm.E, est.Clean, est.Noisy); err != nil {
		return est, err
	}
	if est.GradNorm > 0 {
		est.Normalised = est.Rate / est.GradNorm
	}
	return est, nil
}

// part is a weighted mean, NaN when nothing carries weight.
func part(sum, weight float64) float64 {
	if weight == 0 {
		return math.NaN()
	}
	return sum / weight
}

// mix returns (1 − e)·a + e·b, leaving out a part whose factor is 0; a part
// that is needed but missing (NaN) is an error.
func mix(e, a, b float64) (float64, error) {
	var r float64
	if e < 1 {
		if math.IsNaN(a) {
			return math.NaN(), errors.New("theory: the sample has no clean context (every known true label differs from its label), so the rate below noise 1 is undefined")
		}
		r += (1 - e) * a
	}
	if e > 0 {
		if math.IsNaN(b) {
			return math.NaN(), fmt.Errorf("theory: the sample has no noisy context (every known true label equals its label), so the rate at noise %g is undefined: add contexts with wrong labels, or leave the truths unknown", e)
		}
		r += e * b
	}
	return r, nil
}

func needsV(nm NoiseModel) string {
	if nm.Posterior {
		return "posterior clean probability"
	}
	return "uniform true-token distribution"
}

// Rank estimates every objective and orders them by Rate, fastest first
// (ties keep the given order).
func Rank(objs []objectives.Objective, ctxs []Context, nm NoiseModel) ([]Estimate, error) {
	out := make([]Estimate, 0, len(objs))
	for _, o := range objs {
		e, err := EstimateRate(o, ctxs, nm)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Rate > out[j].Rate })
	return out, nil
}

// Comparison is the difference Δ = Ṙ₁ − Ṙ₂ of two objectives over a sample.
type Comparison struct {
	First  Estimate
	Second Estimate
	// A and B are Δ's clean and noisy parts (EstimateRate says how a sample
	// is split), so that Δ(E) = (1 − E)·A + E·B. NaN when the sample has no
	// context of that part.
	A float64
	B float64
	// Delta is Δ at the noise model's rate E. Positive: First is faster.
	Delta float64
	// Crossover is the noise rate E* = A/(A − B) in [0, 1] at which Δ
	// changes sign, NaN when it keeps one sign on [0, 1] or a part is
	// missing.
	Crossover float64
	// FirstWinsAbove is true when First is faster for E > E* (A < 0 < B:
	// the paper's model-strong case for a prior-leaning First).
	FirstWinsAbove bool
}

// At returns Δ(e) = (1 − e)·A + e·B, the difference at another noise rate
// for the same split of the sample.
func (c Comparison) At(e float64) float64 { return (1-e)*c.A + e*c.B }

// Compare returns the comparison of o1 against o2 on the contexts.
func Compare(o1, o2 objectives.Objective, ctxs []Context, nm NoiseModel) (Comparison, error) {
	var cmp Comparison
	var err error
	if cmp.First, err = EstimateRate(o1, ctxs, nm); err != nil {
		return cmp, err
	}
	if cmp.Second, err = EstimateRate(o2, ctxs, nm); err != nil {
		return cmp, err
	}
	cmp.A = cmp.First.Clean - cmp.Second.Clean
	cmp.B = cmp.First.Noisy - cmp.Second.Noisy
	cmp.Delta = cmp.First.Rate - cmp.Second.Rate
	cmp.Crossover = math.NaN()
	if (cmp.A < 0 && cmp.B > 0) || (cmp.A > 0 && cmp.B < 0) {
		cmp.Crossover = cmp.A / (cmp.A - cmp.B)
		cmp.FirstWinsAbove = cmp.A < 0
	}
	return cmp, nil
}
