package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/capsel/capsel/objectives"
)

// ModelConfig fixes the architecture of a decoder-only pre-LN transformer.
type ModelConfig struct {
	Vocab   int `json:"vocab"`   // tokens, including the special ones
	D       int `json:"d"`       // width
	Layers  int `json:"layers"`  // transformer blocks
	Heads   int `json:"heads"`   // attention heads; D must be a multiple
	Context int `json:"context"` // positions T
}

// Validate checks the architecture.
func (c ModelConfig) Validate() error {
	switch {
	case c.Vocab < 2:
		return fmt.Errorf("vocab %d: need at least 2 tokens", c.Vocab)
	case c.D < 1 || c.Layers < 1 || c.Heads < 1 || c.Context < 2:
		return fmt.Errorf("d %d, layers %d, heads %d, context %d: all must be ≥ 1 (context ≥ 2)", c.D, c.Layers, c.Heads, c.Context)
	case c.D%c.Heads != 0:
		return fmt.Errorf("d %d is not a multiple of heads %d", c.D, c.Heads)
	}
	return nil
}

// NumParams returns the parameter count:
//
//	V·d + T·d + L·(12d² + 13d) + 2d + d·V + V
//
// (token and position embeddings; per block two layer norms (4d), the fused
// QKV projection (3d² + 3d), the output projection (d² + d) and the MLP
// (8d² + 5d); the final layer norm; the untied head with its bias).
func (c ModelConfig) NumParams() int {
	v, d, t, l := c.Vocab, c.D, c.Context, c.Layers
	return v*d + t*d + l*(12*d*d+13*d) + 2*d + d*v + v
}

// Block is one pre-LN transformer block:
// x ← x + Wo·Attn(LN₁(x)); x ← x + W₂·GELU(W₁·LN₂(x)).
type Block struct {
	Ln1G, Ln1B *nn.Param // 1×d
	Wqkv, Bqkv *nn.Param // d×3d, 1×3d
	Wo, Bo     *nn.Param // d×d, 1×d
	Ln2G, Ln2B *nn.Param // 1×d
	W1, B1     *nn.Param // d×4d, 1×4d
	W2, B2     *nn.Param // 4d×d, 1×d
}

// Model is the language model. Its parameters are spago *nn.Param values
// (a matrix with its gradient and a slot for the optimizer's state); Params
// lists them, and this package's AdamW updates them.
type Model struct {
	Cfg    ModelConfig
	TokEmb *nn.Param // V×d
	PosEmb *nn.Param // T×d
	Blocks []*Block
	LnfG   *nn.Param // 1×d
	LnfB   *nn.Param // 1×d
	Head   *nn.Param // d×V
	HeadB  *nn.Param // 1×V
}

// NamedParam is a parameter with a stable name, for checkpoints.
type NamedParam struct {
	Name  string
	Param *nn.Param
}

func zeros(r, c int) *nn.Param { return nn.NewParam(newMat(r, c)) }

func filled(r, c int, v float32) *nn.Param {
	p := zeros(r, c)
	d := mat.Data[float32](p)
	for i := range d {
		d[i] = v
	}
	return p
}

func normal(rng *rand.Rand, r, c int, std float64) *nn.Param {
	p := zeros(r, c)
	d := mat.Data[float32](p)
	for i := range d {
		d[i] = float32(std * rng.NormFloat64())
	}
	return p
}

// NewModel builds a model with GPT-2's initialisation, seeded: weights
// N(0, 0.02²), the two residual projections (Wo, W₂) scaled by 1/√(2L),
// biases 0, layer-norm gains 1.
func NewModel(cfg ModelConfig, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x1417))
	d, v := cfg.D, cfg.Vocab
	const std = 0.02
	resid := std / math.Sqrt(2*float64(cfg.Layers))
	m := &Model{
		Cfg:    cfg,
		TokEmb: normal(rng, v, d, std),
		PosEmb: normal(rng, cfg.Context, d, std),
	}
	for range cfg.Layers {
		m.Blocks = append(m.Blocks, &Block{
			Ln1G: filled(1, d, 1), Ln1B: zeros(1, d),
			Wqkv: normal(rng, d, 3*d, std), Bqkv: zeros(1, 3*d),
			Wo: normal(rng, d, d, resid), Bo: zeros(1, d),
			Ln2G: filled(1, d, 1), Ln2B: zeros(1, d),
			W1: normal(rng, d, 4*d, std), B1: zeros(1, 4*d),
			W2: normal(rng, 4*d, d, resid), B2: zeros(1, d),
		})
	}
	m.LnfG, m.LnfB = filled(1, d, 1), zeros(1, d)
	m.Head, m.HeadB = normal(rng, d, v, std), zeros(1, v)
	return m, nil
}

// Params lists the parameters in a fixed order with stable names.
func (m *Model) Params() []NamedParam {
	ps := []NamedParam{{"tok_emb", m.TokEmb}, {"pos_emb", m.PosEmb}}
	for i, b := range m.Blocks {
		p := func(n string, x *nn.Param) NamedParam { return NamedParam{fmt.Sprintf("block%d.%s", i, n), x} }
		ps = append(ps, p("ln1_g", b.Ln1G), p("ln1_b", b.Ln1B), p("wqkv", b.Wqkv), p("bqkv", b.Bqkv),
			p("wo", b.Wo), p("bo", b.Bo), p("ln2_g", b.Ln2G), p("ln2_b", b.Ln2B),
			p("w1", b.W1), p("b1", b.B1), p("w2", b.W2), p("b2", b.B2))
	}
	return append(ps, NamedParam{"lnf_g", m.LnfG}, NamedParam{"lnf_b", m.LnfB}, NamedParam{"head", m.Head}, NamedParam{"head_b", m.HeadB})
}

// Batch is a batch of equal-length sequences, flattened: position i of
// sequence s is row s·T + i.
type Batch struct {
	Seqs    int
	IDs     []int  // inputs, Seqs·T
	Targets []int  // next tokens, Seqs·T
	Mask    []bool // which targets count (response tokens; false for padding)
}

// Tokens returns the number of scored targets.
func (b Batch) Tokens() int {
	n := 0
	for _, m := range b.Mask {
		if m {
			n++
		}
	}
	return n
}

var errBatch = errors.New("train: malformed batch")

func (m *Model) checkBatch(b Batch) error {
	n := b.Seqs * m.Cfg.Context
	if b.Seqs < 1 || len(b.IDs) != n || len(b.Targets) != n || len(b.Mask) != n {
		return fmt.Errorf("%w: %d sequences of %d positions, %d ids, %d targets, %d mask", errBatch, b.Seqs, m.Cfg.Context, len(b.IDs), len(b.Targets), len(b.Mask))
	}
	for i := range n {
		if b.IDs[i] < 0 || b.IDs[i] >= m.Cfg.Vocab || b.Targets[i] < 0 || b.Targets[i] >= m.Cfg.Vocab {
			return fmt.Errorf("%w: token id out of range [0, %d) at row %d", errBatch, m.Cfg.Vocab, i)
		}
	}
	return nil
}

// Logits runs the model on a batch and returns the n×V logits node.
func (m *Model) Logits(b Batch) (mat.Tensor, error) { return m.logits(b, nil) }

// logits runs the model with its buffers from ws (fresh memory when nil).
func (m *Model) logits(b Batch, ws *workspace) (mat.Tensor, error) {
	if err := m.checkBatch(b); err != nil {
		return nil, err
	}
	c := m.Cfg
	n, d := b.Seqs*c.Context, c.D
	var x mat.Tensor = run(&embedOp{tok: m.TokEmb, pos: m.PosEmb, ids: b.IDs, t: c.Context, d: d, ws: ws})
	for _, bl := range m.Blocks {
		h := run(&layerNormOp{x: x, g: bl.Ln1G, b: bl.Ln1B, n: n, d: d, ws: ws})
		qkv := run(&linearOp{x: h, w: bl.Wqkv, b: bl.Bqkv, n: n, in: d, out: 3 * d, ws: ws})
		a := run(&attentionOp{qkv: qkv, seqs: b.Seqs, t: c.Context, d: d, heads: c.Heads, ws: ws})
		x = run(&linearOp{x: a, w: bl.Wo, b: bl.Bo, res: x, n: n, in: d, out: d, ws: ws}) // x + Wo·a
		h = run(&layerNormOp{x: x, g: bl.Ln2G, b: bl.Ln2B, n: n, d: d, ws: ws})
		h = run(&linearOp{x: h, w: bl.W1, b: bl.B1, gelu: true, n: n, in: d, out: 4 * d, ws: ws})
		x = run(&linearOp{x: h, w: bl.W2, b: bl.B2, res: x, n: n, in: 4 * d, out: d, ws: ws}) // x + W₂·h
	}
	x = run(&layerNormOp{x: x, g: m.LnfG, b: m.LnfB, n: n, d: d, ws: ws})
	return run(&linearOp{x: x, w: m.Head, b: m.HeadB, n: n, in: d, out: c.Vocab, ws: ws}), nil
}

// Loss runs the model and the objective on a batch. It returns the scalar
// loss node (call ag.Backward on it) and the batch statistics, whose MeanP
// is the paper's Eq. 5 on this batch. An objective that anchors to a
// reference model (asft-α) needs LossWithReference.
func (m *Model) Loss(b Batch, obj objectives.Objective) (mat.Tensor, objectives.BatchStats, error) {
	return m.loss(b, obj, nil)
}

// loss is Loss with the step's buffers from ws.
func (m *Model) loss(b Batch, obj objectives.Objective, ws *workspace) (mat.Tensor, objectives.BatchStats, error) {
	return m.lossRef(b, obj, nil, ws, nil)
}

// lossRef is loss with the reference model ref (nil for none), run with
// the buffers of refWS.
func (m *Model) lossRef(b Batch, obj objectives.Objective, ref *Model, ws, refWS *workspace) (mat.Tensor, objectives.BatchStats, error) {
	logits, err := m.logits(b, ws)
	if err != nil {
		return nil, objectives.BatchStats{}, err
	}
	op := &lossOp{logits: logits, targets: b.Targets, mask: b.Mask, n: len(b.Targets), v: m.Cfg.Vocab, ws: ws}
	op.logprobs()
	if ref != nil && obj.Form() == objectives.FormAnchored {
		if err := op.setReference(ref, b, refWS); err != nil {
			return nil, objectives.BatchStats{}, err
		}
	}
	if err := op.apply(obj); err != nil {
		return nil, objectives.BatchStats{}, err
	}
	return run(op), op.stats, nil
}
