// Everything the portal runs on, in one resource group. Called by main.bicep.
//
// Hosting plan: Flex Consumption (FC1). The Flex Consumption runtime list includes `custom`
// (functionAppConfig.runtime { name: 'custom', version: '1.0' }; the FunctionsRuntime enum of the
// Microsoft.Web API is dotnet-isolated | node | java | powershell | python | custom), and Microsoft's
// self-hosted MCP servers, which are custom handlers, must run on Flex Consumption. Flex was chosen
// over Linux Consumption (Y1) because:
//   - Linux Consumption is being retired (30 September 2028) and gets no new features;
//   - Y1 keeps the app content on an Azure Files share reached with an account-key connection
//     string (WEBSITE_CONTENTAZUREFILECONNECTIONSTRING), so the storage account could not turn
//     shared-key access off. Flex runs the package from a blob container read with the app's
//     managed identity, so the whole deployment is keyless (allowSharedKeyAccess: false);
//   - per-function scaling keeps the cleanup timer apart from the HTTP functions.
// Flex notes that shape this file: one app per plan; FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_TIME_ZONE must not be set (the
// runtime is declared in functionAppConfig, the timer schedule is UTC); Key Vault references only
// work when the vault is reachable over the public endpoint (no private-only vault).

targetScope = 'resourceGroup'

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Short lower-case prefix of resource names.')
param namePrefix string

@description('Unique suffix of resource names (from main.bicep).')
param resourceToken string

@description('Organisation name shown on pages and in mail (PORTAL_ORG_NAME).')
param orgName string

@description('Public https URL of the portal (PORTAL_PUBLIC_URL). Empty: https://<default host name of the app>.')
param publicUrl string = ''

@description('SMTP server host name.')
param smtpHost string

@description('SMTP port: 587 for STARTTLS, 465 for implicit TLS.')
param smtpPort int = 587

@description('starttls: smtp://host:port?tls=required. implicit: smtps://host:port.')
@allowed([
  'starttls'
  'implicit'
])
param smtpTls string = 'starttls'

@description('SMTP user name (SMTP_USERNAME). Empty when the relay needs no authentication.')
param smtpUsername string = ''

@description('SMTP password; stored in Key Vault, the app reads it through a Key Vault reference.')
@secure()
param smtpPassword string = ''

@description('Sender of all mail (MAIL_FROM), e.g. "Contoso Partner Access <no-reply@contoso.com>".')
param mailFrom string

@description('PORTAL_SIGNING_KEYS value: kid:base64secret[,kid:base64secret...]; stored in Key Vault.')
@secure()
param portalSigningKeys string

@description('NCRONTAB (six fields, UTC) of the cleanup timer (CLEANUP_SCHEDULE).')
param cleanupSchedule string = '0 */5 * * * *'

@description('GRAPH_SIGN_IN_ACTIVITY: true only when the tenant has Entra ID P1 and the identity AuditLog.Read.All.')
param graphSignInActivity bool = false

@description('Partners may prove who they are by signing in with their work account (policies with proof sign_in or either): creates a multi-tenant app registration whose only credential is this app\'s managed identity, and sets SIGN_IN_CLIENT_ID. The deploying identity must be allowed to create applications.')
param enablePartnerSignIn bool = false

@description('Further app settings (name to string value), merged last: optional PORTAL_* and CLEANUP_* settings.')
param additionalAppSettings object = {}

@description('Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of Flex Consumption instances (1 to 1000). Bounds the cost of abuse.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Storage redundancy. The portal tables are the system of record: ZRS where the region offers it.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Key Vault name (3-24 letters, digits, hyphens; globally unique). Empty: kv-<prefix>-<token>. After `azd down` the deleted vault keeps its name for 90 days (purge protection): azd\'s preprovision hook then picks a new name here.')
@maxLength(24)
param keyVaultNameOverride string = ''

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

var cleanPrefix = toLower(replace(namePrefix, '-', ''))
var functionAppName = '${namePrefix}-func-${resourceToken}'
var planName = '${namePrefix}-plan-${resourceToken}'
var storageAccountName = take('${cleanPrefix}st${resourceToken}', 24)
var keyVaultName = empty(keyVaultNameOverride) ? 'kv-${take(cleanPrefix, 7)}-${take(resourceToken, 13)}' : keyVaultNameOverride
var logAnalyticsName = '${namePrefix}-log-${resourceToken}'
var appInsightsName = '${namePrefix}-appi-${resourceToken}'
var deploymentContainerName = 'app-package'
var signingKeysSecretName = 'portal-signing-keys'
var smtpPasswordSecretName = 'smtp-password'

// ---------------------------------------------------------------------------------------------
// Monitoring

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // Only Entra-authenticated ingestion: the app sends with its managed identity
    // (APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD, Monitoring Metrics Publisher).
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------------------
// Storage: host storage (leases, keys), the deployment package container and the portal's tables.

// Shared-key access is off: the Functions host (AzureWebJobsStorage__accountName), the Flex
// deployment container and the portal (PORTAL_TABLE_ENDPOINT) all use the managed identity.
// The network stays open because Flex Consumption without virtual network integration has no
// fixed outbound addresses; access is by Entra ID role only.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_43:The name is computed (take(lower-case prefix without hyphens + 'st' + uniqueString, 24)), which checkov cannot evaluate; it is 3-24 lower-case letters and digits.
  //checkov:skip=CKV_AZURE_35:Default network action Allow: Flex Consumption without VNet integration has no fixed outbound IPs; shared keys are disabled and every access needs an Entra ID role.
  //checkov:skip=CKV_AZURE_59:Public network access: required for the same reason as CKV_AZURE_35 (no VNet or private endpoints in this template).
  //checkov:skip=CKV_AZURE_206:Replication is a parameter (storageSku); LRS is the cheap default, ZRS/GZRS can be chosen per region.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// ---------------------------------------------------------------------------------------------
// Key Vault: the SMTP password and the token-signing keys. RBAC mode, soft delete, purge protection.

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Firewall default Allow: Flex Consumption resolves Key Vault references only through the public endpoint (a network-restricted vault is not supported); access is by RBAC role only.
  //checkov:skip=CKV_AZURE_189:Public network access: Flex Consumption resolves Key Vault references only through the public endpoint; access is by RBAC role only.
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource signingKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41:No expiry: signing keys are rotated by prepending a new kid (see docs/deploy.md); an expired secret would stop every link in flight.
  parent: keyVault
  name: signingKeysSecretName
  properties: {
    value: portalSigningKeys
    contentType: 'text/plain; format=kid:base64[,kid:base64...]'
  }
}

resource smtpPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(smtpPassword)) {
  //checkov:skip=CKV_AZURE_114:contentType is set below; checkov does not read the properties of a conditional (if) resource.
  //checkov:skip=CKV_AZURE_41:No expiry: the SMTP relay's password policy governs it; an expired secret would silently stop all mail.
  parent: keyVault
  name: smtpPasswordSecretName
  properties: {
    value: smtpPassword
    contentType: 'text/plain'
  }
}

// ---------------------------------------------------------------------------------------------
// The Function App on Flex Consumption.

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  //checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption exists only in some regions and needs always-ready instances (a fixed cost); a sign-up portal can tolerate a zonal outage.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-11-01' = {
  //checkov:skip=CKV_AZURE_17:Client certificates: the portal serves anonymous browsers and mail links.
  //checkov:skip=CKV_AZURE_222:Public network access: the sign-up form is public by design.
  //checkov:skip=CKV_AZURE_212:Minimum instances: Flex Consumption scales to zero by design; always-ready instances would be a fixed cost for a low-traffic portal.
  //checkov:skip=CKV_AZURE_78:FTP is off through basicPublishingCredentialsPolicies (ftp, scm: allow false) below; siteConfig.ftpsState, what this check reads, is not supported on Flex Consumption.
  //checkov:skip=CKV_AZURE_213:Health check pings a path on every instance of an instance-based plan; this scale-to-zero app has no health route and is watched through Application Insights.
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': 'portal'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    siteConfig: {
      // No ftpsState: Flex Consumption does not support it (FTP publishing is off through
      // basicPublishingCredentialsPolicies below instead).
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
    }
  }
  dependsOn: [
    deploymentContainer
  ]
}

// No FTP and no basic-auth deployment: azd and the Azure CLI deploy with Entra ID tokens.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------------
// Least-privilege roles for the app's system-assigned identity (a module: their names derive
// from the principal id, which is known only once the app exists).

module identityRoles 'identity-roles.bicep' = {
  name: 'b2b-signup-identity-roles'
  params: {
    principalId: functionApp.identity.principalId
    storageAccountName: storage.name
    keyVaultName: keyVault.name
    signingKeysSecretName: signingKeysSecret.name
    smtpPasswordSecretName: empty(smtpPassword) ? '' : smtpPasswordSecretName
    appInsightsName: appInsights.name
  }
  dependsOn: [
    smtpPasswordSecret
  ]
}

// ---------------------------------------------------------------------------------------------
// Partner sign-in: a multi-tenant app registration redirecting to the portal's callback, with
// the app's managed identity as its only credential (a federated identity credential).

var publicHost = empty(publicUrl) ? '' : split(replace(publicUrl, 'https://', ''), '/')[0]

module partnerSignIn 'partner-sign-in.bicep' = if (enablePartnerSignIn) {
  name: 'b2b-signup-partner-sign-in'
  params: {
    uniqueName: 'b2b-signup-partners-${resourceToken}'
    displayName: '${orgName} partner access'
    hostNames: empty(publicHost) || publicHost == functionApp.properties.defaultHostName ? [functionApp.properties.defaultHostName] : [functionApp.properties.defaultHostName, publicHost]
    principalId: functionApp.identity.principalId
  }
}

// ---------------------------------------------------------------------------------------------
// App settings. Applied after the role assignments so the Key Vault references and the identity-
// based host storage resolve on the first start.

var smtpScheme = smtpTls == 'implicit' ? 'smtps' : 'smtp'
var smtpQuery = smtpTls == 'implicit' ? '' : '?tls=required'
var smtpUrl = '${smtpScheme}://${smtpHost}:${smtpPort}${smtpQuery}'
var keyVaultSecretBase = '${keyVault.properties.vaultUri}secrets/'

var coreSettings = {
  // Functions host storage through the managed identity (no connection string anywhere).
  AzureWebJobsStorage__accountName: storage.name
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  // The portal's tables, keyless through the same identity.
  PORTAL_TABLE_ENDPOINT: storage.properties.primaryEndpoints.table
  PORTAL_PUBLIC_URL: empty(publicUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicUrl
  PORTAL_ORG_NAME: orgName
  PORTAL_SIGNING_KEYS: '@Microsoft.KeyVault(SecretUri=${keyVaultSecretBase}${signingKeysSecretName})'
  PORTAL_LOG_FORMAT: 'json'
  SMTP_URL: smtpUrl
  MAIL_FROM: mailFrom
  GRAPH_SIGN_IN_ACTIVITY: graphSignInActivity ? 'true' : 'false'
  CLEANUP_SCHEDULE: cleanupSchedule
}

var smtpSettings = union(
  empty(smtpUsername) ? {} : {
    SMTP_USERNAME: smtpUsername
  },
  empty(smtpPassword) ? {} : {
    SMTP_PASSWORD: '@Microsoft.KeyVault(SecretUri=${keyVaultSecretBase}${smtpPasswordSecretName})'
  }
)

var signInSettings = enablePartnerSignIn ? {
  SIGN_IN_CLIENT_ID: partnerSignIn.outputs.clientId
} : {}

resource appSettings 'Microsoft.Web/sites/config@2024-11-01' = {
  // checkov treats every Microsoft.Web/sites/config as the site's web configuration; this one is
  // the appsettings collection (name/value pairs), so the web-configuration checks do not apply here.
  //checkov:skip=CKV_AZURE_13:Not the web configuration (see above); App Service Authentication would wall off the anonymous sign-up form.
  //checkov:skip=CKV_AZURE_63:Not the web configuration; HTTP logs of Flex Consumption go to Application Insights.
  //checkov:skip=CKV_AZURE_65:Not the web configuration; detailed error pages are not shown to the public.
  //checkov:skip=CKV_AZURE_66:Not the web configuration; failed request tracing is an IIS feature (Windows).
  //checkov:skip=CKV_AZURE_80:Not the web configuration; no .NET Framework is used (custom handler).
  //checkov:skip=CKV_AZURE_88:Not the web configuration; Flex Consumption runs the package from a blob container, not Azure Files.
  //checkov:skip=CKV_AZURE_222:Not the web configuration; the site itself is public by design.
  parent: functionApp
  name: 'appsettings'
  properties: union(coreSettings, smtpSettings, signInSettings, additionalAppSettings)
  dependsOn: [
    identityRoles
  ]
}

output functionAppName string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output principalId string = functionApp.identity.principalId
output storageAccountName string = storage.name
output tableEndpoint string = storage.properties.primaryEndpoints.table
output keyVaultName string = keyVault.name
output appInsightsName string = appInsights.name
output signInClientId string = enablePartnerSignIn ? partnerSignIn.outputs.clientId : ''
