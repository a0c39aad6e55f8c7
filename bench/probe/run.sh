#!/usr/bin/env bash
# Probe benchmark: `selector probe` against the plain Python script a user
# would otherwise write (bench/probe/baseline.py, standard json module), side
# by side in one run, on generated files of TOKENS scored tokens.
#
#   bench/probe/run.sh                      # 1M tokens, 5 runs each
#   TOKENS=10000000 PYTHON=0 bench/probe/run.sh   # 10M, selector only (memory)
#
# Prints a markdown table: median wall time (hyperfine), tokens per second,
# the ratio to Python, and the median peak RSS (/usr/bin/time -f %M).
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

gen() { # format file
	[ -s "$2" ] || go run ./bench/probe/gen -tokens "$TOKENS" -format "$1" -top 5 -out "$2"
}
NATIVE="$DIR/native-$TOKENS.jsonl"
ECHO="$DIR/echo-$TOKENS.jsonl"
gen native "$NATIVE"
gen vllm-echo "$ECHO"

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# peak RSS in MB, median over RUNS runs of a command
rss() {
	for _ in $(seq "$RUNS"); do
		/usr/bin/time -f %M -o "$DIR/rss" "$@" >/dev/null 2>&1
		cat "$DIR/rss"
	done | median | awk '{printf "%.1f", $1/1024}'
}

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "files: $(du -h "$NATIVE" | cut -f1) native, $(du -h "$ECHO" | cut -f1) vllm-echo (top-5), $TOKENS scored tokens each"
echo
echo "| format | tool | median s | tokens/s | speed-up | peak RSS MB |"
echo "|---|---|---|---|---|---|"
for fmt in native vllm-echo; do
	f=$NATIVE
	[ "$fmt" = vllm-echo ] && f=$ECHO
	cmds=("$SEL probe --format $fmt $f --json")
	[ "$PYTHON" = 1 ] && cmds+=("$PY bench/probe/baseline.py $fmt $f")
	hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$DIR/h.json" "${cmds[@]}" >/dev/null
	mapfile -t med < <($PY -c 'import json,sys; [print(r["median"]) for r in json.load(open(sys.argv[1]))["results"]]' "$DIR/h.json")
	sel_rss=$(rss $SEL probe --format "$fmt" "$f" --json)
	awk -v t="$TOKENS" -v m="${med[0]}" -v r="$sel_rss" -v f="$fmt" -v p="${med[1]:-}" 'BEGIN {
		s = (p == "") ? "–" : sprintf("%.1f×", p/m);
		printf "| %s | selector probe | %.3f | %.2fM | %s | %s |\n", f, m, t/m/1e6, s, r }'
	if [ "$PYTHON" = 1 ]; then
		py_rss=$(rss $PY bench/probe/baseline.py "$fmt" "$f")
		awk -v t="$TOKENS" -v m="${med[1]}" -v r="$py_rss" -v f="$fmt" 'BEGIN {
			printf "| %s | Python json | %.3f | %.2fM | 1× | %s |\n", f, m, t/m/1e6, r }'
	fi
done
