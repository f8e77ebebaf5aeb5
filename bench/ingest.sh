#!/usr/bin/env bash
# Ingestion benchmarks (BENCHMARKS.md), on SQLite and PostgreSQL, median of RUNS runs:
#  (a) accepted events/s: wrk, 64 connections, DURATION seconds, the same signed ~2 KiB
#      pull_request body, against Wharf and against a minimal hyper server answering 202
#      (the loopback ceiling), in the same run;
#  (b) mapped entities/s end to end: EVENTS events sent at concurrency 64, until all mapped;
#  (c) p50/p99 from 202 to entity visible at RATE events/s for 20 s.
# Usage: bench/ingest.sh   (RUNS=3 DURATION=30 EVENTS=20000 RATE=1000 by default;
#        STORES="sqlite postgres" and MODES="accept drain latency" choose what runs)
# Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-30}
EVENTS=${EVENTS:-20000}
RATE=${RATE:-1000}
STORES=${STORES:-sqlite postgres}
MODES=${MODES:-accept drain latency}
PG_ADMIN=${WHARF_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18181}
CEILING_PORT=${CEILING_PORT:-18182}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
LOAD=target/release/examples/ingest_load
CEILING=target/release/examples/ceiling
SECRET=bench-webhook-secret
OUT=${OUT:-$(mktemp)}
WORK=$(mktemp -d)

cargo build --release --quiet -p wharf --bin wharf --example ingest_load --example ceiling
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

# The wrk script: one signed body (what a GitHub delivery looks like).
python3 - "$WORK" "$SECRET" <<'PY'
import hashlib, hmac, json, sys
work, secret = sys.argv[1], sys.argv[2]
body = json.dumps({
  "action": "opened", "number": 1,
  "pull_request": {"id": 1, "number": 1, "state": "open", "title": "Retry deliveries on 429 with Retry-After",
    "user": {"login": "octocat", "id": 583231, "type": "User", "site_admin": False, "html_url": "https://github.com/octocat"},
    "body": "Deliveries that get a 429 now wait for the Retry-After the receiver asked for, with jitter. " * 13,
    "html_url": "https://github.com/acme/wharf/pull/1", "created_at": "2026-11-20T10:15:00Z",
    "head": {"ref": "feature/retry", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
    "base": {"ref": "main", "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b"},
    "labels": [{"name": "delivery"}, {"name": "enhancement"}], "additions": 120, "deletions": 14},
  "repository": {"id": 1296269, "name": "wharf", "full_name": "acme/wharf", "html_url": "https://github.com/acme/wharf"},
  "sender": {"login": "octocat", "id": 583231, "type": "User"}}, separators=(",", ":"))
assert 1900 <= len(body) <= 2400, len(body)
sig = "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
open(f"{work}/post.lua", "w").write(
  'wrk.method = "POST"\n'
  f'wrk.body = {json.dumps(body)}\n'
  'wrk.headers["Content-Type"] = "application/json"\n'
  'wrk.headers["X-GitHub-Event"] = "pull_request"\n'
  f'wrk.headers["X-Hub-Signature-256"] = "{sig}"\n')
PY

source bench/lib.sh
PID=""
CPID=""
DATA=""
start() { # $1: database URL, or empty for SQLite
  wharf_start "$1"
  github_webhook
}
stop() { wharf_stop; }
load() { # $1 run, $2 store, $3.. ingest_load arguments
  local run=$1 store=$2; shift 2
  "$LOAD" --url "$BASE" --token "$TOKEN" --webhook github --key "$KEY" --secret "$SECRET" "$@" \
    | sed "s/^{/{\"run\":$run,\"store\":\"$store\",/" | tee -a "$OUT"
}
URL=""
fresh() { fresh_database "$1" wharf_bench_ingest; }
wrk_rps() { wrk -t1 -c64 -d"${DURATION}s" -s "$WORK/post.lua" "$1" | awk '/Requests\/sec/ {print $2}'; }
trap 'kill $PID 2>/dev/null || true; [ -n "$CPID" ] && kill $CPID 2>/dev/null || true; rm -rf "$WORK"' EXIT

has() { [[ " $MODES " == *" $1 "* ]]; }
for run in $(seq 1 "$RUNS"); do
  if has accept; then
    "$CEILING" "127.0.0.1:$CEILING_PORT" & CPID=$!
    sleep 0.3
    echo "{\"run\":$run,\"store\":\"ceiling\",\"mode\":\"accept\",\"rps\":$(wrk_rps "http://127.0.0.1:$CEILING_PORT/")}" | tee -a "$OUT"
    kill $CPID; wait $CPID 2>/dev/null || true
  fi
  for store in $STORES; do
    if has accept; then
      fresh "$store"; start "$URL"
      echo "{\"run\":$run,\"store\":\"$store\",\"mode\":\"accept\",\"rps\":$(wrk_rps "$BASE/ingest/$KEY")}" | tee -a "$OUT"
      stop
    fi
    fresh "$store"; start "$URL"   # (b) and (c) on an empty store
    has drain && load "$run" "$store" --mode drain --events "$EVENTS" --concurrency 64
    has latency && load "$run" "$store" --mode latency --rate "$RATE" --seconds 20 --first-id 10000000
    stop
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(store, mode, key):
    vals = [r[key] for r in rows if r["store"] == store and r["mode"] == mode]
    return statistics.median(vals) if vals else float("nan")
import math
ceiling = med("ceiling", "accept", "rps")
print(f"median of {len({r['run'] for r in rows})} runs")
if not math.isnan(ceiling):
    print(f"  loopback ceiling (minimal hyper, wrk -t1 -c64): {ceiling:.0f} req/s")
for store in ("sqlite", "postgres"):
    parts = []
    accept = med(store, "accept", "rps")
    if not math.isnan(accept):
        parts.append(f"(a) {accept:.0f} accepted events/s = {accept / ceiling:.1%} of the ceiling")
    if not math.isnan(med(store, "drain", "entities_per_s")):
        parts.append(f"(b) {med(store, 'drain', 'entities_per_s'):.0f} mapped entities/s end to end "
                     f"(accepting at {med(store, 'drain', 'accepted_per_s'):.0f}/s)")
    if not math.isnan(med(store, "latency", "p50_ms")):
        parts.append(f"(c) at {med(store, 'latency', 'rate'):.0f} events/s: p50 {med(store, 'latency', 'p50_ms'):.1f} ms, "
                     f"p99 {med(store, 'latency', 'p99_ms'):.1f} ms")
    if parts:
        print(f"  {store}: " + "; ".join(parts))
PY
