package objectives

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// ErrSpec is wrapped by every error Parse returns.
var ErrSpec = errors.New("objectives: bad objective spec")

// SpecForm describes one accepted spec form.
type SpecForm struct {
	Form    string // e.g. "GeneralFamily-α"
	Range   string // accepted parameter range, "" when there is none
	Formula string // f(p)
	Note    string // one line on what it is for
}

// Specs lists every accepted spec form, in the order help texts show them.
func Specs() []SpecForm {
	return []SpecForm{
		{"nll", "", "−log p", "negative log-likelihood (cross-entropy); the SFT default; aliases: original, logp (the paper's keys)"},
		{"p", "", "1 − p", "the paper's \"−p\": maximises expected token accuracy; prior-leaning"},
		{"GeneralFamily-α", "α > 0", "(1 − p^α)/α", "the paper's family: → NLL as α → 0, \"−p\" at α = 1, −p^10 at α = 10"},
		{"OnlyTopP-q", "0 ≤ q < 1", "(1 − p)·1{p ≥ q}", "\"−p\" on tokens the model already favours"},
		{"OnlyBottomP-q", "0 < q ≤ 1", "(1 − p)·1{p ≤ q}", "\"−p\" on the tokens the model finds unlikely"},
		{"OnlyTopLogP-q", "0 ≤ q < 1", "−log p·1{p ≥ q}", "NLL without low-p tokens; the paper uses q = 0.2"},
		{"OnlyBottomLogP-q", "0 < q ≤ 1", "−log p·1{p ≤ q}", "NLL on low-p tokens only"},
		{"dft", "", "−sg(p)·log p", "Dynamic Fine-Tuning (Wu et al. 2025): same gradient as \"p\""},
		{"log1mp", "", "log(1 − p), clamped at 1 − p ≥ 1e-4", "strongly prior-leaning: W = p"},
		{"focal-γ", "γ ≥ 0", "−(1 − p)^γ·log p", "focal loss: more prior-averse than NLL; γ = 0 is NLL"},
		{"blend-λ", "0 ≤ λ ≤ 1", "λ·(−log p) + (1 − λ)·(1 − p)", "a fixed mix: λ = 1 is NLL, λ = 0 is \"p\""},
		{"eaft-α", "α ≥ 0", "(H₂₀/3)^α·(−log p)", "EAFT as LLaMA-Factory (use_eaft_loss, eaft_alpha; default 1) and the EAFT authors compute it: NLL scaled by the detached entropy of the top-20 softmax over 3; not a function of p"},
		{"eaft-axolotl-α-k", "α ≥ 0, k ≥ 1", "H_k^α·(−log p)", "EAFT as Axolotl computes it (use_eaft, eaft_alpha 1, eaft_k 20): the top-k entropy is not divided by 3, so at k = 20 the loss is 3^α times eaft-α's"},
		{"deft", "", "(1 − p^c)/(c + 1e-6), c = Σ q²", "DEFT (objective_trans=DEFT in the DEFT fork): GeneralFamily with each token's detached collision probability as exponent; not a function of p"},
		{"deft-cayley", "", "(1 − p^a)/(a + 1e-8), a from p and the batch's mean p", "the DEFT fork's Cayley_Trans (alias): NLL-like at low p, p-like at high p, floored by the batch's mean p"},
		{"asft-α", "α ≥ 0", "−sg(p)·log p + α·KL(r ‖ q)", "ASFT (LLaMA-Factory use_asft_loss, asft_alpha 0.1): DFT plus a KL anchor to the frozen model the run starts from"},
		{"auto", "", "chosen from the base model", "measures capability and label noise before the first step, then NLL, p or OnlyTopLogP-0.2"},
		{"auto-theory", "", "chosen during training", "picks the candidate with the best estimated risk-reduction rate"},
	}
}

// acceptedForms is the one-line list that parse errors end with.
func acceptedForms() string {
	var b strings.Builder
	for i, s := range Specs() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.Form)
		if s.Range != "" {
			b.WriteString(" (" + s.Range + ")")
		}
	}
	return "accepted forms: original, logp, DEFT, Cayley_Trans, " + b.String()
}

type specName struct {
	name  string
	kind  Kind
	param bool
}

// The DEFT fork's objective_trans keys, which parse unchanged (as the
// paper's keys do): DEFT case-insensitively as deft, Cayley_Trans as
// deft-cayley.

// names are matched case-insensitively; the first spelling is canonical.
var names = []specName{
	{"nll", KindNLL, false},
	{"original", KindNLL, false},
	{"logp", KindNLL, false},
	{"p", KindP, false},
	{"dft", KindDFT, false},
	{"log1mp", KindLog1mP, false},
	{"auto", KindAuto, false},
	{"auto-theory", KindAutoTheory, false},
	{"deft", KindDEFT, false},
	{"deft-cayley", KindDEFTCayley, false},
	{"Cayley_Trans", KindDEFTCayley, false},
	{"GeneralFamily", KindGeneral, true},
	{"OnlyTopP", KindOnlyTopP, true},
	{"OnlyBottomP", KindOnlyBottomP, true},
	{"OnlyTopLogP", KindOnlyTopLogP, true},
	{"OnlyBottomLogP", KindOnlyBottomLogP, true},
	{"focal", KindFocal, true},
	{"blend", KindBlend, true},
	{"eaft-axolotl", KindEAFTAxolotl, true}, // before eaft: the longer name wins
	{"eaft", KindEAFT, true},
	{"asft", KindASFT, true},
}

// Parse reads an objective spec such as "nll", "p", "GeneralFamily-10",
// "OnlyTopLogP-0.2", "blend-0.3" or "auto". Names are matched without regard
// to case; the paper's keys ("original", "logp", "GeneralFamily-α", …) parse
// exactly as its training scripts spell them. An error names the accepted
// forms and, when the name is close to one, suggests it.
func Parse(spec string) (Objective, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return Objective{}, fmt.Errorf("%w: empty spec; %s", ErrSpec, acceptedForms())
	}
	// Parameterless names first: "auto-theory" contains a dash.
	for _, n := range names {
		if !n.param && strings.EqualFold(s, n.name) {
			o := Objective{kind: n.kind}
			if n.kind == KindNLL && n.name != "nll" {
				o.key = n.name
			}
			return o, nil
		}
	}
	for _, n := range names {
		if !n.param || len(s) < len(n.name) || !strings.EqualFold(s[:len(n.name)], n.name) {
			continue
		}
		rest := s[len(n.name):]
		if rest != "" && rest[0] != '-' {
			continue // a longer word, e.g. "pp"
		}
		arg := strings.TrimPrefix(rest, "-")
		if n.kind == KindEAFT && arg != "" && unicode.IsLetter(rune(arg[0])) {
			break // "eaft-axolotel-1-20": a misspelt longer name
		}
		if arg == "" {
			return Objective{}, fmt.Errorf("%w: %q needs a parameter, as in %s-%s; %s",
				ErrSpec, spec, n.name, example(n.kind), acceptedForms())
		}
		if n.kind == KindEAFTAxolotl {
			return parseAxolotl(spec, arg)
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			if n.kind == KindEAFT && strings.Contains(arg, "-") {
				return Objective{}, fmt.Errorf("%w: %q: eaft takes α alone, with k fixed at 20 as in LLaMA-Factory; Axolotl's EAFT, which takes k and does not divide the entropy by 3, is eaft-axolotl-α-k (did you mean eaft-axolotl-%s?); %s",
					ErrSpec, spec, arg, acceptedForms())
			}
			return Objective{}, fmt.Errorf("%w: %q: parameter %q is not a finite number; %s", ErrSpec, spec, arg, acceptedForms())
		}
		return build(n.kind, v, spec)
	}
	name := nameOf(s)
	for _, n := range names {
		if !n.param && strings.EqualFold(name, n.name) {
			return Objective{}, fmt.Errorf("%w: %q takes no parameter; %s", ErrSpec, spec, acceptedForms())
		}
	}
	hint := ""
	if sug := suggest(name); sug != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", sug)
	}
	return Objective{}, fmt.Errorf("%w: unknown objective %q%s; %s", ErrSpec, spec, hint, acceptedForms())
}

// MustParse is Parse for specs fixed in code; it panics on error.
func MustParse(spec string) Objective {
	o, err := Parse(spec)
	if err != nil {
		panic(err)
	}
	return o
}

func example(k Kind) string {
	switch k {
	case KindEAFT:
		return "1"
	case KindEAFTAxolotl:
		return "1-20"
	case KindASFT:
		return "0.1"
	case KindGeneral:
		return "10"
	case KindFocal:
		return "2"
	case KindBlend:
		return "0.5"
	}
	return "0.2"
}

// build checks a parameter against its kind's range.
func build(k Kind, v float64, spec string) (Objective, error) {
	bad := func(rng string) (Objective, error) {
		if spec == "" {
			spec = Objective{kind: k, param: v}.String()
		}
		return Objective{}, fmt.Errorf("%w: %q: parameter %v out of range, need %s; %s", ErrSpec, spec, v, rng, acceptedForms())
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return bad("a finite number")
	}
	switch k {
	case KindGeneral:
		if !(v > 0) {
			return bad("α > 0 (α → 0 is NLL: use nll)")
		}
	case KindOnlyTopP, KindOnlyTopLogP:
		if !(v >= 0 && v < 1) {
			return bad("0 ≤ q < 1 (as asserted by the paper's code)")
		}
	case KindOnlyBottomP, KindOnlyBottomLogP:
		if !(v > 0 && v <= 1) {
			return bad("0 < q ≤ 1 (as asserted by the paper's code)")
		}
	case KindFocal:
		if !(v >= 0) {
			return bad("γ ≥ 0")
		}
	case KindBlend:
		if !(v >= 0 && v <= 1) {
			return bad("0 ≤ λ ≤ 1")
		}
	case KindEAFT, KindEAFTAxolotl:
		if !(v >= 0) {
			return bad("α ≥ 0 (α = 0 is NLL)")
		}
	case KindASFT:
		if !(v >= 0) {
			return bad("α ≥ 0 (α = 0 is dft)")
		}
	default:
		panic("objectives: build called for a kind without parameter")
	}
	return Objective{kind: k, param: v}, nil
}

// nameOf is the name part of a spec: its dash-separated words up to the
// first that starts like a number.
func nameOf(s string) string {
	words := strings.Split(s, "-")
	for i, w := range words {
		if i > 0 && (w == "" || strings.ContainsRune("0123456789.+", rune(w[0]))) {
			return strings.Join(words[:i], "-")
		}
	}
	return s
}

// parseAxolotl reads eaft-axolotl's "α-k": k an integer ≥ 1. α may itself
// hold a dash ("1e-3-20"), so every dash is tried as the separator.
func parseAxolotl(spec, arg string) (Objective, error) {
	for i := 1; i < len(arg); i++ {
		if arg[i] != '-' {
			continue
		}
		a, err1 := strconv.ParseFloat(arg[:i], 64)
		k, err2 := strconv.Atoi(arg[i+1:])
		if err1 != nil || err2 != nil || math.IsNaN(a) || math.IsInf(a, 0) {
			continue
		}
		o, err := build(KindEAFTAxolotl, a, spec)
		if err != nil {
			return o, err
		}
		if k < 1 {
			return Objective{}, fmt.Errorf("%w: %q: top-k %d out of range, need an integer k ≥ 1 (Axolotl's default is 20); %s", ErrSpec, spec, k, acceptedForms())
		}
		o.k = k
		return o, nil
	}
	return Objective{}, fmt.Errorf("%w: %q needs α and an integer k, as in eaft-axolotl-1-20 (Axolotl's defaults); %s", ErrSpec, spec, acceptedForms())
}

// suggest returns the accepted name closest to name when it is a likely typo.
func suggest(name string) string {
	best, bestD := "", 1<<30
	for _, n := range names {
		d := editDistance(strings.ToLower(name), strings.ToLower(n.name))
		if d < bestD {
			best, bestD = n.name, d
		}
	}
	if bestD <= 2 || (bestD <= 4 && len(name) >= 8) {
		for _, n := range names {
			if n.name == best && n.param {
				return best + "-" + example(n.kind)
			}
		}
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := 1
			if ra[i-1] == rb[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
