package probe

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// integer reads a JSON number that must be a non-negative integer below 2⁵³.
func (s *scanner) integer() int {
	// Fast path: a short run of digits ending the number.
	b, i := s.b, s.i
	if i < len(b) && b[i] >= '0' && b[i] <= '9' && b[i] != '0' {
		n := 0
		for j := i; j < len(b) && j-i < 15; j++ {
			c := b[j]
			if c-'0' < 10 {
				n = n*10 + int(c-'0')
				continue
			}
			if c == '.' || c == 'e' || c == 'E' {
				break // not a plain integer: take the general path
			}
			s.i = j
			return n
		}
	}
	x := s.num()
	if s.err == nil && (x < 0 || x != math.Trunc(x) || x >= 1<<53) {
		s.fail("want a non-negative integer, found %v", x)
		return 0
	}
	return int(x)
}

// signedInt reads a JSON number that must be an integer of magnitude below
// 2⁵³ (SGLang writes -1 for text offsets it does not know).
func (s *scanner) signedInt() int {
	if i := s.i; i < len(s.b) && s.b[i] != '-' {
		return s.integer()
	}
	x := s.num()
	if s.err == nil && (x != math.Trunc(x) || math.Abs(x) >= 1<<53) {
		s.fail("want an integer, found %v", x)
		return 0
	}
	return int(x)
}

// pow10 holds the powers of ten that float64 represents exactly, negPow10
// their inverses rounded to nearest (a multiplication is several times
// cheaper than a division).
var (
	pow10 = [23]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
		1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
	negPow10 = [23]float64{1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10,
		1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22}
)

// num reads a number. Up to 19 significant digits are gathered into an
// integer m, eight at a time (see digitRun), and the value is
// float64(m)·10^e with e's power (or its rounded inverse) from a table.
// When m < 2⁵³ and |e| ≤ 22 both operands are exact and one operation gives
// the correctly rounded value (Clinger's fast path); longer mantissas (17 to
// 19 digits) take up to three roundings, within two units in the last place
// (a relative error below 5·10⁻¹⁶, far below anything a log-prob means).
// Digits past the 19th are dropped (a relative change below 10⁻¹⁸).
//
// num itself handles the form of almost every log-prob, -?D+.D+ with no
// exponent, in straight-line code for -?D.D{1,18} when 32 bytes of the line
// remain (up to three 8-byte digit runs, the same m and exponent as the
// general way), and leaves the rest to numSlow: exponents, integers,
// Python's NaN and Infinity, and errors.
func (s *scanner) num() float64 {
	s.ws()
	b, i := s.b, s.i
	if len(b)-i >= 32 {
		// -?D.D{1,18}, the form of most log-probs (see above).
		p := b[i : i+32 : i+32]
		k := 0
		neg := p[0] == '-'
		if neg {
			k = 1
		}
		if c0 := p[k] - '0'; c0 < 10 && p[k+1] == '.' { // k + 1 + 8 + 8 + 8 + 1 < 32 below
			k += 2
			n, m := digitRun(binary.LittleEndian.Uint64(p[k:]))
			m += uint64(c0) * pow10u[n]
			fd := n
			k += n
			if n == 8 {
				n, d := digitRun(binary.LittleEndian.Uint64(p[k:]))
				m = m*pow10u[n] + d
				fd += n
				k += n
				if n == 8 {
					n, d = digitRun(binary.LittleEndian.Uint64(p[k:]))
					m = m*pow10u[n] + d
					fd += n
					k += n
				}
			}
			if fd > 0 && fd <= 18 && p[k] != 'e' && p[k] != 'E' && p[k]-'0' >= 10 {
				var x float64
				if m < 1<<53 {
					x = float64(m) / pow10[fd] // exact operands: correctly rounded
				} else {
					x = float64(m) * negPow10[fd]
				}
				if neg {
					x = -x
				}
				s.i = i + k
				return x
			}
		}
	}
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	if i+8 > len(b) {
		return s.numSlow()
	}
	var n int
	var m uint64
	if c := b[i] - '0'; c < 10 && b[i+1] == '.' { // one integer digit, as in -0.51 or -3.2
		n, m = 1, uint64(c)
	} else {
		n, m = digitRun(binary.LittleEndian.Uint64(b[i:]))
		if n == 0 || n == 8 || (n > 1 && b[i] == '0') || b[i+n] != '.' {
			return s.numSlow()
		}
	}
	nd := n // significant digits in m
	if m == 0 {
		nd = 0
	}
	j := i + n + 1
	fracStart := j
	if m == 0 {
		for j < len(b) && b[j] == '0' {
			j++
		}
	}
	exp := fracStart - j
	for nd <= 11 && j+8 <= len(b) {
		k, v := digitRun(binary.LittleEndian.Uint64(b[j:]))
		m = m*pow10u[k] + v
		nd += k
		exp -= k
		j += k
		if k < 8 {
			break
		}
	}
	for j < len(b) && b[j]-'0' < 10 {
		if nd < 19 {
			m = m*10 + uint64(b[j]-'0')
			nd++
			exp--
		}
		j++
	}
	if j == fracStart || exp < -22 || (j < len(b) && (b[j] == 'e' || b[j] == 'E')) {
		return s.numSlow()
	}
	var x float64
	if m < 1<<53 {
		x = float64(m) / pow10[-exp] // exact operands: correctly rounded
	} else {
		x = float64(m) * negPow10[-exp]
	}
	if neg {
		x = -x
	}
	s.i = j
	return x
}

// floats reads a JSON array of numbers and nulls, appending the numbers to
// dst, 0 for a null, and calling onNull with the index (within the array)
// of each null. It is the array loop of more, null and num with their
// common cases side by side.
func (s *scanner) floats(dst []float64, onNull func(int)) []float64 {
	if !s.beginArray() {
		return dst
	}
	s.first = false
	if s.peek() == ']' {
		s.i++
		return dst
	}
	b := s.b
	for k := 0; ; k++ {
		// A null may follow white space, as in Python's json.dumps, which
		// writes ", " between elements.
		if i := s.i; i < len(b) && (b[i] == 'n' || b[i] <= ' ' && s.peek() == 'n') {
			s.literal("null")
			dst = append(dst, 0)
			onNull(k)
		} else {
			dst = append(dst, s.num())
		}
		if s.err != nil {
			return dst
		}
		i := s.i
		if i < len(b) && b[i] == ',' {
			s.i = i + 1
			continue
		}
		if s.peek() == ']' {
			s.i++
			return dst
		}
		if s.peek() == ',' {
			s.i++
			continue
		}
		s.failAt("want ',' or ']'")
		return dst
	}
}

// numSlow reads any number, rounding as num describes; numbers with a
// decimal exponent beyond −44 … 22 go through strconv.ParseFloat.
func (s *scanner) numSlow() float64 {
	b, i := s.b, s.i
	start := i
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	if i >= len(b) {
		s.failAt("want a number")
		return 0
	}
	var m uint64
	nd, exp := 0, 0 // significant digits in m; decimal exponent
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		for i < len(b) && b[i]-'0' < 10 {
			if nd < 19 {
				m = m*10 + uint64(b[i]-'0')
				nd++
			} else {
				exp++
			}
			i++
		}
	case c == 'N' || c == 'I':
		return s.special(neg)
	default:
		s.failAt("want a number")
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		fracStart := i
		if m == 0 {
			for i < len(b) && b[i] == '0' {
				i++
			}
			exp -= i - fracStart
		}
		for nd <= 11 && i+8 <= len(b) {
			n, v := digitRun(binary.LittleEndian.Uint64(b[i:]))
			m = m*pow10u[n] + v
			nd += n
			exp -= n
			i += n
			if n < 8 {
				break
			}
		}
		for i < len(b) && b[i]-'0' < 10 {
			if nd < 19 {
				m = m*10 + uint64(b[i]-'0')
				nd++
				exp--
			}
			i++
		}
		if i == fracStart {
			s.i = i
			s.failAt("want a digit after '.'")
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		expStart := i
		e := 0
		for i < len(b) && b[i]-'0' < 10 {
			if e < 100000 {
				e = e*10 + int(b[i]-'0')
			}
			i++
		}
		if i == expStart {
			s.i = i
			s.failAt("want a digit in the exponent")
			return 0
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	s.i = i
	var x float64
	switch {
	case m == 0:
		x = 0
	case exp >= 0 && exp <= 22:
		x = float64(m) * pow10[exp]
	case exp < 0 && exp >= -22 && m < 1<<53:
		x = float64(m) / pow10[-exp] // exact operands: correctly rounded
	case exp < 0 && exp >= -22:
		x = float64(m) * negPow10[-exp]
	case exp < -22 && exp >= -44:
		x = float64(m) * 1e-22 * negPow10[-exp-22]
	default:
		v, err := strconv.ParseFloat(unsafe.String(&b[start], i-start), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			s.i = start
			s.failAt("want a number")
			return 0
		}
		return v
	}
	if neg {
		x = -x
	}
	return x
}

// pow10u holds 10^n for n = 0 … 8.
var pow10u = [9]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// digitRun returns how many of the 8 bytes of v (little-endian: the first
// byte of the text is the lowest) are ASCII digits before the first
// non-digit, and the value of those digits, without a branch per byte.
//
// A byte is a digit when its high nibble is 3 and adding 6 does not carry
// its low nibble past 9; x below has a zero byte exactly for digits, so the
// run is the count of trailing zero bytes of x. Subtracting '0' from every
// byte cannot disturb the run (a borrow only climbs towards bytes after
// it); shifting the run to the top bytes leaves zeros in front of it, which
// digits8 reads as leading zeros.
func digitRun(v uint64) (int, uint64) {
	const hi = 0xF0F0F0F0F0F0F0F0
	x := ((v & hi) | ((v+0x0606060606060606)&hi)>>4) ^ 0x3333333333333333
	n := bits.TrailingZeros64(x) >> 3 // 8 when x = 0
	if n == 0 {
		return 0, 0
	}
	return n, digits8((v - 0x3030303030303030) << (64 - 8*uint(n)))
}

// digits8 converts 8 digit values (0 … 9, not ASCII), the first (most
// significant) in the lowest byte of v, to their value by merging
// neighbours in three steps: bytes into 2-digit lanes of 16 bits, those
// into 4-digit lanes of 32 bits, those into one 8-digit number. No lane
// overflows: 99 < 2⁸, 9999 < 2¹⁶, 99999999 < 2³².
func digits8(v uint64) uint64 {
	v = (v*10 + v>>8) & 0x00FF00FF00FF00FF
	v = (v*100 + v>>16) & 0x0000FFFF0000FFFF
	return (v*10000 + v>>32) & 0xFFFFFFFF
}

// special reads NaN, Infinity or -Infinity (Python's json extensions).
func (s *scanner) special(neg bool) float64 {
	s.i = s.i + btoi(neg)
	switch {
	case !neg && hasPrefix(s.b[s.i:], "NaN"):
		s.i += 3
		return math.NaN()
	case hasPrefix(s.b[s.i:], "Infinity"):
		s.i += 8
		if neg {
			return math.Inf(-1)
		}
		return math.Inf(1)
	}
	s.failAt("want a number")
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}
