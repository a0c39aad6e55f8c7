package train

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/optimizers"
)

// The spago (v1.1.0) behaviours that this package works around or relies
// on, pinned so that an upgrade that changes one fails here, with what to
// revisit, rather than somewhere in training (see the package doc).

func dense(xs ...float32) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(1, len(xs)), mat.WithBacking(xs))
}

// TestSpagoAccGradClones: Dense.AccGrad (and so nn.Param's) stores a clone
// of the first gradient and adds later ones into it. workspace.addParamGrad
// releases the buffer it passed to a parameter's AccGrad for reuse, which
// is only safe while spago copies it.
func TestSpagoAccGradClones(t *testing.T) {
	p := nn.NewParam(dense(0, 0, 0))
	g := dense(1, 2, 3)
	p.AccGrad(g)
	if p.Grad() == mat.Tensor(g) {
		t.Fatal("spago's AccGrad kept the gradient it was given instead of a clone: workspace.addParamGrad must stop releasing it")
	}
	mat.Data[float32](g)[0] = 100 // reusing the buffer must not touch the parameter's gradient
	p.AccGrad(dense(10, 20, 30))
	if got := mat.Data[float32](p.Grad()); got[0] != 11 || got[1] != 22 || got[2] != 33 {
		t.Fatalf("gradient %v after AccGrad of [1 2 3] and [10 20 30], want [11 22 33]", got)
	}
}

// actOp is an operator whose value is an act.
type actOp struct{ x mat.Tensor }

func (o actOp) Operands() []mat.Tensor { return []mat.Tensor{o.x} }
func (o actOp) Forward() (mat.Tensor, error) {
	a := (*workspace)(nil).act(1, 2)
	copy(a.data, vals(o.x))
	return a, nil
}
func (o actOp) Backward(mat.Tensor) error { return nil }

// TestSpagoOperatorForwardsToValue: an ag.Operator's Value is what its
// Forward returned, and its AccGrad calls that value's AccGrad. act's
// adoption of gradients (and vals, which reads an act's data without a
// copy) depends on both.
func TestSpagoOperatorForwardsToValue(t *testing.T) {
	node := run(actOp{x: nn.NewParam(dense(1, 2))})
	a, ok := node.Value().(*act)
	if !ok {
		t.Fatalf("the node's value is a %T, not the act its Forward returned", node.Value())
	}
	g := dense(5, 6)
	node.AccGrad(g)
	if a.grad != g {
		t.Fatal("the node's AccGrad did not reach its act: the act no longer adopts gradients, and spago clones them again")
	}
	if v := vals(node); &v[0] != &a.data[0] {
		t.Fatal("vals copied the node's value")
	}
}

// blockingUpdate is an optimization strategy whose update waits until it
// is released (or a minute has passed).
type blockingUpdate struct {
	release chan struct{}
	done    atomic.Bool
}

func (s *blockingUpdate) OptimizeParams(*nn.Param) error {
	select {
	case <-s.release:
	case <-time.After(time.Minute):
	}
	s.done.Store(true)
	return nil
}

// TestSpagoOptimizeDoesNotWait: optimizers.Optimizer.Optimize returns on
// success without waiting for its update goroutines, so the next forward
// pass would race with the weight updates. The trainer therefore applies
// AdamW with optimize, which waits. (The test does not depend on timing:
// the update cannot finish before the test releases it, and the minute
// only bounds a run against a spago that waits.)
func TestSpagoOptimizeDoesNotWait(t *testing.T) {
	p := nn.NewParam(dense(1, 2))
	p.AccGrad(dense(0.5, 0.5))
	s := &blockingUpdate{release: make(chan struct{})}
	defer close(s.release)
	if err := optimizers.New(nn.StreamParams([]*nn.Param{p}), s).Optimize(); err != nil {
		t.Fatal(err)
	}
	if s.done.Load() {
		t.Fatal("spago's Optimize now waits for its updates: optimize (optim.go) could use spago's Optimizer again")
	}
}

// failingOp is an operator whose forward pass fails.
type failingOp struct{ x mat.Tensor }

func (o failingOp) Operands() []mat.Tensor       { return []mat.Tensor{o.x} }
func (o failingOp) Forward() (mat.Tensor, error) { return nil, errors.New("boom") }
func (o failingOp) Backward(mat.Tensor) error    { return nil }

// TestSpagoOpErrorEndsProcess: an operator whose Forward returns an error
// ends the process through log.Fatalf (exit status 1) instead of returning
// the error. So the model checks its inputs before it creates a node, and
// no operator of this package returns an error. The test runs the failing
// operator in a child process.
func TestSpagoOpErrorEndsProcess(t *testing.T) {
	if os.Getenv("CAPSEL_TEST_SPAGO_FATAL") == "1" {
		run(failingOp{x: nn.NewParam(dense(1))})
		return // reached only if spago returns the error
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpagoOpErrorEndsProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CAPSEL_TEST_SPAGO_FATAL=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "ag: error during forward pass: boom") {
		t.Fatalf("child process: %v\n%s\nwant exit status 1 from spago's log.Fatalf; if spago now returns operator errors, operators may report bad input themselves", err, out)
	}
}
