// The Function App identity's Azure roles, least privilege. Called by resources.bicep.
//
// A module of its own because a role assignment's name must be known when the deployment
// starts, and the identity's principal id is only known once the app exists: passed in as a
// parameter, it is known when this module starts. Each name is derived from the scope, the role
// and the principal id (not the app's resource id), so an app recreated with a new identity gets
// new assignments instead of colliding with the old identity's (RoleAssignmentUpdateNotPermitted).

targetScope = 'resourceGroup'

@description('Object id of the Function App system-assigned identity.')
param principalId string

@description('Storage account of the host and the portal tables.')
param storageAccountName string

@description('Key Vault holding the portal secrets.')
param keyVaultName string

@description('Name of the signing-keys secret.')
param signingKeysSecretName string

@description('Name of the SMTP password secret; empty when there is none.')
param smtpPasswordSecretName string = ''

@description('Application Insights component the app sends telemetry to.')
param appInsightsName string

// Built-in role definition ids (stable across tenants).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource signingKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: keyVault
  name: signingKeysSecretName
}

resource smtpPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = if (!empty(smtpPasswordSecretName)) {
  parent: keyVault
  name: empty(smtpPasswordSecretName) ? 'none' : smtpPasswordSecretName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Host storage with an identity: Storage Blob Data Owner covers the host (keys, timer leases,
// creating its containers) and reading the Flex deployment package. HTTP and timer triggers need
// no queue role.
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The portal's tables (PORTAL_TABLE_ENDPOINT, keyless).
resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault Secrets User on each secret, not on the vault.
resource signingKeysReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(signingKeysSecret.id, principalId, roles.keyVaultSecretsUser)
  scope: signingKeysSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource smtpPasswordReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(smtpPasswordSecretName)) {
  name: guid(keyVault.id, smtpPasswordSecretName, principalId, roles.keyVaultSecretsUser)
  scope: smtpPasswordSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
