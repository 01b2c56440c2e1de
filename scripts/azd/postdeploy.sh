#!/bin/sh
# azd postdeploy hook (azure.yaml): after `azd up` / `azd deploy`, run `handler doctor` against the
# deployed app and print its checklist: what the portal still lacks in the tenant (Graph
# permissions, guest invite settings, groups, approvers, mail) and how to fix each.
#
# The doctor runs here, on the admin's machine, with the Function App's own app settings (read
# with the Azure CLI) and the admin's `az login` (GRAPH_CREDENTIAL=azure_cli). The app's Key Vault
# references cannot be resolved here; the secrets come from the azd environment instead, which
# azd hands to hooks as environment variables (PORTAL_SIGNING_KEYS, SMTP_PASSWORD). The Graph
# permissions checked are those of the app's managed identity (--identity), not the admin's.
#
# Run it again any time: azd hooks run postdeploy
# HANDLER_BINARY runs another build of the handler than dist/app/handler.
set -u

say() { echo "postdeploy: $*"; }
root="$(cd "$(dirname "$0")/../.." && pwd)"
handler="${HANDLER_BINARY:-$root/dist/app/handler}"

app="${FUNCTION_APP_NAME:-$(azd env get-value FUNCTION_APP_NAME 2>/dev/null || true)}"
group="${AZURE_RESOURCE_GROUP:-$(azd env get-value AZURE_RESOURCE_GROUP 2>/dev/null || true)}"
principal="${FUNCTION_APP_PRINCIPAL_ID:-$(azd env get-value FUNCTION_APP_PRINCIPAL_ID 2>/dev/null || true)}"

[ -x "$handler" ] || { say "no $handler (scripts/package.sh builds it)"; exit 1; }
[ -n "$app" ] && [ -n "$group" ] || { say "FUNCTION_APP_NAME or AZURE_RESOURCE_GROUP is not in the azd environment (azd provision first)"; exit 1; }
command -v az >/dev/null 2>&1 || { say "the doctor needs the Azure CLI (az) and az login"; exit 1; }

settings="$(mktemp)"
trap 'rm -f "$settings"' EXIT
if ! az functionapp config appsettings list -g "$group" -n "$app" -o json >"$settings"; then
  say "could not read the app settings of $app (az login as someone who may read them)"
  exit 1
fi

echo
say "handler doctor: what the portal $app needs, checked"
GRAPH_CREDENTIAL=azure_cli PORTAL_LOG_FORMAT=text "$handler" doctor \
  --app-settings "$settings" ${principal:+--identity "$principal"}
status=$?
if [ "$status" -ne 0 ]; then
  say "the deployment is done, but the portal cannot work until the 'fail' lines are fixed."
  say "fix them, then check again: azd hooks run postdeploy"
fi
exit "$status"
