package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/selector"
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
	trainLog := stderr
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
	// Without a terminal the run logs a step line every logInterval and at
	// the end, not a line every few steps.
	var stepLines int
	for _, line := range strings.Split(trainLog, "\n") {
		if strings.Contains(line, `"message":"step"`) {
			stepLines++
		}
	}
	if want := 1 + int(sum.ElapsedSec/logInterval.Seconds()); stepLines < 1 || stepLines > want {
		t.Errorf("%d step log lines in %.1f s, want 1 to %d:\n%s", stepLines, sum.ElapsedSec, want, trainLog)
	}
	// Resuming a finished run takes no step and says so, with the last
	// step's figures rather than zeros.
	code, stdout, stderr = runCLI(t, "train", "--data", data, "--out", out, "--resume", "--json")
	var again map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &again) != nil || again["already_done"] != true ||
		again["final_loss"] != sum.FinalLoss || again["tokens_per_sec"] != nil {
		t.Errorf("resume of a finished run: exit %d, %v: %s", code, again, stderr)
	}
	code, stdout, _ = runCLI(t, "train", "--data", data, "--out", out, "--resume")
	if code != 0 || !strings.Contains(stdout, "nothing left to resume") || strings.Contains(stdout, "tokens/s") {
		t.Errorf("resume of a finished run, text: exit %d: %s", code, stdout)
	}
	// An error in the data names the file once, with the line.
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"prompt":"k01=","response":"vé"}`+"\n"), 0o644)
	code, _, stderr = runCLI(t, "train", "--data", bad, "--init", filepath.Join(out, "final"), "--out", filepath.Join(dir, "ft"))
	if code != 1 || !strings.Contains(stderr, "selector: "+bad+":1: response: character 'é'") {
		t.Errorf("unknown character: exit %d, %q", code, stderr)
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
// asft's frozen reference weights). On a machine fast enough to finish the
// run before the test's first look at it, the run is redone four times
// longer, rather than the test failing.
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
	var steps int
	var common []string
	killed := filepath.Join(dir, "killed")
	for steps = 300; ; steps *= 4 {
		common = append([]string{"--data", data, "--steps", fmt.Sprint(steps), "--checkpoint-every", "1", "--objective", obj}, toyFlags...)
		os.RemoveAll(killed)
		if killMidway(t, append([]string{"train", "--out", killed}, common...), filepath.Join(killed, "metrics.jsonl")) {
			break
		}
		if steps >= 300*4*4*4 {
			t.Fatalf("%d steps finished before the test could kill the run", steps)
		}
		t.Logf("%d steps finished before the first look at the run; again with %d", steps, 4*steps)
	}
	if _, err := os.Stat(filepath.Join(killed, "final")); err == nil {
		t.Fatal("the run finished before the kill landed; nothing was tested")
	}
	ref := filepath.Join(dir, "ref")
	if code, _, stderr := runCLI(t, append([]string{"train", "--out", ref}, common...)...); code != 0 {
		t.Fatalf("reference run: %s", stderr)
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

// killMidway runs the program with args in a child process and kills it
// with SIGKILL once metrics holds 20 lines. It returns false when the run
// ended first.
func killMidway(t *testing.T, args []string, metrics string) bool {
	t.Helper()
	js, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CAPSEL_SELECTOR_ARGS="+string(js))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, _ := os.ReadFile(metrics)
		if bytes.Count(m, []byte("\n")) >= 20 {
			break
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the run failed: %v: %s", err, errb.String())
			}
			return false
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the run made no progress in 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		return false // it finished between the last look and the kill
	}
	return true
}

// TestRunSettingsKeysAreTheTOMLTags: the keys that the flags, the help and
// the toml export use (runSettings) are the ones the TOML decoder reads
// (runConfig's toml tags), field by field.
func TestRunSettingsKeysAreTheTOMLTags(t *testing.T) {
	var rc runConfig
	for _, s := range runSettings {
		v := reflect.ValueOf(&rc).Elem()
		for _, part := range strings.Split(s.key, ".") {
			found := false
			for i := range v.NumField() {
				if v.Type().Field(i).Tag.Get("toml") == part {
					v, found = v.Field(i), true
					break
				}
			}
			if !found {
				t.Fatalf("--%s: no toml tag %q on the way to key %q", s.flag, part, s.key)
			}
		}
		if got := reflect.ValueOf(s.field(&rc)).Pointer(); got != v.Addr().Pointer() {
			t.Errorf("--%s: key %q is a different field from the one the flag sets", s.flag, s.key)
		}
	}
}

// TestExportTOMLTrains pipes 'recommend --export toml' into 'train
// --config': the run trains with the recommended objective. Other
// objectives' toml exports parse back to the same spec.
func TestExportTOMLTrains(t *testing.T) {
	code, out, errs := runCLI(t, "recommend", "--export", "toml", "--json")
	if code != 0 {
		t.Fatalf("recommend: exit %d: %s", code, errs)
	}
	var rec recommendJSON
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Export == nil {
		t.Fatalf("recommend JSON: %v", err)
	}
	dir := t.TempDir()
	data := writeToyData(t, dir)
	cfg := filepath.Join(dir, "run.toml")
	body := rec.Export.Text + fmt.Sprintf("data = %q\nsteps = 2\n[model]\nd = 16\nlayers = 1\nheads = 2\ncontext = 12\n", data)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "train", "--config", cfg, "--out", filepath.Join(dir, "run"), "--json")
	var sum trainSummary
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.Objective != rec.Objective {
		t.Fatalf("train --config with the export: exit %d, objective %q, want %q: %s", code, sum.Objective, rec.Objective, errs)
	}
	for _, spec := range []string{"auto", "auto-theory", "GeneralFamily-0.5", "OnlyBottomLogP-0.3", "blend-0.25", "focal-2", "original"} {
		o := objectives.MustParse(spec)
		ex, err := selector.ExportObjective(o, selector.FormatTOML, selector.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(cfg, []byte(ex.Text), 0o644)
		f := newFlags(&env{stdout: io.Discard}, "train", "", "")
		rc := defaultRunConfig()
		bindRunFlags(f.FlagSet, &rc)
		got, _, err := resolveRun(f, &rc, cfg)
		if err != nil || got.Objective != o.Canonical() {
			t.Errorf("%s: the toml export %q reads back as %q (%v)", spec, ex.Text, got.Objective, err)
		}
	}
}
