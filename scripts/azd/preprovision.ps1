# azd preprovision hook on Windows: the same as preprovision.sh (read that file for the why).
$ErrorActionPreference = 'Stop'

function Get-AzdValue($name) {
  $value = azd env get-value $name 2>$null
  if ($LASTEXITCODE -ne 0) { return '' }
  return "$value".Trim()
}

if ([string]::IsNullOrWhiteSpace((Get-AzdValue 'PORTAL_SIGNING_KEYS'))) {
  $bytes = [byte[]]::new(32)
  [System.Security.Cryptography.RandomNumberGenerator]::Fill($bytes)
  azd env set PORTAL_SIGNING_KEYS ("k1:" + [Convert]::ToBase64String($bytes))
  Write-Host "preprovision: generated PORTAL_SIGNING_KEYS (kid k1) in the azd environment"
}

function New-VaultName {
  $prefix = (Get-AzdValue 'PORTAL_NAME_PREFIX')
  if ([string]::IsNullOrWhiteSpace($prefix)) { $prefix = 'signup' }
  $prefix = ($prefix.ToLowerInvariant() -replace '[^a-z0-9]', '')
  if ($prefix.Length -gt 7) { $prefix = $prefix.Substring(0, 7) }
  $alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  $suffix = -join (1..10 | ForEach-Object { $alphabet[[System.Security.Cryptography.RandomNumberGenerator]::GetInt32(36)] })
  return "kv-$prefix-$suffix"
}

$used = Get-AzdValue 'PORTAL_KEY_VAULT_NAME'
if ([string]::IsNullOrWhiteSpace($used)) { $used = Get-AzdValue 'KEY_VAULT_NAME' }
if ([string]::IsNullOrWhiteSpace($used)) {
  $name = New-VaultName
  azd env set PORTAL_KEY_VAULT_NAME $name
  Write-Host "preprovision: this environment's Key Vault will be $name"
} elseif (-not (Get-Command az -ErrorAction SilentlyContinue)) {
  Write-Host "preprovision: cannot check whether Key Vault $used was deleted (the Azure CLI is missing)"
} else {
  az account show 2>$null | Out-Null
  if ($LASTEXITCODE -ne 0) {
    Write-Host "preprovision: cannot check whether Key Vault $used was deleted (az login first)"
  } else {
    $subscription = Get-AzdValue 'AZURE_SUBSCRIPTION_ID'
    if ($subscription) { az keyvault show-deleted --name $used --subscription $subscription 2>$null | Out-Null }
    else { az keyvault show-deleted --name $used 2>$null | Out-Null }
    if ($LASTEXITCODE -eq 0) {
      $name = New-VaultName
      azd env set PORTAL_KEY_VAULT_NAME $name
      Write-Host "preprovision: Key Vault $used was deleted (azd down) and keeps its name for up to 90 days (purge protection);"
      Write-Host "preprovision: this deployment creates $name instead. The old vault stays recoverable until it is purged:"
      Write-Host "preprovision:   az keyvault recover --name $used   (then: azd env set PORTAL_KEY_VAULT_NAME $used)"
    }
  }
}
$global:LASTEXITCODE = 0
