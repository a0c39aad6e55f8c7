// Package selector turns a probe report and the theory's rates into a
// recommended fine-tuning objective, and exports it to the configs of common
// trainers.
//
// ExportObjective writes one objective as the config lines of capsel's own
// trainer (TOML), the paper's verl fork (trainer.objective_trans), TRL
// (loss_type or a compute_loss_func), LLaMA-Factory (use_dft_loss), ms-swift
// (--enable_dft_loss) and Axolotl (Liger token scaling). Each export says
// whether the trainer computes the objective exactly, and when it cannot,
// says so in plain notes instead of approximating silently.
package selector
