#!/usr/bin/env bash
# API conformance: runs Schemathesis over a fresh Wharf's /openapi.json with every check.
#
#   cargo build -p wharf
#   python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis==4.32.5
#   crates/api/schemathesis/run.sh [extra schemathesis arguments, e.g. -n 20 --workers 2]
#
# Env: SCHEMATHESIS (default /tmp/st/bin/schemathesis), WHARF (default target/debug/wharf),
# PORT (default 18080). Exits with Schemathesis's status.
set -u
cd "$(dirname "$0")/../../.."
SCHEMATHESIS=${SCHEMATHESIS:-/tmp/st/bin/schemathesis}
WHARF=${WHARF:-target/debug/wharf}
PORT=${PORT:-18080}
DATA=$(mktemp -d)
SECRET=conformance-secret-0123456789abcdef
WHARF_BOOTSTRAP_CLIENT_ID=conformance WHARF_BOOTSTRAP_CLIENT_SECRET=$SECRET WHARF_LOG=warn \
  "$WHARF" serve --data-dir "$DATA/data" --listen "127.0.0.1:$PORT" >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; echo "server log: $DATA/server.log"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/auth/access_token" -H 'content-type: application/json' \
  -d "{\"clientId\":\"conformance\",\"clientSecret\":\"$SECRET\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["accessToken"])')
WHARF_ORG_ID=$(curl -sf "http://127.0.0.1:$PORT/v1/organization" -H "Authorization: Bearer $TOKEN" \
  | python3 -c 'import sys,json;print(json.load(sys.stdin)["organization"]["id"])')
export WHARF_ORG_ID
# Resources for the routes that name one, so they answer more than 404 (schemathesis.toml).
api() { curl -sf -X "$1" "http://127.0.0.1:$PORT$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }
field() { python3 -c "import sys,json;d=json.load(sys.stdin);print(eval(sys.argv[1]))" "$1"; }
api POST /v1/blueprints '{"identifier":"service","title":"Service","schema":{"properties":{"url":{"type":"string"}}}}' >/dev/null
api POST /v1/blueprints/service/entities '{"identifier":"svc-1","title":"Service 1","properties":{"url":"https://a.example"}}' >/dev/null
KEY=$(api POST /v1/webhooks '{"identifier":"github","title":"GitHub","mappings":[{"blueprint":"service","entity":{"identifier":".body.id","title":".body.name"}}]}' | field 'd["integration"]["webhookKey"]')
export WHARF_EVENT_ID=$(curl -sf -X POST "http://127.0.0.1:$PORT/ingest/$KEY" -H 'content-type: application/json' -d '{"id":"svc-2","name":"Two"}' | field 'd["eventId"]')
export WHARF_WEBHOOK_KEY=$KEY
export WHARF_PROJECT_ID=$(api POST "/organizations/$WHARF_ORG_ID/projects" '{"name":"Shop","slug":"shop"}' | field 'd["_id"]')
P="/organizations/$WHARF_ORG_ID/projects/$WHARF_PROJECT_ID"
export WHARF_SUBSCRIPTION_ID=$(api POST "$P/settings/webhooks" '{"name":"Receiver","url":"https://receiver.example/hook","events":["*"]}' | field 'd["_id"]')
api POST "$P/events" '{"type":"invoice.paid","data":{"n":1}}' >/dev/null
export WHARF_DELIVERY_ID=$(api GET "$P/settings/webhooks/$WHARF_SUBSCRIPTION_ID/deliveries" | field 'd[0]["id"]')
# From the temporary directory: Schemathesis keeps its cache (failures to replay) where it runs,
# so each run starts fresh and leaves nothing in the repository.
CONFIG=$PWD/crates/api/schemathesis/schemathesis.toml
cd "$DATA" && "$SCHEMATHESIS" --config-file "$CONFIG" run "http://127.0.0.1:$PORT/openapi.json" \
  --checks all -H "Authorization: Bearer $TOKEN" --no-color "$@"
