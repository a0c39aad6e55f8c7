package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecommendDemo(t *testing.T) {
	code, out, errs := runCLI(t, "recommend", "--json", "--export", "verl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// The stable fields the issue names.
	for _, k := range []string{"objective", "region", "capability", "capability_ci", "confidence", "ranking", "crossover_noise", "rationale", "export"} {
		if _, ok := r[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	// The demo model memorised every target fact in pretraining: model-strong,
	// so a prior-leaning objective (its class is in the ranking).
	if r["region"] != "model-strong" {
		t.Errorf("demo region %v", r["region"])
	}
	var class string
	for _, x := range r["ranking"].([]any) {
		m := x.(map[string]any)
		if m["objective"] == r["objective"] {
			class = m["class"].(string)
		}
	}
	if class != "prior-leaning" {
		t.Errorf("demo recommends %v (%s)", r["objective"], class)
	}
	if !strings.Contains(r["export"].(map[string]any)["text"].(string), "trainer.objective_trans=") {
		t.Errorf("verl export: %v", r["export"])
	}
	// Text output starts with the recommendation.
	code, out, _ = runCLI(t, "recommend")
	if code != 0 || !strings.HasPrefix(out, "Recommended objective: ") || !strings.Contains(out, "Why:") {
		t.Errorf("text output: exit %d\n%s", code, out)
	}
}

func TestRecommendFromReportAndErrors(t *testing.T) {
	dir := t.TempDir()
	// A native log-prob file of a weak model: p = e^-3 ≈ 0.05 everywhere.
	var b strings.Builder
	for range 60 {
		b.WriteString(`{"logprobs":[-3,-3,-3,-3,-3],"top_logprobs":[{"a":-1},{"a":-1},{"a":-1},{"a":-1},{"a":-1}]}` + "\n")
	}
	lp := filepath.Join(dir, "weak.jsonl")
	os.WriteFile(lp, []byte(b.String()), 0o644)
	rep := filepath.Join(dir, "report.json")
	if code, _, errs := runCLI(t, "probe", lp, "--vocab", "1000", "--out", rep); code != 0 {
		t.Fatalf("probe: %s", errs)
	}
	for _, args := range [][]string{{"recommend", rep, "--json"}, {"recommend", "--logprobs", lp, "--vocab", "1000", "--json"}} {
		code, out, errs := runCLI(t, args...)
		var r map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%v: exit %d %s", args, code, errs)
		}
		if r["objective"] != "nll" || r["region"] != "model-weak" {
			t.Errorf("%v: %v %v", args, r["objective"], r["region"])
		}
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"recommend", "--noise", "2"}, 2, "--noise"},
		{[]string{"recommend", "--export", "keras"}, 2, "--export"},
		{[]string{"recommend", lp, "--pilot"}, 2, "--pilot fine-tunes the model itself"},
		{[]string{"recommend", filepath.Join(dir, "missing.json")}, 1, "missing.json"},
	} {
		code, _, errs := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}
