package objectives

import (
	"math"
	"strconv"
)

// Kind identifies one member of the objective family.
type Kind int

// The kinds of objective. The zero Kind is invalid.
const (
	KindInvalid        Kind = iota
	KindNLL                 // −log p
	KindP                   // 1 − p (the paper's "−p")
	KindGeneral             // (1 − p^α)/α
	KindOnlyTopP            // (1 − p)·1{p ≥ q}
	KindOnlyBottomP         // (1 − p)·1{p ≤ q}
	KindOnlyTopLogP         // −log p·1{p ≥ q}
	KindOnlyBottomLogP      // −log p·1{p ≤ q}
	KindDFT                 // −sg(p)·log p
	KindLog1mP              // log(1 − p), clamped
	KindFocal               // −(1 − p)^γ·log p
	KindBlend               // λ·(−log p) + (1 − λ)·(1 − p)
	KindAuto                // chosen before training from the base model's capability and label noise
	KindAutoTheory          // chosen during training from estimated risk-reduction rates
	// The objectives the trainers ship that are not functions of p alone
	// (see peers.go for how each trainer's code computes them).
	KindEAFT        // LLaMA-Factory's EAFT: (H₂₀/3)^α·(−log p), H₂₀ the top-20 entropy, detached
	KindEAFTAxolotl // Axolotl's EAFT: H_k^α·(−log p), the top-k entropy unnormalised, detached
	KindDEFT        // the DEFT fork's DEFT: (1 − p^c)/(c + 10⁻⁶), c = Σ q² detached
	KindDEFTCayley  // the DEFT fork's Cayley_Trans: (1 − p^a)/(a + 10⁻⁸), a from p and the batch's mean p
	KindASFT        // ASFT: −sg(p)·log p + α·KL(r ‖ q), r a frozen reference model's distribution
)

// Log1mPClamp is the smallest value of 1 − p that log1mp uses. Above
// p = 1 − Log1mPClamp its loss is flat at log(Log1mPClamp) and its gradient is
// zero, as with torch.clamp(1 − p, min=Log1mPClamp); just below it the scale
// s(p) = p/(1 − p) peaks near 1/Log1mPClamp = 10⁴ times NLL's.
const Log1mPClamp = 1e-4

// Objective is one parsed objective. The zero value is invalid; obtain
// objectives from Parse or the constructors. Objective is a small value type:
// copy it freely and compare it with ==.
type Objective struct {
	kind  Kind
	param float64 // α, q, γ or λ; 0 when the kind has no parameter
	k     int     // eaft-axolotl's top-k; 0 for every other kind
	key   string  // the name as the user spelled it for parameterless aliases ("original", "logp")
}

// NLL returns −log p.
func NLL() Objective { return Objective{kind: KindNLL} }

// P returns 1 − p, the paper's "−p".
func P() Objective { return Objective{kind: KindP} }

// GeneralFamily returns (1 − p^α)/α for α > 0.
func GeneralFamily(alpha float64) (Objective, error) { return build(KindGeneral, alpha, "") }

// Blend returns λ·(−log p) + (1 − λ)·(1 − p) for λ in [0, 1].
func Blend(lambda float64) (Objective, error) { return build(KindBlend, lambda, "") }

// OnlyTopLogP returns −log p·1{p ≥ q} for q in [0, 1).
func OnlyTopLogP(q float64) (Objective, error) { return build(KindOnlyTopLogP, q, "") }

// Kind reports which member of the family o is.
func (o Objective) Kind() Kind { return o.kind }

// Param returns the objective's parameter (α, q, γ or λ), or 0 when it has none.
func (o Objective) Param() float64 { return o.param }

// TopK returns the number of logits whose entropy an EAFT gate reads: 20
// for eaft-α (fixed in LLaMA-Factory's code), k for eaft-axolotl-α-k, and 0
// for every other objective. See Vocab for vocabularies smaller than k.
func (o Objective) TopK() int {
	switch o.kind {
	case KindEAFT:
		return EAFTTopK
	case KindEAFTAxolotl:
		return o.k
	}
	return 0
}

// Valid reports whether o was built by Parse or a constructor.
func (o Objective) Valid() bool { return o.kind != KindInvalid }

// Adaptive reports whether o is resolved during training (auto, auto-theory)
// rather than being a fixed function of p.
func (o Objective) Adaptive() bool { return o.kind == KindAuto || o.kind == KindAutoTheory }

// Thresholded reports whether o keeps only tokens whose p lies in an interval
// (the paper's Eq. 4); such objectives average the loss over kept tokens.
func (o Objective) Thresholded() bool {
	switch o.kind {
	case KindOnlyTopP, KindOnlyBottomP, KindOnlyTopLogP, KindOnlyBottomLogP:
		return true
	}
	return false
}

// String returns the canonical spec of o. Parse(o.String()) == o, up to the
// spelling of NLL's aliases, which String keeps as the user wrote them.
func (o Objective) String() string {
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	switch o.kind {
	case KindNLL:
		if o.key != "" {
			return o.key
		}
		return "nll"
	case KindP:
		return "p"
	case KindGeneral:
		return "GeneralFamily-" + num(o.param)
	case KindOnlyTopP:
		return "OnlyTopP-" + num(o.param)
	case KindOnlyBottomP:
		return "OnlyBottomP-" + num(o.param)
	case KindOnlyTopLogP:
		return "OnlyTopLogP-" + num(o.param)
	case KindOnlyBottomLogP:
		return "OnlyBottomLogP-" + num(o.param)
	case KindDFT:
		return "dft"
	case KindLog1mP:
		return "log1mp"
	case KindFocal:
		return "focal-" + num(o.param)
	case KindBlend:
		return "blend-" + num(o.param)
	case KindAuto:
		return "auto"
	case KindAutoTheory:
		return "auto-theory"
	case KindEAFT:
		return "eaft-" + num(o.param)
	case KindEAFTAxolotl:
		return "eaft-axolotl-" + num(o.param) + "-" + strconv.Itoa(o.k)
	case KindDEFT:
		return "deft"
	case KindDEFTCayley:
		return "deft-cayley"
	case KindASFT:
		return "asft-" + num(o.param)
	}
	return "invalid"
}

// Canonical returns the spec with NLL's aliases folded to "nll".
func (o Objective) Canonical() string {
	if o.kind == KindNLL {
		return "nll"
	}
	return o.String()
}

// Formula returns f(p) in plain text, for help and reports.
func (o Objective) Formula() string {
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	switch o.kind {
	case KindNLL:
		return "−log p"
	case KindP:
		return "1 − p"
	case KindGeneral:
		return "(1 − p^" + num(o.param) + ")/" + num(o.param)
	case KindOnlyTopP:
		return "(1 − p)·1{p ≥ " + num(o.param) + "}"
	case KindOnlyBottomP:
		return "(1 − p)·1{p ≤ " + num(o.param) + "}"
	case KindOnlyTopLogP:
		return "−log p·1{p ≥ " + num(o.param) + "}"
	case KindOnlyBottomLogP:
		return "−log p·1{p ≤ " + num(o.param) + "}"
	case KindDFT:
		return "−sg(p)·log p"
	case KindLog1mP:
		return "log(max(1 − p, 1e-4))"
	case KindFocal:
		return "−(1 − p)^" + num(o.param) + "·log p"
	case KindBlend:
		return num(o.param) + "·(−log p) + " + num(1-o.param) + "·(1 − p)"
	case KindAuto:
		return "NLL, p or OnlyTopLogP-0.2, chosen from the base model's capability and label noise"
	case KindAutoTheory:
		return "the candidate with the best estimated risk-reduction rate"
	case KindEAFT:
		return "(H₂₀/3)^" + num(o.param) + "·(−log p), H₂₀ the entropy of the top-20 softmax, detached"
	case KindEAFTAxolotl:
		return "H" + strconv.Itoa(o.k) + "^" + num(o.param) + "·(−log p), H" + strconv.Itoa(o.k) + " the entropy of the top-" + strconv.Itoa(o.k) + " softmax, detached"
	case KindDEFT:
		return "(1 − p^c)/(c + 1e-6), c = Σ_k q_k² over the vocabulary, detached"
	case KindDEFTCayley:
		return "(1 − p^a)/(a + 1e-8), a = clamp(m/2 + (1 − m/2)·(1 − d)/(1 + d + 1e-8), 0.001, 1), d = 1 − p + 1e-8, m the batch's mean p, detached"
	case KindASFT:
		return "−sg(p)·log p + " + num(o.param) + "·KL(r ‖ q), r the frozen reference model's distribution"
	}
	return "invalid"
}

// keep reports whether a token with log-probability lp counts for a
// thresholded objective (always true for the others). The mask uses the
// current p and carries no gradient, as in the paper's code.
func (o Objective) keep(lp float64) bool {
	p := math.Exp(lp)
	switch o.kind {
	case KindOnlyTopP, KindOnlyTopLogP:
		return p >= o.param
	case KindOnlyBottomP, KindOnlyBottomLogP:
		return p <= o.param
	}
	return true
}

// Keep reports whether a token with probability p is inside the objective's
// threshold interval; it is true for objectives without a threshold.
func (o Objective) Keep(p float64) bool { return o.keep(safeLog(p)) }

// FLog returns f(p) for lp = log p.
//
// Log-probabilities slightly above 0 (rounding) are treated as 0. For adaptive
// objectives, and for those that are not functions of p alone (Form other
// than FormP), FLog returns NaN.
func (o Objective) FLog(lp float64) float64 {
	if math.IsNaN(lp) || o.Form() != FormP {
		return math.NaN()
	}
	lp = math.Min(lp, 0)
	if !o.keep(lp) {
		return 0
	}
	switch o.kind {
	case KindNLL, KindOnlyTopLogP, KindOnlyBottomLogP:
		return -lp
	case KindP, KindOnlyTopP, KindOnlyBottomP:
		return -math.Expm1(lp) // 1 − p without cancellation near p = 1
	case KindGeneral:
		return -math.Expm1(o.param*lp) / o.param // (1 − p^α)/α
	case KindDFT:
		if math.IsInf(lp, -1) {
			return 0 // p·log p → 0
		}
		return -math.Exp(lp) * lp
	case KindLog1mP:
		return math.Log(math.Max(-math.Expm1(lp), Log1mPClamp))
	case KindFocal:
		return -math.Pow(-math.Expm1(lp), o.param) * lp
	case KindBlend:
		return o.param*(-lp) + (1-o.param)*(-math.Expm1(lp))
	}
	return math.NaN()
}

// SLog returns s_f(p) = −p·f′(p) for lp = log p: the factor by which f scales
// NLL's logit gradient at this token. For dft it is p (the gradient of
// −sg(p)·log p), and for thresholded objectives it is 0 outside the interval.
// NaN where FLog is NaN.
func (o Objective) SLog(lp float64) float64 {
	if math.IsNaN(lp) || o.Form() != FormP {
		return math.NaN()
	}
	lp = math.Min(lp, 0)
	if !o.keep(lp) {
		return 0
	}
	p := math.Exp(lp)
	switch o.kind {
	case KindNLL, KindOnlyTopLogP, KindOnlyBottomLogP:
		return 1
	case KindP, KindOnlyTopP, KindOnlyBottomP, KindDFT:
		return p
	case KindGeneral:
		return math.Exp(o.param * lp) // p^α
	case KindLog1mP:
		u := -math.Expm1(lp)
		if u <= Log1mPClamp {
			return 0
		}
		return p / u
	case KindFocal:
		// s = (1−p)^γ − γ·p·(1−p)^(γ−1)·log p = u^γ·(1 + γ·p·r), r = −log(p)/u.
		u := -math.Expm1(lp)
		if p == 0 {
			return 1
		}
		var r float64
		if u < 1e-8 {
			r = 1 + u/2 // −log(1−u)/u = 1 + u/2 + u²/3 + …
		} else {
			r = -lp / u
		}
		return math.Pow(u, o.param) * (1 + o.param*p*r)
	case KindBlend:
		return o.param + (1-o.param)*p
	}
	return math.NaN()
}

// WLog returns the logit-gradient weight W_f(p) = s_f(p)·(1 − p) for lp = log p.
func (o Objective) WLog(lp float64) float64 {
	return o.SLog(lp) * -math.Expm1(math.Min(lp, 0))
}

// F returns f(p). See FLog.
func (o Objective) F(p float64) float64 { return o.FLog(safeLog(p)) }

// S returns s_f(p) = −p·f′(p). See SLog.
func (o Objective) S(p float64) float64 { return o.SLog(safeLog(p)) }

// W returns W_f(p) = s_f(p)·(1 − p). See WLog.
func (o Objective) W(p float64) float64 { return o.WLog(safeLog(p)) }

// safeLog is log p with p outside [0, 1] mapped to NaN.
func safeLog(p float64) float64 {
	if !(p >= 0 && p <= 1) {
		return math.NaN()
	}
	return math.Log(p)
}
