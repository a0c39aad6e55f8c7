package objectives

import (
	"errors"
	"fmt"
	"math"
)

// ErrAdaptive is returned when a per-token value is asked of auto or
// auto-theory, which only a trainer can resolve.
var ErrAdaptive = errors.New("objectives: auto and auto-theory are resolved during training; evaluate a concrete objective instead")

// logpSlack is how far above 0 a log-probability may sit and still be read as
// 0: float32 log-softmax rounds to values like +6e-8.
const logpSlack = 1e-5

// BatchStats summarises one batch of target tokens.
type BatchStats struct {
	Loss   float64 // Σ f(p) over kept tokens / Kept (0 when Kept is 0)
	Scored int     // tokens whose mask is true (all of them for a nil mask)
	Kept   int     // scored tokens inside the threshold interval; equals Scored unless thresholded
	MeanP  float64 // Σ p / Scored over scored tokens (the paper's Eq. 5 on this batch)
	// MeanGate is the mean over kept tokens of the detached gate of an
	// objective that is not a function of p alone (EAFT's factor, DEFT's
	// exponent, ASFT's DFT weight p); 0 for the others.
	MeanGate float64
	// MeanKL is asft's mean KL(reference ‖ model) over scored tokens; 0
	// for the others.
	MeanKL float64
}

// Batch evaluates o on a batch of target tokens: logp[t] is log p of token t's
// target, mask[t] says whether t is scored (nil scores every token). It writes
// into loss[t] the unnormalised per-token loss f(p_t) (0 for tokens not kept)
// and into scale[t] the per-token gradient scale, so that
//
//	∂Loss/∂z_t = scale[t]·(softmax(z_t) − e_{y_t}),  scale[t] = s_f(p_t)·keep_t / Kept
//
// where Loss = Σ_t loss[t] / Kept is the mean over kept tokens. This is the
// paper code's normalisation: a thresholded objective ANDs its indicator into
// the loss mask and divides by the number of tokens that survive. Either
// output slice may be nil when it is not wanted.
//
// deft-cayley (FormBatch) is evaluated here too: its detached exponent reads
// the batch's mean p, and its loss is divided by Kept + 1e-8, as the DEFT
// fork's trainer divides every loss.
//
// Errors: adaptive objectives, objectives that read the whole distribution
// (FormDist, FormAnchored: use BatchDist), slices whose lengths disagree,
// and log-probabilities that are NaN or above 0.
func (o Objective) Batch(logp []float64, mask []bool, loss, scale []float64) (BatchStats, error) {
	var st BatchStats
	if !o.Valid() {
		return st, fmt.Errorf("objectives: Batch on an invalid objective")
	}
	if o.Adaptive() {
		return st, ErrAdaptive
	}
	if f := o.Form(); f != FormP && f != FormBatch {
		return st, fmt.Errorf("objectives: %v is a %s, not of p alone: evaluate it with BatchDist", o, f)
	}
	n := len(logp)
	if (mask != nil && len(mask) != n) || (loss != nil && len(loss) != n) || (scale != nil && len(scale) != n) {
		return st, fmt.Errorf("objectives: Batch lengths disagree: logp %d, mask %d, loss %d, scale %d", n, len(mask), len(loss), len(scale))
	}
	cayley := o.kind == KindDEFTCayley
	var batchMeanP, sumGate float64
	if cayley {
		// p_mean_global: the mean detached p over the batch's scored tokens.
		scored := 0
		for t, lp := range logp {
			if mask == nil || mask[t] {
				if math.IsNaN(lp) || lp > logpSlack {
					return st, fmt.Errorf("objectives: token %d: log-probability %v is not in [−∞, 0]", t, lp)
				}
				batchMeanP += math.Exp(math.Min(lp, 0))
				scored++
			}
		}
		if scored > 0 {
			batchMeanP /= float64(scored)
		}
	}
	var sumF, sumP float64
	for t, lp := range logp {
		if math.IsNaN(lp) || lp > logpSlack {
			return st, fmt.Errorf("objectives: token %d: log-probability %v is not in [−∞, 0]", t, lp)
		}
		lp = math.Min(lp, 0)
		scored := mask == nil || mask[t]
		kept := scored && o.keep(lp)
		var f, s float64
		if scored {
			st.Scored++
			sumP += math.Exp(lp)
		}
		if kept {
			st.Kept++
			if cayley {
				var g float64
				f, s, g = generalised(lp, cayleyExponent(math.Exp(lp), batchMeanP), cayleyEps)
				sumGate += g
			} else {
				f, s = o.FLog(lp), o.SLog(lp)
			}
			sumF += f
		}
		if loss != nil {
			loss[t] = f
		}
		if scale != nil {
			scale[t] = s
		}
	}
	if st.Scored > 0 {
		st.MeanP = sumP / float64(st.Scored)
	}
	if st.Kept > 0 {
		den := float64(st.Kept)
		if cayley {
			den += verlEps
			st.MeanGate = sumGate / float64(st.Kept)
		}
		st.Loss = sumF / den
		if scale != nil {
			inv := 1 / den
			for t := range scale {
				scale[t] *= inv
			}
		}
	}
	return st, nil
}
