package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkObjectiveCost measures what the objectives that read more than p
// cost the trainer, side by side with NLL in one run: a Trainer per
// objective, all fine-tuning the same model on the same synthetic data at
// the two benchmark shapes of bench/README.md (S1: V64 d64 L2 H4 T32 B16,
// S3: V256 d128 L4 H4 T64 B8), their steps interleaved round by round so
// that a change in the machine's load hits all alike.
//
// Reported per objective: the median step time (ms) and its ratio to
// NLL's, and the memory the trainer holds between steps — the Go heap in use
// after a garbage collection, measured as the growth when that trainer is
// built and has taken its warm-up steps (model, optimizer state, the
// workspace's buffers, and asft's frozen reference with its forward
// buffers) — and its ratio to NLL's.
//
//	go test ./train -run '^$' -bench ObjectiveCost -benchtime 1x
func BenchmarkObjectiveCost(b *testing.B) {
	objs := []string{"nll", "eaft-1", "deft", "asft-0.1"}
	for _, c := range []struct {
		name  string
		cfg   ModelConfig
		batch int
	}{
		{"S1-V64-d64-L2-H4-T32-B16", ModelConfig{Vocab: 64, D: 64, Layers: 2, Heads: 4, Context: 32}, 16},
		{"S3-V256-d128-L4-H4-T64-B8", ModelConfig{Vocab: 256, D: 128, Layers: 4, Heads: 4, Context: 64}, 8},
	} {
		b.Run(c.name, func(b *testing.B) {
			const warmup, rounds = 3, 40
			data := costData(c.cfg, 64)
			base, err := New(costConfig(c.cfg, "nll", c.batch, warmup), nil, data)
			if err != nil {
				b.Fatal(err)
			}
			init := base.Checkpoint()
			init.Run = nil
			// One throwaway run first, so that one-time allocations (the
			// worker pool, the runtime's caches) count for no objective.
			for range warmup {
				if _, err := base.Step(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			base = nil
			trainers := make([]*Trainer, len(objs))
			heap := make([]float64, len(objs))
			for i, o := range objs {
				before := liveHeap()
				tr, err := New(costConfig(c.cfg, o, c.batch, warmup+rounds*b.N), init, data)
				if err != nil {
					b.Fatal(err)
				}
				for range warmup {
					if _, err := tr.Step(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				heap[i] = float64(liveHeap()-before) / 1e6
				trainers[i] = tr
			}
			times := make([][]time.Duration, len(objs))
			for b.Loop() {
				for r := range rounds {
					for j := range objs {
						i := (r + j) % len(objs) // rotate who goes first
						start := time.Now()
						if _, err := trainers[i].Step(context.Background()); err != nil {
							b.Fatal(err)
						}
						times[i] = append(times[i], time.Since(start))
					}
				}
			}
			med := make([]float64, len(objs))
			for i := range objs {
				slices.Sort(times[i])
				med[i] = float64(times[i][len(times[i])/2]) / 1e6
			}
			var rows []string
			for i, o := range objs {
				b.ReportMetric(med[i], o+"-ms/step")
				b.ReportMetric(heap[i], o+"-MB")
				rows = append(rows, fmt.Sprintf("%-9s median step %7.2f ms (%.2f× nll), heap held %6.2f MB (%.2f× nll)", o, med[i], med[i]/med[0], heap[i], heap[i]/heap[0]))
			}
			b.Logf("%s, %d params, %d steps per objective:\n%s", c.name, c.cfg.NumParams(), len(times[0]), strings.Join(rows, "\n"))
		})
	}
}

// costConfig is a fine-tuning run of the given shape.
func costConfig(mc ModelConfig, obj string, batch, steps int) Config {
	c := DefaultConfig()
	c.Model, c.Objective, c.Batch, c.Steps = mc, obj, batch, steps
	return c
}

// costData is Bench's recipe as text: n examples whose response is a random
// block of 8 characters repeated to fill the context (so every position is
// a scored target), over an alphabet of V − 3 characters.
func costData(mc ModelConfig, n int) []Example {
	rng := rand.New(rand.NewPCG(1, 0xbe7c))
	alphabet := make([]rune, mc.Vocab-FirstChar)
	for i := range alphabet {
		alphabet[i] = rune(0x100 + i)
	}
	var out []Example
	for range n {
		var block [8]rune
		for i := range block {
			block[i] = alphabet[rng.IntN(len(alphabet))]
		}
		var sb strings.Builder
		for i := range mc.Context - 1 {
			sb.WriteRune(block[i%8])
		}
		out = append(out, Example{Response: sb.String()})
	}
	// Every character once, so that the tokenizer has the whole alphabet.
	out = append(out, Example{Response: string(alphabet[:min(len(alphabet), mc.Context-1)])})
	for i := mc.Context - 1; i < len(alphabet); i += mc.Context - 1 {
		out = append(out, Example{Response: string(alphabet[i:min(len(alphabet), i+mc.Context-1)])})
	}
	return out
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
