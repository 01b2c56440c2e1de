// Microsoft Graph application permissions (app roles) for the Function App's managed identity,
// through the Microsoft Graph Bicep extension (GA July 2025, Bicep >= 0.36.1; the extension is
// declared in bicepconfig.json). Microsoft.Graph/appRoleAssignedTo@v1.0 is an app role assignment:
// principalId = the managed identity's service principal, resourceId = the Microsoft Graph service
// principal, appRoleId = the role's id, looked up by its value so no GUID is hard-coded.
//
// Who can deploy this: granting application permissions of Microsoft Graph is admin consent. The
// identity running the deployment needs AppRoleAssignment.ReadWrite.All + Application.Read.All,
// i.e. in practice the Privileged Role Administrator or Global Administrator directory role.
// Without it, leave grantGraphPermissions false and have an admin run grant-graph-permissions.sh.
// A freshly created identity may not have replicated yet when this runs (Request_ResourceNotFound
// for principalId): run `azd provision` again a minute later.
//
// Note: checkov's Bicep parser does not understand `extension`, so scripts/check-infra.sh leaves
// this file out of the scan; it declares no Azure resources.

extension microsoftGraphV1

@description('Object id of the Function App system-assigned identity (its service principal).')
param principalId string

@description('Add AuditLog.Read.All (inactivity-based cleanup; needs Entra ID P1).')
param enableInactivityCleanup bool = false

@description('Add AppRoleAssignment.ReadWrite.All and Application.Read.All (policies that assign app roles). AppRoleAssignment.ReadWrite.All lets the identity grant itself any permission.')
param enableAppRoleGrants bool = false

var baseRoles = [
  'User.Invite.All' // POST /invitations
  'User.ReadWrite.All' // disable and delete guests
  'GroupMember.ReadWrite.All' // add guests to groups
]
var inactivityRoles = enableInactivityCleanup ? ['AuditLog.Read.All'] : []
var appRoleGrantRoles = enableAppRoleGrants ? ['AppRoleAssignment.ReadWrite.All', 'Application.Read.All'] : []
var graphRoles = concat(baseRoles, inactivityRoles, appRoleGrantRoles)

// Microsoft Graph's service principal; its appId is the same in every tenant.
resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '00000003-0000-0000-c000-000000000000'
}

resource grants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [for role in graphRoles: {
  principalId: principalId
  resourceId: microsoftGraph.id
  appRoleId: filter(microsoftGraph.appRoles, r => r.value == role && contains(r.allowedMemberTypes, 'Application'))[0].id
}]

output grantedRoles array = graphRoles
