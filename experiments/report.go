package experiments

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"

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

// metricName returns a metric's name by key.
func metricName(key string) string {
	for _, m := range Metrics {
		if m.Key == key {
			return m.Name
		}
	}
	return key
}

// setting names a cell's noise.
func setting(c Condition) string {
	if c.Noise == 0 {
		return "clean labels"
	}
	return fmt.Sprintf("%s noise %g", c.Scheme, c.Noise)
}

// quickNote is the warning every quick result carries.
const quickNote = "**Quick mode: these numbers check the pipeline on tiny models and say nothing about the science. The verdicts below are not findings.**\n\n"

// setupLines describes the setup for a results file.
func setupLines(s Setup, command string) string {
	var b strings.Builder
	if s.Quick {
		b.WriteString(quickNote)
	}
	fmt.Fprintf(&b, "Produced by `%s` (task seed %d; replicates 1–%d; every run is deterministic for its seeds).\n\n", command, s.TaskSeed, s.Replicates)
	for _, t := range s.Tasks {
		switch t {
		case "fact":
			f := s.Fact
			fmt.Fprintf(&b, "- Task fact: recall of random facts (prompt `key=`, response the value). Fine-tuning on %d facts; the held-out test asks %d others. Base models pretrain on %d distractor facts and on the covered share of both sets (%d steps); the %s base model instead on the distractors and %d unfamiliar random facts.\n",
				f.Train, f.HeldOut, f.Distractors, f.Steps, FactVariant, f.Unfamiliar)
		case "rule":
			r := s.Rule
			fmt.Fprintf(&b, "- Task rule: a letter substitution σ on %d-letter words (prompt `word>`, response σ(word)). Fine-tuning on %d words; the held-out test asks %d new words. Base models pretrain on %d documents (%d steps), half of them rule documents whose covered letters follow σ and the rest are random, half a distractor substitution; the %s base model's rule documents follow a wrong permutation.\n",
				RuleLength, r.Train, r.HeldOut, r.Pretrain, r.Steps, RuleVariant)
		}
	}
	fmt.Fprintf(&b, "- Base models: d=%d, %d layers, %d heads; batch %d at lr %g (NLL); coverages %v", s.Base.Model.D, s.Base.Model.Layers, s.Base.Model.Heads, s.Base.Batch, s.Base.LR, s.Coverages)
	if s.Variants {
		b.WriteString(" and each task's other weak base model")
	}
	fmt.Fprintf(&b, "; %d replicates (base model r: seed r, fine-tuned with seed r on noise draw r).\n", s.Replicates)
	fmt.Fprintf(&b, "- Fine-tuning: %d steps of %d at lr %g (AdamW 0.9/0.95, weight decay %g, cosine, warm-up %g, clip %g) with %s.\n",
		s.SFT.Steps, s.SFT.Batch, s.SFT.LR, s.SFT.WeightDecay, s.SFT.WarmupRatio, s.SFT.Clip, strings.Join(s.Objectives, ", "))
	fmt.Fprintf(&b, "- Noise: rates %v of the fine-tuning examples, schemes %v; every base model runs clean and at the largest rate, the rates in between on the dial from coverage %g up.\n", s.Noises, s.Schemes, s.SweepFrom)
	b.WriteString("- Evaluation: the held-out test (prompts fine-tuning never saw) and, named so, the training-set fit (the fine-tuning prompts with their true responses): exact match of greedy generation, token accuracy and mean p of the true targets.\n")
	b.WriteString("- Intervals: mean and 95 % Student-t CI over replicates; differences are paired by replicate, `*` marks a CI that excludes 0. A cell's winner beats every other fixed objective with such a CI; otherwise the cell is a tie.\n\n")
	return b.String()
}

// CrossoverText states a crossover in one sentence. bold marks verdicts
// (never in quick mode).
func (x Crossover) CrossoverText(bold bool) string {
	em := func(s string) string {
		if bold {
			return "**" + s + "**"
		}
		return s
	}
	pt := func(i int) string {
		p := x.Points[i]
		return fmt.Sprintf("%s (mean p as given %.3f, clean %.3f): %s %s", p.Base, p.MeanPGiven, p.MeanPClean, p.Best, fmtDiff(p.Diff))
	}
	head := fmt.Sprintf("%s, %s, %s: ", x.Task, setting(Condition{Scheme: x.Scheme, Noise: x.Noise}), metricName(x.Metric))
	if x.Seen {
		return head + em("crossover seen") + fmt.Sprintf(" between %s and %s (prior-leaning minus NLL)", pt(x.Below), pt(x.Above))
	}
	nllAt, leanAt := []string{}, []string{}
	for _, p := range x.Points {
		if p.NLLAhead {
			nllAt = append(nllAt, p.Base.String())
		}
		if p.LeaningAhead {
			leanAt = append(leanAt, fmt.Sprintf("%s (%s %s)", p.Base, p.Best, fmtDiff(p.Diff)))
		}
	}
	why := "no base model has a prior-leaning objective ahead of NLL"
	switch {
	case len(leanAt) > 0 && len(nllAt) == 0:
		why = "a prior-leaning objective is ahead at " + strings.Join(leanAt, ", ") + ", but NLL is ahead of every prior-leaning objective nowhere"
	case len(leanAt) > 0:
		why = "a prior-leaning objective is ahead at " + strings.Join(leanAt, ", ") + " but not above where NLL is ahead (" + strings.Join(nllAt, ", ") + ")"
	case len(nllAt) > 0:
		why += "; NLL is ahead of all of them at " + strings.Join(nllAt, ", ")
	}
	return head + em("not seen") + ": " + why + fmt.Sprintf(". At the strongest point, %s.", pt(len(x.Points)-1))
}

// Markdown renders the continuum result.
func (res *ContinuumResult) Markdown(command string) string {
	s := res.Setup
	var b strings.Builder
	b.WriteString("# Capability continuum on capsel's own models\n\n")
	b.WriteString(setupLines(s, command))
	b.WriteString("## Crossovers along the dial\n\nFor every task, noise setting run on the whole dial, and metric (JSON: `crossovers[i]`). The x-axis is the probe's mean p on the fine-tuning data as given, what a user measures.\n\n")
	for i, x := range res.Crossovers {
		fmt.Fprintf(&b, "- `[%d]` %s\n", i, x.CrossoverText(!s.Quick))
	}
	b.WriteString("\n## Base models\n\nThe probe on the clean fine-tuning data, and the base model's own figures before fine-tuning, teacher-forced on those targets (JSON: `bases[i]`). A diffuse model has entropy near log V and top-1 near 1/V; a confidently wrong one low entropy, high top-1 and a tiny median p.\n\n")
	b.WriteString("| | task | base | mean p [95% CI] | p > 0.55 | region | median p | entropy (log V) | top-1 p | held-out exact (base) | train-fit exact (base) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, bi := range res.Bases {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %.1f%% | %s | %.4f | %.2f (%.2f) | %.3f | %.3f | %.3f |\n", i, bi.Task, bi.Base, fmtIv(bi.Probe.MeanP), 100*bi.Probe.ShareGT055.Mean,
			bi.Probe.Region, bi.MedianP.Mean, bi.Entropy.Mean, bi.LogV, bi.Top1P.Mean, bi.HeldOut.ExactMatch.Mean, bi.TrainFit.ExactMatch.Mean)
	}
	b.WriteString("\n## Cells\n\nPer task and noise setting: the probe as given (and on clean data), then per metric every objective's mean [95% CI] and its paired difference to NLL, and the verdict among the fixed objectives (JSON: `cells[i]`). Every metric of every cell is in the JSON; the tables show three.\n")
	shown := []string{"held_out_exact_match", "held_out_token_accuracy", "train_fit_token_accuracy"}
	type group struct {
		task string
		sc   Scheme
		e    float64
	}
	var order []group
	idx := map[group][]int{}
	for i, c := range res.Cells {
		g := group{c.Task, c.Scheme, c.Noise}
		if _, ok := idx[g]; !ok {
			order = append(order, g)
		}
		idx[g] = append(idx[g], i)
	}
	for _, g := range order {
		fmt.Fprintf(&b, "\n### %s, %s\n\n", g.task, setting(Condition{Scheme: g.sc, Noise: g.e}))
		for _, key := range shown {
			fmt.Fprintf(&b, "%s:\n\n| | base | probe as given (clean) | p > 0.55 as given |", metricName(key))
			compared := append(slices.Clone(s.Objectives), s.Baselines...)
			for _, o := range compared {
				fmt.Fprintf(&b, " %s |", o)
			}
			b.WriteString(" verdict |\n|---|---|---|---|")
			for range compared {
				b.WriteString("---|")
			}
			b.WriteString("---|\n")
			for _, i := range idx[g] {
				c := res.Cells[i]
				fmt.Fprintf(&b, "| %d | %s | %.3f (%.3f) | %.1f%% |", i, c.Base, c.ProbeGiven.MeanP.Mean, c.ProbeClean.MeanP.Mean, 100*c.ProbeGiven.ShareGT055.Mean)
				for _, o := range c.Results {
					if o.Objective == "nll" {
						fmt.Fprintf(&b, " %s |", fmtIv(o.Scores[key]))
					} else {
						fmt.Fprintf(&b, " %s<br>%s |", fmtIv(o.Scores[key]), fmtDiff(o.VsNLL[key]))
					}
				}
				fmt.Fprintf(&b, " %s |\n", decisionText(c.Decisions[key]))
			}
			b.WriteString("\n")
		}
	}
	if rows := res.beyondP(); len(rows) > 0 {
		b.WriteString("## The trainers' objectives against NLL and −p\n\nFor every objective that is not a function of p alone, per task, noise group (every rate of a scheme) and held-out metric: the cells where it is ahead of, tied with or behind NLL and −p (paired CI), the mean difference over the cells, and the best and worst cell (JSON: `standings[i]`, keyed by task, group, metric, objective and vs; cells by `cells[i].key`).\n\n| | task | group | metric | objective | vs | ahead / tied / behind | mean diff | best cell | worst cell | ahead at | behind at |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, i := range rows {
			st := res.Standings[i]
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %d / %d / %d | %+.3f | %s %s | %s %s | %s | %s |\n", i, st.Task, st.Group, metricName(st.Metric), st.Objective, st.Vs,
				len(st.Ahead), st.Tied, len(st.Behind), st.MeanDiff, st.Best.Cell, fmtDiff(st.Best.Diff), st.Worst.Cell, fmtDiff(st.Worst.Diff), cellList(st.Ahead), cellList(st.Behind))
		}
		b.WriteString("\n")
	}
	b.WriteString(res.noiseAwareMarkdown())
	if len(res.NoiseFlips) > 0 {
		b.WriteString("## Along the noise rate\n\nFor the dial's upper base models: the best prior-leaning objective minus NLL at each noise rate (token noise rate in brackets), and the lowest rate at which one is ahead (JSON: `noise_flips[i]`).\n\n| | task | base | scheme | metric | by noise rate | flip at |\n|---|---|---|---|---|---|---|\n")
		for i, f := range res.NoiseFlips {
			var parts []string
			for j, e := range f.Noises {
				parts = append(parts, fmt.Sprintf("%g (%.3f): %s %s", e, f.TokenNoise[j], f.Points[j].Best, fmtDiff(f.Points[j].Diff)))
			}
			flip := "none"
			if f.Flip >= 0 {
				flip = fmt.Sprint(f.Flip)
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", i, f.Task, f.Base, f.Scheme, metricName(f.Metric), strings.Join(parts, "<br>"), flip)
		}
	}
	return b.String()
}

// noiseAwareMarkdown is the noise-aware probe's section: its accuracy
// against the truth, its figures per cell, and the selector's class-level
// calls against the measured winners.
func (res *ContinuumResult) noiseAwareMarkdown() string {
	var b strings.Builder
	b.WriteString(res.noiseAccuracyMarkdown("##"))
	b.WriteString("\nPer cell, greedy answers, means over replicates (JSON: `cells[i].noise_aware_probe`, and `noise_probes[i]` for the probe-only cells). The call is the class most replicates' `choose.Decide` names.\n\n| cell | true C | raw mean p | Ĉ [95% CI] | true E | Ê (defined in) | token noise | flagged | call |\n|---|---|---|---|---|---|---|---|---|\n")
	row := func(key string, raw float64, f *NoiseAwareFigures) {
		if f == nil {
			return
		}
		g := f.Greedy
		e := "–"
		if g.Noise != nil {
			e = fmt.Sprintf("%.3f (%d)", g.Noise.Mean, g.NoiseDefined)
		}
		tn := "–"
		if g.TokenNoise != nil {
			tn = fmt.Sprintf("%.3f", g.TokenNoise.Mean)
		}
		rawText := "–"
		if raw >= 0 {
			rawText = fmt.Sprintf("%.3f", raw)
		}
		fmt.Fprintf(&b, "| `%s` | %.3f | %s | %s | %.3f | %s | %s | %.1f | %s |\n", key, f.TrueCapability.Mean, rawText, fmtIv(g.Capability), f.TrueNoise, e, tn, g.Flagged, f.Class)
	}
	for _, c := range res.Cells {
		row(c.Key, c.ProbeGiven.MeanP.Mean, c.NoiseAware)
	}
	for _, c := range res.NoiseProbes {
		row(c.Key, -1, c.NoiseAware)
	}
	b.WriteString("\n")
	b.WriteString(res.selectorMarkdown("##", "JSON: `selector[i]`"))
	return b.String()
}

// noiseAccuracyMarkdown is the table of the noise-aware probe's accuracy
// against the truth, under a heading of the given level.
func (res *ContinuumResult) noiseAccuracyMarkdown(level string) string {
	var b strings.Builder
	b.WriteString(level + " The noise-aware probe\n\nCapability Ĉ and noise rate Ê of every base model on every condition's data as given (package labelnoise; `greedy`: the model's own greedy answers, `teacher-forced`: approximated from the label path, as log-prob files allow), against the truth: the mean p of the clean targets and the share of corrupted examples. RMSE over the replicate estimates; Ê only where it is defined (the model reproduces at least 10 labels), with how many are not; how many of Ê's 95% intervals cover the truth (JSON: `continuum.json` `noise_accuracy[i]`). `token` is dense per-token noise, probed only.\n\n| | task | scheme | method | estimates | Ĉ RMSE | raw mean p RMSE | Ê RMSE | Ê defined / undefined | Ê CI covers |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for i, a := range res.NoiseAccuracy {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %d | %.3f | %.3f | %s | %d / %d | %d / %d |\n", i, a.Task, a.Scheme, a.Method, a.Estimates, a.CapabilityRMSE, a.RawMeanPRMSE,
			orDash(fmtRMSE(a)), a.NoiseDefined, a.NoiseUndefined, a.NoiseCovered, a.NoiseDefined)
	}
	return b.String()
}

// selectorMarkdown is the table of the class-level rules against the
// measured winners, under a heading of the given level; "" without them.
func (res *ContinuumResult) selectorMarkdown(level, source string) string {
	if len(res.Selector) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(level + " The selector's class-level call\n\nHow often a rule names the measured class-level winner of a cell: prior-leaning when some prior-leaning objective (")
	b.WriteString(strings.Join(callLeaning(res.Setup), ", "))
	b.WriteString(") beats NLL with a paired CI above 0, NLL when NLL beats all of them; other cells are ties and left out (" + source + ").\n\n| | metric | rule | agrees | ties | misses |\n|---|---|---|---|---|---|\n")
	for i, sc := range res.Selector {
		fmt.Fprintf(&b, "| %d | %s | %s | %d / %d | %d | %s |\n", i, metricName(sc.Metric), sc.Rule, sc.Agree, sc.Decided, sc.Ties, cellList(sc.Misses))
	}
	b.WriteString("\n")
	return b.String()
}

func fmtRMSE(a NoiseAwareAccuracy) string {
	if a.NoiseDefined == 0 {
		return ""
	}
	return fmt.Sprintf("%.3f", a.NoiseRMSE)
}

// heldOutMetrics are the metrics of the held-out test.
var heldOutMetrics = []string{"held_out_exact_match", "held_out_token_accuracy", "held_out_mean_p"}

// beyondP returns the indices of the standings of the objectives that are
// not functions of p alone (the trainers' EAFT, DEFT, ASFT, …) on the
// held-out metrics.
func (res *ContinuumResult) beyondP() []int {
	var out []int
	for i, st := range res.Standings {
		if o, err := objectives.Parse(st.Objective); err == nil && !o.Adaptive() && !o.OfP() && slices.Contains(heldOutMetrics, st.Metric) {
			out = append(out, i)
		}
	}
	return out
}

// cellList shortens a list of cell keys for a table.
func cellList(keys []string) string {
	if len(keys) == 0 {
		return "–"
	}
	return strings.Join(keys, ", ")
}

func decisionText(d Decision) string {
	if d.Decided() {
		return d.Winner
	}
	return "tie: " + strings.Join(d.Leaders, ", ")
}

// plotMetrics are the metrics drawn as figures.
var plotMetrics = []string{"held_out_token_accuracy", "held_out_exact_match", "train_fit_token_accuracy"}

// Plots draws every metric of plotMetrics against capability, one line per
// objective, one figure per task and noise setting run on the whole dial;
// and against the noise rate for each swept base model and scheme. The
// capability axis is the probe's mean p on the data as given; a strip shows
// where the clean data would have put each base model.
func (res *ContinuumResult) Plots(dir string) ([]string, error) {
	var files []string
	s := res.Setup
	seen := map[string]bool{}
	for _, x := range res.Crossovers {
		if !slices.Contains(plotMetrics, x.Metric) {
			continue
		}
		var cells []*Cell
		for i := range res.Cells {
			c := &res.Cells[i]
			if c.Task == x.Task && c.Scheme == x.Scheme && c.Noise == x.Noise {
				cells = append(cells, c)
			}
		}
		// The dial as lines; the other weak base model as detached squares.
		var series []plots.Series
		variant := ""
		for oi, o := range s.Objectives {
			dial := plots.Series{Name: o, ColorSlot: oi, Dashed: oi >= len(plots.Palette)}
			other := plots.Series{Name: o, ColorSlot: oi, Detached: true}
			for _, c := range cells {
				sr := &dial
				if c.Base.Variant != "" {
					sr, variant = &other, c.Base.Variant
				}
				iv := c.Outcome(o).Scores[x.Metric]
				sr.X = append(sr.X, c.ProbeGiven.MeanP.Mean)
				sr.Y, sr.Lo, sr.Hi = append(sr.Y, iv.Mean), append(sr.Lo, iv.Lo), append(sr.Hi, iv.Hi)
			}
			series = append(series, dial)
			if len(other.X) > 0 {
				series = append(series, other)
			}
		}
		var shifts []plots.Shift
		for _, c := range cells {
			shifts = append(shifts, plots.Shift{Clean: c.ProbeClean.MeanP.Mean, Given: c.ProbeGiven.MeanP.Mean})
		}
		slug := "clean"
		if x.Noise > 0 {
			slug = fmt.Sprintf("%s%g", x.Scheme, x.Noise)
		}
		name := filepath.Join(dir, fmt.Sprintf("continuum_%s_%s_%s.png", x.Task, slug, x.Metric))
		if seen[name] {
			continue
		}
		seen[name] = true
		title := fmt.Sprintf("%s task, %s: %s after fine-tuning", x.Task, setting(Condition{Scheme: x.Scheme, Noise: x.Noise}), metricName(x.Metric))
		if variant != "" {
			title += fmt.Sprintf("\n(lines: the coverage dial; squares: the %s base model)", variant)
		}
		if s.Quick {
			title = "QUICK (meaningless): " + title
		}
		if err := plots.Experiment(name, title, "probe's mean p on the fine-tuning data as given (paper Eq. 5)", metricName(x.Metric)+" (mean, 95% CI)", series, shifts); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	for _, f := range res.NoiseFlips {
		if f.Metric != plotMetrics[0] {
			continue
		}
		var series []plots.Series
		for oi, o := range s.Objectives {
			sr := plots.Series{Name: o, ColorSlot: oi, Dashed: oi >= len(plots.Palette)}
			for _, e := range f.Noises {
				for i := range res.Cells {
					c := &res.Cells[i]
					if c.Task == f.Task && c.Base == f.Base && c.Noise == e && (e == 0 || c.Scheme == f.Scheme) {
						iv := c.Outcome(o).Scores[f.Metric]
						sr.X = append(sr.X, e)
						sr.Y, sr.Lo, sr.Hi = append(sr.Y, iv.Mean), append(sr.Lo, iv.Lo), append(sr.Hi, iv.Hi)
					}
				}
			}
			series = append(series, sr)
		}
		name := filepath.Join(dir, fmt.Sprintf("noise_%s_%s_%s_%s.png", f.Task, f.Base.key(), f.Scheme, f.Metric))
		title := fmt.Sprintf("%s task, %s, %s noise: %s", f.Task, f.Base, f.Scheme, metricName(f.Metric))
		if s.Quick {
			title = "QUICK (meaningless): " + title
		}
		if err := plots.Experiment(name, title, "label-noise rate (share of fine-tuning examples corrupted)", metricName(f.Metric)+" (mean, 95% CI)", series, nil); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	return files, nil
}

// agreementText is "agree/decided of cells".
func agreementText(a Agreement) string {
	if a.Decided == 0 {
		return fmt.Sprintf("– (0 of %d decided)", a.Cells)
	}
	via := ""
	if a.ViaTie > 0 {
		via = fmt.Sprintf("; %d of the agreeing through a predicted tie", a.ViaTie)
	}
	return fmt.Sprintf("%.2f (%d/%d; %d ties%s)", *a.Rate, a.Agree, a.Decided, a.Cells-a.Decided, via)
}

// Markdown renders the theory result.
func (res *TheoryResult) Markdown(command string) string {
	s := res.Setup
	var b strings.Builder
	b.WriteString("# Does the theory predict the winner?\n\n")
	b.WriteString(setupLines(s, command))
	b.WriteString("Predictors, each naming the fixed objective it expects to do best in a cell, averaged over the replicates' base models:\n\n")
	b.WriteString("- **paper_rate**: the paper's Ṙ_f (§6, App. E) over the base model's token contexts of the fine-tuning data as given, split by the known truth of every label into the clean part A and the noisy part B, at the data's own token noise rate;\n")
	b.WriteString("- **posterior_rate**: the same with the truths hidden, the sample split by the Bayes posterior that each label is clean, at the data's true token noise rate (`theory.NoiseModel.Posterior`);\n")
	b.WriteString("- **flat_rate**: the truths hidden and every context counted in both parts (the first experiments' estimate, which mixes clean and noisy contexts);\n")
	b.WriteString("- **normalised_rate**: Ṙ_f/‖∇L_f‖ with the known truths;\n")
	b.WriteString("- **exact_rate**: ⟨∇_θ R, ∇_θ L_f⟩ by autograd on the base model, R the held-out risk (1 − mean p of the held-out targets), L_f the objective on the data as given;\n")
	fmt.Fprintf(&b, "- **one_step**: the measured drop in held-out risk after one gradient step of length η = %g along −∇L_f, divided by η.\n\n", s.Eta)
	b.WriteString("The trainers' objectives that are not functions of p enter every predictor: their rates use the scale of their detached gate on each context's q (`theory.Scope` says what each stands on). asft-α's KL anchor has zero gradient at the base model, its own reference, so its gradient there is DFT's and every predictor scores it exactly as −p; a predictor whose best score is shared exactly names all the objectives that share it (`cells[i].predicted_tied`), and agrees with a measured winner among them.\n\n")
	b.WriteString("A cell's measured winner beats every other fixed objective with a paired CI that excludes 0; cells without one are ties, and agreement rates are over the decided cells.\n\n")
	b.WriteString("## Agreement with the measured winner\n\nRate (agreeing/decided; ties) per task, noise group and metric (JSON: `agreements[i]`).\n\n")
	for _, task := range s.Tasks {
		for _, m := range Metrics {
			fmt.Fprintf(&b, "**%s, %s**\n\n| group |", task, m.Name)
			for _, p := range Predictors {
				fmt.Fprintf(&b, " %s |", p)
			}
			b.WriteString("\n|---|")
			for range Predictors {
				b.WriteString("---|")
			}
			b.WriteString("\n")
			var groups []string
			for _, a := range res.Agreements {
				if a.Task == task && a.Metric == m.Key && !slices.Contains(groups, a.Group) {
					groups = append(groups, a.Group)
				}
			}
			for _, g := range groups {
				fmt.Fprintf(&b, "| %s |", g)
				for _, p := range Predictors {
					for i, a := range res.Agreements {
						if a.Task == task && a.Metric == m.Key && a.Group == g && a.Predictor == p {
							fmt.Fprintf(&b, " %s `[%d]` |", agreementText(a), i)
						}
					}
				}
				b.WriteString("\n")
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("## The crossover noise rate E*\n\nE* of each prior-leaning objective, and of each objective beyond f(p), against NLL (`theory.Compare`), as a token noise rate, mean over replicates [95% CI] (JSON: `cells[i].crossovers`). With known truths it needs noisy labels in the data, so clean cells have none; the paper's definition makes it independent of the data's own noise rate, which the columns along one base model test.\n\n")
	b.WriteString("| | task | base | noise | token noise | objective | E* known truth | E* posterior | E* flat |\n|---|---|---|---|---|---|---|---|---|\n")
	for i, c := range res.Cells {
		for _, x := range c.Crossovers {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %.3f | %s | %s | %s | %s |\n", i, c.Task, c.Base, setting(c.Condition), c.TokenNoise, x.Objective, fmtEstar(x.Known), fmtEstar(x.Posterior), fmtEstar(x.Flat))
		}
	}
	b.WriteString("\n## Winners per cell\n\n| | task | base | noise | mean p as given |")
	for _, p := range Predictors {
		fmt.Fprintf(&b, " %s |", p)
	}
	for _, m := range Metrics[:3] {
		fmt.Fprintf(&b, " measured: %s |", m.Name)
	}
	b.WriteString("\n|---|---|---|---|---|")
	for range len(Predictors) + 3 {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for i, c := range res.Cells {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %.3f |", i, c.Task, c.Base, setting(c.Condition), c.MeanPGiven)
		for _, p := range Predictors {
			named := c.Predicted[p]
			if tied := c.PredictedTied[p]; len(tied) > 0 {
				named += " = " + strings.Join(tied, " = ")
			}
			fmt.Fprintf(&b, " %s |", named)
		}
		for _, m := range Metrics[:3] {
			fmt.Fprintf(&b, " %s |", decisionText(c.Final[m.Key]))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func fmtEstar(iv Interval) string {
	switch iv.N {
	case 0:
		return "–"
	case 1:
		return fmt.Sprintf("%.3f (1 replicate)", iv.Mean)
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", iv.Mean, math.Max(iv.Lo, 0), math.Min(iv.Hi, 1))
}

// Markdown renders the autoblend result.
func (res *AutoblendResult) Markdown(command string) string {
	s := res.Setup
	var b strings.Builder
	b.WriteString("# auto, auto-theory and clean-nll against the best fixed objective\n\n")
	b.WriteString(setupLines(s, command))
	b.WriteString("The best fixed objective of each cell and metric is picked after the fact, by its mean over replicates: a comparison that favours it. The gap is the adaptive objective minus that objective, paired by replicate.\n\n")
	b.WriteString("## Summary\n\nPer task, noise group and metric: cells where the adaptive objective is behind / tied / ahead (paired CI), the mean gap, and the worst cell (JSON: `summaries[i]`).\n\n| | task | group | metric | objective | behind / tied / ahead | mean gap | worst cell |\n|---|---|---|---|---|---|---|---|\n")
	for i, sm := range res.Summaries {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %d / %d / %d | %+.3f | %s %s |\n", i, sm.Task, sm.Group, metricName(sm.Metric), sm.Objective, sm.Behind, sm.Tied, sm.Ahead, sm.MeanGap, sm.Worst, fmtDiff(sm.WorstGap))
	}
	b.WriteString("\n## Cells\n\n")
	key := plotMetrics[0]
	fmt.Fprintf(&b, "%s (JSON: `cells[i]`):\n\n| | task | base | noise | mean p as given | best fixed |", metricName(key))
	if len(res.Cells) > 0 {
		for _, a := range res.Cells[0].Adaptive {
			fmt.Fprintf(&b, " %s (vs best) | %s: objectives in force |", a.Objective, a.Objective)
		}
	}
	b.WriteString("\n|---|---|---|---|---|---|")
	if len(res.Cells) > 0 {
		for range res.Cells[0].Adaptive {
			b.WriteString("---|---|")
		}
	}
	b.WriteString("\n")
	for i, c := range res.Cells {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %.3f | %s |", i, c.Task, c.Base, setting(c.Condition), c.MeanPGiven, c.BestFixed[key])
		for _, a := range c.Adaptive {
			fmt.Fprintf(&b, " %s<br>%s | %s |", fmtIv(a.Scores[key]), fmtDiff(a.VsBest[key]), usageText(a.Usage))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func usageText(u map[string]float64) string {
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if u[keys[i]] != u[keys[j]] {
			return u[keys[i]] > u[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for i, k := range keys {
		if i == 3 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*u[k]))
	}
	return strings.Join(parts, ", ")
}

// summaryMetrics are the metrics of the summary.
var summaryMetrics = []string{"held_out_exact_match", "held_out_token_accuracy", "held_out_mean_p", "train_fit_token_accuracy"}

// Summary states, per task, noise group and metric, the crossover along
// the dial, the theory's agreement with the decided winners and auto's gap
// to the best fixed objective, each with the JSON row it comes from; and
// the probe's figures per base model on clean data and as given.
func Summary(cont *ContinuumResult, th *TheoryResult, ab *AutoblendResult, command string) string {
	s := cont.Setup
	var b strings.Builder
	b.WriteString("# Summary\n\n")
	b.WriteString(setupLines(s, command))
	top := slices.Max(s.Noises)
	b.WriteString("Per task, noise group and metric: the crossover along the dial (clean labels, or the scheme at the largest noise rate; `continuum.json` `crossovers[i]`); how often the paper's rate with known truths (`paper_rate`) and with the posterior split (`posterior_rate`) name the decided winner, over every cell of the group (`theory.json` `agreements[i]`); and the gap of auto, auto-theory and clean-nll (NLL on the data without the noise-aware probe's flagged examples) to the best fixed objective over the group's cells (`autoblend.json` `summaries[i]`); the group `all` is every cell of the task.\n\n")
	for _, task := range s.Tasks {
		fmt.Fprintf(&b, "## %s\n\n| group | metric | crossover along the dial | paper_rate agrees | posterior_rate agrees | auto vs best fixed: mean gap (behind/tied/ahead) | auto-theory vs best fixed | clean-nll vs best fixed |\n|---|---|---|---|---|---|---|---|\n", task)
		for _, g := range append(groupsOf(cont.Cells), "all") {
			for _, key := range summaryMetrics {
				cross := "–"
				for i, x := range cont.Crossovers {
					if x.Task == task && x.Metric == key && group(Condition{Scheme: x.Scheme, Noise: x.Noise}) == g && (x.Noise == 0 || x.Noise == top) {
						cross = crossCell(x, i)
					}
				}
				agree := map[string]string{}
				for i, a := range th.agreementsOrNil() {
					if a.Task == task && a.Group == g && a.Metric == key {
						agree[a.Predictor] = fmt.Sprintf("%s `[%d]`", agreementText(a), i)
					}
				}
				auto := map[string]string{}
				for i, sm := range ab.Summaries {
					if sm.Task == task && sm.Group == g && sm.Metric == key {
						auto[sm.Objective] = fmt.Sprintf("%+.3f (%d/%d/%d) `[%d]`", sm.MeanGap, sm.Behind, sm.Tied, sm.Ahead, i)
					}
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", g, metricName(key), cross, orDash(agree[PredPaper]), orDash(agree[PredPosterior]), orDash(auto["auto"]), orDash(auto["auto-theory"]), orDash(auto[CleanNLL]))
			}
		}
		b.WriteString("\n")
	}
	if len(cont.NoiseFlips) > 0 {
		b.WriteString("## Along the noise rate\n\nFor the dial's upper base models, the lowest noise rate at which a prior-leaning objective is ahead of NLL with a CI that excludes 0, with the token noise rate there, or \"none\" (`continuum.json` `noise_flips[i]`).\n\n| task | base | scheme |")
		for _, key := range summaryMetrics {
			fmt.Fprintf(&b, " %s |", metricName(key))
		}
		b.WriteString("\n|---|---|---|")
		for range summaryMetrics {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		type row struct {
			task   string
			base   Base
			scheme Scheme
		}
		var rows []row
		for _, f := range cont.NoiseFlips {
			r := row{f.Task, f.Base, f.Scheme}
			if !slices.Contains(rows, r) {
				rows = append(rows, r)
			}
		}
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s |", r.task, r.base, r.scheme)
			for _, key := range summaryMetrics {
				cell := "–"
				for i, f := range cont.NoiseFlips {
					if f.Task == r.task && f.Base == r.base && f.Scheme == r.scheme && f.Metric == key {
						cell = fmt.Sprintf("none `[%d]`", i)
						if f.Flip >= 0 {
							j := slices.Index(f.Noises, f.Flip)
							cell = fmt.Sprintf("%g (token %.3f): %s %s `[%d]`", f.Flip, f.TokenNoise[j], f.Points[j].Best, fmtDiff(f.Points[j].Diff), i)
						}
					}
				}
				fmt.Fprintf(&b, " %s |", cell)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	var beyond []string
	for _, o := range s.Objectives {
		if obj, err := objectives.Parse(o); err == nil && !obj.Adaptive() && !obj.OfP() {
			beyond = append(beyond, o)
		}
	}
	if len(beyond) > 0 && len(cont.Standings) > 0 {
		b.WriteString("## The trainers' objectives against NLL and −p\n\nPer task, noise group and held-out metric: the cells where each objective is ahead / tied / behind (paired CI) against NLL and against −p (`continuum.json` `standings[i]`; `continuum.md` lists the cells).\n\n")
		for _, task := range s.Tasks {
			fmt.Fprintf(&b, "**%s**\n\n| group | metric |", task)
			for _, o := range beyond {
				fmt.Fprintf(&b, " %s vs nll | %s vs p |", o, o)
			}
			b.WriteString("\n|---|---|")
			for range beyond {
				b.WriteString("---|---|")
			}
			b.WriteString("\n")
			for _, g := range append(groupsOf(cont.Cells), "all") {
				for _, key := range heldOutMetrics {
					fmt.Fprintf(&b, "| %s | %s |", g, metricName(key))
					for _, o := range beyond {
						for _, ref := range []string{"nll", "p"} {
							cell := "–"
							for i, st := range cont.Standings {
								if st.Task == task && st.Group == g && st.Metric == key && st.Objective == o && st.Vs == ref {
									cell = fmt.Sprintf("%d/%d/%d, %+.3f `[%d]`", len(st.Ahead), st.Tied, len(st.Behind), st.MeanDiff, i)
								}
							}
							fmt.Fprintf(&b, " %s |", cell)
						}
					}
					b.WriteString("\n")
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("## The probe per base model\n\nMean p (paper Eq. 5) and the share of tokens with p > 0.55 on the clean fine-tuning data and on the data as given at the largest noise rate, over replicates (`continuum.json` `cells[i].probe_clean`, `cells[i].probe_as_given`). After the arrow, the noise-aware probe's Ĉ from the model's greedy answers (`cells[i].noise_aware_probe`), which takes out the noise the model can see.\n\n| task | base | clean: mean p / p > 0.55 |")
	for _, sc := range s.Schemes {
		fmt.Fprintf(&b, " %s %g |", sc, top)
	}
	b.WriteString("\n|---|---|---|")
	for range s.Schemes {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, bi := range cont.Bases {
		fmt.Fprintf(&b, "| %s | %s | %.3f / %.1f%% |", bi.Task, bi.Base, bi.Probe.MeanP.Mean, 100*bi.Probe.ShareGT055.Mean)
		for _, sc := range s.Schemes {
			cell := "–"
			for i, c := range cont.Cells {
				if c.Task == bi.Task && c.Base == bi.Base && c.Scheme == sc && c.Noise == top {
					cell = fmt.Sprintf("%.3f / %.1f%%", c.ProbeGiven.MeanP.Mean, 100*c.ProbeGiven.ShareGT055.Mean)
					if c.NoiseAware != nil {
						cell += fmt.Sprintf(" → Ĉ %.3f", c.NoiseAware.Greedy.Capability.Mean)
					}
					cell += fmt.Sprintf(" `[%d]`", i)
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	if len(cont.NoiseAccuracy) > 0 {
		b.WriteString("\n")
		b.WriteString(cont.noiseAccuracyMarkdown("##"))
		b.WriteString("\n`continuum.md` has the figures per cell.\n\n")
	}
	b.WriteString(cont.selectorMarkdown("##", "`continuum.json` `selector[i]`"))
	return b.String()
}

func (res *TheoryResult) agreementsOrNil() []Agreement {
	if res == nil {
		return nil
	}
	return res.Agreements
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// crossCell is a crossover in a table cell.
func crossCell(x Crossover, i int) string {
	if x.Seen {
		lo, hi := x.Points[x.Below], x.Points[x.Above]
		return fmt.Sprintf("seen between %s (%.2f) and %s (%.2f; %s %s) `[%d]`", lo.Base, lo.MeanPGiven, hi.Base, hi.MeanPGiven, hi.Best, fmtDiff(hi.Diff), i)
	}
	var lean []string
	for _, p := range x.Points {
		if p.LeaningAhead {
			lean = append(lean, fmt.Sprintf("%s (%s %s)", p.Base, p.Best, fmtDiff(p.Diff)))
		}
	}
	if len(lean) > 0 {
		return fmt.Sprintf("not seen; prior-leaning ahead at %s `[%d]`", strings.Join(lean, ", "), i)
	}
	nll := 0
	for _, p := range x.Points {
		if p.NLLAhead {
			nll++
		}
	}
	return fmt.Sprintf("not seen; NLL ahead of every prior-leaning objective at %d of %d base models `[%d]`", nll, len(x.Points), i)
}
