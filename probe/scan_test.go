package probe

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestNum compares the scanner's numbers with strconv.ParseFloat, the
// correctly rounded reference: the fast path may be off by a few units in
// the last place (a relative error below 5·10⁻¹⁶, see num).
func TestNum(t *testing.T) {
	cases := []string{"0", "-0", "1", "-1", "0.5", "-0.5", "-2.3841855067985307e-07", "-0.06693444401025772",
		"-9999", "-9999.0", "1e-300", "-1.5E+3", "123456789012345678901234567890", "0.00000000000000000000000001234",
		"-0.0035468526184558868", "-0.00035468526184558868", "1e22", "1e23", "-1e-45", "4.9e-324", "1.7976931348623157e308",
		"0.1", "0.3", "-12.5e-1", "99999999999999999999", "0.000123456789012345678912"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		x := -rng.ExpFloat64() * math.Pow(10, float64(rng.IntN(12)-8))
		cases = append(cases, strconv.FormatFloat(x, 'g', -1, 64), strconv.FormatFloat(float64(float32(x)), 'g', -1, 64),
			strconv.FormatFloat(x, 'f', -1, 64), strconv.FormatFloat(x, 'e', rng.IntN(20), 64))
	}
	var s scanner
	for _, c := range cases {
		want, err := strconv.ParseFloat(c, 64)
		if err != nil && !isRange(err) {
			t.Fatalf("reference cannot parse %q: %v", c, err)
		}
		s.reset([]byte(c))
		got := s.num()
		if s.err != nil || s.i != len(c) {
			t.Errorf("num(%q): error %v, consumed %d of %d bytes", c, s.err, s.i, len(c))
			continue
		}
		if want == got {
			continue
		}
		if rel := math.Abs(got-want) / math.Abs(want); !(rel <= 5e-16) {
			t.Errorf("num(%q) = %v, strconv %v (relative error %.3g)", c, got, want, rel)
		}
	}
}

func isRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// TestNumSpecial checks Python's non-standard literals and malformed numbers.
func TestNumSpecial(t *testing.T) {
	var s scanner
	for in, want := range map[string]float64{"NaN": math.NaN(), "Infinity": math.Inf(1), "-Infinity": math.Inf(-1)} {
		s.reset([]byte(in))
		got := s.num()
		if s.err != nil || !(got == want || (math.IsNaN(want) && math.IsNaN(got))) {
			t.Errorf("num(%q) = %v, %v; want %v", in, got, s.err, want)
		}
	}
	for _, in := range []string{"", "-", "+1", ".5", "1.", "1e", "1e+", "-NaN", "Inf", "--1", "x"} {
		s.reset([]byte(in))
		s.num()
		if s.err == nil {
			t.Errorf("num(%q) accepted", in)
		}
	}
}

func TestDigitRun(t *testing.T) {
	for _, c := range []struct {
		text string
		n    int
		val  uint64
	}{
		{"12345678", 8, 12345678}, {"00000000", 8, 0}, {"99999999", 8, 99999999},
		{"1234567,", 7, 1234567}, {"123]4567", 3, 123}, {"0e-05xyz", 1, 0},
		{",1234567", 0, 0}, {"9/:99999", 1, 9}, {"12 45678", 2, 12}, {"1234567\xff", 7, 1234567},
	} {
		v := uint64(0)
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(c.text[i])
		}
		if n, val := digitRun(v); n != c.n || val != c.val {
			t.Errorf("digitRun(%q) = %d, %d; want %d, %d", c.text, n, val, c.n, c.val)
		}
	}
}

func TestStrings(t *testing.T) {
	var s scanner
	for in, want := range map[string]string{
		`"plain"`:                  "plain",
		`"a\"b"`:                   `a"b`,
		`"\\"`:                     `\`,
		`"tab\tnew\nline\/\b\f\r"`: "tab\tnew\nline/\b\f\r",
		`"\u00e9\u6570"`:           "é数",
		`"\ud83d\ude00"`:           "😀",
		`"\ud83d"`:                 "\uFFFD",
		`"a very long string with an escape \" far from the start"`: `a very long string with an escape " far from the start`,
	} {
		s.reset([]byte(in))
		got := string(s.str(nil))
		if s.err != nil || got != want || s.i != len(in) {
			t.Errorf("str(%s) = %q, %v; want %q", in, got, s.err, want)
		}
	}
	for _, in := range []string{`"open`, `"bad \x escape"`, `"\u12"`, `x`} {
		s.reset([]byte(in))
		s.str(nil)
		if s.err == nil {
			t.Errorf("str(%s) accepted", in)
		}
	}
}

// TestSkip checks that skip walks over every kind of value and rejects
// broken structure.
func TestSkip(t *testing.T) {
	var s scanner
	for _, in := range []string{`{"a":[1,2,{"b":null}],"c":"d\"","e":true,"f":false}`, `[]`, `{}`, ` [ 1 , -2.5e3 ] `, `"x"`} {
		s.reset([]byte(in))
		s.skip()
		s.end()
		if s.err != nil {
			t.Errorf("skip(%s): %v", in, s.err)
		}
	}
	for _, in := range []string{`{"a" 1}`, `[1 2]`, `{"a":1,}`, `[1,]`, `{"a":1} x`, `tru`, `[`, `{"a":`} {
		s.reset([]byte(in))
		s.skip()
		s.end()
		if s.err == nil {
			t.Errorf("skip(%s) accepted", in)
		}
	}
}

// TestFix128 compares fix128 with math/big's exact ⌊x·2^shift⌋.
func TestFix128(t *testing.T) {
	rng := newTestRand(9)
	xs := []float64{0, 1, 0.5, 1e-300, math.Nextafter(1, 2), 12345.678, 4e9, 9999 * 4e9}
	for range 2000 {
		xs = append(xs, rng.Float64()*math.Pow(2, float64(rng.IntN(40))))
	}
	for _, x := range xs {
		for _, shift := range []int{pShift, logpShift} {
			want := new(big.Int)
			new(big.Float).SetMantExp(big.NewFloat(x), shift).Int(want)
			got := fix128(x, shift)
			g := new(big.Int).Lsh(new(big.Int).SetUint64(got.hi), 64)
			g.Add(g, new(big.Int).SetUint64(got.lo))
			if g.Cmp(want) != 0 {
				t.Errorf("fix128(%v, %d) = %v, want %v", x, shift, g, want)
			}
		}
	}
}
