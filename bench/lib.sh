# Shared by the bench scripts: start a release Wharf on a fresh data directory (SQLite) or
# the given PostgreSQL URL, wait until it answers, and get a token. Sets PID, DATA, TOKEN.
# Needs BIN, PORT and BASE; WHARF_ARGS adds options.
wharf_start() { # $1: database URL, or empty for SQLite
  DATA=$(mktemp -d)
  WHARF_BOOTSTRAP_CLIENT_ID=bench WHARF_BOOTSTRAP_CLIENT_SECRET=bench-secret-0123456789 WHARF_LOG=error \
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" ${1:+--database-url "$1"} ${WHARF_ARGS:-} 2>/dev/null &
  PID=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  TOKEN=$(curl -sf "$BASE/v1/auth/access_token" -H 'content-type: application/json' \
    -d '{"clientId":"bench","clientSecret":"bench-secret-0123456789"}' | sed 's/.*"accessToken":"\([^"]*\)".*/\1/')
}

wharf_stop() {
  kill "$PID" && wait "$PID" || true
  rm -rf "$DATA"
}

# An empty database for store $1 named $2: nothing for SQLite (wharf_start makes a new data
# directory), a new PostgreSQL database otherwise. Sets URL (empty for SQLite).
fresh_database() {
  URL=""
  if [ "$1" = postgres ]; then
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $2 WITH (FORCE)" && psql "$PG_ADMIN" -qc "CREATE DATABASE $2"
    URL="${PG_ADMIN%/*}/$2"
  fi
}
