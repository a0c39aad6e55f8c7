// Package par runs loops in parallel on one process-wide pool of persistent
// helper goroutines, for the short loops of a training step (a fraction of
// a millisecond each, a few dozen per step), where starting goroutines or
// waking parked ones would cost a visible share of the work.
//
// It is the only worker pool in capsel: internal/gemm splits large matrix
// products with it and train runs its fused operators' loops with it, so
// the two never compete for the cores with separate pollers.
package par
