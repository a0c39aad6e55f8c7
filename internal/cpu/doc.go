// Package cpu reports the x86-64 vector features that capsel's assembly
// kernels (internal/gemm, internal/simd) need.
package cpu
