//! Credentials for Microsoft Graph and (keyless) Table Storage, chosen explicitly from
//! settings: azure_identity 1.x has no "default" chain, and a portal that can create
//! identities should never pick up a developer's CLI login by accident.

use std::sync::{Arc, OnceLock};

use azure_core::credentials::TokenCredential;
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport};
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};

use crate::settings::GraphCredential;

pub fn credential(settings: &GraphCredential) -> Result<Arc<dyn TokenCredential>, String> {
    match settings {
        GraphCredential::ManagedIdentity { client_id } => {
            let mut options = ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                ..Default::default()
            };
            // The Graph client retries token fetches with its own bounded patience; the SDK's
            // default (minutes of retries) would hold a partner's form hostage.
            options.client_options.retry = azure_core::http::RetryOptions::none();
            options.client_options.transport = Some(deferred_transport());
            let cred = ManagedIdentityCredential::new(Some(options))
                .map_err(|e| format!("managed identity is not available: {e}"))?;
            Ok(cred)
        }
        GraphCredential::AzureCli => {
            let cred =
                AzureCliCredential::new(None).map_err(|e| format!("Azure CLI credential: {e}"))?;
            Ok(cred)
        }
        GraphCredential::ClientSecret {
            tenant_id,
            client_id,
            secret,
            authority_host,
        } => {
            let mut options = ClientSecretCredentialOptions::default();
            options.client_options.retry = azure_core::http::RetryOptions::none();
            options.client_options.transport = Some(deferred_transport());
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

/// The SDK's own HTTP client, built on the first token request instead of with the credential.
/// Building it loads every CA certificate of the system (a file read per certificate, several
/// milliseconds), and the credential is built before the handler answers the host's readiness
/// probe; nothing slow may happen before that answer.
fn deferred_transport() -> Transport {
    Transport::new(Arc::new(DeferredHttpClient::default()))
}

#[derive(Debug, Default)]
struct DeferredHttpClient(OnceLock<Arc<dyn HttpClient>>);

#[async_trait::async_trait]
impl HttpClient for DeferredHttpClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        self.0
            .get_or_init(|| azure_core::http::new_http_client(None))
            .execute_request(request)
            .await
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
