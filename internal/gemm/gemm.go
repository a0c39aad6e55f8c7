package gemm

import (
	"fmt"
	"runtime"

	"github.com/capsel/capsel/internal/par"
)

// Cache blocking. A kc×nr micro-panel of B (16 KiB at kc = 256) stays in the
// 32 KiB L1d while the kernel sweeps the mcMax×kc block of A (144 KiB) held
// in the 512 KiB L2; the kc×nc block of B lives in L2/L3. The values are
// BLIS's Zen configuration for sgemm (MC 144, KC 256, NC 4080); they have not
// been tuned further here.
const (
	kcMax = 256
	mcMax = 144  // multiple of mr
	ncMax = 4080 // multiple of nr
)

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
// Large products run on several goroutines (see the package doc); every
// element of C is computed by the same fixed sequence of float32 operations
// whatever the number of goroutines, so results are bit-for-bit
// reproducible across GOMAXPROCS settings.
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

	p := params{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
		kc: balancedKC(k),
	}
	blocks, byRows := split(m, n, k, runtime.GOMAXPROCS(0))
	if blocks <= 1 {
		s := scratches.get()
		p.block(s, 0, m, 0, n)
		scratches.put(s)
		return
	}
	q := calls.get()
	*q = p
	q.parallel(blocks, byRows)
	*q = params{} // drop the references to the caller's slices
	calls.put(q)
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
// above kcMax does not leave a sliver. It depends on k alone, never on how
// C is split among goroutines, because the k blocking fixes the rounding.
func balancedKC(k int) int {
	nb := (k + kcMax - 1) / kcMax
	return (k + nb - 1) / nb
}

// params is one Sgemm problem.
type params struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	kc             int // k slice depth, from balancedKC
}

// parallelMinMACs is the smallest m·n·k that Sgemm splits among goroutines:
// about 2 µs of work on one core, comparable to handing a block to another
// goroutine. (An estimate, not a measured crossover.)
const parallelMinMACs = 64 * 64 * 32

// minBlock is the fewest rows (or columns) of C that Sgemm gives one block.
// Every block packs the whole shared operand (all of op(B) for row blocks,
// all of op(A) for column blocks) again, so thin blocks would spend more
// time packing than multiplying.
const minBlock = 48

// parallel computes C in blocks of whole micro-tiles of rows of C (or of
// columns), which par.For hands to the pool's goroutines; each block is one
// cache-blocked block() nest. The blocks only move work between
// goroutines: every element's arithmetic is the same as in a single
// block() over all of C.
func (p *params) parallel(blocks int, byRows bool) {
	size, unit := p.n, nr
	if byRows {
		size, unit = p.m, mr
	}
	units := (size + unit - 1) / unit
	par.For(blocks, func(lo, hi int) {
		s := scratches.get()
		for blk := lo; blk < hi; blk++ {
			b0 := min(size, blk*units/blocks*unit)
			b1 := min(size, (blk+1)*units/blocks*unit)
			switch {
			case b0 >= b1:
			case byRows:
				p.block(s, b0, b1, 0, p.n)
			default:
				p.block(s, 0, p.m, b0, b1)
			}
		}
		scratches.put(s)
	})
}

// split returns how many blocks Sgemm cuts an m×n C into at GOMAXPROCS
// procs (1: no split), and whether they are blocks of rows or of columns:
// rows when C is at least as tall as wide, at least minBlock of them per
// block, up to two blocks per goroutine for balance.
func split(m, n, k, procs int) (blocks int, byRows bool) {
	byRows = m >= n
	size := n
	if byRows {
		size = m
	}
	if procs <= 1 || m*n*k < parallelMinMACs {
		return 1, byRows
	}
	return max(1, min(2*procs, size/minBlock)), byRows
}

// scratch is one goroutine's packing space.
type scratch struct {
	a    []float32 // one packed mc×kc block of op(A)
	b    []float32 // one packed kc×nc block of op(B)
	tile [mr * nr]float32
}

// freeList recycles values. Unlike a sync.Pool it is not emptied by garbage
// collection, so packing buffers survive the frequent collections of an
// allocation-heavy autograd loop, and a steady-state Sgemm on one goroutine
// allocates nothing. It holds more than any realistic number of concurrent
// calls and blocks; extra values are left to the collector.
type freeList[T any] chan *T

func (l freeList[T]) get() *T {
	select {
	case x := <-l:
		return x
	default:
		return new(T)
	}
}

func (l freeList[T]) put(x *T) {
	select {
	case l <- x:
	default: // full: let the collector have it
	}
}

var (
	scratches = make(freeList[scratch], 128) // one goroutine's packing space
	calls     = make(freeList[params], 128)  // the problems being split (par.For's closures refer to them)
)

// grow returns buf resized to n elements, reallocating only when too small.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// macro runs the micro-kernel over the mcb×ncb block of C at (ic, jc), with
// ap holding its packed rows and bp its packed columns for one k slice.
func (p *params) macro(s *scratch, ap, bp []float32, kc, ic, mcb, jc, ncb int, beta float32) {
	ldc := p.ldc
	for jr := 0; jr < ncb; jr += nr {
		bpan := bp[jr*kc : (jr+nr)*kc]
		cols := min(nr, ncb-jr)
		for ir := 0; ir < mcb; ir += mr {
			apan := ap[ir*kc : (ir+mr)*kc]
			rows := min(mr, mcb-ir)
			off := (ic+ir)*ldc + jc + jr
			if rows == mr && cols == nr {
				kernel(kc, apan, bpan, p.c[off:], ldc, p.alpha, beta)
				continue
			}
			p.edge(s, kc, apan, bpan, off, rows, cols, beta)
		}
	}
}

// block computes C[i0:i1, j0:j1] with the goroutine-private scratch s. This
// is the BLIS five-loop nest: jc over nc-wide column blocks, pc over kc-deep
// slices of k (pack B), ic over mc-tall row blocks (pack A), then jr and ir
// over micro-tiles (macro). For each C element the k slices are always
// visited in order 0, kc, 2kc, …; the first applies beta, later ones
// accumulate.
func (p *params) block(s *scratch, i0, i1, j0, j1 int) {
	kc0 := p.kc
	ncb0 := min(ncMax, (j1-j0+nr-1)/nr*nr)
	s.b = grow(s.b, kc0*ncb0)
	s.a = grow(s.a, kc0*mcMax)
	for jc := j0; jc < j1; jc += ncMax {
		ncb := min(ncMax, j1-jc)
		for pc := 0; pc < p.k; pc += kc0 {
			kc := min(kc0, p.k-pc)
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			packB(s.b, p.transB, p.b, p.ldb, pc, kc, jc, ncb)
			for ic := i0; ic < i1; ic += mcMax {
				mcb := min(mcMax, i1-ic)
				packA(s.a, p.transA, p.a, p.lda, ic, mcb, pc, kc)
				p.macro(s, s.a, s.b, kc, ic, mcb, jc, ncb, beta)
			}
		}
	}
}

// edge runs the kernel on a partial tile through the scratch tile: copy the
// valid part of C in, run the same kernel with row stride nr, copy the valid
// part out. The arithmetic is identical to a full tile's.
func (p *params) edge(s *scratch, kc int, ap, bp []float32, off, rows, cols int, beta float32) {
	t := s.tile[:]
	c, ldc := p.c, p.ldc
	if beta != 0 {
		for i := 0; i < rows; i++ {
			copy(t[i*nr:i*nr+cols], c[off+i*ldc:off+i*ldc+cols])
		}
	}
	kernel(kc, ap, bp, t, nr, p.alpha, beta)
	for i := 0; i < rows; i++ {
		copy(c[off+i*ldc:off+i*ldc+cols], t[i*nr:i*nr+cols])
	}
}
