#!/usr/bin/env bash
# The console's first paint, A/B (BENCHMARKS.md, issue 28): two release binaries, OLD and NEW,
# on the same SQLite data (10 rounds of 10,000 GitHub pull_request events, as
# bench/console.sh, seeded by OLD and copied for NEW, which migrates its copy forward), in
# PAIRS alternated pairs of RUNS loads of each screen. Prints each screen's median first
# contentful paint and "ready" for both, and the ratio.
# Usage: OLD=/tmp/wharf-old NEW=target/release/wharf bench/console-ab.sh  (PAIRS=3 RUNS=3 ROUNDS=10)
# Needs chromium and node (playwright-core, installed as bench/console.sh does), and LOAD
# (target/release/examples/ingest_load by default). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

: "${OLD:?OLD names the older wharf binary}" "${NEW:?NEW names the newer wharf binary}"
LOAD=${LOAD:-target/release/examples/ingest_load}
PORT=${PORT:-18194}
BASE=http://127.0.0.1:$PORT
SECRET=bench-webhook-secret
NODE_DIR=${NODE_DIR:-$HOME/.cache/wharf/bench-node}
OUT=${OUT:-$(mktemp)}
if [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
  mkdir -p "$NODE_DIR" && npm install --silent --prefix "$NODE_DIR" playwright-core@1 >/dev/null
fi
export PLAYWRIGHT_CORE="$NODE_DIR/node_modules/"
ROUTES=('healthz' '#/' '#/catalog/blueprints' '#/catalog/blueprints/pullRequest' '#/catalog/entities?blueprint=pullRequest'
  '#/catalog/entities/pullRequest/7' '#/ingestion/webhooks' '#/ingestion/webhooks/github' '#/ingestion/webhooks/github/events'
  '#/delivery/projects' '#/act/actions' '#/act/runs')

PID=""
DATA=$(mktemp -d)
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DATA"; true' EXIT
start() { # $1: binary, $2: data directory
  WHARF_BOOTSTRAP_CLIENT_ID=bench WHARF_BOOTSTRAP_CLIENT_SECRET=bench-secret-0123456789 WHARF_LOG=error \
    "$1" serve --listen "127.0.0.1:$PORT" --data-dir "$2" 2>/dev/null &
  PID=$!
  for _ in $(seq 1 300); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  TOKEN=$(curl -sf "$BASE/v1/auth/access_token" -H 'content-type: application/json' \
    -d '{"clientId":"bench","clientSecret":"bench-secret-0123456789"}' | sed 's/.*"accessToken":"\([^"]*\)".*/\1/')
}
stop() { kill "$PID"; wait "$PID" || true; PID=""; }

mkdir -p "$DATA/old"
start "$OLD" "$DATA/old"
github_webhook
for _ in $(seq 1 "${ROUNDS:-10}"); do
  "$LOAD" --url "$BASE" --token "$TOKEN" --webhook github --key "$KEY" --secret "$SECRET" \
    --mode drain --events 10000 --concurrency 64 >/dev/null
done
stop
cp -a "$DATA/old" "$DATA/new"
for pair in $(seq 1 "${PAIRS:-3}"); do
  for side in old new; do
    bin=$OLD; [ "$side" = new ] && bin=$NEW
    start "$bin" "$DATA/$side"
    node bench/console-paint.mjs "$BASE" "$TOKEN" "${RUNS:-3}" "${ROUTES[@]}" | sed "s/^{/{\"side\":\"$side\",\"pair\":$pair,/" >>"$OUT"
    stop
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("screen | FCP old → new, ms | new / old | ready old → new, ms")
print("---|---|---|---")
for route in dict.fromkeys(r["route"] for r in rows):
    m = {}
    for side in ("old", "new"):
        runs = [r for r in rows if r["route"] == route and r["side"] == side]
        m[side] = (statistics.median(r["fcp_ms"] for r in runs if r["fcp_ms"]), statistics.median(r["ready_ms"] for r in runs))
    print(f"`{route}` | {m['old'][0]:.0f} → {m['new'][0]:.0f} | {m['new'][0] / m['old'][0]:.2f} | {m['old'][1]:.0f} → {m['new'][1]:.0f}")
for side in ("old", "new"):
    loads = [r["fcp_ms"] for r in rows if r["side"] == side and r["route"] != "healthz" and r["fcp_ms"]]
    print(f"{side}: median FCP over every load {statistics.median(loads):.0f} ms, {sum(v < 200 for v in loads) / len(loads):.0%} under 200 ms")
PY
