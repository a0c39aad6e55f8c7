package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capsel/capsel/selector"
	"github.com/capsel/capsel/train"
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
	// so the prior-leaning call, the anchored ASFT, with the paper's
	// thresholded objective as its fallback (the model knows whole facts).
	if r["region"] != "model-strong" || r["prior_leaning"] != true || r["objective"] != "asft-0.1" || r["fallback"] != "OnlyTopLogP-0.2" {
		t.Errorf("demo: region %v, leaning %v, objective %v, fallback %v", r["region"], r["prior_leaning"], r["objective"], r["fallback"])
	}
	// The paper's verl fork has no ASFT: the export is the fallback, and says so.
	ex := r["export"].(map[string]any)
	if !strings.Contains(ex["text"].(string), "trainer.objective_trans=OnlyTopLogP-0.2") || !strings.Contains(fmt.Sprint(ex["notes"]), "fallback") {
		t.Errorf("verl export: %v", ex)
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

// TestRecommendPilotDemo runs the pilot sweep on the demo: its outcome is
// part of the recommendation, and the text says what it decided and why.
func TestRecommendPilotDemo(t *testing.T) {
	code, out, errs := runCLI(t, "recommend", "--pilot", "--pilot-steps", "5", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Objective string   `json:"objective"`
		Rationale []string `json:"rationale"`
		Outcome   *struct {
			Winner   string `json:"winner"`
			Examples int    `json:"examples"`
			Reason   string `json:"reason"`
		} `json:"pilot_outcome"`
		Results *struct {
			Held int `json:"held_out_examples"`
			Arms []struct {
				Objective  string `json:"objective"`
				PerExample struct {
					ExactMatch []float64 `json:"exact_match"`
				} `json:"per_example"`
			} `json:"arms"`
		} `json:"pilot_results"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// The demo has 120 examples: every tenth, 12, is held out.
	if r.Outcome == nil || r.Results == nil || r.Results.Held != 12 || r.Outcome.Examples != 12 || len(r.Results.Arms) < 2 {
		t.Fatalf("pilot outcome %+v, results %+v", r.Outcome, r.Results)
	}
	for _, a := range r.Results.Arms {
		if len(a.PerExample.ExactMatch) != 12 {
			t.Errorf("%s: %d per-example scores, want 12", a.Objective, len(a.PerExample.ExactMatch))
		}
	}
	last := r.Rationale[len(r.Rationale)-1]
	switch {
	case r.Outcome.Winner != "" && r.Objective != r.Outcome.Winner:
		t.Errorf("the pilot's winner %s is not the recommendation %s", r.Outcome.Winner, r.Objective)
	case r.Outcome.Winner == "" && (r.Outcome.Reason == "" || !strings.Contains(last, "did not settle it")):
		t.Errorf("no winner, but no reason in the rationale: %q / %q", r.Outcome.Reason, last)
	}
	code, out, _ = runCLI(t, "recommend", "--pilot", "--pilot-steps", "5")
	if code != 0 || !strings.Contains(out, "Pilot results") || !(strings.Contains(out, "winner: ") || strings.Contains(out, "no winner: ")) {
		t.Errorf("text: exit %d\n%s", code, out)
	}
}

// TestPrintPilotWinner: a pilot winner is the headline and is named under
// the pilot's results.
func TestPrintPilotWinner(t *testing.T) {
	const n = 10
	ones, zeros := make([]float64, n), make([]float64, n)
	for i := range ones {
		ones[i] = 1
	}
	d, err := selector.DecidePilot([]selector.PilotArm{
		{Objective: "nll", ExactMatch: zeros, TokenAccuracy: zeros},
		{Objective: "p", ExactMatch: ones, TokenAccuracy: ones},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := selector.Recommendation{Objective: "auto", Fallback: "nll", Confidence: "low", Region: "model-intermediate"}
	rec.ApplyPilot(d)
	run := &train.PilotRun{Fit: 90, Held: n, Seeds: 1, Steps: 100, Arms: []train.PilotArm{{Objective: "nll"}, {Objective: "p"}}}
	var b strings.Builder
	printRecommendation(&b, recommendJSON{Recommendation: rec, Pilots: run}, true)
	out := b.String()
	for _, want := range []string{"Recommended objective: p   (confidence: medium)", "winner: p, on exact match", "So train with p rather than auto"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestRecommendLogprobsNoiseAware: on top-k log-prob files alone the
// recommendation reports Ĉ and Ê from the teacher-forced approximation,
// and says so. The file is clean_test.go's: 8 of 50 labels contradict a
// first choice of p 0.95, so Ê is 8 of the 40 examples the model knows.
func TestRecommendLogprobsNoiseAware(t *testing.T) {
	_, lp, wrong := noisyLogprobs(t, t.TempDir())
	code, out, errs := runCLI(t, "recommend", "--logprobs", lp, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Source     string `json:"capability_source"`
		Capability float64
		NoiseAware *struct {
			Method  string
			Flagged int
			Noise   *struct{ Value float64 }
		} `json:"noise_aware"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	na := r.NoiseAware
	if r.Source != "noise-aware" || na == nil || na.Method != "teacher-forced" || na.Flagged != len(wrong) || na.Noise == nil || math.Abs(na.Noise.Value-float64(len(wrong))/40) > 1e-9 {
		t.Errorf("capability %v (%s), noise-aware %+v; want teacher-forced, %d flagged, Ê = %d/40", r.Capability, r.Source, na, len(wrong), len(wrong))
	}
}
