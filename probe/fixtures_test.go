package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerFixtures reads replies built by hand, by following each
// server's serializer code for concrete token sequences (see
// testdata/servers/README.md for the code, its commit and every case).
// Each gives the right number of sequences and tokens and the right mean p,
// or an error that says why the file cannot tell; none yields a number
// silently.
func TestServerFixtures(t *testing.T) {
	type want struct {
		format          string
		sequences, toks int64
		meanP           float64
		err             string // a substring of the error, when one is due
		zeroP           int64
		topK            bool // the scored tokens come with top-k lists
	}
	// The p's behind each mean are the fixture's response tokens (README).
	cases := map[string]want{
		"vllm-bos.response_start.jsonl":               {format: VLLMEcho, sequences: 1, toks: 2, meanP: (0.6 + 0.2) / 2, topK: true},
		"vllm-bos.prompt_chars.jsonl":                 {format: VLLMEcho, err: `token 0 prints "<|begin_of_text|>" where the text has "Q: capital of Fra"`},
		"vllm-sentencepiece.response_start.jsonl":     {format: VLLMEcho, sequences: 1, toks: 3, meanP: (0.3 + 0.8 + 0.99) / 3, topK: true},
		"vllm-sentencepiece.prompt_chars.jsonl":       {format: VLLMEcho, err: `token 0 prints "<s>" where the text has "Who"`},
		"vllm-bytes-replacement.response_start.jsonl": {format: VLLMEcho, sequences: 1, toks: 2, meanP: (0.4 + 0.3) / 2},
		"vllm-bytes-replacement.prompt_chars.jsonl":   {format: VLLMEcho, err: "token 2 prints \" \ufffd\" where the text has \" \U0001F642\""},
		"vllm-bytes-empty.response_start.jsonl":       {format: VLLMEcho, sequences: 1, toks: 2, meanP: (0.4 + 0.3) / 2},
		"vllm-bytes-empty.prompt_chars.jsonl":         {format: VLLMEcho, err: `token 4 prints ":" where the text has " "`},
		"vllm-token-ids.response_start.jsonl":         {format: VLLMEcho, sequences: 1, toks: 2, meanP: (0.6 + 0.2) / 2, topK: true},
		"vllm-token-ids.prompt_chars.jsonl":           {format: VLLMEcho, err: `token 0 prints "token_id:128000"`},
		"vllm-n2.response_start.jsonl":                {format: VLLMEcho, sequences: 2, toks: 4, meanP: (0.6 + 0.2) / 2, topK: true},
		"vllm-batch.response_start.jsonl":             {format: VLLMEcho, sequences: 2, toks: 4, meanP: (0.6 + 0.2 + 0.7 + 0.3) / 4, topK: true},
		"vllm-offline.response_start.jsonl":           {format: VLLMPrompt, sequences: 1, toks: 2, meanP: (0.6 + 0) / 2, zeroP: 1, topK: true},
		"sglang.response_start.jsonl":                 {format: SGLang, sequences: 1, toks: 2, meanP: (0.6 + 0.2) / 2, topK: true},
		"sglang.prompt_chars.jsonl":                   {format: SGLang, err: "SGLang's reply does not echo the prompt"},
		"sglang-batch.response_start.jsonl":           {format: SGLang, sequences: 2, toks: 4, meanP: (0.6 + 0.2 + 0.7 + 0.3) / 4, topK: true},
		"sglang-batch.no_start.jsonl":                 {format: SGLang, err: `element 0: no "response_start"`},
		"sglang-echo.response_start.jsonl":            {format: VLLMEcho, sequences: 1, toks: 2, meanP: (0.6 + 0.2) / 2},
		"sglang-echo.prompt_chars.jsonl":              {format: VLLMEcho, err: "text_offset[0] is -1, not 0"},
		"tgi.response_start.jsonl":                    {format: TGI, sequences: 1, toks: 2, meanP: (0.6 + 0.2) / 2},
		"tgi.prompt_chars.jsonl":                      {format: TGI, err: "TGI's reply does not echo the prompt"},
		"tgi.no_start.jsonl":                          {format: TGI, err: `no "response_start"`},
		"tgi-prefix-cache.response_start.jsonl":       {format: TGI, err: "token 9 is in the response but its log-prob is null (TGI's prefix cache"},
		"tgi-no-prefill.response_start.jsonl":         {format: TGI, err: "--enable-prefill-logprobs"},
		"native-python.jsonl":                         {format: Native, sequences: 1, toks: 2, meanP: (0.6 + 0.2) / 2},
	}
	files, err := filepath.Glob("testdata/servers/*.jsonl")
	if err != nil || len(files) != len(cases) {
		t.Fatalf("%d fixture files for %d cases (%v)", len(files), len(cases), err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		w, ok := cases[name]
		if !ok {
			t.Errorf("%s: no expectation", name)
			continue
		}
		first, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if f, err := Detect([]byte(strings.SplitN(string(first), "\n", 2)[0])); err != nil || f != w.format {
			t.Errorf("%s: detected %q (%v), want %s", name, f, err, w.format)
		}
		rep, err := reportOf(t, Config{}, Options{}, path)
		if w.err != "" {
			if err == nil || !strings.Contains(err.Error(), w.err) || !strings.HasPrefix(err.Error(), path+":1: ") {
				t.Errorf("%s: error %v, want one naming the line and saying %q", name, err, w.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if rep.Sequences != w.sequences || rep.Tokens != w.toks || !near(rep.MeanP, w.meanP, 1e-12) || rep.ZeroPTokens != w.zeroP || (rep.TopKTokens > 0) != w.topK {
			t.Errorf("%s: %d sequences, %d tokens, mean p %.15g, %d at p = 0, %d with top-k; want %d, %d, %.15g, %d, top-k %v",
				name, rep.Sequences, rep.Tokens, rep.MeanP, rep.ZeroPTokens, rep.TopKTokens, w.sequences, w.toks, w.meanP, w.zeroP, w.topK)
		}
	}
}
