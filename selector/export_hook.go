package selector

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/capsel/capsel/objectives"
)

// This file writes the Python that TRL and ms-swift run for an objective
// they have no setting for (templates/hook.py.tmpl): a loss object that
// TRL's SFTTrainer takes as compute_loss_func and ms-swift registers in its
// loss mapping, and, for auto-theory, the state that re-ranks the
// candidates during training.

// Weighting says how a loss is normalised over the micro-batches of one
// optimizer step (gradient accumulation) and over data-parallel ranks.
type Weighting string

// The weightings.
const (
	// WeightingDefault is each format's own: tokens for the code capsel
	// writes, and whatever the trainer does for its built-in settings.
	WeightingDefault Weighting = ""
	// WeightingTokens divides each micro-batch's summed loss by
	// num_items_in_batch, the response tokens of the whole step, so that the
	// step's gradient is that of one batch holding all its micro-batches
	// (TRL's and transformers' convention; capsel's trainer, which does not
	// accumulate, computes the same).
	WeightingTokens Weighting = "tokens"
	// WeightingFork takes each micro-batch's mean over its tokens and sums
	// the micro-batches' means without weights: the paper's verl fork, whose
	// backward() runs before it divides by the number of micro-batches
	// (main_verl/trainer/fsdp_sft_trainer.py, _compute_loss_and_backward and
	// training_step, GaotangLi/Beyond-Log-Likelihood 220589d).
	WeightingFork Weighting = "fork"
)

// ParseWeighting reads a weighting name; "" is WeightingDefault.
func ParseWeighting(s string) (Weighting, error) {
	switch w := Weighting(strings.ToLower(strings.TrimSpace(s))); w {
	case WeightingDefault, WeightingTokens, WeightingFork:
		return w, nil
	}
	return "", fmt.Errorf("selector: unknown weighting %q; accepted: tokens (divide by the step's response tokens, TRL's convention) or fork (sum of per-micro-batch means, the paper's verl fork)", s)
}

// AutoTheorySettings are the settings of capsel's auto-theory that its
// export writes into the code: train.AutoConfig's Every, Noise, Rate and
// Candidates (cmd/selector passes train.DefaultConfig().Auto).
type AutoTheorySettings struct {
	Every      int
	Noise      float64
	Rate       string // "raw" or "normalised"
	Candidates []string
}

func (a AutoTheorySettings) validate() error {
	if a.Every < 1 || !(a.Noise >= 0 && a.Noise <= 1) || (a.Rate != "raw" && a.Rate != "normalised") || len(a.Candidates) == 0 {
		return fmt.Errorf("selector: auto-theory settings %+v are incomplete: need every ≥ 1, noise in [0, 1], rate raw or normalised, and candidates", a)
	}
	for _, s := range a.Candidates {
		o, err := objectives.Parse(s)
		if err != nil {
			return fmt.Errorf("selector: auto-theory candidate: %w", err)
		}
		if !o.OfP() {
			return fmt.Errorf("selector: auto-theory candidate %s is not a fixed function of p: the paper's rate covers only those", s)
		}
	}
	return nil
}

// pyObjective is one objective as a Python function of the scored rows'
// fp32 logits z, targets y, log p and the reference's logits ref, returning
// the per-token loss and the keep mask (None when every token counts).
type pyObjective struct {
	Spec, Func, Doc string
	Body            []string
	Thresholded     bool
	Eps             string
}

type pyCandidate struct{ Spec, Scale string }

type hookData struct {
	Spec, Formula, Command string
	Swift                  bool
	File, Module, LossName string
	Weighting              string
	Objectives             []pyObjective
	Fixed                  string // the objective for a fixed export, "" for auto-theory
	NeedsRef, NeedsTrainer bool
	Auto                   *struct {
		Every      int
		Noise      string
		Rate       string
		Candidates []pyCandidate
	}
}

// hookFile is the file name the export tells the user to save it as.
func hookFile(f Format) string {
	if f == FormatSwift {
		return "capsel_plugin.py"
	}
	return "capsel_loss.py"
}

// swiftLossName is the --loss_type (and --callbacks) name the plugin registers.
func swiftLossName(o objectives.Objective) string {
	if o.Kind() == objectives.KindAutoTheory {
		return "capsel_auto_theory"
	}
	return "capsel"
}

// renderHook writes the Python module for o (a fixed objective, or
// auto-theory with its settings) for TRL or ms-swift.
func renderHook(o objectives.Objective, f Format, w Weighting, auto AutoTheorySettings) (string, error) {
	if w == WeightingDefault {
		w = WeightingTokens
	}
	d := hookData{
		Spec: o.String(), Formula: "f = " + o.Formula(), Swift: f == FormatSwift,
		File: hookFile(f), Module: strings.TrimSuffix(hookFile(f), ".py"), LossName: swiftLossName(o),
		Weighting: string(w),
	}
	d.Command = "selector export " + o.String() + " --to " + string(f)
	if w != WeightingTokens {
		d.Command += " --weighting " + string(w)
	}
	if o.Kind() == objectives.KindAutoTheory {
		if err := auto.validate(); err != nil {
			return "", err
		}
		d.Formula = "the candidate with the best estimated risk-reduction rate, re-ranked every " + strconv.Itoa(auto.Every) + " steps"
		d.Auto = &struct {
			Every      int
			Noise      string
			Rate       string
			Candidates []pyCandidate
		}{Every: auto.Every, Noise: pyFloat(auto.Noise), Rate: auto.Rate}
		for i, s := range auto.Candidates {
			c := objectives.MustParse(s)
			d.Objectives = append(d.Objectives, pyObjectiveOf(c, i))
			d.Auto.Candidates = append(d.Auto.Candidates, pyCandidate{c.String(), pyScale(c)})
		}
		d.NeedsTrainer = f == FormatTRL
	} else {
		d.Fixed = o.String()
		d.Objectives = []pyObjective{pyObjectiveOf(o, 0)}
		d.NeedsRef = o.Form() == objectives.FormAnchored
		d.NeedsTrainer = d.NeedsRef && f == FormatTRL
	}
	return render("hook.py.tmpl", d), nil
}

// pyObjectiveOf writes o's per-token loss as a Python function. Constants
// are literals, so that the functions of several objectives can share a
// module.
func pyObjectiveOf(o objectives.Objective, i int) pyObjective {
	v := pyFloat(o.Param())
	po := pyObjective{Spec: o.String(), Func: "_loss_" + strconv.Itoa(i), Doc: o.String() + ": f = " + o.Formula(), Thresholded: o.Thresholded(), Eps: "0.0"}
	ret := func(expr string) []string { return []string{"return " + expr + ", None"} }
	keep := func(cond, expr string) []string {
		return []string{"keep = " + cond + "  # the current p, no gradient through the mask", "return " + expr + ", keep"}
	}
	switch o.Kind() {
	case objectives.KindNLL:
		po.Body = ret("-logp")
	case objectives.KindP:
		po.Body = ret("-torch.expm1(logp)")
	case objectives.KindDFT:
		po.Body = ret("-logp.detach().exp() * logp")
	case objectives.KindGeneral:
		po.Body = ret("-torch.expm1(" + v + " * logp) / " + v)
	case objectives.KindOnlyTopP:
		po.Body = keep("logp.detach().exp() >= "+v, "-torch.expm1(logp)")
	case objectives.KindOnlyBottomP:
		po.Body = keep("logp.detach().exp() <= "+v, "-torch.expm1(logp)")
	case objectives.KindOnlyTopLogP:
		po.Body = keep("logp.detach().exp() >= "+v, "-logp")
	case objectives.KindOnlyBottomLogP:
		po.Body = keep("logp.detach().exp() <= "+v, "-logp")
	case objectives.KindLog1mP:
		po.Body = append([]string{"# flat, with zero gradient, where 1 - p < " + pyFloat(objectives.Log1mPClamp)},
			ret("torch.log(torch.clamp(-torch.expm1(logp), min="+pyFloat(objectives.Log1mPClamp)+"))")...)
	case objectives.KindFocal:
		po.Body = append([]string{"# the clamp keeps the gradient finite at p = 1"},
			ret("-torch.pow(torch.clamp(-torch.expm1(logp), min=1e-12), "+v+") * logp")...)
	case objectives.KindBlend:
		po.Body = ret("-" + v + " * logp - (1.0 - " + v + ") * torch.expm1(logp)")
	case objectives.KindEAFT:
		k := strconv.Itoa(objectives.EAFTTopK)
		po.Body = []string{
			"if z.size(-1) < " + k + ":",
			"    raise ValueError(\"capsel: eaft reads the top " + k + " logits, as LLaMA-Factory's torch.topk(k=" + k + ") does; the vocabulary has %d\" % z.size(-1))",
			"with torch.no_grad():  # LLaMA-Factory's gate: the top-" + k + " entropy over " + pyFloat(objectives.EAFTNorm) + ", detached",
			"    top = torch.topk(z.detach(), k=" + k + ", dim=-1).values",
			"    lt = top - torch.logsumexp(top, dim=-1, keepdim=True)",
			"    w = torch.pow(-(lt.exp() * lt).sum(-1) / " + pyFloat(objectives.EAFTNorm) + ", " + v + ")",
			"return -logp * w, None",
		}
	case objectives.KindEAFTAxolotl:
		po.Body = []string{
			"with torch.no_grad():  # Axolotl's gate: the top-k entropy, log(pi + 1e-10), detached",
			"    top = torch.topk(z.detach(), k=min(" + strconv.Itoa(o.TopK()) + ", z.size(-1)), dim=-1).values",
			"    pr = torch.softmax(top, dim=-1)",
			"    w = torch.pow(-(pr * torch.log(pr + 1e-10)).sum(-1), " + v + ")",
			"return -logp * w, None",
		}
	case objectives.KindDEFT:
		po.Eps = "1e-08"
		po.Body = []string{
			"with torch.no_grad():  # DEFT's exponent: the collision probability sum(q^2), detached",
			"    c = torch.softmax(z.detach(), dim=-1).pow(2).sum(-1)",
			"return -torch.expm1(c * logp) / (c + 1e-06), None",
		}
	case objectives.KindDEFTCayley:
		po.Eps = "1e-08"
		po.Body = []string{
			"with torch.no_grad():  # Cayley_Trans's exponent, floored by the micro-batch's mean p, detached",
			"    p = logp.detach().exp()",
			"    floor = 0.5 * (p.mean() if p.numel() > 0 else torch.zeros((), device=p.device))",
			"    d = 1.0 - p + 1e-08",
			"    a = torch.clamp(floor + (1.0 - floor) * (1.0 - d) / (1.0 + d + 1e-08), min=0.001, max=1.0)",
			"return -torch.expm1(a * logp) / (a + 1e-08), None",
		}
	case objectives.KindASFT:
		po.Body = []string{
			"if ref is None:",
			"    raise ValueError(\"capsel: asft needs the reference model's logits, and none were computed\")",
			"# KL(r || q) per token, as F.kl_div(log q, r) summed over the vocabulary (LLaMA-Factory's _kl_divergence)",
			"kl = F.kl_div(F.log_softmax(z, dim=-1), F.softmax(ref, dim=-1), reduction=\"none\").sum(-1)",
			"return -logp.detach().exp() * logp + " + v + " * kl, None",
		}
	default:
		panic("selector: no Python loss for " + o.String())
	}
	return po
}

// pyScale writes s_f(p), the gradient scale objectives.Objective.S computes,
// as a Python expression of a float64 tensor p.
func pyScale(o objectives.Objective) string {
	v := pyFloat(o.Param())
	switch o.Kind() {
	case objectives.KindNLL:
		return "torch.ones_like(p)"
	case objectives.KindP, objectives.KindDFT:
		return "p"
	case objectives.KindGeneral:
		return "p ** " + v
	case objectives.KindOnlyTopP:
		return "p * (p >= " + v + ")"
	case objectives.KindOnlyBottomP:
		return "p * (p <= " + v + ")"
	case objectives.KindOnlyTopLogP:
		return "(p >= " + v + ").double()"
	case objectives.KindOnlyBottomLogP:
		return "(p <= " + v + ").double()"
	case objectives.KindLog1mP:
		c := pyFloat(objectives.Log1mPClamp)
		return "torch.where(1 - p <= " + c + ", torch.zeros_like(p), p / torch.clamp(1 - p, min=" + c + "))"
	case objectives.KindFocal:
		// s = (1 − p)^γ·(1 + γ·p·r), r = −log(p)/(1 − p) (1 + u/2 near p = 1), and 1 at p = 0.
		return "torch.where(p > 0, torch.pow(1 - p, " + v + ") * (1 + " + v + " * p * torch.where(1 - p < 1e-8, 1 + (1 - p) / 2, -torch.log(p.clamp(min=1e-300)) / (1 - p).clamp(min=1e-300))), torch.ones_like(p))"
	case objectives.KindBlend:
		return v + " + (1 - " + v + ") * p"
	}
	panic("selector: no Python scale for " + o.String())
}

// Citations of the code the TRL and ms-swift notes rest on.
const (
	trlAt          = "trl/trainer/sft_trainer.py, huggingface/trl f2cd577"
	transformersAt = "src/transformers/trainer.py, huggingface/transformers 000945a"
	swiftAt        = "swift/trainers/seq2seq_trainer.py and swift/trainers/mixin.py, modelscope/ms-swift 3602360"
	ligerAt        = "src/liger_kernel/transformers/model/llama.py, linkedin/Liger-Kernel ead96b6"
)

// exportCode writes o for TRL or ms-swift: the trainer's built-in loss where
// it computes o under the requested weighting, otherwise the Python that
// does (renderHook) with the notes on how to run it.
func exportCode(o objectives.Objective, f Format, opt ExportOptions) (Export, error) {
	w := opt.Weighting
	if r, why, ok := reduce(o); ok && w != WeightingFork {
		if f == FormatSwift {
			return exportBuiltin(o, f), nil
		}
		if r.Kind() == objectives.KindNLL {
			return Export{Format: FormatTRL, Exact: true, Text: trlConfig("nll", "NLL"),
				Notes: withWhy(why,
					"TRL's default loss_type, \"chunked_nll\", is the same objective computed in chunks; \"nll\" is the plain form, and loss_type needs TRL 0.23 or later (on older versions drop that line, as NLL is the default).",
					"Under gradient accumulation the model's loss divides by num_items_in_batch, the step's response tokens (the tokens weighting); for the paper's fork weighting export with --weighting fork.")}, nil
		}
		return Export{Format: FormatTRL, Exact: true, Text: trlConfig("dft", "DFT: exactly the gradient of 1 - p"),
			Notes: withWhy(why,
				"TRL's DFT loss weights each token's log-likelihood by its detached probability, which is exactly the gradient of p; only the logged loss (−p·log p) differs from 1 − p.",
				"loss_type=\"dft\" needs TRL 0.23 or later; it also works with use_liger_kernel=True, through Liger's token scaling.",
				"Under gradient accumulation it divides by num_items_in_batch, the step's response tokens (the tokens weighting); for the paper's fork weighting export with --weighting fork.")}, nil
	}
	text, err := renderHook(o, f, w, opt.AutoTheory)
	if err != nil {
		return Export{}, err
	}
	e := Export{Format: f, Exact: true, Text: text}
	if f == FormatSwift {
		e.Notes = swiftNotes(o)
	} else {
		e.Notes = trlNotes(o)
	}
	e.Notes = append(e.Notes, weightingNotes(o, f, w)...)
	e.Notes = append(e.Notes, objectiveNotes(o, f)...)
	return e, nil
}

func trlNotes(o objectives.Objective) []string {
	trainer := "SFTTrainer"
	if o.Kind() == objectives.KindAutoTheory || o.Form() == objectives.FormAnchored {
		trainer = "CapselSFTTrainer (defined in the file, an SFTTrainer)"
	}
	return []string{
		fmt.Sprintf("Save the text as %s next to your training script and build the trainer as %s(..., compute_loss_func=capsel_loss, callbacks=[capsel_loss]): TRL hands compute_loss_func the model's outputs, the labels (popped from the inputs before the forward) and num_items_in_batch (%s; %s).", hookFile(FormatTRL), trainer, trlAt, transformersAt),
		"Set loss_type=\"nll\" in SFTConfig: TRL rejects compute_loss_func with \"dft\", and with its default \"chunked_nll\" the popped labels make the patched forward return logits, so the loss runs, but SFTTrainer.compute_loss then reads outputs.num_valid_tokens, which those outputs lack, and the step fails.",
		"Keep use_liger_kernel=False: SFTTrainer then passes skip_logits=True, and without the popped labels Liger raises \"skip_logits is True, but labels and shift_labels are None\" (" + ligerAt + ").",
		"Only tokens whose label is not -100 count: train on a prompt-completion dataset (completion_only_loss) or set assistant_only_loss=True, so that the loss covers response tokens only, as the paper does.",
		"Train without context or sequence parallelism: they hand the loss pre-shifted labels, and the file shifts labels itself, as TRL's own DFT loss does; it stops with an error where logits and labels do not line up.",
		"compute_loss_func needs TRL 0.15 or later and loss_type TRL 0.23 or later; on 0.15 to 0.22 drop the loss_type line.",
	}
}

func swiftNotes(o objectives.Objective) []string {
	name := swiftLossName(o)
	run := "swift sft --external_plugins " + hookFile(FormatSwift) + " --loss_type " + name
	if o.Kind() == objectives.KindAutoTheory {
		run += " --callbacks " + name
	}
	return []string{
		fmt.Sprintf("Save the text as %s and train with %s (plus your usual arguments): the file registers its BaseLoss in ms-swift's loss_map, which swift sft builds with (args, trainer) and calls with (outputs, labels, num_items_in_batch=…, loss_scale=…, trainer=…) after popping the labels before the forward (%s).", hookFile(FormatSwift), run, swiftAt),
		"Megatron-SWIFT (megatron sft) has no such hook: its loss_type reaches only the embedding and reranker trainers, so train with swift sft.",
		"Keep --sequence_parallel_size 1 and the default loss_scale: the plugin stops with an error under sequence parallelism, where each rank holds a shard of the labels, and on loss scales other than 1, which would reweight tokens behind the objective's back.",
		"With --use_liger_kernel the labels are popped before the forward too, so Liger computes the logits and the plugin works, without Liger's memory saving; logits_to_keep (use_logits_to_keep) trims logits and labels together and is fine.",
		"Written for ms-swift's swift.loss.BaseLoss and loss_map (checked at 4.6.0.dev0, commit 3602360); ms-swift 3 registers losses differently.",
	}
}

// weightingNotes say what the code reproduces under gradient accumulation
// and data parallelism.
func weightingNotes(o objectives.Objective, f Format, w Weighting) []string {
	trainer := "the Trainer"
	if f == FormatSwift {
		trainer = "swift sft's Trainer"
	}
	if w == WeightingFork {
		return []string{
			"Weighting fork: each micro-batch's loss is its mean over its response tokens (its kept tokens for thresholded objectives; the count + 1e-8, as the fork adds), and the step sums the micro-batches' means without weights, as the paper's verl fork does (its backward() runs before it divides by the number of micro-batches); under DDP the loss is divided by the number of processes where the Trainer multiplies by it (average_tokens_across_devices), so ranks are averaged as FSDP averages them.",
			"The fork weighting's gradient grows with gradient_accumulation_steps: AdamW hardly notices the scale, but gradient clipping (max_grad_norm) does.",
		}
	}
	notes := []string{fmt.Sprintf("Weighting tokens: %s counts the response tokens of all micro-batches of the step (num_items_in_batch, summed over ranks when average_tokens_across_devices is on) before the first forward, and does not divide by gradient_accumulation_steps when a compute_loss_func is set; dividing each micro-batch's sum by that count gives the gradient of one batch holding the whole step, which is what capsel's trainer computes on one batch. The paper's fork instead sums per-micro-batch means: export with --weighting fork for that.", trainer)}
	if o.Thresholded() {
		notes = append(notes, "Thresholded objectives average over the tokens the threshold keeps, which are known only after each micro-batch's forward: each micro-batch's kept-token mean is weighted by its share of the step's response tokens, which equals capsel's mean over the kept tokens of the whole step at accumulation 1 and whenever every micro-batch keeps the same share.")
	}
	if o.Kind() == objectives.KindDEFTCayley {
		notes = append(notes, "Cayley_Trans's floor reads the mean p of each micro-batch, as the DEFT fork reads each of its micro-batches, so the micro-batch size is part of the objective.")
	}
	return notes
}

// objectiveNotes are what a particular objective needs.
func objectiveNotes(o objectives.Objective, f Format) []string {
	switch o.Kind() {
	case objectives.KindEAFT:
		return []string{"eaft reads the 20 largest logits, as LLaMA-Factory's EAFT does, and stops with an error on a vocabulary of fewer than 20 tokens."}
	case objectives.KindASFT:
		if f == FormatSwift {
			return []string{"asft needs the frozen model the run starts from: with LoRA the plugin runs the model with its adapters disabled (no extra weights); for full fine-tuning set REF_MODEL in the file to the base model's name or path, which it loads as a frozen copy (a second copy of the weights). Either way it costs one forward pass without gradient per micro-batch, about a third more compute per step, and one fp32 [batch, length, vocab] buffer; the plugin wraps the trainer's compute_loss to run it, because ms-swift hands the loss no inputs."}
		}
		return []string{"asft needs the frozen model the run starts from: CapselSFTTrainer(..., ref_model=None) runs a LoRA model with its adapters disabled (no extra weights); for full fine-tuning pass ref_model=<a frozen copy of the starting model> (a second copy of the weights). Either way it costs one forward pass without gradient per micro-batch, about a third more compute per step, and one fp32 [batch, length, vocab] buffer of reference logits."}
	case objectives.KindAutoTheory:
		return autoTheoryNotes(f)
	}
	return nil
}

func autoTheoryNotes(f Format) []string {
	restore := "restore_callback_states_from_checkpoint=True in the training arguments"
	exact := "CapselSFTTrainer ranks every micro-batch of a step in a forward pass without gradient before the first backward, on the steps where a ranking is due (one extra forward pass every EVERY steps), so it reproduces capsel's choice at any gradient accumulation; with a plain SFTTrainer the ranking reads only the first micro-batch of the step, which is exact at accumulation 1 and a smaller sample of the same step above it."
	if f == FormatSwift {
		restore = "--restore_callback_states_from_checkpoint true"
		exact = "The callback wraps the trainer's get_batch_samples to rank every micro-batch of a step in a forward pass without gradient before the first backward, on the steps where a ranking is due (one extra forward pass every EVERY steps), so it reproduces capsel's choice at any gradient accumulation."
	}
	return []string{
		"auto-theory as capsel's trainer runs it: every EVERY steps, before the step's update, it ranks the candidates by the paper's rate on the step's response tokens (capsel's trainer ranks at most its auto contexts, 256 evenly spaced tokens of the batch, by default; the file ranks them all) and trains with the best until the next ranking.",
		exact,
		"Under DDP the rate sums are all-reduced before the choice, so every rank trains the same objective.",
		"The ranking pass runs in training mode, like the training forward: with dropout above 0 (rare in fine-tuning) its logits are another draw than the ones the loss sees.",
		"Its state (the choice in force and the history of choices) is an ExportableState saved in trainer_state.json; the Trainer restores it on resume only with " + restore + ", and the hook stops with an error when a run resumes without it.",
		"Evaluation (logits without gradient) uses the choice in force and changes nothing.",
	}
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
