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

# The blueprints and the signed GitHub webhook of bench/ingest.sh (the mapping of
# bench/mapping.jq, one expression per field), made through BASE with TOKEN; needs SECRET;
# sets KEY.
github_webhook() {
  local auth="Authorization: Bearer $TOKEN"
  for bp in repository githubUser; do
    curl -sf "$BASE/v1/blueprints" -H "$auth" -d "{\"identifier\":\"$bp\",\"title\":\"$bp\",\"schema\":{\"properties\":{}}}" >/dev/null
  done
  curl -sf "$BASE/v1/blueprints" -H "$auth" -d '{"identifier":"pullRequest","title":"Pull request","schema":{"properties":{
    "author":{"type":"string"},"url":{"type":"string","format":"url"},"status":{"type":"string"},"branch":{"type":"string"},
    "createdAt":{"type":"string","format":"date-time"},"labels":{"type":"array"}}},
    "relations":{"repository":{"target":"repository","required":false},"sender":{"target":"githubUser","required":false}}}' >/dev/null
  # The mapping of the jq benchmark (bench/mapping.jq), one expression per field.
  KEY=$(curl -sf "$BASE/v1/webhooks" -H "$auth" -d '{"identifier":"github","title":"GitHub","mappings":[{
    "blueprint":"pullRequest",
    "entity":{
      "identifier":"(.body.pull_request.id // .body.head_commit.id) | tostring",
      "title":".body.pull_request.title // .body.head_commit.message",
      "properties":{
        "author":".body.pull_request.user.login // .body.pusher.name",
        "url":".body.pull_request.html_url // .body.compare",
        "status":"if .headers[\"x-github-event\"] == \"push\" then \"pushed\" else .body.pull_request.state end",
        "branch":".body.pull_request.head.ref // (.body.ref | ltrimstr(\"refs/heads/\"))",
        "createdAt":".body.pull_request.created_at // .body.head_commit.timestamp",
        "labels":"[.body.pull_request.labels[]?.name]"},
      "relations":{"repository":".body.repository.full_name","sender":".body.sender.login"}}}],
    "security":{"secret":"'"$SECRET"'","signatureHeaderName":"X-Hub-Signature-256","signatureAlgorithm":"sha256","signaturePrefix":"sha256="}}' \
    | sed 's/.*"webhookKey":"\([^"]*\)".*/\1/')
}
