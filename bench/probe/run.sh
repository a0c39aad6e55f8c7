#!/usr/bin/env bash
# Probe benchmark: `selector probe` against the plain Python script a user
# would otherwise write (bench/probe/baseline.py: the standard json module,
# mean p and quantiles), side by side in one run, on generated files of
# TOKENS scored tokens: a native file and a vLLM echo file with top-5 lists.
#
#   bench/probe/run.sh                               1M tokens, 5 runs each
#   TOKENS=10000000 PYTHON=0 RUNS=3 bench/probe/run.sh   10M, selector only
#
# The runs of the two tools alternate (selector, python, selector, …) so that
# a change in the machine's load hits both alike. Each run is measured with
# /usr/bin/time: wall time, CPU time (user + system) and peak RSS; the table
# shows medians. Files go to $DIR (default /tmp/capsel-probe-bench) and are
# reused when present.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOKENS=${TOKENS:-1000000}
RUNS=${RUNS:-5}
PYTHON=${PYTHON:-1}
DIR=${DIR:-/tmp/capsel-probe-bench}
PY=/usr/bin/python3
mkdir -p "$DIR"
go build -o "$DIR/selector" ./cmd/selector
SEL="$DIR/selector"

NATIVE="$DIR/native-$TOKENS.jsonl"
ECHO="$DIR/echo-$TOKENS.jsonl"
[ -s "$NATIVE" ] || go run ./bench/probe/gen -tokens "$TOKENS" -format native -out "$NATIVE"
[ -s "$ECHO" ] || go run ./bench/probe/gen -tokens "$TOKENS" -format vllm-echo -top 5 -out "$ECHO"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# measure NAME CMD...: one run; appends "wall cpu rss_kb" to $DIR/NAME.runs
measure() {
	local name=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$DIR/time" "$@" >/dev/null 2>"$DIR/stderr" || {
		cat "$DIR/stderr" >&2
		exit 1
	}
	awk '{printf "%s %.3f %s\n", $1, $2+$3, $4}' "$DIR/time" >>"$DIR/$name.runs"
}

col() { awk -v c="$2" '{print $c}' "$DIR/$1.runs" | median; }

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/ {print $2}') GB; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "go: $(go version | cut -d' ' -f3), python: $($PY --version 2>&1)"
echo "files: $(du -h "$NATIVE" | cut -f1) native (no top-k), $(du -h "$ECHO" | cut -f1) vllm-echo (top-5); $TOKENS scored tokens each"
echo "commands: $SEL probe --format FORMAT FILE --json   vs   $PY bench/probe/baseline.py FORMAT FILE"
echo
echo "| format | tool | wall s | CPU s | tokens/s (wall) | speed-up (wall) | speed-up (CPU) | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|"
for fmt in native vllm-echo; do
	f=$NATIVE
	[ "$fmt" = vllm-echo ] && f=$ECHO
	rm -f "$DIR"/sel.runs "$DIR"/py.runs
	measure sel "$SEL" probe --format "$fmt" "$f" --json # warm the page cache
	rm -f "$DIR"/sel.runs
	for _ in $(seq "$RUNS"); do
		measure sel "$SEL" probe --format "$fmt" "$f" --json
		[ "$PYTHON" = 1 ] && measure py "$PY" bench/probe/baseline.py "$fmt" "$f"
	done
	sw=$(col sel 1) sc=$(col sel 2) sr=$(col sel 3)
	if [ "$PYTHON" = 1 ]; then
		pw=$(col py 1) pc=$(col py 2) pr=$(col py 3)
		awk -v t="$TOKENS" -v f="$fmt" -v sw="$sw" -v sc="$sc" -v sr="$sr" -v pw="$pw" -v pc="$pc" -v pr="$pr" 'BEGIN {
			printf "| %s | selector probe | %.3f | %.3f | %.2fM | %.1f× | %.1f× | %.1f |\n", f, sw, sc, t/sw/1e6, pw/sw, pc/sc, sr/1024
			printf "| %s | Python json | %.3f | %.3f | %.2fM | 1× | 1× | %.1f |\n", f, pw, pc, t/pw/1e6, pr/1024 }'
	else
		awk -v t="$TOKENS" -v f="$fmt" -v sw="$sw" -v sc="$sc" -v sr="$sr" 'BEGIN {
			printf "| %s | selector probe | %.3f | %.3f | %.2fM | – | – | %.1f |\n", f, sw, sc, t/sw/1e6, sr/1024 }'
	fi
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
