package probe

import "math"

// expTable[j] = 2^(j/64), j = 0 … 63.
var expTable = func() (t [64]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / 64)
	}
	return t
}()

// Constants of expNeg: 64/ln 2, and ln 2/64 split into a high part with
// trailing zero bits (so that n·ln2by64Hi is exact for |n| < 2²⁰) and the
// rest.
const (
	invLn2by64 = 64 / math.Ln2
	ln2by64Hi  = 0x1.62e42fefa0000p-7
	ln2by64Lo  = 0x1.cf79abc9e3b3ap-46
)

// expNeg returns e^x for x ≤ 0 with a relative error below 5·10⁻¹⁶ (a few
// units in the last place; TestExpNeg), in a fraction of math.Exp's time,
// which is the largest single cost of reading plain log-prob lists. It
// follows Tang's table method: x = (64m + j)·ln2/64 + r with
// |r| ≤ ln2/128, so e^x = 2^m · 2^(j/64) · e^r, and e^r comes from its
// degree-5 Taylor polynomial (the first omitted term, r⁶/720, is below
// 3.5·10⁻¹⁷). The accumulator turns every log-prob into p with it.
func expNeg(x float64) float64 {
	if x < -708 { // near or below the smallest normal result
		return math.Exp(x)
	}
	// Round x·64/ln2 to the nearest integer n by adding 1.5·2⁵²: the sum's
	// low mantissa bits are then n in two's complement.
	const shifter = 0x1.8p52
	kd := x*invLn2by64 + shifter
	n := int(int32(math.Float64bits(kd)))
	kd -= shifter
	r := (x - kd*ln2by64Hi) - kd*ln2by64Lo
	j := n & 63
	m := n >> 6 // floor division: n = 64m + j
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120)))))
	return expTable[j] * p * math.Float64frombits(uint64(m+1023)<<52)
}
