package train

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

// BenchmarkAttention times the attention operator's forward and backward
// passes alone at the two benchmark shapes.
func BenchmarkAttention(b *testing.B) {
	for _, c := range []struct{ seqs, t, d, heads int }{{16, 32, 64, 4}, {8, 64, 128, 4}} {
		rng := rand.New(rand.NewPCG(1, 2))
		n := c.seqs * c.t
		qkv := newMat(n, 3*c.d)
		for i, v := range mat.Data[float32](qkv) {
			_ = v
			mat.Data[float32](qkv)[i] = float32(rng.NormFloat64())
		}
		gy := newMat(n, c.d)
		for i := range mat.Data[float32](gy) {
			mat.Data[float32](gy)[i] = float32(rng.NormFloat64())
		}
		ws := &workspace{}
		b.Run(fmt.Sprintf("T%d-d%d-fwd", c.t, c.d), func(b *testing.B) {
			for b.Loop() {
				ws.reset()
				o := &attentionOp{qkv: qkv, seqs: c.seqs, t: c.t, d: c.d, heads: c.heads, ws: ws}
				o.Forward()
			}
		})
		b.Run(fmt.Sprintf("T%d-d%d-bwd", c.t, c.d), func(b *testing.B) {
			for b.Loop() {
				ws.reset()
				o := &attentionOp{qkv: qkv, seqs: c.seqs, t: c.t, d: c.d, heads: c.heads, ws: ws}
				o.Forward()
				qkv.ZeroGrad()
				o.Backward(gy)
			}
		})
	}
}
