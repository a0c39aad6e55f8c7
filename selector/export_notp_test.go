package selector

import (
	"strings"
	"testing"

	"github.com/capsel/capsel/objectives"
)

// TestExportRefusesObjectivesBeyondP: until the exports cover EAFT, DEFT and
// ASFT, ExportObjective writes them for capsel's own trainer only, instead
// of a nearest setting computed from a W(p) they do not have.
func TestExportRefusesObjectivesBeyondP(t *testing.T) {
	for _, s := range []string{"eaft-1", "eaft-axolotl-1-20", "deft", "deft-cayley", "asft-0.1"} {
		o := objectives.MustParse(s)
		for _, f := range Formats() {
			e, err := ExportObjective(o, f, ExportOptions{})
			if f == FormatTOML {
				if err != nil || !e.Exact || !strings.Contains(e.Text, o.Canonical()) {
					t.Errorf("%s → toml: %+v %v", s, e, err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), "toml") {
				t.Errorf("%s → %s: %v, want a refusal pointing to toml", s, f, err)
			}
		}
	}
}
