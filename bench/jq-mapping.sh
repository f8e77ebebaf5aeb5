#!/usr/bin/env bash
# `wharf jq` against Debian's `jq` on a typical Port mapping over 10,000 real-shaped GitHub
# events (JSONL from crates/jq/examples/github_events.rs), with hyperfine: median of 5 runs
# each, in the same run. Usage: bench/jq-mapping.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000}
command -v jq >/dev/null || { echo "jq is needed: apt-get install jq" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install hyperfine" >&2; exit 1; }
cargo build --release --quiet -p wharf --bin wharf
cargo build --release --quiet -p wharf-jq --example github_events
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
target/release/examples/github_events "$EVENTS" > "$WORK/events.jsonl"
echo "events: $EVENTS, $(du -h "$WORK/events.jsonl" | cut -f1) of JSONL; $(jq --version)"
# Both must produce the same output before they are timed.
cmp <(jq -c -f bench/mapping.jq "$WORK/events.jsonl") <(target/release/wharf jq -c -f bench/mapping.jq "$WORK/events.jsonl")
hyperfine --warmup 1 --runs 5 --export-json "$WORK/times.json" \
  -n jq "jq -c -f bench/mapping.jq $WORK/events.jsonl" \
  -n wharf "target/release/wharf jq -c -f bench/mapping.jq $WORK/events.jsonl" >/dev/null
python3 - "$WORK/times.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
jq, wharf = r["jq"]["median"], r["wharf"]["median"]
print(f"median of 5: jq {jq*1000:.0f} ms, wharf jq {wharf*1000:.0f} ms: wharf is {jq/wharf:.2f}x jq")
for name in ("jq", "wharf"):
    print(f"  {name} runs (ms): " + ", ".join(f"{t*1000:.0f}" for t in r[name]["times"]))
PY
