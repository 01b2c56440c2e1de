// The app registration partners sign in to when a policy's proof is sign_in or either: multi-
// tenant (AzureADMultipleOrgs: any organisation's work accounts, never personal accounts),
// authorization code flow to the portal's own callback, and the optional ID token claims the
// portal needs to know which address a tenant vouches for (email, and xms_edov: whether the
// tenant verified that email's domain).
//
// No secret anywhere: the app trusts the Function App's managed identity through a federated
// identity credential, so the portal asks its identity for a token for api://AzureADTokenExchange
// and presents it as the client assertion when it redeems a partner's code. Nothing to rotate,
// nothing to leak from the settings.
//
// Like graph-permissions.bicep this uses the Microsoft Graph Bicep extension, so the identity
// deploying it needs to be allowed to create applications (Application Developer or more).
// Partners' tenants consent to the app (openid, profile, email) the first time one of their
// people signs in, unless their admins allow user consent only for verified publishers: then
// an admin of the partner tenant consents once (see docs/deploy.md).

extension microsoftGraphV1

@description('Host names partners reach the portal on (its default host, and a custom one if set).')
param hostNames array

@description('A unique name for the registration, stable across deployments of one environment.')
param uniqueName string

@description('Display name partners see on the sign-in and consent pages.')
param displayName string

@description('Object id of the Function App\'s system-assigned identity (the federated credential\'s subject).')
param principalId string

// Microsoft Graph's delegated permissions for sign-in only, by their well-known ids.
var graphAppId = '00000003-0000-0000-c000-000000000000'
var openidScope = '37f7f235-527c-4136-accd-4a02d197296e'
var profileScope = '14dad69e-099b-42c9-810b-d002981feec1'
var emailScope = '64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0'

resource partnerApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMultipleOrgs'
  web: {
    redirectUris: [for h in hostNames: 'https://${h}/api/signup/signed-in']
    implicitGrantSettings: {
      enableIdTokenIssuance: false
      enableAccessTokenIssuance: false
    }
  }
  optionalClaims: {
    idToken: [
      {
        name: 'email'
        essential: false
      }
      {
        name: 'xms_edov'
        essential: false
      }
    ]
  }
  requiredResourceAccess: [
    {
      resourceAppId: graphAppId
      resourceAccess: [
        {
          id: openidScope
          type: 'Scope'
        }
        {
          id: profileScope
          type: 'Scope'
        }
        {
          id: emailScope
          type: 'Scope'
        }
      ]
    }
  ]

  // The managed identity is the app's only credential.
  resource managedIdentityCredential 'federatedIdentityCredentials@v1.0' = {
    name: '${partnerApp.uniqueName}/portal-managed-identity'
    description: 'The portal Function App\'s managed identity'
    issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    subject: principalId
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource partnerSp 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: partnerApp.appId
}

output clientId string = partnerApp.appId
