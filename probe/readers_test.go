package probe

import (
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

// readAll reads every sequence of one input in the given format, copying
// what the source may reuse.
func readAll(t *testing.T, format, text string, opt Options) ([]Sequence, error) {
	t.Helper()
	src, err := NewReader(strings.NewReader(text), "in.jsonl", format, opt)
	if err != nil {
		t.Fatal(err)
	}
	var out []Sequence
	for {
		seq, err := src.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if seq.Names != nil {
			for i := range seq.LogProbs {
				seq.Names(i)
			}
			seq.Names = nil
		}
		seq.LogProbs = append([]float64(nil), seq.LogProbs...)
		seq.Mask = append([]bool(nil), seq.Mask...)
		seq.Tokens = append([]string(nil), seq.Tokens...)
		if seq.Top != nil {
			top := make([][]TopToken, len(seq.Top))
			for i, l := range seq.Top {
				top[i] = append([]TopToken(nil), l...)
			}
			seq.Top = top
		}
		out = append(out, seq)
	}
}

func scored(seq Sequence) []int {
	var out []int
	for i := range seq.LogProbs {
		if seq.Mask == nil || seq.Mask[i] {
			out = append(out, i)
		}
	}
	return out
}

// echoLine is a vLLM /v1/completions echo response for the prompt "Q: é?\n"
// (6 characters, 7 bytes) and the response " 42", requested with
// max_tokens 1 (the generated "!" must not count). The tokens and their
// character offsets: "" 0 (BOS), "Q" 0, ":" 1, " é" 2, "?\n" 4, " 4" 6, "2" 8,
// "!" 9.
const echoLine = `{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"Q: é?\n 42!","logprobs":{` +
	`"tokens":["","Q",":"," é","?\n"," 4","2","!"],` +
	`"token_logprobs":[null,-1.0,-2.0,-0.5,-0.3,-0.2,-9999,-0.05],` +
	`"top_logprobs":[null,{"Q":-1.0},{":":-2.0},{" é":-0.5},{"?\n":-0.3},{" 4":-0.2," 5":-2.1},{"2":-9999.0,"3":-0.01},{"!":-0.05}],` +
	`"text_offset":[0,0,1,2,4,6,8,9]},"finish_reason":"length"}],` +
	`"usage":{"prompt_tokens":7,"total_tokens":8,"completion_tokens":1}%s}`

func TestVLLMEcho(t *testing.T) {
	seqs, err := readAll(t, VLLMEcho, fmt.Sprintf(echoLine, `,"prompt_chars":6`), Options{})
	if err != nil || len(seqs) != 1 {
		t.Fatal(err, seqs)
	}
	s := seqs[0]
	// prompt_chars counts characters: offsets 6 and 8 are ≥ 6; the token at
	// offset 9 is the generated one (past usage.prompt_tokens = 7).
	if got := fmt.Sprint(scored(s)); got != "[5 6]" || s.ID != "cmpl-1" || s.Tokens[5] != " 4" {
		t.Fatalf("scored %s, id %q, tokens %q", got, s.ID, s.Tokens)
	}
	if len(s.Top[5]) != 2 || s.Top[5][1] != (TopToken{" 5", -2.1}) || s.Top[0] != nil {
		t.Errorf("top %v", s.Top)
	}
	acc := NewAccumulator(Config{})
	if err := acc.Add(s); err != nil {
		t.Fatal(err)
	}
	rep, _ := acc.Report()
	// p = e^−0.2 and 0 (−9999); the p = 0 token loses to "3" at position 6.
	if !near(rep.MeanP, math.Exp(-0.2)/2, 1e-15) || rep.ZeroPTokens != 1 || *rep.Top1Agreement != 0.5 ||
		!near(*rep.MeanQSqNorm, (math.Exp(-0.4)+math.Exp(-4.2)+math.Exp(-0.02))/2, 1e-15) {
		t.Errorf("report mean_p %v zero %d top1 %v q² %v", rep.MeanP, rep.ZeroPTokens, *rep.Top1Agreement, *rep.MeanQSqNorm)
	}
	// Counting bytes instead (7) falls inside " 4": an error, not a token
	// dropped from the response.
	if _, err := readAll(t, VLLMEcho, fmt.Sprintf(echoLine, `,"prompt_chars":7`), Options{}); err == nil || !strings.Contains(err.Error(), "token 5 (\" 4\", characters 6–8) spans the prompt/response boundary at character 7") {
		t.Errorf("prompt_chars 7: %v", err)
	}
	// response_start, a token index, says the same as prompt_chars 6.
	seqs, err = readAll(t, VLLMEcho, fmt.Sprintf(echoLine, `,"response_start":5`), Options{})
	if got := fmt.Sprint(scored(seqs[0])); err != nil || got != "[5 6]" {
		t.Errorf("response_start 5: scored %s, %v", got, err)
	}
	// With "logprobs": 0 every list holds the target alone: no top-k.
	one := strings.NewReplacer(`," 5":-2.1`, "", `,"3":-0.01`, "").Replace(fmt.Sprintf(echoLine, `,"prompt_chars":6`))
	if seqs, err := readAll(t, VLLMEcho, one, Options{}); err != nil || seqs[0].Top != nil {
		t.Errorf("logprobs 0: %v, top %v", err, seqs[0].Top)
	}
	// Without prompt_chars: an error, or every echoed token with --score-all.
	if _, err := readAll(t, VLLMEcho, fmt.Sprintf(echoLine, ""), Options{}); err == nil || !strings.Contains(err.Error(), "in.jsonl:1: no \"response_start\"") {
		t.Errorf("missing prompt_chars: %v", err)
	}
	seqs, err = readAll(t, VLLMEcho, fmt.Sprintf(echoLine, ""), Options{ScoreAll: true})
	if got := fmt.Sprint(scored(seqs[0])); err != nil || got != "[1 2 3 4 5 6]" {
		t.Errorf("--score-all: scored %s, %v", got, err)
	}
}

func TestVLLMEchoBad(t *testing.T) {
	for name, c := range map[string]struct{ line, want string }{
		"lengths":           {strings.Replace(fmt.Sprintf(echoLine, `,"prompt_chars":6`), `"text_offset":[0,0,1,`, `"text_offset":[0,1,`, 1), "lengths disagree"},
		"null in response":  {strings.Replace(fmt.Sprintf(echoLine, `,"prompt_chars":6`), `-0.2,-9999`, `null,-9999`, 1), "is in the response but its log-prob is null"},
		"no logprobs":       {`{"choices":[{"text":"x","logprobs":null}],"prompt_chars":0}`, `has no "logprobs"`},
		"no choices":        {`{"id":"x","prompt_chars":0}`, `no "choices"`},
		"truncated":         {fmt.Sprintf(echoLine, `,"prompt_chars":6`)[:200], "bad JSON"},
		"prompt tokens":     {strings.Replace(fmt.Sprintf(echoLine, `,"prompt_chars":6`), `"prompt_tokens":7`, `"prompt_tokens":70`, 1), "usage.prompt_tokens"},
		"chars list":        {fmt.Sprintf(echoLine, `,"prompt_chars":[1,2]`), "2 response starts for 1 sequences"},
		"both":              {fmt.Sprintf(echoLine, `,"prompt_chars":6,"response_start":5`), "not both"},
		"no usage":          {strings.Replace(fmt.Sprintf(echoLine, `,"response_start":5`), `"usage":{"prompt_tokens":7,"total_tokens":8,"completion_tokens":1}`, `"usage":null`, 1), "no \"usage.prompt_tokens\""},
		"start past prompt": {fmt.Sprintf(echoLine, `,"response_start":8`), "response_start 8 is past the prompt's 7 tokens"},
	} {
		if _, err := readAll(t, VLLMEcho, c.line, Options{}); err == nil || !strings.Contains(err.Error(), c.want) || !IsLineError(err) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

// TestVLLMEchoChoices: a batched request saved as one line gives one
// sequence per choice, with response_start per choice and token-id keys;
// the generated token of each choice is left out.
func TestVLLMEchoChoices(t *testing.T) {
	line := `{"id":"cmpl-2","choices":[` +
		`{"index":0,"logprobs":{"tokens":["token_id:1","token_id:7","token_id:3"],"token_logprobs":[null,-0.1,-0.2],"top_logprobs":[null,{"token_id:7":-0.1,"token_id:8":-3},{"token_id:3":-0.2}],"text_offset":[0,10,20]}},` +
		`{"index":1,"logprobs":{"tokens":["token_id:1","token_id:9","token_id:5","token_id:4"],"token_logprobs":[null,-0.7,-0.4,-0.3],"top_logprobs":null,"text_offset":[0,10,20,30]}}],` +
		`"usage":{"prompt_tokens":5,"completion_tokens":2},"response_start":[1,2]}`
	seqs, err := readAll(t, VLLMEcho, line, Options{})
	if err != nil || len(seqs) != 2 {
		t.Fatal(err, len(seqs))
	}
	if seqs[0].ID != "cmpl-2#0" || fmt.Sprint(scored(seqs[0])) != "[1]" || seqs[0].Top[1][1].Token != "token_id:8" {
		t.Errorf("choice 0: %+v", seqs[0])
	}
	if seqs[1].ID != "cmpl-2#1" || fmt.Sprint(scored(seqs[1])) != "[2]" || seqs[1].Top != nil {
		t.Errorf("choice 1: %+v", seqs[1])
	}
	// Without completion_tokens the generated tokens cannot be told apart.
	if _, err := readAll(t, VLLMEcho, strings.Replace(line, `,"completion_tokens":2`, "", 1), Options{}); err == nil || !strings.Contains(err.Error(), "does not split evenly") {
		t.Errorf("no completion_tokens: %v", err)
	}
}

func TestVLLMPrompt(t *testing.T) {
	line := `{"prompt_token_ids":[1,10,11,12],"prompt_logprobs":[null,` +
		`{"10":{"logprob":-0.5,"rank":1,"decoded_token":"A"},"20":{"logprob":-1.5,"rank":2,"decoded_token":"Z"}},` +
		`{"30":{"logprob":-0.2,"rank":1,"decoded_token":"C"},"11":{"logprob":-3,"rank":4,"decoded_token":"B"}},` +
		`{"12":{"logprob":-1.2,"rank":2,"decoded_token":"D"}}],"response_start":2}`
	seqs, err := readAll(t, VLLMPrompt, line, Options{})
	if err != nil || len(seqs) != 1 {
		t.Fatal(err)
	}
	s := seqs[0]
	// Targets are found by id; the target leads its list; a lone target of
	// rank 2 (prompt_logprobs=0) is no top-k list.
	if fmt.Sprint(scored(s)) != "[2 3]" || s.LogProbs[2] != -3 || s.LogProbs[3] != -1.2 || s.Tokens[2] != "B" ||
		s.Top[2][0] != (TopToken{"B", -3}) || s.Top[2][1] != (TopToken{"C", -0.2}) || s.Top[3] != nil {
		t.Errorf("sequence %+v", s)
	}
	// The same in a /v1/completions response with return_token_ids.
	resp := `{"id":"cmpl-3","choices":[{"index":0,"text":"x","logprobs":null,"prompt_token_ids":[1,10],` +
		`"prompt_logprobs":[null,{"10":{"logprob":-0.5,"rank":1,"decoded_token":"A"}}]}],"response_start":1}`
	if f, _ := Detect([]byte(resp)); f != VLLMPrompt {
		t.Errorf("detected %q", f)
	}
	seqs, err = readAll(t, VLLMPrompt, resp, Options{})
	if err != nil || len(seqs) != 1 || seqs[0].LogProbs[1] != -0.5 || len(seqs[0].Top[1]) != 1 {
		t.Errorf("choices form: %v %+v", err, seqs)
	}
	for name, c := range map[string]struct{ line, want string }{
		"no ids":     {`{"prompt_logprobs":[null,{"10":{"logprob":-0.5}}],"response_start":1}`, "prompt_token_ids"},
		"missing":    {`{"prompt_token_ids":[1,10],"prompt_logprobs":[null,{"11":{"logprob":-0.5}}],"response_start":1}`, "not in its prompt_logprobs"},
		"bad key":    {`{"prompt_token_ids":[1,10],"prompt_logprobs":[null,{"ten":{"logprob":-0.5}}],"response_start":1}`, "token ids"},
		"no start":   {`{"prompt_token_ids":[1,10],"prompt_logprobs":[null,{"10":{"logprob":-0.5}}]}`, "response_start"},
		"chars":      {`{"prompt_token_ids":[1,10],"prompt_logprobs":[null,{"10":{"logprob":-0.5}}],"prompt_chars":1}`, "response_start"},
		"lengths":    {`{"prompt_token_ids":[1],"prompt_logprobs":[null,{"10":{"logprob":-0.5}}],"response_start":1}`, "lengths disagree"},
		"no logprob": {`{"prompt_token_ids":[1,10],"prompt_logprobs":[null,{"10":{"rank":1}}],"response_start":1}`, "lacks"},
	} {
		if _, err := readAll(t, VLLMPrompt, c.line, Options{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

func TestSGLang(t *testing.T) {
	// Token texts "", "Hi", " é", "!": offsets 0, 0, 2, 4 characters.
	line := `{"text":"Hi é!","meta_info":{"id":"abc","prompt_tokens":4,` +
		`"input_token_logprobs":[[null,1,""],[-0.5,10,"Hi"],[-0.1,11," é"],[-2.0,12,"!"]],` +
		`"input_top_logprobs":[null,[[-0.5,10,"Hi"],[-1.0,13,"Yo"]],[[-0.05,14," e"],[-0.1,11," é"]],[[-0.3,15,"."]]]},"response_start":2}`
	seqs, err := readAll(t, SGLang, line, Options{})
	if err != nil || len(seqs) != 1 {
		t.Fatal(err)
	}
	s := seqs[0]
	// The target leads each list; at position 3 it was not listed and is added.
	if s.ID != "abc" || fmt.Sprint(scored(s)) != "[2 3]" || s.Top[2][0] != (TopToken{" é", -0.1}) || len(s.Top[2]) != 2 ||
		s.Top[3][0] != (TopToken{"!", -2}) || s.Top[3][1] != (TopToken{".", -0.3}) {
		t.Errorf("sequence %+v", s)
	}
	seqs, err = readAll(t, SGLang, strings.Replace(line, `"response_start":2`, `"response_start":3`, 1), Options{})
	if err != nil || fmt.Sprint(scored(seqs[0])) != "[3]" {
		t.Errorf("response_start: %v %v", err, seqs)
	}
	// Token texts are not needed with response_start.
	noText := strings.Replace(line, `[-2.0,12,"!"]`, `[-2.0,12,null]`, 1)
	if seqs, err := readAll(t, SGLang, noText, Options{}); err != nil || fmt.Sprint(scored(seqs[0])) != "[2 3]" {
		t.Errorf("missing text: %v", err)
	}
	if _, err := readAll(t, SGLang, strings.Replace(line, `"response_start":2`, `"prompt_chars":2`, 1), Options{}); err == nil || !strings.Contains(err.Error(), "SGLang's reply does not echo the prompt") {
		t.Errorf("prompt_chars: %v", err)
	}
	if _, err := readAll(t, SGLang, `{"meta_info":{"input_token_logprobs":[[-0.5,10]],"input_top_logprobs":[null,null]},"response_start":0}`, Options{}); err == nil ||
		!strings.Contains(err.Error(), "lengths disagree") {
		t.Errorf("lengths: %v", err)
	}
}

func TestNativeForms(t *testing.T) {
	line := `{"id":17,"logprobs":[null,-0.1,-0.2,-0.3],"tokens":["<s>","a","b",null],` +
		`"top_logprobs":[null,{"a":-0.1,"\u00e9":-3},[["b",-0.2],["c",-2]],[{"token":"d","logprob":-0.3},{"token":"e","logprob":-1.5}]],"meta":{"x":[1,{"y":2}]}}`
	seqs, err := readAll(t, Native, line, Options{})
	if err != nil || len(seqs) != 1 {
		t.Fatal(err)
	}
	s := seqs[0]
	if s.ID != "17" || fmt.Sprint(scored(s)) != "[1 2 3]" || s.Top[1][1].Token != "é" || s.Top[2][1] != (TopToken{"c", -2}) ||
		s.Top[3][1] != (TopToken{"e", -1.5}) || s.Tokens[3] != "" {
		t.Errorf("sequence %+v", s)
	}
}

// Python's json.dumps writes ", " and ": " between elements, so a null
// follows a space (issue 10, item 6).
func TestNativePythonSeparators(t *testing.T) {
	line := `{"id": "py", "logprobs": [null, -0.5, null, -1.25], "mask": [0, 1, 0, 1], "top_logprobs": [null, {"a": -0.5}, null, null]}`
	seqs, err := readAll(t, Native, line, Options{})
	if err != nil || len(seqs) != 1 {
		t.Fatalf("%v %v", seqs, err)
	}
	s := seqs[0]
	if fmt.Sprint(scored(s)) != "[1 3]" || s.LogProbs[1] != -0.5 || s.LogProbs[3] != -1.25 || s.Top[1][0] != (TopToken{"a", -0.5}) {
		t.Errorf("sequence %+v", s)
	}
}

func TestDetect(t *testing.T) {
	for line, want := range map[string]string{
		`{"logprobs":[-1]}`:                                 Native,
		fmt.Sprintf(echoLine, `,"prompt_chars":6`):          VLLMEcho,
		`{"prompt_logprobs":[null],"prompt_token_ids":[1]}`: VLLMPrompt,
		`{"text":"x","meta_info":{}}`:                       SGLang,
		`{`:                                                 ReportFormat,
		`{"format_version":1,"sequences":3}`:                ReportFormat,
	} {
		if got, err := Detect([]byte(line)); got != want || err != nil {
			t.Errorf("Detect(%.40s…) = %q, %v; want %q", line, got, err, want)
		}
	}
	for _, line := range []string{`{"a":1}`, `[1]`, `{"logprobs":`} {
		if got, err := Detect([]byte(line)); err == nil {
			t.Errorf("Detect(%s) = %q", line, got)
		}
	}
}

// TestLongLine: a line over the limit is a line error, and reading goes on
// with the next line.
func TestLongLine(t *testing.T) {
	defer func(n int) { MaxLineBytes = n }(MaxLineBytes)
	MaxLineBytes = 3 << 20
	long := `{"logprobs":[` + strings.Repeat("-0.5,", 1<<20) + `-0.5]}`
	text := `{"logprobs":[-0.1]}` + "\n" + long + "\n" + `{"logprobs":[-0.2]}` + "\n"
	src, _ := NewReader(strings.NewReader(text), "in.jsonl", Native, Options{})
	var got []string
	for {
		seq, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			got = append(got, err.Error())
			continue
		}
		got = append(got, fmt.Sprint(seq.Line, seq.LogProbs))
	}
	want := "[1 [-0.1] in.jsonl:2: line longer than 3145728 bytes 3 [-0.2]]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

// TestFailedLineLeavesNoTrace: a line that fails halfway through its top
// lists does not shift the names of the next line's lists.
func TestFailedLineLeavesNoTrace(t *testing.T) {
	text := `{"logprobs":[-0.1,-0.2],"top_logprobs":[[["a",-0.1]],[["b",-0.2],["c"]]]}` + "\n" +
		`{"logprobs":[-0.3],"tokens":["x"],"top_logprobs":[{"x":-0.3,"y":-2}]}` + "\n"
	for _, workers := range []int{1, 2} {
		dir := t.TempDir()
		path := writeFile(t, dir, "in.jsonl", strings.Split(strings.TrimSpace(text), "\n")...)
		fs, err := OpenFiles([]string{path}, Options{Workers: workers}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Next(); err == nil || !strings.Contains(err.Error(), "in.jsonl:1:") {
			t.Fatalf("workers %d: first line: %v", workers, err)
		}
		seq, err := fs.Next()
		if err != nil {
			t.Fatal(err)
		}
		seq.Names(0)
		if got := fmt.Sprint(seq.Top[0]); got != "[{x -0.3} {y -2}]" {
			t.Errorf("workers %d: top list %s", workers, got)
		}
		fs.Close()
	}
}
