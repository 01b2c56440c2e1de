// The app registration App Service Authentication signs approvers in with, when the portal is
// deployed with approversMustSignIn: single-tenant (the company's own directory), ID tokens
// only, redirected to the platform's own callback. No secret is created: Authentication then
// uses the OpenID Connect flow that needs none (ID token by form post), which is all the
// portal needs, since it only asks who the approver is.
//
// Like graph-permissions.bicep this uses the Microsoft Graph Bicep extension, so the identity
// deploying it needs to be allowed to create applications (Application Developer or more).

extension microsoftGraphV1

@description('Host names the approvers reach the portal on (its default host, and a custom one if set).')
param hostNames array

@description('A unique name for the registration, stable across deployments of one environment.')
param uniqueName string

@description('Display name shown on the sign-in page.')
param displayName string

resource approverApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  web: {
    redirectUris: [for h in hostNames: 'https://${h}/.auth/login/aad/callback']
    implicitGrantSettings: {
      enableIdTokenIssuance: true
      enableAccessTokenIssuance: false
    }
  }
}

resource approverSp 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: approverApp.appId
}

output clientId string = approverApp.appId
