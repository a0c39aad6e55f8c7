// Package torchtest finds a Python interpreter that can import PyTorch, for
// tests that compare capsel's numbers with a PyTorch transcription of a
// trainer's code.
//
// It looks at $CAPSEL_PYTHON first, then at every python3 and python on
// $PATH in order (a pyenv shim without PyTorch is passed over for a system
// interpreter with it further down the path). Where none imports torch, the
// test is skipped, except under CI (CAPSEL_CI=1), where it fails: there a
// missing PyTorch is a broken machine, not a reason to check less.
package torchtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	once   sync.Once
	python string
	tried  []string
)

// Python returns the path of an interpreter that imports torch, or skips
// (fails under CAPSEL_CI=1) t.
func Python(t testing.TB) string {
	t.Helper()
	once.Do(find)
	if python == "" {
		msg := "no Python that imports torch (tried " + listOrNone(tried) + "); set CAPSEL_PYTHON or install PyTorch (Debian: apt-get install python3-torch)"
		if os.Getenv("CAPSEL_CI") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return python
}

func find() {
	var cands []string
	if p := os.Getenv("CAPSEL_PYTHON"); p != "" {
		cands = append(cands, p)
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		for _, name := range []string{"python3", "python"} {
			cands = append(cands, filepath.Join(dir, name))
		}
	}
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c] {
			continue
		}
		seen[c] = true
		if st, err := os.Stat(c); err != nil || st.IsDir() {
			continue
		}
		tried = append(tried, c)
		if exec.Command(c, "-c", "import torch").Run() == nil {
			python = c
			return
		}
	}
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none found"
	}
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}
