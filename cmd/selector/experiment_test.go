package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExperimentQuick runs every experiment in quick mode: it checks the
// pipeline (training, probing, theory, statistics, files), not the science.
func TestExperimentQuick(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "experiment", "all", "--quick", "--out", out, "--cache", filepath.Join(out, "cache"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"continuum", "theory", "autoblend"} {
		if len(res[k]) == 0 {
			t.Errorf("JSON lacks %s", k)
		}
		md, err := os.ReadFile(filepath.Join(out, k+".md"))
		if err != nil || !strings.Contains(string(md), "Produced by `selector experiment all --quick") {
			t.Errorf("%s.md: %v", k, err)
		}
	}
	pngs, _ := filepath.Glob(filepath.Join(out, "continuum_*.png"))
	if len(pngs) != 2 {
		t.Errorf("continuum figures: %v", pngs)
	}
	// A second run reads every run from the cache and writes the same results.
	before, _ := os.ReadFile(filepath.Join(out, "continuum.json"))
	if code, _, stderr := runCLI(t, "experiment", "continuum", "--quick", "--out", out, "--cache", filepath.Join(out, "cache")); code != 0 {
		t.Fatal(stderr)
	}
	after, _ := os.ReadFile(filepath.Join(out, "continuum.json"))
	if string(before) != string(after) {
		t.Error("cached rerun changed the continuum results")
	}
	if code, _, stderr := runCLI(t, "experiment", "sideways"); code != 2 || !strings.Contains(stderr, "unknown experiment") {
		t.Errorf("unknown experiment: %d %s", code, stderr)
	}
}
