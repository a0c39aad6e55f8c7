package continuum

import "fmt"

// Region is a part of the capability continuum.
type Region string

// The three regions, with the paper's names: model-strong (MS),
// model-intermediate (MI), model-weak (MW).
const (
	Weak         Region = "model-weak"
	Intermediate Region = "model-intermediate"
	Strong       Region = "model-strong"
)

// Regions lists the regions from the weak end to the strong end.
var Regions = []Region{Weak, Intermediate, Strong}

// Index returns the region's place in Regions (0 weak, 1 intermediate,
// 2 strong), or −1 for an unknown name.
func (r Region) Index() int {
	for i, x := range Regions {
		if x == r {
			return i
		}
	}
	return -1
}

// Anchor is one base model whose capability the paper measured: its mean
// predicted probability of the training targets (Eq. 5) on one domain.
type Anchor struct {
	Model  string  `json:"model"`
	Domain string  `json:"domain"`
	Region Region  `json:"region"`
	MeanP  float64 `json:"mean_p"`
	// ShareGT055 is the share of training tokens with p > 0.55 (Table 6),
	// 0 where the paper does not give it.
	ShareGT055 float64 `json:"share_p_gt_055,omitempty"`
}

// Anchors are the paper's twelve measurements (Table 5, Appendix B.1) with
// the p > 0.55 shares of the math models (Table 6). Where §3's text and
// Table 5 disagree (LLaMA-3.1-8B on math: 0.76 in the text, 0.80 in the
// table), the table is used.
var Anchors = []Anchor{
	{"LLaMA-3.1-8B", "math", Strong, 0.80, 0.728},
	{"DeepSeekMath-7B", "math", Strong, 0.76, 0.767},
	{"Qwen2.5-Math-1.5B", "math", Strong, 0.80, 0.806},
	{"Qwen2.5-Math-7B", "math", Strong, 0.81, 0.812},
	{"LLaMA-3.2-3B", "medical", Intermediate, 0.50, 0},
	{"LLaMA-3.1-8B", "medical", Intermediate, 0.53, 0},
	{"Qwen2.5-1.5B", "medical", Intermediate, 0.56, 0},
	{"Qwen2.5-Math-7B", "medical", Intermediate, 0.59, 0},
	{"LLaMA-3.2-3B", "figfont", Weak, 0.01, 0},
	{"LLaMA-3.1-8B", "figfont", Weak, 0.01, 0},
	{"Qwen2.5-1.5B", "figfont", Weak, 0.01, 0},
	{"Qwen2.5-7B", "figfont", Weak, 0.07, 0},
}

// Cuts are the capability values that separate the regions: below
// WeakBelow is model-weak, at or above StrongAt is model-strong.
type Cuts struct {
	WeakBelow float64 `json:"weak_below"`
	StrongAt  float64 `json:"strong_at"`
}

// DefaultCuts places the boundaries midway between the paper's anchor
// clusters (Table 5), since the paper itself gives no numeric cut-offs:
//
//	model-weak anchors          0.01 – 0.07
//	model-intermediate anchors  0.50 – 0.59
//	model-strong anchors        0.76 – 0.81
//
//	WeakBelow = (0.07 + 0.50)/2 ≈ 0.30   (0.285, rounded up to a round number)
//	StrongAt  = (0.59 + 0.76)/2 = 0.675
//
// The strong cut also sits where a mean p of about 0.7 goes with a
// p > 0.55 share near the 70 % of the theory's Assumption 6.1 (the
// model-strong anchors have 72.8–81.2 %, Table 6).
var DefaultCuts = Cuts{WeakBelow: 0.30, StrongAt: 0.675}

// Validate checks 0 < WeakBelow < StrongAt ≤ 1.
func (c Cuts) Validate() error {
	if !(c.WeakBelow > 0 && c.WeakBelow < c.StrongAt && c.StrongAt <= 1) {
		return fmt.Errorf("cuts need 0 < weak-below < strong-at ≤ 1, got %v and %v", c.WeakBelow, c.StrongAt)
	}
	return nil
}

// Region returns the region of capability x.
func (c Cuts) Region(x float64) Region {
	switch {
	case x < c.WeakBelow:
		return Weak
	case x >= c.StrongAt:
		return Strong
	}
	return Intermediate
}

// StrongShare is the K of the theory's model-strong condition (paper
// Assumption 6.1): at least this share of tokens should have p > 0.55.
const StrongShare = 0.70
