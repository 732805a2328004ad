#!/usr/bin/env bash
# Offers 4× what tollgate serve holds, on loopback: the server (SQLite,
# --max-concurrency 4) pinned to core 0, the load generator to core 1.
#   bench/overload.sh [seconds-per-phase] [rounds]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-5}
rounds=${2:-1}
dir=$(mktemp -d)
(cd .. && go build -o "$dir/tollgate" ./cmd/tollgate)
go build -o "$dir/overload" ./cmd/overload
port=18100
taskset -c 0 "$dir/tollgate" serve --addr 127.0.0.1:$port --database "$dir/db" --max-concurrency 4 \
  --rate-default 1000000000/1s >"$dir/out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do grep -q tg_live_ "$dir/out" 2>/dev/null && curl -s -o /dev/null 127.0.0.1:$port/healthz && break; sleep 0.1; done
key=$(grep -o 'tg_live_[0-9A-Za-z]*' "$dir/out" | head -1)
taskset -c 1 "$dir/overload" -base http://127.0.0.1:$port -key "$key" -clients 4 -factor 4 -duration "${secs}s" -rounds "$rounds"
