// Package theory computes how fast each SFT objective reduces risk under
// gradient flow, following Li et al., "Beyond Log Likelihood" (ICML 2026),
// §6 and Appendix E.
//
// For one context x, let q be the model's next-token distribution, ỹ the
// training label and y* the true label. The risk is R = −E[q_{y*}], the
// negative expected accuracy of sampling. With orthonormal logit features
// (the paper's Assumption E.3; exact when the logits themselves are the free
// parameters), objective f reduces risk at the rate
//
//	Ṙ_f(x) = q_{y*} · s_f(q_ỹ) · ⟨e_{y*} − q, e_ỹ − q⟩        (larger = faster)
//
//	⟨e_{y*} − q, e_ỹ − q⟩ = ‖e_{y*} − q‖²           if ỹ = y* (clean label)
//	                      = ‖q‖² − q_{y*} − q_ỹ      if ỹ ≠ y* (noisy label)
//
// with s_f(p) = −p·f′(p) from package objectives. The rate is linear in the
// one-hot r = e_{y*}:
//
//	Ṙ_f(x; r) = s_f(q_ỹ) · Σ_k r_k · q_k · (δ_{kỹ} − q_k − q_ỹ + ‖q‖²)
//
// so when y* is unknown (real data) r is replaced by its estimate
// r̂ = π·e_ỹ + (1 − π)·u, where π is the probability that the label is clean
// and u the distribution of the true token given a noisy label.
//
// For two objectives the difference Δ = Ṙ₁ − Ṙ₂ splits into a clean part A,
// its mean over the contexts whose label is right, and a noisy part B, its
// mean over those whose label is wrong: Δ = (1 − E)·A + E·B at noise rate E
// (EstimateRate says how a sample of unknown truths is split); the prior-leaning
// objective wins at the model-strong end only when E exceeds the crossover
// E* = |A|/(B − A) (paper §6, Theorem 6.4 / E.8). At the model-weak end
// (uniform q over V tokens) Δ has the closed form
//
//	Δ = (f₂′ − f₁′)(1/V) · [(V − 1)(1 − E) − E] / V³
//
// # Objectives beyond the paper's family
//
// The trainers ship objectives that are not functions of p (package
// objectives, Form). Each keeps NLL's logit direction q − e_ỹ with a
// per-token scale whose gate is detached, so the rate above holds with
// s_f(q_ỹ) replaced by that scale evaluated on the context's q:
//
//	eaft-α              s = (H₂₀(q)/3)^α, H₂₀ the entropy of the softmax of q's 20 largest log-probs (NLL's s = 1 times the gate)
//	eaft-axolotl-α-k    s = H_k(q)^α, over min(k, V) tokens, with Axolotl's log(π + 1e-10)
//	deft                s = c·p^c/(c + 1e-6), c = Σ_k q_k² (p = q_ỹ)
//	deft-cayley         s = a·p^a/(a + 1e-8), a from p and the batch's mean p, for which the sample's mean q_ỹ stands
//	asft-α              s = p (DFT's), plus an anchor term α·(q − r) that is zero at r = q
//
// The paper's analysis does not cover them (Scope says so per objective):
//
//   - Its Theorem 6.4 is stated for s as a function of q_ỹ (conditions on
//     f₂′ − f₁′), so its conclusions at the two ends do not transfer to a
//     gate read from the rest of q; the per-context formula does, and that
//     is what this package computes.
//   - deft-cayley's gate reads the batch, which the per-context theory has
//     no notion of: the estimate takes the sample as the batch.
//   - asft's KL anchor to the frozen model it starts from has gradient
//     α·(q − r), zero at the start (r = q), the only point the paper's
//     first-order analysis looks at. Its rate is therefore DFT's, the same
//     as −p's, for every α, and it ranks level with them (Rank keeps the
//     given order among ties). The anchor acts only once the model has
//     moved away from its reference, which this analysis cannot see, so the
//     theory cannot say whether ASFT beats or loses to −p.
//
// With a top-k context (the remainder bucket), EAFT's gate is exact from a
// top list of at least k tokens and refused from a shorter one; DEFT's Σq²
// spreads the remainder over the unlisted tokens like ‖q‖², and lumps it
// when V is unknown.
//
// Beyond the paper the package offers the step-normalised rate Ṙ/‖∇L‖, the
// crossover for any pair of objectives on any sample, the Bayes-posterior
// clean probability, and a numerical check of Lemma E.7.
package theory
