#!/usr/bin/env bash
# What computed values cost a read (BENCHMARKS.md, "Computed values"): a release Wharf on
# SQLite holding 10,000 pull requests twice, each related to one of 50 teams: `pr`, a plain
# blueprint, and `prc`, the same with two calculation properties (a URL built from the
# identifier, a boolean from a number) and two mirror properties (the team's title and
# Slack channel). 11 alternated requests of each kind, median: the whole list, a page of 50
# and one entity, of `pr`, of `prc`, of `prc` with `exclude_calculated_properties=true`, and
# of `pr` with `attach_title_to_relation=true`; each size on its own. First, searches of the
# whole blueprint on a stored property, a mirrored value and a calculated one.
# Usage: bench/computed.sh   (BIN names another build). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PORT=${PORT:-18194}
BASE=http://127.0.0.1:$PORT
BIN=${BIN:-target/release/wharf}
[ -x "$BIN" ] || cargo build --release --quiet -p wharf --bin wharf
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT

fresh_database sqlite wharf_bench_computed
wharf_start "$URL"
python3 - "$BASE" "$TOKEN" <<'PY'
import json, statistics, sys, time, urllib.request

base, token = sys.argv[1], sys.argv[2]

def call(path, body=None):
    request = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST",
                                     headers={"content-type": "application/json", "authorization": "Bearer " + token})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())

call("/v1/blueprints", {"identifier": "team", "title": "Team", "schema": {"properties": {"slack": {"type": "string"}}}})
plain = {"schema": {"properties": {"state": {"type": "string"}, "comments": {"type": "number"}}},
         "relations": {"team": {"target": "team", "many": False}}}
call("/v1/blueprints", {"identifier": "pr", "title": "Pull request", **plain})
call("/v1/blueprints", {"identifier": "prc", "title": "Pull request (computed)", **plain,
                        "calculationProperties": {
                            "url": {"type": "string", "format": "url", "calculation": "'https://github.com/acme/api/pull/' + .identifier"},
                            "busy": {"type": "boolean", "calculation": ".properties.comments > 10"}},
                        "mirrorProperties": {"teamName": {"path": "team.$title"}, "slack": {"path": "team.slack"}}})
for start in range(0, 50, 20):
    call("/v1/blueprints/team/entities/bulk", {"entities": [
        {"identifier": f"t{i}", "title": f"Team {i}", "properties": {"slack": f"#team-{i}"}} for i in range(start, min(start + 20, 50))]})
for blueprint in ["pr", "prc"]:
    for start in range(0, 10_000, 20):
        call(f"/v1/blueprints/{blueprint}/entities/bulk", {"entities": [
            {"identifier": f"{i:05}", "title": f"Fix the parser #{i}",
             "properties": {"state": "open" if i % 2 else "closed", "comments": i % 20},
             "relations": {"team": f"t{i % 50}"}}
            for i in range(start, start + 20)]})

sample = call("/v1/blueprints/prc/entities/00042")["entity"]["properties"]
assert sample["url"].endswith("/00042") and sample["teamName"] == "Team 42" and sample["slack"] == "#team-42", sample

# Searches of the whole blueprint, answered whole: a rule on a stored property against rules
# on a mirrored and a calculated value, which the search computes for every candidate.
def search(blueprint, rule):
    return call(f"/v1/blueprints/{blueprint}/entities/search", {"combinator": "and", "rules": [rule]})
searches = {
    "search: stored property (state = open, 5,000 match)": ("pr", {"property": "state", "operator": "=", "value": "open"}),
    "search: mirrored value (slack = #team-7, 200 match)": ("prc", {"property": "slack", "operator": "=", "value": "#team-7"}),
    "search: calculated value (busy = true, 4,500 match)": ("prc", {"property": "busy", "operator": "=", "value": True}),
}
times = {kind: [] for kind in searches}
for _ in range(11):
    for kind, (blueprint, rule) in searches.items():
        started = time.perf_counter()
        answered = len(search(blueprint, rule)["entities"])
        times[kind].append((time.perf_counter() - started) * 1000)
for kind in searches:
    print(f"{kind}: median {statistics.median(times[kind]):.2f} ms ({min(times[kind]):.2f}-{max(times[kind]):.2f})")

# Each size alternates its four kinds on its own, so that no small read follows a large one.
for what, query in [("whole list", ""), ("page of 50", "limit=50"), ("one entity", None)]:
    kinds = {}
    for label, blueprint, extra in [("plain", "pr", ""), ("computed", "prc", ""),
                                    ("computed, excluded", "prc", "exclude_calculated_properties=true"),
                                    ("plain, relation titles", "pr", "attach_title_to_relation=true")]:
        path = f"/v1/blueprints/{blueprint}/entities" + ("/05000" if query is None else "")
        params = "&".join(p for p in [query, extra] if p)
        kinds[f"{what}: {label}"] = path + ("?" + params if params else "")
    times = {kind: [] for kind in kinds}
    for _ in range(11):
        for kind, path in kinds.items():
            started = time.perf_counter()
            call(path)
            times[kind].append((time.perf_counter() - started) * 1000)
    for kind in kinds:
        print(f"{kind}: median {statistics.median(times[kind]):.2f} ms ({min(times[kind]):.2f}-{max(times[kind]):.2f})")
PY
wharf_stop
