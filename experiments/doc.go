// Package experiments checks the paper's claims on small models that capsel
// trains itself: the capability continuum (which objective wins where),
// whether the theory predicts the winner, and how the adaptive objectives
// fare against the best fixed one.
//
// Two tasks give a capability dial each (FactTask, RuleTask): the share of
// the fine-tuning targets that a base model's pretraining covers, with a
// held-out test that fine-tuning never sees, and another kind of weak base
// model beside the dial. Fine-tuning data are corrupted at several noise
// rates by three schemes (Replace, Substitute, Indel); SFTData keeps, for
// every example, whether its label was corrupted, the true label and the
// edit, and TokenTruth aligns them token by token (Setup.SFTData and
// Runner.SFTData return the data every run trained on). The Runner trains,
// caches and evaluates the grid (Setup.Conditions) over replicated base
// models; results carry 95 % CIs over replicates, paired differences
// against NLL and −p, verdicts that call a cell a tie unless one objective
// beats every other, and each objective's standing against NLL and −p per
// noise group (Standing). The trainers' objectives beyond f(p) (EAFT, DEFT,
// ASFT) run on the grid beside the paper's, and the theory experiment
// predicts with their rates (theory.Scope).
package experiments
