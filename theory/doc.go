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
// Beyond the paper the package offers the step-normalised rate Ṙ/‖∇L‖, the
// crossover for any pair of objectives on any sample, the Bayes-posterior
// clean probability, and a numerical check of Lemma E.7.
package theory
