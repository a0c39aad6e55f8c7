package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the selector program, so that a test
// can run it as a separate process (and kill it).
func TestMain(m *testing.M) {
	if args := os.Getenv("CAPSEL_SELECTOR_ARGS"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			panic(err)
		}
		os.Exit(run(context.Background(), a, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// writeToyData writes a small SFT file: 12 keys and their values.
func writeToyData(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, `{"prompt":"k%02d=","response":"v%d"}`+"\n", i, (i*7)%12)
	}
	path := filepath.Join(dir, "toy.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var toyFlags = []string{"--d", "16", "--layers", "1", "--heads", "2", "--context", "12", "--batch", "4", "--lr", "3e-3"}

func TestTrainEvalCLI(t *testing.T) {
	dir := t.TempDir()
	data := writeToyData(t, dir)
	out := filepath.Join(dir, "run")
	args := append([]string{"train", "--data", data, "--out", out, "--steps", "20", "--eval-data", data, "--json", "--plot", filepath.Join(dir, "curves.png")}, toyFlags...)
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, stderr)
	}
	var sum trainSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Steps != 20 || sum.Eval == nil {
		t.Fatalf("summary %q: %v", stdout, err)
	}
	for _, f := range []string{"checkpoint", "final", "metrics.jsonl", "run.json", "../curves.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	// One metrics line per step plus the final evaluation.
	m, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if n := bytes.Count(m, []byte("\n")); n != 21 {
		t.Errorf("metrics.jsonl has %d lines, want 21", n)
	}
	code, stdout, stderr = runCLI(t, "eval", "--model", filepath.Join(out, "final"), "--data", data, "--json")
	var ev map[string]float64
	if code != 0 || json.Unmarshal([]byte(stdout), &ev) != nil {
		t.Fatalf("eval: exit %d %q %s", code, stdout, stderr)
	}
	// The summary's final evaluation and the eval command agree exactly.
	if ev["mean_p"] != sum.Eval.MeanP || ev["exact_match"] != sum.Eval.ExactMatch || ev["examples"] != 12 {
		t.Errorf("eval %v vs train summary %+v", ev, sum.Eval)
	}
	// Usage and runtime errors.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"train", "--data", data, "--out", out}, 1, "already holds a run"},
		{[]string{"train", "--data", data, "--out", out, "--resume", "--lr", "0.5"}, 2, "drop --lr 0.5"},
		{[]string{"train", "--data", data, "--out", filepath.Join(dir, "x"), "--objective", "GeneralFamly-1"}, 2, "did you mean GeneralFamily-10"},
		{[]string{"train", "--data", data}, 2, "--out DIR is required"},
		{[]string{"train", "--data", data, "--out", filepath.Join(dir, "y"), "--init", filepath.Join(out, "final"), "--d", "32"}, 2, "architecture comes from --init"},
		{[]string{"train", "--data", data, "--out", filepath.Join(dir, "z"), "--resume"}, 1, "holds no checkpoint"},
		{[]string{"eval", "--model", data, "--data", data}, 1, "not a usable capsel checkpoint"},
		{[]string{"bench", "train", "--d", "10", "--heads", "4"}, 2, "not a multiple of heads"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

func TestTrainConfigFile(t *testing.T) {
	dir := t.TempDir()
	data := writeToyData(t, dir)
	cfg := filepath.Join(dir, "run.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("data = %q\nsteps = 3\nobjective = \"p\"\n[model]\nd = 16\nlayers = 1\nheads = 2\ncontext = 12\n", data)), 0o644)
	out := filepath.Join(dir, "run")
	// The flag wins over the file's objective.
	code, stdout, stderr := runCLI(t, "train", "--config", cfg, "--out", out, "--objective", "auto", "--json")
	var sum trainSummary
	json.Unmarshal([]byte(stdout), &sum)
	if code != 0 || sum.Objective != "auto" || sum.Steps != 3 {
		t.Fatalf("exit %d, summary %+v, stderr %s", code, sum, stderr)
	}
	os.WriteFile(cfg, []byte("data = \"x\"\n[model]\ndd = 3\n[optim]\nwarmup = 0.1\n"), 0o644)
	code, _, stderr = runCLI(t, "train", "--config", cfg, "--out", filepath.Join(dir, "r2"))
	if code != 2 || !strings.Contains(stderr, "model.dd (did you mean model.d?)") || !strings.Contains(stderr, "optim.warmup") {
		t.Errorf("unknown keys: exit %d, %s", code, stderr)
	}
}

// TestKillAndResume trains in a separate process, kills it with SIGKILL in
// the middle, resumes it, and checks that the final checkpoint equals an
// uninterrupted run's byte for byte (weights, optimizer state, step, and
// asft's frozen reference weights).
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs training three times")
	}
	for _, obj := range []string{"auto", "asft-0.1"} {
		t.Run(obj, func(t *testing.T) { killAndResume(t, obj) })
	}
}

func killAndResume(t *testing.T, obj string) {
	dir := t.TempDir()
	data := writeToyData(t, dir)
	const steps = 300
	common := append([]string{"--data", data, "--steps", fmt.Sprint(steps), "--checkpoint-every", "1", "--objective", obj}, toyFlags...)

	ref := filepath.Join(dir, "ref")
	if code, _, stderr := runCLI(t, append([]string{"train", "--out", ref}, common...)...); code != 0 {
		t.Fatalf("reference run: %s", stderr)
	}

	killed := filepath.Join(dir, "killed")
	args, _ := json.Marshal(append([]string{"train", "--out", killed}, common...))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CAPSEL_SELECTOR_ARGS="+string(args))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, _ := os.ReadFile(filepath.Join(killed, "metrics.jsonl"))
		if bytes.Count(m, []byte("\n")) >= 20 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended before it could be killed (%v): %s", err, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the run made no progress in 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := os.Stat(filepath.Join(killed, "final")); err == nil {
		t.Fatal("the run finished before the kill landed; nothing was tested")
	}
	code, _, stderr := runCLI(t, append([]string{"train", "--out", killed, "--resume"}, "--data", data)...)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(ref, "final"))
	b, _ := os.ReadFile(filepath.Join(killed, "final"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("final checkpoints differ (%d vs %d bytes)", len(a), len(b))
	}
	// The metrics file holds every step exactly once.
	m, _ := os.ReadFile(filepath.Join(killed, "metrics.jsonl"))
	seen := map[int]int{}
	for _, line := range bytes.Split(bytes.TrimSpace(m), []byte("\n")) {
		var v struct{ Step int }
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		seen[v.Step]++
	}
	for s := 1; s <= steps; s++ {
		if seen[s] != 1 {
			t.Fatalf("metrics.jsonl has step %d %d times", s, seen[s])
		}
	}
}
