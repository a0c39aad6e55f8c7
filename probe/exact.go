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

// Fixed-point scales of the sums: sums of p and of Σq² are kept in units of
// 2⁻⁶⁰, sums of −log p (each below 9999) in units of 2⁻⁴⁴. Each sequence's
// float sum is converted once (fix128) and the conversions are added as
// integers, so a total depends only on the sequences in it, never on how
// they were split or ordered; the truncation moves a mean by less than
// 10⁻¹².
const (
	pShift    = 60
	logpShift = 44
)

// fix128 returns ⌊x·2^shift⌋ for 0 ≤ x < 2^(127−shift) as a u128. The
// scaling by a power of two is exact, and a float64 of at most 53
// significant bits splits exactly into two 64-bit words.
func fix128(x float64, shift int) u128 {
	y := math.Ldexp(x, shift)
	if !(y >= 0) { // negative zero or NaN: nothing
		return u128{}
	}
	hi := math.Floor(math.Ldexp(y, -64))
	lo := y - math.Ldexp(hi, 64)
	return u128{hi: uint64(hi), lo: uint64(lo)}
}
