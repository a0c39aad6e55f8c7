//go:build amd64 && gc && !purego

package simd

import "github.com/capsel/capsel/internal/cpu"

var haveAsm = cpu.HasAVX2FMA

// The kernels in kernels_amd64.s. Lengths n and k are multiples of 8
// unless stated otherwise; the callers in simd.go guarantee it.

//go:noescape
func expSumAVX2(x *float32, n int, shift float32) float32

//go:noescape
func sumExpAVX2(x *float32, n int, shift float32) float32

//go:noescape
func expScaleAVX2(dst, x *float32, n int, shift, scale float32)

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func scaleAVX2(x *float32, n int, s float32)

//go:noescape
func addAVX2(dst, src *float32, n int)

//go:noescape
func mulAddAVX2(dst, a, b *float32, n int)

//go:noescape
func geluAVX2(dst, x *float32, n int)

//go:noescape
func geluGradAVX2(dst, x, grad *float32, n int)

//go:noescape
func dotRowsAVX2(dst *float32, n int, x *float32, k int, m *float32, ldm int, alpha float32)

//go:noescape
func axpyRowsAVX2(dst *float32, k int, coef *float32, inc int, m *float32, ldm int, n int, add int)

//go:noescape
func softmaxGradAVX2(ds, p, dp *float32, n int, scale float32)

//go:noescape
func sumAVX2(x *float32, n int) float32

//go:noescape
func sumSqDevAVX2(x *float32, n int, mu float32) float32

//go:noescape
func lnApplyAVX2(xh, y, x, gain, b *float32, n int, mu, r float32)

//go:noescape
func lnGradSumsAVX2(dy, gain, xh *float32, n int) (m1, m2 float32)

//go:noescape
func lnGradApplyAVX2(dx, dy, gain, xh *float32, n int, r, m1, m2 float32)

//go:noescape
func adamwAVX2(w, grad, m, v *float32, n int, c *[8]float32)

//go:noescape
func sumSqAVX2(x *float32, n int) float64

//go:noescape
func attnRowAVX2(row *float32, tp, n int, q, k, v *float32, dh int, out *float32, scale float32)

//go:noescape
func attnRowGradAVX2(ds, p *float32, tp, n int, gy, v, k *float32, dh int, dq *float32, scale float32)
