#!/usr/bin/env bash
# Entity upserts per second through Wharf's HTTP API, on SQLite and PostgreSQL, beside the
# loopback ceiling measured in the same run (wrk and our load client against /healthz).
# Usage: bench/catalog-upserts.sh   (RUNS=3 REQUESTS=20000 CONCURRENCY=32 by default;
#        BIN=… LOAD=… measure prebuilt binaries, e.g. two commits in an alternated A/B)
# Prints one JSON line per measurement, then the medians. Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-32}
PG_ADMIN=${WHARF_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18181}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
LOAD=${LOAD:-target/release/examples/load}
OUT=${OUT:-$(mktemp)}

if [ "$BIN" = target/release/wharf ]; then cargo build --release --quiet -p wharf --bin wharf --example load; fi
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

source bench/lib.sh
PID=""
DATA=""
start() { # $1: database URL, or empty for SQLite
  wharf_start "$1"
  local auth="Authorization: Bearer $TOKEN"
  curl -sf "$BASE/v1/blueprints" -H "$auth" -d '{"identifier":"team","title":"Team","schema":{"properties":{}}}' >/dev/null
  curl -sf "$BASE/v1/blueprints" -H "$auth" -d '{"identifier":"service","title":"Service","schema":{"properties":{
    "language":{"type":"string","enum":["rust","go"]},"stars":{"type":"number"},"public":{"type":"boolean"},
    "url":{"type":"string","format":"url"},"tier":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}}},
    "required":["language"]},"relations":{"owner":{"target":"team","required":true}}}' >/dev/null
  curl -sf "$BASE/v1/blueprints/team/entities" -H "$auth" -d '{"identifier":"core"}' >/dev/null
}
stop() { wharf_stop; }
trap 'kill $PID 2>/dev/null || true' EXIT

for run in $(seq 1 "$RUNS"); do
  start ""
  wrk_rps=$(wrk -t2 -c"$CONCURRENCY" -d10s "$BASE/healthz" | awk '/Requests\/sec/ {print $2}')
  echo "{\"run\":$run,\"store\":\"loopback\",\"tool\":\"wrk\",\"rps\":$wrk_rps}" | tee -a "$OUT"
  "$LOAD" --url "$BASE" --mode healthz --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
    | sed "s/^{/{\"run\":$run,\"store\":\"loopback\",\"tool\":\"load\",/" | tee -a "$OUT"
  "$LOAD" --url "$BASE" --token "$TOKEN" --mode upsert --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
    | sed "s/^{/{\"run\":$run,\"store\":\"sqlite\",\"tool\":\"load\",/" | tee -a "$OUT"
  stop

  db="wharf_bench_${run}_$$"
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db" && psql "$PG_ADMIN" -qc "CREATE DATABASE $db"
  start "${PG_ADMIN%/*}/$db"
  "$LOAD" --url "$BASE" --token "$TOKEN" --mode upsert --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
    | sed "s/^{/{\"run\":$run,\"store\":\"postgres\",\"tool\":\"load\",/" | tee -a "$OUT"
  stop
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(store, tool, key):
    vals = [r[key] for r in rows if r["store"] == store and r["tool"] == tool]
    return statistics.median(vals) if vals else None
ceiling = med("loopback", "load", "rps")
print(f"median of {len({r['run'] for r in rows})} runs:")
print(f"  loopback ceiling: wrk /healthz {med('loopback','wrk','rps'):.0f} req/s; load /healthz {ceiling:.0f} req/s")
for store in ("sqlite", "postgres"):
    rps = med(store, "load", "rps")
    print(f"  {store}: {rps:.0f} upserts/s (p50 {med(store,'load','p50_ms'):.2f} ms, p99 {med(store,'load','p99_ms'):.2f} ms), "
          f"{rps / ceiling:.1%} of the load-client ceiling")
PY
