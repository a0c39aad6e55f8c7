package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// scanner is a small pull parser over one JSON value held in memory. The
// readers use it instead of encoding/json so that a line is parsed without
// building maps or interface values: numbers go straight into float64s and
// strings are skipped unless a reader asks for them.
//
// It accepts RFC 8259 JSON plus the non-standard number literals NaN,
// Infinity and -Infinity that Python's json module writes, so that such
// values reach the validation that names them instead of a generic syntax
// error. Raw control characters inside skipped strings are not rejected.
//
// The first error sticks: after it every method is a no-op returning zero
// values, and err holds the message with the byte offset.
type scanner struct {
	b     []byte
	i     int
	err   error
	first bool   // the container just opened has had no element yet
	key   []byte // the member name found by nextKey
}

func (s *scanner) reset(b []byte) {
	s.b, s.i, s.err = b, 0, nil
}

func (s *scanner) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("bad JSON at byte %d: %s", s.i+1, fmt.Sprintf(format, args...))
	}
	s.i = len(s.b)
}

func (s *scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' { // compact JSON: nothing to skip
		return
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) {
	if s.peek() != c {
		s.failAt(fmt.Sprintf("want %q", c))
		return
	}
	s.i++
}

func (s *scanner) failAt(want string) {
	if s.i >= len(s.b) {
		s.fail("%s, found end of input", want)
		return
	}
	s.fail("%s, found %q", want, s.b[s.i])
}

// end checks that only white space follows the value.
func (s *scanner) end() {
	if s.peek() != 0 {
		s.failAt("want end of value")
	}
}

// Objects and arrays are walked with a begin call followed by a loop:
//
//	s.beginObject()
//	for s.nextKey() { key := s.key; …; s.skip() }
//
// nextKey and more consume the commas and the closing bracket.

func (s *scanner) beginObject() bool {
	if s.peek() != '{' {
		s.failAt("want an object")
		return false
	}
	s.i++
	s.first = true
	return true
}

// nextKey advances to the next member and leaves its name in s.key (raw
// bytes between the quotes; keys with escapes are decoded). It returns false
// after the closing brace or on error.
func (s *scanner) nextKey() bool {
	if s.err != nil {
		return false
	}
	c := s.peek()
	if c == '}' {
		s.i++
		s.first = false
		return false
	}
	if !s.first {
		if c != ',' {
			s.failAt("want ',' or '}'")
			return false
		}
		s.i++
		s.ws()
	}
	s.first = false
	k, esc := s.rawString()
	if s.err != nil {
		return false
	}
	if esc {
		k = s.unescape(k, nil)
	}
	s.key = k
	s.expect(':')
	s.first = false
	return s.err == nil
}

func (s *scanner) beginArray() bool {
	if s.peek() != '[' {
		s.failAt("want an array")
		return false
	}
	s.i++
	s.first = true
	return true
}

// more reports whether another array element follows, consuming the comma or
// the closing bracket.
func (s *scanner) more() bool {
	if i := s.i; i < len(s.b) && s.b[i] == ',' && !s.first { // the usual case, inlined
		s.i = i + 1
		return true
	}
	return s.moreSlow()
}

func (s *scanner) moreSlow() bool {
	if s.err != nil {
		return false
	}
	c := s.peek()
	if c == ']' {
		s.i++
		s.first = false
		return false
	}
	if !s.first {
		if c != ',' {
			s.failAt("want ',' or ']'")
			return false
		}
		s.i++
	}
	s.first = false
	return true
}

// null consumes a null literal if one is next.
func (s *scanner) null() bool {
	if i := s.i; i < len(s.b) && s.b[i] > ' ' && s.b[i] != 'n' { // the usual case, inlined
		return false
	}
	return s.nullSlow()
}

func (s *scanner) nullSlow() bool {
	if s.peek() == 'n' {
		s.literal("null")
		return s.err == nil
	}
	return false
}

func (s *scanner) literal(lit string) {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.failAt("want " + lit)
		return
	}
	s.i += len(lit)
}

// rawString consumes a string and returns its raw content (escapes not
// decoded) and whether it contains a backslash. The slice aliases the input.
// Each byte is looked at a constant number of times, with the vectorised
// bytes.IndexByte doing the looking.
func (s *scanner) rawString() ([]byte, bool) {
	if s.peek() != '"' {
		s.failAt("want a string")
		return nil, false
	}
	b := s.b
	i := s.i + 1
	start := i
	// Most strings (tokens) are short: look at their first bytes one by one
	// before calling IndexByte.
	for j := i; j < len(b) && j < i+16; j++ {
		if c := b[j]; c == '"' {
			s.i = j + 1
			return b[start:j], false
		} else if c == '\\' {
			break
		}
	}
	esc := false
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			s.fail("unterminated string")
			return nil, false
		}
		q += i
		// Step over the escapes before q; the quote at q is real unless the
		// last of them escapes it.
		for {
			k := bytes.IndexByte(b[i:q], '\\')
			if k < 0 {
				break
			}
			esc = true
			i += k + 2
			if i > q {
				break
			}
		}
		if i <= q {
			s.i = q + 1
			return b[start:q], esc
		}
	}
}

// str consumes a string and appends its decoded content to dst.
func (s *scanner) str(dst []byte) []byte {
	raw, esc := s.rawString()
	if s.err != nil {
		return dst
	}
	if !esc {
		return append(dst, raw...)
	}
	return s.unescape(raw, dst)
}

// unescape decodes the escapes of a raw string body, appending to dst.
func (s *scanner) unescape(raw, dst []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			s.fail("bad escape")
			return dst
		}
		e := raw[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw[i:])
			if !ok {
				s.fail(`bad \u escape`)
				return dst
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2, ok2 = hex4(raw[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			s.fail("bad escape \\%c", e)
			return dst
		}
	}
	return dst
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// skip consumes one value of any type.
func (s *scanner) skip() {
	switch s.peek() {
	case '{':
		s.beginObject()
		for s.nextKey() {
			s.skip()
		}
	case '[':
		s.beginArray()
		for s.more() {
			s.skip()
		}
	case '"':
		s.rawString()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	default:
		s.num()
	}
}

// boolOrBit reads true, false, 0 or 1.
func (s *scanner) boolOrBit() bool {
	switch s.peek() {
	case 't':
		s.literal("true")
		return true
	case 'f':
		s.literal("false")
		return false
	case '0':
		s.i++
		s.noDigitFollows()
		return false
	case '1':
		s.i++
		s.noDigitFollows()
		return true
	}
	s.failAt("want 0, 1, true or false")
	return false
}

func (s *scanner) noDigitFollows() {
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			s.failAt("want 0, 1, true or false")
		}
	}
}

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
		if i := s.i; i < len(b) && b[i] == 'n' {
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

// span is a byte range of the line being parsed; start < 0 means none.
type span struct{ start, end int32 }

// topObject reads a top-k object {"token": logprob, …}, appending one entry
// per member to flat and the member name's place in the line to spans. The
// names are not copied: an entry's Token stays empty and fillNames makes it
// from the span later, for the few entries that are kept. A name with
// escapes is decoded into the arena at once (and its span is empty).
func (s *scanner) topObject(ar *arena, flat []TopToken, spans []span) ([]TopToken, []span) {
	if s.peek() != '{' {
		s.failAt("want an object")
		return flat, spans
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return flat, spans
	}
	b := s.b
	for {
		if s.peek() != '"' {
			s.failAt("want a string")
			return flat, spans
		}
		j := s.i + 1
		for j < len(b) && b[j] != '"' && b[j] != '\\' {
			j++
		}
		var t TopToken
		sp := span{-1, -1}
		if j+1 < len(b) && b[j] == '"' && b[j+1] == ':' { // the usual "name":
			sp = span{int32(s.i + 1), int32(j)}
			s.i = j + 2
		} else {
			if j < len(b) && b[j] == '"' {
				sp = span{int32(s.i + 1), int32(j)}
				s.i = j + 1
			} else {
				t.Token = ar.str(s)
			}
			if s.peek() != ':' {
				s.failAt("want ':'")
				return flat, spans
			}
			s.i++
		}
		t.LogProb = s.num()
		if s.err != nil {
			return flat, spans
		}
		flat = append(flat, t)
		spans = append(spans, sp)
		c := byte(0)
		if s.i < len(b) {
			c = b[s.i]
		}
		if c != ',' && c != '}' {
			c = s.peek()
		}
		switch c {
		case ',':
			s.i++
		case '}':
			s.i++
			return flat, spans
		default:
			s.failAt("want ',' or '}'")
			return flat, spans
		}
	}
}

// lazyString reads a string: one without escapes is left in the line and
// its span returned (with ""), one with escapes is decoded into the arena.
func (s *scanner) lazyString(ar *arena) (string, span) {
	if s.peek() != '"' {
		s.failAt("want a string")
		return "", span{-1, -1}
	}
	b := s.b
	j := s.i + 1
	for j < len(b) && b[j] != '"' && b[j] != '\\' {
		j++
	}
	if j < len(b) && b[j] == '"' {
		sp := span{int32(s.i + 1), int32(j)}
		s.i = j + 1
		return "", sp
	}
	return ar.str(s), span{-1, -1}
}

// fillNames sets the Token of the entries of list whose names topObject
// left in the line.
func fillNames(list []TopToken, spans []span, line []byte) {
	for j := range list {
		if sp := spans[j]; list[j].Token == "" && sp.start >= 0 {
			list[j].Token = string(line[sp.start:sp.end])
		}
	}
}
