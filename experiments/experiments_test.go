package experiments

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/capsel/capsel/objectives"
)

func TestMeanCI(t *testing.T) {
	// Mean 2, sample sd √(2/3) over n = 4: half-width t_{0.975,3}·sd/2 with
	// t_{0.975,3} = 3.182446 (standard t table).
	iv := MeanCI([]float64{1, 2, 2, 3})
	sd := math.Sqrt(2.0 / 3)
	want := 3.182446305 * sd / 2
	if math.Abs(iv.Mean-2) > 1e-12 || math.Abs((iv.Hi-iv.Lo)/2-want) > 1e-6 || iv.N != 4 {
		t.Errorf("MeanCI = %+v, want 2 ± %v", iv, want)
	}
	if one := MeanCI([]float64{0.5}); one.Lo != 0.5 || one.Hi != 0.5 || one.N != 1 {
		t.Errorf("one value: %+v", one)
	}
	if none := MeanCI(nil); none.N != 0 || none.Excludes(0) {
		t.Errorf("no value: %+v, excludes 0: %v", none, none.Excludes(0))
	}
}

func TestPaired(t *testing.T) {
	d, err := Paired([]float64{3, 4, 5}, []float64{1, 2, 3})
	if err != nil || d.Mean != 2 || d.Lo != 2 || !d.Excludes(0) {
		t.Errorf("constant difference: %+v, %v", d, err)
	}
	// Pairing is by position: the differences 1, 2, 3 (mean 2, sd 1, n 3)
	// have the half-width t_{0.975,2}/√3 = 4.302653/√3.
	d, err = Paired([]float64{2, 4, 6}, []float64{1, 2, 3})
	if err != nil || math.Abs((d.Hi-d.Lo)/2-4.302652730/math.Sqrt(3)) > 1e-6 {
		t.Errorf("paired: %+v, %v", d, err)
	}
	for _, c := range [][2][]float64{{{1, 2, 3}, {1, 2}}, {{1}, {}}, {nil, nil}} {
		if _, err := Paired(c[0], c[1]); err == nil {
			t.Errorf("Paired(%v, %v): want an error, not a truncation", c[0], c[1])
		}
	}
}

func TestDecide(t *testing.T) {
	names := []string{"nll", "p", "q"}
	// p beats nll and q in every replicate, by varying margins.
	dec, err := Decide(names, map[string][]float64{
		"nll": {0.5, 0.6, 0.55, 0.52},
		"p":   {0.7, 0.8, 0.72, 0.75},
		"q":   {0.4, 0.62, 0.5, 0.49},
	})
	if err != nil || dec.Winner != "p" || !slices.Equal(dec.Leaders, []string{"p"}) || !dec.Decided() {
		t.Errorf("clear winner: %+v, %v", dec, err)
	}
	// p and nll tie at the top (their difference changes sign); both beat q.
	dec, err = Decide(names, map[string][]float64{
		"nll": {0.70, 0.80, 0.72, 0.76},
		"p":   {0.72, 0.78, 0.75, 0.74},
		"q":   {0.40, 0.50, 0.45, 0.42},
	})
	if err != nil || dec.Decided() || !slices.Equal(dec.Leaders, []string{"nll", "p"}) {
		t.Errorf("tie at the top: %+v, %v", dec, err)
	}
	if _, err := Decide(names, map[string][]float64{"nll": {1, 2}, "p": {1, 2, 3}, "q": {1, 2}}); err == nil || !strings.Contains(err.Error(), "unequal length") {
		t.Errorf("unequal replicates: %v", err)
	}
	if _, err := Decide([]string{"nll"}, nil); err == nil {
		t.Error("one objective: want an error")
	}
}

func TestPick(t *testing.T) {
	c := Condition{Task: "fact", Base: Base{Coverage: 1}}
	run := func(rep int, v float64) RunResult {
		r := RunResult{Condition: c, Objective: "nll", Replicate: rep}
		r.HeldOut.ExactMatch = v
		return r
	}
	of := Metrics[0].Of
	got, err := pick([]RunResult{run(2, 0.2), run(1, 0.1), run(3, 0.3)}, c, "nll", 3, of)
	if err != nil || !slices.Equal(got, []float64{0.1, 0.2, 0.3}) {
		t.Errorf("pick = %v, %v; want the values in replicate order", got, err)
	}
	for name, runs := range map[string][]RunResult{
		"missing":      {run(1, 0.1), run(3, 0.3)},
		"twice":        {run(1, 0.1), run(1, 0.1), run(2, 0.2), run(3, 0.3)},
		"out of range": {run(1, 0.1), run(2, 0.2), run(3, 0.3), run(4, 0.4)},
	} {
		if _, err := pick(runs, c, "nll", 3, of); err == nil {
			t.Errorf("%s replicate: want an error, not a filled-in value", name)
		}
	}
}

// TestFactTaskKeepsTheDemo checks that the fact task without held-out and
// unfamiliar facts draws what the first experiments drew (values printed
// by experiments/task.go at commit e6c72b7), so that mkdemo still
// reproduces the embedded demo.
func TestFactTaskKeepsTheDemo(t *testing.T) {
	task := NewFactTask(1, 120, 0, 240, 0)
	if task.Train[0] != (Fact{"mhdp", "ebzxsfv"}) || task.Train[119] != (Fact{"casv", "xoquteol"}) ||
		task.Distractors[0] != (Fact{"osom", "sfnq"}) || task.Distractors[239] != (Fact{"ujdz", "ffzonuxdzykmx"}) {
		t.Errorf("facts %v %v %v %v", task.Train[0], task.Train[119], task.Distractors[0], task.Distractors[239])
	}
	d := task.SFT(Replace, 0.1, 1)
	want := map[int]string{3: "kcurcspukmil", 7: "glhqoudqmaslf", 9: "jqnfb", 20: "fwbazhegee", 45: "rotfdqjjjwc", 46: "uizhxzcsx",
		55: "xnezmf", 67: "xoops", 81: "xpiuerost", 88: "qeqyxmrbcqpk", 107: "egbfmyxajblisn", 118: "rilhssuujezs"}
	for i, ex := range d.Examples {
		if w, ok := want[i]; ok != d.Labels[i].Corrupted || (ok && ex.Response != w) {
			t.Errorf("example %d: %q (corrupted %v), want %q (%v)", i, ex.Response, d.Labels[i].Corrupted, w, ok)
		}
	}
	// With held-out and unfamiliar facts the first draws stay the same.
	full := NewFactTask(1, 120, 50, 240, 30)
	if !slices.Equal(full.Train, task.Train) || !slices.Equal(full.Distractors, task.Distractors) || len(full.HeldOutFacts) != 50 || len(full.Unfamiliar) != 30 {
		t.Error("adding held-out and unfamiliar facts changed the train or distractor facts")
	}
}

func TestFactTask(t *testing.T) {
	task := NewFactTask(7, 50, 20, 30, 40)
	keys := map[string]bool{}
	for _, f := range slices.Concat(task.Train, task.HeldOutFacts, task.Distractors, task.Unfamiliar) {
		if keys[f.Key] || len(f.Key) != 4 || len(f.Value) < 4 || len(f.Value) > 14 {
			t.Fatalf("fact %+v: keys must be unique, 4 letters; values 4–14", f)
		}
		keys[f.Key] = true
	}
	// Coverage 0.4 covers the first 20 train and 8 held-out facts, after the distractors.
	pre, err := task.Pretraining(Base{Coverage: 0.4})
	if err != nil {
		t.Fatal(err)
	}
	if len(pre) != 30+20+8+1 || pre[30].Response != task.Train[0].Key+"="+task.Train[0].Value ||
		pre[50].Response != task.HeldOutFacts[0].Key+"="+task.HeldOutFacts[0].Value || pre[58].Source != "alphabet" {
		t.Errorf("pretraining: %d documents, %q, %q", len(pre), pre[30].Response, pre[50].Response)
	}
	uninf, err := task.Pretraining(Base{Variant: FactVariant})
	if err != nil || len(uninf) != unfamiliarCopies*30+40+1 {
		t.Errorf("uninformed corpus: %d documents, %v", len(uninf), err)
	}
	for _, d := range uninf {
		for _, f := range slices.Concat(task.Train, task.HeldOutFacts) {
			if strings.HasPrefix(d.Response, f.Key+"=") {
				t.Fatalf("the uninformed base model sees target key %q", f.Key)
			}
		}
	}
	for _, b := range []Base{{Variant: "misinformed"}, {Coverage: 0.5, Variant: FactVariant}} {
		if _, err := task.Pretraining(b); err == nil {
			t.Errorf("%+v: want an error", b)
		}
	}
	if ho, fit := task.HeldOut(), task.TrainFit(); len(ho) != 20 || ho[0].Prompt != task.HeldOutFacts[0].Key+"=" || fit[3].Response != task.Train[3].Value {
		t.Error("held-out or train-fit examples")
	}
}

func TestRuleTask(t *testing.T) {
	task := NewRuleTask(3, 40, 40, 400)
	for _, perm := range [][]byte{task.Sigma, task.Wrong, task.Distractor, task.Order} {
		if s := slices.Sorted(slices.Values(perm)); string(s) != letters {
			t.Fatalf("%q is not a permutation of the alphabet", perm)
		}
	}
	for _, w := range task.HeldOutWords {
		if slices.Contains(task.Train, w) {
			t.Fatalf("held-out word %q is a train word", w)
		}
	}
	ex := task.TrainFit()[0]
	if ex.Prompt != task.Train[0]+">" || len(ex.Response) != RuleLength || ex.Response[0] != task.Sigma[task.Train[0][0]-'a'] {
		t.Errorf("example %+v", ex)
	}
	full, _ := task.Pretraining(Base{Coverage: 1})
	none, _ := task.Pretraining(Base{Coverage: 0})
	wrong, err := task.Pretraining(Base{Variant: RuleVariant})
	if err != nil || len(full) != 401 || len(none) != 401 || len(wrong) != 401 {
		t.Fatalf("corpora of %d, %d, %d documents: %v", len(full), len(none), len(wrong), err)
	}
	// Even documents are rule documents: σ at full coverage, the wrong
	// permutation in the misinformed corpus, about 1/26 agreement with σ at
	// coverage 0; odd ones the distractor substitution, in every corpus.
	agree, letters0 := 0, 0
	for i := range 400 {
		w := task.Pretrain[i]
		if i%2 == 1 {
			if full[i].Response != w+"<"+apply(task.Distractor, w) || none[i] != full[i] {
				t.Fatalf("document %d: %q", i, full[i].Response)
			}
			continue
		}
		if full[i].Response != w+">"+apply(task.Sigma, w) || wrong[i].Response != w+">"+apply(task.Wrong, w) {
			t.Fatalf("document %d: %q, %q", i, full[i].Response, wrong[i].Response)
		}
		out := none[i].Response[RuleLength+1:]
		for j := range out {
			letters0++
			if out[j] == task.Sigma[w[j]-'a'] {
				agree++
			}
		}
	}
	// 1600 letters at p = 1/26: 61.5 expected, sd 7.7.
	if agree < 30 || agree > 95 {
		t.Errorf("coverage 0: %d of %d letters follow σ, want about 1/26", agree, letters0)
	}
	half, _ := task.Pretraining(Base{Coverage: 0.5})
	for i := 0; i < 400; i += 2 {
		w, out := task.Pretrain[i], half[i].Response[RuleLength+1:]
		for j := range out {
			if slices.Contains(task.Order[:13], w[j]) && out[j] != task.Sigma[w[j]-'a'] {
				t.Fatalf("document %d: covered letter %c not mapped by σ", i, w[j])
			}
		}
	}
}

// TestNoiseSchemes checks every scheme's corruption and the token truth it
// leaves: the count of corrupted examples, the edit itself, and which
// positions are noisy with what true token.
func TestNoiseSchemes(t *testing.T) {
	task := NewFactTask(5, 60, 1, 10, 0)
	for _, sc := range Schemes {
		d := task.SFT(sc, 0.3, 2)
		if d.Corrupted() != 18 {
			t.Errorf("%s: %d corrupted, want round(0.3·60) = 18", sc, d.Corrupted())
		}
		again := task.SFT(sc, 0.3, 2)
		other := task.SFT(sc, 0.3, 3)
		sameDraw := true
		for i, ex := range d.Examples {
			l := d.Labels[i]
			if ex.Prompt != task.Train[i].Key+"=" || l.Clean != task.Train[i].Value || again.Examples[i] != ex {
				t.Fatalf("%s example %d: %+v %+v (the draw must be deterministic)", sc, i, ex, l)
			}
			sameDraw = sameDraw && other.Labels[i].Corrupted == l.Corrupted
			truth := TokenTruth(l, ex.Response)
			noisy := 0
			for j, r := range truth {
				if r != labelAt(ex.Response, j) {
					noisy++
				}
			}
			if !l.Corrupted {
				if ex.Response != l.Clean || noisy != 0 {
					t.Fatalf("%s example %d: clean label changed or flagged", sc, i)
				}
				continue
			}
			c, g, p := l.Clean, ex.Response, l.Pos
			switch l.Edit {
			case "substitute":
				if len(g) != len(c) || g[:p] != c[:p] || g[p+1:] != c[p+1:] || g[p] == c[p] || noisy != 1 || truth[p] != rune(c[p]) {
					t.Fatalf("substitute at %d: %q → %q, truth %q", p, c, g, string(truth))
				}
			case "insert":
				if g[:p]+g[p+1:] != c || noisy != 1 || truth[p] != labelAt(c, p) {
					t.Fatalf("insert at %d: %q → %q, truth %v", p, c, g, truth)
				}
			case "delete":
				if c[:p]+c[p+1:] != g || noisy != 1 || truth[p] != rune(c[p]) {
					t.Fatalf("delete at %d: %q → %q, truth %v", p, c, g, truth)
				}
			case "replace":
				if g == c || len(g) < 4 || len(g) > 14 || noisy == 0 {
					t.Fatalf("replace: %q → %q", c, g)
				}
				for j, r := range truth {
					switch {
					case j < len(c) && r != rune(c[j]), j == len(c) && r != EOS, j > len(c) && r != UnknownTruth:
						t.Fatalf("replace %q → %q: truth %v at %d", c, g, r, j)
					}
				}
			default:
				t.Fatalf("%s: edit %q", sc, l.Edit)
			}
			if (sc == Indel) != (l.Edit == "insert" || l.Edit == "delete") {
				t.Fatalf("scheme %s made edit %s", sc, l.Edit)
			}
		}
		if sameDraw {
			t.Errorf("%s: seeds 2 and 3 corrupt the same examples", sc)
		}
		// A one-letter edit makes one of a response's letters and EOS wrong.
		if tn := d.TokenNoise(); sc != Replace && (tn <= 0 || tn > 18.0/60) {
			t.Errorf("%s: token noise %v", sc, tn)
		}
	}
	if _, err := ParseScheme("swap"); err == nil {
		t.Error("unknown scheme: want an error")
	}
}

func TestConditions(t *testing.T) {
	s := DefaultSetup()
	conds, err := s.Conditions()
	if err != nil {
		t.Fatal(err)
	}
	// Per task: 6 base models × (clean + 3 schemes at 0.5) = 24, plus the
	// three intermediate rates × 3 schemes on coverages 0.75 and 1 = 18.
	if len(conds) != 2*(24+18) {
		t.Errorf("%d conditions, want 84", len(conds))
	}
	seen := map[Condition]bool{}
	for _, c := range conds {
		if seen[c] {
			t.Fatalf("%v twice", c)
		}
		seen[c] = true
		if c.Noise > 0 && c.Noise < 0.5 && (c.Base.Variant != "" || c.Base.Coverage < s.SweepFrom) {
			t.Errorf("%v: intermediate noise below the sweep", c)
		}
	}
	if err := s.Validate(); err != nil {
		t.Errorf("default setup: %v", err)
	}
	if err := QuickSetup().Validate(); err != nil {
		t.Errorf("quick setup: %v", err)
	}
	for name, mod := range map[string]func(*Setup){
		"one replicate": func(s *Setup) { s.Replicates = 1 },
		"no nll":        func(s *Setup) { s.Objectives = []string{"p", "GeneralFamily-10"} },
		"bad task":      func(s *Setup) { s.Tasks = []string{"facts"} },
		"bad scheme":    func(s *Setup) { s.Schemes = []Scheme{"swap"} },
		"noise 1":       func(s *Setup) { s.Noises = []float64{0, 1} },
	} {
		bad := DefaultSetup()
		mod(&bad)
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// TestCrossovers builds cells by hand: NLL ahead at the weak end, p ahead
// at the strong end; then a strong end where p's CI includes 0.
func TestCrossovers(t *testing.T) {
	iv := func(m, lo, hi float64) Interval { return Interval{Mean: m, Lo: lo, Hi: hi, N: 4} }
	cell := func(cov, mp float64, pDiff Interval) Cell {
		c := Cell{Condition: Condition{Task: "fact", Base: Base{Coverage: cov}, Scheme: Replace, Noise: 0.5}}
		c.ProbeGiven.MeanP.Mean, c.ProbeClean.MeanP.Mean = mp, 2*mp
		vs := map[string]Interval{}
		for _, m := range Metrics {
			vs[m.Key] = pDiff
		}
		c.Results = []Outcome{{Objective: "nll"}, {Objective: "p", VsNLL: vs}, {Objective: "auto", VsNLL: map[string]Interval{}}}
		return c
	}
	s := Setup{Coverages: []float64{0, 0.5, 1}, Objectives: []string{"nll", "p", "auto"}}
	res := &ContinuumResult{Setup: s, Cells: []Cell{
		cell(1, 0.45, iv(0.08, 0.05, 0.11)), cell(0, 0.03, iv(-0.3, -0.35, -0.25)), cell(0.5, 0.2, iv(0.01, -0.02, 0.04)),
	}}
	xs, err := crossovers(res)
	if err != nil || len(xs) != len(Metrics) {
		t.Fatalf("%d crossovers, %v", len(xs), err)
	}
	x := xs[0]
	if !x.Seen || x.Points[x.Below].Base.Coverage != 0 || x.Points[x.Above].Base.Coverage != 1 || x.Points[1].MeanPGiven != 0.2 {
		t.Fatalf("crossover %+v", x)
	}
	if txt := x.CrossoverText(true); !strings.Contains(txt, "**crossover seen**") || !strings.Contains(txt, "clean 0.900") {
		t.Errorf("text %q", txt)
	}
	if txt := x.CrossoverText(false); strings.Contains(txt, "**") {
		t.Errorf("quick text in bold: %q", txt)
	}
	res.Cells[0] = cell(1, 0.45, iv(0.02, -0.01, 0.05))
	xs, _ = crossovers(res)
	if xs[0].Seen || !strings.Contains(xs[0].CrossoverText(true), "not seen") {
		t.Errorf("a CI that includes 0 is not a win: %+v", xs[0])
	}
	// A prior-leaning lead below the point where NLL leads is not the paper's crossover.
	res.Cells[0] = cell(1, 0.45, iv(-0.1, -0.2, -0.05))
	res.Cells[1] = cell(0, 0.03, iv(0.1, 0.05, 0.2))
	if xs, _ = crossovers(res); xs[0].Seen {
		t.Errorf("reversed crossover counted: %+v", xs[0])
	}
}

// TestSFTDataAPI checks the API through which the next issue reads the
// noise truth: the data of a condition and replicate are those its runs
// trained on.
func TestSFTDataAPI(t *testing.T) {
	s := QuickSetup()
	c := Condition{Task: "rule", Base: Base{Coverage: 1}, Scheme: Indel, Noise: 0.5}
	d, err := s.SFTData(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	task, _ := s.Task("rule")
	want := task.SFT(Indel, 0.5, 2)
	if d.Task != "rule" || d.Scheme != Indel || d.Seed != 2 || d.Corrupted() != 15 || !slices.Equal(d.Examples, want.Examples) || !slices.Equal(d.Labels, want.Labels) {
		t.Errorf("SFTData %+v", d)
	}
	r := &Runner{Setup: s}
	if rd, err := r.SFTData(c, 2); err != nil || !slices.Equal(rd.Labels, d.Labels) {
		t.Errorf("Runner.SFTData differs: %v", err)
	}
	if _, err := s.SFTData(Condition{Task: "rule", Scheme: "swap", Noise: 0.1}, 1); err == nil {
		t.Error("unknown scheme: want an error")
	}
	if _, err := r.SFTData(Condition{Task: "rule", Scheme: "swap", Noise: 0.1}, 1); err == nil {
		t.Error("unknown scheme through the runner: want an error")
	}
	if _, err := s.SFTData(Condition{Task: "poem"}, 1); err == nil {
		t.Error("unknown task: want an error")
	}
}

// TestStandings: every objective is paired against NLL and −p in every
// cell, and the standings count the cells whose paired CI lies above,
// below or around 0, by their keys.
func TestStandings(t *testing.T) {
	s := Setup{Tasks: []string{"fact"}, Objectives: []string{"nll", "p", "deft", "auto"}, Replicates: 3}
	conds := []Condition{
		{Task: "fact", Base: Base{Coverage: 0}},
		{Task: "fact", Base: Base{Coverage: 1}},
		{Task: "fact", Base: Base{Coverage: 1}, Scheme: Replace, Noise: 0.5},
	}
	// Held-out exact match per condition, objective and replicate: deft is
	// behind NLL at coverage 0, ahead of both at coverage 1 clean, and tied
	// with p under noise.
	score := map[string][3][]float64{
		"nll":  {{0.5, 0.6, 0.7}, {0.3, 0.35, 0.4}, {0.2, 0.25, 0.3}},
		"p":    {{0.2, 0.3, 0.4}, {0.4, 0.45, 0.5}, {0.5, 0.55, 0.6}},
		"deft": {{0.4, 0.5, 0.6}, {0.6, 0.66, 0.7}, {0.52, 0.5, 0.62}},
		"auto": {{0.5, 0.6, 0.7}, {0.3, 0.35, 0.4}, {0.2, 0.25, 0.3}},
	}
	var runs []RunResult
	for ci, c := range conds {
		for o, sc := range score {
			for r, v := range sc[ci] {
				run := RunResult{Condition: c, Objective: o, Replicate: r + 1}
				run.HeldOut.ExactMatch = v
				runs = append(runs, run)
			}
		}
	}
	res := &ContinuumResult{Setup: s}
	for _, c := range conds {
		cell := Cell{Condition: c, Key: c.Key()}
		if err := cell.summarise(s, runs); err != nil {
			t.Fatal(err)
		}
		res.Cells = append(res.Cells, cell)
	}
	if k := res.Cells[2].Key; k != "fact/c1.000/replace0.5" || res.Cells[0].Key != "fact/c0.000/clean" {
		t.Errorf("cell keys %q, %q", res.Cells[0].Key, k)
	}
	want, _ := Paired(score["deft"][0], score["p"][0])
	if got := res.Cells[0].Outcome("deft").VsP["held_out_exact_match"]; got != want {
		t.Errorf("deft vs p at coverage 0: %+v, want %+v", got, want)
	}
	if res.Cells[0].Outcome("p").VsP != nil || res.Cells[0].Outcome("nll").VsNLL != nil || res.Cells[0].Outcome("nll").VsP == nil {
		t.Error("an objective is paired with itself, or NLL is not paired with p")
	}
	find := func(group, obj, vs string) Standing {
		for _, st := range standings(res) {
			if st.Group == group && st.Metric == "held_out_exact_match" && st.Objective == obj && st.Vs == vs {
				return st
			}
		}
		t.Fatalf("no standing %s %s vs %s", group, obj, vs)
		return Standing{}
	}
	st := find("all", "deft", "nll")
	if st.Cells != 3 || !slices.Equal(st.Behind, []string{"fact/c0.000/clean"}) || !slices.Equal(st.Ahead, []string{"fact/c1.000/clean", "fact/c1.000/replace0.5"}) || st.Tied != 0 {
		t.Errorf("deft vs nll: %+v", st)
	}
	if st.Worst.Cell != "fact/c0.000/clean" || math.Abs(st.Worst.Diff.Mean+0.1) > 1e-12 {
		t.Errorf("deft vs nll worst: %+v", st.Worst)
	}
	st = find("replace", "deft", "p")
	if st.Cells != 1 || st.Tied != 1 || len(st.Ahead)+len(st.Behind) != 0 {
		t.Errorf("deft vs p under noise: %+v", st)
	}
	if st = find("clean", "auto", "nll"); st.Tied != 2 || st.MeanDiff != 0 {
		t.Errorf("auto equal to nll: %+v", st)
	}
	// Without p in the setup there is nothing to pair against it.
	s.Objectives = []string{"nll", "deft"}
	c := Cell{Condition: conds[0]}
	if err := c.summarise(s, runs); err != nil || c.Outcome("deft").VsP != nil {
		t.Errorf("no p: %v, %+v", err, c.Outcome("deft"))
	}
}

// TestPredictedTies: a predictor whose best score is shared exactly names
// every objective that shares it, and agrees with a measured winner among
// them; asft-α's gradient at the base model is DFT's.
func TestPredictedTies(t *testing.T) {
	cell := Cell{Condition: Condition{Task: "fact", Base: Base{Coverage: 1}}, Decisions: map[string]Decision{}}
	for _, m := range Metrics {
		cell.Decisions[m.Key] = Decision{Winner: "asft-0.1", Leaders: []string{"asft-0.1"}}
	}
	fixed := []objectives.Objective{objectives.NLL(), objectives.P(), objectives.MustParse("asft-0.1")}
	rep := repTheory{scores: map[string]map[string]float64{}, estar: map[string][3]float64{}}
	for i, o := range []string{"nll", "p", "asft-0.1"} {
		rep.scores[o] = map[string]float64{}
		for _, pred := range Predictors {
			rep.scores[o][pred] = []float64{0.1, 0.3, 0.3}[i]
		}
	}
	rep.scores["nll"][PredOneStep] = 0.5
	tc := summariseTheory(cell, []repTheory{rep}, fixed)
	if tc.Predicted[PredPaper] != "p" || !slices.Equal(tc.PredictedTied[PredPaper], []string{"asft-0.1"}) || !tc.predicts(PredPaper, "asft-0.1") {
		t.Errorf("paper rate: predicted %q tied %v", tc.Predicted[PredPaper], tc.PredictedTied[PredPaper])
	}
	if tc.predicts(PredOneStep, "asft-0.1") || len(tc.PredictedTied[PredOneStep]) != 0 {
		t.Errorf("one step names nll alone: %q %v", tc.Predicted[PredOneStep], tc.PredictedTied[PredOneStep])
	}
	ag := agreements([]TheoryCell{tc}, []string{"fact"})
	for _, a := range ag {
		if a.Group == "all" && a.Metric == Metrics[0].Key {
			if want := a.Predictor != PredOneStep; (a.Agree == 1) != want || (a.ViaTie == 1) != want {
				t.Errorf("%s: agree %d (via a tie %d), want %v", a.Predictor, a.Agree, a.ViaTie, want)
			}
		}
	}
	if g := gradientObjective(objectives.MustParse("asft-2")); g.String() != "dft" {
		t.Errorf("asft's gradient at its reference: %v, want dft's", g)
	}
	if g := gradientObjective(objectives.MustParse("eaft-1")); g.String() != "eaft-1" {
		t.Errorf("eaft's gradient objective: %v", g)
	}
	for spec, want := range map[string]bool{"nll": false, "p": true, "focal-2": false, "eaft-1": true, "deft": true, "asft-0.1": true, "GeneralFamily-10": true} {
		if got := hasCrossover(objectives.MustParse(spec)); got != want {
			t.Errorf("hasCrossover(%s) = %v, want %v", spec, got, want)
		}
	}
}
