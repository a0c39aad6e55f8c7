//go:build !amd64 || !gc || purego

package simd

// Without the amd64 assembly (other architectures, gccgo, or the purego
// build tag) only the portable Go code in generic.go runs.
const haveAsm = false

func expSumAVX2(x *float32, n int, shift float32) float32                 { panic(noAsm) }
func sumExpAVX2(x *float32, n int, shift float32) float32                 { panic(noAsm) }
func expScaleAVX2(dst, x *float32, n int, shift, scale float32)           { panic(noAsm) }
func maxAVX2(x *float32, n int) float32                                   { panic(noAsm) }
func scaleAVX2(x *float32, n int, s float32)                              { panic(noAsm) }
func addAVX2(dst, src *float32, n int)                                    { panic(noAsm) }
func mulAddAVX2(dst, a, b *float32, n int)                                { panic(noAsm) }
func geluAVX2(dst, x *float32, n int)                                     { panic(noAsm) }
func geluGradAVX2(dst, x, grad *float32, n int)                           { panic(noAsm) }
func softmaxGradAVX2(ds, p, dp *float32, n int, scale float32)            { panic(noAsm) }
func sumAVX2(x *float32, n int) float32                                   { panic(noAsm) }
func sumSqDevAVX2(x *float32, n int, mu float32) float32                  { panic(noAsm) }
func lnApplyAVX2(xh, y, x, gain, b *float32, n int, mu, r float32)        { panic(noAsm) }
func lnGradSumsAVX2(dy, gain, xh *float32, n int) (m1, m2 float32)        { panic(noAsm) }
func lnGradApplyAVX2(dx, dy, gain, xh *float32, n int, r, m1, m2 float32) { panic(noAsm) }
func adamwAVX2(w, grad, m, v *float32, n int, c *[8]float32)              { panic(noAsm) }

func dotRowsAVX2(dst *float32, n int, x *float32, k int, m *float32, ldm int, alpha float32) {
	panic(noAsm)
}

func axpyRowsAVX2(dst *float32, k int, coef *float32, inc int, m *float32, ldm int, n int, add int) {
	panic(noAsm)
}

const noAsm = "simd: assembly kernels not built"

func sumSqAVX2(x *float32, n int) float64 { panic(noAsm) }

func attnRowAVX2(row *float32, tp, n int, q, k, v *float32, dh int, out *float32, scale float32) {
	panic(noAsm)
}

func attnRowGradAVX2(ds, p *float32, tp, n int, gy, v, k *float32, dh int, dq *float32, scale float32) {
	panic(noAsm)
}
