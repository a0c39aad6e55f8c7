package plots

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/capsel/capsel/internal/atomicfile"
)

// Palette is the colour cycle of every figure (colour-blind safe, after
// Okabe and Ito 2008).
var Palette = []color.Color{
	color.RGBA{0, 114, 178, 255},
	color.RGBA{213, 94, 0, 255},
	color.RGBA{0, 158, 115, 255},
	color.RGBA{204, 121, 167, 255},
	color.RGBA{230, 159, 0, 255},
	color.RGBA{86, 180, 233, 255},
	color.RGBA{0, 0, 0, 255},
	color.RGBA{240, 228, 66, 255},
}

// Color returns the i-th colour of the palette, cycling.
func Color(i int) color.Color { return Palette[i%len(Palette)] }

// SavePNG writes p to path as a w×h PNG, atomically.
func SavePNG(p *plot.Plot, w, h vg.Length, path string) error {
	wt, err := p.WriterTo(w, h, "png")
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return atomicfile.Write(path, func(out io.Writer) error {
		_, err := wt.WriteTo(out)
		return err
	})
}

// Curve is one named line.
type Curve struct {
	Name string
	X, Y []float64
}

// Lines draws curves on one set of axes and saves the figure to path.
func Lines(path, title, xLabel, yLabel string, curves []Curve) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for i, c := range curves {
		pts := make(plotter.XYs, len(c.X))
		for j := range c.X {
			pts[j].X, pts[j].Y = c.X[j], c.Y[j]
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: curve %s: %w", path, c.Name, err)
		}
		l.Color = Color(i)
		l.Width = vg.Points(1.5)
		if i >= len(Palette) {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l)
		p.Legend.Add(c.Name, l)
	}
	// Headroom for the legend, so that it does not sit on the curves.
	p.Y.Max += 0.12 * float64(len(curves)) * (p.Y.Max - p.Y.Min)
	return SavePNG(p, 16*vg.Centimeter, 10*vg.Centimeter, path)
}
