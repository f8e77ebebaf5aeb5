#!/usr/bin/env bash
# Several nodes on one PostgreSQL database (BENCHMARKS.md "Several nodes"), one node and two
# side by side, median of RUNS runs, each on a fresh database:
#  (a) mapped events/s end to end: EVENTS signed ~2 KiB pull_request events (bench/ingest.sh's
#      event and mapping) sent at concurrency 64, round-robin over the nodes, until every one
#      is mapped (ingest_load --mode drain);
#  (b) deliveries/s from `POST …/events` to arrival: EVENTS events published at concurrency
#      64, round-robin over the nodes, to a project with one webhook whose receiver answers at
#      once (delivery_load --mode drain).
# Every node is a `wharf serve` of its own on its own port, with one master key.
# Usage: bench/nodes.sh   (RUNS=3 EVENTS=20000 NODES="1 2" by default; MODES="ingest deliver"
#        choose what runs; PROFILE=debug uses the debug build, for a quick check of the script:
#        PROFILE=debug RUNS=1 EVENTS=300 bench/nodes.sh). Sends traffic to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
EVENTS=${EVENTS:-20000}
NODES=${NODES:-1 2}
MODES=${MODES:-ingest deliver}
PROFILE=${PROFILE:-release}
PG_ADMIN=${WHARF_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
FIRST_PORT=${PORT:-18181}
SECRET=bench-webhook-secret
OUT=${OUT:-$(mktemp)}

if [ "$PROFILE" = release ]; then
  cargo build --release --quiet -p wharf --bin wharf --example ingest_load --example delivery_load
else
  cargo build --quiet -p wharf --bin wharf --example ingest_load --example delivery_load
fi
BIN=${BIN:-target/$PROFILE/wharf}
INGEST_LOAD=target/$PROFILE/examples/ingest_load
DELIVERY_LOAD=target/$PROFILE/examples/delivery_load

source bench/lib.sh
# Nodes share the work only with one master key (each seals and opens the others' secrets).
export WHARF_MASTER_KEY=${WHARF_MASTER_KEY:-$(printf '22%.0s' $(seq 1 32))}
# The receiver listens on 127.0.0.1, which Wharf blocks unless allowed.
WHARF_ARGS="--allow-network 127.0.0.1/32"
PIDS=()
DATAS=()
BASES=()
URL=""
stop_nodes() {
  for i in "${!PIDS[@]}"; do
    kill "${PIDS[$i]}" 2>/dev/null && wait "${PIDS[$i]}" 2>/dev/null || true
    rm -rf "${DATAS[$i]}"
  done
  PIDS=(); DATAS=(); BASES=()
}
trap stop_nodes EXIT

# $1 nodes on a fresh database; sets BASES (the first node's first) and TOKEN.
start_nodes() {
  fresh_database postgres wharf_bench_nodes
  for i in $(seq 0 $(($1 - 1))); do
    PORT=$((FIRST_PORT + i)); BASE=http://127.0.0.1:$PORT
    wharf_start "$URL"
    PIDS+=("$PID"); DATAS+=("$DATA"); BASES+=("$BASE")
  done
  BASE=${BASES[0]}
}

# The other nodes, as the load tools' --spread arguments.
spread() {
  local args=() base
  for base in "${BASES[@]:1}"; do args+=(--spread "$base"); done
  echo "${args[@]:-}"
}


# The database's work so far, for the per-event figures the estimates for more nodes are
# made from: "cpu_s commits rows" — the CPU seconds of the PostgreSQL server's processes (the
# postmaster and its children, live or ended: an ended child's time is in the postmaster's
# cutime/cstime; 0 when the server is not on this machine), then the transactions committed
# and rows written in the bench database (pg_stat_database).
db_work() {
  local postmaster
  postmaster=$(psql "$URL" -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" 2>/dev/null || echo "")
  postmaster=$(awk '{print $4}' "/proc/$postmaster/stat" 2>/dev/null || echo "")
  python3 -c '
import os, sys
pm, ticks = sys.argv[1], 0
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    f = stat[stat.rindex(")") + 2:].split()
    if pid == pm:
        ticks += sum(int(x) for x in f[11:15])  # its time and its ended childrens
    elif f[1] == pm:
        ticks += int(f[11]) + int(f[12])
print(ticks / os.sysconf("SC_CLK_TCK") if pm else 0)' "$postmaster"
  psql "$URL" -Atc "SELECT pg_stat_clear_snapshot()" -c "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted
    FROM pg_stat_database WHERE datname = current_database()" | tail -1 | tr '|' ' '
}

# Runs a load command ($3…) for run $1 with $2 nodes, then stops the nodes (their backends
# end, which flushes their statistics) and writes its JSON line, tagged, with the database's
# work per event.
measure() {
  local run=$1 nodes=$2 before after line; shift 2
  before=$(db_work | tr '\n' ' ')
  line=$("$@")
  stop_nodes
  after=$(db_work | tr '\n' ' ')
  python3 -c '
import json, sys
row = json.loads(sys.argv[1])
(cpu0, commits0, rows0), (cpu1, commits1, rows1) = ([float(x) for x in a.split()] for a in sys.argv[2:4])
events = row["events"]
row.update(run=int(sys.argv[4]), nodes=int(sys.argv[5]), db_commits_per_event=(commits1 - commits0) / events,
           db_rows_per_event=(rows1 - rows0) / events, db_cpu_ms_per_event=(cpu1 - cpu0) * 1000 / events)
print(json.dumps(row))' "$line" "$before" "$after" "$run" "$nodes" | tee -a "$OUT"
}

has() { [[ " $MODES " == *" $1 "* ]]; }
for run in $(seq 1 "$RUNS"); do
  for nodes in $NODES; do
    if has ingest; then
      start_nodes "$nodes"; github_webhook
      # shellcheck disable=SC2046 # one word per argument
      measure "$run" "$nodes" "$INGEST_LOAD" --url "$BASE" $(spread) --token "$TOKEN" --webhook github --key "$KEY" \
        --secret "$SECRET" --mode drain --events "$EVENTS" --concurrency 64
    fi
    if has deliver; then
      start_nodes "$nodes"
      # shellcheck disable=SC2046
      measure "$run" "$nodes" "$DELIVERY_LOAD" --url "$BASE" $(spread) --token "$TOKEN" --mode drain \
        --events "$EVENTS" --concurrency 64
    fi
  done
done
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS wharf_bench_nodes WITH (FORCE)"

python3 - "$OUT" <<'PY'
import json, math, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(nodes, key):
    vals = [r[key] for r in rows if r["nodes"] == nodes and key in r]
    return statistics.median(vals) if vals else float("nan")
print(f"median of {len({r['run'] for r in rows})} runs, PostgreSQL, {rows[0].get('events', '?')} events each")
base = {}
for nodes in sorted({r["nodes"] for r in rows}):
    mapped, delivered = med(nodes, "entities_per_s"), med(nodes, "deliveries_per_s")
    base.setdefault("mapped", mapped); base.setdefault("delivered", delivered)
    parts = []
    def work(key):
        sel = [r for r in rows if r["nodes"] == nodes and key in r]
        m = lambda k: statistics.median([r[k] for r in sel])
        return (f"database per event: {m('db_commits_per_event'):.2f} commits, {m('db_rows_per_event'):.1f} rows "
                f"written, {m('db_cpu_ms_per_event'):.3f} ms of its CPU")
    if not math.isnan(mapped):
        parts.append(f"(a) {mapped:.0f} mapped events/s end to end ({mapped / base['mapped']:.2f}x one node; "
                     f"accepting at {med(nodes, 'accepted_per_s'):.0f}/s; {work('entities_per_s')})")
    if not math.isnan(delivered):
        parts.append(f"(b) {delivered:.0f} deliveries/s publish→arrival ({delivered / base['delivered']:.2f}x one node; "
                     f"publishing at {med(nodes, 'published_per_s'):.0f}/s, {med(nodes, 'duplicates'):.0f} duplicates; "
                     f"{work('deliveries_per_s')})")
    print(f"  {nodes} node{'s' if nodes > 1 else ''}:\n    " + "\n    ".join(parts))
PY
