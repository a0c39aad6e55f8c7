package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/capsel/capsel/train"
)

var cmdBench = &command{
	name:  "bench",
	usage: "selector bench train --vocab V --d D --layers L --heads H --context T --batch B [--steps N] [--warmup N] [--json]",
	short: "measure training throughput of the spago trainer",
	long: `Measures training tokens per second of the trainer on synthetic data (each
sequence a random block of 8 tokens repeated), with NLL and AdamW, exactly as a
training step runs. The median step time over --steps timed steps (after
--warmup untimed ones) gives tokens_per_sec = batch·context / median, and
their total time tokens_per_sec_wall; gflops counts the model's training
FLOPs (6 × the forward multiply-adds) at tokens_per_sec; peak_rss_mb is the
process's high-water resident memory, cpu_seconds its CPU time, and
foreign_cpu_cores the CPU other processes used meanwhile, in cores (from
/proc/stat; -1 where it is missing).

  selector bench train --vocab 64 --d 64 --layers 2 --heads 4 --context 32 --batch 16 --json

bench/README.md compares these figures with the PyTorch anchor.`,
}

func init() { cmdBench.run = runBench }

type benchJSON struct {
	train.BenchResult
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	ForeignCPUCores float64 `json:"foreign_cpu_cores"`
	Config          struct {
		train.ModelConfig
		Batch int `json:"batch"`
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
	busy0, cpu0, t0 := busySeconds(), cpuSeconds(), time.Now()
	res, err := train.Bench(e.ctx, c, func(done int) { bar.update(done, 0, "", "") })
	busy1, cpu1, elapsed := busySeconds(), cpuSeconds(), time.Since(t0).Seconds()
	bar.finish()
	if err != nil {
		return err
	}
	out := benchJSON{BenchResult: res, PeakRSSMB: peakRSSMB(), GOMAXPROCS: gomaxprocs(), CPUSeconds: cpu1 - cpu0, ForeignCPUCores: -1}
	if busy0 >= 0 && busy1 >= 0 && elapsed > 0 {
		out.ForeignCPUCores = max(0, (busy1-busy0-(cpu1-cpu0))/elapsed)
	}
	out.Config.ModelConfig, out.Config.Batch = c.Model, c.Batch
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

// cpuSeconds is the process's user and system CPU time, from
// /proc/self/stat (fields 14 and 15, in ticks of 1/100 s); 0 where /proc is
// missing.
func cpuSeconds() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	k, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (u + k) / 100
}

// busySeconds is the CPU time the whole machine has spent busy since boot
// (the first line of /proc/stat minus idle and iowait, at the usual 100
// ticks per second), or -1 where /proc/stat is missing.
func busySeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var total float64
	for i, s := range f[1:9] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return -1
		}
		if i != 3 && i != 4 { // idle, iowait
			total += v
		}
	}
	return total / 100
}
