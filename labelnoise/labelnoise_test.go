package labelnoise

import (
	"math"
	"strings"
	"testing"
)

// constant returns a label path of n tokens, each with label probability p
// and first choice probability top (the label is the first choice when
// match).
func constant(n int, p, top float64, match bool) Example {
	e := Example{}
	for range n {
		e.LogP = append(e.LogP, math.Log(p))
		e.Top1 = append(e.Top1, top)
		e.Match = append(e.Match, match)
	}
	return e
}

// withOwn gives e a greedy answer of n tokens, each with probability p.
func withOwn(e Example, n int, p float64, agree bool) Example {
	a := &Answer{Text: "own", Agree: agree}
	for range n {
		a.LogP = append(a.LogP, math.Log(p))
	}
	e.Own = a
	return e
}

// A constructed data set whose parts are known: 100 examples the model
// knows and whose label is right (it reproduces them with confidence 0.95),
// 20 it knows whose label is wrong (it answers with confidence 0.95,
// differently), and 80 it does not know (confidence 0.2). The flags are
// exactly the 20, the noise rate among the 120 known examples is 20/120,
// the known share 120/200.
func TestKnownParts(t *testing.T) {
	var ex []Example
	for range 100 {
		ex = append(ex, withOwn(constant(4, 0.95, 0.95, true), 4, 0.95, true))
	}
	for range 20 {
		ex = append(ex, withOwn(constant(4, 0.01, 0.95, false), 4, 0.95, false))
	}
	for range 80 {
		ex = append(ex, withOwn(constant(4, 0.1, 0.3, false), 4, 0.2, false))
	}
	var null []Example
	for range 50 {
		null = append(null, withOwn(constant(4, 0.1, 0.3, false), 4, 0.2, false))
	}
	res, err := Analyze(ex, null, Greedy, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Agree != 100 || len(res.Flags) != 20 {
		t.Fatalf("agree %d, flags %d; want 100 and 20", res.Agree, len(res.Flags))
	}
	for i, f := range res.Flags {
		if f.Index != 100+i {
			t.Errorf("flag %d is example %d, want %d", i, f.Index, 100+i)
		}
	}
	if res.Cut == nil || math.Abs(*res.Cut-0.95) > 1e-12 {
		t.Errorf("cut %v, want 0.95 (every agreeing example has confidence 0.95)", res.Cut)
	}
	if res.Null == nil || !res.Null.Used || res.Null.FalsePositive != 0 {
		t.Errorf("null check %+v, want used with α = 0", res.Null)
	}
	const tol = 1e-12
	if res.Noise == nil || math.Abs(res.Noise.Value-20.0/120) > tol {
		t.Errorf("noise %v, want 20/120", res.Noise)
	}
	if res.Known == nil || math.Abs(res.Known.Value-0.6) > tol {
		t.Errorf("known %v, want 0.6", res.Known)
	}
	// Ĉ: the 100 agreeing examples at 0.95, the 20 flagged ones scored by
	// their own answers at 0.95, the 80 unknown ones at 0.1 (not repaired:
	// their first choice, 0.3, is below the token floor 0.55).
	wantC := (100*4*0.95 + 20*4*0.95 + 80*4*0.1) / (200 * 4)
	if math.Abs(res.Capability.Value-wantC) > tol {
		t.Errorf("capability %v, want %v", res.Capability.Value, wantC)
	}
	// The paper's statistic on the data as given.
	wantRaw := (100*4*0.95 + 20*4*0.01 + 80*4*0.1) / (200 * 4)
	if math.Abs(res.RawMeanP-wantRaw) > tol {
		t.Errorf("raw mean p %v, want %v", res.RawMeanP, wantRaw)
	}
	for _, e := range []*Estimate{&res.Capability, res.Noise, res.Known} {
		if !(e.CI[0] <= e.Value+tol && e.Value <= e.CI[1]+tol) {
			t.Errorf("estimate %v outside its interval %v", e.Value, e.CI)
		}
	}
	if !res.Noisy() {
		t.Error("20 wrong labels of 120 known examples: want measurably noisy")
	}
}

// The noise rate does not move with the share of unknown examples: it is
// the rate among the examples the model knows.
func TestNoiseIndependentOfUnknownShare(t *testing.T) {
	for _, unknown := range []int{0, 50, 300} {
		var ex []Example
		for range 90 {
			ex = append(ex, withOwn(constant(3, 0.9, 0.9, true), 3, 0.9, true))
		}
		for range 10 {
			ex = append(ex, withOwn(constant(3, 0.05, 0.9, false), 3, 0.9, false))
		}
		for range unknown {
			ex = append(ex, withOwn(constant(3, 0.05, 0.2, false), 3, 0.1, false))
		}
		res, err := Analyze(ex, nil, Greedy, Options{Seed: 2, Resamples: 100})
		if err != nil {
			t.Fatal(err)
		}
		if res.Noise == nil || math.Abs(res.Noise.Value-0.1) > 1e-12 {
			t.Errorf("%d unknown examples: noise %v, want 0.1", unknown, res.Noise)
		}
	}
}

// Unknown examples that reach the cut by chance are subtracted at the null
// set's rate α. Here 200 unknown examples, of which 10 % answer as
// confidently as known ones; the null set shows the same 10 %. With α =
// 0.1 the unflagged unknown 180 stand for 200, so 20 of the 40 flags are
// false positives and the noise rate is 20/(400 − 200) = 0.1.
func TestNullFalsePositives(t *testing.T) {
	var ex []Example
	for range 180 {
		ex = append(ex, withOwn(constant(2, 0.99, 0.99, true), 2, 0.99, true))
	}
	for range 20 {
		ex = append(ex, withOwn(constant(2, 0.01, 0.99, false), 2, 0.99, false))
	}
	for range 20 {
		ex = append(ex, withOwn(constant(2, 0.01, 0.99, false), 2, 0.99, false))
	}
	for range 180 {
		ex = append(ex, withOwn(constant(2, 0.05, 0.3, false), 2, 0.3, false))
	}
	var null []Example
	for i := range 100 {
		p := 0.3
		if i < 10 {
			p = 0.99
		}
		null = append(null, withOwn(constant(2, 0.05, p, false), 2, p, false))
	}
	res, err := Analyze(ex, null, Greedy, Options{Seed: 3, Resamples: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Null == nil || !res.Null.Used || math.Abs(res.Null.FalsePositive-0.1) > 1e-12 {
		t.Fatalf("null check %+v, want used with α = 0.1", res.Null)
	}
	if len(res.Flags) != 40 {
		t.Fatalf("%d flags, want 40", len(res.Flags))
	}
	if res.Noise == nil || math.Abs(res.Noise.Value-0.1) > 1e-12 {
		t.Errorf("noise %v, want 0.1", res.Noise)
	}
	if res.Known == nil || math.Abs(res.Known.Value-0.5) > 1e-12 {
		t.Errorf("known %v, want 200/400", res.Known)
	}
}

// Null prompts the model answers as confidently as the real ones (every
// input is answerable under a rule) are reported, not used.
func TestAnswerableNullIsNotUsed(t *testing.T) {
	var ex, null []Example
	for range 50 {
		ex = append(ex, withOwn(constant(2, 0.99, 0.99, true), 2, 0.99, true))
		null = append(null, withOwn(constant(2, 0.99, 0.99, true), 2, 0.99, true))
	}
	for range 10 {
		ex = append(ex, withOwn(constant(2, 0.01, 0.99, false), 2, 0.99, false))
	}
	res, err := Analyze(ex, null, Greedy, Options{Seed: 4, Resamples: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Null == nil || res.Null.Used || res.Null.FalsePositive != 1 {
		t.Fatalf("null check %+v, want α = 1 and not used", res.Null)
	}
	if res.Noise == nil || math.Abs(res.Noise.Value-10.0/60) > 1e-12 {
		t.Errorf("noise %v, want 10/60 (no false positives subtracted)", res.Noise)
	}
	if !hasNote(res, "answerable") {
		t.Errorf("notes %q do not say the null prompts are answerable", res.Notes)
	}
}

// With fewer than MinAgree reproduced labels the noise rate is undefined,
// and the notes say why: no silent number.
func TestTooFewAgreeing(t *testing.T) {
	var ex []Example
	for i := range 40 {
		ex = append(ex, withOwn(constant(3, 0.05, 0.4, false), 3, 0.4, i < 5))
	}
	res, err := Analyze(ex, nil, Greedy, Options{Resamples: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cut != nil || res.Noise != nil || res.Known != nil || len(res.Flags) != 0 {
		t.Errorf("cut %v, noise %v, known %v, %d flags: want none", res.Cut, res.Noise, res.Known, len(res.Flags))
	}
	if !hasNote(res, "knows too little") {
		t.Errorf("notes %q do not say why", res.Notes)
	}
	if res.Noisy() {
		t.Error("undefined noise reads as noisy")
	}
}

// Long responses are never reproduced whole: the token regime. Examples
// whose 6 tokens are 4 known (first choice 0.99) and 2 unknown (0.1); a
// fifth of them carry labels that contradict the model on every known
// token. The token noise rate is the share of confident tokens contradicted
// (0.2), and those tokens count at the model's first choice in Ĉ.
func TestTokenRegime(t *testing.T) {
	var ex []Example
	for i := range 100 {
		e := Example{}
		wrong := i%5 == 0
		for j := range 6 {
			known := j < 4
			switch {
			case known && !wrong:
				e.LogP, e.Top1, e.Match = append(e.LogP, math.Log(0.99)), append(e.Top1, 0.99), append(e.Match, true)
			case known && wrong:
				e.LogP, e.Top1, e.Match = append(e.LogP, math.Log(0.001)), append(e.Top1, 0.99), append(e.Match, false)
			default:
				e.LogP, e.Top1, e.Match = append(e.LogP, math.Log(0.05)), append(e.Top1, 0.1), append(e.Match, false)
			}
		}
		ex = append(ex, e)
	}
	res, err := Analyze(ex, nil, TeacherForced, Options{Seed: 5, Resamples: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Noise != nil {
		t.Errorf("no example is reproduced whole, yet noise %v", res.Noise)
	}
	if res.TokenNoise == nil || math.Abs(res.TokenNoise.Value-0.2) > 1e-12 {
		t.Fatalf("token noise %v, want 0.2", res.TokenNoise)
	}
	want := (100*4*0.99 + 100*2*0.05) / 600
	if math.Abs(res.Capability.Value-want) > 1e-12 {
		t.Errorf("capability %v, want %v", res.Capability.Value, want)
	}
	if !res.Noisy() {
		t.Error("a fifth of the confident tokens contradicted: want measurably noisy")
	}
}

// A model that contradicts the labels on most of its confident tokens is
// confidently wrong (or follows another convention): it is not trusted,
// and the targets count as given.
func TestConfidentlyWrongIsNotTrusted(t *testing.T) {
	var ex []Example
	for i := range 100 {
		e := constant(5, 0.001, 0.999, false)
		if i%10 == 0 {
			e = constant(5, 0.999, 0.999, true)
			e.Match[4] = false // every example differs somewhere
			e.LogP[4] = math.Log(0.001)
		}
		ex = append(ex, e)
	}
	res, err := Analyze(ex, nil, TeacherForced, Options{Seed: 6, Resamples: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.TokenNoise != nil {
		t.Errorf("token noise %v for a confidently wrong model", res.TokenNoise)
	}
	if math.Abs(res.Capability.Value-res.RawMeanP) > 1e-12 {
		t.Errorf("capability %v moved from the raw %v", res.Capability.Value, res.RawMeanP)
	}
	if !hasNote(res, "not trusted") {
		t.Errorf("notes %q do not say the model is not trusted", res.Notes)
	}
}

// The teacher-forced approximation of the own answer: the label up to the
// first token that is not the model's first choice, then that choice.
func TestTeacherForcedAnswer(t *testing.T) {
	e := Example{
		LogP:  []float64{math.Log(0.9), math.Log(0.7), math.Log(0.01), math.Log(0.5)},
		Top1:  []float64{0.9, 0.7, 0.8, 0.5},
		Match: []bool{true, true, false, true},
	}
	agree, conf := e.answer()
	if agree || math.Abs(conf-0.7) > 1e-12 {
		t.Errorf("answer: agree %v, confidence %v; want false and 0.7 (min of 0.9, 0.7 and the first choice 0.8)", agree, conf)
	}
	e.Match[2], e.LogP[2] = true, math.Log(0.8)
	if agree, conf := e.answer(); !agree || math.Abs(conf-0.5) > 1e-12 {
		t.Errorf("reproduced label: agree %v, confidence %v; want true and 0.5", agree, conf)
	}
}

func TestValidation(t *testing.T) {
	good := constant(2, 0.5, 0.5, true)
	cases := map[string]struct {
		ex []Example
		m  Method
	}{
		"lengths":          {[]Example{{LogP: []float64{-1}, Top1: []float64{0.5, 0.5}, Match: []bool{true}}}, TeacherForced},
		"positive logprob": {[]Example{{LogP: []float64{0.5}, Top1: []float64{1}, Match: []bool{true}}}, TeacherForced},
		"top below label":  {[]Example{{LogP: []float64{math.Log(0.9)}, Top1: []float64{0.5}, Match: []bool{false}}}, TeacherForced},
		"no own answer":    {[]Example{good}, Greedy},
		"empty example":    {[]Example{{}}, TeacherForced},
		"own with tf":      {[]Example{withOwn(good, 1, 0.5, true)}, TeacherForced},
		"unknown method":   {[]Example{good}, Method("beam")},
	}
	for name, c := range cases {
		if _, err := Analyze(c.ex, nil, c.m, Options{Resamples: 5}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Analyze(nil, nil, Greedy, Options{}); err != ErrNoExamples {
		t.Errorf("no examples: %v", err)
	}
}

// The same seed gives the same intervals.
func TestDeterministic(t *testing.T) {
	var ex []Example
	for i := range 60 {
		ex = append(ex, withOwn(constant(3, 0.9, 0.9, true), 3, 0.9+float64(i%7)/100, true))
	}
	for range 15 {
		ex = append(ex, withOwn(constant(3, 0.01, 0.95, false), 3, 0.95, false))
	}
	a, _ := Analyze(ex, nil, Greedy, Options{Seed: 9, Resamples: 300})
	b, _ := Analyze(ex, nil, Greedy, Options{Seed: 9, Resamples: 300})
	if a.Noise.CI != b.Noise.CI || a.Capability.CI != b.Capability.CI {
		t.Errorf("intervals differ: %v %v / %v %v", a.Noise.CI, b.Noise.CI, a.Capability.CI, b.Capability.CI)
	}
}

func hasNote(r *Result, s string) bool {
	for _, n := range r.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
