package selector

import (
	"embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"

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
	// AutoFallback is what to export when the objective is auto or
	// auto-theory and the trainer cannot adapt the objective during
	// training: for example the pilot sweep's best fixed objective. The
	// zero value exports nll and says why. It must not itself be adaptive.
	AutoFallback objectives.Objective
}

// ExportObjective writes o as the config of the trainer named by f:
//
//	toml          objective = "<canonical spec>" (capsel's trainer; exact for every objective, auto included)
//	verl          trainer.objective_trans=<key> for the paper's keys; dft as p (same gradient)
//	trl           loss_type="nll" or "dft" where that is the objective; otherwise a compute_loss_func
//	llamafactory  use_dft_loss: true for p, dft and GeneralFamily-1; nothing for nll
//	swift         --enable_dft_loss true for the same set
//	axolotl       Liger token scaling for the same set
//
// Objectives that a trainer cannot express get commented-out text naming the
// nearest setting it has (by the shape of the gradient weight W(p) over
// p ∈ [0, 1]), Exact false, and notes saying where the objective can be
// trained exactly. Degenerate parameters are recognised: blend-1, focal-0,
// OnlyTopLogP-0 and OnlyBottomLogP-1 are NLL; blend-0, GeneralFamily-1,
// OnlyTopP-0 and OnlyBottomP-1 are p.
//
// Errors: an invalid objective, an unknown format, an adaptive AutoFallback.
func ExportObjective(o objectives.Objective, f Format, opt ExportOptions) (Export, error) {
	if !o.Valid() {
		return Export{}, errors.New("selector: cannot export an invalid objective")
	}
	if !f.known() {
		return Export{}, fmt.Errorf("%w %q; %s", ErrFormat, string(f), acceptedFormats())
	}
	if o.Adaptive() && f != FormatTOML {
		return exportAdaptive(o, f, opt)
	}
	if !o.Adaptive() && !o.OfP() && f != FormatTOML {
		return Export{}, fmt.Errorf("selector: %v is a %s, not of p alone, and the exports to other trainers do not cover it yet; export to toml to train it with capsel's trainer", o, o.Form())
	}
	return exportFixed(o, f), nil
}

func exportFixed(o objectives.Objective, f Format) Export {
	switch f {
	case FormatTOML:
		return exportTOML(o)
	case FormatVerl:
		return exportVerl(o)
	case FormatTRL:
		return exportTRL(o)
	}
	return exportDFTOnly(o, f)
}

// exportAdaptive handles auto and auto-theory for trainers other than capsel's.
func exportAdaptive(o objectives.Objective, f Format, opt ExportOptions) (Export, error) {
	fb, fromPilot := opt.AutoFallback, opt.AutoFallback.Valid()
	if fromPilot && fb.Adaptive() {
		return Export{}, fmt.Errorf("selector: the fallback for %s must be a fixed objective, not %s", o, fb)
	}
	if !fromPilot {
		fb = objectives.NLL()
	}
	e := exportFixed(fb, f)
	e.Exact = false
	notes := []string{fmt.Sprintf("%s cannot run %s: no trainer other than capsel's changes the objective during training.", f.trainer(), o)}
	if fromPilot {
		notes = append(notes, fmt.Sprintf("Exported %s instead, the best fixed objective of your pilot sweep; export to toml to train %s itself with capsel's trainer.", fb, o))
	} else {
		notes = append(notes, fmt.Sprintf("Exported nll instead, the safe default: run a short pilot sweep of fixed objectives (the recommendation lists one) and export its winner, or export to toml to train %s with capsel's trainer.", o))
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
	}
	return "", false
}

const verlSPNote = "Keep ulysses_sequence_parallel_size at 1 (the default): with sequence parallelism the fork ignores objective_trans and trains plain NLL."

func exportVerl(o objectives.Objective) Export {
	key, ok := verlKey(o)
	var why string
	if !ok {
		var r objectives.Objective
		if r, why, ok = reduce(o); ok {
			key, _ = verlKey(r)
		}
	}
	if !ok {
		near := nearest(o, verlCandidates())
		nk, _ := verlKey(near)
		return inexpressible(FormatVerl, o, near, "trainer.objective_trans="+nk+"\n")
	}
	e := Export{Format: FormatVerl, Text: "trainer.objective_trans=" + key + "\n", Exact: true}
	var notes []string
	if o.Kind() == objectives.KindDFT {
		notes = append(notes, "The fork has no DFT key; p has exactly DFT's gradient, so it trains the same model, and only the logged loss differs (1 − p instead of −p·log p).")
		why = ""
	}
	if key != "original" {
		notes = append(notes, verlSPNote)
	}
	e.Notes = withWhy(why, notes...)
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

// ---- TRL ----

func exportTRL(o objectives.Objective) Export {
	if r, why, ok := reduce(o); ok {
		if r.Kind() == objectives.KindNLL {
			return Export{Format: FormatTRL, Exact: true, Text: trlConfig("nll", "NLL; TRL's default \"chunked_nll\" is the same objective"),
				Notes: withWhy(why, "loss_type needs TRL 0.23 or later; on older versions drop that line, as NLL is the default.")}
		}
		return Export{Format: FormatTRL, Exact: true, Text: trlConfig("dft", "DFT: exactly the gradient of 1 - p"),
			Notes: withWhy(why,
				"TRL's DFT loss weights each token's log-likelihood by its detached probability, which is exactly the gradient of p; only the logged loss (−p·log p) differs from 1 − p.",
				"loss_type=\"dft\" needs TRL 0.23 or later; it also works with use_liger_kernel=True, through Liger's token scaling.")}
	}
	notes := []string{
		"Keep loss_type=\"nll\" as written: TRL rejects a compute_loss_func together with loss_type=\"dft\", and its default \"chunked_nll\" returns no logits.",
		"Keep use_liger_kernel=False: Liger's fused loss skips the logits, and capsel_loss stops with an error when it gets none.",
		"Only tokens whose label is not -100 count: train on a prompt-completion dataset (completion_only_loss) or set assistant_only_loss=True so that the loss covers response tokens only, as the paper does.",
		"Train without context or sequence parallelism: they pass pre-shifted labels, and capsel_loss shifts the labels itself, like TRL's own DFT loss.",
		"compute_loss_func needs TRL 0.15 or later, and loss_type TRL 0.23 or later; on 0.15 to 0.22 drop the loss_type line.",
	}
	if o.Thresholded() {
		notes = append(notes, "As in the paper's code, the loss is averaged over the tokens the threshold keeps, per micro-batch and per device; under gradient accumulation each micro-batch then weighs by its share of response tokens, as TRL weighs NLL.")
	}
	return Export{Format: FormatTRL, Exact: true, Text: trlLossFunc(o), Notes: notes}
}

// trlConfig is the SFTConfig for a built-in loss_type.
func trlConfig(lossType, comment string) string {
	return render("trl_config.py.tmpl", struct{ LossType, Comment string }{lossType, comment})
}

// pyFloat writes x as a Python float literal.
func pyFloat(x float64) string {
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// pyLoss describes one objective as Python: constants, the keep condition for
// thresholded objectives, and the per-token loss expression.
type pyLoss struct {
	consts  []string // "NAME = value" lines
	keep    string   // thresholded objectives: the condition on p, "" otherwise
	expr    string   // f(p) computed from logp
	formula string   // f(p) in ASCII, without the threshold
	remark  string   // how expr computes it, "" when obvious
}

func pyLossOf(o objectives.Objective) pyLoss {
	v := pyFloat(o.Param())
	g := strconv.FormatFloat(o.Param(), 'g', -1, 64)
	switch o.Kind() {
	case objectives.KindGeneral:
		return pyLoss{[]string{"ALPHA = " + v}, "", "-torch.expm1(ALPHA * logp) / ALPHA",
			"(1 - p**" + g + ") / " + g, "expm1 avoids cancellation near p = 1"}
	case objectives.KindOnlyTopP:
		return pyLoss{[]string{"Q = " + v}, "logp.exp() >= Q", "-torch.expm1(logp)", "1 - p", ""}
	case objectives.KindOnlyBottomP:
		return pyLoss{[]string{"Q = " + v}, "logp.exp() <= Q", "-torch.expm1(logp)", "1 - p", ""}
	case objectives.KindOnlyTopLogP:
		return pyLoss{[]string{"Q = " + v}, "logp.exp() >= Q", "-logp", "-log p", ""}
	case objectives.KindOnlyBottomLogP:
		return pyLoss{[]string{"Q = " + v}, "logp.exp() <= Q", "-logp", "-log p", ""}
	case objectives.KindLog1mP:
		return pyLoss{[]string{"CLAMP = " + pyFloat(objectives.Log1mPClamp)}, "",
			"torch.log(torch.clamp(-torch.expm1(logp), min=CLAMP))",
			"log(max(1 - p, CLAMP))", "flat, with zero gradient, where 1 - p < CLAMP"}
	case objectives.KindFocal:
		return pyLoss{[]string{"GAMMA = " + v}, "",
			"-torch.pow(torch.clamp(-torch.expm1(logp), min=1e-12), GAMMA) * logp",
			"-(1 - p)**" + g + " * log p", "the clamp keeps the gradient finite at p = 1"}
	case objectives.KindBlend:
		return pyLoss{[]string{"LAMBDA = " + v}, "",
			"-LAMBDA * logp - (1.0 - LAMBDA) * torch.expm1(logp)",
			g + " * (-log p) + " + strconv.FormatFloat(1-o.Param(), 'g', -1, 64) + " * (1 - p)", ""}
	}
	panic("selector: no Python loss for " + o.String())
}

// trlLossFunc writes a complete compute_loss_func for o and the TRL lines
// that wire it in (templates/trl_loss.py.tmpl). The function follows the
// paper's code: fp32 log-softmax, labels shifted by one with -100 ignored,
// the mean of f(p) over response tokens (over kept tokens for thresholded
// objectives).
func trlLossFunc(o objectives.Objective) string {
	pl := pyLossOf(o)
	doc := "Mean of f(p) = " + pl.formula + " over response tokens (labels != -100)."
	if pl.keep != "" {
		cond := strings.Replace(pl.keep, "logp.exp()", "p", 1)
		cond = strings.Replace(cond, "Q", strconv.FormatFloat(o.Param(), 'g', -1, 64), 1)
		doc = "Mean of f(p) = " + pl.formula + " over the response tokens (labels != -100) with " + cond + "."
	}
	return render("trl_loss.py.tmpl", struct {
		Spec, Formula, Doc string
		Consts             []string
		Keep, Expr, Remark string
	}{o.String(), o.Formula(), doc, pl.consts, pl.keep, pl.expr, pl.remark})
}

// ---- LLaMA-Factory, ms-swift, Axolotl: NLL or DFT only ----

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

func exportDFTOnly(o objectives.Objective, f Format) Export {
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
		e.Notes = withWhy(why, "LLaMA-Factory's DFT loss weights each token's cross-entropy by its detached probability, in fp32: exactly the gradient of p; only the logged loss (−p·log p) differs from 1 − p.")
	case FormatSwift:
		e.Notes = withWhy(why,
			"ms-swift's DFT loss weights each token's cross-entropy by its detached probability: exactly the gradient of p; only the logged loss (−p·log p) differs from 1 − p.",
			"The flag works for swift sft and for Megatron-SWIFT (megatron sft).")
	case FormatAxolotl:
		e.Notes = withWhy(why,
			"Axolotl has no DFT option of its own (a native use_dft is proposed in its PR #4008, not merged); Liger's token scaling multiplies each token's cross-entropy by its detached probability, which is exactly the gradient of p.",
			"Token scaling needs liger_fused_linear_cross_entropy, as written; check that your model's architecture is on the Liger plugin's list of supported models.",
			"If your config already has a plugins list, add the Liger plugin to it rather than repeating the key.")
	}
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
	var has string
	switch f {
	case FormatVerl:
		has = "its keys are original, p, GeneralFamily-α and the four threshold forms"
	case FormatLlamaFactory:
		has = "its only probability-weighted SFT loss is DFT (use_dft_loss), which has the gradient of p"
	case FormatSwift:
		has = "its only probability-weighted SFT loss is DFT (--enable_dft_loss), which has the gradient of p"
	case FormatAxolotl:
		has = "its only probability-weighted loss is DFT through Liger's token scaling, which has the gradient of p"
	}
	exact := []string{"trl (a compute_loss_func that computes it)"}
	if _, ok := verlKey(o); ok && f != FormatVerl {
		exact = append(exact, "verl")
	}
	exact = append(exact, "toml (capsel's own trainer)")
	return Export{Format: f, Text: b.String(), Exact: false, Notes: []string{
		fmt.Sprintf("%s has no setting for %s: %s.", f.trainer(), o, has),
		nearNote,
		fmt.Sprintf("To train %s exactly, export to %s.", o, joinOr(exact)),
	}}
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
