package train

import (
	"fmt"
	"sync"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/capsel/capsel/internal/simd"
)

// Memory. A training step used to allocate every activation, every
// activation gradient and, inside spago's Dense.AccGrad, a clone of every
// activation gradient: 18 MB per step at d = 64 and 75 MB at d = 128, so
// that the garbage collector ran every few steps. Two things remove that:
//
//   - act, the value type of the model's graph nodes, takes ownership of the
//     first gradient it is given instead of cloning it (and adds later ones
//     into it), so a gradient is allocated once, by the operator that
//     computes it;
//   - a workspace hands out the float32 buffers of one step (values,
//     gradients, saved intermediates) and takes them all back at the start
//     of the next, so a steady-state step allocates only small objects
//     (graph nodes, closures). Parameter gradients are cloned by spago once,
//     in the first step, and added into in place after that
//     (addParamGrad).

// act is the value of one of the model's graph nodes: a row-major float32
// matrix (it embeds *mat.Dense, so it is a mat.Matrix to spago) whose
// gradient is adopted rather than copied.
//
// Ownership rule: AccGrad keeps a *mat.Dense[float32] it is given as the
// gradient (or adds it into the one it has), so the caller must not use
// that matrix afterwards. Every operator in this package hands each
// gradient it computes to exactly one AccGrad call and then forgets it, and
// passes its own output gradient on (see linearOp's residual) only as its
// last action.
type act struct {
	*mat.Dense[float32]
	data []float32
	ws   *workspace // where merged-away gradients go back

	mu   sync.Mutex
	grad *mat.Dense[float32]
}

var _ mat.Matrix = (*act)(nil)

// Value returns the node's value: a itself (the embedded Dense would
// return the bare matrix, whose AccGrad clones).
func (a *act) Value() mat.Tensor { return a }

// Grad returns the accumulated gradient, or nil.
func (a *act) Grad() mat.Tensor {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.grad == nil {
		return nil // an untyped nil: spago compares the interface with nil
	}
	return a.grad
}

// HasGrad reports whether a gradient has been accumulated.
func (a *act) HasGrad() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.grad != nil
}

// AccGrad adds g to the gradient, adopting g when it is the first (see the
// ownership rule on act). The first of two contributions is kept and the
// second added to it, so with at most two consumers per node the result is
// a + b = b + a whatever order spago's backward goroutines finish in.
func (a *act) AccGrad(g mat.Tensor) {
	d, ok := g.(*mat.Dense[float32])
	if !ok {
		d = g.(mat.Matrix).Clone().(*mat.Dense[float32])
	}
	if d.Size() != a.Size() {
		panic(fmt.Sprintf("train: gradient of %v for a node of %v", d.Shape(), a.Shape()))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.grad == nil {
		a.grad = d
		return
	}
	simd.Add(mat.Data[float32](a.grad), mat.Data[float32](d))
	a.ws.releaseMat(d)
}

// ZeroGrad drops the gradient.
func (a *act) ZeroGrad() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.grad = nil
}

// workspace hands out the float32 buffers of one training step. Buffers
// come back either one by one, when their owner is done with them within
// the step (release: gradients once consumed, what an operator saved for
// its backward pass once that has run), so that the backward pass works
// in memory that is still in cache; or all at once at the start of the
// next step (reset). A nil *workspace allocates fresh, zeroed memory each
// time and ignores releases (the inference and analysis paths). It is safe
// for concurrent use.
type workspace struct {
	mu    sync.Mutex
	all   [][]float32         // every buffer ever handed out
	inUse map[*float32]bool   // handed out and not released, by first element
	free  map[int][][]float32 // by length
}

// floats returns a buffer of n floats with arbitrary contents.
func (w *workspace) floats(n int) []float32 {
	if w == nil || n == 0 {
		return make([]float32, n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inUse == nil {
		w.inUse, w.free = map[*float32]bool{}, map[int][][]float32{}
	}
	var b []float32
	if l := w.free[n]; len(l) > 0 {
		b = l[len(l)-1]
		w.free[n] = l[:len(l)-1]
	} else {
		b = make([]float32, n)
		w.all = append(w.all, b)
	}
	w.inUse[&b[0]] = true
	return b
}

// release gives back a buffer from floats whose owner no longer needs it
// in this step. Buffers that did not come from w, or that are not in use,
// are ignored.
func (w *workspace) release(b []float32) {
	if w == nil || len(b) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.inUse[&b[0]] {
		return
	}
	delete(w.inUse, &b[0])
	w.free[len(b)] = append(w.free[len(b)], b[:len(b):len(b)])
}

// releaseMat releases the buffer of a gradient matrix.
func (w *workspace) releaseMat(t mat.Tensor) {
	if w == nil {
		return
	}
	if d, ok := t.(*mat.Dense[float32]); ok {
		w.release(mat.Data[float32](d))
	}
}

// reset makes every buffer available again. Whatever still refers to them
// (the previous step's graph) must be dead.
func (w *workspace) reset() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.inUse)
	for n, l := range w.free {
		clear(l)
		w.free[n] = l[:0]
	}
	for _, b := range w.all {
		w.free[len(b)] = append(w.free[len(b)], b)
	}
}

// act returns an r×c activation with arbitrary contents.
func (w *workspace) act(r, c int) *act {
	d := w.floats(r * c)
	return &act{Dense: mat.NewDense[float32](mat.WithShape(r, c), mat.WithBacking(d)), data: d, ws: w}
}

// grad returns an r×c matrix for a gradient, with arbitrary contents
// (zeroed with zero).
func (w *workspace) grad(r, c int, zero bool) (*mat.Dense[float32], []float32) {
	d := w.floats(r * c)
	if zero {
		clear(d)
	}
	return mat.NewDense[float32](mat.WithShape(r, c), mat.WithBacking(d)), d
}

// addParamGrad adds a gradient into parameter p: fill must add its values
// into the slice it is given. A parameter whose gradient buffer survives
// from the previous step (AdamW zeroes it rather than dropping it) is added
// into in place; otherwise fill writes into a zeroed matrix that goes to
// p.AccGrad. Either way the result is 0 + the gradient, bit for bit.
//
// The in-place path writes without spago's lock, which is safe because
// every parameter of the model feeds exactly one operator, and the
// optimizer only runs after the backward pass.
func (w *workspace) addParamGrad(p mat.Tensor, fill func(dst []float32)) {
	if np, ok := p.(*nn.Param); ok && np.HasGrad() {
		fill(mat.Data[float32](np.Grad()))
		return
	}
	sh := p.Shape()
	m, d := w.grad(sh[0], sh[1], true)
	fill(d)
	p.AccGrad(m)
	if _, ok := p.(*nn.Param); ok {
		w.release(d) // spago cloned it
	}
}

// vals returns the row-major data of a node's value without copying.
func vals(t mat.Tensor) []float32 {
	switch v := t.(type) {
	case *act:
		return v.data
	case *ag.Operator:
		if a, ok := v.Value().(*act); ok {
			return a.data
		}
	}
	return mat.Data[float32](t.Value())
}
