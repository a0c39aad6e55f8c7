package train

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkTrainStep times whole training steps (forward, backward,
// clipping, AdamW) at the two shapes of bench/README.md's training section,
// with Bench's synthetic data. Allocations per step are reported.
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
			b.ReportAllocs()
			_, err := Bench(context.Background(), BenchConfig{Model: c.cfg, Batch: c.batch, Steps: b.N, Warmup: 3, Seed: 1}, nil)
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
