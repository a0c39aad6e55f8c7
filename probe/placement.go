package probe

import (
	"math"

	"github.com/capsel/capsel/continuum"
)

// The continuum's names, as the probe's reports and configuration use them
// (package continuum is their one source).
type (
	// Region is a part of the capability continuum.
	Region = continuum.Region
	// Cuts separate the regions.
	Cuts = continuum.Cuts
	// Anchor is one of the paper's measurements.
	Anchor = continuum.Anchor
)

// The three regions.
const (
	Weak         = continuum.Weak
	Intermediate = continuum.Intermediate
	Strong       = continuum.Strong
)

// DefaultCuts are continuum.DefaultCuts, and Anchors the paper's twelve
// measurements (continuum.Anchors).
var (
	DefaultCuts = continuum.DefaultCuts
	Anchors     = continuum.Anchors
)

// Placement puts a model on the capability continuum.
type Placement struct {
	// Capability is the paper's statistic, the mean p of Eq. 5.
	Capability float64 `json:"capability"`
	Region     Region  `json:"region"`
	Cuts       Cuts    `json:"cuts"`
	// NearestAnchor is the paper's measurement closest in mean p (the first
	// in Anchors' order on a tie).
	NearestAnchor Anchor `json:"nearest_anchor"`
	// Borderline is true when the CI of mean p contains a cut: the region
	// could change with another sample of the same data. An undefined CI
	// (too few sequences, see MinCISequences) is the whole range [0, 1], so
	// it is borderline too.
	Borderline bool `json:"borderline"`
	// TheoryStrongCondition is share_p_gt_055 ≥ StrongShare: the proxy of
	// the theory's model-strong assumption that the paper reports (Table 6).
	TheoryStrongCondition bool    `json:"theory_strong_condition"`
	StrongShare           float64 `json:"strong_share"`
}

// Place computes the placement of a model with mean p x, its confidence
// interval ci and share of tokens with p > 0.55.
func Place(x float64, ci [2]float64, share055 float64, cuts Cuts) Placement {
	pl := Placement{Capability: x, Region: cuts.Region(x), Cuts: cuts, StrongShare: continuum.StrongShare,
		TheoryStrongCondition: share055 >= continuum.StrongShare}
	best := math.Inf(1)
	for _, a := range continuum.Anchors {
		if d := math.Abs(a.MeanP - x); d < best {
			best, pl.NearestAnchor = d, a
		}
	}
	for _, c := range []float64{cuts.WeakBelow, cuts.StrongAt} {
		if ci[0] < c && c <= ci[1] {
			pl.Borderline = true
		}
	}
	return pl
}
