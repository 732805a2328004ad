#!/usr/bin/env bash
# Loopback throughput of the bare handler against tollgate's chains, in one
# run. One loopserver process pinned to core 0 with GOMAXPROCS=1 serves all
# five modes on consecutive ports (bare, core, full, and the floors hdr and
# hdrs: the bare handler writing core's and full's extra response headers
# as constants, no middleware); wrk, pinned to core 1, drives one mode
# at a time in short slices, rotating the order every round so that the
# drift of a shared host hits every mode alike.
#
# Each slice prints a Go benchmark line with two figures:
#   ns/op       wall time per request (1 / throughput)
#   cpu-ns/op   the server's own CPU time per request (from
#               /proc/PID/task/*/schedstat), which the host's noisy
#               neighbours disturb far less
# and benchstat compares the modes at the end. Every mode gets the same
# request, API key included, so the difference is what the chain costs.
#
# The server process is restarted every RESTART rounds (default 4): code
# and heap layout differ from one process to the next and favour one
# mode or another for the life of a process, so one process for the
# whole run would bias it (runs with the same code on core's path gave its CPU per
# request +3% in one process and +11% in another).
#   bench/loopback.sh [rounds] [seconds-per-slice] [outfile]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-20}
secs=${2:-2}
outfile=${3:-$(mktemp)}
dir=$(mktemp -d)
go build -o "$dir/loopserver" ./cmd/loopserver
port=18090
restart=${RESTART:-4}
pid=
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
start_server() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -f "$dir/out"
  GOMAXPROCS=1 taskset -c 0 "$dir/loopserver" -port $port >"$dir/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 200); do grep -q ready "$dir/out" 2>/dev/null && break; sleep 0.05; done
  key=$(head -1 "$dir/out")
}
modes=(bare core full hdr hdrs) # loopserver's order: mode i listens on port+i
cpu_ns() { cat /proc/$pid/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
slice() { # mode-index seconds -> "requests cpu-ns"
  local p=$((port + $1)) d=$2 before after n
  before=$(cpu_ns)
  n=$(taskset -c 1 wrk -t1 -c32 -d"${d}s" -H "Authorization: Bearer $key" http://127.0.0.1:$p/v1/hello | awk '/requests in/ {print $1}')
  after=$(cpu_ns)
  echo "$n $((after - before))"
}
warm_up() { for i in "${!modes[@]}"; do slice "$i" 1 >/dev/null; done; }
: >"$outfile"
for r in $(seq 1 "$rounds"); do
  if (((r - 1) % restart == 0)); then
    start_server
    warm_up
  fi
  for i in "${!modes[@]}"; do
    j=$(((i + r) % ${#modes[@]}))
    mode=${modes[$j]}
    read -r n cpu < <(slice "$j" "$secs")
    awk -v m="$mode" -v n="$n" -v c="$cpu" -v s="$secs" \
      'BEGIN {printf "BenchmarkLoopback/mode=%s %d %.0f ns/op %.0f cpu-ns/op %.0f req/s\n", m, n, s * 1e9 / n, c / n, n / s}' | tee -a "$outfile"
  done
done
# Paired ratios: each round's modes against that round's bare, taken
# seconds apart, then the median and quartiles over the rounds.
awk -v k=${#modes[@]} -v others="${modes[*]:1}" '
  { split($1, m, "="); rps[m[2]] = $7 }
  NR % k == 0 {
    n++
    for (mode in rps) if (mode != "bare") ratio[mode, n] = rps[mode] / rps["bare"]
    delete rps
  }
  function q(mode, f,   a, i, j, t) {
    for (i = 1; i <= n; i++) a[i] = ratio[mode, i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return a[int((n - 1) * f + 1.5)]
  }
  END {
    printf "paired throughput ratio to bare over %d rounds, median (quartiles):", n
    no = split(others, order, " ")
    for (i = 1; i <= no; i++) printf " %s %.3f (%.3f-%.3f)%s", order[i], q(order[i], .5), q(order[i], .25), q(order[i], .75), i < no ? "," : "\n"
  }' "$outfile"
if command -v benchstat >/dev/null; then
  benchstat -col "/mode@(${modes[*]})" "$outfile"
else
  echo "benchstat not found: go install golang.org/x/perf/cmd/benchstat@latest" >&2
fi
