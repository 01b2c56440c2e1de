#!/usr/bin/env bash
# Static checks of infra/ (Bicep), offline. Called from CI.
#
#   scripts/check-infra.sh
#
# 1. checkov (pinned, in .local/venv-checkov) scans infra/ for misconfigurations. Findings are
#    fixed or skipped in place with `//checkov:skip=CKV_...:reason` next to the resource.
#    --skip-download keeps checkov offline (without it, it calls its vendor's API).
# 2. checkov exits 0 when it cannot parse a file, so this script reads the JSON report and fails
#    on any parsing error: a file checkov cannot read is a file nobody checked.
# 3. graph-permissions.bicep starts with `extension microsoftGraphV1`, which checkov's Bicep
#    parser does not know. It declares no Azure resources, so it is left out of the scan, but it is
#    still parsed (with that one line commented out) so a syntax error there fails too.
# 4. When the real Bicep compiler is installed (`bicep` or `az bicep`), main.bicep is compiled as
#    well; it is not installable on the CI machines (it ships as a .NET binary from GitHub).
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.local/venv-checkov"
REPORT="$ROOT/.local/checkov-report"

if ! "$VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "check-infra: installing checkov $CHECKOV_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

count_parse_errors() {
  "$VENV/bin/python" - "$1" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
print(sum(r.get("summary", {}).get("parsing_errors", 0) for r in reports))
PY
}

rm -rf "$REPORT"
mkdir -p "$REPORT"

status=0
"$VENV/bin/checkov" -d "$ROOT/infra" --framework bicep --compact --skip-download --quiet \
  --skip-path 'graph-permissions\.bicep$' --skip-path 'approver-sign-in\.bicep$' --skip-path 'partner-sign-in\.bicep$' \
  -o cli -o json --output-file-path "$REPORT" >/dev/null || status=$?
cat "$REPORT/results_cli.txt" 2>/dev/null || true

[ -f "$REPORT/results_json.json" ] || { echo "check-infra: checkov wrote no report" >&2; exit 1; }
errors="$(count_parse_errors "$REPORT/results_json.json")"
if [ "$errors" != "0" ]; then
  echo "check-infra: checkov could not parse $errors file(s) in infra/ (see above)" >&2
  status=1
fi

# The files with the Microsoft Graph extension: syntax only.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for f in graph-permissions.bicep approver-sign-in.bicep partner-sign-in.bicep; do
  rm -rf "$tmp/src" "$tmp/report"; mkdir -p "$tmp/src"
  sed 's/^extension /\/\/ extension /' "$ROOT/infra/$f" > "$tmp/src/$f"
  "$VENV/bin/checkov" -d "$tmp/src" --framework bicep --compact --skip-download --quiet \
    -o json --output-file-path "$tmp/report" >/dev/null 2>&1 || true
  if [ ! -f "$tmp/report/results_json.json" ] || [ "$(count_parse_errors "$tmp/report/results_json.json")" != "0" ]; then
    echo "check-infra: infra/$f does not parse" >&2
    status=1
  fi
done

if command -v bicep >/dev/null; then
  bicep build "$ROOT/infra/main.bicep" --stdout >/dev/null || status=1
elif command -v az >/dev/null && az bicep version >/dev/null 2>&1; then
  az bicep build --file "$ROOT/infra/main.bicep" --stdout >/dev/null || status=1
else
  echo "check-infra: no Bicep compiler here; checkov's parser is the syntax check" >&2
fi

if [ "$status" -eq 0 ]; then
  echo "check-infra: ok" >&2
else
  echo "check-infra: FAILED" >&2
fi
exit "$status"
