//! The Microsoft identity platform, for partners who sign in: the discovery document, the
//! published signing keys, and the token endpoint where a partner's authorization code is
//! redeemed.
//!
//! - Discovery (`{authority}/.well-known/openid-configuration`) is read on first use and kept
//!   a day: it names the authorize, token and keys endpoints and the issuer template.
//! - Keys are kept at most a day, as Microsoft asks of apps, and fetched again at once when a
//!   token names a key id the cached set lacks (a rollover). A fetch replaces the whole set, so
//!   a key the issuer withdrew stops verifying at the first fetch after it is gone. A token
//!   naming an unknown key costs at most one fetch: it came from our own request to the
//!   token endpoint, so nobody else can make us fetch at will.
//! - The portal authenticates to the token endpoint without a secret: its managed identity's
//!   token for `api://AzureADTokenExchange` is the client assertion, which the app
//!   registration trusts through a federated identity credential.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::core::sign_in::{self, Expected, IdTokenError, PublishedKey, SignedIn};
use crate::settings::{GraphCredential, SignInSettings};

/// How long discovery and keys are trusted before they are read again.
const CACHE_FOR: Duration = Duration::from_secs(24 * 3600);
/// The scope of the managed identity token that serves as the client assertion.
const ASSERTION_SCOPE: &str = "api://AzureADTokenExchange/.default";
/// Scopes asked of the partner: who they are, and the optional claims on their ID token.
pub const SCOPES: &str = "openid profile email";

#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// What went wrong talking to the identity platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Not reachable, 5xx, or an answer that is not what the protocol says: try later.
    Unavailable(String),
    /// The token endpoint refused (`invalid_grant` for a used or expired code, `invalid_client`
    /// for a credential it does not trust): the error, its AADSTS codes and description.
    Refused {
        error: String,
        codes: Vec<u64>,
        description: String,
    },
    /// The ID token failed a check.
    Token(IdTokenError),
    /// The managed identity gave no token to use as the client assertion.
    Credential(String),
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInError::Unavailable(why) => {
                write!(f, "the identity platform is unavailable: {why}")
            }
            SignInError::Refused { error, codes, .. } => {
                write!(f, "the token endpoint refused: {error} {codes:?}")
            }
            SignInError::Token(e) => write!(f, "the ID token was refused: {e}"),
            SignInError::Credential(why) => write!(f, "no client assertion: {why}"),
        }
    }
}

pub struct SignInClient {
    http: reqwest::Client,
    settings: SignInSettings,
    redirect_uri: String,
    credential: Arc<dyn TokenCredential>,
    discovery: Mutex<Option<(Instant, Arc<Discovery>)>>,
    keys: Mutex<Option<(Instant, Arc<Vec<PublishedKey>>)>>,
}

/// Plain http only to this machine (the simulator); everything else over TLS.
fn acceptable_endpoint(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(u) => {
            u.scheme() == "https"
                || (u.scheme() == "http"
                    && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
        }
        Err(_) => false,
    }
}

impl SignInClient {
    pub fn new(
        http: reqwest::Client,
        settings: &SignInSettings,
        public_url: &url::Url,
    ) -> Result<Self, String> {
        let credential =
            crate::adapters::identity::credential(&GraphCredential::ManagedIdentity {
                client_id: settings.managed_identity_client_id.clone(),
            })?;
        Ok(SignInClient {
            http,
            settings: settings.clone(),
            redirect_uri: SignInSettings::redirect_uri(public_url),
            credential,
            discovery: Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, SignInError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| SignInError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(SignInError::Unavailable(format!("{url} answered {status}")));
        }
        resp.json::<T>()
            .await
            .map_err(|e| SignInError::Unavailable(format!("{url}: {}", e.without_url())))
    }

    /// The discovery document (cached a day).
    pub async fn discovery(&self) -> Result<Arc<Discovery>, SignInError> {
        let mut cached = self.discovery.lock().await;
        if let Some((at, d)) = cached.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return Ok(d.clone());
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.authority.as_str().trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url).await?;
        for endpoint in [&d.authorization_endpoint, &d.token_endpoint, &d.jwks_uri] {
            if !acceptable_endpoint(endpoint) {
                return Err(SignInError::Unavailable(format!(
                    "the discovery document names an endpoint that is not https: {endpoint}"
                )));
            }
        }
        let d = Arc::new(d);
        *cached = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    /// The published keys; `refresh` fetches them again unless another task just did.
    async fn keys(
        &self,
        refresh_unless_newer_than: Option<Instant>,
    ) -> Result<(Instant, Arc<Vec<PublishedKey>>), SignInError> {
        let mut cached = self.keys.lock().await;
        if let Some((at, keys)) = cached.as_ref() {
            let fresh = at.elapsed() < CACHE_FOR;
            let refreshed_since = refresh_unless_newer_than.is_none_or(|t| *at > t);
            if fresh && refreshed_since {
                return Ok((*at, keys.clone()));
            }
        }
        let discovery = self.discovery().await?;
        let body = self
            .http
            .get(&discovery.jwks_uri)
            .send()
            .await
            .map_err(|e| SignInError::Unavailable(e.without_url().to_string()))?;
        if !body.status().is_success() {
            return Err(SignInError::Unavailable(format!(
                "the keys endpoint answered {}",
                body.status()
            )));
        }
        let bytes = body
            .bytes()
            .await
            .map_err(|e| SignInError::Unavailable(e.without_url().to_string()))?;
        let keys = Arc::new(sign_in::parse_key_set(&bytes).map_err(SignInError::Unavailable)?);
        let now = Instant::now();
        *cached = Some((now, keys.clone()));
        tracing::info!(
            keys = keys.len(),
            "read the identity platform's signing keys"
        );
        Ok((now, keys))
    }

    /// How many signing keys the issuer publishes now (a fresh read).
    pub async fn published_key_count(&self) -> Result<usize, SignInError> {
        Ok(self.keys(Some(Instant::now())).await?.1.len())
    }

    /// Where to send the partner: the authorize endpoint with this sign-in's values.
    pub async fn authorize_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
        login_hint: &str,
    ) -> Result<String, SignInError> {
        let discovery = self.discovery().await?;
        let mut url = url::Url::parse(&discovery.authorization_endpoint)
            .map_err(|_| SignInError::Unavailable("the authorize endpoint is not a URL".into()))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.redirect_uri)
            // The answer comes back as a top-level GET, so the browser sends the portal's
            // SameSite=Lax cookie with it (a cross-site form_post would not carry it).
            .append_pair("response_mode", "query")
            .append_pair("scope", SCOPES)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("login_hint", login_hint)
            .append_pair("prompt", "select_account");
        Ok(url.to_string())
    }

    /// The managed identity's token, presented as the client assertion.
    pub async fn client_assertion(&self) -> Result<String, SignInError> {
        self.credential
            .get_token(&[ASSERTION_SCOPE], None)
            .await
            .map(|t| t.token.secret().to_string())
            .map_err(|e| SignInError::Credential(e.to_string()))
    }

    /// Redeems a partner's code (with this sign-in's PKCE verifier); the ID token.
    pub async fn redeem(&self, code: &str, code_verifier: &str) -> Result<String, SignInError> {
        let discovery = self.discovery().await?;
        let assertion = self.client_assertion().await?;
        let answer = self
            .token_request(
                &discovery.token_endpoint,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("code_verifier", code_verifier),
                ],
                &assertion,
            )
            .await?;
        answer
            .get("id_token")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| SignInError::Unavailable("the token endpoint gave no id_token".into()))
    }

    /// One POST to the token endpoint as this app: its JSON answer, or what refused it.
    pub async fn token_request(
        &self,
        token_endpoint: &str,
        grant: &[(&str, &str)],
        assertion: &str,
    ) -> Result<serde_json::Value, SignInError> {
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.extend([
            ("client_id", self.settings.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", SCOPES),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ]);
        let resp = self
            .http
            .post(token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| SignInError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.map_err(|e| {
            SignInError::Unavailable(format!("token endpoint: {}", e.without_url()))
        })?;
        if status.is_success() {
            return Ok(body);
        }
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SignInError::Unavailable(format!(
                "the token endpoint answered {status}"
            )));
        }
        Err(SignInError::Refused {
            error: body["error"].as_str().unwrap_or("unknown").to_string(),
            codes: body["error_codes"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
                .unwrap_or_default(),
            description: crate::core::email::mask_addresses(
                body["error_description"].as_str().unwrap_or(""),
            ),
        })
    }

    /// Checks an ID token; a key id the cached set lacks makes one fresh read of the keys.
    pub async fn verify(
        &self,
        id_token: &str,
        nonce: &str,
        now_unix: i64,
    ) -> Result<SignedIn, SignInError> {
        let discovery = self.discovery().await?;
        let expected = Expected {
            client_id: &self.settings.client_id,
            issuer: &discovery.issuer,
            nonce,
            now_unix,
        };
        let (read_at, keys) = self.keys(None).await?;
        match sign_in::verify_id_token(id_token, &keys, &expected) {
            Err(IdTokenError::UnknownKey(_)) => {
                let (_, keys) = self.keys(Some(read_at)).await?;
                sign_in::verify_id_token(id_token, &keys, &expected).map_err(SignInError::Token)
            }
            other => other.map_err(SignInError::Token),
        }
    }
}
