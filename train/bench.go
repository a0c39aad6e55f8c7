package train

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nlpodyssey/spago/ag"

	"github.com/capsel/capsel/objectives"
)

// BenchConfig sets up a throughput measurement on synthetic data.
type BenchConfig struct {
	Model  ModelConfig
	Batch  int    // sequences per step
	Steps  int    // timed steps
	Warmup int    // untimed steps first
	Seed   uint64 // data and initialisation
}

// BenchResult is the measured training throughput.
type BenchResult struct {
	Params       int     `json:"params"`
	TokensPerSec float64 `json:"tokens_per_sec"` // Batch·Context / median step time
	StepMillis   float64 `json:"step_ms"`        // median over the timed steps
	GFLOPS       float64 `json:"gflops"`         // model FLOPs per second at TokensPerSec, see FLOPsPerToken
	// TokensPerSecWall is all timed tokens over the timed steps' total
	// time: unlike the median it counts slow steps (garbage collection,
	// a busy machine).
	TokensPerSecWall float64 `json:"tokens_per_sec_wall"`
	FinalLoss        float64 `json:"final_loss"`
	Steps            int     `json:"steps"`
}

// FLOPsPerToken is the training cost of one token: six times the forward
// multiply-adds, L·(12d² + 2·T·d) + d·V (the attention term counts the full
// T×T score matrix; the causal half is not subtracted).
func (c ModelConfig) FLOPsPerToken() float64 {
	d, t := float64(c.D), float64(c.Context)
	return 6 * (float64(c.Layers)*(12*d*d+2*t*d) + d*float64(c.Vocab))
}

// Bench trains on synthetic sequences — each a random block of 8 tokens
// repeated to fill the context, so that the loss can fall — with NLL and the
// default AdamW settings, exactly as a training step does, and times the
// steps after the warm-up. The same recipe drives bench/torch_train.py.
func Bench(ctx context.Context, cfg BenchConfig, progress func(done int)) (BenchResult, error) {
	r, err := newBenchLoop(cfg)
	if err != nil {
		return BenchResult{}, err
	}
	t := cfg.Model.Context
	var times []time.Duration
	var res BenchResult
	res.Params, res.Steps = cfg.Model.NumParams(), cfg.Steps
	for s := range cfg.Warmup + cfg.Steps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		b := r.batch()
		start := time.Now()
		loss, err := r.step(b)
		if err != nil {
			return res, err
		}
		if s >= cfg.Warmup {
			times = append(times, time.Since(start))
		}
		res.FinalLoss = loss
		if progress != nil {
			progress(s + 1)
		}
	}
	if len(times) > 0 {
		var total time.Duration
		for _, d := range times {
			total += d
		}
		res.TokensPerSecWall = float64(cfg.Batch*t*len(times)) / total.Seconds()
		slices.Sort(times)
		med := times[len(times)/2]
		res.StepMillis = float64(med) / 1e6
		res.TokensPerSec = float64(cfg.Batch*t) / med.Seconds()
		res.GFLOPS = res.TokensPerSec * cfg.Model.FLOPsPerToken() / 1e9
	}
	return res, nil
}

// benchLoop is Bench's training loop, one step at a time.
type benchLoop struct {
	cfg    BenchConfig
	m      *Model
	opt    *AdamW
	clip   float64
	params []NamedParam
	rng    *rand.Rand
	ws     *workspace
	steps  int
}

func newBenchLoop(cfg BenchConfig) (*benchLoop, error) {
	m, err := NewModel(cfg.Model, cfg.Seed)
	if err != nil {
		return nil, err
	}
	d := DefaultConfig()
	return &benchLoop{
		cfg: cfg, m: m, clip: d.Clip, params: m.Params(), ws: &workspace{},
		opt: &AdamW{Beta1: d.Beta1, Beta2: d.Beta2, Eps: d.Eps, WeightDecay: d.WeightDecay},
		rng: rand.New(rand.NewPCG(cfg.Seed, 0xbe7c)),
	}, nil
}

// batch draws the next synthetic batch.
func (r *benchLoop) batch() Batch {
	t := r.cfg.Model.Context
	b := Batch{Seqs: r.cfg.Batch}
	for range r.cfg.Batch {
		var block [8]int
		for i := range block {
			block[i] = r.rng.IntN(r.cfg.Model.Vocab)
		}
		for i := range t {
			b.IDs = append(b.IDs, block[i%8])
			b.Targets = append(b.Targets, block[(i+1)%8])
			b.Mask = append(b.Mask, true)
		}
	}
	return b
}

// step takes one training step on b at learning rate 10⁻³ and returns the
// loss.
func (r *benchLoop) step(b Batch) (float64, error) {
	r.ws.reset()
	loss, st, err := r.m.loss(b, objectives.NLL(), r.ws)
	if err != nil {
		return 0, err
	}
	if err := ag.Backward(loss); err != nil {
		return 0, err
	}
	clipGradients(r.params, r.clip)
	r.steps++
	r.opt.LR, r.opt.T = 1e-3, r.steps
	if err := optimize(r.opt, r.params); err != nil {
		return 0, err
	}
	return st.Loss, nil
}
