package choose

import (
	"fmt"

	"github.com/capsel/capsel/continuum"
	"github.com/capsel/capsel/labelnoise"
)

// WholeExampleShare is the known share at or above which a model's
// knowledge counts as coming in whole examples (Call): it reproduces at
// least a fifth of its training examples exactly. On capsel's fact task
// (knowledge per fact) the base models at coverage 0.25 and above reach it;
// on the rule task (knowledge per letter, every example partly known) no
// base model below full coverage does (experiments/results).
const WholeExampleShare = 0.2

// Anchored is the prior-leaning objective the call names: ASFT at
// LLaMA-Factory's default α = 0.1, DFT (whose gradient is −p's) with a KL
// anchor to the base model. On capsel's experiment grid it won held-out
// exact match outright in 25 of the 26 fact cells at coverage 0.75–1, and
// was never behind −p or −log p·1{p ≥ 0.2} on it in any cell
// (experiments/results).
const Anchored = "asft-0.1"

// Call is the class-level decision: which objective the measurement of a
// base model on its fine-tuning data calls for, and why.
type Call struct {
	// Objective is nll or, prior-leaning, Anchored.
	Objective string `json:"objective"`
	// Fallback is the objective for a trainer that cannot run Objective
	// (ASFT needs the base model as a frozen reference): nll, p or
	// OnlyTopLogP-0.2.
	Fallback string `json:"fallback"`
	// Leaning is true for a prior-leaning objective.
	Leaning bool `json:"prior_leaning"`
	// DropFlagged says to train without the flagged examples: with NLL,
	// which would learn their wrong labels. A prior-leaning objective
	// already gives them little weight (their labels have low p), and
	// dropping them only makes the remaining examples repeat more often.
	DropFlagged bool `json:"drop_flagged"`
	// Region is the capability region of Ĉ.
	Region continuum.Region `json:"region"`
	// Noisy says the labels are measurably noisy (an interval above 0).
	Noisy bool `json:"noisy"`
	// Reasons say why, in the order the decision was made.
	Reasons []string `json:"reasons"`
}

// Decide makes the call from the noise-aware measurement m with the
// region cuts:
//
//   - prior-leaning when Ĉ places the model at the model-strong end (the
//     paper's rollout, §7) or when its labels are measurably noisy where
//     it knows the answers (a prior-leaning objective gives the tokens it
//     disbelieves little gradient; the paper's theory needs noise for the
//     prior-leaning objective to win, §6);
//   - among prior-leaning objectives, Anchored: −p's gradient with a KL
//     anchor that keeps the model near what it knew. Its fallback, for
//     trainers that cannot run it, is −log p·1{p ≥ 0.2} when the model's
//     knowledge comes in whole examples (it reproduces at least
//     WholeExampleShare of them): it leaves alone the examples the model
//     does not know instead of overwriting what it knows with them; −p
//     otherwise, which still learns, slowly, the parts the model does not
//     know yet, where the thresholded objective never would;
//   - NLL otherwise: the model has to learn, and NLL learns fastest (the
//     paper's Table 3), without the flagged examples.
//
// experiments/results scores this call against the measured class-level
// winners of capsel's grid.
func Decide(m *labelnoise.Result, cuts continuum.Cuts) Call {
	c := Call{Region: cuts.Region(m.Capability.Value), Noisy: m.Noisy()}
	capLine := fmt.Sprintf("With the noise the model can see taken out, its capability is Ĉ = %.3f (95%% CI %.3f–%.3f)", m.Capability.Value, m.Capability.CI[0], m.Capability.CI[1])
	if m.RawMeanP < m.Capability.Value-0.005 {
		capLine += fmt.Sprintf(", above the %.3f the labels as given show", m.RawMeanP)
	}
	capLine += fmt.Sprintf(": %s.", c.Region)
	c.Reasons = append(c.Reasons, capLine)
	if rate := m.NoiseRate(); rate != nil {
		what := "of the examples it knows"
		if m.Noise == nil {
			what = "of its confident tokens"
		}
		if c.Noisy {
			c.Reasons = append(c.Reasons, fmt.Sprintf("Its labels are measurably noisy: %.0f%% %s contradict it (95%% CI %.0f–%.0f%%), and %d examples are flagged.", 100*rate.Value, what, 100*rate.CI[0], 100*rate.CI[1], len(m.Flags)))
		} else {
			c.Reasons = append(c.Reasons, fmt.Sprintf("No label noise is measurable: the estimate, %.0f%% %s contradicting it, has a 95%% CI of %.0f–%.0f%%, which includes 0.", 100*rate.Value, what, 100*rate.CI[0], 100*rate.CI[1]))
		}
	} else {
		c.Reasons = append(c.Reasons, "How noisy the labels are cannot be measured here: the model knows too little of the data to judge them.")
	}
	c.Leaning = c.Region == continuum.Strong || c.Noisy
	if !c.Leaning {
		c.Objective, c.Fallback = "nll", "nll"
		c.DropFlagged = len(m.Flags) > 0
		line := "So NLL: the model still has to learn most of this, and NLL learns fastest (the paper's Table 3: prior-leaning objectives scale each token's gradient by about p and barely learn what the model does not know)."
		if c.DropFlagged {
			line += fmt.Sprintf(" Drop the %d flagged examples first (selector clean): NLL would learn their labels.", len(m.Flags))
		}
		c.Reasons = append(c.Reasons, line)
		return c
	}
	why := "the model already believes most of its targets (the paper's model-strong end, where prior-leaning objectives beat NLL by 4 to 16 points, its Table 1)"
	if c.Region != continuum.Strong {
		why = "its labels contradict it where it is confident, and a prior-leaning objective gives those tokens little gradient instead of learning them"
	} else if c.Noisy {
		why += ", and its labels are noisy where it knows the answers"
	}
	whole := m.Known != nil && m.Known.Value >= WholeExampleShare
	c.Objective = Anchored
	line := fmt.Sprintf("So a prior-leaning objective: %s. ASFT (%s): DFT, whose gradient is −p's, with a KL anchor to the base model that keeps what it knows; on capsel's experiment grid it kept more of the base model's knowledge than −p and −log p·1{p ≥ 0.2}, and was never behind them on held-out exact match.", why, Anchored)
	if whole {
		c.Fallback = "OnlyTopLogP-0.2"
		line += fmt.Sprintf(" Where the trainer cannot run it (it needs the base model as a frozen reference): −log p·1{p ≥ 0.2} (OnlyTopLogP-0.2). The model reproduces %.0f%% of the examples whole, so its knowledge comes in whole examples, and that objective leaves alone the tokens it finds unlikely instead of overwriting what it knows with examples it does not know.", 100*m.Known.Value)
	} else {
		c.Fallback = "p"
		line += " Where the trainer cannot run it (it needs the base model as a frozen reference): −p, its DFT part. The model's knowledge is spread across the examples rather than whole ones, and −p still learns the parts it does not know (slowly), where −log p·1{p ≥ 0.2} never would."
	}
	c.Reasons = append(c.Reasons, line)
	return c
}
