// App Service Authentication for the portal, when approvers must sign in: Entra ID, the
// company's tenant, and anonymous access left open (partners use the form without an account;
// only the approval page asks for a signed-in approver, and the handler checks that the
// principal is the approver the link names). With this on, the platform sets
// WEBSITE_AUTH_ENABLED=True and strips X-MS-CLIENT-PRINCIPAL* headers sent by clients, which is
// what makes those headers trustworthy; the handler refuses PORTAL_APPROVERS_MUST_SIGN_IN
// without it.

@description('The Function App.')
param functionAppName string

@description('Application (client) id of the approver sign-in registration.')
param clientId string

resource functionApp 'Microsoft.Web/sites@2024-11-01' existing = {
  name: functionAppName
}

resource auth 'Microsoft.Web/sites/config@2024-11-01' = {
  // checkov treats every Microsoft.Web/sites/config as the site's web configuration; this one is
  // authsettingsV2, which *is* App Service Authentication (CKV_AZURE_13 is what it turns on).
  //checkov:skip=CKV_AZURE_13:This resource is the Authentication setting itself, with anonymous access allowed for the public form on purpose.
  //checkov:skip=CKV_AZURE_63:Not the web configuration; HTTP logs of Flex Consumption go to Application Insights.
  //checkov:skip=CKV_AZURE_65:Not the web configuration; detailed error pages are not shown to the public.
  //checkov:skip=CKV_AZURE_66:Not the web configuration; failed request tracing is an IIS feature (Windows).
  //checkov:skip=CKV_AZURE_80:Not the web configuration; no .NET Framework is used (custom handler).
  //checkov:skip=CKV_AZURE_88:Not the web configuration; Flex Consumption runs the package from a blob container, not Azure Files.
  //checkov:skip=CKV_AZURE_222:Not the web configuration; the site itself is public by design.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            clientId
            'api://${clientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}
