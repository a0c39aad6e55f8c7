package plots

import (
	"fmt"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one line of an experiment figure: a mean with its confidence
// interval at each x.
type Series struct {
	Name      string
	X, Y      []float64
	Lo, Hi    []float64 // the interval around each Y
	Dashed    bool
	ColorSlot int // palette index
	// Detached draws the points and intervals without a line or legend
	// entry: another kind of point of a series already in the legend.
	Detached bool
}

// Shift is where the probe puts one base model: its mean p on the clean
// data, and on the data as given, which is where the base model's points
// are drawn.
type Shift struct {
	Clean, Given float64
}

// Experiment draws series with their intervals on one set of axes and saves
// the figure to path. With shifts, a strip at the bottom of the plot shows,
// for every base model, the probe's value on clean data (hollow square)
// joined to its value on the data as given (filled), so that a reader sees
// how far label noise moved the x-axis.
func Experiment(path, title, xLabel, yLabel string, series []Series, shifts []Shift) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	for _, s := range series {
		if len(s.X) != len(s.Y) || len(s.Lo) != len(s.Y) || len(s.Hi) != len(s.Y) {
			return fmt.Errorf("plot %s: series %s: %d x, %d y, %d lo, %d hi", path, s.Name, len(s.X), len(s.Y), len(s.Lo), len(s.Hi))
		}
		idx := make([]int, len(s.X))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return s.X[idx[a]] < s.X[idx[b]] })
		pts := make(plotter.XYs, len(idx))
		errs := make(plotter.YErrors, len(idx))
		for j, i := range idx {
			pts[j] = plotter.XY{X: s.X[i], Y: s.Y[i]}
			errs[j].Low, errs[j].High = s.Y[i]-s.Lo[i], s.Hi[i]-s.Y[i]
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("plot %s: series %s: %w", path, s.Name, err)
		}
		c := Color(s.ColorSlot)
		l.Color, sc.Color = c, c
		l.Width = vg.Points(1.5)
		if s.Dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return fmt.Errorf("plot %s: series %s: %w", path, s.Name, err)
		}
		eb.Color = c
		if s.Detached {
			sc.Shape = draw.BoxGlyph{}
			p.Add(sc, eb)
			continue
		}
		p.Add(l, sc, eb)
		p.Legend.Add(s.Name, l, sc)
	}
	if len(shifts) > 0 {
		grey := color.Gray{Y: 110}
		y := -0.06
		for i, sh := range shifts {
			line, err := plotter.NewLine(plotter.XYs{{X: sh.Clean, Y: y}, {X: sh.Given, Y: y}})
			if err != nil {
				return fmt.Errorf("plot %s: shift: %w", path, err)
			}
			line.Color = grey
			clean, err := plotter.NewScatter(plotter.XYs{{X: sh.Clean, Y: y}})
			if err != nil {
				return fmt.Errorf("plot %s: shift: %w", path, err)
			}
			clean.Shape, clean.Color, clean.Radius = draw.SquareGlyph{}, grey, vg.Points(3.5)
			given, err := plotter.NewScatter(plotter.XYs{{X: sh.Given, Y: y}})
			if err != nil {
				return fmt.Errorf("plot %s: shift: %w", path, err)
			}
			given.Shape, given.Color, given.Radius = draw.BoxGlyph{}, grey, vg.Points(3)
			p.Add(line, clean, given)
			if i == 0 {
				p.Legend.Add("probe's mean p on clean data", clean)
				p.Legend.Add("… on the data as given (x of the points)", given)
			}
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i := range s.Lo {
			lo, hi = math.Min(lo, s.Lo[i]), math.Max(hi, s.Hi[i])
		}
	}
	if len(shifts) > 0 {
		lo = math.Min(lo, -0.1)
	}
	if !math.IsInf(lo, 0) {
		// Headroom above for the legend.
		entries := 0
		for _, s := range series {
			if !s.Detached {
				entries++
			}
		}
		if len(shifts) > 0 {
			entries += 2
		}
		p.Y.Min, p.Y.Max = lo, hi+0.07*float64(entries)*(hi-lo)
	}
	return SavePNG(p, 18*vg.Centimeter, 12*vg.Centimeter, path)
}
