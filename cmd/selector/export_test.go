package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/selector"
)

// TestExportCommand: the text alone goes to stdout (so that it can be
// redirected into the file the notes name), the notes to stderr; --out
// writes the text and prints the notes; --json carries both.
func TestExportCommand(t *testing.T) {
	code, out, errs := runCLI(t, "export", "GeneralFamily-10", "--to", "trl")
	want, err := selector.ExportObjective(objectives.MustParse("GeneralFamily-10"), selector.FormatTRL, selector.ExportOptions{AutoTheory: autoTheorySettings()})
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != want.Text {
		t.Fatalf("export to stdout: exit %d, stdout differs from the export's text", code)
	}
	if !strings.Contains(errs, "exact: true") || !strings.Contains(errs, "note: Save the text as capsel_loss.py") {
		t.Errorf("export: stderr %q lacks the exactness and the notes", errs)
	}

	path := filepath.Join(t.TempDir(), "capsel_plugin.py")
	code, out, errs = runCLI(t, "export", "auto-theory", "--to", "ms-swift", "--out", path)
	b, err := os.ReadFile(path)
	if code != 0 || err != nil || !strings.Contains(string(b), `loss_map["capsel_auto_theory"]`) {
		t.Fatalf("export --out: exit %d (%s), file %v", code, errs, err)
	}
	if !strings.Contains(out, "wrote "+path) || !strings.Contains(out, "note:") || errs != "" {
		t.Errorf("export --out: stdout %q, stderr %q; want the file named and the notes on stdout", out, errs)
	}
	// The code carries capsel's trainer's auto-theory settings.
	if !strings.Contains(string(b), "EVERY = 10") || !strings.Contains(string(b), `"OnlyTopLogP-0.2"`) {
		t.Errorf("auto-theory export does not carry capsel's default settings")
	}

	code, out, _ = runCLI(t, "export", "asft-0.1", "--to", "llamafactory", "--json")
	var j struct {
		Objective, Format, Text string
		Exact                   bool
		Notes                   []string
	}
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || j.Objective != "asft-0.1" || j.Format != "llamafactory" || !j.Exact ||
		!strings.Contains(j.Text, "use_asft_loss: true") || len(j.Notes) == 0 {
		t.Errorf("export --json: exit %d, %v, %+v", code, err, j)
	}

	code, out, _ = runCLI(t, "export", "auto", "--to", "trl", "--fallback", "p")
	if code != 0 || !strings.Contains(out, `loss_type="dft"`) {
		t.Errorf("export auto --fallback p: exit %d, text %q; want p's export", code, out)
	}
}

func TestExportUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		in   string
	}{
		{[]string{"export", "GeneralFamily-10"}, "--to is required"},
		{[]string{"export", "--to", "trl"}, "need exactly one objective SPEC"},
		{[]string{"export", "GeneralFamilly-10", "--to", "trl"}, "GeneralFamily"},
		{[]string{"export", "p", "--to", "pytorch"}, "accepted formats"},
		{[]string{"export", "p", "--to", "trl", "--weighting", "sum"}, "fork"},
		{[]string{"export", "eaft-1", "--to", "llamafactory", "--weighting", "fork"}, "tokens weighting"},
		{[]string{"export", "auto", "--to", "swift"}, "--fallback"},
		{[]string{"export", "auto", "--to", "swift", "--fallback", "auto-theory"}, "adaptive"},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != 2 || out != "" || !strings.Contains(errs, c.in) || !strings.Contains(errs, "usage: selector export") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and a usage error containing %q", c.args, code, out, errs, c.in)
		}
	}
}

// TestRecommendExportNotes: recommend --export of an adaptive
// recommendation without --pilot exports the recommendation's fallback and
// never credits a pilot sweep that did not run; with a pilot decision it
// names the sweep.
func TestRecommendExportNotes(t *testing.T) {
	for _, spec := range []string{"auto", "auto-theory"} {
		rec := selector.Recommendation{Objective: spec, Fallback: "nll"}
		fb, why := autoFallback(rec)
		ex, err := selector.ExportObjective(objectives.MustParse(spec), selector.FormatLlamaFactory,
			selector.ExportOptions{AutoFallback: fb, FallbackWhy: why, AutoTheory: autoTheorySettings()})
		if err != nil {
			t.Fatal(err)
		}
		notes := strings.Join(ex.Notes, " ")
		if fb.String() != "nll" || strings.Contains(notes, "of your pilot sweep") || !strings.Contains(notes, "the recommendation's fallback") {
			t.Errorf("%s without --pilot: fallback %s, notes %q", spec, fb, notes)
		}
		rec.PilotDecision = &selector.PilotDecision{BestFixed: "GeneralFamily-10"}
		if fb, why = autoFallback(rec); fb.String() != "GeneralFamily-10" || !strings.Contains(why, "pilot sweep") {
			t.Errorf("%s with a pilot decision: fallback %s (%s)", spec, fb, why)
		}
	}
}
