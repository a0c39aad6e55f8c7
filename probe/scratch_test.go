package probe

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/capsel/capsel/probe/probetest"
)

func TestScratchLive(t *testing.T) {
	var facts []probetest.Fact
	var lines []string
	for i := range 40 {
		p := fmt.Sprintf("Q%d: capital of France?\nA:", i)
		facts = append(facts, probetest.Fact{Prompt: p, Answer: " Paris."})
		resp := " Paris."
		if i%5 == 0 {
			resp = " Rome."
		}
		lines = append(lines, fmt.Sprintf(`{"prompt": %q, "response": %q}`, p, resp))
	}
	for i := range 30 {
		lines = append(lines, fmt.Sprintf(`{"prompt": "Z%d: who wrote Hamlet?\nA:", "response": " William Shakespeare é."}`, i))
	}
	for _, kind := range []string{probetest.VLLM, probetest.SGLang, probetest.TGI} {
		dir := t.TempDir()
		data := writeFile(t, dir, "sft.jsonl", lines...)
		url := standin(t, &probetest.Server{Kind: kind, Facts: facts})
		sv := &Server{URLs: []string{url}, TopK: 3, Greedy: true, Null: true}
		src, res, err := sv.Score(context.Background(), data, "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		acc := NewAccumulator(Config{NoiseAware: true, Seed: 1})
		if err := acc.Consume(src); err != nil {
			t.Fatal(err)
		}
		if err := acc.ConsumeNull(src.Null()); err != nil {
			t.Fatal(err)
		}
		src.Close()
		rep, err := acc.Report()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%s: %+v\n", kind, res.ServerProgress)
		na := rep.NoiseAware
		if na.Result == nil {
			fmt.Println("unavailable", na.Unavailable)
			continue
		}
		r := na.Result
		fmt.Printf("method %s ex %d agree %d cut %v C %+v raw %.4f mean %.4f noise %+v known %+v null %+v flags %d\n", r.Method, r.Examples, r.Agree, r.Cut, r.Capability, r.RawMeanP, rep.MeanP, r.Noise, r.Known, r.Null, len(r.Flags))
		fmt.Println(strings.Join(r.Notes, "\n"))
		for _, f := range r.Flags[:3] {
			fmt.Printf("%+v\n", f)
		}
	}
}
