package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/capsel/capsel/choose"
	"github.com/capsel/capsel/internal/atomicfile"
	"github.com/capsel/capsel/objectives"
	"github.com/capsel/capsel/probe"
	"github.com/capsel/capsel/selector"
	"github.com/capsel/capsel/train"
)

var cmdExport = &command{
	name:  "export",
	usage: "selector export SPEC --to FORMAT [--out FILE] [--weighting tokens|fork] [--report REPORT.json] [--fallback SPEC] [--json]",
	short: "write any objective as config or code for TRL, ms-swift, LLaMA-Factory, ...",
	long: `Writes the objective SPEC (any spec 'selector objectives list' accepts) for
the trainer FORMAT, with notes that say how to run it and what it does not do:

  toml          capsel's own trainer: objective = "SPEC" in the run TOML
  verl          the paper's verl fork: trainer.objective_trans=KEY (and the
                DEFT fork's DEFT and Cayley_Trans)
  trl           TRL's SFTTrainer: loss_type where TRL has the objective,
                otherwise a Python file with a compute_loss_func
  swift         ms-swift: --enable_dft_loss where it has the objective,
                otherwise a loss plugin (swift sft --external_plugins FILE
                --loss_type capsel)
  llamafactory  LLaMA-Factory YAML: use_dft_loss, use_eaft_loss, use_asft_loss
  axolotl       Axolotl YAML: Liger token scaling, use_eaft

The text goes to stdout (or atomically to --out) and the notes to stderr, so
that it can be redirected straight into the file the notes name:

  selector export GeneralFamily-10 --to trl > capsel_loss.py
  selector export eaft-1 --to llamafactory
  selector export auto-theory --to swift --out capsel_plugin.py
  selector export auto --to trl --report base.json
  selector export OnlyTopLogP-0.2 --to trl --weighting fork --json

Every fixed objective has exact TRL and ms-swift code, and so does
auto-theory (a stateful hook that re-ranks the candidates by the paper's rate
during training, saved in checkpoints). Where a trainer cannot express the
objective, the text is all comments (naming the nearest setting when there is
one) and the notes say which formats compute it exactly; the exit status is
still 0, and "exact: false" says so.

auto measures the base model on your data and trains what the measurement
calls for (NLL without the flagged examples, or the anchored asft-0.1; see
'selector train -h'). For another trainer it is resolved from a probe report
of the base model on that data, and exported exactly as the objective it
resolves to (or, where the trainer has no ASFT, as the call's fallback, −p
or −log p·1{p ≥ 0.2}), with a note on dropping the flagged examples
(selector clean):

  selector probe --server http://localhost:8000 --data sft.jsonl --out base.json
  selector export auto --to trl --report base.json > capsel_loss.py

('selector recommend ... --export trl' does both in one go.) Without
--report, --fallback SPEC exports a fixed objective in auto's place, with a
note.

--weighting chooses how the TRL and ms-swift code normalises the loss under
gradient accumulation: tokens (the default; divide by the step's response
tokens, the gradient of one batch holding every micro-batch, as TRL's own
losses do) or fork (sum the micro-batches' means, as the paper's verl fork
does). For the trainers' built-in settings it must match what they do.`,
}

func init() { cmdExport.run = runExport }

func runExport(e *env, args []string) error {
	f := newFlags(e, "export", cmdExport.usage, cmdExport.long)
	to := f.String("to", "", "the trainer `format` to write for: "+formatList())
	out := f.String("out", "", "write the text to `file` (atomically) instead of stdout")
	weighting := f.String("weighting", "", "the loss's `normalisation` under gradient accumulation: tokens or fork (default: the trainer's, tokens for TRL and ms-swift code)")
	fallback := f.String("fallback", "", "a fixed objective `spec` to export in place of an objective the trainer cannot run (auto, auto-theory)")
	report := f.String("report", "", "a probe report `file` with the noise-aware section: resolves auto to the objective its measurement calls for")
	asJSON := f.Bool("json", false, "print the export as JSON (format, objective, exact, text, notes)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return f.usagef("need exactly one objective SPEC, have %d arguments", len(pos))
	}
	o, err := objectives.Parse(pos[0])
	if err != nil {
		return f.usagef("%v", err)
	}
	if *to == "" {
		return f.usagef("--to is required: %s", formatList())
	}
	format, err := selector.ParseFormat(*to)
	if err != nil {
		return f.usagef("--to: %v", err)
	}
	opt := selector.ExportOptions{AutoTheory: autoTheorySettings()}
	if opt.Weighting, err = selector.ParseWeighting(*weighting); err != nil {
		return f.usagef("--weighting: %v", err)
	}
	if *fallback != "" {
		if opt.AutoFallback, err = objectives.Parse(*fallback); err != nil {
			return f.usagef("--fallback: %v", err)
		}
		if opt.AutoFallback.Adaptive() {
			return f.usagef("--fallback: %s is itself adaptive; give a fixed objective", *fallback)
		}
	}
	if *report != "" {
		if o.Kind() != objectives.KindAuto {
			return f.usagef("--report resolves auto; %s needs no measurement", o)
		}
		if opt.Auto, err = resolveAuto(*report); err != nil {
			return err
		}
	}
	ex, err := selector.ExportObjective(o, format, opt)
	if errors.Is(err, selector.ErrNeedsMeasurement) {
		return f.usagef("%v Or add --fallback SPEC to export a fixed objective in its place.", err)
	}
	if err != nil {
		return f.usagef("%v", err)
	}
	if *out != "" {
		if err := atomicfile.WriteBytes(*out, []byte(ex.Text)); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(e.stdout, struct {
			Objective string `json:"objective"`
			exportJSON
		}{o.String(), exportJSON{Format: string(ex.Format), Text: ex.Text, Exact: ex.Exact, Notes: ex.Notes}})
	}
	notesTo := e.stderr
	if *out != "" {
		fmt.Fprintf(e.stdout, "wrote %s: %s for %s (exact: %v)\n", *out, o, ex.Format, ex.Exact)
		notesTo = e.stdout
	} else {
		io.WriteString(e.stdout, ex.Text)
		fmt.Fprintf(notesTo, "%s for %s (exact: %v)\n", o, ex.Format, ex.Exact)
	}
	for _, n := range ex.Notes {
		fmt.Fprintf(notesTo, "  note: %s\n", wrap(n, 74, "        "))
	}
	return nil
}

// resolveAuto makes auto's call from a saved probe report's noise-aware
// section, with the report's region cuts.
func resolveAuto(path string) (*selector.ResolvedAuto, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	rep, err := probe.ReadReport(fh, path)
	if err != nil {
		return nil, err
	}
	na := rep.NoiseAware
	if na == nil || na.Result == nil {
		why := "it has no noise-aware section"
		if na != nil && na.Unavailable != "" {
			why = na.Unavailable
		}
		return nil, fmt.Errorf("%s: cannot resolve auto: %s (probe the base model with top-k lists, a server or a capsel checkpoint)", path, why)
	}
	c := choose.Decide(na.Result, rep.Placement.Cuts)
	return &selector.ResolvedAuto{Call: c, Flagged: len(na.Result.Flags)}, nil
}

// autoTheorySettings are capsel's trainer's auto-theory defaults, which its
// TRL and ms-swift exports write into the code.
func autoTheorySettings() selector.AutoTheorySettings {
	a := train.DefaultConfig().Auto
	return selector.AutoTheorySettings{Every: a.Every, Noise: a.Noise, Rate: a.Rate, Candidates: a.Candidates}
}
