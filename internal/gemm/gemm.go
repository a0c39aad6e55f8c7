package gemm

import (
	"fmt"
	"runtime"
	"sync/atomic"
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

// parallelMinMACs is the smallest m·n·k for which a call is split among
// goroutines: about 2 µs of work on one core, comparable to the hand-off.
// (An estimate, not a measured crossover.)
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

	cl := calls.get()
	cl.params = params{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
		kc: balancedKC(k),
	}
	cl.run(Threads())
	cl.params = params{}
	calls.put(cl)
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

// params is one Sgemm problem.
type params struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	kc             int // k slice depth, from balancedKC
}

// Ways of running a call on several goroutines; see run.
const (
	modeRows   = iota // row chunks sharing a fully packed op(B)
	modeCols          // column chunks sharing a fully packed op(A)
	modeBlocks        // large row or column blocks, each a full block() nest
)

// call is one Sgemm invocation and its parallel bookkeeping.
type call struct {
	params
	mode       int
	byCols     bool         // chunks are column ranges (else row ranges)
	chunkTiles int          // micro-tiles per chunk along the split dimension
	nChunks    int          // chunks in all
	next       atomic.Int64 // next chunk to hand out
	gen        uint64
	slots      [maxHelpers]atomic.Uint64
	finished   atomic.Int64 // helpers that joined and are done
}

// maxPacked bounds the floats of a whole packed operand kept per goroutine
// (16 MiB) in modeRows and modeCols; larger problems use modeBlocks. It is a
// variable so that tests can force modeBlocks on small matrices.
var maxPacked = 4 << 20

// run computes C with up to threads goroutines.
//
// One thread runs block over all of C. With more, C is cut into chunks of
// whole micro-tiles along one dimension and every participant — the caller
// and the helpers it enlists — takes chunks from an atomic counter until
// none are left. In modeRows and modeCols each participant packs the
// operand shared by all chunks (all of op(B) for row chunks, all of op(A)
// for column chunks) once, and the other operand is packed chunk by chunk,
// so once in total; chunks are small (about chunkMACs of work) for load
// balance. When the shared operand would be too large to keep packed,
// modeBlocks gives each chunk its own cache-blocked block() nest, with
// chunks big enough that repacking the shared operand per chunk is cheap.
// Chunks only move work between goroutines: each element's arithmetic is
// the same as with one thread.
func (cl *call) run(threads int) {
	m, n, k := cl.m, cl.n, cl.k
	if m*n*k < parallelMinMACs {
		threads = 1
	}
	threads = min(threads, maxHelpers+1)
	mode, byCols := chooseSplit(m, n, k, threads)
	if threads <= 1 || (byCols && n <= nr) || (!byCols && m <= mr) {
		s := scratches.get()
		cl.block(s, 0, m, 0, n)
		scratches.put(s)
		return
	}
	tm, tn := (m+mr-1)/mr, (n+nr-1)/nr
	tiles, maxTiles := tm, mcMax/mr
	if byCols {
		tiles, maxTiles = tn, 4
	}
	cl.mode, cl.byCols = mode, byCols
	if mode == modeBlocks {
		// Two chunks per participant, each at least mcMax rows or 256
		// columns, so that repacking the shared operand per chunk is cheap.
		minTiles := mcMax / mr
		if byCols {
			minTiles = 256 / nr
		}
		cl.chunkTiles = max(minTiles, (tiles+2*threads-1)/(2*threads))
	} else {
		// Chunks of about chunkMACs multiply-adds (a few microseconds), so
		// that the last one to finish leaves the others little to wait for;
		// at most one mc block of rows or four column panels.
		perTile := mr * ((n + nr - 1) / nr * nr) * k
		if byCols {
			perTile = nr * ((m + mr - 1) / mr * mr) * k
		}
		cl.chunkTiles = min(maxTiles, max(1, chunkMACs/perTile))
	}
	cl.nChunks = (tiles + cl.chunkTiles - 1) / cl.chunkTiles
	helpers := min(threads, cl.nChunks) - 1
	cl.next.Store(0)
	cl.finished.Store(0)
	cl.gen = genSeq.Add(1)
	ensureWorkers(helpers)
	for i := 0; i < helpers; i++ {
		cl.slots[i].Store(cl.gen<<2 | slotPosted)
		tokens <- token{cl: cl, gen: cl.gen, slot: i}
	}
	s := scratches.get()
	cl.work(s)
	scratches.put(s)
	// Withdraw the invitations nobody took up, then wait for the helpers
	// that joined. They are at most one chunk behind, so the caller spins
	// rather than parks: a parked caller would need a wake-up as slow as the
	// one the workers avoid.
	joined := int64(0)
	for i := 0; i < helpers; i++ {
		if !cl.slots[i].CompareAndSwap(cl.gen<<2|slotPosted, cl.gen<<2|slotRevoked) {
			joined++
		}
	}
	for i := 0; cl.finished.Load() < joined; i++ {
		if i&63 == 63 {
			runtime.Gosched()
		}
	}
}

// chunkMACs is the target work of one chunk in modeRows and modeCols.
const chunkMACs = 1 << 18

// packCost is the cost of packing one element, in units of one multiply-add
// of the kernel (the kernel retires 16 per cycle; packing moves a few
// elements per cycle, plus cache misses).
const packCost = 8

// chooseSplit decides how to share C among goroutines: by rows or by
// columns, estimating each participant's work as its share of the
// multiply-adds plus its packing (row chunks make every participant pack
// all of op(B), column chunks all of op(A)), and whether the shared operand
// is small enough to pack whole (modeRows, modeCols) or not (modeBlocks).
func chooseSplit(m, n, k, threads int) (mode int, byCols bool) {
	mp, np := (m+mr-1)/mr*mr, (n+nr-1)/nr*nr
	threads = max(threads, 1)
	rowCost := mp*np*k/threads + packCost*(k*np+mp*k/threads)
	colCost := mp*np*k/threads + packCost*(k*mp+np*k/threads)
	byCols = colCost < rowCost
	if m <= mr {
		byCols = true
	} else if n <= nr {
		byCols = false
	}
	switch {
	case byCols && k*mp <= maxPacked:
		return modeCols, true
	case !byCols && k*np <= maxPacked:
		return modeRows, false
	}
	return modeBlocks, m*k < k*n // split the dimension whose operand is smaller to repack
}

// work takes chunks until none are left.
func (cl *call) work(s *scratch) {
	first := true
	for {
		c := int(cl.next.Add(1)) - 1
		if c >= cl.nChunks {
			return
		}
		lo := c * cl.chunkTiles
		hi := lo + cl.chunkTiles
		switch {
		case cl.mode == modeBlocks && cl.byCols:
			cl.block(s, 0, cl.m, lo*nr, min(cl.n, hi*nr))
		case cl.mode == modeBlocks:
			cl.block(s, lo*mr, min(cl.m, hi*mr), 0, cl.n)
		case cl.byCols:
			if first {
				cl.packAllA(s)
			}
			cl.colChunk(s, lo*nr, min(cl.n, hi*nr))
		default:
			if first {
				cl.packAllB(s)
			}
			cl.rowChunk(s, lo*mr, min(cl.m, hi*mr))
		}
		first = false
	}
}

// packAllB packs all of op(B) into s.b: one block per k slice, each
// kc×roundup(n, nr), at offsets pcIndex·kc0·roundup(n, nr).
func (cl *call) packAllB(s *scratch) {
	np := (cl.n + nr - 1) / nr * nr
	s.b = grow(s.b, cl.k*np)
	for pc := 0; pc < cl.k; pc += cl.kc {
		kc := min(cl.kc, cl.k-pc)
		packB(s.b[pc*np:], cl.transB, cl.b, cl.ldb, pc, kc, 0, cl.n)
	}
}

// packAllA packs all of op(A) into s.a, likewise by k slice.
func (cl *call) packAllA(s *scratch) {
	mp := (cl.m + mr - 1) / mr * mr
	s.a = grow(s.a, cl.k*mp)
	for pc := 0; pc < cl.k; pc += cl.kc {
		kc := min(cl.kc, cl.k-pc)
		packA(s.a[pc*mp:], cl.transA, cl.a, cl.lda, 0, cl.m, pc, kc)
	}
}

// rowChunk computes rows [i0, i1) of C from the fully packed op(B) in s.b,
// packing op(A) block by block into s.rowA.
func (cl *call) rowChunk(s *scratch, i0, i1 int) {
	np := (cl.n + nr - 1) / nr * nr
	s.rowA = grow(s.rowA, cl.kc*mcMax)
	for pc := 0; pc < cl.k; pc += cl.kc {
		kc := min(cl.kc, cl.k-pc)
		beta := cl.beta
		if pc > 0 {
			beta = 1
		}
		bAll := s.b[pc*np : pc*np+kc*np]
		for ic := i0; ic < i1; ic += mcMax {
			mcb := min(mcMax, i1-ic)
			packA(s.rowA, cl.transA, cl.a, cl.lda, ic, mcb, pc, kc)
			cl.macro(s, s.rowA, bAll, kc, ic, mcb, 0, cl.n, beta)
		}
	}
}

// colChunk computes columns [j0, j1) of C from the fully packed op(A) in
// s.a, packing op(B) slice by slice into s.colB.
func (cl *call) colChunk(s *scratch, j0, j1 int) {
	mp := (cl.m + mr - 1) / mr * mr
	ncb := j1 - j0
	s.colB = grow(s.colB, cl.kc*((ncb+nr-1)/nr*nr))
	for pc := 0; pc < cl.k; pc += cl.kc {
		kc := min(cl.kc, cl.k-pc)
		beta := cl.beta
		if pc > 0 {
			beta = 1
		}
		packB(s.colB, cl.transB, cl.b, cl.ldb, pc, kc, j0, ncb)
		aAll := s.a[pc*mp : pc*mp+kc*mp]
		for ic := 0; ic < cl.m; ic += mcMax {
			mcb := min(mcMax, cl.m-ic)
			cl.macro(s, aAll[ic*kc:], s.colB, kc, ic, mcb, j0, ncb, beta)
		}
	}
}

// macro runs the micro-kernel over the mcb×ncb block of C at (ic, jc), with
// ap holding its packed rows and bp its packed columns for one k slice.
func (cl *call) macro(s *scratch, ap, bp []float32, kc, ic, mcb, jc, ncb int, beta float32) {
	ldc := cl.ldc
	for jr := 0; jr < ncb; jr += nr {
		bpan := bp[jr*kc : (jr+nr)*kc]
		cols := min(nr, ncb-jr)
		for ir := 0; ir < mcb; ir += mr {
			apan := ap[ir*kc : (ir+mr)*kc]
			rows := min(mr, mcb-ir)
			off := (ic+ir)*ldc + jc + jr
			if rows == mr && cols == nr {
				kernel(kc, apan, bpan, cl.c[off:], ldc, cl.alpha, beta)
				continue
			}
			cl.edge(s, kc, apan, bpan, off, rows, cols, beta)
		}
	}
}

// block computes C[i0:i1, j0:j1] with the goroutine-private scratch s. This
// is the BLIS five-loop nest: jc over nc-wide column blocks, pc over kc-deep
// slices of k (pack B), ic over mc-tall row blocks (pack A), then jr and ir
// over micro-tiles (macro). For each C element the k slices are always
// visited in order 0, kc, 2kc, …; the first applies beta, later ones
// accumulate.
func (cl *call) block(s *scratch, i0, i1, j0, j1 int) {
	kc0 := cl.kc
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
				cl.macro(s, s.a, s.b, kc, ic, mcb, jc, ncb, beta)
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
