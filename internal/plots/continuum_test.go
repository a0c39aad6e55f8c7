package plots

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExperiment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fig.png")
	series := []Series{
		{Name: "nll", X: []float64{0.5, 0.1, 0.9}, Y: []float64{0.6, 0.9, 0.5}, Lo: []float64{0.55, 0.85, 0.4}, Hi: []float64{0.65, 0.95, 0.6}},
		{Name: "p", X: []float64{0.1, 0.5, 0.9}, Y: []float64{0.2, 0.5, 0.8}, Lo: []float64{0.1, 0.45, 0.75}, Hi: []float64{0.3, 0.55, 0.85}, ColorSlot: 1, Dashed: true},
	}
	shifts := []Shift{{Clean: 0.2, Given: 0.1}, {Clean: 0.7, Given: 0.5}, {Clean: 0.95, Given: 0.9}}
	if err := Experiment(path, "title", "x", "y", series, shifts); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	// 18 × 12 cm at gonum's default 96 dpi.
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
		t.Errorf("figure is %v", b)
	}
	bad := []Series{{Name: "short", X: []float64{1, 2}, Y: []float64{1}, Lo: []float64{1}, Hi: []float64{1}}}
	if err := Experiment(filepath.Join(dir, "bad.png"), "t", "x", "y", bad, nil); err == nil || !strings.Contains(err.Error(), "short") {
		t.Errorf("mismatched series: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.png")); !os.IsNotExist(err) {
		t.Error("a failed figure left a file")
	}
}
