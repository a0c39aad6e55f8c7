package objectives

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseTrainerSpecs(t *testing.T) {
	for _, c := range []struct{ in, str string }{
		{"eaft-1", "eaft-1"},
		{"EAFT-0.50", "eaft-0.5"},
		{"eaft-0", "eaft-0"},
		{"eaft-axolotl-1-20", "eaft-axolotl-1-20"},
		{"eaft-axolotl-1e-3-7", "eaft-axolotl-0.001-7"},
		{"deft", "deft"},
		{"DEFT", "deft"},                // the DEFT fork's key
		{"Cayley_Trans", "deft-cayley"}, // the DEFT fork's key
		{"deft-cayley", "deft-cayley"},
		{"asft-0.1", "asft-0.1"},
		{"ASFT-0", "asft-0"},
	} {
		o, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if o.String() != c.str || o.Canonical() != c.str {
			t.Errorf("Parse(%q) = %q (canonical %q), want %q", c.in, o.String(), o.Canonical(), c.str)
		}
		if back, err := Parse(o.String()); err != nil || back != o {
			t.Errorf("Parse(%q).String() does not round-trip: %v %v", c.in, back, err)
		}
		if o.OfP() || o.Class() != ClassNotP || !math.IsNaN(o.S(0.5)) || !math.IsNaN(o.F(0.5)) || !math.IsNaN(o.LeaningShare()) {
			t.Errorf("%v: must not pose as a function of p: OfP %v, class %v, S %v", o, o.OfP(), o.Class(), o.S(0.5))
		}
	}
	if k := MustParse("eaft-1").TopK(); k != 20 {
		t.Errorf("eaft-1: TopK = %d, want 20", k)
	}
	if k := MustParse("eaft-axolotl-1-7").TopK(); k != 7 {
		t.Errorf("eaft-axolotl-1-7: TopK = %d, want 7", k)
	}
	for _, c := range []struct{ in, mention string }{
		{"eaft", "as in eaft-1"},
		{"eaft-", "needs a parameter"},
		{"eaft--1", "α ≥ 0"},
		{"eaft-1-20", "did you mean eaft-axolotl-1-20"},
		{"eaft-axolotl", "as in eaft-axolotl-1-20"},
		{"eaft-axolotl-1", "needs α and an integer k"},
		{"eaft-axolotl-1-0", "k ≥ 1"},
		{"eaft-axolotl-1-2.5", "needs α and an integer k"},
		{"eaft-axolotl--1-20", "α ≥ 0"},
		{"eaft-axolotel-1-20", "did you mean eaft-axolotl-1-20"},
		{"deft-0.5", "takes no parameter"},
		{"deft-cayley-1", "takes no parameter"},
		{"deeft", "did you mean deft"},
		{"asft", "as in asft-0.1"},
		{"asft--0.1", "α ≥ 0"},
		{"asft-x", "not a finite number"},
		{"aft-0.1", "did you mean"},
	} {
		_, err := Parse(c.in)
		if err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), "accepted forms") {
			t.Errorf("Parse(%q) = %v; want ErrSpec mentioning %q and the accepted forms", c.in, err, c.mention)
		}
	}
	// The p-only fast path refuses the objectives that read the distribution.
	for _, s := range []string{"eaft-1", "eaft-axolotl-1-20", "deft", "asft-0.1"} {
		if _, err := MustParse(s).Batch([]float64{-1}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "BatchDist") {
			t.Errorf("%s: Batch = %v, want an error pointing to BatchDist", s, err)
		}
	}
}

// logSoftmax is the log-softmax of z, in float64.
func logSoftmax(z []float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, v)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(v - mx)
	}
	l := mx + math.Log(s)
	out := make([]float64, len(z))
	for i, v := range z {
		out[i] = v - l
	}
	return out
}

func TestDistStatClosedForms(t *testing.T) {
	// Uniform over V = 1000: the top-20 softmax is uniform over 20, entropy
	// log 20; the collision probability is 1/V.
	u := make([]float64, 1000)
	for i := range u {
		u[i] = -math.Log(1000)
	}
	if got, want := MustParse("eaft-1").DistStat(u), math.Log(20); math.Abs(got-want) > 1e-13 {
		t.Errorf("eaft on uniform: H = %v, want log 20 = %v", got, want)
	}
	// Axolotl's log(π + 1e-10) at π = 1/5.
	if got, want := MustParse("eaft-axolotl-1-5").DistStat(u), -math.Log(0.2+1e-10); math.Abs(got-want) > 1e-13 {
		t.Errorf("eaft-axolotl-1-5 on uniform: H = %v, want %v", got, want)
	}
	if got := MustParse("deft").DistStat(u); math.Abs(got-1e-3) > 1e-16 {
		t.Errorf("deft on uniform: c = %v, want 1e-3", got)
	}
	// Axolotl takes min(k, V): k = 50 on 4 tokens is the full entropy.
	q := []float64{0.5, 0.25, 0.125, 0.125}
	lq := make([]float64, 4)
	h := 0.0
	for i, p := range q {
		lq[i] = math.Log(p)
		h -= p * math.Log(p+1e-10)
	}
	if got := MustParse("eaft-axolotl-2-50").DistStat(lq); math.Abs(got-h) > 1e-15 {
		t.Errorf("eaft-axolotl-2-50 on 4 tokens: H = %v, want %v", got, h)
	}
	// The top-k is taken by value, whatever the order of the vocabulary:
	// a top-2 of {0.5, 0.25} renormalises to {2/3, 1/3}.
	rev := []float64{lq[3], lq[1], lq[2], lq[0]}
	want := -(2.0/3*math.Log(2.0/3+1e-10) + 1.0/3*math.Log(1.0/3+1e-10))
	if got := MustParse("eaft-axolotl-1-2").DistStat(rev); math.Abs(got-want) > 1e-15 {
		t.Errorf("top-2 entropy = %v, want %v", got, want)
	}
	// LLaMA-Factory's EAFT needs 20 tokens (torch.topk(k=20)).
	if !math.IsNaN(MustParse("eaft-1").DistStat(lq)) {
		t.Error("eaft-1 on 4 tokens: want NaN")
	}
	if err := MustParse("eaft-1").CheckVocab(16); err == nil || !strings.Contains(err.Error(), "eaft-axolotl-1-16") {
		t.Errorf("CheckVocab(16) = %v, want a pointer to eaft-axolotl-1-16", err)
	}
	if MustParse("eaft-1").CheckVocab(20) != nil || MustParse("eaft-axolotl-1-20").CheckVocab(3) != nil {
		t.Error("CheckVocab refuses a vocabulary it can run on")
	}
}

func TestTokenValues(t *testing.T) {
	// One token, written out by hand from each trainer's formula.
	rng := rand.New(rand.NewPCG(3, 4))
	z := make([]float64, 30)
	for i := range z {
		z[i] = 2 * rng.NormFloat64()
	}
	zr := make([]float64, 30)
	for i := range zr {
		zr[i] = z[i] + 0.5*rng.NormFloat64()
	}
	lq, lr := logSoftmax(z), logSoftmax(zr)
	y := 7
	p := math.Exp(lq[y])
	// The top-20 entropy by sorting, independently of largest().
	sorted := append([]float64(nil), lq...)
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			if sorted[j] > sorted[i] {
				sorted[i], sorted[j] = sorted[j], sorted[i]
			}
		}
	}
	top := logSoftmax(sorted[:20])
	var h20 float64
	for _, l := range top {
		h20 -= math.Exp(l) * l
	}
	var c, kl float64
	for i := range lq {
		c += math.Exp(2 * lq[i])
		kl += math.Exp(lr[i]) * (lr[i] - lq[i])
	}
	for _, cs := range []struct {
		spec       string
		f, s, anch float64
	}{
		{"eaft-0.7", math.Pow(h20/3, 0.7) * -lq[y], math.Pow(h20/3, 0.7), 0},
		// The DEFT fork divides by the token count + 1e-8, here 1 + 1e-8.
		{"deft", (1 - math.Pow(p, c)) / (c + 1e-6), c * math.Pow(p, c) / (c + 1e-6) / (1 + 1e-8), 0},
		{"asft-0.3", -p*lq[y] + 0.3*kl, p, 0.3},
	} {
		tv, err := MustParse(cs.spec).Token(lq, lr, y)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(tv.F-cs.f) > 1e-12 || math.Abs(tv.Scale-cs.s) > 1e-12 || tv.Anchor != cs.anch || math.Abs(tv.P-p) > 1e-15 {
			t.Errorf("%s: %+v, want f %v, scale %v, anchor %v", cs.spec, tv, cs.f, cs.s, cs.anch)
		}
	}
	// deft's value in the DEFT fork is a batch mean over count + 1e-8.
	st, err := MustParse("deft").BatchDist(DistBatch{LogP: []float64{lq[y]}, Stat: []float64{c}}, nil, nil, nil)
	if err != nil || math.Abs(st.Loss-(1-math.Pow(p, c))/(c+1e-6)/(1+1e-8)) > 1e-15 {
		t.Errorf("deft batch of one: %+v %v", st, err)
	}
	// Errors.
	if _, err := MustParse("asft-0.1").Token(lq, nil, y); err == nil {
		t.Error("asft without a reference: want an error")
	}
	if _, err := MustParse("deft-cayley").Token(lq, nil, y); err == nil {
		t.Error("deft-cayley on one token: want an error (it reads the batch's mean p)")
	}
	if _, err := MustParse("deft").BatchDist(DistBatch{LogP: []float64{-1}}, nil, nil, nil); err == nil {
		t.Error("deft without statistics: want an error")
	}
	if _, err := MustParse("asft-1").BatchDist(DistBatch{LogP: []float64{-1}, KL: []float64{math.NaN()}}, nil, nil, nil); err == nil {
		t.Error("NaN KL: want an error")
	}
}

// gradCase is a batch of logits with targets, a mask and a reference.
type gradCase struct {
	z, zr   [][]float64
	targets []int
	mask    []bool
}

func newGradCase(seed uint64, n, v int) gradCase {
	rng := rand.New(rand.NewPCG(seed, 11))
	var c gradCase
	for i := range n {
		z, zr := make([]float64, v), make([]float64, v)
		for k := range z {
			z[k] = 1.5 * rng.NormFloat64()
			zr[k] = z[k] + 0.7*rng.NormFloat64()
		}
		c.z, c.zr = append(c.z, z), append(c.zr, zr)
		c.targets = append(c.targets, rng.IntN(v))
		c.mask = append(c.mask, i%4 != 2)
	}
	return c
}

// inputs computes BatchDist's inputs at the current logits; frozen, when
// given, supplies the statistics instead (the detached gate held fixed).
func (c gradCase) inputs(o Objective, frozen []float64) (DistBatch, []float64) {
	in := DistBatch{Mask: c.mask}
	stats := make([]float64, len(c.z))
	for i, z := range c.z {
		lq := logSoftmax(z)
		in.LogP = append(in.LogP, lq[c.targets[i]])
		stats[i] = o.DistStat(lq)
		in.KL = append(in.KL, KL(logSoftmax(c.zr[i]), lq))
	}
	in.Stat = stats
	if frozen != nil {
		in.Stat = frozen
	}
	return in, stats
}

// TestBatchDistGradient checks the gradient coefficients of BatchDist
// against central finite differences of its loss, with every detached
// quantity held at its value at the unperturbed logits (that is what
// detaching means): the gate statistics for eaft and deft, the DFT weight p
// for asft (through a loss written out here), and Cayley_Trans's exponent.
func TestBatchDistGradient(t *testing.T) {
	const h = 1e-6
	for _, spec := range []string{"eaft-1", "eaft-0.6", "eaft-axolotl-1.5-5", "eaft-axolotl-1-40", "deft", "deft-cayley", "asft-0.1", "asft-2"} {
		o := MustParse(spec)
		c := newGradCase(7, 9, 25)
		in, frozen := c.inputs(o, nil)
		scale, anchor := make([]float64, len(c.z)), make([]float64, len(c.z))
		st, err := o.BatchDist(in, nil, scale, anchor)
		if err != nil {
			t.Fatal(spec, err)
		}
		p0 := make([]float64, len(c.z))
		for i, lp := range in.LogP {
			p0[i] = math.Exp(lp)
		}
		lossAt := func() float64 {
			in, _ := c.inputs(o, frozen)
			switch o.Kind() {
			case KindASFT:
				var s float64
				for i, m := range c.mask {
					if m {
						s += -p0[i]*in.LogP[i] + o.Param()*in.KL[i]
					}
				}
				return s / float64(st.Scored)
			case KindDEFTCayley:
				var s float64
				for i, m := range c.mask {
					if m {
						a := cayleyExponent(p0[i], st.MeanP)
						s += -math.Expm1(a*in.LogP[i]) / (a + 1e-8)
					}
				}
				return s / (float64(st.Scored) + 1e-8)
			}
			got, err := o.BatchDist(in, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return got.Loss
		}
		worst := 0.0
		for i := range c.z {
			q := logSoftmax(c.z[i])
			r := logSoftmax(c.zr[i])
			for k := range c.z[i] {
				d := 0.0
				if k == c.targets[i] {
					d = 1
				}
				want := scale[i]*(math.Exp(q[k])-d) + anchor[i]*(math.Exp(q[k])-math.Exp(r[k]))
				old := c.z[i][k]
				c.z[i][k] = old + h
				up := lossAt()
				c.z[i][k] = old - h
				down := lossAt()
				c.z[i][k] = old
				got := (up - down) / (2 * h)
				// Central differences of smooth O(1) functions: error ≈ 1e-9.
				if math.Abs(got-want) > 1e-7 {
					t.Errorf("%s: ∂Loss/∂z[%d][%d]: finite differences %v, BatchDist %v", spec, i, k, got, want)
				}
				worst = math.Max(worst, math.Abs(got-want))
			}
		}
		t.Logf("%s: worst |finite difference − analytic| = %.2g", spec, worst)
	}
}

// TestShapes pins the gates on the representative distributions that
// 'objectives show' prints, from closed forms.
func TestShapes(t *testing.T) {
	shapes := Shapes()
	if len(shapes) != 3 {
		t.Fatalf("%d shapes", len(shapes))
	}
	for _, sh := range shapes {
		var sum float64
		for _, l := range sh.LogQ {
			sum += math.Exp(l)
		}
		if len(sh.LogQ) != ShapeVocab || math.Abs(sum-1) > 1e-12 {
			t.Errorf("%s: %d tokens summing to %v", sh.Name, len(sh.LogQ), sum)
		}
	}
	conf := shapes[0].LogQ
	// Confident: top-20 = {0.9, 19 × 0.1/999}; renormalised by z = 0.9 + 19·0.1/999.
	u := 0.1 / 999
	z := 0.9 + 19*u
	h := -(0.9/z*math.Log(0.9/z) + 19*u/z*math.Log(u/z))
	tv, err := MustParse("eaft-1").Token(conf, nil, 0)
	if err != nil || math.Abs(tv.Stat-h) > 1e-12 || math.Abs(tv.Gate-h/3) > 1e-12 {
		t.Errorf("eaft-1 on confident: %+v %v, want H %v, gate %v", tv, err, h, h/3)
	}
	// The confident conflict gets the same small gate as the top token: EAFT
	// suppresses it, where NLL's weight on it is ≈ 1.
	tail, _ := MustParse("eaft-1").Token(conf, nil, ShapeVocab-1)
	if tail.Gate != tv.Gate || tail.Scale*(1-tail.P) > 0.2 {
		t.Errorf("eaft-1 on the confident tail: %+v", tail)
	}
	// deft: c = 0.81 + 999·u².
	tv, _ = MustParse("deft").Token(conf, nil, 0)
	if c := 0.81 + 999*u*u; math.Abs(tv.Stat-c) > 1e-13 { // exp(2·log q) summed over 1000 tokens
		t.Errorf("deft on confident: c = %v, want %v", tv.Stat, c)
	}
	// asft at the start (reference = model): DFT's scale p, no anchor pull
	// on the distribution, KL 0.
	tv, _ = MustParse("asft-0.1").Token(conf, conf, 0)
	if math.Abs(tv.Scale-0.9) > 1e-12 || math.Abs(tv.F-(-0.9*math.Log(0.9))) > 1e-12 {
		t.Errorf("asft on confident, reference = model: %+v", tv)
	}
	// deft-cayley: at p = 1, d = 1e-8 and a = floor + (1 − floor)(1 − 1e-8)/(1 + 2e-8) ≈ 1.
	if _, s, a, err := MustParse("deft-cayley").BatchToken(0, 0.5); err != nil || math.Abs(a-1) > 1e-7 || math.Abs(s-1) > 1e-7 {
		t.Errorf("deft-cayley at p = 1: s %v, a %v, %v", s, a, err)
	}
	if _, _, _, err := MustParse("deft").BatchToken(0, 0.5); err == nil {
		t.Error("BatchToken on deft: want an error")
	}
}

// TestTokenScale: TokenScale is the per-token scale that Batch and
// BatchDist divide by the batch's count (Kept, plus 1e-8 for the DEFT
// fork's objectives), for every form.
func TestTokenScale(t *testing.T) {
	c := newGradCase(5, 8, 25)
	for _, spec := range []string{"nll", "p", "GeneralFamily-3", "OnlyTopLogP-0.2", "focal-2", "eaft-1", "eaft-axolotl-0.5-7", "deft", "deft-cayley", "asft-0.1"} {
		o := MustParse(spec)
		in, _ := c.inputs(o, nil)
		in.Mask = nil
		scale := make([]float64, len(in.LogP))
		st, err := o.BatchDist(in, nil, scale, nil)
		if err != nil {
			t.Fatal(spec, err)
		}
		den := float64(st.Kept)
		if o.Kind() == KindDEFT || o.Kind() == KindDEFTCayley {
			den += 1e-8
		}
		for i, lp := range in.LogP {
			gate := in.Stat[i]
			if o.Form() == FormBatch {
				gate = st.MeanP
			}
			if got, want := o.TokenScale(lp, gate), scale[i]*den; math.Abs(got-want) > 1e-14*(1+math.Abs(want)) {
				t.Errorf("%s token %d: TokenScale %v, BatchDist's scale × count %v", spec, i, got, want)
			}
		}
	}
	for _, bad := range []struct {
		spec string
		gate float64
	}{{"auto", 0}, {"eaft-1", math.NaN()}, {"deft-cayley", 1.5}} {
		if s := MustParse(bad.spec).TokenScale(-1, bad.gate); !math.IsNaN(s) {
			t.Errorf("%s with gate %v: TokenScale %v, want NaN", bad.spec, bad.gate, s)
		}
	}
}
