// Command gen writes synthetic log-probability files for the probe benchmark:
// a native JSONL file and a vLLM /v1/completions echo file, both with the
// same number of scored (response) tokens, drawn from a fixed seed.
//
//	go run ./bench/probe/gen -tokens 1000000 -format native -out /tmp/native.jsonl
//	go run ./bench/probe/gen -tokens 1000000 -format vllm-echo -top 5 -out /tmp/echo.jsonl
//
// The token probabilities follow a model-strong-looking mixture: 70 % of the
// tokens have p near 1, the rest spread over (0, 1) on a log scale.
// Log-probabilities are rounded to float32 and printed with the shortest
// float64 representation, as vLLM's Python server does.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"unicode/utf8"
)

func main() {
	tokens := flag.Int("tokens", 1_000_000, "number of scored (response) tokens")
	format := flag.String("format", "native", "native, native-top or vllm-echo")
	top := flag.Int("top", 5, "top-k alternatives per position (native-top, vllm-echo)")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("out", "", "output file (default stdout)")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 1<<20)
	}
	g := &gen{rng: rand.New(rand.NewPCG(*seed, 0x9e3779b97f4a7c15)), top: *top}
	left := *tokens
	for n := 0; left > 0; n++ {
		resp := min(left, 50+g.rng.IntN(350))
		left -= resp
		prompt := 10 + g.rng.IntN(60)
		var err error
		switch *format {
		case "native":
			err = g.native(w, n, resp, 0)
		case "native-top":
			err = g.native(w, n, resp, *top)
		case "vllm-echo":
			err = g.echo(w, n, prompt, resp)
		default:
			err = fmt.Errorf("unknown format %q", *format)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(2)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

type gen struct {
	rng *rand.Rand
	top int
	buf []byte
}

// words are the token strings; a few are non-ASCII so that text offsets
// (counted in characters) and byte lengths differ.
var words = []string{" the", " a", " of", " to", " and", " is", " in", "=", " x", " 2", "\\n", " é", "ü", " 数", "学", " (", ")", ".", ",", " we", " solve", " answer", " boxed", "{", "}", " +", " -", " ∑"}

// logprob draws one target log-probability, rounded to float32 like vLLM's.
func (g *gen) logprob() float64 {
	var p float64
	if g.rng.Float64() < 0.7 {
		p = 1 - 0.3*g.rng.Float64()*g.rng.Float64()
	} else {
		p = math.Pow(10, -4*g.rng.Float64())
	}
	return float64(float32(math.Log(p)))
}

func (g *gen) num(b []byte, x float64) []byte { return strconv.AppendFloat(b, x, 'g', -1, 64) }

// alternatives returns k log-probs of other tokens, each below the mass left
// by the target, so that the listed probabilities sum to at most 1.
func (g *gen) alternatives(target float64, k int) []float64 {
	rest := 1 - math.Exp(target)
	out := make([]float64, k)
	for i := range out {
		share := rest * g.rng.Float64() * 0.5
		rest -= share
		out[i] = float64(float32(math.Log(math.Max(share, 1e-30))))
	}
	return out
}

func (g *gen) native(w *bufio.Writer, n, resp, k int) error {
	b := g.buf[:0]
	b = append(b, `{"id":"s`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `","logprobs":[`...)
	lps := make([]float64, resp)
	for i := range lps {
		lps[i] = g.logprob()
		if i > 0 {
			b = append(b, ',')
		}
		b = g.num(b, lps[i])
	}
	b = append(b, ']')
	if k > 0 {
		b = append(b, `,"top_logprobs":[`...)
		for i, lp := range lps {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = append(b, strconv.Quote(words[g.rng.IntN(len(words))])...)
			b = append(b, ':')
			b = g.num(b, lp)
			for j, a := range g.alternatives(lp, k-1) {
				b = append(b, ',')
				b = append(b, strconv.Quote(words[j%len(words)]+"#"+strconv.Itoa(j))...)
				b = append(b, ':')
				b = g.num(b, a)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, "}\n"...)
	g.buf = b
	_, err := w.Write(b)
	return err
}

// echo writes one vLLM /v1/completions response (echo=true, logprobs=k,
// max_tokens=1) plus the top-level "prompt_chars" field.
func (g *gen) echo(w *bufio.Writer, n, prompt, resp int) error {
	total := prompt + resp
	toks := make([]string, total+1) // +1: the generated token
	lps := make([]float64, total+1)
	offs := make([]int, total+1)
	text := []byte{}
	chars, promptChars := 0, 0
	for i := range toks {
		toks[i] = words[g.rng.IntN(len(words))]
		if i == 0 {
			toks[i] = "" // BOS decodes to nothing
		}
		lps[i] = g.logprob()
		offs[i] = chars
		chars += utf8.RuneCountInString(toks[i])
		text = append(text, toks[i]...)
		if i == prompt-1 {
			promptChars = chars
		}
	}
	b := g.buf[:0]
	b = fmt.Appendf(b, `{"id":"cmpl-%08d","object":"text_completion","created":1767225600,"model":"bench-model","choices":[{"index":0,"text":`, n)
	b = append(b, strconv.Quote(string(text))...)
	b = append(b, `,"logprobs":{"tokens":[`...)
	for i, t := range toks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, strconv.Quote(t)...)
	}
	b = append(b, `],"token_logprobs":[null`...)
	for _, lp := range lps[1:] {
		b = append(b, ',')
		b = g.num(b, lp)
	}
	b = append(b, `],"top_logprobs":[null`...)
	for i := 1; i < len(toks); i++ {
		b = append(b, ",{"...)
		b = append(b, strconv.Quote(toks[i])...)
		b = append(b, ':')
		b = g.num(b, lps[i])
		for j, a := range g.alternatives(lps[i], g.top) {
			b = append(b, ',')
			b = append(b, strconv.Quote(words[(j+i)%len(words)]+strconv.Itoa(j))...)
			b = append(b, ':')
			b = g.num(b, a)
		}
		b = append(b, '}')
	}
	b = append(b, `],"text_offset":[`...)
	for i, o := range offs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(o), 10)
	}
	b = fmt.Appendf(b, `]},"finish_reason":"length","stop_reason":null,"prompt_logprobs":null}],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":1},"prompt_chars":%d}`+"\n", total, total+1, promptChars)
	g.buf = b
	_, err := w.Write(b)
	return err
}
