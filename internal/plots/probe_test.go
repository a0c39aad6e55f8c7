package plots

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStagger: wherever the mean p falls among the reference lines, no two
// labels in a row overlap and no label crosses a line that runs past it.
func TestStagger(t *testing.T) {
	for x := 0.0; x <= 1.0; x += 0.01 {
		lines := []vmark{{x: 0.2, label: "p = 0.2"}, {x: 0.55, label: "p = 0.55"}, {x: x, label: "mean p = 0.555"}}
		rows := stagger(lines)
		if rows < 1 || rows > 3 {
			t.Errorf("mean p %.2f: %d rows", x, rows)
		}
		for i, a := range lines {
			for j, b := range lines {
				if i == j {
					continue
				}
				if a.row == b.row && a.lo < b.hi && b.lo < a.hi {
					t.Errorf("mean p %.2f: labels %q and %q overlap in row %d", x, a.label, b.label, a.row)
				}
				if b.row < a.row && a.lo <= b.x && b.x <= a.hi {
					t.Errorf("mean p %.2f: the line of %q crosses the label %q", x, b.label, a.label)
				}
			}
		}
	}
}

func TestProbePlots(t *testing.T) {
	dir := t.TempDir()
	edges := make([]float64, 21)
	for i := range edges {
		edges[i] = float64(i) / 20
	}
	counts := make([]uint64, 20)
	for i := range counts {
		counts[i] = uint64(i + 1)
	}
	h := filepath.Join(dir, "h.png")
	if err := ProbeHistogram(h, Histogram{Edges: edges, Counts: counts, MeanP: 0.58, Marks: []Mark{{X: 0.2, Label: "p = 0.2"}, {X: 0.55, Label: "p = 0.55"}}}); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(dir, "c.png")
	if err := Continuum(c, Placement{MeanP: 0.4, CI: [2]float64{0, 1}, NoCI: true, Region: 1, Cuts: [2]float64{0.3, 0.675},
		Anchors: []Anchor{{Label: "a", MeanP: 0.8, Region: 2}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{h, c} {
		if st, err := os.Stat(p); err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v", p, err)
		}
	}
}
