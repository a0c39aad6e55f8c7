package continuum

import "testing"

// The default cuts separate the paper's anchor clusters: every anchor of
// Table 5 falls in the region the paper gives it.
func TestDefaultCutsPlaceEveryAnchor(t *testing.T) {
	if err := DefaultCuts.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, a := range Anchors {
		if got := DefaultCuts.Region(a.MeanP); got != a.Region {
			t.Errorf("%s on %s (mean p %.2f): region %s, the paper says %s", a.Model, a.Domain, a.MeanP, got, a.Region)
		}
	}
	// And they sit midway between the clusters (Table 5): (0.07 + 0.50)/2 =
	// 0.285 rounds up to 0.30, (0.59 + 0.76)/2 = 0.675.
	if d := DefaultCuts.StrongAt - (0.59+0.76)/2; d < -1e-15 || d > 1e-15 {
		t.Errorf("strong cut %v", DefaultCuts.StrongAt)
	}
	if d := DefaultCuts.WeakBelow - (0.07+0.50)/2; d < 0 || d > 0.02 {
		t.Errorf("weak cut %v", DefaultCuts.WeakBelow)
	}
}

func TestRegionEdges(t *testing.T) {
	c := Cuts{WeakBelow: 0.3, StrongAt: 0.675}
	for _, tc := range []struct {
		x    float64
		want Region
	}{{0, Weak}, {0.2999, Weak}, {0.3, Intermediate}, {0.6749, Intermediate}, {0.675, Strong}, {1, Strong}} {
		if got := c.Region(tc.x); got != tc.want {
			t.Errorf("Region(%v) = %s, want %s", tc.x, got, tc.want)
		}
	}
	for i, r := range Regions {
		if r.Index() != i {
			t.Errorf("%s.Index() = %d, want %d", r, r.Index(), i)
		}
	}
	if Region("strong").Index() != -1 {
		t.Error("an unknown region has an index")
	}
	for _, bad := range []Cuts{{0, 0.5}, {0.5, 0.5}, {0.6, 0.5}, {0.3, 1.1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validates", bad)
		}
	}
}
