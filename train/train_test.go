package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/capsel/capsel/objectives"
)

// toyData maps 12 keys to values: a task a small model learns in a few
// hundred steps.
func toyData() []Example {
	var out []Example
	for i := range 12 {
		out = append(out, Example{Prompt: fmt.Sprintf("k%02d=", i), Response: fmt.Sprintf("v%d", (i*7)%12), Source: "toy", Line: i + 1})
	}
	return out
}

func toyConfig(obj string, steps int) Config {
	c := DefaultConfig()
	c.Model = ModelConfig{D: 32, Layers: 2, Heads: 2, Context: 12}
	c.Objective, c.Steps, c.Batch, c.LR = obj, steps, 8, 3e-3
	return c
}

func runSteps(t *testing.T, tr *Trainer, n int) []StepInfo {
	t.Helper()
	var infos []StepInfo
	for range n {
		info, err := tr.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	return infos
}

func weights(m *Model) [][]float32 {
	var out [][]float32
	for _, np := range m.Params() {
		out = append(out, append([]float32(nil), mat.Data[float32](np.Param)...))
	}
	return out
}

func sameBits(a, b [][]float32) bool {
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return len(a) == len(b)
}

func TestLearnsAndEvaluates(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	data := toyData()
	tr, err := New(toyConfig("nll", 300), nil, data)
	if err != nil {
		t.Fatal(err)
	}
	infos := runSteps(t, tr, 300)
	first, last := infos[0].Loss, infos[len(infos)-1].Loss
	// Before training every target has p ≈ 1/V (V = 3 specials + the alphabet),
	// so the loss starts near log V ≈ 2.9; the task is fully learnable.
	if first < 2 || last > 0.1 {
		t.Errorf("loss %v → %v; want from about log V to below 0.1", first, last)
	}
	res, err := Evaluate(context.Background(), tr.Model(), tr.Tokenizer(), data, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExactMatch < 0.99 || res.TokenAccuracy < 0.99 || res.MeanP < 0.9 || res.Examples != 12 {
		t.Errorf("eval after training: %+v", res)
	}
	// The tokens counted are the response characters plus one EOS per example.
	want := 0
	for _, ex := range data {
		want += len(ex.Response) + 1
	}
	if res.Tokens != want {
		t.Errorf("eval tokens %d, want %d", res.Tokens, want)
	}
}

// TestResumeIsBitExact saves a run mid-way, reads the checkpoint back,
// resumes, and compares the final weights with an uninterrupted run's.
func TestResumeIsBitExact(t *testing.T) {
	// The toy vocabulary has 16 tokens: eaft-axolotl takes min(k, V), and
	// eaft-1 (which needs 20) is refused (TestTrainerObjectivesBeyondP).
	for _, obj := range []string{"nll", "OnlyTopLogP-0.2", "auto", "auto-theory", "eaft-axolotl-1-20", "deft", "deft-cayley", "asft-0.1"} {
		t.Run(obj, func(t *testing.T) {
			cfg := toyConfig(obj, 12)
			cfg.Auto.Every = 3
			data := toyData()
			a, err := New(cfg, nil, data)
			if err != nil {
				t.Fatal(err)
			}
			full := runSteps(t, a, 12)

			b, _ := New(cfg, nil, data)
			runSteps(t, b, 5)
			var buf bytes.Buffer
			if _, err := b.Checkpoint().WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			ck, err := ReadCheckpoint(&buf, "mid")
			if err != nil {
				t.Fatal(err)
			}
			c, err := Resume(ck, data)
			if err != nil {
				t.Fatal(err)
			}
			rest := runSteps(t, c, 7)
			if !sameBits(weights(a.Model()), weights(c.Model())) {
				t.Fatal("resumed run's weights differ from the uninterrupted run's")
			}
			for i, info := range rest {
				if info != full[5+i] {
					t.Errorf("step %d: resumed %+v, uninterrupted %+v", info.Step, info, full[5+i])
				}
			}
		})
	}
}

// TestTrainerObjectivesBeyondP checks what the trainer does with the
// objectives that read the distribution or a reference: asft anchors to the
// weights the run starts from (an --init checkpoint's), keeps them frozen,
// saves them in its checkpoints and resumes bit for bit from them even
// though the model has moved; eaft-1 refuses a vocabulary under 20 tokens.
func TestTrainerObjectivesBeyondP(t *testing.T) {
	data := toyData()
	base, _ := New(toyConfig("nll", 30), nil, data)
	runSteps(t, base, 30)
	init := base.Checkpoint()
	baseW := weights(base.Model())

	if _, err := New(toyConfig("eaft-1", 5), init, data); err == nil || !strings.Contains(err.Error(), "eaft-axolotl-1-16") {
		t.Errorf("eaft-1 on 16 tokens: %v, want a refusal naming eaft-axolotl-1-16", err)
	}

	cfg := toyConfig("asft-0.5", 10)
	a, err := New(cfg, init, data)
	if err != nil {
		t.Fatal(err)
	}
	full := runSteps(t, a, 10)
	// Until the first update the model is its own reference: KL 0 exactly
	// (the warm-up makes step 1's learning rate 0, so step 2 too).
	if full[0].KL != 0 || full[1].KL != 0 || full[2].KL <= 0 {
		t.Errorf("KL at steps 1–3 = %v, %v, %v; want 0, 0 (model = reference), then > 0", full[0].KL, full[1].KL, full[2].KL)
	}
	if full[0].Gate != full[0].MeanP {
		t.Errorf("asft's gate (the DFT weight p) averages %v, want the batch's mean p %v", full[0].Gate, full[0].MeanP)
	}
	ck := a.Checkpoint()
	if len(ck.Ref) != len(ck.Tensors) {
		t.Fatalf("checkpoint holds %d reference tensors, want %d", len(ck.Ref), len(ck.Tensors))
	}
	for i, ts := range ck.Ref {
		if ts.M != nil || !sameBits([][]float32{ts.W}, [][]float32{baseW[i]}) {
			t.Fatalf("reference tensor %s is not the --init weights", ts.Name)
		}
	}
	if sameBits(weights(a.Model()), baseW) {
		t.Fatal("the model did not move")
	}
	// Kill after 4 steps, resume from the file: the same 10 steps.
	b, _ := New(cfg, init, data)
	runSteps(t, b, 4)
	var buf bytes.Buffer
	if _, err := b.Checkpoint().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if v := buf.Bytes()[8]; v != 2 {
		t.Errorf("checkpoint with reference weights: format version %d, want 2", v)
	}
	mid, err := ReadCheckpoint(bytes.NewReader(buf.Bytes()), "mid")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Resume(mid, data)
	if err != nil {
		t.Fatal(err)
	}
	rest := runSteps(t, c, 6)
	if !sameBits(weights(a.Model()), weights(c.Model())) {
		t.Fatal("resumed asft run differs from the uninterrupted one")
	}
	for i, info := range rest {
		if info != full[4+i] {
			t.Errorf("step %d: resumed %+v, uninterrupted %+v", info.Step, info, full[4+i])
		}
	}
	// A checkpoint that lost its reference cannot resume an asft run.
	mid.Ref = nil
	if _, err := Resume(mid, data); err == nil || !strings.Contains(err.Error(), "reference") {
		t.Errorf("resume without reference weights: %v", err)
	}
	// Without a reference, the model's Loss refuses asft.
	if _, _, err := c.Model().Loss(makeBatch(c.rows, []int{0, 1}), objectives.MustParse("asft-0.1")); err == nil {
		t.Error("Loss(asft) without a reference: want an error")
	}
	// Checkpoints of other objectives stay at format version 1.
	buf.Reset()
	base.Checkpoint().WriteTo(&buf)
	if v := buf.Bytes()[8]; v != 1 {
		t.Errorf("checkpoint without reference: format version %d, want 1", v)
	}
}

func TestThreadCountDoesNotChangeResults(t *testing.T) {
	for _, obj := range []string{"p", "eaft-axolotl-1-20", "asft-0.1"} {
		run := func(procs int) [][]float32 {
			old := runtime.GOMAXPROCS(procs)
			defer runtime.GOMAXPROCS(old)
			tr, err := New(toyConfig(obj, 6), nil, toyData())
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, tr, 6)
			return weights(tr.Model())
		}
		if !sameBits(run(1), run(4)) {
			t.Errorf("%s: weights after 6 steps differ between GOMAXPROCS=1 and 4", obj)
		}
	}
}

func TestResumeRefusesOtherData(t *testing.T) {
	tr, _ := New(toyConfig("nll", 4), nil, toyData())
	runSteps(t, tr, 2)
	other := toyData()[:10]
	if _, err := Resume(tr.Checkpoint(), other); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("resume on other data: %v", err)
	}
}

func TestCheckpointErrors(t *testing.T) {
	tr, _ := New(toyConfig("nll", 4), nil, toyData())
	runSteps(t, tr, 1)
	var buf bytes.Buffer
	tr.Checkpoint().WriteTo(&buf)
	good := buf.Bytes()
	if _, err := ReadCheckpoint(bytes.NewReader(good), "ok"); err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1
	for name, b := range map[string][]byte{
		"truncated":       good[:len(good)-100],
		"one bit flipped": flipped,
		"empty":           nil,
		"not a ckpt":      []byte("hello, this is not a checkpoint at all"),
	} {
		_, err := ReadCheckpoint(bytes.NewReader(b), "ck")
		if err == nil || !strings.Contains(err.Error(), "ck: not a usable capsel checkpoint") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// A weights-only checkpoint cannot be resumed.
	ck := tr.Checkpoint()
	ck.Run = nil
	if _, err := Resume(ck, toyData()); err == nil {
		t.Error("resume from weights only: want an error")
	}
}

func TestFineTuneFromCheckpoint(t *testing.T) {
	base, _ := New(toyConfig("nll", 3), nil, toyData())
	runSteps(t, base, 3)
	ck := base.Checkpoint()
	// Fine-tuning data with a character the base model never saw is an error
	// that names the file, the line and the character.
	bad := []Example{{Prompt: "k01=", Response: "vé", Source: "sft.jsonl", Line: 7}}
	if _, err := New(toyConfig("p", 3), ck, bad); err == nil || !strings.Contains(err.Error(), "sft.jsonl:7") || !strings.Contains(err.Error(), "'é'") {
		t.Errorf("unknown character: %v", err)
	}
	ft, err := New(toyConfig("p", 3), ck, toyData()[:4])
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(weights(ft.Model()), weights(base.Model())) {
		t.Error("fine-tuning does not start from the checkpoint's weights")
	}
	if ft.Model().Params()[0].Param.State != nil {
		t.Error("fine-tuning must start with a fresh optimizer")
	}
}

func TestReadExamples(t *testing.T) {
	sft := `{"prompt":"a","response":"b","id":3}

{"text":"plain"}
`
	ex, err := ReadExamples(strings.NewReader(sft), "d.jsonl")
	if err != nil || len(ex) != 2 || ex[0].Prompt != "a" || ex[1].Response != "plain" || ex[1].Line != 3 {
		t.Fatalf("%+v %v", ex, err)
	}
	txt, err := ReadExamples(strings.NewReader("line one\n\nline two\r\n"), "t.txt")
	if err != nil || len(txt) != 2 || txt[1].Response != "line two" || txt[1].Line != 3 {
		t.Fatalf("%+v %v", txt, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"prompt":"a","response":""}`, "d:1: empty response"},
		{"{\"prompt\":\"a\",\"response\":\"b\"}\n{\"prompt\":1}", "d:2: bad JSON"},
		{`{"prompt":"a"}`, `d:1: need "prompt" and "response"`},
		{"", "d: no examples"},
		{"\xff\xfe", "d:1: not valid UTF-8"},
	} {
		if _, err := ReadExamples(strings.NewReader(c.in), "d"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.in, err, c.want)
		}
	}
}

func TestEncodeTruncates(t *testing.T) {
	tok := NewTokenizer("abcdef")
	rows, st, err := encode(tok, []Example{
		{Prompt: "ab", Response: "cdef"},  // BOS a b c d e f EOS: 7 positions > 5
		{Prompt: "abcdef", Response: "a"}, // the response starts after position 5
		{Prompt: "", Response: "abc"},     // fits
	}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if st.Truncated != 2 || st.Dropped != 1 || len(rows) != 2 {
		t.Fatalf("stats %+v, rows %d", st, len(rows))
	}
	// Row 0: inputs BOS a b c d, targets a b c d e; scored from the first response target (c).
	r := rows[0]
	if fmt.Sprint(r.mask) != "[false false true true true]" || r.targets[4] != tok.index['e'] {
		t.Errorf("row 0: %+v", r)
	}
	// Row 2: BOS a b c → a b c EOS, all scored, then padding.
	r = rows[1]
	if fmt.Sprint(r.mask) != "[true true true true false]" || r.targets[3] != EOSID || r.ids[4] != PadID {
		t.Errorf("row 1: %+v", r)
	}
}

func TestAdamWStep(t *testing.T) {
	// One step from zero moments: m = (1−β₁)g, v = (1−β₂)g², so the
	// bias-corrected step is lr·g/(|g| + ε) and w ← w(1 − lr·λ) − lr·g/(|g| + ε).
	p := nn.NewParam(mat.NewDense[float32](mat.WithShape(1, 3), mat.WithBacking([]float32{1, -2, 0.5})))
	p.AccGrad(mat.NewDense[float32](mat.WithShape(1, 3), mat.WithBacking([]float32{0.1, -0.3, 0})))
	a := &AdamW{LR: 0.01, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, T: 1}
	if err := a.OptimizeParams(p); err != nil {
		t.Fatal(err)
	}
	want := []float64{1*(1-0.001) - 0.01*0.1/(0.1+1e-8), -2*(1-0.001) + 0.01*0.3/(0.3+1e-8), 0.5 * (1 - 0.001)}
	for i, w := range mat.Data[float32](p) {
		if math.Abs(float64(w)-want[i]) > 1e-6 {
			t.Errorf("w[%d] = %v, want %v", i, w, want[i])
		}
	}
	// Cleared: all zeros (the buffer is kept for the next step).
	for _, g := range mat.Data[float32](p.Grad()) {
		if g != 0 {
			t.Error("gradient not cleared")
		}
	}
}

func TestSchedule(t *testing.T) {
	// 100 steps, warm-up ratio 0.1: linear from 0 over 10 steps, then cosine to 0.
	for _, c := range []struct {
		s    int
		want float64
	}{{0, 0}, {5, 0.5}, {10, 1}, {55, 0.5}, {100, 0}} {
		if got := Schedule(1, c.s, 100, 0.1); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Schedule(%d) = %v, want %v", c.s, got, c.want)
		}
	}
}

// auto measures the base model on its training data before the first step.
// A base model that memorised 40 facts, fine-tuned on them with 8 labels
// replaced by random values: auto flags the replaced ones, measures the noise
// among the facts it knows, and picks the anchored asft-0.1 (choose.Decide),
// keeping every example, with the base model as its frozen reference.
func TestAutoMeasuresTheBaseModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	var pre, sft []Example
	wrong := map[int]bool{}
	for i := range 40 {
		k, v := word(4), word(6)
		pre = append(pre, Example{Response: k + "=" + v, Source: "pre", Line: i + 1})
		if i%5 == 0 {
			v, wrong[i] = word(6), true
		}
		sft = append(sft, Example{Prompt: k + "=", Response: v, Source: "sft", Line: i + 1})
	}
	cfg := DefaultConfig()
	cfg.Model = ModelConfig{D: 48, Layers: 2, Heads: 4, Context: 12}
	cfg.Steps, cfg.Batch, cfg.LR = 500, 16, 3e-3
	base, err := New(cfg, nil, pre)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for !base.Done() {
		if _, err := base.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ft := DefaultConfig()
	ft.Objective, ft.Steps, ft.Batch = "auto", 2, 8
	tr, err := New(ft, base.Checkpoint(), sft)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Measurement() != nil {
		t.Fatal("measured before the first step")
	}
	info, err := tr.Step(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := tr.Measurement()
	if m == nil {
		t.Fatal("no measurement after the first step")
	}
	t.Logf("Ĉ %.3f (raw %.3f), noise %+v, known %+v, flagged %d → %s", m.Capability.Value, m.RawMeanP, m.Noise, m.Known, m.Flagged, m.Objective)
	if m.Flagged != len(wrong) || m.Noise == nil || math.Abs(m.Noise.Value-0.2) > 0.05 {
		t.Errorf("flagged %d, noise %+v; want the %d replaced labels, noise ≈ 0.2", m.Flagged, m.Noise, len(wrong))
	}
	if m.Objective != "asft-0.1" || info.Objective != m.Objective || len(m.Dropped) != 0 {
		t.Errorf("objective %s (step ran %s), dropped %v; want asft-0.1 with every example kept", m.Objective, info.Objective, m.Dropped)
	}
	if !(m.Capability.Value > m.RawMeanP+0.1) {
		t.Errorf("Ĉ %.3f does not rise above the raw mean p %.3f", m.Capability.Value, m.RawMeanP)
	}
	// ASFT anchors to the base model: the reference is frozen before the
	// first update, and a run resumed after it anchors to the same weights.
	if tr.ref == nil || !sameBits(weights(tr.ref), weights(base.Model())) {
		t.Fatal("auto's asft-0.1 has no reference, or not the base model's weights")
	}
	var buf bytes.Buffer
	if _, err := tr.Checkpoint().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(&buf, "mid")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Resume(ck, sft)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tr.Step(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rs.Step(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || !sameBits(weights(tr.Model()), weights(rs.Model())) || !sameBits(weights(rs.ref), weights(base.Model())) {
		t.Errorf("step 2 after a resume: %+v, uninterrupted %+v", b, a)
	}
}

// The examples a measurement drops never reach a batch, also after a resume.
func TestAutoDropsFlagged(t *testing.T) {
	data := []Example{{Prompt: "a=", Response: "bc"}, {Prompt: "b=", Response: "cd"}, {Prompt: "c=", Response: "de"}, {Prompt: "d=", Response: "ef"}}
	cfg := DefaultConfig()
	cfg.Model = ModelConfig{D: 16, Layers: 1, Heads: 2, Context: 8}
	cfg.Objective, cfg.Steps, cfg.Batch = "auto", 4, 3
	tr, err := New(cfg, nil, data)
	if err != nil {
		t.Fatal(err)
	}
	tr.auto.Measured = &Measurement{Objective: "nll", Dropped: []int{1, 3}}
	tr.examples = nil
	tr.dropFlagged()
	seen := map[int]bool{}
	for k := range 4 {
		for _, i := range tr.samp.indices(k) {
			seen[tr.rows[i].example] = true
		}
	}
	if len(seen) != 2 || !seen[0] || !seen[2] {
		t.Errorf("batches drew examples %v; want only 0 and 2", seen)
	}
	if _, err := tr.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	re, err := Resume(tr.Checkpoint(), data)
	if err != nil {
		t.Fatal(err)
	}
	if len(re.rows) != 2 || re.Measurement() == nil {
		t.Errorf("resumed with %d rows, measurement %v; want 2 and the saved one", len(re.rows), re.Measurement())
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Objective, c.Steps, c.Auto.Rate = "GeneralFamly-10", 0, "fast"
	err := c.Validate()
	for _, want := range []string{"did you mean GeneralFamily-10", "steps 0", `auto rate "fast"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to mention %q", err, want)
		}
	}
	if !errors.Is(DefaultConfig().Validate(), nil) {
		t.Error("defaults must validate")
	}
	// auto-theory ranks by the paper's rate, which covers functions of p only.
	c = DefaultConfig()
	c.Auto.Candidates = []string{"nll", "eaft-1"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "eaft-1 is not a function of p alone") {
		t.Errorf("eaft-1 as an auto-theory candidate: %v", err)
	}
}

// TestGenerateFillsTheContext checks that generation uses the last position:
// a prompt of T tokens still gets one new token (the one an example that
// exactly fills the context ends with), and never more.
func TestGenerateFillsTheContext(t *testing.T) {
	m, _ := NewModel(ModelConfig{Vocab: 9, D: 8, Layers: 1, Heads: 2, Context: 6}, 1)
	full := []int{BOSID, 3, 4, 5, 6, 7} // 6 = T tokens
	short := []int{BOSID, 3, 4, 5}      // room for 2 more, plus the one from the last position
	gens, err := Generate(context.Background(), m, [][]int{full, short}, 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens[0]) != 1 {
		t.Errorf("prompt of T tokens: %d new tokens, want 1", len(gens[0]))
	}
	if n := len(gens[1]); n < 1 || n > 3 || (n < 3 && gens[1][n-1] != EOSID) {
		t.Errorf("prompt of T − 2 tokens: generated %v, want up to 3 tokens, ending early only at EOS", gens[1])
	}
}

// TestFirstOrderRate checks Gradient and Step against each other: the exact
// first-order rate ⟨∇R, ∇L_f⟩ (R = 1 − mean p of the clean targets, whose
// gradient is that of the objective "p") must match the measured change in R
// after a small step along −∇L_f, by central differences.
func TestFirstOrderRate(t *testing.T) {
	ctx := context.Background()
	tr, _ := New(toyConfig("nll", 40), nil, toyData())
	runSteps(t, tr, 40)
	ck := tr.Checkpoint()
	clean := toyData()
	noisy := toyData()
	noisy[0].Response, noisy[3].Response = "v11", "v2" // two wrong labels
	for _, spec := range []string{"nll", "p", "OnlyTopLogP-0.2"} {
		m, _ := ck.NewModel()
		gL, err := Gradient(ctx, m, tr.Tokenizer(), noisy, objectives.MustParse(spec))
		if err != nil {
			t.Fatal(err)
		}
		gR, _ := Gradient(ctx, m, tr.Tokenizer(), clean, objectives.P())
		exact := Dot(gR, gL)
		risk := func(eta float64) float64 {
			mm, _ := ck.NewModel()
			Step(mm, gL, eta)
			res, _ := Evaluate(ctx, mm, tr.Tokenizer(), clean, EvalOptions{NoGenerate: true})
			return 1 - res.MeanP
		}
		const eta = 1e-2
		measured := (risk(-eta) - risk(eta)) / (2 * eta)
		// float32 weights: the measured rate carries ~1e-7/η rounding noise and
		// O(η²) curvature; 3% of the rate is well above both here.
		if math.Abs(measured-exact) > 0.03*math.Abs(exact)+1e-4 {
			t.Errorf("%s: ⟨∇R, ∇L⟩ = %v, measured %v", spec, exact, measured)
		}
	}
}

// TestDataStatsJSON: run.json and checkpoints write snake_case keys, and
// checkpoints written before the keys had tags ("Examples", …) still read,
// since encoding/json matches keys without regard to case.
func TestDataStatsJSON(t *testing.T) {
	b, err := json.Marshal(DataStats{Examples: 3, Truncated: 1, Dropped: 2, Tokens: 40})
	if err != nil || string(b) != `{"examples":3,"truncated":1,"dropped":2,"tokens":40}` {
		t.Errorf("DataStats JSON %s, %v", b, err)
	}
	var old RunState
	if err := json.Unmarshal([]byte(`{"step":5,"data":{"Examples":3,"Truncated":1,"Dropped":2,"Tokens":40}}`), &old); err != nil ||
		old.Data != (DataStats{Examples: 3, Truncated: 1, Dropped: 2, Tokens: 40}) {
		t.Errorf("old keys read as %+v, %v", old.Data, err)
	}
}
