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
	"github.com/capsel/capsel/probe/ckprobe"
	"github.com/capsel/capsel/train"
)

// Event reports progress: which stage and cell is running, and how far.
type Event struct {
	Stage string // "pretrain", "probe", "fine-tune", "theory"
	Cell  string // e.g. "fact, coverage 0.50, substitute noise 0.3, p, replicate 3"
	Done  int
	Total int
}

// Runner trains and evaluates the models the experiments need, caching base
// checkpoints and fine-tuning results on disk so that one experiment reuses
// another's runs. It never prints; progress goes to Events.
type Runner struct {
	Setup Setup
	// Cache is a directory for checkpoints and results ("" turns caching
	// off). Entries live under a hash of the setup and of the running
	// executable, so that neither a changed setup nor changed code reads
	// results computed by something else.
	Cache string
	// Parallel is the number of jobs run at once (default 2: one small run
	// keeps about one core busy).
	Parallel int
	Events   func(Event)

	mu    sync.Mutex
	tasks map[string]Task
	bases map[baseKey]*train.Checkpoint
	noise map[string]*NoiseAwareRun
}

type baseKey struct {
	task string
	base Base
	rep  int
}

// RunResult is one fine-tuning run, evaluated on the held-out test set and
// on the fine-tuning prompts with their true responses.
type RunResult struct {
	Condition
	Objective string `json:"objective"`
	Replicate int    `json:"replicate"`
	// HeldOut is the test: prompts fine-tuning never saw, true responses.
	HeldOut train.EvalResult `json:"held_out"`
	// TrainFit is the fit to the training set: the fine-tuning prompts with
	// their true (clean) responses.
	TrainFit  train.EvalResult `json:"train_fit"`
	FinalLoss float64          `json:"final_loss"`
	Seconds   float64          `json:"seconds"`
	// Objectives counts the steps spent under each concrete objective
	// (auto and auto-theory).
	Objectives map[string]int `json:"objectives,omitempty"`
	// Dropped counts the fine-tuning examples the run trained without:
	// the flagged ones, for auto when it trains NLL and for CleanNLL.
	Dropped int `json:"dropped,omitempty"`
}

func (r *Runner) emit(ev Event) {
	if r.Events != nil {
		r.Events(ev)
	}
}

// Task returns a task of the setup, built once.
func (r *Runner) Task(name string) (Task, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.tasks[name]; ok {
		return t, nil
	}
	t, err := r.Setup.Task(name)
	if err != nil {
		return nil, err
	}
	if r.tasks == nil {
		r.tasks = map[string]Task{}
	}
	r.tasks[name] = t
	return t, nil
}

// SFTData returns the fine-tuning set of a condition for a replicate, with
// the truth about every label: the data the runs of that replicate trained
// on (see Setup.SFTData).
func (r *Runner) SFTData(c Condition, rep int) (SFTData, error) {
	t, err := r.Task(c.Task)
	if err != nil {
		return SFTData{}, err
	}
	return sftData(t, c, rep)
}

// dir is the cache directory of this setup and this build.
func (r *Runner) dir() (string, error) {
	if r.Cache == "" {
		return "", nil
	}
	b, err := json.Marshal(r.Setup)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(b)
	h.Write([]byte(buildID()))
	return filepath.Join(r.Cache, hex.EncodeToString(h.Sum(nil)[:6])), nil
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

// Base returns base model b of a task for a replicate, pretraining it
// unless it is cached.
func (r *Runner) Base(ctx context.Context, task string, b Base, rep int) (*train.Checkpoint, error) {
	k := baseKey{task, b, rep}
	r.mu.Lock()
	ck, ok := r.bases[k]
	r.mu.Unlock()
	if ok {
		return ck, nil
	}
	t, err := r.Task(task)
	if err != nil {
		return nil, err
	}
	d, err := r.dir()
	if err != nil {
		return nil, err
	}
	path := ""
	if d != "" {
		path = filepath.Join(d, fmt.Sprintf("base-%s-%s-r%d.ckpt", task, b.key(), rep))
		if data, err := os.ReadFile(path); err == nil {
			if ck, err := train.ReadCheckpoint(bytes.NewReader(data), path); err == nil {
				r.remember(k, ck)
				return ck, nil
			}
		}
	}
	ck, err = r.Setup.Pretrain(ctx, t, b, rep, nil)
	if err != nil {
		return nil, fmt.Errorf("pretrain %s, %s, replicate %d: %w", task, b, rep, err)
	}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, func(w io.Writer) error { _, err := ck.WriteTo(w); return err }); err != nil {
			return nil, err
		}
	}
	r.remember(k, ck)
	return ck, nil
}

func (r *Runner) remember(k baseKey, ck *train.Checkpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bases == nil {
		r.bases = map[baseKey]*train.Checkpoint{}
	}
	r.bases[k] = ck
}

// Probe measures a model on data with the probe, as a user would: the
// capability statistic with its CI, the share of tokens above 0.55, and a
// reservoir of up to reservoir tokens as full-distribution theory contexts.
func Probe(ctx context.Context, ck *train.Checkpoint, data []train.Example, reservoir int) (*probe.Report, error) {
	return ckprobe.Report(ctx, ck, "", data, "sft", probe.Config{Reservoir: reservoir, Seed: 1})
}

// FineTune fine-tunes a condition's base model of replicate rep with an
// objective (seed rep, on the noise draw rep) and evaluates it.
func (r *Runner) FineTune(ctx context.Context, c Condition, objective string, rep int) (RunResult, error) {
	key := fmt.Sprintf("%s-%s-r%d", c.key(), objective, rep)
	d, err := r.dir()
	if err != nil {
		return RunResult{}, err
	}
	var path string
	if d != "" {
		path = filepath.Join(d, "runs", key+".json")
		if b, err := os.ReadFile(path); err == nil {
			var res RunResult
			if json.Unmarshal(b, &res) == nil {
				return res, nil
			}
		}
	}
	base, err := r.Base(ctx, c.Task, c.Base, rep)
	if err != nil {
		return RunResult{}, err
	}
	t, err := r.Task(c.Task)
	if err != nil {
		return RunResult{}, err
	}
	start := time.Now()
	cfg := r.Setup.SFT
	cfg.Objective, cfg.Seed = objective, uint64(rep)
	data := t.SFT(c.Scheme, c.Noise, uint64(rep)).Examples
	res := RunResult{Condition: c, Objective: objective, Replicate: rep, Objectives: map[string]int{}}
	if objective == CleanNLL {
		na, err := r.NoiseAware(ctx, c, rep)
		if err != nil {
			return RunResult{}, err
		}
		drop := map[int]bool{}
		for _, f := range na.Greedy.Flags {
			drop[f.Index] = true
		}
		kept := data[:0:0]
		for i, ex := range data {
			if !drop[i] {
				kept = append(kept, ex)
			}
		}
		data, cfg.Objective, res.Dropped = kept, "nll", len(drop)
	}
	tr, err := train.New(cfg, base, data)
	if err != nil {
		return RunResult{}, fmt.Errorf("%s: %w", key, err)
	}
	for !tr.Done() {
		info, err := tr.Step(ctx)
		if err != nil {
			return res, fmt.Errorf("%s: %w", key, err)
		}
		res.FinalLoss = info.Loss
		res.Objectives[info.Objective]++
	}
	if m := tr.Measurement(); m != nil {
		res.Dropped = len(m.Dropped)
	}
	if res.HeldOut, err = train.Evaluate(ctx, tr.Model(), tr.Tokenizer(), t.HeldOut(), train.EvalOptions{}); err != nil {
		return res, err
	}
	if res.TrainFit, err = train.Evaluate(ctx, tr.Model(), tr.Tokenizer(), t.TrainFit(), train.EvalOptions{}); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	if path != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return res, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return res, err
		}
		if err := atomicfile.WriteBytes(path, b); err != nil {
			return res, err
		}
	}
	return res, nil
}

// forEach runs do(ctx, i) for i in [0, n), Parallel at a time, and reports
// each as done under stage with the label of i. The first error cancels the
// rest and is returned (with any others).
func (r *Runner) forEach(ctx context.Context, stage string, n int, label func(i int) string, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	workers := r.Parallel
	if workers < 1 {
		workers = 2
	}
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(ctx, i); err != nil {
					errs[i] = err
					cancel()
				}
				mu.Lock()
				done++
				r.emit(Event{Stage: stage, Cell: label(i), Done: done, Total: n})
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}
