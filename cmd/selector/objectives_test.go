package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestObjectivesShowBeyondP: the objectives that are not functions of p are
// listed, show says why they have no class, and shows their weight on the
// representative distributions (or, for deft-cayley, at a few batch mean p).
func TestObjectivesShowBeyondP(t *testing.T) {
	code, out, _ := runCLI(t, "objectives", "list")
	for _, s := range []string{"eaft-α", "eaft-axolotl-α-k", "deft", "deft-cayley", "asft-α"} {
		if code != 0 || !strings.Contains(out, "\n"+s+" ") {
			t.Errorf("objectives list: exit %d, no row for %s", code, s)
		}
	}
	code, out, errs := runCLI(t, "objectives", "show", "eaft-1", "deft", "asft-0.1", "Cayley_Trans")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"class: none. It is a function of p and the next-token distribution", "confident  the top token", "bimodal   a tail token",
		"H top-20", "Σ q²", "as the model\nmoves, the anchor adds 0.1·(softmax − r)", "W (m = 0.5)"} {
		if !strings.Contains(out, want) {
			t.Errorf("show: output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "objectives", "show", "eaft-1", "--json")
	var sj showJSON
	if err := json.Unmarshal([]byte(out), &sj); err != nil || code != 0 {
		t.Fatalf("--json: exit %d, %v", code, err)
	}
	// Uniform over 1000 tokens: the top-20 entropy is log 20, the gate log 20 / 3.
	if len(sj.Shapes) != 5 || sj.Class != "not a function of p" || len(sj.Points) != 0 {
		t.Fatalf("--json: %+v", sj)
	}
	d := sj.Shapes[2]
	if d.Distribution != "diffuse" || math.Abs(*d.Stat-math.Log(20)) > 1e-12 || math.Abs(*d.Gate-math.Log(20)/3) > 1e-12 || math.Abs(d.W-*d.Gate*0.999) > 1e-12 {
		t.Errorf("diffuse row: %+v", d)
	}
	if code, _, errs := runCLI(t, "objectives", "show", "deft", "--plot", t.TempDir()+"/w.png"); code != 1 || !strings.Contains(errs, "no objective with a W(p) curve") {
		t.Errorf("--plot of deft alone: exit %d, %s", code, errs)
	}
}
