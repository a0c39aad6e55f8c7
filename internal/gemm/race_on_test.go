//go:build race

package gemm

// raceEnabled: the race detector makes sync.Pool drop entries at random.
const raceEnabled = true
