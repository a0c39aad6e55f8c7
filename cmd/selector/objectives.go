package main

import (
	"fmt"
	"math"
	"text/tabwriter"

	"github.com/capsel/capsel/internal/plots"
	"github.com/capsel/capsel/objectives"
)

var cmdObjectives = &command{
	name:  "objectives",
	usage: "selector objectives list [--json] | show SPEC [SPEC...] [--p P,...] [--json] [--plot FILE.png]",
	short: "list the objective family; show f, s and W of objectives at chosen p",
	long: `The paper's objectives are functions f of the model's probability p of the
target token (Li et al., ICML 2026, §3). Their gradient with respect to the
logits is NLL's gradient scaled per token by s(p) = −p·f′(p); the weight on the
correct logit is W(p) = s(p)·(1 − p). Where W puts its mass decides the class:
prior-leaning objectives (most W on p ≥ 0.5) trust what the model already
believes, prior-averse ones (NLL, focal) push hardest on tokens it finds unlikely.
Thresholded objectives are classed by their threshold instead, as the paper
classes −log p·1{p ≥ 0.2}: OnlyTop* drops every token the model finds
unlikely (p below q), the tokens whose weight the paper blames for NLL's
weakness on strong models, so it is prior-leaning even where most of the W it
keeps lies below 0.5; OnlyBottom* keeps only those tokens and is prior-averse.

The trainers also ship objectives that are not functions of p, computed here
exactly as their code computes them: EAFT (LLaMA-Factory, Axolotl) and DEFT
scale each token's gradient by a detached gate read from its whole next-token
distribution, the DEFT fork's Cayley_Trans by the batch's mean p, and ASFT adds
a KL anchor to a frozen reference model. No W(p) curve describes them, so the
paper's classes do not place them; 'show' reads their weight on representative
distributions instead.

  selector objectives list                  the accepted spec forms
  selector objectives show nll p GeneralFamily-10 --plot weights.png
                                            f, s, W on a grid of p, and the
                                            normalised W curves (the paper's Fig. 3)
  selector objectives show OnlyTopLogP-0.2 --p 0.1,0.2,0.9 --json
  selector objectives show eaft-1 deft asft-0.1
                                            gate and W on confident, diffuse and
                                            bimodal distributions

The paper's training-script keys parse unchanged (original, logp, p,
GeneralFamily-α, OnlyTopP-q, OnlyBottomP-q, OnlyTopLogP-q, OnlyBottomLogP-q),
and so do the DEFT fork's (DEFT, Cayley_Trans).`,
}

func init() { cmdObjectives.run = runObjectives }

func runObjectives(e *env, args []string) error {
	return subcommand(e, cmdObjectives, args, map[string]func(*env, []string) error{
		"list": objectivesList,
		"show": objectivesShow,
	})
}

type specFormJSON struct {
	Form    string `json:"form"`
	Range   string `json:"range,omitempty"`
	Formula string `json:"formula"`
	Note    string `json:"note"`
}

func objectivesList(e *env, args []string) error {
	f := newFlags(e, "objectives list", "selector objectives list [--json]",
		"Lists every accepted objective spec form with its parameter range and f(p).")
	asJSON := f.Bool("json", false, "print JSON")
	if err := f.parseNoArgs(args); err != nil {
		return err
	}
	forms := objectives.Specs()
	if *asJSON {
		out := make([]specFormJSON, len(forms))
		for i, s := range forms {
			out[i] = specFormJSON(s)
		}
		return writeJSON(e.stdout, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SPEC\tRANGE\tf(p)\tWHAT IT IS")
	for _, s := range forms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Form, s.Range, s.Formula, s.Note)
	}
	return tw.Flush()
}

type pointJSON struct {
	P float64  `json:"p"`
	F *float64 `json:"f"`
	S *float64 `json:"s"`
	W *float64 `json:"w"`
}

type showJSON struct {
	Spec         string      `json:"spec"`
	Canonical    string      `json:"canonical"`
	Class        string      `json:"class"`
	Form         string      `json:"form"`
	Formula      string      `json:"formula"`
	ClassBy      string      `json:"class_by"`      // "threshold" (OnlyTop*, OnlyBottom*), "weight" (LeaningShare) or "adaptive"
	LeaningShare *float64    `json:"leaning_share"` // share of W's mass on p ≥ 0.5
	PeakP        *float64    `json:"peak_p"`        // argmax of W
	Points       []pointJSON `json:"points"`
	// Shapes: for objectives that are not functions of p, the weight on
	// representative distributions (see objectives.Shapes).
	Shapes []shapePointJSON `json:"shapes,omitempty"`
	// BatchPoints: for deft-cayley, s and W on the grid of p at a few batch
	// mean p.
	BatchPoints []batchPointJSON `json:"batch_points,omitempty"`
}

// shapePointJSON is one target on one representative distribution.
type shapePointJSON struct {
	Distribution string   `json:"distribution"`
	Target       string   `json:"target"`
	P            float64  `json:"p"`
	Stat         *float64 `json:"stat"` // the gate's statistic (top-k entropy, Σ q²); null when none
	Gate         *float64 `json:"gate"`
	S            float64  `json:"s"` // coefficient of softmax − e_y
	W            float64  `json:"w"` // s·(1 − p), the weight on the correct logit
	NLLW         float64  `json:"nll_w"`
}

type batchPointJSON struct {
	MeanP float64 `json:"mean_p"`
	P     float64 `json:"p"`
	A     float64 `json:"a"` // the detached exponent
	S     float64 `json:"s"`
	W     float64 `json:"w"`
}

// cayleyMeans are the batch mean p at which show evaluates deft-cayley.
var cayleyMeans = []float64{0.2, 0.5, 0.8}

// defaultGrid is where "objectives show" evaluates without --p.
var defaultGrid = []float64{0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99}

func objectivesShow(e *env, args []string) error {
	f := newFlags(e, "objectives show", "selector objectives show SPEC [SPEC...] [--p P,...] [--json] [--plot FILE.png]",
		`Prints, for each objective, its formula, class and f(p), s(p) = −p·f′(p) and
W(p) = s(p)·(1 − p) on a grid of p. With several specs, --json prints a list.
--plot draws W/max W for every spec on one figure, as in the paper's Fig. 3.`)
	asJSON := f.Bool("json", false, "print JSON")
	pList := f.String("p", "", "comma-separated probabilities to evaluate at (default a grid from 0.001 to 0.99)")
	plotPath := f.String("plot", "", "write the normalised W curves to this PNG `file`")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return f.usagef("name at least one objective, e.g. 'selector objectives show nll p GeneralFamily-10'")
	}
	grid := defaultGrid
	if *pList != "" {
		if grid, err = parseFloats(*pList); err != nil {
			return f.usagef("--p: %v", err)
		}
		for _, p := range grid {
			if p < 0 || p > 1 {
				return f.usagef("--p: %v is not a probability in [0, 1]", p)
			}
		}
	}
	objs := make([]objectives.Objective, len(pos))
	for i, s := range pos {
		if objs[i], err = objectives.Parse(s); err != nil {
			return f.usagef("%v", err)
		}
	}
	shows := make([]showJSON, len(objs))
	for i, o := range objs {
		sj := showJSON{Spec: o.String(), Canonical: o.Canonical(), Class: o.Class().String(), ClassBy: classBy(o), Form: o.Form().String(), Formula: o.Formula(),
			LeaningShare: num(o.LeaningShare()), PeakP: num(o.PeakP()), Points: []pointJSON{}}
		switch {
		case o.OfP():
			for _, p := range grid {
				sj.Points = append(sj.Points, pointJSON{P: p, F: num(o.F(p)), S: num(o.S(p)), W: num(o.W(p))})
			}
		case o.Form() == objectives.FormBatch:
			for _, m := range cayleyMeans {
				for _, p := range grid {
					_, s, a, err := o.BatchToken(math.Log(p), m)
					if err != nil {
						return err
					}
					sj.BatchPoints = append(sj.BatchPoints, batchPointJSON{MeanP: m, P: p, A: a, S: s, W: s * (1 - p)})
				}
			}
		case !o.Adaptive():
			for _, sh := range objectives.Shapes() {
				for _, tg := range sh.Targets {
					// The reference is the model itself, as at the start of an
					// asft run: the anchor then pulls no logit.
					tv, err := o.Token(sh.LogQ, sh.LogQ, tg.Index)
					if err != nil {
						return err
					}
					sj.Shapes = append(sj.Shapes, shapePointJSON{Distribution: sh.Name, Target: tg.Name, P: tv.P,
						Stat: num(tv.Stat), Gate: num(tv.Gate), S: tv.Scale, W: tv.Scale * (1 - tv.P), NLLW: 1 - tv.P})
				}
			}
		}
		shows[i] = sj
	}
	if *plotPath != "" {
		if err := plotWeights(*plotPath, objs); err != nil {
			return err
		}
		e.log.Info().Str("file", *plotPath).Msg("wrote W curves")
	}
	if *asJSON {
		if len(shows) == 1 {
			return writeJSON(e.stdout, shows[0])
		}
		return writeJSON(e.stdout, shows)
	}
	for i, sj := range shows {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		o := objs[i]
		fmt.Fprintf(e.stdout, "%s    f(p) = %s\n", sj.Spec, sj.Formula)
		if o.Adaptive() {
			fmt.Fprintf(e.stdout, "class: adaptive: the trainer resolves it while training (see 'selector train -h')\n")
			continue
		}
		if !o.OfP() {
			if err := showBeyondP(e, o, sj); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(e.stdout, classLine(o))
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "p\tf(p)\ts(p)\tW(p)\t")
		for _, pt := range sj.Points {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", fmtG(pt.P), fmtP(pt.F), fmtP(pt.S), fmtP(pt.W))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// classBy says what decides o's class: its threshold (OnlyTop*,
// OnlyBottom*, as the paper classes them), the share of W on p ≥ 0.5, or
// nothing fixed (adaptive objectives).
func classBy(o objectives.Objective) string {
	switch {
	case o.Adaptive():
		return "adaptive"
	case !o.OfP():
		return "none" // not a function of p: no W(p), no class (showBeyondP)
	case o.Thresholded():
		return "threshold"
	}
	return "weight"
}

// classLine states o's class and what decided it.
func classLine(o objectives.Objective) string {
	share := fmt.Sprintf("%.1f%%", 100*o.LeaningShare())
	q := fmtG(o.Param())
	switch k := o.Kind(); {
	case classBy(o) != "threshold":
		return fmt.Sprintf("class: %s (%s of the gradient weight W sits on p ≥ 0.5; W peaks at p = %.3g)", o.Class(), share, o.PeakP())
	case k == objectives.KindOnlyTopP || k == objectives.KindOnlyTopLogP:
		return fmt.Sprintf("class: %s, by its threshold: it drops every token with p < %s, those the model finds unlikely,\n"+
			"  which the paper blames for NLL's weakness on strong models (it labels −log p·1{p ≥ 0.2} prior-leaning);\n"+
			"  %s of the gradient weight W it keeps sits on p ≥ 0.5", o.Class(), q, share)
	default:
		return fmt.Sprintf("class: %s, by its threshold: it keeps only tokens with p ≤ %s, those the model finds least likely;\n"+
			"  %s of its gradient weight W sits on p ≥ 0.5", o.Class(), q, share)
	}
}

// showBeyondP prints an objective that is not a function of p: why the
// paper's class does not apply, and its weight where it can be read.
func showBeyondP(e *env, o objectives.Objective, sj showJSON) error {
	w := e.stdout
	fmt.Fprintf(w, "class: none. It is a %s, so it has no W(p),\nand the paper's Def. 3.3, which places f by where W(p) sits on [0, 1], does not place it.\n", o.Form())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if o.Form() == objectives.FormBatch {
		fmt.Fprintln(w, "Its exponent a reads p and the batch's mean p m; s = a·p^a/(a + 1e-8), W = s·(1 − p):")
		fmt.Fprint(tw, "p\t")
		for _, m := range cayleyMeans {
			fmt.Fprintf(tw, "W (m = %g)\t", m)
		}
		fmt.Fprintln(tw, "NLL's W\t")
		for i, p := range sj.BatchPoints[:len(sj.BatchPoints)/len(cayleyMeans)] {
			fmt.Fprintf(tw, "%s\t", fmtG(p.P))
			for j := range cayleyMeans {
				fmt.Fprintf(tw, "%s\t", fmtG(sj.BatchPoints[j*len(sj.BatchPoints)/len(cayleyMeans)+i].W))
			}
			fmt.Fprintf(tw, "%s\t\n", fmtG(1-p.P))
		}
		return tw.Flush()
	}
	stat := map[objectives.Kind]string{objectives.KindEAFT: "H top-20", objectives.KindEAFTAxolotl: fmt.Sprintf("H top-%d", o.TopK()), objectives.KindDEFT: "Σ q²"}[o.Kind()]
	gate := map[objectives.Kind]string{objectives.KindEAFT: "gate", objectives.KindEAFTAxolotl: "gate", objectives.KindDEFT: "exponent c", objectives.KindASFT: "DFT weight"}[o.Kind()]
	fmt.Fprintf(w, "Weight W = s·(1 − p) on the correct logit, s the coefficient of softmax − e_y, on\nrepresentative distributions over %d tokens (NLL's W = 1 − p):\n", objectives.ShapeVocab)
	if o.Form() == objectives.FormAnchored {
		fmt.Fprintf(w, "(with the reference equal to the model, as at the start of the run; as the model\nmoves, the anchor adds %s·(softmax − r) to each token's logit gradient)\n", fmtG(o.Param()))
	}
	head := "distribution\ttarget\tp\t"
	if stat != "" {
		head += stat + "\t"
	}
	fmt.Fprintln(tw, head+gate+"\ts\tW\tNLL's W\t")
	for _, r := range sj.Shapes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t", r.Distribution, r.Target, fmtG(r.P))
		if stat != "" {
			fmt.Fprintf(tw, "%s\t", fmtP(r.Stat))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", fmtP(r.Gate), fmtG(r.S), fmtG(r.W), fmtG(r.NLLW))
	}
	return tw.Flush()
}

// plotWeights draws W_f(p)/max W_f for each objective.
func plotWeights(path string, objs []objectives.Objective) error {
	var curves []plots.Curve
	for _, o := range objs {
		if !o.OfP() {
			continue
		}
		const n = 400
		c := plots.Curve{Name: o.String()}
		peak := o.W(o.PeakP())
		for i := 0; i <= n; i++ {
			p := float64(i) / n
			c.X = append(c.X, p)
			w := o.W(p)
			if peak > 0 {
				w /= peak
			}
			c.Y = append(c.Y, w)
		}
		curves = append(curves, c)
	}
	if len(curves) == 0 {
		return fmt.Errorf("--plot: no objective with a W(p) curve to draw (auto, auto-theory and the objectives that are not functions of p have none)")
	}
	return plots.Lines(path, "Logit-gradient weight W(p) = −p·f′(p)·(1 − p), normalised",
		"p (model probability of the target token)", "W(p) / max W", curves)
}

// num turns NaN and ±Inf into JSON null.
func num(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func fmtP(x *float64) string {
	if x == nil {
		return "∞"
	}
	return fmtG(*x)
}
