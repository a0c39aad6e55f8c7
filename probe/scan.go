package probe

import (
	"bytes"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
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
