package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/probe/probetest"
	"github.com/capsel/capsel/sftdata"
)

// noisyData is SFT data for a stand-in that knows some answers: 14 prompts
// whose answer it knows and the label agrees (two of them chats), 4 it
// knows but whose label is wrong, and 8 it does not know. Answers hold
// characters outside the stand-in's vocabulary (é, 🙂), which it splits
// into byte tokens that print alone as U+FFFD.
func noisyData() (lines []string, facts []probetest.Fact, wrong []int) {
	line := 0
	for i := range 16 {
		p := fmt.Sprintf("Q%d: the capital of France?\n", i)
		answer := fmt.Sprintf(" Paris %d é🙂", i)
		facts = append(facts, probetest.Fact{Prompt: p, Answer: answer})
		label := answer
		if i%4 == 3 {
			label = fmt.Sprintf(" Rome %d", i)
		}
		line++
		if label != answer {
			wrong = append(wrong, line)
		}
		b, _ := json.Marshal(map[string]string{"prompt": p, "response": label})
		lines = append(lines, string(b))
	}
	for i := range 2 {
		chat := []probetest.Message{{Role: "user", Content: fmt.Sprintf("Who wrote Hamlet, part %d?", i)}}
		facts = append(facts, probetest.Fact{Chat: chat, Answer: "William Shakespeare é"})
		b, _ := json.Marshal(map[string]any{"messages": []map[string]string{{"role": "user", "content": chat[0].Content}, {"role": "assistant", "content": "William Shakespeare é"}}})
		lines = append(lines, string(b))
		line++
	}
	for i := range 8 {
		b, _ := json.Marshal(map[string]string{"prompt": fmt.Sprintf("Z%d: what is the answer?\n", i), "response": " the answer is then ok"})
		lines = append(lines, string(b))
	}
	return lines, facts, wrong
}

// TestLiveGreedy: against stand-ins of vLLM and SGLang that add a BOS, split
// multi-byte characters and generate greedily from their model, the probe
// gets the model's own answer to every prompt and null prompt, compares it
// with the label token for token, and the noise-aware analysis flags
// exactly the wrong labels. The greedy replies are cached: a second run
// sends nothing, and so does a run with --greedy=false. TGI's answers are
// cached too, but TGI gives no top-k lists for prompt tokens, so its
// analysis says it cannot run.
func TestLiveGreedy(t *testing.T) {
	lines, facts, wrong := noisyData()
	for _, kind := range []string{probetest.VLLM, probetest.SGLang, probetest.TGI} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			data := writeFile(t, dir, "sft.jsonl", lines...)
			s := &probetest.Server{Kind: kind, Facts: facts}
			url := standin(t, s)
			sv := &Server{URLs: []string{url}, TopK: 3, Greedy: true, Null: true, Seed: 7}
			rep, res, acc := runNoise(t, sv, data)
			// Requests per example: two /tokenize, the scoring and the greedy
			// answer; on TGI one /tokenize, and one /chat_tokenize for each
			// of the two chats and their null prompts.
			perJob, extra := 4, 0
			if kind == probetest.TGI {
				perJob, extra = 3, 4
			}
			nulls := len(lines)
			if res.Total != 2*len(lines) || res.Null != nulls || res.Scored != res.Total || res.Requests != perJob*res.Total+extra {
				t.Errorf("progress %+v; want %d jobs (%d null) of %d requests each", res.ServerProgress, 2*len(lines), nulls, perJob)
			}
			if s.Greedy.Load() != int64(res.Total) || s.Scored.Load() != int64(res.Total) {
				t.Errorf("the stand-in answered %d scoring and %d greedy requests, want %d each", s.Scored.Load(), s.Greedy.Load(), res.Total)
			}
			na := rep.NoiseAware
			if kind == probetest.TGI {
				if na.Result != nil || !strings.Contains(na.Unavailable, "TGI gives no top-k lists") {
					t.Errorf("TGI: %+v", na)
				}
				checkCachedAnswers(t, res.Cache, len(lines), 18-len(wrong))
				return
			}
			r := na.Result
			if r == nil {
				t.Fatalf("no analysis: %s", na.Unavailable)
			}
			var flagged []int
			for _, ref := range na.FlagRefs {
				flagged = append(flagged, ref.Line)
			}
			known := 18
			if r.Method != labelnoise.Greedy || r.Agree != known-len(wrong) || !slices.Equal(flagged, wrong) {
				t.Errorf("method %s, %d agree, flagged lines %v; want greedy, %d, %v", r.Method, r.Agree, flagged, known-len(wrong), wrong)
			}
			if r.Null == nil || r.Null.Prompts != nulls || r.Null.FalsePositive != 0 || !r.Null.Used {
				t.Errorf("null check %+v; want %d prompts, none at the cut", r.Null, nulls)
			}
			// The stand-in's known answers have p 0.9 at every token, the
			// diffuse ones at most 0.5: Ê is the wrong labels among the 18
			// examples it knows.
			if r.Noise == nil || math.Abs(r.Noise.Value-float64(len(wrong))/float64(known)) > 1e-12 || math.Abs(r.Known.Value-float64(known)/float64(len(lines))) > 1e-12 {
				t.Errorf("Ê %+v, known %+v; want %d/%d and %d/%d", r.Noise, r.Known, len(wrong), known, known, len(lines))
			}
			checkOwnAnswers(t, kind, acc, data, facts)

			// A second run finds everything in the caches; so does one
			// without greedy answers, which takes the greedy lines.
			before := s.Calls.Load()
			for _, greedy := range []bool{true, false} {
				sv := &Server{URLs: []string{url}, TopK: 3, Greedy: greedy, Null: true, Seed: 7}
				again, res2, _ := runNoise(t, sv, data)
				if res2.Cached != res2.Total || res2.Requests != 0 {
					t.Errorf("greedy %v, run again: %+v; want everything cached", greedy, res2.ServerProgress)
				}
				if greedy && again.NoiseAware.Result.Capability != r.Capability {
					t.Errorf("run again: Ĉ %+v, want %+v", again.NoiseAware.Result.Capability, r.Capability)
				}
			}
			if n := s.Calls.Load() - before; n != 6 { // the two preflights: /v1/models, /info, /tokenize
				t.Errorf("the runs from the cache sent %d requests", n)
			}
		})
	}
}

// runNoise scores data and its null set and returns the noise-aware report.
func runNoise(t *testing.T, sv *Server, data string) (*Report, ServerResult, *Accumulator) {
	t.Helper()
	src, res, err := sv.Score(context.Background(), data, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	acc := NewAccumulator(Config{NoiseAware: true, Seed: 1, TeacherForced: !sv.Greedy})
	acc.AddSource(data, res.Kind.Format()+" via stand-in")
	if err := acc.Consume(src); err != nil {
		t.Fatal(err)
	}
	if err := acc.ConsumeNull(src.Null()); err != nil {
		t.Fatal(err)
	}
	rep, err := acc.Report()
	if err != nil {
		t.Fatal(err)
	}
	return rep, res, acc
}

// checkOwnAnswers compares each example's own answer with the stand-in's
// model continuing the prompt's ids greedily for the response's length plus
// one tokens.
func checkOwnAnswers(t *testing.T, kind string, acc *Accumulator, data string, facts []probetest.Fact) {
	t.Helper()
	exs, err := sftdata.ReadAll(strings.NewReader(strings.Join(readLines(t, data), "\n")), data)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := acc.NoiseExamples()
	if len(got) != len(exs) {
		t.Fatalf("%d analysed examples for %d lines", len(got), len(exs))
	}
	var tk probetest.Tokenizer
	m := &probetest.Model{Facts: facts}
	for i, ex := range exs {
		var p []int
		if ex.Kind == sftdata.Chat {
			var turns []probetest.Message
			for _, c := range ex.Context {
				turns = append(turns, probetest.Message{Role: c.Role, Content: c.Content})
			}
			p = probetest.IDs(tk.Encode(probetest.ChatTemplate(turns), false))
		} else {
			p = probetest.IDs(tk.Encode(ex.Prompt, true))
		}
		r := probetest.IDs(tk.Encode(ex.Response, false))
		ids, lps := m.Greedy(p, len(r)+1)
		own := got[i].Own
		agree := len(ids) >= len(r) && slices.Equal(ids[:len(r)], r)
		if own == nil || own.Agree != agree || len(own.LogP) != len(lps) {
			t.Errorf("%s: own answer %+v; want %d tokens, agree %v", got[i].ID, own, len(lps), agree)
			continue
		}
		for k := range lps {
			if math.Abs(own.LogP[k]-lps[k]) > 1e-12 {
				t.Errorf("%s: own answer token %d: log-prob %v, want %v", got[i].ID, k, own.LogP[k], lps[k])
			}
		}
		if agree && !strings.HasPrefix(own.Text, ex.Response) {
			t.Errorf("%s: own answer text %q does not start with the label %q", got[i].ID, own.Text, ex.Response)
		}
	}
}

// checkCachedAnswers reads the own answers of a cache file.
func checkCachedAnswers(t *testing.T, cache string, lines, agree int) {
	t.Helper()
	n, a := 0, 0
	for _, l := range readLines(t, cache) {
		var v struct {
			OwnAnswer *struct {
				Agree    bool      `json:"agree"`
				LogProbs []float64 `json:"logprobs"`
			} `json:"own_answer"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.OwnAnswer == nil || len(v.OwnAnswer.LogProbs) == 0 {
			t.Errorf("cache line without an own answer: %.80s", l)
			continue
		}
		n++
		if v.OwnAnswer.Agree {
			a++
		}
	}
	if n != lines || a != agree {
		t.Errorf("the cache holds %d own answers, %d agreeing; want %d, %d", n, a, lines, agree)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// A run without greedy answers, then one with: the second asks for the
// answers (the first's lines lack them), and the analysis switches from
// the teacher-forced approximation to greedy.
func TestLiveGreedyAfterTeacherForced(t *testing.T) {
	lines, facts, _ := noisyData()
	dir := t.TempDir()
	data := writeFile(t, dir, "sft.jsonl", lines...)
	s := &probetest.Server{Kind: probetest.VLLM, Facts: facts}
	url := standin(t, s)
	rep, res, _ := runNoise(t, &Server{URLs: []string{url}, TopK: 3, Null: true}, data)
	if r := rep.NoiseAware.Result; r == nil || r.Method != labelnoise.TeacherForced || s.Greedy.Load() != 0 || res.Requests != 3*res.Total {
		t.Fatalf("teacher-forced run: %+v, %d greedy requests, %+v", rep.NoiseAware, s.Greedy.Load(), res.ServerProgress)
	}
	rep, res, _ = runNoise(t, &Server{URLs: []string{url}, TopK: 3, Null: true, Greedy: true}, data)
	if r := rep.NoiseAware.Result; r == nil || r.Method != labelnoise.Greedy || res.Cached != 0 || s.Greedy.Load() != int64(res.Total) {
		t.Errorf("greedy run after it: %+v, %+v", rep.NoiseAware, res.ServerProgress)
	}
}
