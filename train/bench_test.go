package train

import (
	"fmt"
	"testing"
)

// BenchmarkTrainStep times whole training steps (forward, backward,
// clipping, AdamW) at the two shapes of bench/README.md's training section,
// with Bench's synthetic data, after three untimed steps; B/op and allocs/op
// are then the steady-state allocations of one step.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct {
		cfg   ModelConfig
		batch int
	}{
		{ModelConfig{Vocab: 64, D: 64, Layers: 2, Heads: 4, Context: 32}, 16},
		{ModelConfig{Vocab: 256, D: 128, Layers: 4, Heads: 4, Context: 64}, 8},
	} {
		name := fmt.Sprintf("V%d-d%d-L%d-H%d-T%d-B%d", c.cfg.Vocab, c.cfg.D, c.cfg.Layers, c.cfg.Heads, c.cfg.Context, c.batch)
		b.Run(name, func(b *testing.B) {
			r, err := newBenchLoop(BenchConfig{Model: c.cfg, Batch: c.batch, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			batch := r.batch()
			for range 3 {
				if _, err := r.step(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := r.step(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
