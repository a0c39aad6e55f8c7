#!/usr/bin/env bash
# torch_anchor.sh V D L H T B [STEPS]: the PyTorch training anchor.
#
# Runs bench/torch_train.py under the three thread settings that matter on a
# 2-vCPU machine and reports each one's median tokens/s over RUNS runs
# (default 5; runs are interleaved across settings so that load from other
# processes hits them alike). The anchor is the setting with the highest
# median:
#   t1-ob2     torch.set_num_threads(1), OPENBLAS_NUM_THREADS=2
#   t2-ob1     torch.set_num_threads(2), OPENBLAS_NUM_THREADS=1
#   t2-obunset torch.set_num_threads(2), OPENBLAS_NUM_THREADS unset
# Each run first waits for an idle machine (quiet.sh: QUIET_IDLE, QUIET_MAX)
# and is repeated, up to TRIES times (default 6), while other processes used
# more than FOREIGN_MAX cores (default 0.1) during its timed steps; the
# attempt with the least foreign load is kept.
# Output: one line per run ("setting idle% JSON"), a summary table (foreign
# = the worst foreign load among the kept runs, in cores), then one JSON line
# starting with "anchor " for scripts. WARMUP (default 5) and PY
# (default /usr/bin/python3, Debian's interpreter with torch) can be
# overridden.
set -euo pipefail

if [ $# -lt 6 ] || [ $# -gt 7 ]; then
  echo "usage: $0 V D L H T B [STEPS]" >&2
  exit 2
fi
V=$1 D=$2 L=$3 H=$4 T=$5 B=$6 STEPS=${7:-100}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-5}
PY=${PY:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=quiet.sh
. "$here/quiet.sh"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

args=(--vocab "$V" --d "$D" --layers "$L" --heads "$H" --context "$T" --batch "$B"
      --steps "$STEPS" --warmup "$WARMUP" --json)
echo "# torch anchor V=$V d=$D L=$L H=$H T=$T B=$B steps=$STEPS warmup=$WARMUP runs=$RUNS ($(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'))"
for run in $(seq 1 "$RUNS"); do
  for setting in t1-ob2 t2-ob1 t2-obunset; do
    best="" bestf=1e9
    for ((try = 1; try <= ${TRIES:-6}; try++)); do
      idle=$(wait_quiet)
      case $setting in
        t1-ob2)     line=$(OPENBLAS_NUM_THREADS=2 "$PY" "$here/torch_train.py" "${args[@]}" --threads 1) ;;
        t2-ob1)     line=$(OPENBLAS_NUM_THREADS=1 "$PY" "$here/torch_train.py" "${args[@]}" --threads 2) ;;
        t2-obunset) line=$(env -u OPENBLAS_NUM_THREADS "$PY" "$here/torch_train.py" "${args[@]}" --threads 2) ;;
      esac
      f=$(sed -n 's/.*"foreign_cpu_cores": \([0-9.]*\).*/\1/p' <<<"$line")
      if awk -v f="$f" -v b="$bestf" 'BEGIN { exit !(f < b) }'; then
        best="$idle $line" bestf=$f
      fi
      if awk -v f="$f" -v m="${FOREIGN_MAX:-0.1}" 'BEGIN { exit !(f <= m) }'; then
        break
      fi
      echo "# retry $setting: foreign load $f cores" >&2
    done
    echo "$setting $best" | tee -a "$out"
  done
done

"$PY" - "$out" <<'PYEOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    setting, idle, js = line.split(" ", 2)
    r = json.loads(js)
    r["idle_before"] = int(idle)
    runs.setdefault(setting, []).append(r)
print(f"{'setting':<11} {'median tok/s':>12} {'min':>9} {'max':>9} {'RSS MB':>7} {'params':>8} {'loss':>7} {'foreign':>8}")
best = None
for setting, rs in runs.items():
    tps = [r["tokens_per_sec"] for r in rs]
    med = statistics.median(tps)
    rss = statistics.median(r["peak_rss_mb"] for r in rs)
    loss = statistics.median(r["final_loss_avg10"] for r in rs)
    foreign = max(r["foreign_cpu_cores"] for r in rs)
    print(f"{setting:<11} {med:>12.0f} {min(tps):>9.0f} {max(tps):>9.0f} {rss:>7.1f} {rs[0]['params']:>8} {loss:>7.4f} {foreign:>8.2f}")
    if best is None or med > best[1]:
        best = (setting, med, rss, rs[0]["params"], loss, rs[0]["threads"])
setting, med, rss, params, loss, threads = best
print("anchor " + json.dumps({"setting": setting, "tokens_per_sec": med, "peak_rss_mb": rss,
                              "params": params, "final_loss_avg10": loss, "threads": threads}))
PYEOF
