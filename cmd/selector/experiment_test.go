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
	// Quick: 2 tasks × (clean + 2 schemes at 0.5) × 3 metrics along the
	// dial, and 2 tasks × 2 schemes along the noise rate at coverage 1.
	if pngs, _ := filepath.Glob(filepath.Join(out, "continuum_*.png")); len(pngs) != 18 {
		t.Errorf("%d continuum figures, want 18", len(pngs))
	}
	if pngs, _ := filepath.Glob(filepath.Join(out, "noise_*.png")); len(pngs) != 4 {
		t.Errorf("%d noise figures, want 4", len(pngs))
	}
	// Quick output says its numbers mean nothing and states no verdict in bold.
	md, _ := os.ReadFile(filepath.Join(out, "continuum.md"))
	if !strings.Contains(string(md), "say nothing about the science") || strings.Contains(string(md), "**crossover") || strings.Contains(string(md), "**not seen") {
		t.Error("continuum.md: quick mode must say its numbers mean nothing, without bold verdicts")
	}
	var cont struct {
		Setup struct {
			Quick bool `json:"quick"`
		} `json:"setup"`
		Cells []map[string]json.RawMessage `json:"cells"`
	}
	if err := json.Unmarshal(res["continuum"], &cont); err != nil || !cont.Setup.Quick || len(cont.Cells) == 0 {
		t.Fatalf("continuum JSON: %v", err)
	}
	for _, k := range []string{"key", "probe_clean", "probe_as_given", "noise_aware_probe", "corrupted_examples", "token_noise", "decisions"} {
		if _, ok := cont.Cells[0][k]; !ok {
			t.Errorf("a cell lacks %q", k)
		}
	}
	// The trainers' objectives stand against NLL and −p (the quick grid has
	// eaft-1 and asft-0.1), and the theory experiment predicts with them.
	var stand struct {
		Standings []struct {
			Objective string `json:"objective"`
			Vs        string `json:"vs"`
		} `json:"standings"`
	}
	json.Unmarshal(res["continuum"], &stand)
	vs := map[string]bool{}
	for _, st := range stand.Standings {
		vs[st.Objective+" vs "+st.Vs] = true
	}
	if !vs["eaft-1 vs nll"] || !vs["asft-0.1 vs p"] || vs["p vs p"] {
		t.Errorf("standings %v", vs)
	}
	if sum, _ := os.ReadFile(filepath.Join(out, "summary.md")); !strings.Contains(string(sum), "## The trainers' objectives against NLL and −p") {
		t.Error("summary.md lacks the trainers' objectives")
	}
	if th, _ := os.ReadFile(filepath.Join(out, "theory.md")); !strings.Contains(string(th), "| eaft-1 |") || !strings.Contains(string(th), "p = asft-0.1") {
		t.Error("theory.md: want eaft-1's E* and asft-0.1 predicted tied with p")
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
	code, stdout, _ = runCLI(t, "experiment", "continuum", "--quick", "--out", out, "--cache", filepath.Join(out, "cache"))
	if code != 0 || !strings.Contains(stdout, "mean nothing") {
		t.Errorf("quick text output: exit %d, %q", code, stdout)
	}
}

func TestExperimentFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--seeds", "0"}, "--seeds 0: need at least 2"},
		{[]string{"--seeds", "1"}, "--seeds 1: need at least 2"},
		{[]string{"--task-seed", "0"}, "--task-seed 0: give a seed of 1 or more"},
		{[]string{"--schemes", "replace,swap"}, `unknown noise scheme "swap"`},
		{[]string{"--tasks", "facts"}, `unknown task "facts"`},
		{[]string{"--noises", "0,1"}, "noise 1 outside [0, 1)"},
	} {
		code, _, stderr := runCLI(t, append([]string{"experiment", "all", "--quick", "--out", t.TempDir()}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}
