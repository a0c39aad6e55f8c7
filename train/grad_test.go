package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/capsel/capsel/objectives"
)

// This file checks the model's hand-written gradients. The reference is an
// independent float64 implementation of the same forward pass, written with
// plain loops straight from the definitions; its gradient is taken by central
// finite differences (h = 1e-6, truncation error O(h²) ≈ 1e-12, rounding
// error O(ε/h) ≈ 1e-10). The float32 analytic gradients must agree with it
// to float32 accuracy.

// refParams holds the model's parameters in float64, in Params order.
type refParams struct {
	cfg ModelConfig
	p   map[string][]float64
}

func toRef(m *Model) refParams {
	r := refParams{cfg: m.Cfg, p: map[string][]float64{}}
	for _, np := range m.Params() {
		d := mat.Data[float32](np.Param)
		v := make([]float64, len(d))
		for i, x := range d {
			v[i] = float64(x)
		}
		r.p[np.Name] = v
	}
	return r
}

func refLayerNorm(x []float64, n, d int, g, b []float64) []float64 {
	y := make([]float64, n*d)
	for i := range n {
		var mu, v float64
		for j := range d {
			mu += x[i*d+j]
		}
		mu /= float64(d)
		for j := range d {
			c := x[i*d+j] - mu
			v += c * c
		}
		v /= float64(d)
		for j := range d {
			y[i*d+j] = (x[i*d+j]-mu)/math.Sqrt(v+lnEps)*g[j] + b[j]
		}
	}
	return y
}

func refLinear(x []float64, n, in, out int, w, b []float64) []float64 {
	y := make([]float64, n*out)
	for i := range n {
		for j := range out {
			s := b[j]
			for k := range in {
				s += x[i*in+k] * w[k*out+j]
			}
			y[i*out+j] = s
		}
	}
	return y
}

func refGELU(x []float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
	}
	return y
}

func refAttention(qkv []float64, seqs, t, d, heads int) []float64 {
	dh := d / heads
	y := make([]float64, seqs*t*d)
	for s := range seqs {
		for h := range heads {
			for i := range t {
				q := func(r, c int) float64 { return qkv[(s*t+r)*3*d+h*dh+c] }
				k := func(r, c int) float64 { return qkv[(s*t+r)*3*d+d+h*dh+c] }
				v := func(r, c int) float64 { return qkv[(s*t+r)*3*d+2*d+h*dh+c] }
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					for c := range dh {
						sc[j] += q(i, c) * k(j, c)
					}
					sc[j] /= math.Sqrt(float64(dh))
					mx = math.Max(mx, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					z += sc[j]
				}
				for j := range sc {
					for c := range dh {
						y[(s*t+i)*d+h*dh+c] += sc[j] / z * v(j, c)
					}
				}
			}
		}
	}
	return y
}

// logits runs the float64 reference forward pass: n×V logits.
func (r refParams) logits(b Batch) []float64 {
	c := r.cfg
	n, d := b.Seqs*c.Context, c.D
	x := make([]float64, n*d)
	for i, id := range b.IDs {
		for j := range d {
			x[i*d+j] = r.p["tok_emb"][id*d+j] + r.p["pos_emb"][(i%c.Context)*d+j]
		}
	}
	for l := range c.Layers {
		p := func(name string) []float64 { return r.p["block"+string(rune('0'+l))+"."+name] }
		h := refLayerNorm(x, n, d, p("ln1_g"), p("ln1_b"))
		qkv := refLinear(h, n, d, 3*d, p("wqkv"), p("bqkv"))
		a := refLinear(refAttention(qkv, b.Seqs, c.Context, d, c.Heads), n, d, d, p("wo"), p("bo"))
		for i := range x {
			x[i] += a[i]
		}
		h = refLayerNorm(x, n, d, p("ln2_g"), p("ln2_b"))
		h = refLinear(refGELU(refLinear(h, n, d, 4*d, p("w1"), p("b1"))), n, 4*d, d, p("w2"), p("b2"))
		for i := range x {
			x[i] += h[i]
		}
	}
	x = refLayerNorm(x, n, d, r.p["lnf_g"], r.p["lnf_b"])
	return refLinear(x, n, d, c.Vocab, r.p["head"], r.p["head_b"])
}

// refLogSoftmax is the log-softmax of each row of z (n×v).
func refLogSoftmax(z []float64, v int) [][]float64 {
	var out [][]float64
	for i := 0; i < len(z); i += v {
		row := z[i : i+v]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, x)
		}
		var s float64
		for _, x := range row {
			s += math.Exp(x - mx)
		}
		l := mx + math.Log(s)
		lq := make([]float64, v)
		for k, x := range row {
			lq[k] = math.Min(x-l, 0)
		}
		out = append(out, lq)
	}
	return out
}

// detached holds what an objective's gradient does not flow through,
// evaluated at the unperturbed weights: finite differences of the loss must
// hold it fixed to agree with a gradient that detaches it.
type detached struct {
	stat  []float64 // FormDist: each row's gate statistic
	p     []float64 // asft: each row's DFT weight p; deft-cayley: p for the exponent
	meanP float64   // deft-cayley: the batch's mean p
}

// loss is the objective's mean loss over the batch from the float64
// forward pass; refModel is asft's reference (nil otherwise). With det nil
// the detached quantities are computed here (and returned), otherwise they
// are det's.
func (r refParams) loss(t *testing.T, b Batch, obj objectives.Objective, refModel *refParams, det *detached) (float64, *detached) {
	t.Helper()
	v := r.cfg.Vocab
	lq := refLogSoftmax(r.logits(b), v)
	lp := make([]float64, len(lq))
	for i := range lq {
		lp[i] = lq[i][b.Targets[i]]
	}
	if det == nil {
		det = &detached{}
		var n int
		for i := range lq {
			det.stat = append(det.stat, obj.DistStat(lq[i]))
			det.p = append(det.p, math.Exp(lp[i]))
			if b.Mask[i] {
				det.meanP += math.Exp(lp[i])
				n++
			}
		}
		det.meanP /= float64(n)
	}
	switch obj.Form() {
	case objectives.FormDist:
		st, err := obj.BatchDist(objectives.DistBatch{LogP: lp, Mask: b.Mask, Stat: det.stat}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st.Loss, det
	case objectives.FormAnchored:
		// −sg(p)·log p + α·KL(r ‖ q) over scored tokens (LLaMA-Factory's
		// _asft_cross_entropy, see objectives' torch test).
		lr := refLogSoftmax(refModel.logits(b), v)
		var s float64
		var n int
		for i := range lq {
			if b.Mask[i] {
				s += -det.p[i]*lp[i] + obj.Param()*objectives.KL(lr[i], lq[i])
				n++
			}
		}
		return s / float64(n), det
	case objectives.FormBatch:
		// Cayley_Trans with its exponent held at the unperturbed p and mean p
		// (main_verl/trainer/fsdp_sft_trainer.py, luludus/DEFT bbe7896).
		var s float64
		var n int
		for i := range lq {
			if b.Mask[i] {
				floor := 0.5 * det.meanP
				d := 1 - det.p[i] + 1e-8
				a := math.Min(math.Max(floor+(1-floor)*(1-d)/(1+d+1e-8), 0.001), 1)
				s += -math.Expm1(a*lp[i]) / (a + 1e-8)
				n++
			}
		}
		return s / (float64(n) + 1e-8), det
	}
	st, err := obj.Batch(lp, b.Mask, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Loss, det
}

// tinyModel has random weights large enough that every gradient matters.
func tinyModel(t *testing.T, seed uint64) (*Model, Batch) {
	return tinyModelOf(t, seed, ModelConfig{Vocab: 7, D: 8, Layers: 2, Heads: 2, Context: 5})
}

// tinyModelOf is tinyModel with another architecture: three sequences, the
// last one padded from position 3.
func tinyModelOf(t *testing.T, seed uint64, cfg ModelConfig) (*Model, Batch) {
	m, err := NewModel(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, np := range m.Params() {
		d := mat.Data[float32](np.Param)
		for i := range d {
			d[i] = float32(0.5 * rng.NormFloat64())
		}
	}
	b := Batch{Seqs: 3}
	for s := range 3 {
		for i := range cfg.Context {
			b.IDs = append(b.IDs, rng.IntN(cfg.Vocab))
			b.Targets = append(b.Targets, rng.IntN(cfg.Vocab))
			b.Mask = append(b.Mask, !(s == 2 && i >= 3)) // padding at the end of the last sequence
		}
	}
	return m, b
}

func TestModelGradients(t *testing.T) {
	for _, spec := range []string{"nll", "p", "GeneralFamily-0.5", "OnlyTopLogP-0.2", "focal-2", "blend-0.3",
		"eaft-axolotl-1-5", "eaft-axolotl-0.5-20", "deft", "deft-cayley", "asft-0.1", "asft-1"} {
		t.Run(spec, func(t *testing.T) {
			m, b := tinyModel(t, 3)
			checkGradients(t, m, b, spec)
		})
	}
	// LLaMA-Factory's EAFT reads the top 20 logits: a vocabulary of 23.
	t.Run("eaft-1", func(t *testing.T) {
		m, b := tinyModelOf(t, 4, ModelConfig{Vocab: 23, D: 8, Layers: 1, Heads: 2, Context: 5})
		checkGradients(t, m, b, "eaft-1")
	})
	// Head width 8 and width 16 run the vector kernels (the model above, with
	// heads of 4, runs their portable fallbacks), and a context of 9 pads the
	// attention rows to 16.
	t.Run("vector-kernels", func(t *testing.T) {
		m, b := tinyModelOf(t, 5, ModelConfig{Vocab: 11, D: 16, Layers: 1, Heads: 2, Context: 9})
		checkGradients(t, m, b, "nll")
	})
}

// checkGradients compares the model's gradients of the objective spec on b
// with central finite differences of the float64 reference.
func checkGradients(t *testing.T, m *Model, b Batch, spec string) {
	t.Helper()
	obj := objectives.MustParse(spec)
	// asft's reference: the same architecture with other random weights, so
	// that the anchor's gradient is not zero.
	var refM *Model
	var refRef *refParams
	if obj.Form() == objectives.FormAnchored {
		refM, _ = tinyModelOf(t, 99, m.Cfg)
		rr := toRef(refM)
		refRef = &rr
	}
	loss, st, err := m.LossWithReference(b, obj, refM)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Thresholded() && (st.Kept == 0 || st.Kept == st.Scored) {
		t.Fatalf("threshold keeps %d of %d tokens: the check would not exercise the mask", st.Kept, st.Scored)
	}
	if err := ag.Backward(loss); err != nil {
		t.Fatal(err)
	}
	ref := toRef(m)
	// The float32 forward agrees with the float64 reference to float32 accuracy.
	want, det := ref.loss(t, b, obj, refRef, nil)
	if math.Abs(float64(vals(loss)[0])-want) > 1e-5*math.Max(1, math.Abs(want)) {
		t.Fatalf("loss %v, float64 reference %v", vals(loss)[0], want)
	}
	var gmax float64
	grads := map[string][]float32{}
	for _, np := range m.Params() {
		if np.Param.Grad() == nil {
			t.Fatalf("%s has no gradient", np.Name)
		}
		g := mat.Data[float32](np.Param.Grad())
		grads[np.Name] = g
		for _, v := range g {
			gmax = math.Max(gmax, math.Abs(float64(v)))
		}
	}
	checked, worst := 0, 0.0
	for _, np := range m.Params() {
		w := ref.p[np.Name]
		for i := range w {
			old := w[i]
			w[i] = old + 1e-6
			up, _ := ref.loss(t, b, obj, refRef, det)
			w[i] = old - 1e-6
			down, _ := ref.loss(t, b, obj, refRef, det)
			w[i] = old
			fd := (up - down) / 2e-6
			got := float64(grads[np.Name][i])
			// float32 backward: relative error ~1e-6 per operation over a
			// few dozen operations: 1e-5 of the largest gradient (measured: ≤ 3e-7).
			err := math.Abs(got - fd)
			if err > 1e-5*gmax+1e-4*math.Abs(fd) {
				t.Errorf("%s[%d]: analytic %v, finite differences %v", np.Name, i, got, fd)
			}
			worst = math.Max(worst, err/gmax)
			checked++
		}
	}
	t.Logf("%s: %d gradients checked, worst |error|/max|g| = %.2g", spec, checked, worst)
}
