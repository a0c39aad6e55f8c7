package plots

import (
	"cmp"
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Histogram is the probe's histogram of p.
type Histogram struct {
	Edges  []float64 // len(Counts)+1 bin edges on [0, 1]
	Counts []uint64
	MeanP  float64
	Marks  []Mark // reference lines
}

// Mark is a labelled vertical line.
type Mark struct {
	X     float64
	Label string
}

// regionColors colour model-weak, model-intermediate and model-strong.
var regionColors = []color.Color{Palette[1], Palette[4], Palette[2]}

// regionNames name them in legends.
var regionNames = []string{"model-weak", "model-intermediate", "model-strong"}

// ProbeHistogram draws the share of tokens per bin of p, with the mean p
// and reference lines, to path.
func ProbeHistogram(path string, h Histogram) error {
	if len(h.Edges) != len(h.Counts)+1 || len(h.Counts) == 0 {
		return fmt.Errorf("plot %s: %d edges for %d bins", path, len(h.Edges), len(h.Counts))
	}
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return fmt.Errorf("plot %s: empty histogram", path)
	}
	p := plot.New()
	p.Title.Text = "Base model's probability of the target tokens"
	p.X.Label.Text = "p (teacher forcing, response tokens)"
	p.Y.Label.Text = "share of tokens (%)"
	p.Add(plotter.NewGrid())
	bins := make([]plotter.HistogramBin, len(h.Counts))
	top := 0.0
	for i, c := range h.Counts {
		w := 100 * float64(c) / float64(total)
		bins[i] = plotter.HistogramBin{Min: h.Edges[i], Max: h.Edges[i+1], Weight: w}
		top = max(top, w)
	}
	hist := &plotter.Histogram{Bins: bins, Width: h.Edges[1] - h.Edges[0], FillColor: Palette[5], LineStyle: plotter.DefaultLineStyle}
	hist.LineStyle.Color = color.White
	p.Add(hist)
	p.X.Min, p.X.Max = 0, 1
	p.X.Tick.Marker = tenths()
	lines := make([]vmark, 0, len(h.Marks)+1)
	for _, m := range h.Marks {
		lines = append(lines, vmark{x: m.X, c: color.Gray{110}, dashed: true, label: m.Label})
	}
	lines = append(lines, vmark{x: h.MeanP, c: Palette[6], label: fmt.Sprintf("mean p = %.3f", h.MeanP)})
	rows := stagger(lines)
	// Room above the tallest bar for the rows of labels.
	lowest := labelRow(rows - 1)
	p.Y.Min, p.Y.Max = 0, top/(lowest-0.05)
	for _, m := range lines {
		if err := vline(p, m, p.Y.Max); err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
	}
	return SavePNG(p, 16*vg.Centimeter, 10*vg.Centimeter, path)
}

// vmark is a labelled vertical line; its label sits in row row (0 at the
// top) at horizontal alignment align (draw.XCenter, XLeft: right of the
// line, XRight: left of it).
type vmark struct {
	x      float64
	c      color.Color
	dashed bool
	label  string
	row    int
	align  draw.XAlignment
	lo, hi float64 // the label's horizontal span, in data units
}

// labelFont is the size of the lines' labels.
const labelFont = 8

// stagger places the labels, left to right, each in the highest row and
// the first of centred, right of its line or left of it, where it overlaps
// no label placed before it and crosses no line: a line runs from the
// bottom up to its own label's row. It returns the number of rows used. A
// label's width in data units is its width in points over the about 400
// points that the x axis spans in a 16 cm wide plot, plus a margin.
func stagger(lines []vmark) int {
	order := make([]int, len(lines))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(lines[a].x, lines[b].x) })
	ts := draw.TextStyle{Font: plot.DefaultFont, Handler: plot.DefaultTextHandler}
	ts.Font.Size = vg.Points(labelFont)
	// Lines are placed in order, so a line not yet placed is taken to reach
	// the top row: no label may cross it.
	placed := make([]bool, len(lines))
	free := func(i, row int, lo, hi float64) bool {
		for j := range lines {
			if j == i {
				continue
			}
			if placed[j] && lines[j].row == row && lines[j].lo < hi && lo < lines[j].hi {
				return false
			}
			reaches := !placed[j] || lines[j].row < row
			if reaches && lo <= lines[j].x && lines[j].x <= hi {
				return false
			}
		}
		return true
	}
	rows := 0
	for _, i := range order {
		m := &lines[i]
		w := float64(ts.Width(m.label))/400 + 0.01
		found := false
		for row := 0; !found; row++ {
			for _, al := range []draw.XAlignment{draw.XCenter, draw.XLeft, draw.XRight} {
				lo, hi := m.x-w/2, m.x+w/2
				switch al {
				case draw.XLeft:
					lo, hi = m.x+0.005, m.x+0.005+w
				case draw.XRight:
					lo, hi = m.x-0.005-w, m.x-0.005
				}
				if free(i, row, lo, hi) || row > len(lines) {
					m.row, m.align, m.lo, m.hi = row, al, lo, hi
					found = true
					break
				}
			}
		}
		placed[i] = true
		rows = max(rows, m.row+1)
	}
	return rows
}

// labelRow is the height of row r of labels, as a share of the plot's
// height.
func labelRow(r int) float64 { return 0.94 - 0.075*float64(r) }

// vline draws a vertical line up to its label's row, with the label.
func vline(p *plot.Plot, m vmark, ymax float64) error {
	y := ymax * labelRow(m.row)
	l, err := plotter.NewLine(plotter.XYs{{X: m.x, Y: 0}, {X: m.x, Y: y - ymax*0.01}})
	if err != nil {
		return err
	}
	l.Color = m.c
	l.Width = vg.Points(1.2)
	if m.dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	x := m.x
	switch m.align {
	case draw.XLeft:
		x = m.x + 0.005
	case draw.XRight:
		x = m.x - 0.005
	}
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: y}}, Labels: []string{m.label}})
	if err != nil {
		return err
	}
	lab.TextStyle[0].Color = m.c
	lab.TextStyle[0].XAlign = m.align
	lab.TextStyle[0].Font.Size = vg.Points(labelFont)
	p.Add(lab)
	return nil
}

// Anchor is one of the paper's measurements.
type Anchor struct {
	Label  string
	MeanP  float64
	Region int // 0 weak, 1 intermediate, 2 strong
}

// Placement is a model's capability with its CI, to be drawn among the
// paper's anchors.
type Placement struct {
	MeanP float64
	CI    [2]float64
	// NoCI says the CI is undefined (too few sequences): none is drawn.
	NoCI    bool
	Region  int
	Cuts    [2]float64 // weak-below, strong-at
	Anchors []Anchor
}

// Continuum draws the capability continuum: one row per paper anchor, the
// probed model on the top row with its CI, the regions shaded and the cuts
// dashed.
func Continuum(path string, pl Placement) error {
	p := plot.New()
	p.Title.Text = "Placement on the capability continuum (Li et al., ICML 2026)"
	p.X.Label.Text = "mean p of the target tokens (paper Eq. 5)"
	p.X.Min, p.X.Max = 0, 1
	p.X.Tick.Marker = tenths()
	n := len(pl.Anchors)
	p.Y.Min, p.Y.Max = -0.8, float64(n)+0.8
	// Region bands.
	edges := []float64{0, pl.Cuts[0], pl.Cuts[1], 1}
	for r := range 3 {
		band, err := plotter.NewPolygon(plotter.XYs{{X: edges[r], Y: p.Y.Min}, {X: edges[r+1], Y: p.Y.Min},
			{X: edges[r+1], Y: p.Y.Max}, {X: edges[r], Y: p.Y.Max}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		cr, cg, cb, _ := regionColors[r].RGBA()
		band.Color = color.NRGBA{uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8), 40}
		band.LineStyle.Width = 0
		p.Add(band)
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: (edges[r] + edges[r+1]) / 2, Y: p.Y.Min + 0.15}}, Labels: []string{regionNames[r]}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		lab.TextStyle[0].XAlign = draw.XCenter
		lab.TextStyle[0].Font.Size = vg.Points(8)
		lab.TextStyle[0].Color = regionColors[r]
		p.Add(lab)
	}
	for _, c := range pl.Cuts {
		l, err := plotter.NewLine(plotter.XYs{{X: c, Y: p.Y.Min}, {X: c, Y: p.Y.Max}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		l.Color = color.Gray{90}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
	}
	// Anchors, one row each, from the bottom; the model on top.
	var ticks []plot.Tick
	for r := range 3 {
		var pts plotter.XYs
		for i, a := range pl.Anchors {
			if a.Region == r {
				pts = append(pts, plotter.XY{X: a.MeanP, Y: float64(i)})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		sc.GlyphStyle.Color = regionColors[r]
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(3.5)
		p.Add(sc)
	}
	for i, a := range pl.Anchors {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: fmt.Sprintf("%s  %.2f", a.Label, a.MeanP)})
	}
	y := float64(n)
	me := fmt.Sprintf("this model  %.3f [%.3f, %.3f]", pl.MeanP, pl.CI[0], pl.CI[1])
	if pl.NoCI {
		me = fmt.Sprintf("this model  %.3f (CI undefined)", pl.MeanP)
	}
	ticks = append(ticks, plot.Tick{Value: y, Label: me})
	sep, err := plotter.NewLine(plotter.XYs{{X: 0, Y: y - 0.5}, {X: 1, Y: y - 0.5}})
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	sep.Color = color.Gray{150}
	p.Add(sep)
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Label.Font.Size = vg.Points(8)
	if !pl.NoCI {
		eb := &plotter.XErrorBars{XYs: plotter.XYs{{X: pl.MeanP, Y: y}},
			XErrors: plotter.XErrors{{Low: pl.MeanP - pl.CI[0], High: pl.CI[1] - pl.MeanP}}, LineStyle: plotter.DefaultLineStyle, CapWidth: vg.Points(8)}
		eb.LineStyle.Width = vg.Points(1.5)
		p.Add(eb)
	}
	mark, err := plotter.NewScatter(plotter.XYs{{X: pl.MeanP, Y: y}})
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	mark.GlyphStyle.Color = color.Black
	mark.GlyphStyle.Shape = draw.PyramidGlyph{}
	mark.GlyphStyle.Radius = vg.Points(5)
	p.Add(mark)
	return SavePNG(p, 18*vg.Centimeter, 11*vg.Centimeter, path)
}

// tenths are axis ticks at 0, 0.1, …, 1, labelled at 0, 0.2, …, 1.
func tenths() plot.ConstantTicks {
	var t []plot.Tick
	for i := 0; i <= 10; i++ {
		lab := ""
		if i%2 == 0 {
			lab = fmt.Sprintf("%.1f", float64(i)/10)
		}
		t = append(t, plot.Tick{Value: float64(i) / 10, Label: lab})
	}
	return t
}
