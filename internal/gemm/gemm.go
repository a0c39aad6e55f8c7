package gemm

import "fmt"

// Cache blocking. A kc×nr micro-panel of B (16 KiB at kc = 256) stays in the
// 32 KiB L1d while the kernel sweeps the mcMax×kc block of A (144 KiB) held
// in the 512 KiB L2; the kc×nc block of B lives in L2/L3. The values follow
// BLIS's Zen configuration for sgemm (MC 144, KC 256, NC 4080) and were
// checked with the benchmarks in this package.
const (
	kcMax = 256
	mcMax = 144  // multiple of mr
	ncMax = 4080 // multiple of nr
)

// parallelMinMACs is the smallest m·n·k for which a call is split among
// goroutines; below it the hand-off costs more than the work.
const parallelMinMACs = 64 * 64 * 32

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where op(X) = X or Xᵀ.
// op(A) is m×k, op(B) is k×n, C is m×n; lda, ldb, ldc are row strides.
//
// Stored shapes are A: m×k (transA false) or k×m (true) and B: k×n (transB
// false) or n×k (true), each with its row stride at least its width. When
// beta is 0, C is overwritten without being read (NaNs in C do not
// propagate); when alpha is 0 or k is 0, A and B are not read and C becomes
// beta·C. Sgemm panics with a "gemm: …" message when a dimension is negative
// or a stride or slice is too small for the shape.
//
// Every element of C is computed by the same fixed sequence of float32
// operations whatever the thread count (see the package doc), so results are
// bit-for-bit reproducible across SetThreads values and GOMAXPROCS.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("a", a, ar, ac, lda)
	checkMatrix("b", b, br, bc, ldb)
	checkMatrix("c", c, m, n, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(c, m, n, ldc, beta)
		return
	}

	cl := callPool.Get().(*call)
	*cl = call{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
		kc:   balancedKC(k),
		done: cl.done,
	}
	cl.run(Threads())
	*cl = call{done: cl.done}
	callPool.Put(cl)
}

// checkMatrix panics unless x can hold a rows×cols row-major matrix with
// row stride ld.
func checkMatrix(name string, x []float32, rows, cols, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("gemm: ld%s = %d < max(1, %d)", name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("gemm: len(%s) = %d < %d for %d×%d with stride %d", name, len(x), need, rows, cols, ld))
	}
}

// scaleC sets C = beta·C, writing zeros when beta == 0.
func scaleC(c []float32, m, n, ldc int, beta float32) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// balancedKC splits k into ⌈k/kcMax⌉ nearly equal blocks so that a k just
// above kcMax does not leave a sliver. It depends on k alone, never on the
// thread count, because the k blocking fixes the rounding.
func balancedKC(k int) int {
	nb := (k + kcMax - 1) / kcMax
	return (k + nb - 1) / nb
}

// call holds one Sgemm invocation.
type call struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	kc             int
	done           chan struct{}
}

// run splits C among up to threads goroutines and waits for them. The split
// is along whole micro-tiles of one dimension; it moves work between
// goroutines but never changes the arithmetic of any element.
func (cl *call) run(threads int) {
	m, n, k := cl.m, cl.n, cl.k
	if m*n*k < parallelMinMACs {
		threads = 1
	}
	byCols, parts := chooseSplit(m, n, k, threads)
	if parts > maxDone+1 {
		parts = maxDone + 1
	}
	if parts <= 1 {
		s := scratchPool.Get().(*scratch)
		cl.block(s, 0, m, 0, n)
		scratchPool.Put(s)
		return
	}
	ensureWorkers(parts - 1)
	// Helpers take parts 1..parts-1; the caller does part 0 itself.
	for t := 1; t < parts; t++ {
		i0, i1, j0, j1 := cl.part(byCols, parts, t)
		tasks <- task{call: cl, i0: i0, i1: i1, j0: j0, j1: j1}
	}
	i0, i1, j0, j1 := cl.part(byCols, parts, 0)
	s := scratchPool.Get().(*scratch)
	cl.block(s, i0, i1, j0, j1)
	scratchPool.Put(s)
	for t := 1; t < parts; t++ {
		<-cl.done
	}
}

// part returns the rectangle of C owned by part t of parts.
func (cl *call) part(byCols bool, parts, t int) (i0, i1, j0, j1 int) {
	if byCols {
		tiles := (cl.n + nr - 1) / nr
		j0 = min(cl.n, t*tiles/parts*nr)
		j1 = min(cl.n, (t+1)*tiles/parts*nr)
		return 0, cl.m, j0, j1
	}
	tiles := (cl.m + mr - 1) / mr
	i0 = min(cl.m, t*tiles/parts*mr)
	i1 = min(cl.m, (t+1)*tiles/parts*mr)
	return i0, i1, 0, cl.n
}

// packCost is the cost of packing one element, in units of one multiply-add
// of the kernel (the kernel retires 16 per cycle; packing takes about half a
// cycle per element).
const packCost = 8

// chooseSplit decides whether to divide C by rows or by columns and into how
// many parts, by estimating the busiest goroutine's time: its padded tiles'
// multiply-adds plus its packing (a split by rows repacks all of B in every
// part, a split by columns all of A).
func chooseSplit(m, n, k, threads int) (byCols bool, parts int) {
	if threads <= 1 {
		return false, 1
	}
	tm, tn := (m+mr-1)/mr, (n+nr-1)/nr
	pr, pc := min(threads, tm), min(threads, tn)
	rowCost := ((tm+pr-1)/pr*mr*tn*nr + packCost*((tm+pr-1)/pr*mr+n))
	colCost := ((tn+pc-1)/pc*nr*tm*mr + packCost*(m+(tn+pc-1)/pc*nr))
	if colCost < rowCost {
		return true, pc
	}
	return false, pr
}

// block computes C[i0:i1, j0:j1] with the goroutine-private scratch s. This
// is the BLIS five-loop nest: jc over nc-wide column blocks, pc over kc-deep
// slices of k (pack B), ic over mc-tall row blocks (pack A), then jr and ir
// over micro-tiles. For each C element the k slices are always visited in
// order 0, kc, 2kc, …; the first applies beta, later ones accumulate.
func (cl *call) block(s *scratch, i0, i1, j0, j1 int) {
	if i0 >= i1 || j0 >= j1 {
		return
	}
	kc0, ldc := cl.kc, cl.ldc
	ncb0 := min(ncMax, (j1-j0+nr-1)/nr*nr)
	s.b = grow(s.b, kc0*ncb0)
	s.a = grow(s.a, kc0*mcMax)
	for jc := j0; jc < j1; jc += ncMax {
		ncb := min(ncMax, j1-jc)
		for pc := 0; pc < cl.k; pc += kc0 {
			kc := min(kc0, cl.k-pc)
			beta := cl.beta
			if pc > 0 {
				beta = 1
			}
			packB(s.b, cl.transB, cl.b, cl.ldb, pc, kc, jc, ncb)
			for ic := i0; ic < i1; ic += mcMax {
				mcb := min(mcMax, i1-ic)
				packA(s.a, cl.transA, cl.a, cl.lda, ic, mcb, pc, kc)
				for jr := 0; jr < ncb; jr += nr {
					bp := s.b[jr*kc : (jr+nr)*kc]
					cols := min(nr, ncb-jr)
					for ir := 0; ir < mcb; ir += mr {
						ap := s.a[ir*kc : (ir+mr)*kc]
						rows := min(mr, mcb-ir)
						off := (ic+ir)*ldc + jc + jr
						if rows == mr && cols == nr {
							kernel(kc, ap, bp, cl.c[off:], ldc, cl.alpha, beta)
							continue
						}
						cl.edge(s, kc, ap, bp, off, rows, cols, beta)
					}
				}
			}
		}
	}
}

// edge runs the kernel on a partial tile through the scratch tile: copy the
// valid part of C in, run the same kernel with row stride nr, copy the valid
// part out. The arithmetic is identical to a full tile's.
func (cl *call) edge(s *scratch, kc int, ap, bp []float32, off, rows, cols int, beta float32) {
	t := s.tile[:]
	c, ldc := cl.c, cl.ldc
	if beta != 0 {
		for i := 0; i < rows; i++ {
			copy(t[i*nr:i*nr+cols], c[off+i*ldc:off+i*ldc+cols])
		}
	}
	kernel(kc, ap, bp, t, nr, cl.alpha, beta)
	for i := 0; i < rows; i++ {
		copy(c[off+i*ldc:off+i*ldc+cols], t[i*nr:i*nr+cols])
	}
}
