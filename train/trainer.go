package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/ag"

	"github.com/capsel/capsel/choose"
	"github.com/capsel/capsel/continuum"
	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/theory"
)

// Trainer runs one training run step by step.
type Trainer struct {
	cfg      Config
	obj      objectives.Objective
	model    *Model
	tok      *Tokenizer
	params   []NamedParam
	opt      *AdamW
	rows     []encoded
	data     DataStats
	dataHash string
	samp     *sampler
	step     int
	auto     AutoState
	ws       *workspace // the buffers of a step, reused by the next
	// examples are the training data, kept until auto or auto-theory has
	// measured the base model on them; index maps each row to its example.
	examples []Example
	// ref is the frozen reference model of an anchored objective (asft-α):
	// the weights the run started from, run forward only. nil otherwise.
	ref   *Model
	refWS *workspace
}

// AutoState is the adaptive objectives' state, saved in checkpoints.
type AutoState struct {
	// Measured is the measurement of the base model on the training data,
	// taken before the first step; nil until then (and for fixed
	// objectives).
	Measured *Measurement `json:"measured,omitempty"`
	// Current is auto-theory's choice in force.
	Current string `json:"current,omitempty"`
}

// Measurement is what auto and auto-theory measured of the base model on
// the training data (package labelnoise) and what auto decided from it
// (choose.Decide).
type Measurement struct {
	Capability labelnoise.Estimate  `json:"capability"`
	RawMeanP   float64              `json:"raw_mean_p"`
	Noise      *labelnoise.Estimate `json:"noise"`
	Known      *labelnoise.Estimate `json:"known"`
	TokenNoise *labelnoise.Estimate `json:"token_noise"`
	// Objective is auto's choice (nll or asft-0.1, choose.Decide), Leaning
	// its class, and Reasons why.
	Objective string   `json:"objective"`
	Leaning   bool     `json:"prior_leaning"`
	Reasons   []string `json:"reasons"`
	// Dropped lists the training examples (indices into the data) the run
	// trains without: the flagged ones, when auto trains NLL.
	Dropped []int `json:"dropped,omitempty"`
	// Flagged counts the examples the measurement flagged.
	Flagged int `json:"flagged"`
}

// StepInfo describes one finished step.
type StepInfo struct {
	Step      int     `json:"step"` // steps done, from 1
	Steps     int     `json:"steps"`
	Loss      float64 `json:"loss"`
	MeanP     float64 `json:"mean_p"` // this batch's mean p of scored targets (Eq. 5)
	LR        float64 `json:"lr"`
	GradNorm  float64 `json:"grad_norm"` // before clipping
	Objective string  `json:"objective"` // in force at this step
	Tokens    int     `json:"tokens"`    // scored targets
	Kept      int     `json:"kept"`      // targets the objective kept
	// Switched is true when auto-theory changed its choice at this step.
	Switched bool `json:"switched,omitempty"`
	// Gate is the mean detached gate of an objective that is not a function
	// of p alone (EAFT's factor, DEFT's exponent, ASFT's DFT weight p), and
	// KL asft's mean KL(reference ‖ model) over the scored targets.
	Gate float64 `json:"gate,omitempty"`
	KL   float64 `json:"kl,omitempty"`
}

// New starts a run. With init nil the model is trained from scratch: the
// tokenizer's alphabet is taken from data and cfg.Model gives the
// architecture (its Vocab is set from the tokenizer). Otherwise the weights,
// architecture and tokenizer come from init (fine-tuning) and the optimizer
// starts afresh.
//
// An objective that anchors to a reference model (asft-α) anchors to the
// model the run starts from: init's weights, or the seeded initialisation
// from scratch. That copy is frozen (forward only, no optimizer state) and
// saved in the run's checkpoints, so that a resumed run anchors to the same
// weights.
func New(cfg Config, init *Checkpoint, data []Example) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Trainer{cfg: cfg}
	if init == nil {
		texts := make([]string, 0, 2*len(data))
		for _, ex := range data {
			texts = append(texts, ex.Prompt, ex.Response)
		}
		t.tok = NewTokenizer(texts...)
		t.cfg.Model.Vocab = t.tok.Size()
		m, err := NewModel(t.cfg.Model, cfg.Seed)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		t.model = m
	} else {
		m, err := init.NewModel()
		if err != nil {
			return nil, err
		}
		t.model, t.tok = m, init.Tokenizer
		t.cfg.Model = init.Model
	}
	if err := t.setup(data); err != nil {
		return nil, err
	}
	if t.obj.Adaptive() {
		t.examples = data
	}
	if err := t.anchor(); err != nil {
		return nil, err
	}
	return t, nil
}

// trains is the objective the steps train: auto's measured choice once it
// is made, the configured objective otherwise.
func (t *Trainer) trains() objectives.Objective {
	if t.obj.Kind() == objectives.KindAuto && t.auto.Measured != nil {
		return objectives.MustParse(t.auto.Measured.Objective)
	}
	return t.obj
}

// anchor freezes a copy of the model as the reference of an anchored
// objective (asft-α), when the objective the steps train is one and no
// step has been taken: the model is then the one the run starts from.
func (t *Trainer) anchor() error {
	if t.ref != nil || t.trains().Form() != objectives.FormAnchored {
		return nil
	}
	if t.step != 0 {
		return fmt.Errorf("train: %v anchors to the model the run started from, and %d steps have changed it", t.trains(), t.step)
	}
	ref, err := t.model.frozenCopy()
	if err != nil {
		return err
	}
	t.ref, t.refWS = ref, &workspace{}
	return nil
}

func (t *Trainer) setup(data []Example) error {
	var err error
	t.obj, err = objectives.Parse(t.cfg.Objective)
	if err != nil {
		return err
	}
	if err := t.obj.CheckVocab(t.cfg.Model.Vocab); err != nil {
		return err
	}
	t.rows, t.data, err = encode(t.tok, data, t.cfg.Model.Context)
	if err != nil {
		return err
	}
	t.dataHash = hashData(data)
	t.params = t.model.Params()
	t.opt = &AdamW{LR: t.cfg.LR, Beta1: t.cfg.Beta1, Beta2: t.cfg.Beta2, Eps: t.cfg.Eps, WeightDecay: t.cfg.WeightDecay}
	t.samp = &sampler{n: len(t.rows), batch: t.cfg.Batch, seed: t.cfg.Seed}
	t.ws = &workspace{}
	return nil
}

// hashData identifies the training data, so that a run cannot resume on
// different data.
func hashData(data []Example) string {
	h := sha256.New()
	for _, ex := range data {
		fmt.Fprintf(h, "%d:%s%d:%s", len(ex.Prompt), ex.Prompt, len(ex.Response), ex.Response)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Config returns the run's configuration (with the model's vocabulary set).
func (t *Trainer) Config() Config { return t.cfg }

// Model returns the model being trained.
func (t *Trainer) Model() *Model { return t.model }

// Tokenizer returns the run's tokenizer.
func (t *Trainer) Tokenizer() *Tokenizer { return t.tok }

// Data reports what encoding the training data did.
func (t *Trainer) Data() DataStats { return t.data }

// StepsDone returns the number of finished steps.
func (t *Trainer) StepsDone() int { return t.step }

// Done reports whether the run has taken all its steps.
func (t *Trainer) Done() bool { return t.step >= t.cfg.Steps }

// Step takes one optimisation step.
func (t *Trainer) Step(ctx context.Context) (StepInfo, error) {
	if err := ctx.Err(); err != nil {
		return StepInfo{}, err
	}
	if t.Done() {
		return StepInfo{}, fmt.Errorf("train: all %d steps are done", t.cfg.Steps)
	}
	if t.obj.Adaptive() && t.auto.Measured == nil {
		if err := t.measure(ctx); err != nil {
			return StepInfo{}, err
		}
	}
	k := t.step
	b := makeBatch(t.rows, t.samp.indices(k))
	t.ws.reset() // the previous step's graph is gone
	logits, err := t.model.logits(b, t.ws)
	if err != nil {
		return StepInfo{}, err
	}
	op := &lossOp{logits: logits, targets: b.Targets, mask: b.Mask, n: len(b.Targets), v: t.model.Cfg.Vocab, ws: t.ws}
	op.logprobs()
	if t.ref != nil {
		if err := op.setReference(t.ref, b, t.refWS); err != nil {
			return StepInfo{}, err
		}
	}
	info := StepInfo{Step: k + 1, Steps: t.cfg.Steps, MeanP: op.meanP()}
	obj := t.obj
	switch t.obj.Kind() {
	case objectives.KindAuto:
		obj = t.trains()
	case objectives.KindAutoTheory:
		if obj, info.Switched, err = t.autoTheoryObjective(k, op); err != nil {
			return info, err
		}
	}
	if err := op.apply(obj); err != nil {
		return info, err
	}
	loss := run(op)
	if err := ag.Backward(loss); err != nil {
		return info, fmt.Errorf("train: backward: %w", err)
	}
	info.GradNorm = clipGradients(t.params, t.cfg.Clip)
	info.LR = Schedule(t.cfg.LR, k, t.cfg.Steps, t.cfg.WarmupRatio)
	t.opt.LR, t.opt.T = info.LR, k+1
	if err := optimize(t.opt, t.params); err != nil {
		return info, fmt.Errorf("train: optimizer: %w", err)
	}
	t.step++
	info.Loss, info.Tokens, info.Kept, info.Objective = op.stats.Loss, op.stats.Scored, op.stats.Kept, obj.String()
	info.Gate, info.KL = op.stats.MeanGate, op.stats.MeanKL
	if math.IsNaN(info.Loss) || math.IsInf(info.Loss, 0) {
		return info, fmt.Errorf("train: step %d: loss is %v; lower the learning rate", info.Step, info.Loss)
	}
	return info, nil
}

// Measurement returns what auto or auto-theory measured of the base model
// on the training data, nil before the first step and for fixed objectives.
func (t *Trainer) Measurement() *Measurement { return t.auto.Measured }

// measure measures the base model on the training data before the first
// step: the noise-aware analysis (labelnoise, with the model's own greedy
// answers and a null set of shuffled prompts) and auto's decision from it
// (choose.Decide). When auto trains NLL it drops the flagged examples.
func (t *Trainer) measure(ctx context.Context) error {
	data := make([]Example, len(t.rows))
	for i, r := range t.rows {
		data[i] = t.examples[r.example]
	}
	ex, null, err := LabelExamples(ctx, t.model, t.tok, data, t.cfg.Auto.Null, t.cfg.Seed)
	if err != nil {
		return fmt.Errorf("train: %v measures the base model first: %w", t.obj, err)
	}
	res, err := labelnoise.Analyze(ex, null, labelnoise.Greedy, labelnoise.Options{Seed: t.cfg.Seed})
	if err != nil {
		return fmt.Errorf("train: %v measures the base model first: %w", t.obj, err)
	}
	call := choose.Decide(res, continuum.DefaultCuts)
	m := &Measurement{Capability: res.Capability, RawMeanP: res.RawMeanP, Noise: res.Noise, Known: res.Known, TokenNoise: res.TokenNoise,
		Objective: call.Objective, Leaning: call.Leaning, Reasons: call.Reasons, Flagged: len(res.Flags)}
	if t.obj.Kind() == objectives.KindAuto && call.DropFlagged {
		for _, f := range res.Flags {
			m.Dropped = append(m.Dropped, t.rows[f.Index].example)
		}
	}
	t.auto.Measured = m
	t.examples = nil
	t.dropFlagged()
	return t.anchor()
}

// dropFlagged removes the measurement's dropped examples from the rows the
// sampler draws from.
func (t *Trainer) dropFlagged() {
	m := t.auto.Measured
	if m == nil || len(m.Dropped) == 0 {
		return
	}
	drop := make(map[int]bool, len(m.Dropped))
	for _, i := range m.Dropped {
		drop[i] = true
	}
	kept := t.rows[:0:0]
	for _, r := range t.rows {
		if !drop[r.example] {
			kept = append(kept, r)
		}
	}
	t.rows = kept
	t.samp = &sampler{n: len(t.rows), batch: t.cfg.Batch, seed: t.cfg.Seed}
}

// autoTheoryObjective re-ranks the candidates every Every steps on the
// current batch: each scored row gives a context with the model's full
// next-token distribution and the target as label, and the candidate with
// the best estimated rate (theory.Rank) is used until the next ranking. The
// noise model's rate is the one measured on the base model (Ê, or the token
// noise rate), and the configured Noise only where none was measurable.
func (t *Trainer) autoTheoryObjective(k int, op *lossOp) (objectives.Objective, bool, error) {
	if t.auto.Current != "" && k%t.cfg.Auto.Every != 0 {
		return objectives.MustParse(t.auto.Current), false, nil
	}
	ctxs := batchContexts(op, t.cfg.Auto.Contexts)
	a := t.cfg.Auto
	if m := t.auto.Measured; m != nil {
		if r := m.noiseRate(); r != nil {
			a.Noise = r.Value
		}
	}
	best, err := BestByTheory(a, ctxs)
	if err != nil {
		return objectives.Objective{}, false, err
	}
	switched := t.auto.Current != "" && t.auto.Current != best.String()
	t.auto.Current = best.String()
	return best, switched, nil
}

// noiseRate is the measured noise rate, Ê or else the token noise rate.
func (m *Measurement) noiseRate() *labelnoise.Estimate {
	if m.Noise != nil {
		return m.Noise
	}
	return m.TokenNoise
}

// BestByTheory returns the candidate with the largest estimated rate on the
// contexts, by the criterion a.Rate.
func BestByTheory(a AutoConfig, ctxs []theory.Context) (objectives.Objective, error) {
	objs := make([]objectives.Objective, len(a.Candidates))
	for i, s := range a.Candidates {
		objs[i] = objectives.MustParse(s)
	}
	est, err := theory.Rank(objs, ctxs, theory.NoiseModel{E: a.Noise})
	if err != nil {
		return objectives.Objective{}, fmt.Errorf("train: auto-theory: %w", err)
	}
	best := 0
	for i := range est {
		v, bv := est[i].Rate, est[best].Rate
		if a.Rate == "normalised" {
			v, bv = est[i].Normalised, est[best].Normalised
		}
		if v > bv {
			best = i
		}
	}
	return objectives.MustParse(est[best].Objective), nil
}

// batchContexts turns up to limit scored rows of a batch, evenly spaced, into
// theory contexts with the model's full distribution.
func batchContexts(op *lossOp, limit int) []theory.Context {
	var rows []int
	for i, m := range op.mask {
		if m {
			rows = append(rows, i)
		}
	}
	if len(rows) > limit {
		picked := make([]int, limit)
		for j := range picked {
			picked[j] = rows[j*len(rows)/limit]
		}
		rows = picked
	}
	z := vals(op.logits)
	v := op.v
	out := make([]theory.Context, 0, len(rows))
	for _, i := range rows {
		q := make([]float64, v)
		for c := range q {
			q[c] = math.Exp(float64(z[i*v+c] - op.lse[i]))
		}
		out = append(out, theory.Context{Q: normalise(q), Label: op.targets[i], Truth: theory.Unknown})
	}
	return out
}

// normalise rescales q to sum to 1 (float32 logits leave it off by ~1e-7).
func normalise(q []float64) []float64 {
	var s float64
	for _, x := range q {
		s += x
	}
	for i := range q {
		q[i] /= s
	}
	return q
}
