#!/bin/sh
# azd preprovision hook (azure.yaml): values made once per azd environment, before Bicep runs.
#
# 1. The token-signing key: 32 bytes from the OS random generator, generated on the admin's
#    machine once per azd environment and kept there, so later `azd up` runs deploy the same key
#    (links already in mailboxes keep working). It reaches Azure only as the secure parameter
#    portalSigningKeys, which the template stores in Key Vault.
#    Rotate: azd env set PORTAL_SIGNING_KEYS "k2:<new base64>,<the old value>" ; azd provision.
# 2. The Key Vault's name. The vault has purge protection, so after `azd down` the deleted vault
#    keeps its name for 90 days and a vault of the same name cannot be created. A new
#    environment gets a random name (PORTAL_KEY_VAULT_NAME); when the vault this environment
#    used is found deleted, a new name is chosen and the old vault is left recoverable.
set -eu

say() { echo "preprovision: $*"; }

if [ -z "$(azd env get-value PORTAL_SIGNING_KEYS 2>/dev/null || true)" ]; then
  azd env set PORTAL_SIGNING_KEYS "k1:$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  say "generated PORTAL_SIGNING_KEYS (kid k1) in the azd environment"
fi

new_vault_name() {
  prefix="$(azd env get-value PORTAL_NAME_PREFIX 2>/dev/null || true)"
  prefix="$(printf '%s' "${prefix:-signup}" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9' | cut -c1-7)"
  suffix="$(LC_ALL=C tr -dc 'a-z0-9' </dev/urandom | head -c 10)"
  echo "kv-${prefix:-signup}-$suffix"
}

chosen="$(azd env get-value PORTAL_KEY_VAULT_NAME 2>/dev/null || true)"
# KEY_VAULT_NAME is the output of an earlier provision (the name derived by the template).
used="${chosen:-$(azd env get-value KEY_VAULT_NAME 2>/dev/null || true)}"
if [ -z "$used" ]; then
  name="$(new_vault_name)"
  azd env set PORTAL_KEY_VAULT_NAME "$name"
  say "this environment's Key Vault will be $name"
elif ! command -v az >/dev/null 2>&1 || ! az account show >/dev/null 2>&1; then
  say "cannot check whether Key Vault $used was deleted (the Azure CLI is missing or not signed in: az login)"
else
  subscription="$(azd env get-value AZURE_SUBSCRIPTION_ID 2>/dev/null || true)"
  if az keyvault show-deleted --name "$used" ${subscription:+--subscription "$subscription"} >/dev/null 2>&1; then
    name="$(new_vault_name)"
    azd env set PORTAL_KEY_VAULT_NAME "$name"
    say "Key Vault $used was deleted (azd down) and keeps its name for up to 90 days (purge protection);"
    say "this deployment creates $name instead. The old vault stays recoverable until it is purged:"
    say "  az keyvault recover --name $used   (then: azd env set PORTAL_KEY_VAULT_NAME $used)"
  fi
fi
