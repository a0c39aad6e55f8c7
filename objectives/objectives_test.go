package objectives

import (
	"errors"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
)

// closedForm holds f and s written directly in p, independently of the
// log-space implementation, from the definitions in DESIGN §3 and the paper's
// Lemma 3.1 (s = −p·f′).
type closedForm struct {
	spec string
	f    func(p float64) float64
	s    func(p float64) float64
}

func closedForms() []closedForm {
	ind := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	return []closedForm{
		{"nll", func(p float64) float64 { return -math.Log(p) }, func(p float64) float64 { return 1 }},
		{"original", func(p float64) float64 { return -math.Log(p) }, func(p float64) float64 { return 1 }},
		{"logp", func(p float64) float64 { return -math.Log(p) }, func(p float64) float64 { return 1 }},
		{"p", func(p float64) float64 { return 1 - p }, func(p float64) float64 { return p }},
		{"GeneralFamily-0.5", func(p float64) float64 { return (1 - math.Sqrt(p)) / 0.5 }, func(p float64) float64 { return math.Sqrt(p) }},
		{"GeneralFamily-1", func(p float64) float64 { return 1 - p }, func(p float64) float64 { return p }},
		{"GeneralFamily-10", func(p float64) float64 { return (1 - math.Pow(p, 10)) / 10 }, func(p float64) float64 { return math.Pow(p, 10) }},
		{"OnlyTopP-0.3", func(p float64) float64 { return (1 - p) * ind(p >= 0.3) }, func(p float64) float64 { return p * ind(p >= 0.3) }},
		{"OnlyBottomP-0.3", func(p float64) float64 { return (1 - p) * ind(p <= 0.3) }, func(p float64) float64 { return p * ind(p <= 0.3) }},
		{"OnlyTopLogP-0.2", func(p float64) float64 { return -math.Log(p) * ind(p >= 0.2) }, func(p float64) float64 { return ind(p >= 0.2) }},
		{"OnlyBottomLogP-0.2", func(p float64) float64 { return -math.Log(p) * ind(p <= 0.2) }, func(p float64) float64 { return ind(p <= 0.2) }},
		// dft's value is −p·log p (sg(p) is a constant p); its gradient is that of 1 − p.
		{"dft", func(p float64) float64 { return -p * math.Log(p) }, func(p float64) float64 { return p }},
		// log(1 − p): f′ = −1/(1 − p), so s = p/(1 − p); the clamp only acts above p = 1 − 1e-4.
		{"log1mp", func(p float64) float64 { return math.Log(1 - p) }, func(p float64) float64 { return p / (1 - p) }},
		// focal: f′ = γ(1−p)^(γ−1)·log p − (1−p)^γ/p, so s = (1−p)^γ − γ·p·(1−p)^(γ−1)·log p.
		{"focal-2", func(p float64) float64 { return -(1 - p) * (1 - p) * math.Log(p) },
			func(p float64) float64 { return (1-p)*(1-p) - 2*p*(1-p)*math.Log(p) }},
		{"focal-0.5", func(p float64) float64 { return -math.Sqrt(1-p) * math.Log(p) },
			func(p float64) float64 { return math.Sqrt(1-p) - 0.5*p/math.Sqrt(1-p)*math.Log(p) }},
		{"focal-0", func(p float64) float64 { return -math.Log(p) }, func(p float64) float64 { return 1 }},
		{"blend-0.3", func(p float64) float64 { return 0.3*-math.Log(p) + 0.7*(1-p) }, func(p float64) float64 { return 0.3 + 0.7*p }},
		{"blend-1", func(p float64) float64 { return -math.Log(p) }, func(p float64) float64 { return 1 }},
		{"blend-0", func(p float64) float64 { return 1 - p }, func(p float64) float64 { return p }},
	}
}

// pGrid is a grid over (0, 1) that avoids the exact thresholds used above.
func pGrid() []float64 {
	ps := []float64{1e-6, 1e-3, 0.01, 0.05}
	for i := 1; i < 100; i++ {
		ps = append(ps, float64(i)/100+0.0037)
	}
	return append(ps, 0.999, 0.9999)
}

func TestClosedForms(t *testing.T) {
	const tol = 1e-12 // both sides are a few floating-point operations of each other
	for _, c := range closedForms() {
		o, err := Parse(c.spec)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.spec, err)
		}
		for _, p := range pGrid() {
			if p >= 1-2*Log1mPClamp && o.Kind() == KindLog1mP {
				continue
			}
			if got, want := o.F(p), c.f(p); !scalar.EqualWithinAbsOrRel(got, want, tol, tol) {
				t.Errorf("%s: F(%v) = %v, want %v", c.spec, p, got, want)
			}
			if got, want := o.S(p), c.s(p); !scalar.EqualWithinAbsOrRel(got, want, tol, tol) {
				t.Errorf("%s: S(%v) = %v, want %v", c.spec, p, got, want)
			}
			if got, want := o.W(p), c.s(p)*(1-p); !scalar.EqualWithinAbsOrRel(got, want, tol, tol) {
				t.Errorf("%s: W(%v) = %v, want %v", c.spec, p, got, want)
			}
		}
	}
}

// TestScaleIsMinusPTimesDerivative checks s_f(p) = −p·f′(p) against central
// finite differences of F, for every spec whose value and gradient agree
// (dft's value is −p·log p but its gradient is that of 1 − p by design).
func TestScaleIsMinusPTimesDerivative(t *testing.T) {
	for _, c := range closedForms() {
		o := MustParse(c.spec)
		if o.Kind() == KindDFT {
			continue
		}
		for _, p := range pGrid() {
			if p < 1e-3 || p > 0.999 {
				continue // the step below needs room on both sides
			}
			if o.Thresholded() && math.Abs(p-o.Param()) < 1e-3 {
				continue
			}
			h := 1e-6 * math.Min(p, 1-p)
			d := fd.Derivative(o.F, p, &fd.Settings{Formula: fd.Central, Step: h})
			want := -p * d
			// Central differences carry O(h²·f‴) truncation and O(ε·f/h) rounding error;
			// 1e-6 relative is well above both at these step sizes.
			if got := o.S(p); !scalar.EqualWithinAbsOrRel(got, want, 1e-6, 1e-6) {
				t.Errorf("%s: S(%v) = %v, −p·f′ by finite differences = %v", c.spec, p, got, want)
			}
		}
	}
}

func TestPeakOfGeneralFamily(t *testing.T) {
	// W = p^α(1 − p) has W′ = p^(α−1)(α − (α+1)p), zero at p* = α/(α+1) (paper-notes §1).
	for _, a := range []float64{0.1, 0.5, 0.8, 1, 2, 5, 10} {
		o, err := GeneralFamily(a)
		if err != nil {
			t.Fatal(err)
		}
		want := a / (a + 1)
		// Golden-section search converges far below 1e-7; W is flat at its peak, so
		// the argmax is only defined to about sqrt(machine ε) ≈ 1e-8 relative.
		if got := o.PeakP(); math.Abs(got-want) > 1e-6 {
			t.Errorf("GeneralFamily-%v: PeakP = %v, want α/(α+1) = %v", a, got, want)
		}
	}
	if got := NLL().PeakP(); got > 1e-9 {
		t.Errorf("nll: PeakP = %v, want 0 (W = 1 − p is decreasing)", got)
	}
	if got := P().PeakP(); math.Abs(got-0.5) > 1e-6 {
		t.Errorf("p: PeakP = %v, want 0.5 (W = p(1 − p))", got)
	}
}

func TestLeaningShareAndClass(t *testing.T) {
	for _, c := range []struct {
		spec  string
		share float64 // ∫_½^1 W / ∫_0^1 W, by hand; NaN = not checked
		class Class
	}{
		{"nll", 0.25, PriorAverse}, // (1/8)/(1/2)
		{"p", 0.5, PriorLeaning},   // (1/12)/(1/6): the paper's boundary case
		{"GeneralFamily-1", 0.5, PriorLeaning},
		{"dft", 0.5, PriorLeaning},
		{"log1mp", 0.75, PriorLeaning}, // W = p: (3/8)/(1/2), up to the 1e-4 clamp
		{"GeneralFamily-10", math.NaN(), PriorLeaning},
		{"GeneralFamily-2", 11.0 / 16, PriorLeaning}, // ∫½¹ p²−p³ = 11/192; ∫₀¹ = 1/12
		{"GeneralFamily-0.5", math.NaN(), PriorAverse},
		{"focal-2", math.NaN(), PriorAverse},
		{"blend-0.5", (1.0/16 + 1.0/24) / (1.0/4 + 1.0/12), PriorAverse},
		{"OnlyTopLogP-0.2", math.NaN(), PriorLeaning}, // the paper's label: leaning by masking
		{"OnlyBottomP-0.5", math.NaN(), PriorAverse},
	} {
		o := MustParse(c.spec)
		if got := o.Class(); got != c.class {
			t.Errorf("%s: Class = %v, want %v", c.spec, got, c.class)
		}
		if !math.IsNaN(c.share) {
			// Simpson on 2000 panels is exact for these polynomials; the log1mp clamp moves
			// the share by about 1e-4.
			if got := o.LeaningShare(); math.Abs(got-c.share) > 2e-4 {
				t.Errorf("%s: LeaningShare = %v, want %v", c.spec, got, c.share)
			}
		}
	}
	if MustParse("auto").Class() != ClassAdaptive {
		t.Error("auto: want ClassAdaptive")
	}
}

func TestExtremes(t *testing.T) {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	for _, c := range closedForms() {
		o := MustParse(c.spec)
		for _, lp := range []float64{-1000, -745.2, -50, -1e-12, -1e-300, 0, 5e-8} {
			s := o.SLog(lp)
			if !finite(s) || s < 0 {
				t.Errorf("%s: SLog(%v) = %v, want finite and ≥ 0", c.spec, lp, s)
			}
			f := o.FLog(lp)
			if math.IsNaN(f) {
				t.Errorf("%s: FLog(%v) = NaN", c.spec, lp)
			}
		}
		if o.Kind() != KindNLL && o.Kind() != KindOnlyTopLogP && o.Kind() != KindOnlyBottomLogP && o.Kind() != KindFocal && o.Kind() != KindBlend {
			if f := o.FLog(math.Inf(-1)); !finite(f) {
				t.Errorf("%s: FLog(−∞) = %v, want finite", c.spec, f)
			}
		}
	}
	// 1 − p near p = 1 keeps full relative precision: lp = −1e-12 gives 1 − p = 1e-12 − 5e-25.
	if got := P().FLog(-1e-12); math.Abs(got-1e-12)/1e-12 > 1e-12 {
		t.Errorf("p: FLog(−1e-12) = %v, want 1e-12 to full precision", got)
	}
	// (1 − p^α)/α with p^α tiny: lp = −1000, α = 10 gives (1 − e^−10000)/10 = 0.1.
	if got := MustParse("GeneralFamily-10").FLog(-1000); got != 0.1 {
		t.Errorf("GeneralFamily-10: FLog(−1000) = %v, want 0.1", got)
	}
	// log1mp at p = 1 sits on the clamp: log(1e-4), with zero gradient.
	o := MustParse("log1mp")
	if got := o.F(1); math.Abs(got-math.Log(Log1mPClamp)) > 1e-12 || o.S(1) != 0 {
		t.Errorf("log1mp at p = 1: F = %v, S = %v; want log(1e-4) and 0", got, o.S(1))
	}
	// focal-γ as p → 1: s ≈ (1 + γ)(1 − p)^γ (expand log p ≈ −(1 − p)).
	u := 1e-10
	if got, want := MustParse("focal-0.5").S(1-u), 1.5*math.Sqrt(u); math.Abs(got-want)/want > 1e-4 {
		t.Errorf("focal-0.5: S(1 − 1e-10) = %v, want ≈ %v", got, want)
	}
	for _, o := range []Objective{P(), NLL()} {
		if !math.IsNaN(o.F(1.5)) || !math.IsNaN(o.F(-0.1)) || !math.IsNaN(o.FLog(math.NaN())) {
			t.Errorf("%v: p outside [0, 1] or NaN must give NaN", o)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, canonical, str string }{
		{"nll", "nll", "nll"},
		{"original", "nll", "original"},
		{"logp", "nll", "logp"},
		{"LOGP", "nll", "logp"},
		{"p", "p", "p"},
		{"GeneralFamily-10", "GeneralFamily-10", "GeneralFamily-10"},
		{"generalfamily-0.50", "GeneralFamily-0.5", "GeneralFamily-0.5"},
		{" OnlyTopLogP-0.2 ", "OnlyTopLogP-0.2", "OnlyTopLogP-0.2"},
		{"OnlyTopP-0", "OnlyTopP-0", "OnlyTopP-0"},
		{"OnlyBottomP-1", "OnlyBottomP-1", "OnlyBottomP-1"},
		{"OnlyBottomLogP-0.5", "OnlyBottomLogP-0.5", "OnlyBottomLogP-0.5"},
		{"dft", "dft", "dft"},
		{"log1mp", "log1mp", "log1mp"},
		{"focal-2", "focal-2", "focal-2"},
		{"blend-0.25", "blend-0.25", "blend-0.25"},
		{"auto", "auto", "auto"},
		{"auto-theory", "auto-theory", "auto-theory"},
		{"GeneralFamily-1e-3", "GeneralFamily-0.001", "GeneralFamily-0.001"},
	} {
		o, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if o.Canonical() != c.canonical || o.String() != c.str {
			t.Errorf("Parse(%q): Canonical %q String %q, want %q %q", c.in, o.Canonical(), o.String(), c.canonical, c.str)
		}
		if back, err := Parse(o.String()); err != nil || back != o {
			t.Errorf("Parse(%q).String() = %q does not round-trip: %v %v", c.in, o.String(), back, err)
		}
	}
	for _, c := range []struct{ in, mention string }{
		{"", "empty"},
		{"xyz", "accepted forms"},
		{"GeneralFamly-10", "did you mean GeneralFamily-10"},
		{"GeneralFamily", "needs a parameter"},
		{"GeneralFamily-", "needs a parameter"},
		{"GeneralFamily-0", "α > 0"},
		{"GeneralFamily--1", "α > 0"},
		{"GeneralFamily-abc", "not a finite number"},
		{"GeneralFamily-NaN", "not a finite number"},
		{"GeneralFamily-Inf", "not a finite number"},
		{"OnlyTopP-1", "0 ≤ q < 1"},
		{"OnlyBottomLogP-0", "0 < q ≤ 1"},
		{"OnlyTopLogP-1.5", "0 ≤ q < 1"},
		{"blend-1.2", "0 ≤ λ ≤ 1"},
		{"focal--1", "γ ≥ 0"},
		{"nll-2", "takes no parameter"},
		{"p-0.5", "takes no parameter"},
	} {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q): want an error", c.in)
			continue
		}
		if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), "accepted forms") {
			t.Errorf("Parse(%q) = %v; want ErrSpec mentioning %q and the accepted forms", c.in, err, c.mention)
		}
	}
}

// TestBatchGradient checks Batch's scale against finite differences of the
// mean loss with respect to the logits, through an explicit softmax: this is
// the contract the trainer's fused operator relies on.
func TestBatchGradient(t *testing.T) {
	// Three tokens over a vocabulary of four; token 2 is masked out.
	logits := [][]float64{{2, 0.5, -1, 0}, {0.1, 0.2, 0.3, 3}, {1, 1, 1, 1}, {-2, 4, 0, 1}}
	targets := []int{0, 3, 2, 0}
	mask := []bool{true, true, false, true}
	logpOf := func(z []float64, y int) float64 {
		m := math.Inf(-1)
		for _, v := range z {
			m = math.Max(m, v)
		}
		var s float64
		for _, v := range z {
			s += math.Exp(v - m)
		}
		return z[y] - m - math.Log(s)
	}
	for _, spec := range []string{"nll", "p", "GeneralFamily-0.5", "GeneralFamily-10", "OnlyTopLogP-0.2", "OnlyBottomP-0.5", "focal-2", "blend-0.3", "log1mp"} {
		o := MustParse(spec)
		lossAt := func() float64 {
			lp := make([]float64, len(logits))
			for i := range logits {
				lp[i] = logpOf(logits[i], targets[i])
			}
			st, err := o.Batch(lp, mask, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return st.Loss
		}
		lp := make([]float64, len(logits))
		for i := range logits {
			lp[i] = logpOf(logits[i], targets[i])
		}
		loss := make([]float64, len(lp))
		scale := make([]float64, len(lp))
		st, err := o.Batch(lp, mask, loss, scale)
		if err != nil {
			t.Fatal(err)
		}
		if st.Scored != 3 {
			t.Errorf("%s: Scored = %d, want 3", spec, st.Scored)
		}
		for i := range logits {
			for k := range logits[i] {
				// Analytic: scale_i·(softmax_ik − δ_k,y_i).
				soft := math.Exp(logpOf(logits[i], k))
				d := 0.0
				if k == targets[i] {
					d = 1
				}
				want := scale[i] * (soft - d)
				old := logits[i][k]
				h := 1e-6
				logits[i][k] = old + h
				up := lossAt()
				logits[i][k] = old - h
				down := lossAt()
				logits[i][k] = old
				got := (up - down) / (2 * h)
				// Central differences on a smooth function of O(1) values: error ≈ 1e-9.
				if math.Abs(got-want) > 1e-7 {
					t.Errorf("%s: ∂Loss/∂z[%d][%d] = %v by finite differences, Batch says %v", spec, i, k, got, want)
				}
			}
		}
	}
}

func TestBatchKeptTokenAveraging(t *testing.T) {
	// p = 0.1, 0.5, 0.9: OnlyTopLogP-0.2 keeps the last two, so the loss is
	// (−log 0.5 − log 0.9)/2 and each kept scale is 1/2 (the paper's code divides by kept tokens).
	lp := []float64{math.Log(0.1), math.Log(0.5), math.Log(0.9)}
	scale := make([]float64, 3)
	st, err := MustParse("OnlyTopLogP-0.2").Batch(lp, nil, nil, scale)
	if err != nil {
		t.Fatal(err)
	}
	want := (-math.Log(0.5) - math.Log(0.9)) / 2
	if st.Kept != 2 || st.Scored != 3 || math.Abs(st.Loss-want) > 1e-15 {
		t.Errorf("stats = %+v, want Kept 2, Scored 3, Loss %v", st, want)
	}
	if scale[0] != 0 || scale[1] != 0.5 || scale[2] != 0.5 {
		t.Errorf("scale = %v, want [0 0.5 0.5]", scale)
	}
	if math.Abs(st.MeanP-0.5) > 1e-15 {
		t.Errorf("MeanP = %v, want 0.5 (over scored tokens, not kept)", st.MeanP)
	}
	// Nothing kept: zero loss and zero scales, no division by zero.
	st, err = MustParse("OnlyTopLogP-0.95").Batch(lp, nil, nil, scale)
	if err != nil || st.Kept != 0 || st.Loss != 0 || scale[2] != 0 {
		t.Errorf("nothing kept: %+v %v %v", st, scale, err)
	}
	// Errors.
	if _, err := NLL().Batch([]float64{0.5}, nil, nil, nil); err == nil {
		t.Error("positive log-prob: want an error")
	}
	if _, err := NLL().Batch([]float64{math.NaN()}, nil, nil, nil); err == nil {
		t.Error("NaN log-prob: want an error")
	}
	if _, err := NLL().Batch([]float64{-1, -2}, []bool{true}, nil, nil); err == nil {
		t.Error("mask length mismatch: want an error")
	}
	if _, err := MustParse("auto").Batch([]float64{-1}, nil, nil, nil); !errors.Is(err, ErrAdaptive) {
		t.Errorf("auto: want ErrAdaptive, got %v", err)
	}
	// Rounding slightly above zero is accepted as p = 1.
	if st, err := NLL().Batch([]float64{6e-8}, nil, nil, nil); err != nil || st.Loss != 0 {
		t.Errorf("lp = 6e-8: %+v %v, want loss 0 and no error", st, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"nll", "GeneralFamily-10", "OnlyTopLogP-0.2", "blend-0.5", "focal-2", "auto-theory", "x-", "-", "--1", "p-p", "GeneralFamily-1e400",
		"eaft-1", "eaft-axolotl-0.5-20", "eaft-axolotl-1e-3-7", "eaft-1-20", "deft", "DEFT", "Cayley_Trans", "deft-cayley", "asft-0.1", "eaft-axolotl-1", "asft-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "accepted forms") {
				t.Fatalf("Parse(%q): error %q does not name the accepted forms", s, err)
			}
			return
		}
		back, err := Parse(o.String())
		if err != nil || back != o {
			t.Fatalf("Parse(%q) = %v does not round-trip: %v", s, o, err)
		}
		if o.OfP() {
			for _, p := range []float64{0, 0.3, 1} {
				if math.IsNaN(o.S(p)) || o.S(p) < 0 {
					t.Fatalf("%v: S(%v) = %v", o, p, o.S(p))
				}
			}
		}
		if f := o.Form(); f == FormDist || f == FormAnchored {
			for _, sh := range Shapes() {
				for _, tg := range sh.Targets {
					tv, err := o.Token(sh.LogQ, sh.LogQ, tg.Index)
					if err != nil || math.IsNaN(tv.F) || math.IsNaN(tv.Scale) || tv.Scale < 0 || tv.Anchor < 0 {
						t.Fatalf("%v on %s, %s: %+v %v", o, sh.Name, tg.Name, tv, err)
					}
				}
			}
		}
	})
}
