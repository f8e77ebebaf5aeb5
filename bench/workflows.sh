#!/usr/bin/env bash
# Workflow benchmark (BENCHMARKS.md), on SQLite and PostgreSQL, median of RUNS runs, each
# against a fresh Wharf running a three-node workflow (SELF_SERVE_TRIGGER → synchronized
# WEBHOOK to a receiver inside the load tool, crates/wharf/examples/workflow_load.rs,
# answering 200 at once → UPSERT_ENTITY):
#  (a) drain: completed runs/s from the first `POST /v1/workflows/{id}/runs` until no run is
#      in progress: COUNT runs started at concurrency 64;
#  (b) latency: p50/p99 of each run's duration (completedAt − createdAt) at RATE runs/s for
#      DURATION s;
# and the loopback ceiling (a minimal hyper server, wrk -t1 -c64) in the same run.
# Usage: bench/workflows.sh   (RUNS=3 COUNT=10000 RATE=100 DURATION=20 CONCURRENCY=64;
#        STORES="sqlite postgres", MODES="drain latency"). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
COUNT=${COUNT:-10000}
RATE=${RATE:-100}
DURATION=${DURATION:-20}
CONCURRENCY=${CONCURRENCY:-64}
STORES=${STORES:-sqlite postgres}
MODES=${MODES:-drain latency}
PG_ADMIN=${WHARF_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18191}
CEILING_PORT=${CEILING_PORT:-18192}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
LOAD=target/release/examples/workflow_load
CEILING=target/release/examples/ceiling
OUT=${OUT:-$(mktemp)}
WORK=$(mktemp -d)

cargo build --release --quiet -p wharf --bin wharf --example workflow_load --example ceiling
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' > "$WORK/post.lua"

source bench/lib.sh
WHARF_ARGS="--allow-network 127.0.0.1/32"
PID=""
CPID=""
DATA=""
URL=""
trap 'kill $PID 2>/dev/null || true; [ -n "$CPID" ] && kill $CPID 2>/dev/null || true; rm -rf "$WORK"' EXIT

for run in $(seq 1 "$RUNS"); do
  "$CEILING" "127.0.0.1:$CEILING_PORT" & CPID=$!
  sleep 0.3
  rps=$(wrk -t1 -c64 -d10s -s "$WORK/post.lua" "http://127.0.0.1:$CEILING_PORT/" | awk '/Requests\/sec/ {print $2}')
  echo "{\"run\":$run,\"store\":\"ceiling\",\"mode\":\"ceiling\",\"rps\":$rps}" | tee -a "$OUT"
  kill $CPID; wait $CPID 2>/dev/null || true
  for store in $STORES; do
    for mode in $MODES; do
      fresh_database "$store" wharf_bench_workflows; wharf_start "$URL"
      args=(--mode "$mode")
      case $mode in
        drain) args+=(--runs "$COUNT" --concurrency "$CONCURRENCY") ;;
        latency) args+=(--rate "$RATE" --seconds "$DURATION") ;;
      esac
      "$LOAD" --url "$BASE" --token "$TOKEN" "${args[@]}" | sed "s/^{/{\"run\":$run,\"store\":\"$store\",/" | tee -a "$OUT"
      wharf_stop
    done
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
    if not math.isnan(med(store, "drain", "runs_per_s")):
        r = med(store, "drain", "runs_per_s")
        parts.append(f"{r:.0f} workflow runs/s completed ({r / ceiling:.1%} of the ceiling; POSTing at "
                     f"{med(store, 'drain', 'posted_per_s'):.0f}/s; {med(store, 'drain', 'failed'):.0f} failed)")
    if not math.isnan(med(store, "latency", "p50_ms")):
        parts.append(f"at {med(store, 'latency', 'rate'):.0f} runs/s: run duration p50 {med(store, 'latency', 'p50_ms'):.1f} ms, "
                     f"p99 {med(store, 'latency', 'p99_ms'):.1f} ms")
    if parts:
        print(f"  {store}:\n    " + "\n    ".join(parts))
PY
