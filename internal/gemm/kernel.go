package gemm

// Micro-tile shape. The packed layouts, the edge handling and the assembly
// kernel all assume these values.
const (
	mr = 6  // rows of C per micro-tile (broadcast A elements)
	nr = 16 // columns of C per micro-tile (two 8-wide YMM vectors)
)

// useAsm selects the assembly kernel. It starts as haveAsm and is switched
// off by tests to exercise the pure-Go kernel on machines that have AVX2.
var useAsm = haveAsm

// kernel computes the full mr×nr tile at c[0] (row stride ldc):
//
//	C = alpha·(Apanel·Bpanel) + beta·C
//
// where Apanel is k steps of mr floats and Bpanel is k steps of nr floats.
// When beta == 0, C is written without being read.
func kernel(k int, a, b, c []float32, ldc int, alpha, beta float32) {
	if useAsm {
		asmKernel(k, a, b, c, ldc, alpha, beta)
		return
	}
	goKernel(k, a, b, c, ldc, alpha, beta)
}

// goKernel is the portable micro-kernel. It walks the packed panels in the
// same order as the assembly kernel, one 2×4 block of the tile at a time so
// that the eight accumulators stay in registers. It rounds each product
// before adding it (the float32 conversions forbid fusion into an FMA), so
// its results differ from the assembly path in the last bits; like the
// assembly kernel, each element's arithmetic does not depend on where it
// sits in the tile.
func goKernel(k int, a, b, c []float32, ldc int, alpha, beta float32) {
	var acc [mr * nr]float32
	a = a[:k*mr]
	b = b[:k*nr]
	for i := 0; i < mr; i += 2 {
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			for p := 0; p < k; p++ {
				ap := a[p*mr+i : p*mr+i+2 : p*mr+i+2]
				bp := b[p*nr+j : p*nr+j+4 : p*nr+j+4]
				a0, a1 := ap[0], ap[1]
				b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
				c00 += float32(a0 * b0)
				c01 += float32(a0 * b1)
				c02 += float32(a0 * b2)
				c03 += float32(a0 * b3)
				c10 += float32(a1 * b0)
				c11 += float32(a1 * b1)
				c12 += float32(a1 * b2)
				c13 += float32(a1 * b3)
			}
			r0 := acc[i*nr+j : i*nr+j+4 : i*nr+j+4]
			r1 := acc[(i+1)*nr+j : (i+1)*nr+j+4 : (i+1)*nr+j+4]
			r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
			r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
		}
	}
	for i := 0; i < mr; i++ {
		crow := c[i*ldc : i*ldc+nr : i*ldc+nr]
		arow := acc[i*nr : i*nr+nr : i*nr+nr]
		if beta == 0 {
			for j, v := range arow {
				crow[j] = float32(alpha * v)
			}
			continue
		}
		for j, v := range arow {
			crow[j] = float32(beta*crow[j]) + float32(alpha*v)
		}
	}
}
