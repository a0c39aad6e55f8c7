// Package selector turns a probe report and the theory's rates into a
// recommended fine-tuning objective, and exports it to the configs of common
// trainers.
//
// ExportObjective writes one objective for a trainer: capsel's own (TOML),
// the paper's verl fork and the DEFT fork (trainer.objective_trans),
// LLaMA-Factory (use_dft_loss, use_eaft_loss, use_asft_loss) and Axolotl
// (Liger token scaling, use_eaft) through their settings, and TRL and
// ms-swift through their built-in losses or the Python capsel writes
// (templates/hook.py.tmpl): a compute_loss_func or loss plugin for every
// fixed objective, and a stateful hook for auto-theory. Each export says
// whether the trainer computes the objective exactly, how it weighs
// micro-batches under gradient accumulation, and what its code does wrong
// where it does, in plain notes instead of approximating silently. The
// tests run the Python inside a transcription of the trainers' loops
// (testdata/harness) and check it against objectives and train.
package selector
