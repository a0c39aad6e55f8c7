package experiments

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/capsel/capsel/internal/plots"
	"github.com/capsel/capsel/objectives"
)

func fmtIv(iv Interval) string {
	if iv.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", iv.Mean, iv.Lo, iv.Hi)
}

func fmtDiff(iv Interval) string {
	if iv.N == 0 {
		return "–"
	}
	mark := ""
	if iv.Excludes(0) {
		mark = " *"
	}
	return fmt.Sprintf("%+.3f [%+.3f, %+.3f]%s", iv.Mean, iv.Lo, iv.Hi, mark)
}

// setupLines describes the setup for a results file.
func setupLines(s Setup, command string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Produced by `%s` (task seed %d; fine-tuning seeds 1–%d; every run is deterministic for its seed).\n\n", command, s.TaskSeed, s.Seeds)
	fmt.Fprintf(&b, "- Task: fact recall, %d target facts (prompt `key=`, response the value) and %d distractor facts; base models pretrain on the distractors and a share of the targets (the coverage dial).\n", s.Targets, s.Distractors)
	fmt.Fprintf(&b, "- Base models: d=%d, %d layers, %d heads, context %d; %d steps of %d at lr %g (NLL).\n",
		s.Base.Model.D, s.Base.Model.Layers, s.Base.Model.Heads, s.Base.Model.Context, s.Base.Steps, s.Base.Batch, s.Base.LR)
	fmt.Fprintf(&b, "- Fine-tuning: %d steps of %d at lr %g (AdamW 0.9/0.95, weight decay %g, cosine, warm-up %g, clip %g) on all target facts, a share `noise` of them with a random wrong value.\n",
		s.SFT.Steps, s.SFT.Batch, s.SFT.LR, s.SFT.WeightDecay, s.SFT.WarmupRatio, s.SFT.Clip)
	fmt.Fprintf(&b, "- Evaluation: the target facts with their true values (clean): exact match of greedy generation, token accuracy and mean p of the targets (teacher forcing).\n")
	fmt.Fprintf(&b, "- Intervals: mean and 95%% Student-t CI over %d seeds; differences are paired by seed; `*` marks a CI that excludes 0.\n\n", s.Seeds)
	return b.String()
}

// Markdown renders the continuum result.
func (res *ContinuumResult) Markdown(command string) string {
	var b strings.Builder
	b.WriteString("# Capability continuum on capsel's own models\n\n")
	b.WriteString(setupLines(res.Setup, command))
	b.WriteString("## Verdict\n\n")
	for _, v := range res.Verdicts() {
		b.WriteString("- " + v + "\n")
	}
	b.WriteString("\n## Base models (the probe, before fine-tuning)\n\n")
	b.WriteString("| coverage | mean p (Eq. 5) [95% CI] | p > 0.55 | region | mean p on noisy data | exact match before fine-tuning |\n|---|---|---|---|---|---|\n")
	for _, bi := range res.Bases {
		var noisy []string
		for _, e := range res.Setup.Noises {
			noisy = append(noisy, fmt.Sprintf("E=%g: %.3f", e, bi.NoisyMeanP[fmt.Sprint(e)]))
		}
		fmt.Fprintf(&b, "| %.2f | %.3f [%.3f, %.3f] | %.1f%% | %s | %s | %.3f |\n", bi.Coverage, bi.MeanP, bi.MeanPCI[0], bi.MeanPCI[1],
			100*bi.ShareGT055, bi.Region, strings.Join(noisy, ", "), bi.Eval.ExactMatch)
	}
	for _, e := range res.Setup.Noises {
		fmt.Fprintf(&b, "\n## Label noise %g\n\n", e)
		for _, metric := range []struct {
			name string
			get  func(Metrics) (Interval, Interval)
		}{
			{"token accuracy", func(m Metrics) (Interval, Interval) { return m.TokenAccuracy, m.DiffToken }},
			{"exact match", func(m Metrics) (Interval, Interval) { return m.ExactMatch, m.DiffExact }},
			{"mean p of the true targets", func(m Metrics) (Interval, Interval) { return m.MeanP, m.DiffMeanP }},
		} {
			fmt.Fprintf(&b, "### %s\n\n| coverage (base mean p) |", metric.name)
			for _, o := range res.Setup.Objectives {
				fmt.Fprintf(&b, " %s |", o)
			}
			b.WriteString("\n|---|")
			for range res.Setup.Objectives {
				b.WriteString("---|")
			}
			b.WriteString("\n")
			for _, c := range res.Cells {
				if c.Noise != e {
					continue
				}
				fmt.Fprintf(&b, "| %.2f (%.3f) |", c.Coverage, c.Base.MeanP)
				for _, m := range c.Results {
					v, d := metric.get(m)
					if m.Objective == "nll" {
						fmt.Fprintf(&b, " %s |", fmtIv(v))
					} else {
						fmt.Fprintf(&b, " %s<br>vs nll %s |", fmtIv(v), fmtDiff(d))
					}
				}
				b.WriteString("\n")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// Verdicts states, for every noise rate and metric, whether the paper's
// crossover shows: NLL ahead of every prior-leaning objective at the weak
// end of the dial, and some prior-leaning objective ahead of NLL at the
// strong end, each with a 95 % CI of the paired difference that excludes 0.
func (res *ContinuumResult) Verdicts() []string {
	var out []string
	var weak, strong []Cell
	lo, hi := res.Setup.Coverages[0], res.Setup.Coverages[0]
	for _, c := range res.Setup.Coverages {
		lo, hi = min(lo, c), max(hi, c)
	}
	for _, c := range res.Cells {
		if c.Coverage == lo {
			weak = append(weak, c)
		}
		if c.Coverage == hi {
			strong = append(strong, c)
		}
	}
	metrics := []struct {
		name string
		diff func(Metrics) Interval
	}{
		{"token accuracy", func(m Metrics) Interval { return m.DiffToken }},
		{"exact match", func(m Metrics) Interval { return m.DiffExact }},
		{"mean p of the true targets", func(m Metrics) Interval { return m.DiffMeanP }},
	}
	leaning := func(o string) bool {
		obj, err := objectives.Parse(o)
		return err == nil && obj.Class() == objectives.PriorLeaning
	}
	for i, e := range res.Setup.Noises {
		w, s := weak[i], strong[i]
		for _, m := range metrics {
			var behind, ahead, other []string
			nllAhead := true
			for _, r := range w.Results {
				if leaning(r.Objective) {
					d := m.diff(r)
					if !(d.Hi < 0) {
						nllAhead = false
					}
					behind = append(behind, fmt.Sprintf("%s %+.3f [%+.3f, %+.3f]", r.Objective, d.Mean, d.Lo, d.Hi))
				}
			}
			for _, r := range s.Results {
				if leaning(r.Objective) {
					d := m.diff(r)
					txt := fmt.Sprintf("%s %+.3f [%+.3f, %+.3f]", r.Objective, d.Mean, d.Lo, d.Hi)
					if d.Lo > 0 {
						ahead = append(ahead, txt)
					} else {
						other = append(other, txt)
					}
				}
			}
			v := fmt.Sprintf("**Noise %g, %s.** Weak end (coverage %.2f, base mean p %.3f), prior-leaning minus NLL: %s. Strong end (coverage %.2f, base mean p %.3f): ",
				e, m.name, w.Coverage, w.Base.MeanP, strings.Join(behind, "; "), s.Coverage, s.Base.MeanP)
			if len(ahead) > 0 {
				v += "ahead of NLL: " + strings.Join(ahead, "; ")
				if len(other) > 0 {
					v += "; not ahead: " + strings.Join(other, "; ")
				}
			} else {
				v += "none ahead of NLL: " + strings.Join(other, "; ")
			}
			switch {
			case nllAhead && len(ahead) > 0:
				v += ". **The crossover shows**, with CIs that exclude 0."
			case nllAhead:
				v += ". NLL wins at the weak end, but no prior-leaning objective wins at the strong end: **no crossover**."
			default:
				v += ". NLL is not ahead of every prior-leaning objective at the weak end: **no crossover**."
			}
			out = append(out, v)
		}
	}
	return out
}

// Plots draws held-out accuracy against base-model capability, one line
// per objective, one figure per noise rate and metric.
func (res *ContinuumResult) Plots(dir string) ([]string, error) {
	var files []string
	for _, e := range res.Setup.Noises {
		for _, metric := range []struct {
			slug, name string
			get        func(Metrics) Interval
		}{
			{"token_accuracy", "token accuracy", func(m Metrics) Interval { return m.TokenAccuracy }},
			{"exact_match", "exact match", func(m Metrics) Interval { return m.ExactMatch }},
		} {
			p := plot.New()
			p.Title.Text = fmt.Sprintf("Held-out %s after fine-tuning, label noise %g", metric.name, e)
			p.X.Label.Text = "base model's mean p of the targets (capability, paper Eq. 5)"
			p.Y.Label.Text = metric.name + " (mean, 95% CI over seeds)"
			p.Add(plotter.NewGrid())
			p.Legend.Top, p.Legend.Left = true, true
			for oi, o := range res.Setup.Objectives {
				var pts plotter.XYs
				var errs plotter.YErrors
				for _, c := range res.Cells {
					if c.Noise != e {
						continue
					}
					for _, m := range c.Results {
						if m.Objective == o {
							iv := metric.get(m)
							pts = append(pts, plotter.XY{X: c.Base.MeanP, Y: iv.Mean})
							errs = append(errs, struct{ Low, High float64 }{iv.Mean - iv.Lo, iv.Hi - iv.Mean})
						}
					}
				}
				sort.Sort(byX{pts, errs})
				l, sc, err := plotter.NewLinePoints(pts)
				if err != nil {
					return nil, err
				}
				l.Color, sc.Color = plots.Color(oi), plots.Color(oi)
				l.Width = vg.Points(1.5)
				eb, err := plotter.NewYErrorBars(struct {
					plotter.XYs
					plotter.YErrors
				}{pts, errs})
				if err != nil {
					return nil, err
				}
				eb.Color = plots.Color(oi)
				p.Add(l, sc, eb)
				p.Legend.Add(o, l, sc)
			}
			p.Y.Min, p.Y.Max = 0, 1.25
			name := filepath.Join(dir, fmt.Sprintf("continuum_%s_noise%g.png", metric.slug, e))
			if err := plots.SavePNG(p, 18*vg.Centimeter, 11*vg.Centimeter, name); err != nil {
				return nil, err
			}
			files = append(files, name)
		}
	}
	return files, nil
}

type byX struct {
	xy plotter.XYs
	e  plotter.YErrors
}

func (b byX) Len() int           { return len(b.xy) }
func (b byX) Less(i, j int) bool { return b.xy[i].X < b.xy[j].X }
func (b byX) Swap(i, j int) {
	b.xy[i], b.xy[j] = b.xy[j], b.xy[i]
	b.e[i], b.e[j] = b.e[j], b.e[i]
}

// Markdown renders the theory result.
func (res *TheoryResult) Markdown(command string) string {
	var b strings.Builder
	b.WriteString("# Does the theory predict the winner?\n\n")
	b.WriteString(setupLines(res.Setup, command))
	b.WriteString("Predictors, each naming the objective it expects to do best in a cell:\n\n")
	b.WriteString("- **paper_rate**: the paper's Ṙ_f (§6) averaged over the probe's token contexts of the base model on the noisy fine-tuning data, under the noise model with the cell's true noise rate E and u = the model's own distribution;\n")
	b.WriteString("- **normalised_rate**: Ṙ_f/‖∇L_f‖ on the same sample (risk reduction per unit step length);\n")
	b.WriteString("- **exact_rate**: ⟨∇_θ R, ∇_θ L_f⟩ computed by autograd on the base model itself, R the held-out risk (1 − mean p of the clean targets) and L_f the objective on the noisy fine-tuning data;\n")
	fmt.Fprintf(&b, "- **one_step**: the measured drop in held-out risk after one gradient step of length η = %g along −∇L_f, divided by η.\n\n", res.Setup.Eta)
	b.WriteString("They are compared with the one-step measurement and with the final outcome of full fine-tuning (mean over seeds).\n\n")
	b.WriteString("## Agreement rates (share of cells)\n\n| predictor | with one_step | with final token accuracy | with final exact match |\n|---|---|---|---|\n")
	for _, p := range []string{PredPaper, PredNormalised, PredExact, PredOneStep} {
		a := res.Agreement[p]
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f |\n", p, a[PredOneStep], a[PredFinalToken], a[PredFinalExact])
	}
	fmt.Fprintf(&b, "\n(%d cells.)\n\n## Winners per cell\n\n| coverage | noise | base mean p | paper_rate | normalised_rate | exact_rate | one_step | final token acc. | final exact |\n|---|---|---|---|---|---|---|---|---|\n", len(res.Cells))
	for _, c := range res.Cells {
		w := c.Winners
		fmt.Fprintf(&b, "| %.2f | %g | %.3f | %s | %s | %s | %s | %s | %s |\n", c.Coverage, c.Noise, c.MeanP,
			w[PredPaper], w[PredNormalised], w[PredExact], w[PredOneStep], w[PredFinalToken], w[PredFinalExact])
	}
	b.WriteString("\n## Scores per cell\n\n")
	for _, c := range res.Cells {
		fmt.Fprintf(&b, "**coverage %.2f, noise %g** (base mean p %.3f, %d contexts)\n\n| objective | paper_rate | normalised_rate | exact_rate | one_step | final token acc. | final exact |\n|---|---|---|---|---|---|---|\n", c.Coverage, c.Noise, c.MeanP, c.Contexts)
		for _, p := range c.Predictions {
			fmt.Fprintf(&b, "| %s | %.4g | %.4g | %.4g | %.4g | %s | %s |\n", p.Objective, p.PaperRate, p.Normalised, p.Exact, p.OneStep, fmtIv(p.FinalToken), fmtIv(p.FinalExact))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Markdown renders the autoblend result.
func (res *AutoblendResult) Markdown(command string) string {
	var b strings.Builder
	b.WriteString("# auto and auto-theory against the best fixed objective\n\n")
	b.WriteString(setupLines(res.Setup, command))
	b.WriteString("The best fixed objective of each cell is picked after the fact, by mean token accuracy over seeds: a comparison that favours it.\n\n")
	b.WriteString("| coverage | noise | base mean p | best fixed (token acc.) | auto: token acc. (vs best) | auto-theory: token acc. (vs best) | auto: exact (vs best) | auto-theory: exact (vs best) |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range res.Cells {
		fmt.Fprintf(&b, "| %.2f | %g | %.3f | %s %s |", c.Coverage, c.Noise, c.MeanP, c.BestFixed, fmtIv(c.BestToken))
		for _, a := range c.Adaptive {
			fmt.Fprintf(&b, " %s<br>%s |", fmtIv(a.TokenAccuracy), fmtDiff(a.DiffToken))
		}
		for _, a := range c.Adaptive {
			fmt.Fprintf(&b, " %s<br>%s |", fmtIv(a.ExactMatch), fmtDiff(a.DiffExact))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## Objectives in force (share of steps)\n\n| coverage | noise | auto | auto-theory |\n|---|---|---|---|\n")
	usage := func(u map[string]float64) string {
		keys := make([]string, 0, len(u))
		for k := range u {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return u[keys[i]] > u[keys[j]] })
		var parts []string
		for i, k := range keys {
			if i == 4 {
				parts = append(parts, "…")
				break
			}
			parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*u[k]))
		}
		return strings.Join(parts, ", ")
	}
	for _, c := range res.Cells {
		fmt.Fprintf(&b, "| %.2f | %g | %s | %s |\n", c.Coverage, c.Noise, usage(c.Adaptive[0].Usage), usage(c.Adaptive[1].Usage))
	}
	return b.String()
}
