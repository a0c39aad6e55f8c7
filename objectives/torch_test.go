package objectives

import (
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/capsel/capsel/internal/torchtest"
)

// torchTrainers transcribes, in PyTorch, how each trainer computes its loss
// (capsel's own transcription of the code read at these commits, not a copy):
//
//	lf_eaft       LLaMA-Factory eaft_loss_func + _eaft_cross_entropy,
//	              src/llamafactory/train/trainer_utils.py, hiyouga/LLaMA-Factory ff6d4d1
//	axolotl_eaft  Axolotl eaft_loss, src/axolotl/monkeypatch/loss/eaft.py,
//	              axolotl-ai-cloud/axolotl 067b021
//	deft          the DEFT fork's objective_trans "DEFT" and "Cayley_Trans" branches of
//	              _compute_loss_and_backward, main_verl/trainer/fsdp_sft_trainer.py,
//	              luludus/DEFT bbe7896
//	lf_asft       LLaMA-Factory asft_loss_func + _asft_cross_entropy + _dft_cross_entropy +
//	              _kl_divergence, same file and commit as lf_eaft
//	asft_authors  the ASFT authors' EnhancedTrainer.compute_loss, mode "asft",
//	              train_v2.py, zhuchichi56/ASFT 6f6f51c
//	unsloth_asft  Unsloth's compute_asft_loss, asft_mode "asft", kl_direction "forward",
//	              normalize_by "tokens", unsloth/losses/asft.py, unslothai/unsloth 5dc8ee0
//	              (branch dh/recover-3918-asft; F.cross_entropy stands in for its Triton
//	              kernel, which returns the same per-token values)
//
// The trainers upcast logits to float32; the transcription runs in float64
// (and skips those casts) so that the comparison is exact up to rounding.
// Each function takes the logits [B, T, V] and returns the scalar loss;
// autograd gives the gradient, detaching exactly what the trainer detaches.
const torchTrainers = `import json, sys
import torch
import torch.nn.functional as F

d = json.load(open(sys.argv[1]))
logits0 = torch.tensor(d["logits"], dtype=torch.float64)
ref0 = torch.tensor(d["ref_logits"], dtype=torch.float64)
labels = torch.tensor(d["labels"], dtype=torch.long)
input_ids = torch.tensor(d["input_ids"], dtype=torch.long)
loss_mask = torch.tensor(d["loss_mask"], dtype=torch.float64)
IGN = -100

def lf_eaft(z, alpha):
    V = z.size(-1)
    lab = F.pad(labels, (0, 1), value=IGN)[..., 1:].contiguous().view(-1)
    src = z.view(-1, V)
    per_token = F.cross_entropy(src, lab, ignore_index=IGN, reduction="none")
    valid = lab != IGN
    with torch.no_grad():
        top, _ = torch.topk(src[valid].detach(), k=20, dim=-1)
        log_top = top - torch.logsumexp(top, dim=-1, keepdim=True)
        entropy = -(torch.exp(log_top) * log_top).sum(dim=-1)
        weight = torch.pow(entropy / 3.0, alpha)
    return (per_token[valid] * weight).mean()

def axolotl_eaft(z, alpha, k):
    V = z.size(-1)
    sl = z[..., :-1, :].contiguous().view(-1, V)
    lab = labels[..., 1:].contiguous().view(-1)
    m = lab != IGN
    with torch.no_grad():
        top, _ = torch.topk(sl[m], k=min(k, V), dim=-1)
        probs = F.softmax(top, dim=-1)
        entropy = -(probs * torch.log(probs + 1e-10)).sum(dim=-1)
        weight = torch.pow(entropy, alpha)
    per_token = torch.nn.CrossEntropyLoss(reduction="none")(sl[m], lab[m])
    return (per_token * weight).mean()

def deft(z, trans):
    V = z.size(-1)
    mask = loss_mask[:, :-1].reshape(-1)
    sl = z[..., :-1, :].contiguous().view(-1, V)
    y = input_ids[:, 1:].contiguous().view(-1)
    log_p_true = F.log_softmax(sl, dim=-1).gather(1, y.unsqueeze(-1)).squeeze(-1)
    prob = log_p_true.exp()
    if trans == "DEFT":
        alpha = (F.softmax(sl, dim=-1).pow(2)).sum(dim=-1).detach()
        loss = -(torch.exp(alpha * log_p_true) - 1) / (alpha + 1e-6)
    else:
        p_label = prob.detach()
        valid = mask.bool()
        p_mean = p_label[valid].mean() if valid.sum() > 0 else torch.tensor(0.0, dtype=torch.float64)
        floor = 0.5 * p_mean
        dist = 1.0 - p_label + 1e-8
        local = (1.0 - dist) / (1.0 + dist + 1e-8)
        alpha = (floor + (1.0 - floor) * local).clamp(min=0.001, max=1.0).detach()
        loss = -(torch.exp(alpha * log_p_true) - 1) / (alpha + 1e-8)
    loss = loss * mask
    return torch.sum(loss) / (torch.sum(mask) + 1e-8)

def lf_asft(z, alpha):
    V = z.size(-1)
    pl = z[..., :-1, :].contiguous().view(-1, V)
    rl = ref0[..., :-1, :].contiguous().view(-1, V)
    lab = labels[..., 1:].contiguous().view(-1)
    per_token = F.cross_entropy(pl, lab, ignore_index=IGN, reduction="none")
    valid = lab != IGN
    v = per_token[valid]
    with torch.no_grad():
        target_probs = torch.exp(-v)
    dft = (v * target_probs).mean()
    kl = F.kl_div(F.log_softmax(pl, dim=-1), F.softmax(rl, dim=-1), reduction="none").sum(dim=-1)
    m = valid.double()
    return dft + alpha * (kl * m).sum() / m.sum()

def asft_authors(z, kl_weight):
    V = z.size(-1)
    sl = z[..., :-1, :].contiguous().view(-1, V)
    lab = labels[..., 1:].contiguous().view(-1)
    valid = lab != IGN
    token_losses = torch.nn.CrossEntropyLoss(reduction="none")(sl, lab)
    probs = torch.softmax(sl, dim=-1)
    safe = torch.clamp(lab, min=0, max=V - 1)
    w = probs.gather(1, safe.unsqueeze(-1)).squeeze(-1).detach()
    rl = ref0[..., :-1, :].contiguous().view(-1, V)
    kl = F.kl_div(F.log_softmax(sl, dim=-1), F.softmax(rl, dim=-1), reduction="none").sum(dim=-1)
    return (token_losses * w + kl_weight * kl)[valid].sum() / valid.sum()

def unsloth_asft(z, kl_weight):
    B, T, V = z.shape
    sh = torch.empty_like(labels)
    sh[..., :-1] = labels[..., 1:]
    sh[..., -1] = IGN
    valid = sh != IGN
    n = max(valid.sum(), 1)
    ce = F.cross_entropy(z.view(-1, V), sh.view(-1), ignore_index=IGN, reduction="none").view(B, T)
    w = torch.exp(-ce.detach()) * valid
    kl = F.kl_div(F.log_softmax(z, dim=-1), F.softmax(ref0, dim=-1), reduction="none").sum(dim=-1)
    token_loss = ce * w + kl_weight * kl
    return token_loss[valid].sum() / n

cases = {
    "lf_eaft-1": lambda z: lf_eaft(z, 1.0),
    "lf_eaft-0.7": lambda z: lf_eaft(z, 0.7),
    "axolotl_eaft-1-20": lambda z: axolotl_eaft(z, 1.0, 20),
    "axolotl_eaft-1.3-5": lambda z: axolotl_eaft(z, 1.3, 5),
    "axolotl_eaft-0.5-40": lambda z: axolotl_eaft(z, 0.5, 40),
    "deft": lambda z: deft(z, "DEFT"),
    "cayley": lambda z: deft(z, "Cayley_Trans"),
    "lf_asft-0.1": lambda z: lf_asft(z, 0.1),
    "asft_authors-0.1": lambda z: asft_authors(z, 0.1),
    "unsloth_asft-0.1": lambda z: unsloth_asft(z, 0.1),
    "lf_asft-2": lambda z: lf_asft(z, 2.0),
}
out = {}
for name, fn in cases.items():
    z = logits0.clone().requires_grad_(True)
    loss = fn(z)
    loss.backward()
    out[name] = {"loss": loss.item(), "grad": z.grad.tolist()}
json.dump(out, sys.stdout)
`

// torchCases maps each case of torchTrainers to the capsel spec that must
// compute it.
var torchCases = map[string]string{
	"lf_eaft-1":           "eaft-1",
	"lf_eaft-0.7":         "eaft-0.7",
	"axolotl_eaft-1-20":   "eaft-axolotl-1-20",
	"axolotl_eaft-1.3-5":  "eaft-axolotl-1.3-5",
	"axolotl_eaft-0.5-40": "eaft-axolotl-0.5-40", // k > V: Axolotl takes min(k, V)
	"deft":                "deft",
	"cayley":              "Cayley_Trans",
	"lf_asft-0.1":         "asft-0.1",
	"asft_authors-0.1":    "asft-0.1",
	"unsloth_asft-0.1":    "asft-0.1",
	"lf_asft-2":           "asft-2",
}

// capselGrad computes the loss and its gradient with respect to logits
// [B][T][V] the way capsel's trainer does: position t predicts label t+1,
// positions whose next label is −100 (and every last position) are not
// scored, and BatchDist's coefficients give the gradient.
func capselGrad(t *testing.T, o Objective, logits, ref [][][]float64, labels [][]int) (float64, [][][]float64) {
	t.Helper()
	var in DistBatch
	type row struct{ b, t, y int }
	var rows []row
	var lqs, lrs [][]float64
	for b := range logits {
		for i := 0; i+1 < len(logits[b]); i++ {
			y := labels[b][i+1]
			scored := y != -100
			if !scored {
				y = 0
			}
			lq, lr := logSoftmax(logits[b][i]), logSoftmax(ref[b][i])
			rows = append(rows, row{b, i, y})
			lqs, lrs = append(lqs, lq), append(lrs, lr)
			in.LogP = append(in.LogP, lq[y])
			in.Mask = append(in.Mask, scored)
			in.Stat = append(in.Stat, o.DistStat(lq))
			in.KL = append(in.KL, KL(lr, lq))
		}
	}
	scale, anchor := make([]float64, len(rows)), make([]float64, len(rows))
	st, err := o.BatchDist(in, nil, scale, anchor)
	if err != nil {
		t.Fatal(err)
	}
	grad := make([][][]float64, len(logits))
	for b := range logits {
		grad[b] = make([][]float64, len(logits[b]))
		for i := range grad[b] {
			grad[b][i] = make([]float64, len(logits[b][i]))
		}
	}
	for j, r := range rows {
		for k := range grad[r.b][r.t] {
			q := math.Exp(lqs[j][k])
			d := 0.0
			if k == r.y {
				d = 1
			}
			grad[r.b][r.t][k] = scale[j]*(q-d) + anchor[j]*(q-math.Exp(lrs[j][k]))
		}
	}
	return st.Loss, grad
}

// TestAgainstTrainersPyTorch compares capsel's loss and logit gradient with
// PyTorch transcriptions of each trainer's code, on a batch of three
// sequences of 7 positions over 24 tokens (LLaMA-Factory's EAFT needs at
// least 20), with prompt tokens and padding labelled −100 and a reference
// model that differs from the policy.
func TestAgainstTrainersPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python")
	}
	py := torchtest.Python(t)
	const B, T, V = 3, 7, 24
	rng := rand.New(rand.NewPCG(5, 6))
	var data struct {
		Logits    [][][]float64 `json:"logits"`
		RefLogits [][][]float64 `json:"ref_logits"`
		Labels    [][]int       `json:"labels"`
		InputIDs  [][]int       `json:"input_ids"`
		LossMask  [][]int       `json:"loss_mask"`
	}
	for b := range B {
		var z, zr [][]float64
		var lab, ids, lm []int
		for i := range T {
			row, rr := make([]float64, V), make([]float64, V)
			for k := range row {
				row[k] = 2 * rng.NormFloat64()
				rr[k] = row[k] + rng.NormFloat64()
			}
			if b == 1 {
				row[3] += 6 // a confident row: low entropy
			}
			z, zr = append(z, row), append(zr, rr)
			y := rng.IntN(V)
			switch {
			case i < 2: // the prompt
				y = -100
			case b == 2 && i >= 5: // padding
				y = -100
			}
			lab = append(lab, y)
			ids = append(ids, max(y, 0))
		}
		// The DEFT fork's loss_mask[t] says whether the token at t+1 counts.
		for i := range T {
			m := 0
			if i+1 < T && lab[i+1] != -100 {
				m = 1
			}
			lm = append(lm, m)
		}
		data.Logits, data.RefLogits = append(data.Logits, z), append(data.RefLogits, zr)
		data.Labels, data.InputIDs, data.LossMask = append(data.Labels, lab), append(data.InputIDs, ids), append(data.LossMask, lm)
	}
	dir := t.TempDir()
	in, script := filepath.Join(dir, "in.json"), filepath.Join(dir, "trainers.py")
	b, _ := json.Marshal(data)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(torchTrainers), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", py, script, err)
	}
	var got map[string]struct {
		Loss float64       `json:"loss"`
		Grad [][][]float64 `json:"grad"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(torchCases) {
		t.Fatalf("PyTorch ran %d cases, want %d", len(got), len(torchCases))
	}
	for _, name := range slices.Sorted(maps.Keys(torchCases)) {
		spec := torchCases[name]
		ref, ok := got[name]
		if !ok {
			t.Errorf("%s: no PyTorch result", name)
			continue
		}
		loss, grad := capselGrad(t, MustParse(spec), data.Logits, data.RefLogits, data.Labels)
		// Both sides in float64 on O(1) values, with the same operations in
		// another order: agreement to ~1e-15; 1e-12 leaves room.
		worst := math.Abs(loss - ref.Loss)
		if worst > 1e-12*math.Max(1, math.Abs(ref.Loss)) {
			t.Errorf("%s (%s): loss %.17g, PyTorch %.17g", name, spec, loss, ref.Loss)
		}
		var gmax float64
		for b := range grad {
			for i := range grad[b] {
				for k := range grad[b][i] {
					e := math.Abs(grad[b][i][k] - ref.Grad[b][i][k])
					gmax = math.Max(gmax, math.Abs(ref.Grad[b][i][k]))
					if e > 1e-12 {
						t.Errorf("%s (%s): ∂L/∂z[%d][%d][%d] = %v, PyTorch %v", name, spec, b, i, k, grad[b][i][k], ref.Grad[b][i][k])
					}
					worst = math.Max(worst, e)
				}
			}
		}
		if gmax == 0 {
			t.Errorf("%s: PyTorch's gradient is zero: the case tests nothing", name)
		}
		t.Logf("%-20s %-20s loss %.6f, worst |capsel − PyTorch| %.2g (max |grad| %.2g)", name, spec, ref.Loss, worst, gmax)
	}
}
