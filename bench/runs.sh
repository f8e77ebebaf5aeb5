#!/usr/bin/env bash
# Run and automation benchmarks (BENCHMARKS.md), on SQLite and PostgreSQL, median of RUNS runs,
# each against a fresh Wharf whose action and automation send to a receiver inside the load
# tool (crates/wharf/examples/run_load.rs) answering 200 at once:
#  (a) runs-drain: runs/s from `POST /v1/actions/{id}/runs` to the run's request arriving:
#      COUNT asynchronous WEBHOOK runs started at concurrency 64;
#  (a') agent-drain: the same through `wharf agent` (started beside Wharf, --concurrency 64):
#      the action is `agent: true`, so the agent claims each run, sends it and reports back;
#  (b) runs-latency: p50/p99 from the POST being sent to the arrival, at RATE runs/s for 20 s;
#  (c) automations-drain: automations fired per second from COUNT entity upserts at
#      concurrency 64 (each an ENTITY_UPDATED that fires one WEBHOOK automation);
#  (d) automations-latency: p50/p99 from the upsert being sent to the automation's request
#      arriving, at RATE upserts/s for 20 s;
# and the loopback ceiling (a minimal hyper server, wrk -t1 -c64) in the same run.
# Usage: bench/runs.sh   (RUNS=3 COUNT=20000 RATE=200 DURATION=20 CONCURRENCY=64; STORES="sqlite postgres"
#        and MODES="runs-drain agent-drain runs-latency automations-drain automations-latency" choose what
#        runs). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
COUNT=${COUNT:-20000}
RATE=${RATE:-200}
DURATION=${DURATION:-20}
CONCURRENCY=${CONCURRENCY:-64}
STORES=${STORES:-sqlite postgres}
MODES=${MODES:-runs-drain runs-latency automations-drain automations-latency}
PG_ADMIN=${WHARF_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18181}
CEILING_PORT=${CEILING_PORT:-18182}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
LOAD=target/release/examples/run_load
CEILING=target/release/examples/ceiling
OUT=${OUT:-$(mktemp)}
WORK=$(mktemp -d)

cargo build --release --quiet -p wharf --bin wharf --example run_load --example ceiling
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' > "$WORK/post.lua"

source bench/lib.sh
# The receiver listens on 127.0.0.1, which Wharf blocks unless allowed.
WHARF_ARGS="--allow-network 127.0.0.1/32"
PID=""
CPID=""
DATA=""
URL=""
load() { # $1 run, $2 store, $3.. run_load arguments
  local run=$1 store=$2; shift 2
  "$LOAD" --url "$BASE" --token "$TOKEN" "$@" | sed "s/^{/{\"run\":$run,\"store\":\"$store\",/" | tee -a "$OUT"
}
APID=""
trap '[ -n "$APID" ] && kill $APID 2>/dev/null; kill $PID 2>/dev/null || true; [ -n "$CPID" ] && kill $CPID 2>/dev/null || true; rm -rf "$WORK"' EXIT

for run in $(seq 1 "$RUNS"); do
  "$CEILING" "127.0.0.1:$CEILING_PORT" & CPID=$!
  sleep 0.3
  rps=$(wrk -t1 -c64 -d10s -s "$WORK/post.lua" "http://127.0.0.1:$CEILING_PORT/" | awk '/Requests\/sec/ {print $2}')
  echo "{\"run\":$run,\"store\":\"ceiling\",\"mode\":\"ceiling\",\"rps\":$rps}" | tee -a "$OUT"
  kill $CPID; wait $CPID 2>/dev/null || true
  for store in $STORES; do
    for mode in $MODES; do
      fresh_database "$store" wharf_bench_runs; wharf_start "$URL"
      case $mode in
        agent-drain)
          "$BIN" agent --url "$BASE" --client-id bench --client-secret bench-secret-0123456789 --installation-id bench \
            --concurrency "$CONCURRENCY" 2>/dev/null & APID=$!
          load "$run" "$store" --mode "$mode" --runs "$COUNT" --concurrency "$CONCURRENCY"
          kill "$APID"; wait "$APID" 2>/dev/null || true; APID="" ;;
        *-drain) load "$run" "$store" --mode "$mode" --runs "$COUNT" --concurrency "$CONCURRENCY" ;;
        *-latency) load "$run" "$store" --mode "$mode" --rate "$RATE" --seconds "$DURATION" ;;
      esac
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
    if not math.isnan(med(store, "runs-drain", "runs_per_s")):
        r = med(store, "runs-drain", "runs_per_s")
        parts.append(f"{r:.0f} runs/s POST→arrival ({r / ceiling:.1%} of the ceiling; POSTing at "
                     f"{med(store, 'runs-drain', 'posted_per_s'):.0f}/s; {med(store, 'runs-drain', 'duplicates'):.0f} duplicates)")
    if not math.isnan(med(store, "agent-drain", "runs_per_s")):
        r = med(store, "agent-drain", "runs_per_s")
        parts.append(f"{r:.0f} runs/s through wharf agent POST→arrival ({r / ceiling:.1%} of the ceiling; "
                     f"{med(store, 'agent-drain', 'duplicates'):.0f} duplicates)")
    if not math.isnan(med(store, "runs-latency", "p50_ms")):
        parts.append(f"at {med(store, 'runs-latency', 'rate'):.0f} runs/s: p50 {med(store, 'runs-latency', 'p50_ms'):.1f} ms, "
                     f"p99 {med(store, 'runs-latency', 'p99_ms'):.1f} ms")
    if not math.isnan(med(store, "automations-drain", "automations_per_s")):
        a = med(store, "automations-drain", "automations_per_s")
        parts.append(f"{a:.0f} automations/s upsert→arrival (upserting at "
                     f"{med(store, 'automations-drain', 'upserted_per_s'):.0f}/s; "
                     f"{med(store, 'automations-drain', 'duplicates'):.0f} duplicates)")
    if not math.isnan(med(store, "automations-latency", "p50_ms")):
        parts.append(f"at {med(store, 'automations-latency', 'rate'):.0f} changes/s: p50 "
                     f"{med(store, 'automations-latency', 'p50_ms'):.1f} ms, p99 {med(store, 'automations-latency', 'p99_ms'):.1f} ms")
    if parts:
        print(f"  {store}:\n    " + "\n    ".join(parts))
PY
