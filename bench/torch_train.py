#!/usr/bin/python3
"""PyTorch reference trainer: the anchor capsel's Go trainer is timed against.

Trains a decoder-only pre-LN transformer LM on synthetic "repeated block"
sequences and reports training throughput as JSON. The architecture, data
recipe and optimiser mirror capsel's Go model so that parameter counts match
exactly:

    params = 2·V·d + T·d + L·(12·d² + 13·d) + 2·d + V

  token embedding V·d, position embedding T·d; per block: LN1 2d,
  QKV d·3d + 3d, attention output d·d + d, LN2 2d, MLP d·4d + 4d and
  4d·d + d (= 12d² + 13d); final LN 2d; untied head d·V + V.

Data: each sequence is a block of P = 8 tokens drawn uniformly from [0, V)
and repeated to length T + 1 (inputs are the first T, targets the last T),
a fresh seeded batch every step; capsel's train.Bench uses the same recipe.
Optimiser: AdamW(lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.01 on
every parameter), gradients clipped to global L2 norm 1.0, float32.
The first P − 1 targets cannot be predicted, the rest can, so the loss
floor is (P − 1)/T · ln V (0.910 at V = 64, T = 32).

Run with Debian's interpreter, which has torch: /usr/bin/python3.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCK = 8  # period of the synthetic sequences


class Block(nn.Module):
    """x = x + Attn(LN1(x)); x = x + MLP(LN2(x))."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        # (b, t, d) -> (b, heads, t, hd)
        q = q.view(b, t, self.heads, hd).transpose(1, 2)
        k = k.view(b, t, self.heads, hd).transpose(1, 2)
        v = v.view(b, t, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:t, :t], float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(b, t, d)
        x = x + self.proj(y)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))
        return x


class LM(nn.Module):
    def __init__(self, vocab, d, layers, heads, context):
        super().__init__()
        if d % heads:
            raise ValueError(f"d={d} is not divisible by heads={heads}")
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.head = nn.Linear(d, vocab)
        # True above the diagonal: position i may not attend to j > i.
        self.register_buffer(
            "mask", torch.triu(torch.ones(context, context, dtype=torch.bool), 1), persistent=False
        )
        # GPT-2 initialisation, as capsel's train.NewModel: weights N(0, 0.02²),
        # the residual projections (attention output, MLP down) N(0, (0.02/√(2L))²),
        # biases 0, LayerNorm gains 1.
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for blk in self.blocks:
            nn.init.normal_(blk.proj.weight, 0.0, 0.02 / math.sqrt(2 * layers))
            nn.init.normal_(blk.fc2.weight, 0.0, 0.02 / math.sqrt(2 * layers))

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for blk in self.blocks:
            x = blk(x, self.mask)
        return self.head(self.ln_f(x))


def expected_params(vocab, d, layers, context):
    return 2 * vocab * d + context * d + layers * (12 * d * d + 13 * d) + 2 * d + vocab


def batch(gen, vocab, context, size):
    """A batch of repeated random blocks: inputs and next-token targets."""
    blocks = torch.randint(0, vocab, (size, BLOCK), generator=gen)
    reps = (context + 1 + BLOCK - 1) // BLOCK
    seq = blocks.repeat(1, reps)[:, : context + 1]
    return seq[:, :-1], seq[:, 1:]


def busy_seconds():
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return float("nan")
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100, help="timed steps, after the warm-up")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("need --steps ≥ 1, --warmup ≥ 0, --threads ≥ 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)

    model = LM(args.vocab, args.d, args.layers, args.heads, args.context)
    params = sum(p.numel() for p in model.parameters())
    want = expected_params(args.vocab, args.d, args.layers, args.context)
    if params != want:
        raise SystemExit(f"torch_train: {params} parameters, formula says {want}")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)

    losses, step_times = [], []
    t0 = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            t0 = time.perf_counter()
            busy0, own0 = busy_seconds(), time.process_time()
        ts = time.perf_counter()
        x, y = batch(gen, args.vocab, args.context, args.batch)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, args.vocab), y.reshape(-1))  # mean over B·T
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step >= args.warmup:
            step_times.append(time.perf_counter() - ts)
        if not args.json and (step % 50 == 0 or step == args.warmup + args.steps - 1):
            print(f"step {step:5d}  loss {losses[-1]:.4f}", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    # CPU used by other processes during the timed steps, in cores: the
    # runners retry a measurement when a neighbour was busy.
    foreign = max(0.0, (busy_seconds() - busy0 - (time.process_time() - own0)) / elapsed)

    tokens = args.batch * args.context * args.steps
    step_times.sort()
    median_step = step_times[len(step_times) // 2]
    out = {
        # total timed tokens / wall time of the timed steps
        "tokens_per_sec": round(tokens / elapsed, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "params": params,
        "final_loss": round(losses[-1], 4),
        "threads": args.threads,
        "final_loss_avg10": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "first_loss": round(losses[0], 4),
        "ms_per_step": round(1000 * elapsed / args.steps, 2),
        # B·T / median step time, the statistic capsel's `selector bench train` reports
        "tokens_per_sec_median_step": round(args.batch * args.context / median_step, 1),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "foreign_cpu_cores": round(foreign, 3),
        "config": {k: getattr(args, k) for k in ("vocab", "d", "layers", "heads", "context", "batch", "steps", "warmup")},
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
