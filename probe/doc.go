// Package probe measures how much a base model already believes its
// fine-tuning targets and places it on the capability continuum of Li et
// al., "Beyond Log Likelihood" (ICML 2026).
//
// Its input is the model's log-probability of every target token of
// held-out SFT data (teacher forcing, response tokens only), from any
// Source: the native JSONL format; replies saved from vLLM's
// /v1/completions with echo, vLLM's prompt_logprobs, SGLang's /generate and
// TGI's /generate, each with "response_start", the token index where the
// response begins; live vLLM, SGLang or TGI servers (Server), which
// tokenize prompt and response apart and score from the prompt's length
// on; or the project's own checkpoints (package ckprobe). The boundary is
// always a token index: printed token texts do not add up to the prompt's
// characters once BOS tokens, SentencePiece or split multi-byte characters
// are involved. Readers stream in memory bounded by the longest line.
//
// An Accumulator turns sequences into a Report. Its headline is the paper's
// capability statistic (Eq. 5), the micro-average of p over all N scored
// tokens,
//
//	mean_p = (1/N) Σ_i Σ_j p(ỹ_ij | ỹ_i,<j, x_i)
//
// with a percentile bootstrap CI that resamples whole sequences, and the
// placement: a region (model-weak, model-intermediate, model-strong) from
// cut points between the paper's anchor clusters, and the nearest of the
// paper's twelve measurements. Alongside: mean log p, quantiles and a
// histogram of p, the shares of tokens with p > 0.55 and p ≥ 0.2, top-1
// agreement and ‖q‖² when top-k lists are present, per-sequence spread, and
// a seeded sample of token records that converts to theory contexts.
//
// Every statistic merges exactly: sums are kept as 128-bit fixed-point
// integers, quantiles come from a fixed-bin histogram, and the reservoir is
// a bottom-k sample under a hash of (sequence key, position, seed). So a
// report over shards equals the report over their concatenation.
//
// The package never logs, prints or exits; progress goes to a callback.
// Package probetest holds stand-ins of the servers for tests and benchmarks.
package probe
