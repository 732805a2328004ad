#!/usr/bin/env bash
# Loopback throughput of the bare handler against tollgate's chains, in one
# run: the server pinned to core 0 with GOMAXPROCS=1, wrk pinned to core 1.
# Modes alternate so drift hits all of them alike.
#   bench/loopback.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}
secs=${2:-10}
bin=$(mktemp -d)/loopserver
go build -o "$bin" ./cmd/loopserver
port=18090
declare -A total
for r in $(seq 1 "$rounds"); do
  for mode in bare core full; do
    out=$(mktemp)
    GOMAXPROCS=1 taskset -c 0 "$bin" -mode "$mode" -addr 127.0.0.1:$port >"$out" 2>/dev/null &
    pid=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null 127.0.0.1:$port/ 2>/dev/null && break; sleep 0.05; done
    key=$(head -1 "$out" || true)
    hdr=()
    [ -n "$key" ] && hdr=(-H "Authorization: Bearer $key")
    rps=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" "${hdr[@]}" http://127.0.0.1:$port/v1/hello | awk '/Requests\/sec/ {print $2}')
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "round=$r mode=$mode req/s=$rps"
    total[$mode]=$(echo "${total[$mode]:-0} + $rps" | bc)
  done
done
for mode in bare core full; do
  printf "%-5s mean req/s %10.0f  ratio %.3f\n" "$mode" "$(echo "${total[$mode]} / $rounds" | bc -l)" "$(echo "${total[$mode]} / ${total[bare]}" | bc -l)"
done
