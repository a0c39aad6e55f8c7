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

// goKernel is the portable micro-kernel. It keeps the 6×16 accumulator in a
// local array and walks the packed panels in the same order as the assembly
// kernel, but it rounds each product before adding it (no FMA), so its
// results differ from the assembly path in the last bits. Like the assembly
// kernel, each element's arithmetic does not depend on where it sits.
func goKernel(k int, a, b, c []float32, ldc int, alpha, beta float32) {
	var acc [mr][nr]float32
	a = a[:k*mr]
	b = b[:k*nr]
	for p := 0; p < k; p++ {
		bp := (*[nr]float32)(b[p*nr:])
		ap := (*[mr]float32)(a[p*mr:])
		for i := range acc {
			ai := ap[i]
			row := &acc[i]
			for j := range row {
				row[j] += float32(ai * bp[j])
			}
		}
	}
	for i := range acc {
		crow := (*[nr]float32)(c[i*ldc:])
		if beta == 0 {
			for j := range crow {
				crow[j] = float32(alpha * acc[i][j])
			}
			continue
		}
		for j := range crow {
			crow[j] = float32(beta*crow[j]) + float32(alpha*acc[i][j])
		}
	}
}
