#!/usr/bin/env bash
# A page of a search against every match (BENCHMARKS.md, "Search pages"): a release Wharf on
# SQLite holding 10,000 entities of one blueprint; 11 alternated requests of each kind, median:
# a filter every entity matches, answered whole (how the console asked before) and as a page
# of 50 (`limit`, how it asks now), and a filter 10 entities match, without and with `limit`.
# Usage: bench/search.sh   (BIN names another build). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PORT=${PORT:-18193}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
[ -x "$BIN" ] || cargo build --release --quiet -p wharf --bin wharf
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT

fresh_database sqlite wharf_bench_search
wharf_start "$URL"
python3 - "$BASE" "$TOKEN" <<'PY'
import json, statistics, sys, time, urllib.request

base, token = sys.argv[1], sys.argv[2]

def post(path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "authorization": "Bearer " + token})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())

post("/v1/blueprints", {"identifier": "pullRequest", "title": "Pull request",
                        "schema": {"properties": {"state": {"type": "string"}, "author": {"type": "string"}}}})
for start in range(0, 10_000, 20):
    post("/v1/blueprints/pullRequest/entities/bulk", {"entities": [
        {"identifier": f"pr-{i:05}", "title": f"Fix the parser #{i}",
         "properties": {"state": "open" if i % 2 else "closed", "author": f"dev{i % 50}"}}
        for i in range(start, start + 20)]})

def contains(text):  # the console's text filter
    return {"combinator": "and", "rules": [{"combinator": "or", "rules": [
        {"property": "$identifier", "operator": "contains", "value": text},
        {"property": "$title", "operator": "contains", "value": text}]}]}

kinds = {
    "every entity matches, answered whole": contains("pr"),
    "every entity matches, limit 50": {"query": contains("pr"), "limit": 50},
    "10 match, answered whole": contains("pr-0999"),
    "10 match, limit 50": {"query": contains("pr-0999"), "limit": 50},
}
times = {kind: [] for kind in kinds}
answered = {}
for _ in range(11):
    for kind, body in kinds.items():
        started = time.perf_counter()
        answer = post("/v1/blueprints/pullRequest/entities/search", body)
        times[kind].append((time.perf_counter() - started) * 1000)
        answered[kind] = len(answer["entities"])
for kind in kinds:
    print(f"{kind}: {answered[kind]} entities, median {statistics.median(times[kind]):.1f} ms "
          f"({min(times[kind]):.1f}-{max(times[kind]):.1f})")
PY
wharf_stop
