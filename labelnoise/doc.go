// Package labelnoise tells a base model that does not know its fine-tuning
// targets from targets that are wrong.
//
// The paper's capability statistic, the mean p of the targets (Li et al.,
// "Beyond Log Likelihood", ICML 2026, Eq. 5), falls both when the model does
// not know the answers and when the labels are wrong. What tells the two
// apart is the model's confidence in its own answer: a label that disagrees
// with an answer the model gives as confidently as the answers it gets right
// is likely wrong; one that disagrees with an answer the model is unsure of
// is likely unknown to it.
//
// Per example the analysis needs the label path under teacher forcing (p of
// each label token and the probability of the model's most likely token
// there) and, where the model can generate, its own greedy answer with the
// probability of each of its tokens. Where only log-prob files exist, the own
// answer is approximated from the label path: up to the first position whose
// label token is not the model's first choice the label is the model's own
// answer, and at that position the model's first choice is (Method
// TeacherForced).
//
// The estimate, in four steps:
//
//  1. Confidence. The confidence of an answer is the smallest probability
//     of its tokens (the end token included): an answer is only as sure as
//     its least sure step.
//  2. The cut. The examples whose label the model reproduces exactly
//     (agreeing examples) show how confident the model is in what it knows;
//     the cut is their 5th percentile of confidence. A disagreeing example
//     at or above the cut is flagged: the model knows an answer and the
//     label says something else. With fewer than MinAgree agreeing
//     examples the model knows too little to judge its labels, and the
//     example-level noise rate is undefined.
//  3. False positives. Prompts the model cannot know (a null set: the
//     prompts with their letters and digits shuffled) show how often an
//     unknown example reaches the cut by chance: α, the share of null
//     answers at or above it. The flagged count is corrected for α times the
//     estimated number of unknown examples. A null set that reaches the cut
//     nearly as often as the real examples (α above NullInformative times
//     their share at or above the cut) is not a null set: its prompts are
//     answerable, as every word is under a letter-substitution rule. It is
//     reported, not used.
//  4. Tokens. Examples that are neither agreeing nor flagged may still be
//     known in part (long responses are never reproduced whole). Their
//     tokens whose first choice is at least as likely as that of the label
//     tokens the model agrees with (5th percentile, and at least
//     TokenFloor, the theory's 0.55) are its confident tokens. When at least
//     TrustShare of these examples agree with the model on most of their
//     confident tokens, and the labels contradict fewer than half of them,
//     the model is trusted there: the token noise rate is the share of
//     confident tokens the labels contradict, and those tokens count with
//     the model's first choice in the capability. Otherwise the model
//     contradicts its labels too often for the disagreement to be noise.
//
// The capability Ĉ is the mean p of the targets as they would be with the
// flagged labels replaced by the model's answers and the contradicted
// confident tokens by its first choices: the paper's statistic on the data
// with the noise the model can see taken out. The noise rate Ê is the share
// of examples, among those the model knows, whose label is wrong; the known
// share is the share of examples the model knows. Their 95 % intervals are
// percentile bootstrap intervals over examples, with the cuts held at their
// values on the whole sample.
package labelnoise
