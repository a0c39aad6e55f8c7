package probe

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fuzzFormat feeds one line to a format's parser and the accumulator: it
// must never panic, and a sequence that parses must be either added or
// rejected with a LineError.
func fuzzFormat(f *testing.F, format string, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		src, err := NewReader(strings.NewReader(line), "fuzz", format, Options{})
		if err != nil {
			t.Fatal(err)
		}
		acc := NewAccumulator(Config{SkipBad: true, Reservoir: 3, Bootstrap: 10, NoiseAware: true})
		if err := acc.Consume(src); err != nil {
			t.Fatalf("consume: %v", err)
		}
		if acc.Tokens() > 0 {
			if _, err := acc.Report(); err != nil {
				t.Fatal(err)
			}
		}
		Detect([]byte(line))
	})
}

func FuzzNative(f *testing.F) {
	fuzzFormat(f, Native,
		`{"id":"a","logprobs":[-0.1,null,-2],"mask":[1,0,1],"tokens":["a","b","c"],"top_logprobs":[{"a":-0.1},null,[["x",-1]]]}`,
		`{"logprobs":[-1e-7,-9999,-Infinity],"top_logprobs":[[{"token":"t","logprob":-0.5}],null,{}]}`,
		`{"logprobs":[0.5,NaN]}`, `{"logprobs":[-0.1],"mask":[1,1]}`, `{"logprobs":[-0.1],"meta":{"k":[1,"\u00e9"]}}`,
		`{"logprobs":[-0.1],"top_logprobs":[{"a":-0.1}],"own_answer":{"text":"a","logprobs":[-0.1, 1e-7],"agree":true,"token_ids":[1]}}`)
}

func FuzzVLLMEcho(f *testing.F) {
	fuzzFormat(f, VLLMEcho, fmt.Sprintf(echoLine, `,"prompt_chars":6`), fmt.Sprintf(echoLine, `,"prompt_chars":[0]`),
		`{"choices":[{"logprobs":{"tokens":["a"],"token_logprobs":[null],"top_logprobs":[null],"text_offset":[0]}}],"prompt_chars":0}`)
}

func FuzzVLLMPrompt(f *testing.F) {
	fuzzFormat(f, VLLMPrompt,
		`{"prompt_token_ids":[1,10],"prompt_logprobs":[null,{"10":{"logprob":-0.5,"rank":1,"decoded_token":"A"},"3":{"logprob":-1,"rank":2,"decoded_token":null}}],"response_start":1}`,
		`{"choices":[{"prompt_token_ids":[1,2],"prompt_logprobs":[null,{"2":{"logprob":-9999,"rank":null}}]}],"response_start":[1]}`)
}

func FuzzSGLang(f *testing.F) {
	fuzzFormat(f, SGLang,
		`{"meta_info":{"id":"x","input_token_logprobs":[[null,1,""],[-0.5,2,"é"]],"input_top_logprobs":[null,[[-0.5,2,"é"],[-1,3,null]]]},"prompt_chars":0}`,
		`{"meta_info":{"input_token_logprobs":[[null,1],[-0.5,2]]},"response_start":1}`)
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// FuzzNum: the scanner reads every JSON number (followed by padding, which
// exercises the fast paths) as strconv does, to within the rounding num
// documents, and rejects what is not a number without panicking.
func FuzzNum(f *testing.F) {
	for _, s := range []string{"-0.06693444401025772", "-5.607868194580078", "-9999", "1e-7", "-0.0000001", "0.5", "-1.2345678901234567890"} {
		f.Add(s, 40)
	}
	f.Fuzz(func(t *testing.T, in string, pad int) {
		pad = min(max(pad, 0), 64)
		var s scanner
		s.reset([]byte(in + "," + strings.Repeat("1", pad)))
		got := s.num()
		if !jsonNumber.MatchString(in) {
			return
		}
		want, err := strconv.ParseFloat(in, 64)
		if err != nil && !isRange(err) {
			t.Fatalf("reference cannot parse %q: %v", in, err)
		}
		if s.err != nil || s.i != len(in) {
			t.Fatalf("num(%q): %v, consumed %d of %d", in, s.err, s.i, len(in))
		}
		if got != want && !(math.Abs(got-want) <= 5e-16*math.Abs(want)) && !(math.IsInf(want, 0) && math.IsInf(got, 0)) {
			t.Fatalf("num(%q) = %v, want %v", in, got, want)
		}
	})
}
