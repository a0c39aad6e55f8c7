// Package choose makes the class-level call of capsel: which objective
// (NLL, or the anchored prior-leaning ASFT with −p or −log p·1{p ≥ 0.2} as
// its fallback) the noise-aware measurement of a base model on its
// fine-tuning data (package labelnoise) calls for, and why. The
// selector's recommendation and the trainer's auto both make it here, so
// they cannot disagree.
package choose
