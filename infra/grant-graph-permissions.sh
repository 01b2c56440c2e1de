#!/usr/bin/env bash
# Grants the portal's managed identity the Microsoft Graph application permissions it needs.
# For tenants where the deployment itself cannot (grantGraphPermissions=false, the default).
#
#   infra/grant-graph-permissions.sh PRINCIPAL_ID [--inactivity-cleanup] [--app-role-grants]
#                                    [--guest-inviter] [--dry-run]
#
# PRINCIPAL_ID   object id of the Function App's system-assigned identity: the deployment output
#                FUNCTION_APP_PRINCIPAL_ID (`azd env get-value FUNCTION_APP_PRINCIPAL_ID`), or
#                `az functionapp identity show -g RG -n APP --query principalId -o tsv`.
# --inactivity-cleanup   also AuditLog.Read.All (sign-in activity; needs Entra ID P1). Set
#                        GRAPH_SIGN_IN_ACTIVITY=true (enableInactivityCleanup) to use it.
# --app-role-grants      also AppRoleAssignment.ReadWrite.All and Application.Read.All (policies
#                        that assign app roles to guests). WARNING: AppRoleAssignment.ReadWrite.All
#                        lets the identity grant itself any permission of any API, Microsoft
#                        Graph's included. Grant it only while policies assign app roles; giving
#                        guests app access through groups avoids it (docs/deploy.md).
# --guest-inviter        also assign the Guest Inviter directory role, for tenants whose guest
#                        invite settings refuse the app's invitations (see docs/deploy.md).
# --dry-run              show what would be granted, change nothing.
#
# Always granted: User.Invite.All, User.ReadWrite.All, GroupMember.ReadWrite.All.
#
# Who can run it: granting Microsoft Graph application permissions is admin consent. Sign in with
# `az login` as a Privileged Role Administrator or Global Administrator of the tenant.
# Idempotent: existing assignments are left alone; run it again after changing the flags. It
# never removes a permission (do that in Entra admin center > Enterprise applications > the
# identity > Permissions, or with az rest DELETE on the assignment).
set -euo pipefail

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"
GUEST_INVITER_ROLE_TEMPLATE="95e79109-95c0-4d8e-aee3-d01accf2d47b"
GRAPH="https://graph.microsoft.com/v1.0"

die() { echo "grant-graph-permissions: $*" >&2; exit 1; }

principal=""
roles=("User.Invite.All" "User.ReadWrite.All" "GroupMember.ReadWrite.All")
guest_inviter=0
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --inactivity-cleanup) roles+=("AuditLog.Read.All"); shift ;;
    --app-role-grants) roles+=("AppRoleAssignment.ReadWrite.All" "Application.Read.All"); shift ;;
    --guest-inviter) guest_inviter=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$principal" ] || die "one principal id only"; principal="$1"; shift ;;
  esac
done

[ -n "$principal" ] || die "usage: $0 PRINCIPAL_ID [--inactivity-cleanup] [--app-role-grants] [--guest-inviter] [--dry-run]"
[[ "$principal" =~ ^[0-9a-fA-F-]{36}$ ]] || die "PRINCIPAL_ID must be an object id (GUID), got '$principal'"
command -v az >/dev/null || die "the Azure CLI (az) is not installed"
az account show >/dev/null 2>&1 || die "not signed in: run az login (as Privileged Role Administrator or Global Administrator)"

sp_name="$(az rest --method GET --url "$GRAPH/servicePrincipals/$principal?\$select=displayName" --query displayName -o tsv 2>/dev/null)" \
  || die "no service principal with object id $principal in this tenant (is it the right tenant? az account show)"
graph_sp="$(az rest --method GET --url "$GRAPH/servicePrincipals(appId='$GRAPH_APP_ID')?\$select=id" --query id -o tsv)"
[ -n "$graph_sp" ] || die "cannot read the Microsoft Graph service principal"

echo "Identity: $sp_name ($principal)"
existing="$(az rest --method GET --url "$GRAPH/servicePrincipals/$principal/appRoleAssignments?\$top=999" \
  --query "value[?resourceId=='$graph_sp'].appRoleId" -o tsv)"

for role in "${roles[@]}"; do
  role_id="$(az rest --method GET --url "$GRAPH/servicePrincipals/$graph_sp?\$select=appRoles" \
    --query "appRoles[?value=='$role' && contains(allowedMemberTypes, 'Application')].id | [0]" -o tsv)"
  [ -n "$role_id" ] || die "Microsoft Graph has no application permission named $role"
  if grep -qx "$role_id" <<<"$existing"; then
    echo "  $role: already granted"
    continue
  fi
  if [ "$dry_run" -eq 1 ]; then
    echo "  $role: would grant (appRoleId $role_id)"
    continue
  fi
  az rest --method POST --url "$GRAPH/servicePrincipals/$principal/appRoleAssignments" \
    --headers "Content-Type=application/json" \
    --body "{\"principalId\":\"$principal\",\"resourceId\":\"$graph_sp\",\"appRoleId\":\"$role_id\"}" \
    --output none
  echo "  $role: granted"
done

if [ "$guest_inviter" -eq 1 ]; then
  assigned="$(az rest --method GET \
    --url "$GRAPH/roleManagement/directory/roleAssignments?\$filter=principalId eq '$principal' and roleDefinitionId eq '$GUEST_INVITER_ROLE_TEMPLATE'" \
    --query "length(value)" -o tsv)"
  if [ "$assigned" != "0" ]; then
    echo "  Guest Inviter directory role: already assigned"
  elif [ "$dry_run" -eq 1 ]; then
    echo "  Guest Inviter directory role: would assign"
  else
    az rest --method POST --url "$GRAPH/roleManagement/directory/roleAssignments" \
      --headers "Content-Type=application/json" \
      --body "{\"principalId\":\"$principal\",\"roleDefinitionId\":\"$GUEST_INVITER_ROLE_TEMPLATE\",\"directoryScopeId\":\"/\"}" \
      --output none
    echo "  Guest Inviter directory role: assigned"
  fi
fi

echo "Done. A managed identity's access token is cached for up to 24 hours, so a new permission can take that long to reach the running app."
