#!/usr/bin/env bash
# The console's first paint (BENCHMARKS.md, issue 28): each screen loaded in a new headless
# Chromium context (nothing cached) from a release Wharf holding 10,000 entities and 100,000
# webhook events (10 rounds of 10,000 GitHub pull_request events over the same 10,000 pull
# requests), on SQLite and PostgreSQL, median of RUNS loads. Reports the first contentful paint
# and "ready" (the screen drawn with its data) in ms, against the 200 ms goal and against the
# floor of the same run: /healthz, a JSON document Chromium paints as text (no script). Also prints the
# console's share of the binary (its embedded files).
# Usage: bench/console.sh   (RUNS=3 ROUNDS=10 by default; STORES="sqlite postgres"; BIN, LOAD)
# Needs chromium (apt-get install chromium) and node; installs playwright-core (the driver
# only, no browser download) into ~/.cache/wharf/bench-node on first use.
# Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-10}
STORES=${STORES:-sqlite postgres}
PG_ADMIN=${WHARF_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18191}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
LOAD=${LOAD:-target/release/examples/ingest_load}
SECRET=bench-webhook-secret
OUT=${OUT:-$(mktemp)}
NODE_DIR=${NODE_DIR:-$HOME/.cache/wharf/bench-node}

command -v chromium >/dev/null || { echo "chromium is needed: apt-get install chromium" >&2; exit 1; }
if [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
  mkdir -p "$NODE_DIR" && npm install --silent --prefix "$NODE_DIR" playwright-core@1 >/dev/null
fi
export PLAYWRIGHT_CORE="$NODE_DIR/node_modules/"
# BIN and LOAD name other builds (the load tool only seeds: its speed is not measured).
[ -x "$BIN" ] && [ -x "$LOAD" ] || cargo build --release --quiet -p wharf --bin wharf --example ingest_load

PID=""
DATA=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT

ROUTES=(
  'healthz'
  '#/'
  '#/catalog/blueprints'
  '#/catalog/blueprints/pullRequest'
  '#/catalog/entities?blueprint=pullRequest'
  '#/catalog/entities/pullRequest/7'
  '#/ingestion/webhooks'
  '#/ingestion/webhooks/github'
  '#/ingestion/webhooks/github/events'
  '#/delivery/projects'
  '#/act/actions'
  '#/act/runs'
)

for store in $STORES; do
  fresh_database "$store" wharf_bench_console
  wharf_start "$URL"
  github_webhook
  started=$(date +%s)
  for round in $(seq 1 "$ROUNDS"); do
    "$LOAD" --url "$BASE" --token "$TOKEN" --webhook github --key "$KEY" --secret "$SECRET" \
      --mode drain --events 10000 --concurrency 64 >/dev/null
  done
  echo "$store: $((ROUNDS * 10000)) events mapped in $(( $(date +%s) - started )) s" >&2
  node bench/console-paint.mjs "$BASE" "$TOKEN" "$RUNS" "${ROUTES[@]}" | sed "s/^{/{\"store\":\"$store\",/" | tee -a "$OUT"
  wharf_stop
  PID=""
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\nscreen | store | first contentful paint, ms | ready, ms | ready / 200 ms goal")
print("---|---|---|---|---")
for key in dict.fromkeys((r["route"], r["store"]) for r in rows):
    runs = [r for r in rows if (r["route"], r["store"]) == key]
    fcp = statistics.median(r["fcp_ms"] for r in runs if r["fcp_ms"] is not None)
    ready = statistics.median(r["ready_ms"] for r in runs)
    print(f"`{key[0]}` | {key[1]} | {fcp:.0f} | {ready:.0f} | {ready / 200:.2f}")
PY
