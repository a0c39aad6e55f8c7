#!/usr/bin/env bash
# train.sh: capsel's trainer against the PyTorch anchor, side by side.
#
# In each of RUNS rounds (default 5), at each of the two sizes of issue 7
#   S1  V64  d64  L2 H4 T32 B16
#   S3  V256 d128 L4 H4 T64 B8
# it runs `selector bench train` once and then `torch_anchor.sh` once (with
# RUNS=1: each of PyTorch's three thread settings once), so that a change in
# the machine's load hits both alike. Each measurement first waits for an
# idle machine (quiet.sh) and is repeated, up to TRIES times (default 6),
# while other processes used more than FOREIGN_MAX cores (default 0.1)
# during it; the attempt with the least foreign load is kept.
#
# Then, per size: medians over the rounds for capsel and for every PyTorch
# setting; the anchor is the setting with the highest median; the ratios
# capsel/anchor of training tokens per second, both as all timed tokens over
# the timed steps' total time ("wall", the anchor script's statistic) and as
# batch·context over the median step time ("median step"); achieved
# GFLOP/s (6 × forward multiply-adds per token, the formula of
# train.ModelConfig.FLOPsPerToken, for both programs) and its share of
# PEAK_GFLOPS (default 156: 2 cores × 2.445 GHz × 32 float32 FLOP/cycle,
# AVX2 + FMA); peak RSS of both.
#
# Settings: RUNS, STEPS (timed steps per run, default 100), WARMUP (default
# 5), SELECTOR (default /tmp/selector, built from this checkout unless
# NOBUILD=1), BASELINE (optional: another selector binary, e.g. one built
# from an earlier commit, run in every round too and reported as "before"),
# PY (default /usr/bin/python3), QUIET_IDLE, QUIET_MAX, TRIES, FOREIGN_MAX.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-5}
STEPS=${STEPS:-100}
WARMUP=${WARMUP:-5}
SELECTOR=${SELECTOR:-/tmp/selector}
PY=${PY:-/usr/bin/python3}
PEAK_GFLOPS=${PEAK_GFLOPS:-156}
export WARMUP PY
# shellcheck source=quiet.sh
. "$here/quiet.sh"

if [ "${NOBUILD:-0}" != 1 ]; then
  (cd "$here/.." && go build -o "$SELECTOR" ./cmd/selector)
fi

sizes=("S1 64 64 2 4 32 16" "S3 256 128 4 4 64 8")
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(go version | cut -d' ' -f3)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS steps=$STEPS warmup=$WARMUP"

# capsel_run BIN V D L H T B: one `BIN bench train`, retried while the
# machine was busy; prints "idle% JSON". (A binary too old to report
# foreign_cpu_cores counts as undisturbed.)
capsel_run() {
  local bin=$1 best="" bestf=1e9 idle line f try
  shift
  for ((try = 1; try <= ${TRIES:-6}; try++)); do
    idle=$(wait_quiet)
    line=$("$bin" bench train --vocab "$1" --d "$2" --layers "$3" --heads "$4" --context "$5" --batch "$6" \
      --steps "$STEPS" --warmup "$WARMUP" --json | tr -d '\n ')
    f=$(sed -n 's/.*"foreign_cpu_cores":\([-0-9.e]*\).*/\1/p' <<<"$line")
    f=${f:-0}
    if awk -v f="$f" -v b="$bestf" 'BEGIN { exit !(f < b) }'; then
      best="$idle $line" bestf=$f
    fi
    if awk -v f="$f" -v m="${FOREIGN_MAX:-0.1}" 'BEGIN { exit !(f <= m) }'; then
      break
    fi
    echo "# retry capsel: foreign load $f cores" >&2
  done
  echo "$best"
}

for run in $(seq 1 "$RUNS"); do
  for size in "${sizes[@]}"; do
    read -r name V D L H T B <<<"$size"
    echo "$name capsel $(capsel_run "$SELECTOR" "$V" "$D" "$L" "$H" "$T" "$B")" | tee -a "$out"
    if [ -n "${BASELINE:-}" ]; then
      echo "$name before $(capsel_run "$BASELINE" "$V" "$D" "$L" "$H" "$T" "$B")" | tee -a "$out"
    fi
    RUNS=1 "$here/torch_anchor.sh" "$V" "$D" "$L" "$H" "$T" "$B" "$STEPS" |
      grep -E '^t[12]-[a-z0-9]+ [0-9]+ [{]' | sed "s/^/$name /" | tee -a "$out"
  done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$out" "$PEAK_GFLOPS" <<'PYEOF'
import json, statistics, sys

peak = float(sys.argv[2])
cfgs = {"S1": (64, 64, 2, 4, 32, 16), "S3": (256, 128, 4, 4, 64, 8)}
targets = {"S1": 1.0, "S3": 0.8}
runs = {}
for line in open(sys.argv[1]):
    size, who, idle, js = line.split(" ", 3)
    r = json.loads(js)
    r["idle_before"] = int(idle)
    runs.setdefault(size, {}).setdefault(who, []).append(r)


def flops_per_token(v, d, l, h, t, b):
    return 6 * (l * (12 * d * d + 2 * t * d) + d * v)


def med(rs, key):
    return statistics.median(r[key] for r in rs)


for size, by in runs.items():
    v, d, l, h, t, b = cfgs[size]
    fpt = flops_per_token(*cfgs[size])
    print(f"\n== {size}: V{v} d{d} L{l} H{h} T{t} B{b}, {fpt/1e6:.3f} MFLOP per training token ==")
    print(f"{'program':<18} {'runs':>4} {'wall tok/s':>11} {'min':>8} {'max':>8} {'median-step tok/s':>17} {'GFLOP/s':>8} {'% peak':>7} {'RSS MB':>7} {'foreign':>8}")
    rows = {}
    for who, rs in by.items():
        go = who in ("capsel", "before")
        # An older selector reports only the median-step figure.
        wall = [r.get("tokens_per_sec_wall", r["tokens_per_sec"]) if go else r["tokens_per_sec"] for r in rs]
        step_key = "tokens_per_sec" if go else "tokens_per_sec_median_step"
        rows[who] = dict(wall=statistics.median(wall), step=med(rs, step_key), rss=med(rs, "peak_rss_mb"),
                         foreign=max(r.get("foreign_cpu_cores", -1) for r in rs), n=len(rs), lo=min(wall), hi=max(wall))
        g = rows[who]["wall"] * fpt / 1e9
        name = {"capsel": "capsel (Go)", "before": "capsel before"}.get(who, f"torch {who}")
        print(f"{name:<18} {len(rs):>4} {rows[who]['wall']:>11.0f} {min(wall):>8.0f} {max(wall):>8.0f} "
              f"{rows[who]['step']:>17.0f} {g:>8.1f} {100*g/peak:>6.1f}% {rows[who]['rss']:>7.1f} {rows[who]['foreign']:>8.2f}")
    torch = {k: x for k, x in rows.items() if k not in ("capsel", "before")}
    if "capsel" not in rows or not torch:
        continue
    c = rows["capsel"]
    aw = max(torch, key=lambda k: torch[k]["wall"])
    am = max(torch, key=lambda k: torch[k]["step"])
    rw, rm = c["wall"] / torch[aw]["wall"], c["step"] / torch[am]["step"]
    print(f"anchor (fastest setting by median): {aw} (wall), {am} (median step)")
    print(f"ratio capsel/anchor: wall {rw:.2f}x, median step {rm:.2f}x; target >= {targets[size]:.1f}x: "
          f"{'MET' if min(rw, rm) >= targets[size] else 'MISSED'}")
    if "before" in rows:
        bb = rows["before"]
        print(f"before (BASELINE): wall {bb['wall']/torch[aw]['wall']:.2f}x, median step {bb['step']/torch[am]['step']:.2f}x "
              f"of the anchor; speed-up {c['wall']/bb['wall']:.2f}x (wall), {c['step']/bb['step']:.2f}x (median step)")
    print(f"GFLOP/s: capsel {c['wall']*fpt/1e9:.1f} ({100*c['wall']*fpt/1e9/peak:.1f}% of {peak:.0f}), "
          f"anchor {torch[aw]['wall']*fpt/1e9:.1f} ({100*torch[aw]['wall']*fpt/1e9/peak:.1f}%)")
    print(f"peak RSS: capsel {c['rss']:.1f} MB, anchor {torch[aw]['rss']:.1f} MB: "
          f"{'MET' if c['rss'] <= torch[aw]['rss'] else 'MISSED'} (capsel no higher)")
    print("summary " + json.dumps({"size": size, "capsel_wall": round(c["wall"]), "capsel_step": round(c["step"]),
                                   "anchor_setting": aw, "anchor_wall": round(torch[aw]["wall"]),
                                   "anchor_step": round(torch[am]["step"]), "ratio_wall": round(rw, 3),
                                   "ratio_step": round(rm, 3), "capsel_rss_mb": c["rss"], "anchor_rss_mb": torch[aw]["rss"]}))
PYEOF
