#!/usr/bin/env bash
# objectives.sh: what the objectives that read more than p cost capsel's
# trainer, against NLL in the same run (train.BenchmarkObjectiveCost: eaft-1,
# deft and asft-0.1 interleaved step by step with nll, at the shapes S1 and
# S3). RUNS runs (default 5), each after the machine looks idle (quiet.sh);
# per run the ratios to nll of the median step time and of the heap the
# trainer holds; then, per shape and objective, the medians over the runs.
# Raw benchmark output goes to $OUT (default /tmp/objectives_bench.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-5}
OUT=${OUT:-/tmp/objectives_bench.txt}
# shellcheck source=quiet.sh
. "$here/quiet.sh"
bin=$(mktemp -d)/train.test
(cd "$here/.." && go test -c -o "$bin" ./train)
: >"$OUT"
for r in $(seq 1 "$RUNS"); do
  idle=$(wait_quiet)
  echo "== run $r (idle $idle%, load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$OUT"
  "$bin" -test.run '^$' -test.bench ObjectiveCost -test.benchtime 1x | tee -a "$OUT" | grep '^Benchmark' || true
done
printf "%-28s %-9s %10s %8s %10s %8s  %s\n" shape objective ms/step "× nll" "heap MB" "× nll" "(runs)"
awk '
  /^BenchmarkObjectiveCost\// {
    shape = $1; sub(/^BenchmarkObjectiveCost\//, "", shape); sub(/-[0-9]+$/, "", shape)
    for (i = 5; i < NF; i += 2) {
      m = $(i + 1); v = $i
      if (m ~ /-ms\/step$/) { o = m; sub(/-ms\/step$/, "", o); ms[shape, o] = v; objs[o] = 1 }
      if (m ~ /-MB$/) { o = m; sub(/-MB$/, "", o); mb[shape, o] = v }
    }
    shapes[shape] = 1; n[shape]++
    for (o in objs) {
      k = n[shape]
      tr[shape, o, k] = ms[shape, o] / ms[shape, "nll"]; mr[shape, o, k] = mb[shape, o] / mb[shape, "nll"]
      ta[shape, o, k] = ms[shape, o]; ma[shape, o, k] = mb[shape, o]
    }
  }
  function median(arr, s, o, cnt,   i, j, x, t) {
    for (i = 1; i <= cnt; i++) x[i] = arr[s, o, i]
    for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
    return cnt % 2 ? x[(cnt + 1) / 2] : (x[cnt / 2] + x[cnt / 2 + 1]) / 2
  }
  END {
    for (s in shapes) for (o in objs)
      printf "%-28s %-9s %10.2f %8.2f %10.2f %8.2f  (%d)\n", s, o, median(ta, s, o, n[s]), median(tr, s, o, n[s]), median(ma, s, o, n[s]), median(mr, s, o, n[s]), n[s]
  }' "$OUT" | sort
