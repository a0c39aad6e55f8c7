// Package experiments reproduces the paper's capability continuum on small
// models that capsel trains itself, and tests whether the theory predicts
// which objective wins.
package experiments
