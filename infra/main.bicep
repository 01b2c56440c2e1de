// b2b-signup: the self-service Entra ID B2B sign-up portal on Azure Functions (Flex Consumption,
// custom handler). `azd up` deploys this file with main.parameters.json; without azd:
//
//   az deployment sub create -l <region> -f infra/main.bicep \
//     -p environmentName=contoso-prod location=<region> smtpHost=... mailFrom=... \
//        portalSigningKeys="k1:$(head -c 32 /dev/urandom | base64)" smtpPassword=...
//
// Why Flex Consumption and not Linux Consumption (Y1): see resources.bicep and docs/deploy.md.
// Microsoft Graph application permissions for the app's identity: graph-permissions.bicep, only
// when grantGraphPermissions is true, because the person deploying then needs an Entra role that
// can grant application permissions (Privileged Role Administrator or Global Administrator).
// Otherwise an admin runs infra/grant-graph-permissions.sh with the principalId output.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd AZURE_ENV_NAME); names the resource group and seeds unique names.')
param environmentName string

@minLength(1)
@description('Azure region of every resource (one with Flex Consumption: az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or reuse. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

@minLength(2)
@maxLength(12)
@description('Short lower-case prefix of every resource name (letters, digits, hyphens).')
param namePrefix string = 'signup'

// --- the portal ------------------------------------------------------------------------------

@description('Organisation name on pages and in mail (PORTAL_ORG_NAME).')
param orgName string = 'Partner access'

@description('Public https URL of the portal (PORTAL_PUBLIC_URL), e.g. a custom domain. Empty: https://<the app default host name>.')
param publicUrl string = ''

@description('Token-signing keys (PORTAL_SIGNING_KEYS): kid:base64secret with 32+ random bytes, newest first, e.g. "k2:NEW,k1:OLD". azd fills it from the azd environment (see azure.yaml).')
@secure()
param portalSigningKeys string

// --- mail ------------------------------------------------------------------------------------

@description('SMTP server host name, e.g. smtp.office365.com or the tenant\'s relay.')
param smtpHost string

@description('SMTP port: 587 with STARTTLS, 465 with implicit TLS.')
param smtpPort int = 587

@description('starttls (SMTP_URL smtp://host:port?tls=required) or implicit (smtps://host:port).')
@allowed([
  'starttls'
  'implicit'
])
param smtpTls string = 'starttls'

@description('SMTP user name (SMTP_USERNAME). Empty for an unauthenticated relay.')
param smtpUsername string = ''

@description('SMTP password, kept in Key Vault (SMTP_PASSWORD is a Key Vault reference). Empty for an unauthenticated relay.')
@secure()
param smtpPassword string = ''

@description('Sender of every mail (MAIL_FROM), e.g. "Contoso Partner Access <no-reply@contoso.com>".')
param mailFrom string

// --- cleanup and features --------------------------------------------------------------------

@description('NCRONTAB schedule of the cleanup timer, six fields, UTC (CLEANUP_SCHEDULE).')
param cleanupSchedule string = '0 */5 * * * *'

@description('Inactivity-based cleanup: grants AuditLog.Read.All and sets GRAPH_SIGN_IN_ACTIVITY=true. Needs Entra ID P1.')
param enableInactivityCleanup bool = false

@description('Policies may assign app roles to guests: grants AppRoleAssignment.ReadWrite.All and Application.Read.All. AppRoleAssignment.ReadWrite.All lets the identity grant itself any permission: leave this false unless policies must assign app roles.')
param enableAppRoleGrants bool = false

@description('CLEANUP_DRY_RUN: the cleanup reports what it would do and changes nothing. True until you have read its reports; then false.')
param cleanupDryRun bool = true

@description('CLEANUP_INACTIVE_DAYS: days without a sign-in before a guest counts as inactive; takes effect only with enableInactivityCleanup. 0: off.')
@minValue(0)
@maxValue(3650)
param cleanupInactiveDays int = 0

@description('CLEANUP_EXCLUSION_GROUP_ID: object id of a group whose members the cleanup never touches. Empty: none.')
param cleanupExclusionGroupId string = ''

@description('Grant the Microsoft Graph application permissions in this deployment (needs Privileged Role Administrator or Global Administrator). False: run infra/grant-graph-permissions.sh afterwards.')
param grantGraphPermissions bool = false

// --- optional portal settings (empty or 0 = the handler's default) ----------------------------

@description('PORTAL_DEFAULT_LANGUAGE: en or sv. Empty: en.')
@allowed([
  ''
  'en'
  'sv'
])
param defaultLanguage string = ''

@description('PORTAL_ACCENT_COLOR, e.g. #0f6cbd. Empty: the default.')
param accentColor string = ''

@description('PORTAL_LOGO_FILE: file name of a logo shipped in the package (scripts/package.sh --extra logo.png). Empty: no logo.')
param logoFile string = ''

@description('PORTAL_TERMS_URL: https link to terms of use shown on the form. Empty: none.')
param termsUrl string = ''

@description('PORTAL_TERMS_TEXT: short terms text shown on the form. Empty: none.')
param termsText string = ''

@description('PORTAL_MAIL_FOOTER: text appended to every mail. Empty: none.')
param mailFooter string = ''

@description('PORTAL_VERIFICATION_HOURS: lifetime of the verification link. 0: default (24).')
@minValue(0)
param verificationHours int = 0

@description('PORTAL_RATE_LIMIT_IP: sign-ups per client IP per hour. 0: default (20).')
@minValue(0)
param rateLimitIp int = 0

@description('PORTAL_RATE_LIMIT_ADDRESS: sign-ups per address per hour. 0: default (3).')
@minValue(0)
param rateLimitAddress int = 0

@description('PORTAL_RATE_LIMIT_DOMAIN: sign-ups per domain per hour. 0: default (100).')
@minValue(0)
param rateLimitDomain int = 0

@description('PORTAL_APPROVERS_MUST_SIGN_IN: approvers must be signed in. Creates an app registration (the deploying identity must be allowed to create applications) and turns App Service Authentication on for it, anonymous access still allowed for the form.')
param approversMustSignIn bool = false

@description('Partners may prove who they are by signing in with their work account (policies with proof sign_in or either, or naming tenants): creates a multi-tenant app registration whose only credential is the Function App\'s managed identity (a federated identity credential, no secret) and sets SIGN_IN_CLIENT_ID. The deploying identity must be allowed to create applications.')
param enablePartnerSignIn bool = false

@description('Further app settings (name to string value), e.g. other CLEANUP_* settings. Merged last, so they win.')
param additionalAppSettings object = {}

// --- capacity --------------------------------------------------------------------------------

@description('Flex Consumption instance memory (MB).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Maximum Flex Consumption instances (1 to 1000). Bounds the cost of abuse.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Key Vault name (globally unique, 3-24 characters). Empty: kv-<prefix>-<token>, derived from the environment. A vault deleted with `azd down` keeps its name for 90 days (purge protection), so a redeployment needs another name: azd\'s preprovision hook sets one (PORTAL_KEY_VAULT_NAME); without azd, pass keyVaultName=<new name>.')
@maxLength(24)
param keyVaultName string = ''

@description('Storage account redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

var tags = {
  'azd-env-name': environmentName
  application: 'b2b-signup'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))

var optionalSettings = union(
  empty(defaultLanguage) ? {} : { PORTAL_DEFAULT_LANGUAGE: defaultLanguage },
  empty(accentColor) ? {} : { PORTAL_ACCENT_COLOR: accentColor },
  empty(logoFile) ? {} : { PORTAL_LOGO_FILE: logoFile },
  empty(termsUrl) ? {} : { PORTAL_TERMS_URL: termsUrl },
  empty(termsText) ? {} : { PORTAL_TERMS_TEXT: termsText },
  empty(mailFooter) ? {} : { PORTAL_MAIL_FOOTER: mailFooter },
  verificationHours == 0 ? {} : { PORTAL_VERIFICATION_HOURS: string(verificationHours) },
  rateLimitIp == 0 ? {} : { PORTAL_RATE_LIMIT_IP: string(rateLimitIp) },
  rateLimitAddress == 0 ? {} : { PORTAL_RATE_LIMIT_ADDRESS: string(rateLimitAddress) },
  rateLimitDomain == 0 ? {} : { PORTAL_RATE_LIMIT_DOMAIN: string(rateLimitDomain) },
  approversMustSignIn ? { PORTAL_APPROVERS_MUST_SIGN_IN: 'true' } : {},
  { CLEANUP_DRY_RUN: cleanupDryRun ? 'true' : 'false' },
  empty(cleanupExclusionGroupId) ? {} : { CLEANUP_EXCLUSION_GROUP_ID: cleanupExclusionGroupId },
  enableInactivityCleanup && cleanupInactiveDays > 0 ? { CLEANUP_INACTIVE_DAYS: string(cleanupInactiveDays) } : {},
  additionalAppSettings
)

resource rg 'Microsoft.Resources/resourceGroups@2024-11-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module app 'resources.bicep' = {
  name: 'b2b-signup-resources'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    resourceToken: resourceToken
    orgName: orgName
    publicUrl: publicUrl
    smtpHost: smtpHost
    smtpPort: smtpPort
    smtpTls: smtpTls
    smtpUsername: smtpUsername
    smtpPassword: smtpPassword
    mailFrom: mailFrom
    portalSigningKeys: portalSigningKeys
    cleanupSchedule: cleanupSchedule
    graphSignInActivity: enableInactivityCleanup
    additionalAppSettings: optionalSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    storageSku: storageSku
    keyVaultNameOverride: keyVaultName
    enablePartnerSignIn: enablePartnerSignIn
  }
}

// Approvers who must sign in: an app registration, then App Service Authentication with it.
var publicHost = empty(publicUrl) ? '' : split(replace(publicUrl, 'https://', ''), '/')[0]

module approverSignIn 'approver-sign-in.bicep' = if (approversMustSignIn) {
  name: 'b2b-signup-approver-sign-in'
  scope: rg
  params: {
    uniqueName: 'b2b-signup-approvers-${resourceToken}'
    displayName: '${orgName} partner access (approvers)'
    hostNames: empty(publicHost) ? [app.outputs.defaultHostName] : [app.outputs.defaultHostName, publicHost]
  }
}

module approverAuth 'approver-auth.bicep' = if (approversMustSignIn) {
  name: 'b2b-signup-approver-auth'
  scope: rg
  params: {
    functionAppName: app.outputs.functionAppName
    clientId: approversMustSignIn ? approverSignIn.outputs.clientId : ''
  }
}

module graphPermissions 'graph-permissions.bicep' = if (grantGraphPermissions) {
  name: 'b2b-signup-graph-permissions'
  scope: rg
  params: {
    principalId: app.outputs.principalId
    enableInactivityCleanup: enableInactivityCleanup
    enableAppRoleGrants: enableAppRoleGrants
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = app.outputs.functionAppName
output FUNCTION_APP_DEFAULT_HOSTNAME string = app.outputs.defaultHostName
output FUNCTION_APP_PRINCIPAL_ID string = app.outputs.principalId
output PORTAL_TABLE_ENDPOINT string = app.outputs.tableEndpoint
output STORAGE_ACCOUNT_NAME string = app.outputs.storageAccountName
output KEY_VAULT_NAME string = app.outputs.keyVaultName
output APPLICATION_INSIGHTS_NAME string = app.outputs.appInsightsName
output GRAPH_PERMISSIONS_GRANTED bool = grantGraphPermissions
output SIGN_IN_CLIENT_ID string = app.outputs.signInClientId
