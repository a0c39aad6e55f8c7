// Package objectives defines the token-level supervised fine-tuning objectives
// that capsel compares: the paper's, each a function f of the model's
// probability p of the target token, minimised over the response tokens, and
// those the trainers ship that read more than p (see below).
//
// The family and its notation follow Li et al., "Beyond Log Likelihood:
// Probability-Based Objectives for Supervised Fine-Tuning across the Model
// Capability Continuum" (ICML 2026), §3 and Lemma 3.1. For every objective
// that is a function of p the package exposes three functions of p:
//
//	f(p)                 the per-token loss
//	s_f(p) = −p·f′(p)     the per-token scale of NLL's logit gradient
//	W_f(p) = s_f(p)·(1 − p) the logit-gradient weight of the correct token
//
// Because ∂f(p_y)/∂z = s_f(p_y)·(softmax(z) − e_y), every such objective pushes
// the logits in the same direction as NLL; only the per-token scalar s_f
// changes.
// The trainer's fused loss operator, the theory package and the command line
// all use the definitions here, so there is exactly one of each.
//
// Objectives are named by spec strings. The paper's own keys parse unchanged
// (original, logp, p, GeneralFamily-α, OnlyTopP-q, OnlyBottomP-q,
// OnlyTopLogP-q, OnlyBottomLogP-q), next to nll, dft, log1mp, focal-γ,
// blend-λ, auto and auto-theory. See Parse and Specs.
//
// The package also holds the token-level objectives that the trainers ship
// and that are not functions of p alone (see Form and gated.go): EAFT as
// LLaMA-Factory and as Axolotl compute it (eaft-α, eaft-axolotl-α-k), the
// DEFT fork's DEFT and Cayley_Trans (deft, deft-cayley) and ASFT (asft-α).
// Their gates read the whole next-token distribution, the batch's mean p or
// a reference model, so f(p), s(p) and W(p) are NaN for them and
// BatchDist, not Batch, evaluates them; Batch keeps the p-only fast path.
//
// All computations start from log p, so that p → 0 (log p → −∞) and p → 1
// (1 − p computed as −expm1(log p)) keep full precision.
package objectives
