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
// plugged into spago's autograd. spago provides the parameters, the graph and
// the optimizer framework; the objective enters through objectives.Batch,
// whose per-token scales s_f(p) multiply NLL's logit gradient (Li et al.,
// ICML 2026, Lemma 3.1).
//
// Training is deterministic for a fixed seed: parallel loops partition their
// outputs, data order is a function of the seed and the step, and checkpoints
// hold everything needed to resume bit for bit.
package train
