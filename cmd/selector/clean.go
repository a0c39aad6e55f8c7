package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/capsel/capsel/internal/atomicfile"
	"github.com/capsel/capsel/labelnoise"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/sftdata"
)

var cmdClean = &command{
	name:  "clean",
	usage: "selector clean (--server URL... | --model CKPT | --logprobs FILE...) --data SFT.jsonl --out CLEAN.jsonl [--flagged FLAGGED.jsonl] [--json]",
	short: "write the SFT data without the examples whose labels the model confidently contradicts",
	long: `Runs the noise-aware probe (see 'selector probe -h') on the SFT data and
writes two new files: --out, the SFT lines that were not flagged, byte for
byte as they were, and --flagged (default OUT with .flagged.jsonl), one
JSON line per flagged example with its reason, the model's own answer and
its confidence:

  selector clean --server http://localhost:8000 --data sft.jsonl --out sft.clean.jsonl
  selector clean --model runs/base/final --data sft.jsonl --out sft.clean.jsonl
  selector clean --logprobs scores.jsonl --null null.jsonl --data sft.jsonl \
                 --out sft.clean.jsonl --flagged sft.flagged.jsonl

An example is flagged when the model does not reproduce its label but gives
its own answer at least as confidently as the labels it does reproduce
(the cut: the 5th percentile of their confidence). Such a label most
likely is wrong: the model knows something else. An example the model is
unsure of is kept: it does not know the answer, and that is what
fine-tuning is for. The null set (prompts with their letters and digits
shuffled) shows how often unknown examples reach the cut by chance; that
share is subtracted from the noise rate Ê, not from the flags, so a few
flagged examples may be right after all (the summary says how many to
expect).

The input is never changed, and --out and --flagged may not name it (or
any other input). Each output is written to a temporary file and renamed
into place. With log-prob files, --data is the SFT file they were made
from, matched by line: the n-th line of the log-prob files (over all of
them, in order) scores the n-th example of --data, and their counts must
agree; lines of several sequences (n > 1, batch replies) are refused.

With no usable cut (the model reproduces fewer than 10 labels: it knows too
little of the data to judge them) clean writes nothing, says why and exits
with status 1. TGI gives no top-k lists for prompt tokens, which the
analysis needs: clean on TGI says so and writes nothing.

The flagged file's lines:

  {"data_line": 17, "id": "sft.jsonl:17", "reason": "the model answers ...",
   "own_answer": " Paris.", "confidence": 0.93, "example": {...the SFT line...}}`,
}

func init() { cmdClean.run = runClean }

func runClean(e *env, args []string) error {
	f := newFlags(e, "clean", cmdClean.usage, cmdClean.long)
	pi := addProbeInputs(f)
	f.Lookup("data").Usage = "the SFT `file` to clean (with --logprobs, the file they were scored from; shapes in 'selector probe -h')"
	f.Lookup("server-kind").Usage = "the server: auto, vllm, sglang or tgi (see 'selector probe -h')"
	out := f.String("out", "", "the clean SFT `file` to write (required)")
	flagged := f.String("flagged", "", "the flagged examples' `file` (default OUT with .flagged.jsonl)")
	asJSON := f.Bool("json", false, "print the summary as JSON")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	switch {
	case *out == "":
		return f.usagef("--out CLEAN.jsonl is required")
	case *pi.data == "":
		return f.usagef("--data SFT.jsonl is required: the SFT file to clean (with --logprobs, the file they were made from)")
	case !*pi.noiseAware:
		return f.usagef("--noise-aware=false: clean needs the noise-aware probe")
	}
	if *flagged == "" {
		*flagged = strings.TrimSuffix(*out, ".jsonl") + ".flagged.jsonl"
	}
	inputs := append(append([]string{*pi.data}, pi.logprobs...), pos...)
	inputs = append(inputs, pi.null...)
	if *pi.model != "" {
		inputs = append(inputs, *pi.model)
	}
	for _, o := range []struct{ flag, path string }{{"--out", *out}, {"--flagged", *flagged}} {
		for _, in := range inputs {
			if sameFile(o.path, in) {
				return f.usagef("%s %s is an input: clean writes new files and never touches its inputs", o.flag, o.path)
			}
		}
	}
	if sameFile(*out, *flagged) {
		return f.usagef("--out and --flagged name the same file %s", *out)
	}
	rep, err := pi.report(e, f, pos)
	if err != nil {
		return err
	}
	if pi.savedReports > 0 {
		return errors.New("clean needs the probe's inputs, not saved reports: a saved report does not say which data lines its flags came from")
	}
	na := rep.NoiseAware
	switch {
	case na == nil:
		return errors.New("the probe made no noise-aware analysis")
	case na.Result == nil:
		return fmt.Errorf("nothing written: %s", na.Unavailable)
	case na.Result.Cut == nil:
		return fmt.Errorf("nothing written: no usable cut. %s", strings.Join(na.Result.Notes, " "))
	}
	byRecord := len(pi.servers) == 0 && *pi.model == ""
	var lines []int
	if byRecord {
		if lines, err = exampleLines(*pi.data); err != nil {
			return err
		}
	}
	flags, err := probe.FlagLines(na, *pi.data, byRecord, pi.records, lines)
	if err != nil {
		return err
	}
	in, err := os.Open(*pi.data)
	if err != nil {
		return err
	}
	defer in.Close()
	var st probe.CleanStats
	err = atomicfile.Write(*out, func(cw io.Writer) error {
		return atomicfile.Write(*flagged, func(fw io.Writer) error {
			var err error
			st, err = probe.Clean(in, *pi.data, flags, cw, fw)
			return err
		})
	})
	if err != nil {
		return err
	}
	e.log.Info().Str("file", *out).Int("lines", st.Kept).Msg("wrote the clean data")
	e.log.Info().Str("file", *flagged).Int("lines", st.Flagged).Msg("wrote the flagged examples")
	if *asJSON {
		return writeJSON(e.stdout, cleanJSON{CleanStats: st, Out: *out, FlaggedFile: *flagged, Result: na.Result})
	}
	printClean(e.stdout, st, *out, *flagged, na.Result)
	return nil
}

// cleanJSON is selector clean's --json summary.
type cleanJSON struct {
	probe.CleanStats
	Out         string             `json:"out"`
	FlaggedFile string             `json:"flagged_file"`
	Result      *labelnoise.Result `json:"noise_aware"`
}

func printClean(w io.Writer, st probe.CleanStats, out, flagged string, r *labelnoise.Result) {
	fmt.Fprintf(w, "clean: %d of %d examples flagged (method %s)\n", st.Flagged, r.Examples, r.Method)
	if r.Noise != nil {
		fmt.Fprintf(w, "  noise rate Ê   %.3f   95%% CI %.3f – %.3f  (wrong labels among the %.0f %% of examples the model knows)\n",
			r.Noise.Value, r.Noise.CI[0], r.Noise.CI[1], 100*r.Known.Value)
	} else {
		fmt.Fprintf(w, "  noise rate Ê   undefined\n")
	}
	fmt.Fprintf(w, "  capability Ĉ   %.3f   95%% CI %.3f – %.3f  (raw mean p %.3f)\n", r.Capability.Value, r.Capability.CI[0], r.Capability.CI[1], r.RawMeanP)
	if r.Null != nil && r.Null.Used && r.Known != nil {
		unknown := float64(r.Examples) * (1 - r.Known.Value)
		fmt.Fprintf(w, "  null set       %.1f %% of unknown examples reach the cut by chance: about %.0f of the flags may be right labels\n",
			100*r.Null.FalsePositive, min(r.Null.FalsePositive*unknown, float64(st.Flagged)))
	}
	fmt.Fprintf(w, "  wrote %s (%d lines) and %s (%d lines)\n", out, st.Kept, flagged, st.Flagged)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", wrap(n, 74, "        "))
	}
}

// exampleLines returns the line of each example of an SFT file, in order.
func exampleLines(path string) ([]int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	exs, err := sftdata.ReadAll(fh, path)
	if err != nil {
		return nil, err
	}
	lines := make([]int, len(exs))
	for i, ex := range exs {
		lines[i] = ex.Line
	}
	return lines, nil
}

// sameFile reports whether a and b name the same file: the same file on
// disk, or the same absolute path.
func sameFile(a, b string) bool {
	sa, ea := os.Stat(a)
	sb, eb := os.Stat(b)
	if ea == nil && eb == nil {
		return os.SameFile(sa, sb)
	}
	aa, err1 := filepath.Abs(a)
	ab, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == ab
}
