package objectives

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The objectives of this file are the token-level losses that LLaMA-Factory,
// Axolotl, the DEFT fork of the paper's code and ASFT ship, computed exactly
// as their code computes them (file and commit beside each constant, and in
// the tests). None is a function of the target's probability p alone:
//
//   - eaft-α, eaft-axolotl-α-k and deft scale NLL-like losses by a gate read
//     from the token's whole next-token distribution (an entropy of its top
//     k, or its collision probability Σ q²). The gate is detached, so the
//     logit gradient keeps NLL's direction, q − e_y, with a per-token scale.
//   - deft-cayley's gate reads p and the batch's mean p.
//   - asft-α adds a KL anchor to a frozen reference model, whose gradient
//     α·(q − r) points away from e_y's direction.
//
// Batch evaluates the p-only objectives (and deft-cayley); BatchDist every
// objective, given each token's gate statistic (DistStat) and KL to the
// reference (KL).

// Form says what an objective's per-token loss reads besides the target's p.
type Form int

// The forms. FormInvalid is the zero Form.
const (
	FormInvalid Form = iota
	// FormP: a function f of p alone: the paper's family and its
	// relatives, and auto and auto-theory, which resolve to them.
	FormP
	// FormBatch: p and the batch's mean p (deft-cayley). Batch evaluates it.
	FormBatch
	// FormDist: p and a detached gate from the token's whole next-token
	// distribution (eaft-α, eaft-axolotl-α-k, deft). BatchDist evaluates it
	// from each token's DistStat.
	FormDist
	// FormAnchored: p, the distribution and a frozen reference model's
	// distribution (asft-α). BatchDist evaluates it from each token's KL to
	// the reference; its gradient has an anchor term.
	FormAnchored
)

func (f Form) String() string {
	switch f {
	case FormP:
		return "function of p"
	case FormBatch:
		return "function of p and the batch's mean p"
	case FormDist:
		return "function of p and the next-token distribution"
	case FormAnchored:
		return "function of the next-token distribution and a reference model's"
	}
	return "invalid"
}

// Form returns what o's per-token loss reads.
func (o Objective) Form() Form {
	switch o.kind {
	case KindInvalid:
		return FormInvalid
	case KindDEFTCayley:
		return FormBatch
	case KindEAFT, KindEAFTAxolotl, KindDEFT:
		return FormDist
	case KindASFT:
		return FormAnchored
	}
	return FormP
}

// OfP reports whether o is a fixed function of p alone, which is what f(p),
// s(p), W(p), the class of the paper's Definition 3.3, and the paper's
// theory need. It is false for adaptive objectives and for every Form other
// than FormP.
func (o Objective) OfP() bool { return o.Form() == FormP && !o.Adaptive() }

// ErrNotP is wrapped by the errors of code that needs a function of p alone
// (see OfP) and is given another objective.
var ErrNotP = errors.New("not a function of p alone")

// Constants of the trainers' code. Each is cited by file and commit.
const (
	// EAFTTopK is k of LLaMA-Factory's EAFT: the gate reads the entropy of
	// the softmax of the 20 largest logits (torch.topk(source_detached,
	// k=20) in _eaft_cross_entropy, src/llamafactory/train/trainer_utils.py,
	// hiyouga/LLaMA-Factory ff6d4d1; the same in the EAFT authors' ms-swift
	// fork, swift/trainers/utils.py, ymxyll/ms-swift-EAFT 7683b1e).
	EAFTTopK = 20
	// EAFTNorm is what LLaMA-Factory divides that entropy by
	// (entropy_approx / 3.0, same file; about log 20 = 2.996, the largest
	// entropy of 20 outcomes).
	EAFTNorm = 3.0
	// EAFTAxolotlK is Axolotl's default eaft_k (src/axolotl/utils/schemas/
	// config.py, axolotl-ai-cloud/axolotl 067b021).
	EAFTAxolotlK = 20
	// eaftAxolotlEps is added inside Axolotl's log: its entropy is
	// −Σ π·log(π + 1e-10) (src/axolotl/monkeypatch/loss/eaft.py, 067b021).
	eaftAxolotlEps = 1e-10
	// deftEps is added to DEFT's exponent in the denominator:
	// −(exp(α·log p) − 1)/(α + 1e-6) (main_verl/trainer/fsdp_sft_trainer.py,
	// luludus/DEFT bbe7896).
	deftEps = 1e-6
	// cayleyEps is Cayley_Trans's constant, in three places (same file).
	cayleyEps = 1e-8
	// verlEps is added to the token count by the DEFT fork's verl trainer:
	// torch.sum(loss) / (valid_token_this_rank + 1e-8) (same file).
	verlEps = 1e-8
)

// CheckVocab reports whether o can run on a vocabulary of v tokens.
// LLaMA-Factory's EAFT calls torch.topk with k = 20, which fails on fewer
// than 20 logits; Axolotl's takes min(k, V) and so runs on any vocabulary.
func (o Objective) CheckVocab(v int) error {
	if o.kind == KindEAFT && v < EAFTTopK {
		return fmt.Errorf("objectives: %v reads the top %d logits, as LLaMA-Factory's EAFT does (torch.topk(k=20) fails on fewer), and this vocabulary has %d tokens; use eaft-axolotl-%v-%d, Axolotl's form, which takes min(k, V) and does not divide the entropy by 3",
			o, EAFTTopK, v, fmtNum(o.param), v)
	}
	return nil
}

// DistStat returns the statistic of one token's next-token distribution that
// o's detached gate reads. lq holds the log-probabilities of the whole
// vocabulary (the log-softmax of the logits):
//
//	eaft-α            H = −Σ_{i ∈ top 20} π_i·log π_i,          π = softmax of the 20 largest
//	eaft-axolotl-α-k  H = −Σ_{i ∈ top k′} π_i·log(π_i + 1e-10), k′ = min(k, V)
//	deft              c = Σ_k q_k², the collision probability (e^{−H₂}, H₂ the Rényi-2 entropy)
//
// It is NaN for objectives without such a gate and for eaft-α on fewer than
// 20 tokens (see CheckVocab).
func (o Objective) DistStat(lq []float64) float64 {
	switch o.kind {
	case KindEAFT:
		if len(lq) < EAFTTopK {
			return math.NaN()
		}
		return topKEntropy(lq, EAFTTopK, 0)
	case KindEAFTAxolotl:
		return topKEntropy(lq, min(o.k, len(lq)), eaftAxolotlEps)
	case KindDEFT:
		var c float64
		for _, l := range lq {
			c += math.Exp(2 * l)
		}
		return c
	}
	return math.NaN()
}

// topKEntropy is the entropy of the softmax of the k largest values of lq,
// −Σ π·log(π + eps); with eps = 0 the log is taken exactly as π's
// log-softmax, as LLaMA-Factory does (log_probs_topk = topk − logsumexp).
func topKEntropy(lq []float64, k int, eps float64) float64 {
	if k < 1 {
		return math.NaN()
	}
	top := largest(lq, k)
	mx := top[0]
	if math.IsInf(mx, -1) {
		return math.NaN()
	}
	var z float64
	for _, v := range top {
		z += math.Exp(v - mx)
	}
	lse := mx + math.Log(z)
	var h float64
	for _, v := range top {
		lp := v - lse
		pi := math.Exp(lp)
		if eps == 0 {
			if pi > 0 {
				h -= pi * lp
			}
		} else {
			h -= pi * math.Log(pi+eps)
		}
	}
	return h
}

// largest returns the k largest values of xs in decreasing order (ties in
// any order: they do not change the entropy).
func largest(xs []float64, k int) []float64 {
	top := make([]float64, 0, k)
	for _, x := range xs {
		if len(top) == k && !(x > top[k-1]) {
			continue
		}
		if len(top) < k {
			top = append(top, x)
		} else {
			top[k-1] = x
		}
		for i := len(top) - 1; i > 0 && top[i] > top[i-1]; i-- {
			top[i], top[i-1] = top[i-1], top[i]
		}
	}
	return top
}

// KL returns KL(r ‖ q) = Σ_k r_k·(log r_k − log q_k) for the reference's
// log-probabilities lr and the model's lq over one vocabulary, with
// 0·log 0 = 0. This is ASFT's anchor per token: F.kl_div(log_softmax(policy),
// softmax(ref), reduction="none").sum(-1) in LLaMA-Factory's _kl_divergence
// (src/llamafactory/train/trainer_utils.py, ff6d4d1) and in the ASFT
// authors' train_v2.py (zhuchichi56/ASFT 6f6f51c): the forward KL from the
// reference, whatever the paper's prose calls it.
func KL(lr, lq []float64) float64 {
	var kl float64
	for i, l := range lr {
		if math.IsInf(l, -1) {
			continue
		}
		kl += math.Exp(l) * (l - lq[i])
	}
	return kl
}

// gated returns the per-token loss and gradient scale of a FormDist
// objective at log p lp with gate statistic st (see DistStat), and the gate
// itself: the factor on −log p for EAFT, the exponent c for DEFT.
func (o Objective) gated(lp, st float64) (f, s, gate float64) {
	switch o.kind {
	case KindEAFT, KindEAFTAxolotl:
		h := st
		if o.kind == KindEAFT {
			h /= EAFTNorm
		}
		w := math.Pow(h, o.param)
		return w * -lp, w, w
	case KindDEFT:
		return generalised(lp, st, deftEps)
	}
	return math.NaN(), math.NaN(), math.NaN()
}

// generalised is (1 − p^a)/(a + eps) with a detached: the loss, its scale
// a·p^a/(a + eps), and a.
func generalised(lp, a, eps float64) (f, s, gate float64) {
	return -math.Expm1(a*lp) / (a + eps), a * math.Exp(a*lp) / (a + eps), a
}

// cayleyExponent is Cayley_Trans's detached exponent at p for the batch's
// mean p m (main_verl/trainer/fsdp_sft_trainer.py, luludus/DEFT bbe7896):
//
//	floor = m/2, d = 1 − p + 1e-8, local = (1 − d)/(1 + d + 1e-8),
//	a = clamp(floor + (1 − floor)·local, 0.001, 1)
func cayleyExponent(p, m float64) float64 {
	floor := 0.5 * m
	d := 1 - p + cayleyEps
	local := (1 - d) / (1 + d + cayleyEps)
	return math.Min(math.Max(floor+(1-floor)*local, 0.001), 1)
}

// TokenScale returns one token's gradient scale s, the coefficient of
// softmax(z) − e_y in the logit gradient of its loss, before the batch's
// averaging, at log p lp with the detached gate read from gate:
//
//	FormP           s_f(p) (SLog); gate is not read
//	FormDist        the gated scale at the gate statistic gate (DistStat)
//	deft-cayley     a·p^a/(a + 1e-8), a the exponent at p and the batch's mean p gate
//	FormAnchored    the DFT term's p; the anchor's coefficient is separate (BatchDist)
//
// It is the per-token factor BatchDist and Batch divide by the batch's
// count, which the paper's theory leaves out. NaN for adaptive and invalid
// objectives, and for a NaN gate where one is read.
func (o Objective) TokenScale(lp, gate float64) float64 {
	if math.IsNaN(lp) {
		return math.NaN()
	}
	lp = math.Min(lp, 0)
	switch o.Form() {
	case FormP:
		return o.SLog(lp)
	case FormDist:
		if math.IsNaN(gate) {
			return math.NaN()
		}
		_, s, _ := o.gated(lp, gate)
		return s
	case FormBatch:
		_, s, _, err := o.BatchToken(lp, gate)
		if err != nil {
			return math.NaN()
		}
		return s
	case FormAnchored:
		return math.Exp(lp)
	}
	return math.NaN()
}

// DistBatch is what BatchDist reads of a batch of target tokens.
type DistBatch struct {
	LogP []float64 // log p of each token's target
	Mask []bool    // which tokens are scored; nil scores every token
	Stat []float64 // FormDist: each token's DistStat (read where scored)
	KL   []float64 // FormAnchored: each token's KL(r ‖ q) (read where scored)
}

// BatchDist evaluates o on a batch of target tokens, for every Form. It
// writes into loss[t] the unnormalised per-token loss (0 for tokens not
// kept), and into scale[t] and anchor[t] the coefficients of
//
//	∂Loss/∂z_t = scale[t]·(softmax(z_t) − e_{y_t}) + anchor[t]·(softmax(z_t) − r_t)
//
// where r_t is the reference model's distribution; anchor is zero except for
// FormAnchored. Loss is Σ_t loss[t] over kept tokens divided by their number,
// the mean every trainer's code takes (LLaMA-Factory and Axolotl without
// num_items_in_batch, ASFT's, the DEFT fork's, which adds 1e-8 to the
// count). Every gate is detached, as in that code: it scales the gradient
// but is not differentiated. Any output slice may be nil.
//
// FormP objectives are evaluated by Batch, with the same numbers; Stat and
// KL are then not read.
//
// Errors: those of Batch; a Stat or KL slice missing or of another length
// where the form needs it; a NaN statistic or KL at a scored token.
func (o Objective) BatchDist(in DistBatch, loss, scale, anchor []float64) (BatchStats, error) {
	var st BatchStats
	n := len(in.LogP)
	if anchor != nil && len(anchor) != n {
		return st, fmt.Errorf("objectives: BatchDist lengths disagree: logp %d, anchor %d", n, len(anchor))
	}
	if anchor != nil {
		clear(anchor)
	}
	form := o.Form()
	if form == FormP || form == FormBatch {
		return o.Batch(in.LogP, in.Mask, loss, scale)
	}
	if !o.Valid() {
		return st, fmt.Errorf("objectives: BatchDist on an invalid objective")
	}
	if (in.Mask != nil && len(in.Mask) != n) || (loss != nil && len(loss) != n) || (scale != nil && len(scale) != n) {
		return st, fmt.Errorf("objectives: BatchDist lengths disagree: logp %d, mask %d, loss %d, scale %d", n, len(in.Mask), len(loss), len(scale))
	}
	if form == FormDist && len(in.Stat) != n {
		return st, fmt.Errorf("objectives: %v reads the next-token distribution: need a gate statistic (DistStat) per token, have %d for %d tokens", o, len(in.Stat), n)
	}
	if form == FormAnchored && len(in.KL) != n {
		return st, fmt.Errorf("objectives: %v anchors to a reference model: need KL(reference ‖ model) per token, have %d for %d tokens", o, len(in.KL), n)
	}
	var sumF, sumP, sumGate, sumKL float64
	for t, lp := range in.LogP {
		if math.IsNaN(lp) || lp > logpSlack {
			return st, fmt.Errorf("objectives: token %d: log-probability %v is not in [−∞, 0]", t, lp)
		}
		lp = math.Min(lp, 0)
		var f, s, a float64
		if in.Mask == nil || in.Mask[t] {
			st.Scored++
			p := math.Exp(lp)
			sumP += p
			switch form {
			case FormDist:
				if math.IsNaN(in.Stat[t]) {
					return st, fmt.Errorf("objectives: token %d: gate statistic of %v is NaN", t, o)
				}
				var g float64
				f, s, g = o.gated(lp, in.Stat[t])
				sumGate += g
			case FormAnchored:
				kl := in.KL[t]
				if math.IsNaN(kl) {
					return st, fmt.Errorf("objectives: token %d: KL to the reference is NaN", t)
				}
				// −sg(p)·log p + α·KL: the DFT term's weight p is detached.
				f, s, a = -p*lp+o.param*kl, p, o.param
				if math.IsInf(lp, -1) {
					f = o.param * kl // p·log p → 0
				}
				sumGate += p
				sumKL += kl
			}
			sumF += f
		}
		if loss != nil {
			loss[t] = f
		}
		if scale != nil {
			scale[t] = s
		}
		if anchor != nil {
			anchor[t] = a
		}
	}
	st.Kept = st.Scored
	if st.Scored > 0 {
		k := float64(st.Scored)
		st.MeanP = sumP / k
		st.MeanGate = sumGate / k
		st.MeanKL = sumKL / k
		den := k
		if o.kind == KindDEFT {
			den += verlEps
		}
		st.Loss = sumF / den
		inv := 1 / den
		for _, xs := range [][]float64{scale, anchor} {
			for t := range xs {
				xs[t] *= inv
			}
		}
	}
	return st, nil
}

// fmtNum formats a parameter as specs spell it.
func fmtNum(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// TokenValue is one token's loss and gradient coefficients (see BatchDist).
type TokenValue struct {
	P      float64 // the target's probability
	Stat   float64 // the gate's statistic (DistStat); NaN when o has none
	Gate   float64 // the gate (EAFT's factor, DEFT's exponent, ASFT's p); NaN for FormP
	F      float64 // the loss
	Scale  float64 // coefficient of softmax(z) − e_y
	Anchor float64 // coefficient of softmax(z) − r
}

// Token evaluates o on one token whose model distribution has
// log-probabilities lq and target y. lr is the reference model's
// distribution, read by FormAnchored objectives only (nil otherwise). It is
// BatchDist on a batch of one token.
//
// Errors: adaptive objectives, deft-cayley (its gate reads the batch's mean
// p), a target out of range, lr missing or of another length where needed,
// and BatchDist's.
func (o Objective) Token(lq, lr []float64, y int) (TokenValue, error) {
	if o.Adaptive() {
		return TokenValue{}, ErrAdaptive
	}
	if o.Form() == FormBatch {
		return TokenValue{}, fmt.Errorf("objectives: %v reads the batch's mean p: evaluate it on a batch", o)
	}
	if y < 0 || y >= len(lq) {
		return TokenValue{}, fmt.Errorf("objectives: target %d outside a vocabulary of %d", y, len(lq))
	}
	if err := o.CheckVocab(len(lq)); err != nil {
		return TokenValue{}, err
	}
	in := DistBatch{LogP: []float64{lq[y]}}
	tv := TokenValue{P: math.Exp(lq[y]), Stat: math.NaN(), Gate: math.NaN()}
	switch o.Form() {
	case FormDist:
		tv.Stat = o.DistStat(lq)
		in.Stat = []float64{tv.Stat}
	case FormAnchored:
		if len(lr) != len(lq) {
			return tv, fmt.Errorf("objectives: %v needs the reference's distribution over the same %d tokens, have %d", o, len(lq), len(lr))
		}
		in.KL = []float64{KL(lr, lq)}
	}
	var f, s, a [1]float64
	st, err := o.BatchDist(in, f[:], s[:], a[:])
	if err != nil {
		return tv, err
	}
	tv.F, tv.Scale, tv.Anchor = f[0], s[0], a[0]
	if o.Form() != FormP {
		tv.Gate = st.MeanGate
	}
	return tv, nil
}
