package selector

import (
	"embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"

	"github.com/capsel/capsel/choose"
	"github.com/capsel/capsel/objectives"
)

// The exports' program text lives in templates/, one file per snippet,
// named for the language it renders (trl_loss.py.tmpl is Python), so that it
// reads as that language and the rendered exports can be checked by its
// tools (export_test.go parses and runs the Python). A new snippet is a new
// file there, rendered with render.
//
//go:embed templates/*.tmpl
var templateFiles embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFiles, "templates/*.tmpl"))

// render executes the named template with data. The templates are fixed at
// build time and tested, so a failure is a bug.
func render(name string, data any) string {
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		panic("selector: template " + name + ": " + err.Error())
	}
	return b.String()
}

// Format names a trainer config target.
type Format string

// The export formats, in the order Formats lists them.
const (
	FormatTOML         Format = "toml"         // capsel's own trainer: objective = "<spec>" in the run TOML
	FormatVerl         Format = "verl"         // the paper's verl fork: trainer.objective_trans=<key>
	FormatTRL          Format = "trl"          // TRL SFTTrainer: loss_type, or a compute_loss_func
	FormatLlamaFactory Format = "llamafactory" // LLaMA-Factory YAML: use_dft_loss
	FormatSwift        Format = "swift"        // ms-swift command line: --enable_dft_loss
	FormatAxolotl      Format = "axolotl"      // Axolotl YAML: Liger token scaling
)

// ErrFormat is wrapped by the errors ParseFormat and ExportObjective return
// for a format they do not know.
var ErrFormat = errors.New("selector: unknown export format")

// Formats lists the accepted export formats.
func Formats() []Format {
	return []Format{FormatTOML, FormatVerl, FormatTRL, FormatLlamaFactory, FormatSwift, FormatAxolotl}
}

// formatAliases are other spellings ParseFormat accepts.
var formatAliases = map[string]Format{
	"llama-factory": FormatLlamaFactory,
	"llama_factory": FormatLlamaFactory,
	"ms-swift":      FormatSwift,
}

// ParseFormat reads a format name, without regard to case. It also accepts
// llama-factory, llama_factory and ms-swift. The error lists the accepted
// names.
func ParseFormat(s string) (Format, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, f := range Formats() {
		if name == string(f) {
			return f, nil
		}
	}
	if f, ok := formatAliases[name]; ok {
		return f, nil
	}
	return "", fmt.Errorf("%w %q; %s", ErrFormat, s, acceptedFormats())
}

func acceptedFormats() string {
	names := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "accepted formats: " + strings.Join(names, ", ")
}

func (f Format) known() bool {
	for _, g := range Formats() {
		if f == g {
			return true
		}
	}
	return false
}

// trainer is the name notes use for the format's trainer.
func (f Format) trainer() string {
	switch f {
	case FormatTOML:
		return "capsel's trainer"
	case FormatVerl:
		return "The paper's verl fork"
	case FormatTRL:
		return "TRL"
	case FormatLlamaFactory:
		return "LLaMA-Factory"
	case FormatSwift:
		return "ms-swift"
	case FormatAxolotl:
		return "Axolotl"
	}
	return string(f)
}

// Export is the text to paste plus notes on fidelity.
type Export struct {
	Format Format
	// Text is the exact config lines or code to paste, ending in a newline.
	// When the trainer cannot express the objective, every line is a
	// comment, so that pasting it changes nothing silently.
	Text string
	// Exact is true if the trainer computes the objective exactly: the same
	// per-token gradient, averaged over the same tokens.
	Exact bool
	// Notes are plain sentences: what is approximated or impossible, and
	// what to do instead.
	Notes []string
}

// ExportOptions tunes ExportObjective.
type ExportOptions struct {
	// AutoFallback is what to export when the objective is adaptive and the
	// trainer cannot run it: for example the pilot sweep's best fixed
	// objective. It must not itself be adaptive. The zero value exports
	// auto-theory's fallback as nll and says why, and refuses auto (see
	// ErrNeedsMeasurement).
	AutoFallback objectives.Objective
	// FallbackWhy says where AutoFallback comes from, completing "Exported X
	// instead, …" (for example "the best fixed objective of your pilot
	// sweep"); empty when it was simply given.
	FallbackWhy string
	// Weighting is how the code capsel writes (TRL, ms-swift) normalises
	// the loss over gradient accumulation and ranks; for the trainers'
	// built-in settings it must match what they do, or be left default.
	Weighting Weighting
	// AutoTheory are the auto-theory settings its TRL and ms-swift exports
	// fix in the code; needed only for auto-theory to trl or swift.
	AutoTheory AutoTheorySettings
	// Auto is auto resolved: the call the measurement of the base model on
	// the user's data makes (choose.Decide), with the number of examples it
	// flagged. auto to any trainer exports that call's objective; without
	// it, auto needs a fallback (AutoFallback) or is refused (ErrNeedsMeasurement).
	Auto *ResolvedAuto
}

// ResolvedAuto is auto after its measurement: the call and the flags.
type ResolvedAuto struct {
	Call    choose.Call
	Flagged int
}

// ExportRecommendation exports a recommendation's objective to f. Where
// the trainer cannot run it exactly and the recommendation's fallback
// (Recommendation.Fallback) it can, it exports the fallback, and the first
// note says so.
func ExportRecommendation(r Recommendation, f Format, opt ExportOptions) (Export, error) {
	o, err := objectives.Parse(r.Objective)
	if err != nil {
		return Export{}, fmt.Errorf("selector: the recommendation's objective: %w", err)
	}
	if o.Adaptive() {
		return ExportObjective(o, f, opt)
	}
	e, fell, err := exportOrFallback(o, r.Fallback, f, opt)
	if fell {
		e.Notes = append([]string{fmt.Sprintf("%s cannot run %s exactly, so this is the recommendation's fallback, %s; export %s to another trainer (selector export %s --to FORMAT) to train the recommendation itself.", f.trainer(), o, r.Fallback, o, o)}, e.Notes...)
	}
	return e, err
}

// exportOrFallback exports the fixed objective o to f or, where f cannot
// run o exactly and can run the fixed objective fallback exactly, the
// fallback (fell true).
func exportOrFallback(o objectives.Objective, fallback string, f Format, opt ExportOptions) (e Export, fell bool, err error) {
	if e, err = exportFixed(o, f, opt); err != nil || e.Exact || fallback == "" || fallback == o.String() {
		return e, false, err
	}
	fb, perr := objectives.Parse(fallback)
	if perr != nil || fb.Adaptive() {
		return e, false, nil
	}
	if fx, ferr := exportFixed(fb, f, opt); ferr == nil && fx.Exact {
		return fx, true, nil
	}
	return e, false, nil
}

// ExportObjective writes o as the config of the trainer named by f:
//
//	toml          objective = "<canonical spec>" (capsel's trainer; exact for every objective, auto included)
//	verl          trainer.objective_trans=<key> for the paper's keys (dft as p, the same gradient);
//	              DEFT and Cayley_Trans for deft and deft-cayley (the DEFT fork of that code)
//	trl           loss_type="nll" or "dft" where that is the objective; otherwise a Python file with a
//	              compute_loss_func for every fixed objective and auto-theory
//	llamafactory  use_dft_loss for p, dft and GeneralFamily-1; use_eaft_loss for eaft-α; use_asft_loss for asft-α
//	swift         --enable_dft_loss for p, dft and GeneralFamily-1; otherwise a loss plugin
//	              (--external_plugins, --loss_type) for every fixed objective and auto-theory
//	axolotl       Liger token scaling for p, dft and GeneralFamily-1; use_eaft for eaft-axolotl-α-k
//
// Objectives of p that a trainer cannot express get commented-out text
// naming the nearest setting it has (by the shape of the gradient weight
// W(p) over p ∈ [0, 1]), Exact false, and notes saying where the objective
// can be trained exactly; the gated and anchored objectives (EAFT, DEFT,
// ASFT), which have no W(p), get commented-out text and those notes.
// Degenerate parameters are recognised: blend-1, focal-0, OnlyTopLogP-0 and
// OnlyBottomLogP-1 are NLL; blend-0, GeneralFamily-1, OnlyTopP-0 and
// OnlyBottomP-1 are p.
//
// auto-theory is exported to trl and swift as a stateful hook and to the
// others as a fixed fallback (opt.AutoFallback, else nll) with notes saying
// why. auto is what capsel's trainer does: measure the base model on the
// data once, then train the objective the measurement calls for, without
// the flagged examples when that is NLL. Resolved (opt.Auto), it exports
// exactly as that objective (or, for a trainer that cannot run it, as the
// call's fallback), with a note saying how to drop the flagged examples
// (selector clean); unresolved, with a fallback its text is the
// fallback's, and otherwise the error wraps ErrNeedsMeasurement.
//
// Errors: an invalid objective, an unknown format, an adaptive AutoFallback,
// a weighting the trainer's built-in setting does not use, incomplete
// auto-theory settings, auto without fallback.
func ExportObjective(o objectives.Objective, f Format, opt ExportOptions) (Export, error) {
	if !o.Valid() {
		return Export{}, errors.New("selector: cannot export an invalid objective")
	}
	if !f.known() {
		return Export{}, fmt.Errorf("%w %q; %s", ErrFormat, string(f), acceptedFormats())
	}
	if _, err := ParseWeighting(string(opt.Weighting)); err != nil {
		return Export{}, err
	}
	if o.Adaptive() && f != FormatTOML {
		return exportAdaptive(o, f, opt)
	}
	e, err := exportFixed(o, f, opt)
	if err != nil {
		return Export{}, err
	}
	return e, nil
}

func exportFixed(o objectives.Objective, f Format, opt ExportOptions) (Export, error) {
	var e Export
	w := opt.Weighting
	switch f {
	case FormatTOML:
		e = exportTOML(o)
		if w == WeightingFork {
			e.Notes = append(e.Notes, "capsel's trainer does not accumulate gradients: each step is one batch, on which the fork weighting and the tokens weighting are the same.")
		}
		return e, nil
	case FormatTRL, FormatSwift:
		return exportCode(o, f, opt)
	case FormatVerl:
		e = exportVerl(o)
	default:
		e = exportBuiltin(o, f)
	}
	return e, checkBuiltinWeighting(o, f, e, w)
}

// builtinWeighting is how the trainer's own setting normalises the loss over
// micro-batches: the paper's fork (and the DEFT fork) and LLaMA-Factory's
// ASFT sum per-micro-batch means; the others divide by num_items_in_batch.
func builtinWeighting(o objectives.Objective, f Format) Weighting {
	if f == FormatVerl || (f == FormatLlamaFactory && o.Kind() == objectives.KindASFT) {
		return WeightingFork
	}
	return WeightingTokens
}

func checkBuiltinWeighting(o objectives.Objective, f Format, e Export, w Weighting) error {
	if w == WeightingDefault || !e.Exact || w == builtinWeighting(o, f) {
		return nil
	}
	return fmt.Errorf("selector: %s's setting for %s uses the %s weighting, not %s; export to trl or swift, whose code capsel writes, to choose the weighting", f.trainer(), o, builtinWeighting(o, f), w)
}

// exportAdaptive handles auto and auto-theory for trainers other than capsel's.
func exportAdaptive(o objectives.Objective, f Format, opt ExportOptions) (Export, error) {
	if o.Kind() == objectives.KindAutoTheory && (f == FormatTRL || f == FormatSwift) {
		return exportCode(o, f, opt)
	}
	fb, given := opt.AutoFallback, opt.AutoFallback.Valid()
	if given && fb.Adaptive() {
		return Export{}, fmt.Errorf("selector: the fallback for %s must be a fixed objective, not %s", o, fb)
	}
	var why []string
	switch {
	case o.Kind() == objectives.KindAuto && opt.Auto != nil:
		return exportResolvedAuto(f, opt)
	case o.Kind() == objectives.KindAuto:
		if !given {
			return Export{}, fmt.Errorf("%w: %s to %s: %s", ErrNeedsMeasurement, o, f, autoNeedsMeasurement)
		}
		why = append(why, fmt.Sprintf("%s was not resolved: %s", o, autoNeedsMeasurement))
	case f == FormatVerl:
		why = append(why, "The paper's verl fork cannot run auto-theory without a patch to its SFT trainer: training_step would have to run a forward pass without gradient over the step's micro-batches every K steps, all-reduce the rate statistics over the data-parallel group and pick the candidate before the loop that calls _compute_loss_and_backward, which reads config.trainer.objective_trans instead of that choice, and save the choice in its checkpoints; capsel does not ship that patch.")
	default:
		why = append(why, fmt.Sprintf("%s's built-in losses cannot change objective during training; export auto-theory to trl or swift, where capsel writes the hook that does.", f.trainer()))
	}
	if !given {
		fb = objectives.NLL()
	}
	e, err := exportFixed(fb, f, opt)
	if err != nil {
		return Export{}, err
	}
	e.Exact = false
	switch {
	case given && opt.FallbackWhy != "":
		why = append(why, fmt.Sprintf("Exported %s instead, %s; export to toml to train %s itself with capsel's trainer.", fb, opt.FallbackWhy, o))
	case given:
		why = append(why, fmt.Sprintf("Exported %s instead, the fallback you gave; export to toml to train %s itself with capsel's trainer.", fb, o))
	default:
		why = append(why, fmt.Sprintf("Exported nll instead, the safe default: run a short pilot sweep of fixed objectives and export its winner, or export to toml to train %s with capsel's trainer.", o))
	}
	e.Notes = append(why, e.Notes...)
	return e, nil
}

// autoNeedsMeasurement says how to resolve auto for another trainer.
const autoNeedsMeasurement = "auto chooses NLL or asft-0.1 (and whether to drop flagged examples) by measuring the base model on your data, so its export needs that measurement: run 'selector recommend' on the base model (--server, --model or log-prob files) with --export, or give 'selector export auto' a probe report with --report; capsel's own trainer measures it itself (export to toml)."

// ErrNeedsMeasurement is wrapped by the error ExportObjective returns for
// auto to a trainer other than capsel's without its measurement
// (ExportOptions.Auto) or a fallback.
var ErrNeedsMeasurement = errors.New("selector: auto needs the measurement of the base model")

// exportResolvedAuto exports auto as the objective its measurement calls
// for: exactly what capsel's trainer would train, given the same
// measurement.
func exportResolvedAuto(f Format, opt ExportOptions) (Export, error) {
	c := opt.Auto.Call
	e, fell, err := exportOrFallback(objectives.MustParse(c.Objective), c.Fallback, f, opt)
	if err != nil {
		return Export{}, err
	}
	notes := []string{fmt.Sprintf("auto, resolved by the measurement of the base model on your data: %s (%s).", c.Objective, strings.Join(c.Reasons, " "))}
	if fell {
		notes = append(notes, fmt.Sprintf("%s cannot run %s exactly, so this is its fallback, %s; capsel's own auto trains %s (export to toml), and so does the export to a trainer that has it.", f.trainer(), c.Objective, c.Fallback, c.Objective))
	}
	if c.DropFlagged {
		notes = append(notes, fmt.Sprintf("Train on the data without the %d flagged examples, as capsel's auto does: selector clean (with the same probe inputs and --data) writes it.", opt.Auto.Flagged))
	}
	e.Notes = append(notes, e.Notes...)
	return e, nil
}

// TOMLObjectiveKey is the key of capsel's run TOML that names the
// objective: the toml export writes it, and 'selector train --config' reads
// it (cmd/selector/runconfig.go takes the key from here).
const TOMLObjectiveKey = "objective"

func exportTOML(o objectives.Objective) Export {
	e := Export{Format: FormatTOML, Text: fmt.Sprintf("%s = %q\n", TOMLObjectiveKey, o.Canonical()), Exact: true}
	if o.Adaptive() {
		e.Notes = []string{fmt.Sprintf("%s is resolved while training (%s), so only capsel's trainer (selector train) runs it.", o, o.Formula())}
	}
	return e
}

// reduce returns nll or p when o has exactly that gradient, with a sentence
// saying why (empty when o is nll or p itself); ok is false otherwise.
func reduce(o objectives.Objective) (r objectives.Objective, why string, ok bool) {
	q := o.Param()
	switch o.Kind() {
	case objectives.KindNLL:
		return objectives.NLL(), "", true
	case objectives.KindP:
		return objectives.P(), "", true
	case objectives.KindDFT:
		return objectives.P(), "dft (−sg(p)·log p) has exactly the gradient of p (1 − p).", true
	case objectives.KindGeneral:
		if q == 1 {
			return objectives.P(), "GeneralFamily-1 is (1 − p¹)/1 = 1 − p, which is p.", true
		}
	case objectives.KindBlend:
		switch q {
		case 1:
			return objectives.NLL(), "blend-1 is 1·(−log p) + 0·(1 − p), which is NLL.", true
		case 0:
			return objectives.P(), "blend-0 is 0·(−log p) + 1·(1 − p), which is p.", true
		}
	case objectives.KindFocal:
		if q == 0 {
			return objectives.NLL(), "focal-0 is −(1 − p)⁰·log p = −log p, which is NLL.", true
		}
	case objectives.KindOnlyTopLogP:
		if q == 0 {
			return objectives.NLL(), "OnlyTopLogP-0 keeps every token (p ≥ 0 always), so it is NLL.", true
		}
	case objectives.KindOnlyBottomLogP:
		if q == 1 {
			return objectives.NLL(), "OnlyBottomLogP-1 keeps every token (p ≤ 1 always), so it is NLL.", true
		}
	case objectives.KindOnlyTopP:
		if q == 0 {
			return objectives.P(), "OnlyTopP-0 keeps every token (p ≥ 0 always), so it is p.", true
		}
	case objectives.KindOnlyBottomP:
		if q == 1 {
			return objectives.P(), "OnlyBottomP-1 keeps every token (p ≤ 1 always), so it is p.", true
		}
	}
	return o, "", false
}

// withWhy prepends why to notes when it is not empty.
func withWhy(why string, notes ...string) []string {
	if why == "" {
		return notes
	}
	return append([]string{why}, notes...)
}

// ---- verl (the paper's fork, github.com/GaotangLi/Beyond-Log-Likelihood) ----

// verlKey returns o's trainer.objective_trans key in the paper's verl fork.
// The fork reads the parameter as float(key.split("-")[1]), so the number is
// written without an exponent: 1e-05 would split into "1e" and "05".
func verlKey(o objectives.Objective) (string, bool) {
	num := strconv.FormatFloat(o.Param(), 'f', -1, 64)
	switch o.Kind() {
	case objectives.KindNLL:
		return "original", true
	case objectives.KindP:
		return "p", true
	case objectives.KindGeneral:
		return "GeneralFamily-" + num, true
	case objectives.KindOnlyTopP:
		return "OnlyTopP-" + num, true
	case objectives.KindOnlyBottomP:
		return "OnlyBottomP-" + num, true
	case objectives.KindOnlyTopLogP:
		return "OnlyTopLogP-" + num, true
	case objectives.KindOnlyBottomLogP:
		return "OnlyBottomLogP-" + num, true
	case objectives.KindDEFT:
		return "DEFT", true
	case objectives.KindDEFTCayley:
		return "Cayley_Trans", true
	}
	return "", false
}

const (
	verlSPNote        = "Keep ulysses_sequence_parallel_size at 1 (the default): above 1 (which needs use_remove_padding) _compute_loss_and_backward takes its sequence-parallel branch, whose loss is plain cross-entropy whatever objective_trans says."
	verlWeightingNote = "Under gradient accumulation the fork sums each micro-batch's mean without weights (its backward() runs inside _compute_loss_and_backward, before training_step divides by the number of micro-batches): the fork weighting, which the trl and swift exports offer with --weighting fork."
	deftForkNote      = "DEFT and Cayley_Trans are keys of the DEFT fork of the paper's code (github.com/luludus/DEFT, main_verl/trainer/fsdp_sft_trainer.py at bbe7896), not of the paper's fork; its other keys are the paper's."
)

func exportVerl(o objectives.Objective) Export {
	key, ok := verlKey(o)
	var why string
	if !ok {
		var r objectives.Objective
		if r, why, ok = reduce(o); ok {
			key, _ = verlKey(r)
		}
	}
	if !ok && !o.OfP() {
		return unsupported(FormatVerl, o)
	}
	if !ok {
		near := nearest(o, verlCandidates())
		nk, _ := verlKey(near)
		return inexpressible(FormatVerl, o, near, "trainer.objective_trans="+nk+"\n")
	}
	e := Export{Format: FormatVerl, Text: "trainer.objective_trans=" + key + "\n", Exact: true}
	var notes []string
	switch o.Kind() {
	case objectives.KindDFT:
		notes = append(notes, "The fork has no DFT key; p has exactly DFT's gradient, so it trains the same model, and only the logged loss differs (1 − p instead of −p·log p).")
		why = ""
	case objectives.KindDEFT, objectives.KindDEFTCayley:
		notes = append(notes, deftForkNote)
	}
	if o.Kind() == objectives.KindDEFTCayley {
		notes = append(notes, "Cayley_Trans's floor reads the mean p of each micro-batch (per rank), so micro_batch_size_per_gpu is part of the objective.")
	}
	if key != "original" {
		notes = append(notes, verlSPNote)
	}
	e.Notes = withWhy(why, append(notes, verlWeightingNote)...)
	return e
}

// verlCandidates are the keys the nearest setting is chosen from: NLL and
// GeneralFamily-α on the α grid of the paper's convexity sweep (Fig. 6:
// 0.1 to 0.9 by 0.1, then 1 to 10 by 1), with α = 1 written as p.
func verlCandidates() []objectives.Objective {
	c := []objectives.Objective{objectives.NLL()}
	for i := 1; i <= 9; i++ {
		c = append(c, mustGeneral(float64(i)/10))
	}
	c = append(c, objectives.P())
	for a := 2; a <= 10; a++ {
		c = append(c, mustGeneral(float64(a)))
	}
	return c
}

func mustGeneral(alpha float64) objectives.Objective {
	o, err := objectives.GeneralFamily(alpha)
	if err != nil {
		panic(err)
	}
	return o
}

// ---- LLaMA-Factory, Axolotl (and ms-swift's built-in DFT) ----

// Citations of the trainers' code the notes below rest on.
const (
	lfAt      = "src/llamafactory/train/sft/trainer.py and train/trainer_utils.py, hiyouga/LLaMA-Factory ff6d4d1"
	axolotlAt = "src/axolotl/monkeypatch/loss/eaft.py and core/builders/causal.py, axolotl-ai-cloud/axolotl 067b021"
)

// Notes shared by LLaMA-Factory's built-in losses.
const (
	lfPrecedenceNote = "LLaMA-Factory reads use_dft_loss, then use_eaft_loss, then use_asft_loss (an if/elif chain in CustomSeq2SeqTrainer.__init__, " + lfAt + "): the first one set wins silently, so set only one."
	lfMegatronNote   = "Its Megatron back ends (use_mca, use_megatron_bridge) never read use_dft_loss, use_eaft_loss or use_asft_loss and train plain NLL without a warning: keep the default Trainer back end."
	lfEmptyNote      = "On a micro-batch with no response tokens (all labels -100, e.g. responses cut off by cutoff_len) its DFT and EAFT losses return torch.tensor(0.0) without gradient, and that step's backward() fails with \"element 0 of tensors does not require grad\": keep responses inside cutoff_len."
	lfTokensNote     = "Under gradient accumulation it divides each micro-batch's sum by num_items_in_batch, the step's response tokens (the tokens weighting): the gradient of one batch holding the step's micro-batches."
)

// dftSetting is the config that turns on the trainer's DFT loss.
func dftSetting(f Format) string {
	switch f {
	case FormatLlamaFactory:
		return "use_dft_loss: true\n"
	case FormatSwift:
		return "--enable_dft_loss true\n"
	case FormatAxolotl:
		return "plugins:\n" +
			"  - axolotl.integrations.liger.LigerPlugin\n" +
			"liger_fused_linear_cross_entropy: true\n" +
			"liger_use_token_scaling: true\n"
	}
	panic("selector: no DFT setting for " + string(f))
}

// exportBuiltin writes the setting of LLaMA-Factory, Axolotl or ms-swift
// that computes o, where it has one: NLL, DFT (for p's gradient), and
// LLaMA-Factory's EAFT and ASFT and Axolotl's EAFT.
func exportBuiltin(o objectives.Objective, f Format) Export {
	v := strconv.FormatFloat(o.Param(), 'f', -1, 64)
	switch {
	case f == FormatLlamaFactory && o.Kind() == objectives.KindEAFT:
		return Export{Format: f, Exact: true, Text: "use_eaft_loss: true\neaft_alpha: " + v + "\n", Notes: []string{
			"LLaMA-Factory's eaft_loss_func scales each response token's cross-entropy by (H/3)^eaft_alpha, H the entropy of the softmax of its 20 largest logits, detached: eaft-" + v + " exactly (" + lfAt + "); torch.topk(k=20) needs a vocabulary of at least 20 tokens.",
			lfPrecedenceNote,
			lfTokensNote,
			"Where the model returns no logits, eaft_loss_func returns outputs.get(\"loss\", torch.tensor(0.0)), and as the Trainer popped the labels before the forward that is a constant without gradient: the backward fails. With enable_liger_kernel the labels are popped before the forward too, so Liger computes the logits and EAFT trains, without Liger's memory saving.",
			lfEmptyNote,
			lfMegatronNote,
		}}
	case f == FormatLlamaFactory && o.Kind() == objectives.KindASFT:
		return Export{Format: f, Exact: true, Text: "use_asft_loss: true\nasft_alpha: " + v + "\n# with finetuning_type: lora, also: ref_model: <the base model's name or path>\n", Notes: []string{
			"LLaMA-Factory's asft_loss_func is DFT (the cross-entropy weighted by the detached p) plus asft_alpha times KL(reference ‖ model) per token, each averaged over the micro-batch's response tokens: asft-" + v + " exactly (" + lfAt + "); whatever the help text says, asft_alpha multiplies the KL.",
			lfPrecedenceNote + " With use_dft_loss also set, its ASFT compute_loss hands the reference logits to the DFT loss as num_items_in_batch and the step fails.",
			"With finetuning_type: lora and no ref_model, create_ref_model returns None and the first step fails calling it: set ref_model to the base model (the commented line).",
			"The reference model is a second full copy of the weights, run forward without gradient on every micro-batch: about a third more compute per step.",
			"Its compute_loss runs the model with the labels in the inputs, so with enable_liger_kernel the model returns Liger's loss and no logits, and asft_loss_func returns that loss: it silently trains plain NLL. Keep Liger off.",
			"Under gradient accumulation each micro-batch contributes its mean, and the Trainer does not divide by gradient_accumulation_steps because compute_loss_func is set: the micro-batches' means are summed (the fork weighting), unlike its DFT and EAFT.",
			lfMegatronNote,
		}}
	case f == FormatAxolotl && o.Kind() == objectives.KindEAFTAxolotl:
		return Export{Format: f, Exact: true, Text: "use_eaft: true\neaft_alpha: " + v + "\neaft_k: " + strconv.Itoa(o.TopK()) + "\n", Notes: []string{
			"Axolotl's eaft_loss scales each response token's cross-entropy by H^eaft_alpha, H the entropy of the softmax of its min(eaft_k, V) largest logits (with log(π + 1e-10)), detached: " + o.String() + " exactly (" + axolotlAt + ").",
			"Under gradient accumulation it divides each micro-batch's sum by num_items_in_batch, the step's response tokens (the tokens weighting).",
			"eaft_loss reads outputs.logits without a check, so a model that returns none fails with a TypeError; with the Liger plugin the Trainer pops the labels before the forward, so Liger computes the logits and EAFT trains, without Liger's memory saving.",
		}}
	case !o.OfP():
		return nearEAFT(o, f)
	}
	r, why, ok := reduce(o)
	if !ok {
		near := nearest(o, []objectives.Objective{objectives.NLL(), objectives.P()})
		line := ""
		if near.Kind() == objectives.KindP {
			line = dftSetting(f)
		}
		return inexpressible(f, o, near, line)
	}
	if r.Kind() == objectives.KindNLL {
		e := Export{Format: f, Exact: true, Text: "# NLL is " + f.trainer() + "'s default SFT loss: nothing to set.\n"}
		switch f {
		case FormatLlamaFactory:
			e.Notes = withWhy(why, "Leave use_dft_loss, use_eaft_loss and use_asft_loss unset: each replaces NLL with another loss.")
		case FormatSwift:
			e.Notes = withWhy(why, "Leave --enable_dft_loss and --loss_type unset: each replaces NLL with another loss.")
		case FormatAxolotl:
			e.Notes = withWhy(why, "Leave use_eaft and liger_use_token_scaling unset: each replaces NLL with another loss.")
		}
		return e
	}
	e := Export{Format: f, Exact: true, Text: dftSetting(f)}
	switch f {
	case FormatLlamaFactory:
		e.Notes = withWhy(why, "LLaMA-Factory's DFT loss weights each token's cross-entropy by its detached probability, in fp32: exactly the gradient of p; only the logged loss (−p·log p) differs from 1 − p.",
			lfPrecedenceNote, lfTokensNote, lfEmptyNote, lfMegatronNote)
	case FormatSwift:
		e.Notes = withWhy(why,
			"ms-swift's DFT loss weights each token's cross-entropy by its detached probability: exactly the gradient of p; only the logged loss (−p·log p) differs from 1 − p.",
			"The flag works for swift sft and for Megatron-SWIFT (megatron sft).",
			"Under gradient accumulation swift sft divides each micro-batch's sum by num_items_in_batch, the step's response tokens (the tokens weighting); for the paper's fork weighting, export with --weighting fork, which writes a loss plugin instead.")
	case FormatAxolotl:
		e.Notes = withWhy(why,
			"Axolotl has no DFT option of its own (a native use_dft is proposed in its PR #4008, not merged); Liger's token scaling multiplies each token's cross-entropy by its detached probability, which is exactly the gradient of p.",
			"Token scaling needs liger_fused_linear_cross_entropy, as written; check that your model's architecture is on the Liger plugin's list of supported models.",
			"If your config already has a plugins list, add the Liger plugin to it rather than repeating the key.")
	}
	return e
}

// nearEAFT handles the gated and anchored objectives in LLaMA-Factory and
// Axolotl: each has the other's EAFT, which differs from it by the constant
// factor 3^α on the loss (LLaMA-Factory divides the top-20 entropy by 3,
// Axolotl does not), and nothing else.
func nearEAFT(o objectives.Objective, f Format) Export {
	v := strconv.FormatFloat(o.Param(), 'f', -1, 64)
	var line, factor string
	switch {
	case f == FormatAxolotl && o.Kind() == objectives.KindEAFT:
		line, factor = "use_eaft: true\neaft_alpha: "+v+"\neaft_k: 20\n", "3^"+v+" times"
	case f == FormatLlamaFactory && o.Kind() == objectives.KindEAFTAxolotl && o.TopK() == objectives.EAFTTopK:
		line, factor = "use_eaft_loss: true\neaft_alpha: "+v+"\n", "1/3^"+v+" times"
	default:
		return unsupported(f, o)
	}
	e := unsupported(f, o)
	var b strings.Builder
	b.WriteString(strings.SplitAfter(e.Text, "\n")[0])
	b.WriteString("# Nearest setting, the same gradient scaled by a constant; uncomment it to accept that:\n")
	for l := range strings.Lines(line) {
		b.WriteString("# " + l)
	}
	e.Text = b.String()
	e.Notes[1] = fmt.Sprintf("Its EAFT gives every token %s %s's loss and gradient (LLaMA-Factory divides the top-20 entropy by 3, Axolotl does not): the same direction, a different step size; under AdamW that is nearly the same run, but not the same numbers. The text leaves it commented out.", factor, o)
	return e
}

// ---- objectives a trainer cannot express ----

// inexpressible builds the export for an objective f cannot express: the
// nearest setting commented out, and notes on where to train o exactly.
// line is the nearest setting's config, "" when it is the trainer's default.
func inexpressible(f Format, o, near objectives.Objective, line string) Export {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s cannot express %s: f(p) = %s.\n", f.trainer(), o, o.Formula())
	nearNote := fmt.Sprintf("Judged by the shape of the gradient weight W(p) = s(p)·(1 − p) over p in [0, 1], the nearest setting it has is %s, a different objective; the text leaves it commented out, so uncomment it only if you accept the difference.", nearName(f, near))
	if line == "" {
		b.WriteString("# Its nearest loss is its default NLL, a different objective: nothing to set.\n")
		nearNote = "Judged by the shape of the gradient weight W(p) = s(p)·(1 − p) over p in [0, 1], the nearest loss it has is its default NLL, a different objective."
	} else {
		b.WriteString("# Nearest setting, a different objective; uncomment it to accept that:\n")
		for l := range strings.Lines(line) {
			b.WriteString("# " + l)
		}
	}
	return Export{Format: f, Text: b.String(), Exact: false, Notes: []string{
		fmt.Sprintf("%s has no setting for %s: %s.", f.trainer(), o, trainerHas(f)),
		nearNote,
		fmt.Sprintf("To train %s exactly, export to %s.", o, joinOr(exactRoutes(o, f))),
	}}
}

// unsupported builds the export for an objective that is not a function of
// p alone (EAFT, DEFT, ASFT) and that f has no setting for: no W(p) to
// compare settings by, so nothing but comments and the exact routes.
func unsupported(f Format, o objectives.Objective) Export {
	text := fmt.Sprintf("# %s cannot express %s: f = %s.\n# None of its settings computes it: nothing to set.\n", f.trainer(), o, o.Formula())
	return Export{Format: f, Text: text, Exact: false, Notes: []string{
		fmt.Sprintf("%s has no setting for %s: %s.", f.trainer(), o, trainerHas(f)),
		fmt.Sprintf("%s is a %s, so no setting of p alone approximates it.", o, o.Form()),
		fmt.Sprintf("To train %s exactly, export to %s.", o, joinOr(exactRoutes(o, f))),
	}}
}

// trainerHas says which of the family's objectives f has settings for.
func trainerHas(f Format) string {
	switch f {
	case FormatVerl:
		return "the paper's fork has original, p, GeneralFamily-α and the four threshold forms, and the DEFT fork adds DEFT and Cayley_Trans"
	case FormatLlamaFactory:
		return "its probability-weighted SFT losses are DFT (use_dft_loss, the gradient of p), EAFT with the top-20 entropy over 3 (use_eaft_loss) and ASFT (use_asft_loss)"
	case FormatSwift:
		return "its only built-in probability-weighted SFT loss is DFT (--enable_dft_loss), which has the gradient of p"
	case FormatAxolotl:
		return "its probability-weighted losses are DFT through Liger's token scaling (the gradient of p) and EAFT with the unnormalised top-k entropy (use_eaft)"
	}
	return "none"
}

// exactRoutes lists the formats other than f that compute o exactly.
func exactRoutes(o objectives.Objective, f Format) []string {
	_, _, ofP := reduce(o)
	var r []string
	add := func(g Format, how string) {
		if g != f {
			r = append(r, string(g)+how)
		}
	}
	add(FormatTRL, " (code capsel writes)")
	add(FormatSwift, " (a loss plugin capsel writes)")
	if _, ok := verlKey(o); ok {
		add(FormatVerl, "")
	}
	if ofP || o.Kind() == objectives.KindEAFT || o.Kind() == objectives.KindASFT {
		add(FormatLlamaFactory, "")
	}
	if ofP || o.Kind() == objectives.KindEAFTAxolotl {
		add(FormatAxolotl, "")
	}
	return append(r, "toml (capsel's own trainer)")
}

// nearName names the nearest setting in the trainer's own terms.
func nearName(f Format, near objectives.Objective) string {
	if f == FormatVerl {
		k, _ := verlKey(near)
		return "objective_trans=" + k
	}
	if near.Kind() == objectives.KindNLL {
		return "its default NLL"
	}
	return "DFT (the gradient of p)"
}

func joinOr(xs []string) string {
	switch len(xs) {
	case 1:
		return xs[0]
	case 2:
		return xs[0] + " or " + xs[1]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// nearest returns the candidate whose gradient weight W(p) = s(p)·(1 − p),
// normalised to unit mass on [0, 1], is closest to o's in L¹ distance,
// integrated by the midpoint rule on weightGrid cells. The learning rate
// absorbs a constant factor, so only the shape of W is compared; ties go to
// the earlier candidate.
func nearest(o objectives.Objective, candidates []objectives.Objective) objectives.Objective {
	target := weightShape(o)
	best, bestD := candidates[0], math.Inf(1)
	for _, c := range candidates {
		w := weightShape(c)
		var d float64
		for i := range w {
			d += math.Abs(w[i] - target[i])
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

const weightGrid = 2000

// weightShape is W(p) on the midpoints of weightGrid cells of [0, 1],
// scaled to sum to 1.
func weightShape(o objectives.Objective) []float64 {
	w := make([]float64, weightGrid)
	var sum float64
	for i := range w {
		w[i] = o.W((float64(i) + 0.5) / weightGrid)
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}
