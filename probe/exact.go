package probe

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// u128 is an unsigned 128-bit integer. The accumulator keeps its sums as
// fixed-point integers in u128s so that addition is exact and associative:
// sums over shards, added in any order, equal the sum over their
// concatenation bit for bit.
type u128 struct{ hi, lo uint64 }

func (a *u128) add(x uint64) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, x, 0)
	a.hi += c
}

func (a *u128) addU(b u128) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, b.lo, 0)
	a.hi += b.hi + c
}

// float returns a/2^shift as a float64.
func (a u128) float(shift int) float64 {
	return math.Ldexp(float64(a.hi), 64-shift) + math.Ldexp(float64(a.lo), -shift)
}

// MarshalText writes a as 32 hexadecimal digits.
func (a u128) MarshalText() ([]byte, error) {
	return fmt.Appendf(nil, "%016x%016x", a.hi, a.lo), nil
}

// UnmarshalText reads 1 to 32 hexadecimal digits.
func (a *u128) UnmarshalText(b []byte) error {
	s := string(b)
	if len(s) == 0 || len(s) > 32 {
		return fmt.Errorf("bad 128-bit sum %q", s)
	}
	var hi, lo uint64
	var err error
	if len(s) > 16 {
		if hi, err = strconv.ParseUint(s[:len(s)-16], 16, 64); err != nil {
			return fmt.Errorf("bad 128-bit sum %q", s)
		}
		s = s[len(s)-16:]
	}
	if lo, err = strconv.ParseUint(s, 16, 64); err != nil {
		return fmt.Errorf("bad 128-bit sum %q", s)
	}
	a.hi, a.lo = hi, lo
	return nil
}

// Fixed-point scales of the sums: p and ‖q‖² (both at most about 1) are
// kept in units of 2⁻⁶⁰, −log p (below 9999) in units of 2⁻⁴⁴. The
// truncation to these units changes a mean by less than 10⁻¹².
const (
	pShift    = 60
	logpShift = 44
)

func fixP(p float64) uint64        { return uint64(p * (1 << pShift)) }
func fixNegLogP(lp float64) uint64 { return uint64(-lp * (1 << logpShift)) }
