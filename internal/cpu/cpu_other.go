//go:build !(amd64 && gc && !purego)

package cpu

// HasAVX2FMA is false off amd64 (and with the purego build tag): the
// assembly kernels are not built.
const HasAVX2FMA = false
