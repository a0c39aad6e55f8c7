package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/capsel/capsel/train"
)

var cmdBench = &command{
	name:  "bench",
	usage: "selector bench train --vocab V --d D --layers L --heads H --context T --batch B [--steps N] [--warmup N] [--json]",
	short: "measure training throughput of the spago trainer",
	long: `Measures training tokens per second of the trainer on synthetic data (each
sequence a random block of 8 tokens repeated), with NLL and AdamW, exactly as a
training step runs. The median step time over --steps timed steps (after
--warmup untimed ones) gives tokens_per_sec = batch·context / median;
gflops counts the model's training FLOPs (6 × the forward multiply-adds);
peak_rss_mb is the process's high-water resident memory.

  selector bench train --vocab 64 --d 64 --layers 2 --heads 4 --context 32 --batch 16 --json

bench/README.md compares these figures with the PyTorch anchor.`,
}

func init() { cmdBench.run = runBench }

type benchJSON struct {
	train.BenchResult
	PeakRSSMB float64 `json:"peak_rss_mb"`
	Config    struct {
		Vocab, D, Layers, Heads, Context, Batch int
	} `json:"config"`
	GOMAXPROCS int `json:"gomaxprocs"`
}

func runBench(e *env, args []string) error {
	if len(args) == 0 || args[0] != "train" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintf(e.stdout, "usage: %s\n\n%s\n", cmdBench.usage, cmdBench.long)
			return errHelpShown
		}
		return &usageError{msg: "the only benchmark is 'train'"}
	}
	f := newFlags(e, "bench train", cmdBench.usage, cmdBench.long)
	var c train.BenchConfig
	f.IntVar(&c.Model.Vocab, "vocab", 64, "vocabulary size V")
	f.IntVar(&c.Model.D, "d", 64, "width d")
	f.IntVar(&c.Model.Layers, "layers", 2, "blocks L")
	f.IntVar(&c.Model.Heads, "heads", 4, "attention heads H")
	f.IntVar(&c.Model.Context, "context", 32, "context T")
	f.IntVar(&c.Batch, "batch", 16, "sequences per step B")
	f.IntVar(&c.Steps, "steps", 50, "timed steps")
	f.IntVar(&c.Warmup, "warmup", 5, "untimed steps first")
	f.Uint64Var(&c.Seed, "seed", 1, "seed")
	asJSON := f.Bool("json", false, "print JSON")
	if err := f.parseNoArgs(args[1:]); err != nil {
		return err
	}
	if err := c.Model.Validate(); err != nil {
		return f.usagef("%v", err)
	}
	if c.Batch < 1 || c.Steps < 1 || c.Warmup < 0 {
		return f.usagef("--batch and --steps must be ≥ 1, --warmup ≥ 0")
	}
	bar := newProgressBar(e, "bench", c.Warmup+c.Steps)
	res, err := train.Bench(e.ctx, c, func(done int) { bar.update(done, 0, "", "") })
	bar.finish()
	if err != nil {
		return err
	}
	out := benchJSON{BenchResult: res, PeakRSSMB: peakRSSMB(), GOMAXPROCS: gomaxprocs()}
	out.Config.Vocab, out.Config.D, out.Config.Layers, out.Config.Heads, out.Config.Context, out.Config.Batch =
		c.Model.Vocab, c.Model.D, c.Model.Layers, c.Model.Heads, c.Model.Context, c.Batch
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "V%d d%d L%d H%d T%d B%d (%d params): %.0f tokens/s, %.1f ms/step (median of %d), %.2f GFLOP/s, peak RSS %.0f MB, final loss %.3f\n",
		c.Model.Vocab, c.Model.D, c.Model.Layers, c.Model.Heads, c.Model.Context, c.Batch, res.Params,
		res.TokensPerSec, res.StepMillis, res.Steps, res.GFLOPS, out.PeakRSSMB, res.FinalLoss)
	return nil
}

// peakRSSMB reads the process's resident-memory high-water mark (VmHWM) from
// /proc; 0 where /proc is missing.
func peakRSSMB() float64 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }
