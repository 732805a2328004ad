#!/usr/bin/env bash
# Runs the rate-limiter comparison and writes bench/results/ratelimit.txt.
# Six rounds of -count 1, so that every implementation's samples are spread
# over the whole run (noise from the machine hits them all alike), then
# benchstat with implementations as columns (the first, x/time/rate or
# redis_rate, is the base of the ratios).
#   bench/ratelimit/run.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
raw=results/ratelimit-raw.txt
mkdir -p results
{
  echo "# $(date -u +%FT%TZ) $(go version) $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  for r in $(seq 1 "$rounds"); do
    go test -run '^$' -bench . -benchmem -count 1 ./ratelimit/ | grep -v '^ok'
  done
} | tee "$raw"
benchstat() { go run golang.org/x/perf/cmd/benchstat@latest "$@"; }
{
  echo "# In memory: benchstat -filter .name:Memory -col /impl $raw (base: x/time/rate)"
  benchstat -filter .name:Memory -col /impl "$raw"
  echo
  echo "# Redis, 64 callers: benchstat -filter .name:Redis -col /impl $raw (base: redis_rate)"
  benchstat -filter .name:Redis -col /impl "$raw"
} > results/ratelimit.txt
cat results/ratelimit.txt
