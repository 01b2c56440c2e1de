//! Credentials for Microsoft Graph and (keyless) Table Storage, chosen explicitly from
//! settings: azure_identity 1.x has no "default" chain, and a portal that can create
//! identities should never pick up a developer's CLI login by accident.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};

use crate::settings::GraphCredential;

pub fn credential(settings: &GraphCredential) -> Result<Arc<dyn TokenCredential>, String> {
    match settings {
        GraphCredential::ManagedIdentity { client_id } => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                ..Default::default()
            };
            let cred = ManagedIdentityCredential::new(Some(options))
                .map_err(|e| format!("managed identity is not available: {e}"))?;
            Ok(cred)
        }
        GraphCredential::ClientSecret {
            tenant_id,
            client_id,
            secret,
            authority_host,
        } => {
            let mut options = ClientSecretCredentialOptions::default();
            let mut custom = azure_core::cloud::CustomConfiguration::default();
            custom.authority_host = authority_host.as_str().trim_end_matches('/').to_string();
            options.client_options.cloud = Some(Arc::new(custom.into()));
            let cred = ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                secret.clone().into(),
                Some(options),
            )
            .map_err(|e| format!("client secret credential: {e}"))?;
            Ok(cred)
        }
    }
}

/// Table Storage's SDK is of the older azure_core generation; this lends it a 1.x credential.
#[derive(Debug)]
pub struct LegacyTokenCredential(pub Arc<dyn TokenCredential>);

#[async_trait::async_trait]
impl azure_core_legacy::auth::TokenCredential for LegacyTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
    ) -> azure_core_legacy::Result<azure_core_legacy::auth::AccessToken> {
        let token = self.0.get_token(scopes, None).await.map_err(|e| {
            azure_core_legacy::Error::message(
                azure_core_legacy::error::ErrorKind::Credential,
                e.to_string(),
            )
        })?;
        Ok(azure_core_legacy::auth::AccessToken::new(
            token.token.secret().to_string(),
            token.expires_on,
        ))
    }

    async fn clear_cache(&self) -> azure_core_legacy::Result<()> {
        Ok(())
    }
}
