// Package train trains small decoder-only transformer language models on CPU
// with spago, with any objective of package objectives, including the
// adaptive auto and auto-theory.
//
// The model is a pre-LN transformer (learned token and position embeddings,
// causal multi-head attention with a fused QKV projection, a tanh-GELU MLP of
// width 4d, a final layer norm and an untied head) written in matrix form:
// all tokens of a batch are the rows of one float32 matrix, every
// position-wise linear is one matrix product, and attention, layer norm, GELU,
// the embedding gather and the objective's softmax are fused operators
// plugged into spago's autograd. The objective enters through
// objectives.Batch, whose per-token scales s_f(p) multiply NLL's logit
// gradient (Li et al., ICML 2026, Lemma 3.1).
//
// What spago (v1.1.0) does here: it holds the parameters (nn.Param: a
// matrix, its gradient, a slot for the optimizer's state) and it records
// and schedules the graph (ag: operators run forward as they are built, and
// ag.Backward runs their backward functions in dependency order, one
// goroutine per node). Every floating-point operation is this package's:
// the fused operators (ops.go, on internal/simd and internal/gemm), AdamW,
// gradient clipping. Three spago behaviours are worked around, and
// spago_test.go pins each so that an upgrade that changes them fails a
// test:
//
//   - optimizers.Optimizer.Optimize returns before its update goroutines
//     finish, so the trainer applies AdamW with its own loop that waits
//     (optimize);
//   - mat.Dense.AccGrad stores a clone of the first gradient it is given, so
//     the graph's values (act) adopt their gradients instead, and parameter
//     gradients are added into in place after the first step
//     (workspace.addParamGrad);
//   - an operator whose Forward or Backward returns an error ends the
//     process (log.Fatalf), so inputs are checked before a node is created
//     (Model.checkBatch, lossOp.apply) and the operators never fail.
//
// Training is deterministic for a fixed seed: parallel loops partition their
// outputs, data order is a function of the seed and the step, and checkpoints
// hold everything needed to resume bit for bit.
package train
