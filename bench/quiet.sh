# quiet.sh: sourced by the benchmark runners. The CPUs of this VM are shared
# with other jobs, so each measurement first waits until the machine looks
# idle: wait_quiet polls /proc/stat in 1 s windows until the idle share is at
# least QUIET_IDLE percent (default 90), for at most QUIET_MAX seconds
# (default 300), and prints the idle share it settled for.

idle_pct() {
  local a b
  read -r -a a < /proc/stat
  sleep 1
  read -r -a b < /proc/stat
  local tot=0 i
  for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
  local idle=$((b[4] + b[5] - a[4] - a[5]))
  echo $((tot > 0 ? 100 * idle / tot : 100))
}

wait_quiet() {
  local want=${QUIET_IDLE:-90} max=${QUIET_MAX:-300} p=0 t
  for ((t = 0; t < max; t++)); do
    p=$(idle_pct)
    if [ "$p" -ge "$want" ]; then
      echo "$p"
      return 0
    fi
  done
  echo "$p"
}
