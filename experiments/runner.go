package experiments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/capsel/capsel/internal/atomicfile"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/train"
)

// Event reports progress: which stage and cell is running, and how far.
type Event struct {
	Stage string // "pretrain", "probe", "fine-tune", "theory"
	Cell  string // e.g. "coverage 0.6, noise 0.5, p, seed 3"
	Done  int
	Total int
}

// Runner trains and evaluates the models the experiments need, caching base
// checkpoints and fine-tuning results on disk so that one experiment reuses
// another's runs. It never prints; progress goes to Events.
type Runner struct {
	Setup Setup
	// Cache is a directory for checkpoints and results ("" turns caching
	// off). Entries live under a hash of the setup, so a changed setup
	// never reads stale results.
	Cache string
	// Parallel is the number of fine-tunes run at once (default 2: one
	// small run keeps about one core busy).
	Parallel int
	Events   func(Event)

	mu    sync.Mutex
	bases map[float64]*train.Checkpoint
}

// RunResult is one fine-tuning run, evaluated on the clean target facts.
type RunResult struct {
	Coverage  float64          `json:"coverage"`
	Noise     float64          `json:"noise"`
	Objective string           `json:"objective"`
	Seed      int              `json:"seed"`
	Eval      train.EvalResult `json:"eval"`
	FinalLoss float64          `json:"final_loss"`
	Seconds   float64          `json:"seconds"`
	// Objectives counts the steps spent under each concrete objective
	// (auto and auto-theory).
	Objectives map[string]int `json:"objectives,omitempty"`
}

func (r *Runner) emit(ev Event) {
	if r.Events != nil {
		r.Events(ev)
	}
}

// dir is the cache directory of this setup and this build: the key hashes
// the setup and the running executable, so that neither a changed setup nor
// changed code reads results computed by something else.
func (r *Runner) dir() string {
	if r.Cache == "" {
		return ""
	}
	b, _ := json.Marshal(r.Setup)
	h := sha256.New()
	h.Write(b)
	h.Write([]byte(buildID()))
	return filepath.Join(r.Cache, hex.EncodeToString(h.Sum(nil)[:6]))
}

var buildID = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
})

// Base returns the base model at a coverage, pretraining it unless cached.
func (r *Runner) Base(ctx context.Context, coverage float64) (*train.Checkpoint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ck, ok := r.bases[coverage]; ok {
		return ck, nil
	}
	path := ""
	if d := r.dir(); d != "" {
		path = filepath.Join(d, fmt.Sprintf("base-%.3f.ckpt", coverage))
		if b, err := os.ReadFile(path); err == nil {
			if ck, err := train.ReadCheckpoint(bytes.NewReader(b), path); err == nil {
				r.remember(coverage, ck)
				return ck, nil
			}
		}
	}
	cell := fmt.Sprintf("coverage %.2f", coverage)
	ck, err := r.Setup.Pretrain(ctx, coverage, func(info train.StepInfo) {
		r.emit(Event{Stage: "pretrain", Cell: cell, Done: info.Step, Total: info.Steps})
	})
	if err != nil {
		return nil, fmt.Errorf("pretrain %s: %w", cell, err)
	}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, func(w io.Writer) error { _, err := ck.WriteTo(w); return err }); err != nil {
			return nil, err
		}
	}
	r.remember(coverage, ck)
	return ck, nil
}

func (r *Runner) remember(c float64, ck *train.Checkpoint) {
	if r.bases == nil {
		r.bases = map[float64]*train.Checkpoint{}
	}
	r.bases[c] = ck
}

// Probe measures a model on data with the probe: the capability statistic
// with its CI, and every token as a full-distribution theory context.
func Probe(ctx context.Context, ck *train.Checkpoint, data []train.Example) (*probe.Report, error) {
	m, err := ck.NewModel()
	if err != nil {
		return nil, err
	}
	src, err := train.ProbeSource(ctx, m, ck.Tokenizer, data, 64)
	if err != nil {
		return nil, err
	}
	acc := probe.NewAccumulator(probe.Config{Reservoir: 1 << 20, Vocab: ck.Model.Vocab, Seed: 1})
	acc.AddSource("sft", "checkpoint")
	if err := acc.Consume(src); err != nil {
		return nil, err
	}
	return acc.Report()
}

// FineTune fine-tunes the base model at a coverage on the noisy SFT data of
// a seed and evaluates it on the clean target facts. The seed draws which
// labels are wrong and the data order.
func (r *Runner) FineTune(ctx context.Context, coverage, noise float64, objective string, seed int) (RunResult, error) {
	key := fmt.Sprintf("c%.3f-n%.3f-%s-s%d", coverage, noise, objective, seed)
	var path string
	if d := r.dir(); d != "" {
		path = filepath.Join(d, "runs", key+".json")
		if b, err := os.ReadFile(path); err == nil {
			var res RunResult
			if json.Unmarshal(b, &res) == nil {
				return res, nil
			}
		}
	}
	base, err := r.Base(ctx, coverage)
	if err != nil {
		return RunResult{}, err
	}
	start := time.Now()
	task := r.Setup.Task()
	cfg := r.Setup.SFT
	cfg.Objective, cfg.Seed = objective, uint64(seed)
	tr, err := train.New(cfg, base, task.SFT(noise, uint64(seed)))
	if err != nil {
		return RunResult{}, fmt.Errorf("%s: %w", key, err)
	}
	res := RunResult{Coverage: coverage, Noise: noise, Objective: objective, Seed: seed, Objectives: map[string]int{}}
	for !tr.Done() {
		info, err := tr.Step(ctx)
		if err != nil {
			return res, fmt.Errorf("%s: %w", key, err)
		}
		res.FinalLoss = info.Loss
		res.Objectives[info.Objective]++
	}
	if res.Eval, err = train.Evaluate(ctx, tr.Model(), tr.Tokenizer(), task.Eval(), train.EvalOptions{}); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	if path != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return res, err
		}
		if err := atomicfile.WriteBytes(path, b); err != nil {
			return res, err
		}
	}
	return res, nil
}

// job is one fine-tuning run to do.
type job struct {
	coverage, noise float64
	objective       string
	seed            int
}

// runAll runs the jobs, Parallel at a time, and returns their results in
// job order. The first error stops the rest.
func (r *Runner) runAll(ctx context.Context, jobs []job) ([]RunResult, error) {
	// Base models first, one at a time (pretraining parallelises inside).
	seen := map[float64]bool{}
	for _, j := range jobs {
		if !seen[j.coverage] {
			seen[j.coverage] = true
			if _, err := r.Base(ctx, j.coverage); err != nil {
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]RunResult, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	workers := r.Parallel
	if workers < 1 {
		workers = 2
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := jobs[i]
				res, err := r.FineTune(ctx, j.coverage, j.noise, j.objective, j.seed)
				out[i], errs[i] = res, err
				if err != nil {
					cancel()
				}
				mu.Lock()
				done++
				r.emit(Event{Stage: "fine-tune", Cell: fmt.Sprintf("coverage %.2f, noise %.2f, %s, seed %d", j.coverage, j.noise, j.objective, j.seed), Done: done, Total: len(jobs)})
				mu.Unlock()
			}
		}()
	}
	for i := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, ctx.Err()
}
