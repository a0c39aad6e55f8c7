package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/capsel/capsel/choose"
	"github.com/capsel/capsel/continuum"
	"github.com/capsel/capsel/internal/atomicfile"
	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/train"
)

// CleanNLL is the baseline "clean, then NLL": NLL on the fine-tuning data
// without the examples the noise-aware probe flags on the base model
// (what 'selector clean' writes).
const CleanNLL = "clean-nll"

// NoiseAwareRun is the noise-aware probe of one base model on one
// condition's data as given (package labelnoise, with the model's own
// greedy answers and, for comparison, the teacher-forced approximation of
// log-prob files), with the truth it is scored against and the call
// package choose makes from it.
type NoiseAwareRun struct {
	Condition
	Replicate     int                `json:"replicate"`
	Greedy        *labelnoise.Result `json:"greedy"`
	TeacherForced *labelnoise.Result `json:"teacher_forced"`
	// TrueCapability is the paper's mean p of the clean targets (what Ĉ
	// estimates) and TrueNoise the share of corrupted examples (what Ê
	// estimates).
	TrueCapability float64     `json:"true_capability"`
	TrueNoise      float64     `json:"true_noise"`
	Call           choose.Call `json:"call"`
}

// NoiseAware measures the noise-aware probe of condition c's base model of
// replicate rep on its data as given, cached like the runs.
func (r *Runner) NoiseAware(ctx context.Context, c Condition, rep int) (*NoiseAwareRun, error) {
	key := fmt.Sprintf("%s-r%d", c.key(), rep)
	r.mu.Lock()
	if na, ok := r.noise[key]; ok {
		r.mu.Unlock()
		return na, nil
	}
	r.mu.Unlock()
	d, err := r.dir()
	if err != nil {
		return nil, err
	}
	var path string
	if d != "" {
		path = filepath.Join(d, "noise", key+".json")
		if b, err := os.ReadFile(path); err == nil {
			var na NoiseAwareRun
			if json.Unmarshal(b, &na) == nil {
				return r.rememberNoise(key, &na), nil
			}
		}
	}
	na, err := r.measureNoise(ctx, c, rep)
	if err != nil {
		return nil, err
	}
	if path != "" {
		b, err := json.Marshal(na)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteBytes(path, b); err != nil {
			return nil, err
		}
	}
	return r.rememberNoise(key, na), nil
}

func (r *Runner) rememberNoise(key string, na *NoiseAwareRun) *NoiseAwareRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.noise == nil {
		r.noise = map[string]*NoiseAwareRun{}
	}
	if old, ok := r.noise[key]; ok {
		return old
	}
	r.noise[key] = na
	return na
}

func (r *Runner) measureNoise(ctx context.Context, c Condition, rep int) (*NoiseAwareRun, error) {
	ck, err := r.Base(ctx, c.Task, c.Base, rep)
	if err != nil {
		return nil, err
	}
	t, err := r.Task(c.Task)
	if err != nil {
		return nil, err
	}
	d, err := r.SFTData(c, rep)
	if err != nil {
		return nil, err
	}
	m, err := ck.NewModel()
	if err != nil {
		return nil, err
	}
	ex, null, err := train.LabelExamples(ctx, m, ck.Tokenizer, d.Examples, 0, uint64(rep))
	if err != nil {
		return nil, err
	}
	na := &NoiseAwareRun{Condition: c, Replicate: rep, TrueNoise: float64(d.Corrupted()) / float64(len(d.Examples))}
	opt := labelnoise.Options{Seed: uint64(rep)}
	if na.Greedy, err = labelnoise.Analyze(ex, null, labelnoise.Greedy, opt); err != nil {
		return nil, err
	}
	if na.TeacherForced, err = labelnoise.Analyze(withoutOwn(ex), withoutOwn(null), labelnoise.TeacherForced, opt); err != nil {
		return nil, err
	}
	var sum float64
	var n int
	if _, err := train.Score(ctx, m, ck.Tokenizer, t.TrainFit(), 64, func(_ int, tf train.TokenScores) {
		for _, lp := range tf.LogP {
			sum += math.Exp(lp)
			n++
		}
	}); err != nil {
		return nil, err
	}
	na.TrueCapability = sum / float64(n)
	na.Call = choose.Decide(na.Greedy, continuum.DefaultCuts)
	return na, nil
}

// withoutOwn drops the own answers: the label paths alone, as log-prob
// files give them.
func withoutOwn(ex []labelnoise.Example) []labelnoise.Example {
	out := slices.Clone(ex)
	for i := range out {
		out[i].Own = nil
	}
	return out
}

// MethodFigures are one method's estimates in a cell, over replicates.
type MethodFigures struct {
	Capability Interval `json:"capability"`
	// Noise is over the replicates where Ê is defined (NoiseDefined of
	// them); nil when it is defined in none.
	Noise        *Interval `json:"noise"`
	NoiseDefined int       `json:"noise_defined"`
	Known        *Interval `json:"known"`
	TokenNoise   *Interval `json:"token_noise"`
	// Flagged is the mean number of flagged examples.
	Flagged float64 `json:"flagged"`
}

// NoiseAwareFigures are a cell's noise-aware probe figures beside the
// truth.
type NoiseAwareFigures struct {
	Greedy        MethodFigures `json:"greedy"`
	TeacherForced MethodFigures `json:"teacher_forced"`
	// TrueCapability is the mean p of the clean targets and TrueNoise the
	// share of corrupted examples.
	TrueCapability Interval `json:"true_capability"`
	TrueNoise      float64  `json:"true_noise"`
	// Calls counts the replicates' calls (choose.Decide, greedy) by
	// objective, with its fallback in brackets where it has one, and Class
	// is the class most of them call:
	// "prior-leaning", "nll", or "split" when as many call each.
	Calls map[string]int `json:"calls"`
	Class string         `json:"class"`
}

func methodFigures(rs []*labelnoise.Result) MethodFigures {
	var c, e, k, tn, fl []float64
	for _, r := range rs {
		c = append(c, r.Capability.Value)
		fl = append(fl, float64(len(r.Flags)))
		if r.Noise != nil {
			e = append(e, r.Noise.Value)
			k = append(k, r.Known.Value)
		}
		if r.TokenNoise != nil {
			tn = append(tn, r.TokenNoise.Value)
		}
	}
	f := MethodFigures{Capability: MeanCI(c), NoiseDefined: len(e), Flagged: MeanCI(fl).Mean}
	if len(e) > 0 {
		iv, kv := MeanCI(e), MeanCI(k)
		f.Noise, f.Known = &iv, &kv
	}
	if len(tn) > 0 {
		iv := MeanCI(tn)
		f.TokenNoise = &iv
	}
	return f
}

func noiseAwareFigures(runs []*NoiseAwareRun) *NoiseAwareFigures {
	var g, tf []*labelnoise.Result
	var truth []float64
	f := &NoiseAwareFigures{Calls: map[string]int{}}
	leaning := 0
	for _, na := range runs {
		g, tf = append(g, na.Greedy), append(tf, na.TeacherForced)
		truth = append(truth, na.TrueCapability)
		f.TrueNoise = na.TrueNoise
		call := na.Call.Objective
		if fb := na.Call.Fallback; fb != "" && fb != call {
			call += " (fallback " + fb + ")"
		}
		f.Calls[call]++
		if na.Call.Leaning {
			leaning++
		}
	}
	f.Greedy, f.TeacherForced, f.TrueCapability = methodFigures(g), methodFigures(tf), MeanCI(truth)
	switch {
	case 2*leaning > len(runs):
		f.Class = "prior-leaning"
	case 2*leaning < len(runs):
		f.Class = "nll"
	default:
		f.Class = "split"
	}
	return f
}

// NoiseProbeCell is a condition the noise-aware probe is measured on
// without fine-tuning (Setup.ProbeSchemes).
type NoiseProbeCell struct {
	Condition
	Key        string             `json:"key"`
	NoiseAware *NoiseAwareFigures `json:"noise_aware_probe"`
}

// NoiseAwareAccuracy scores a method's estimates against the truth over the
// replicate estimates of one task and noise scheme ("clean" for clean
// labels): the root mean square errors of Ĉ, of the raw mean p (the
// paper's Eq. 5 on the data as given, for comparison) and of Ê over the
// estimates where Ê is defined, how many were undefined (the model
// reproduces too few labels to judge them), and how many of Ê's intervals
// cover the truth.
type NoiseAwareAccuracy struct {
	Task           string  `json:"task"`
	Scheme         string  `json:"scheme"`
	Method         string  `json:"method"`
	Estimates      int     `json:"estimates"`
	CapabilityRMSE float64 `json:"capability_rmse"`
	RawMeanPRMSE   float64 `json:"raw_mean_p_rmse"`
	NoiseRMSE      float64 `json:"noise_rmse"`
	NoiseDefined   int     `json:"noise_defined"`
	NoiseUndefined int     `json:"noise_undefined"`
	NoiseCovered   int     `json:"noise_covered"`
}

// noiseAccuracy scores the estimates of every measured run, per task,
// scheme and method, and over all schemes of a task ("all", probe-only
// schemes excluded).
func noiseAccuracy(runs []*NoiseAwareRun, tasks []string, probeOnly []Scheme) []NoiseAwareAccuracy {
	type acc struct {
		NoiseAwareAccuracy
		c, raw, e float64
	}
	groups := map[string]*acc{}
	var order []string
	add := func(task, scheme, method string, r *labelnoise.Result, na *NoiseAwareRun) {
		k := task + "/" + scheme + "/" + method
		a := groups[k]
		if a == nil {
			a = &acc{NoiseAwareAccuracy: NoiseAwareAccuracy{Task: task, Scheme: scheme, Method: method}}
			groups[k] = a
			order = append(order, k)
		}
		a.Estimates++
		a.c += sq(r.Capability.Value - na.TrueCapability)
		a.raw += sq(r.RawMeanP - na.TrueCapability)
		if r.Noise == nil {
			a.NoiseUndefined++
			return
		}
		a.NoiseDefined++
		a.e += sq(r.Noise.Value - na.TrueNoise)
		if r.Noise.CI[0] <= na.TrueNoise+1e-9 && na.TrueNoise <= r.Noise.CI[1]+1e-9 {
			a.NoiseCovered++
		}
	}
	for _, na := range runs {
		scheme := string(na.Scheme)
		if na.Noise == 0 {
			scheme = "clean"
		}
		for _, m := range []struct {
			name string
			r    *labelnoise.Result
		}{{string(labelnoise.Greedy), na.Greedy}, {string(labelnoise.TeacherForced), na.TeacherForced}} {
			add(na.Task, scheme, m.name, m.r, na)
			if !slices.Contains(probeOnly, na.Scheme) || na.Noise == 0 {
				add(na.Task, "all", m.name, m.r, na)
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := groups[order[i]], groups[order[j]]
		if a.Task != b.Task {
			return slices.Index(tasks, a.Task) < slices.Index(tasks, b.Task)
		}
		return a.Method < b.Method
	})
	out := make([]NoiseAwareAccuracy, 0, len(order))
	for _, k := range order {
		a := groups[k]
		n := float64(a.Estimates)
		a.CapabilityRMSE, a.RawMeanPRMSE = math.Sqrt(a.c/n), math.Sqrt(a.raw/n)
		if a.NoiseDefined > 0 {
			a.NoiseRMSE = math.Sqrt(a.e / float64(a.NoiseDefined))
		}
		out = append(out, a.NoiseAwareAccuracy)
	}
	return out
}

func sq(x float64) float64 { return x * x }

// SelectorScore counts how often a class-level rule names the measured
// class-level winner of a cell on one metric: prior-leaning when some
// prior-leaning objective, or the call's own choose.Anchored (callLeaning),
// beats NLL (paired CI above 0), NLL when NLL beats every one of them; other
// cells are ties, left out (Ties counts them). Misses lists the decided
// cells the rule gets wrong.
type SelectorScore struct {
	Metric  string   `json:"metric"`
	Rule    string   `json:"rule"`
	Agree   int      `json:"agree"`
	Decided int      `json:"decided"`
	Ties    int      `json:"ties"`
	Misses  []string `json:"misses"`
}

// The rules SelectorScore compares.
const (
	// RuleNoiseAware is choose.Decide on the noise-aware probe (the class
	// most replicates call).
	RuleNoiseAware = "noise-aware call (Ĉ, Ê)"
	// RuleRawRegion is the previous rule: prior-leaning at the model-strong
	// end of the raw mean p, NLL (or auto) elsewhere.
	RuleRawRegion = "region of the raw mean p"
	// RuleCapRegion is the region rule on Ĉ instead, without the noise.
	RuleCapRegion = "region of Ĉ"
)

// classWinner is a cell's measured class-level winner on a metric:
// "prior-leaning", "nll" or "" (a tie).
func classWinner(c *Cell, metric string, leaning []string) string {
	p := standing(c, metric, leaning)
	switch {
	case p.LeaningAhead:
		return "prior-leaning"
	case p.NLLAhead:
		return "nll"
	}
	return ""
}

// callLeaning are the objectives that count for the prior-leaning class
// when a call is scored: the paper's prior-leaning objectives of the setup
// and the one the call names (choose.Anchored), when the setup has it.
func callLeaning(s Setup) []string {
	out := leaningObjectives(s)
	if slices.Contains(s.Objectives, choose.Anchored) {
		out = append(out, choose.Anchored)
	}
	return out
}

func selectorScores(res *ContinuumResult) []SelectorScore {
	leaning := callLeaning(res.Setup)
	if len(leaning) == 0 {
		return nil
	}
	cuts := continuum.DefaultCuts
	var out []SelectorScore
	for _, m := range Metrics {
		for _, rule := range []string{RuleNoiseAware, RuleRawRegion, RuleCapRegion} {
			sc := SelectorScore{Metric: m.Key, Rule: rule}
			for i := range res.Cells {
				c := &res.Cells[i]
				w := classWinner(c, m.Key, leaning)
				if w == "" {
					sc.Ties++
					continue
				}
				if c.NoiseAware == nil {
					continue
				}
				var call string
				switch rule {
				case RuleNoiseAware:
					call = c.NoiseAware.Class
				case RuleRawRegion:
					call = regionClass(cuts.Region(c.ProbeGiven.MeanP.Mean))
				case RuleCapRegion:
					call = regionClass(cuts.Region(c.NoiseAware.Greedy.Capability.Mean))
				}
				sc.Decided++
				if call == w {
					sc.Agree++
				} else {
					sc.Misses = append(sc.Misses, c.Key)
				}
			}
			out = append(out, sc)
		}
	}
	return out
}

func regionClass(r continuum.Region) string {
	if r == continuum.Strong {
		return "prior-leaning"
	}
	return "nll"
}
