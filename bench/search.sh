#!/usr/bin/env bash
# A page of a search against every match, and a search that names its candidates against one
# that reads every page (BENCHMARKS.md, "Search pages"): a release Wharf on SQLite holding
# 10,000 pull requests, each related to one of 50 teams; 11 alternated requests of each kind,
# median: a filter every entity matches, answered whole (how the console asked before) and as
# a page of 50 (`limit`, how it asks now); a filter 10 entities match, without and with
# `limit`; three identifiers (`$identifier in`) and one team's pull requests (`team =`, a page
# of 10, as the entity page asks), each also as the same rule inside a group, which names no
# candidates and so reads every page.
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

post("/v1/blueprints", {"identifier": "team", "title": "Team", "schema": {"properties": {}}})
post("/v1/blueprints", {"identifier": "pullRequest", "title": "Pull request",
                        "schema": {"properties": {"state": {"type": "string"}, "author": {"type": "string"}}},
                        "relations": {"team": {"target": "team", "many": False}}})
for start in range(0, 50, 20):
    post("/v1/blueprints/team/entities/bulk", {"entities": [{"identifier": f"t{i}"} for i in range(start, min(start + 20, 50))]})
for start in range(0, 10_000, 20):
    post("/v1/blueprints/pullRequest/entities/bulk", {"entities": [
        {"identifier": f"pr-{i:05}", "title": f"Fix the parser #{i}",
         "properties": {"state": "open" if i % 2 else "closed", "author": f"dev{i % 50}"},
         "relations": {"team": f"t{i % 50}"}}
        for i in range(start, start + 20)]})

def contains(text):  # the console's text filter
    return {"combinator": "and", "rules": [{"combinator": "or", "rules": [
        {"property": "$identifier", "operator": "contains", "value": text},
        {"property": "$title", "operator": "contains", "value": text}]}]}

def grouped(query):  # the same rules one level down: no candidates named
    return {"combinator": "and", "rules": [query]}

three = {"combinator": "and", "rules": [{"property": "$identifier", "operator": "in", "value": ["pr-00007", "pr-05000", "pr-09999"]}]}
team = {"combinator": "and", "rules": [{"relation": "team", "operator": "=", "value": "t7"}]}
kinds = {
    "every entity matches, answered whole": contains("pr"),
    "every entity matches, limit 50": {"query": contains("pr"), "limit": 50},
    "10 match, answered whole": contains("pr-0999"),
    "10 match, limit 50": {"query": contains("pr-0999"), "limit": 50},
    "$identifier in 3, named": three,
    "$identifier in 3, in a group": grouped(three),
    "team = t7 (200 match), limit 10, named": {"query": team, "limit": 10},
    "team = t7 (200 match), limit 10, in a group": {"query": grouped(team), "limit": 10},
    "team = t7 (200 match), whole, named": team,
    "team = t7 (200 match), whole, in a group": grouped(team),
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
