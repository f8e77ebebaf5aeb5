#!/usr/bin/env bash
# Delivery benchmarks (BENCHMARKS.md), on SQLite and PostgreSQL, median of RUNS runs:
#  (a) deliveries/s from `POST …/events` to arrival at a local receiver: EVENTS events
#      published at concurrency 64 to a project with one webhook, the receiver answering 200
#      at once; the loopback ceiling (a minimal hyper server, wrk -t1 -c64) in the same run;
#  (b) p50/p99 from publish to arrival at RATE events/s for 20 s.
# Usage: bench/deliveries.sh   (RUNS=3 EVENTS=20000 RATE=500; STORES="sqlite postgres" and
#        MODES="drain latency" choose what runs; CONCURRENCY=64 publishers). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
EVENTS=${EVENTS:-20000}
RATE=${RATE:-500}
CONCURRENCY=${CONCURRENCY:-64}
STORES=${STORES:-sqlite postgres}
MODES=${MODES:-drain latency}
PG_ADMIN=${WHARF_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18181}
CEILING_PORT=${CEILING_PORT:-18182}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
LOAD=target/release/examples/delivery_load
CEILING=target/release/examples/ceiling
OUT=${OUT:-$(mktemp)}
WORK=$(mktemp -d)

cargo build --release --quiet -p wharf --bin wharf --example delivery_load --example ceiling
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' > "$WORK/post.lua"

source bench/lib.sh
# The receiver listens on 127.0.0.1, which Wharf blocks unless allowed.
WHARF_ARGS="--allow-network 127.0.0.1/32"
PID=""
CPID=""
DATA=""
URL=""
fresh() { fresh_database "$1" wharf_bench_deliveries; }
load() { # $1 run, $2 store, $3.. delivery_load arguments
  local run=$1 store=$2; shift 2
  "$LOAD" --url "$BASE" --token "$TOKEN" "$@" | sed "s/^{/{\"run\":$run,\"store\":\"$store\",/" | tee -a "$OUT"
}
trap 'kill $PID 2>/dev/null || true; [ -n "$CPID" ] && kill $CPID 2>/dev/null || true; rm -rf "$WORK"' EXIT

has() { [[ " $MODES " == *" $1 "* ]]; }
for run in $(seq 1 "$RUNS"); do
  "$CEILING" "127.0.0.1:$CEILING_PORT" & CPID=$!
  sleep 0.3
  rps=$(wrk -t1 -c64 -d10s -s "$WORK/post.lua" "http://127.0.0.1:$CEILING_PORT/" | awk '/Requests\/sec/ {print $2}')
  echo "{\"run\":$run,\"store\":\"ceiling\",\"mode\":\"ceiling\",\"rps\":$rps}" | tee -a "$OUT"
  kill $CPID; wait $CPID 2>/dev/null || true
  for store in $STORES; do
    if has drain; then
      fresh "$store"; wharf_start "$URL"
      load "$run" "$store" --mode drain --events "$EVENTS" --concurrency "$CONCURRENCY"
      wharf_stop
    fi
    if has latency; then
      fresh "$store"; wharf_start "$URL"
      load "$run" "$store" --mode latency --rate "$RATE" --seconds 20
      wharf_stop
    fi
  done
done

python3 - "$OUT" <<'PY'
import json, math, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(store, mode, key):
    vals = [r[key] for r in rows if r["store"] == store and r["mode"] == mode]
    return statistics.median(vals) if vals else float("nan")
ceiling = med("ceiling", "ceiling", "rps")
print(f"median of {len({r['run'] for r in rows})} runs")
print(f"  loopback ceiling (minimal hyper, wrk -t1 -c64): {ceiling:.0f} req/s")
for store in ("sqlite", "postgres"):
    parts = []
    if not math.isnan(med(store, "drain", "deliveries_per_s")):
        d = med(store, "drain", "deliveries_per_s")
        parts.append(f"{d:.0f} deliveries/s publish→arrival ({d / ceiling:.1%} of the ceiling; publishing at "
                     f"{med(store, 'drain', 'published_per_s'):.0f}/s; {med(store, 'drain', 'duplicates'):.0f} duplicates)")
    if not math.isnan(med(store, "latency", "p50_ms")):
        parts.append(f"at {med(store, 'latency', 'rate'):.0f} events/s: p50 {med(store, 'latency', 'p50_ms'):.1f} ms, "
                     f"p99 {med(store, 'latency', 'p99_ms'):.1f} ms")
    if parts:
        print(f"  {store}: " + "; ".join(parts))
PY
