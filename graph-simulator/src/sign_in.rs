//! The Microsoft identity platform's OpenID Connect side, for partners who prove who they are
//! by signing in: the authorize endpoint (a plain sign-in page a test or a browser can drive),
//! the token endpoint's authorization code grant with PKCE, the discovery document and the
//! published signing keys, for several tenants and their users.
//!
//! Faithful to the v2.0 endpoints where the portal depends on them:
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`: for `organizations` and `common`
//!   the issuer is the template `{authority}/{tenantid}/v2.0`; for a tenant id, that tenant's.
//! - `GET /{tenant}/discovery/v2.0/keys`: RSA keys (`kty`, `use`, `kid`, `x5t`, `n`, `e`,
//!   `issuer`). Keys roll over: a new key is published and signs, an old one is withdrawn.
//! - `GET /{tenant}/oauth2/v2.0/authorize`: checks the client id (AADSTS700016) and the
//!   registered redirect URI (AADSTS50011) before showing anything, then a sign-in page;
//!   posting it redirects to the redirect URI with `code` and `state` (or `error=access_denied`).
//! - `POST /{tenant}/oauth2/v2.0/token`, `grant_type=authorization_code`: the client
//!   authenticates with a client assertion, the app's managed identity token for
//!   `api://AzureADTokenExchange` (a federated identity credential, AADSTS70021 without one);
//!   codes are single use (AADSTS54005), expire after 10 minutes (AADSTS70008), and are bound
//!   to the redirect URI and the PKCE challenge (AADSTS501481).
//! - ID tokens: RS256, `aud`, `iss` of the user's home tenant, `tid`, `oid`, `sub`, `name`,
//!   `preferred_username`, `email` and `xms_edov` (the optional claims the portal's app
//!   registration asks for), `nonce`, `iat`, `nbf`, `exp`, `ver: 2.0`, and `amr`.
//!
//! One deliberate difference: Microsoft documents `amr` for v1.0 tokens, and v2.0 ID tokens
//! leave it out today. The simulator puts it in by default (`["pwd","mfa"]` for users who did
//! multi-factor authentication, `["pwd"]` otherwise), so a policy's MFA requirement can be
//! exercised; [`crate::Simulator::set_id_token_amr`] turns it off to show what Entra sends.
//!
//! Forgeries for tests: [`IdTokenForgery`] makes the next ID token the token endpoint issues
//! unsigned, signed with the wrong key or HS256 over the public key, for another audience or
//! tenant, expired, with another nonce, or signed with a key no longer published.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use warp::http::{Method, StatusCode};

use crate::auth::sts_error;
use crate::errors::ApiResponse;
use crate::odata::QueryParams;
use crate::shared::{lock, Shared};
use crate::types::IDENTITY_OBJECT_ID;
use crate::util::{b64url, new_guid, random_token};

/// The portal's sign-in app registration (multi-tenant), distinct from the Graph app.
pub const SIGN_IN_CLIENT_ID: &str = "5160a11e-0b2b-4c1e-9a55-516e00000002";
/// The redirect URI registered by default: the portal's callback at the local public URL.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:7071/api/signup/signed-in";
/// The audience a managed identity token must have to serve as a client assertion.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
const CODE_LIFETIME: Duration = Duration::from_secs(600);
const ID_TOKEN_LIFETIME: i64 = 3600;

/// A person who can sign in, in a tenant the simulator knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInUser {
    pub tenant_id: String,
    /// What the person types on the sign-in page (their user principal name).
    pub username: String,
    /// The `email` claim; `None` leaves it out (accounts without a mailbox).
    #[serde(default)]
    pub email: Option<String>,
    /// The `xms_edov` claim: whether the tenant has verified the email's domain.
    #[serde(default = "yes")]
    pub email_domain_verified: bool,
    pub name: String,
    /// Whether the person's sign-in includes a second factor (`amr` has `mfa`).
    #[serde(default)]
    pub mfa: bool,
    /// Object id; generated when empty.
    #[serde(default)]
    pub object_id: String,
}

fn yes() -> bool {
    true
}

impl SignInUser {
    /// A user whose email is their user name, at a domain the tenant has verified, without MFA.
    pub fn new(tenant_id: &str, address: &str, name: &str) -> Self {
        SignInUser {
            tenant_id: tenant_id.to_string(),
            username: address.to_string(),
            email: Some(address.to_string()),
            email_domain_verified: true,
            name: name.to_string(),
            mfa: false,
            object_id: String::new(),
        }
    }

    pub fn with_mfa(mut self) -> Self {
        self.mfa = true;
        self
    }
}

/// What to do wrong in the next ID token the token endpoint issues (once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdTokenForgery {
    /// `alg: none` and no signature.
    AlgNone,
    /// Signed with a key that was never published, under the published key's `kid`.
    WrongKey,
    /// `alg: HS256` with the published RSA public key (its JWK `n`) as the HMAC secret: the
    /// classic algorithm confusion.
    Hs256WithPublicKey,
    /// `aud` is another application.
    Audience { value: String },
    /// `exp` (and `iat`, `nbf`) an hour in the past.
    Expired,
    /// `iss` names another tenant than `tid`.
    IssuerTenant { tenant_id: String },
    /// Another `nonce`.
    Nonce { value: String },
    /// Signed with this key (by `kid`), published or not: a withdrawn key.
    SignedWith { kid: String },
}

struct SigningKey {
    kid: String,
    pair: Arc<RsaKeyPair>,
    published: bool,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("published", &self.published)
            .finish()
    }
}

#[derive(Debug, Clone)]
struct CodeGrant {
    user: SignInUser,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
    issued: Instant,
    redeemed: bool,
}

/// The identity provider's state. Keys are generated on first use, so simulators that never
/// see a sign-in pay nothing for RSA key generation.
#[derive(Debug)]
pub(crate) struct SignInState {
    keys: Vec<SigningKey>,
    /// The key that signs new tokens.
    active: Option<String>,
    tenants: HashMap<String, String>,
    users: Vec<SignInUser>,
    redirect_uris: Vec<String>,
    codes: HashMap<String, CodeGrant>,
    forgery: Option<IdTokenForgery>,
    /// Whether the app registration trusts the managed identity (federated credential).
    federated_credential: bool,
    /// Whether ID tokens carry `amr` (see the module doc).
    amr: bool,
}

impl Default for SignInState {
    fn default() -> Self {
        SignInState {
            keys: Vec::new(),
            active: None,
            tenants: HashMap::new(),
            users: Vec::new(),
            redirect_uris: vec![DEFAULT_REDIRECT_URI.to_string()],
            codes: HashMap::new(),
            forgery: None,
            federated_credential: true,
            amr: true,
        }
    }
}

fn new_key() -> SigningKey {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation works");
    let public = pair.public_key().as_ref().to_vec();
    // Entra's kids are short base64url thumbprints; a hash of the public key reads the same.
    let kid = b64url(&Sha256::digest(&public)[..15]);
    SigningKey {
        kid,
        pair: Arc::new(pair),
        published: true,
    }
}

impl SignInState {
    fn ensure_key(&mut self) {
        if self.active.is_none() {
            let key = new_key();
            self.active = Some(key.kid.clone());
            self.keys.push(key);
        }
    }

    fn key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    fn active_key(&mut self) -> &SigningKey {
        self.ensure_key();
        let kid = self.active.clone().unwrap_or_default();
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .expect("the active key exists")
    }

    pub(crate) fn add_tenant(&mut self, tenant_id: &str, name: &str) {
        self.tenants
            .insert(tenant_id.to_ascii_lowercase(), name.to_string());
    }

    pub(crate) fn add_user(&mut self, mut user: SignInUser) -> String {
        if user.object_id.is_empty() {
            user.object_id = new_guid();
        }
        user.tenant_id = user.tenant_id.to_ascii_lowercase();
        self.tenants
            .entry(user.tenant_id.clone())
            .or_insert_with(|| "Partner".into());
        let id = user.object_id.clone();
        self.users
            .retain(|u| !u.username.eq_ignore_ascii_case(&user.username));
        self.users.push(user);
        id
    }

    pub(crate) fn set_redirect_uris(&mut self, uris: Vec<String>) {
        self.redirect_uris = uris;
    }

    pub(crate) fn set_forgery(&mut self, forgery: Option<IdTokenForgery>) {
        self.forgery = forgery;
    }

    pub(crate) fn set_federated_credential(&mut self, present: bool) {
        self.federated_credential = present;
    }

    pub(crate) fn set_amr(&mut self, on: bool) {
        self.amr = on;
    }

    /// A new key is published and signs from now on; with `withdraw_old`, every earlier key
    /// leaves the published set at the same moment (a hard rollover). Returns the new kid.
    pub(crate) fn roll_keys(&mut self, withdraw_old: bool) -> String {
        self.ensure_key();
        if withdraw_old {
            for k in &mut self.keys {
                k.published = false;
            }
        }
        let key = new_key();
        let kid = key.kid.clone();
        self.keys.push(key);
        self.active = Some(kid.clone());
        kid
    }

    pub(crate) fn published_kids(&mut self) -> Vec<String> {
        self.ensure_key();
        self.keys
            .iter()
            .filter(|k| k.published)
            .map(|k| k.kid.clone())
            .collect()
    }

    pub(crate) fn active_kid(&mut self) -> String {
        self.active_key().kid.clone()
    }

    pub(crate) fn users(&self) -> Vec<SignInUser> {
        self.users.clone()
    }
}

fn authority(shared: &Shared) -> String {
    format!("http://{}", shared.addr)
}

fn issuer(shared: &Shared, tenant_id: &str) -> String {
    format!("{}/{tenant_id}/v2.0", authority(shared))
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

/// What a tenant segment of the path may be: `organizations`, `common`, or a tenant the
/// simulator knows (its own included).
fn tenant_segment_known(shared: &Shared, state: &SignInState, tenant: &str) -> bool {
    let t = tenant.to_ascii_lowercase();
    matches!(t.as_str(), "organizations" | "common")
        || t == shared.tenant_id
        || state.tenants.contains_key(&t)
}

/// A plain HTTP answer (pages and redirects are not Graph JSON).
pub(crate) struct Plain {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub location: Option<String>,
    pub body: String,
}

pub(crate) enum Answer {
    Api(ApiResponse),
    Plain(Plain),
}

fn page(status: StatusCode, title: &str, body: &str) -> Answer {
    Answer::Plain(Plain {
        status,
        content_type: "text/html; charset=utf-8",
        location: None,
        body: format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><main><h1>{title}</h1>{body}</main></body></html>"
        ),
    })
}

fn redirect(location: String) -> Answer {
    Answer::Plain(Plain {
        status: StatusCode::FOUND,
        content_type: "text/plain; charset=utf-8",
        location: Some(location),
        body: String::new(),
    })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Routes the sign-in endpoints; `None` for any other path.
pub(crate) fn handle(
    shared: &Shared,
    method: &Method,
    segs: &[&str],
    query: &str,
    body: &[u8],
) -> Option<Answer> {
    match segs {
        [tenant, "v2.0", ".well-known", "openid-configuration"] => {
            Some(discovery(shared, tenant, method))
        }
        [tenant, "discovery", "v2.0", "keys"] => Some(keys(shared, tenant, method)),
        [tenant, "oauth2", "v2.0", "authorize"] => Some(match *method {
            Method::GET => authorize_page(shared, tenant, &QueryParams::parse(query), None),
            Method::POST => authorize_post(
                shared,
                tenant,
                &QueryParams::parse(&String::from_utf8_lossy(body)),
            ),
            _ => page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", ""),
        }),
        _ => None,
    }
}

fn discovery(shared: &Shared, tenant: &str, method: &Method) -> Answer {
    if *method != Method::GET {
        return Answer::Api(ApiResponse::json(405, json!({"error": "invalid_request"})));
    }
    let state = lock(&shared.sign_in);
    if !tenant_segment_known(shared, &state, tenant) {
        return Answer::Api(sts_error(
            400,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        ));
    }
    let base = authority(shared);
    let issuer = if is_guid(tenant) {
        format!("{base}/{}/v2.0", tenant.to_ascii_lowercase())
    } else {
        format!("{base}/{{tenantid}}/v2.0")
    };
    Answer::Api(ApiResponse::json(
        200,
        json!({
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
            "tenant_region_scope": null,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net"
        }),
    ))
}

fn jwk(shared: &Shared, key: &SigningKey) -> Value {
    let public = key.pair.public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "kid": key.kid,
        "x5t": key.kid,
        "n": b64url(public.modulus().big_endian_without_leading_zero()),
        "e": b64url(public.exponent().big_endian_without_leading_zero()),
        "issuer": issuer(shared, "{tenantid}"),
    })
}

fn keys(shared: &Shared, tenant: &str, method: &Method) -> Answer {
    if *method != Method::GET {
        return Answer::Api(ApiResponse::json(405, json!({"error": "invalid_request"})));
    }
    let mut state = lock(&shared.sign_in);
    if !tenant_segment_known(shared, &state, tenant) {
        return Answer::Api(sts_error(
            400,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found."),
        ));
    }
    state.ensure_key();
    let keys: Vec<Value> = state
        .keys
        .iter()
        .filter(|k| k.published)
        .map(|k| jwk(shared, k))
        .collect();
    Answer::Api(ApiResponse::json(200, json!({ "keys": keys })))
}

fn param<'a>(q: &'a QueryParams, name: &str) -> Option<&'a str> {
    q.0.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The checks Entra makes before it shows a sign-in page: errors here are shown to the
/// person, never sent to a redirect URI that may not be the app's.
fn check_authorize(shared: &Shared, tenant: &str, q: &QueryParams) -> Result<(), Answer> {
    let state = lock(&shared.sign_in);
    let fail = |code: u32, text: &str| {
        Err(page(
            StatusCode::BAD_REQUEST,
            "Sign in",
            &format!("<p role=\"alert\">AADSTS{code}: {}</p>", html_escape(text)),
        ))
    };
    if !tenant_segment_known(shared, &state, tenant) {
        return fail(90002, &format!("Tenant '{tenant}' not found."));
    }
    let client_id = param(q, "client_id").unwrap_or_default();
    if !client_id.eq_ignore_ascii_case(SIGN_IN_CLIENT_ID) {
        return fail(
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    }
    let redirect_uri = param(q, "redirect_uri").unwrap_or_default();
    if !state.redirect_uris.iter().any(|u| u == redirect_uri) {
        return fail(50011, &format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{SIGN_IN_CLIENT_ID}'."));
    }
    if param(q, "response_type") != Some("code") {
        return fail(
            700054,
            "response_type 'code' is the one this simulator serves.",
        );
    }
    let scopes = param(q, "scope").unwrap_or_default();
    if !scopes.split_whitespace().any(|s| s == "openid") {
        return fail(
            900144,
            "The request body must contain the following parameter: 'scope' with openid.",
        );
    }
    if param(q, "code_challenge").is_some() && param(q, "code_challenge_method") != Some("S256") {
        return fail(
            501491,
            "Invalid code_challenge_method: S256 is the method to use.",
        );
    }
    Ok(())
}

/// The names the authorize request carries through the page.
const AUTHORIZE_PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "domain_hint",
    "prompt",
];

fn authorize_page(shared: &Shared, tenant: &str, q: &QueryParams, error: Option<&str>) -> Answer {
    if let Err(answer) = check_authorize(shared, tenant, q) {
        return answer;
    }
    let hidden: String = AUTHORIZE_PARAMS
        .iter()
        .filter(|n| **n != "login_hint")
        .filter_map(|n| param(q, n).map(|v| (n, v)))
        .map(|(n, v)| {
            format!(
                "<input type=\"hidden\" name=\"{n}\" value=\"{}\">",
                html_escape(v)
            )
        })
        .collect();
    let hint = html_escape(param(q, "login_hint").unwrap_or_default());
    let error = error
        .map(|e| format!("<p role=\"alert\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Sign in",
        &format!(
            "{error}<form method=\"post\" action=\"/{tenant}/oauth2/v2.0/authorize\">{hidden}\
             <label for=\"username\">Username</label> \
             <input id=\"username\" name=\"username\" type=\"email\" autocomplete=\"username\" value=\"{hint}\">\
             <button type=\"submit\" name=\"action\" value=\"sign_in\">Sign in</button> \
             <button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button></form>",
            tenant = html_escape(tenant),
        ),
    )
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{q}")
}

fn authorize_post(shared: &Shared, tenant: &str, form: &QueryParams) -> Answer {
    if let Err(answer) = check_authorize(shared, tenant, form) {
        return answer;
    }
    let redirect_uri = param(form, "redirect_uri").unwrap_or_default().to_string();
    let state_param = param(form, "state").unwrap_or_default().to_string();
    if param(form, "action") == Some("cancel") {
        return redirect(with_query(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "AADSTS65004: User declined to consent to access the app.",
                ),
                ("state", &state_param),
            ],
        ));
    }
    let username = param(form, "username")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut state = lock(&shared.sign_in);
    let tenant_lc = tenant.to_ascii_lowercase();
    let user = state
        .users
        .iter()
        .find(|u| {
            u.username.eq_ignore_ascii_case(&username)
                && (matches!(tenant_lc.as_str(), "organizations" | "common")
                    || u.tenant_id == tenant_lc)
        })
        .cloned();
    let Some(user) = user else {
        drop(state);
        return authorize_page(
            shared,
            tenant,
            form,
            Some(&format!("AADSTS50034: The user account {username} does not exist in the directory. To sign into this application, the account must be added to the directory.")),
        );
    };
    let code = format!("1.{}", random_token(48));
    state
        .codes
        .retain(|_, g| g.issued.elapsed() < CODE_LIFETIME * 2);
    state.codes.insert(
        code.clone(),
        CodeGrant {
            user,
            client_id: param(form, "client_id").unwrap_or_default().to_string(),
            redirect_uri: redirect_uri.clone(),
            challenge: param(form, "code_challenge").map(str::to_string),
            nonce: param(form, "nonce").map(str::to_string),
            issued: Instant::now(),
            redeemed: false,
        },
    );
    redirect(with_query(
        &redirect_uri,
        &[
            ("code", code.as_str()),
            ("state", state_param.as_str()),
            ("session_state", &new_guid()),
        ],
    ))
}

/// `POST /{tenant}/oauth2/v2.0/token` with `grant_type=authorization_code`.
pub(crate) fn redeem_code(shared: &Shared, form: &QueryParams) -> ApiResponse {
    let get = |k: &str| param(form, k);
    let client_id = get("client_id").unwrap_or_default();
    if !client_id.eq_ignore_ascii_case(SIGN_IN_CLIENT_ID) {
        return sts_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    }
    if let Err(e) = authenticate_client(shared, form) {
        return e;
    }
    let Some(code) = get("code") else {
        return sts_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code'.",
        );
    };
    let mut state = lock(&shared.sign_in);
    let Some(grant) = state.codes.get_mut(code) else {
        return sts_error(
            400,
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        );
    };
    if grant.redeemed {
        return sts_error(
            400,
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        );
    }
    if grant.issued.elapsed() > CODE_LIFETIME {
        return sts_error(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        );
    }
    if !grant.client_id.eq_ignore_ascii_case(client_id)
        || get("redirect_uri") != Some(grant.redirect_uri.as_str())
    {
        return sts_error(
            400,
            "invalid_grant",
            500117,
            "The reply uri specified in the request isn't matching the reply uri used to acquire the authorization code.",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = get("code_verifier").unwrap_or_default();
        if b64url(&Sha256::digest(verifier.as_bytes())) != *challenge {
            return sts_error(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
    }
    // Redeemed on the first attempt that gets this far, as Entra does: a second redemption
    // of the same code fails even if the first one's answer was lost.
    grant.redeemed = true;
    let grant = grant.clone();
    let forgery = state.forgery.take();
    let id_token = id_token(shared, &mut state, &grant, forgery);
    drop(state);
    let (access_token, _) = crate::auth::issue(
        shared,
        "00000003-0000-0000-c000-000000000000",
        Duration::from_secs(3599),
    );
    ApiResponse::json(
        200,
        json!({
            "token_type": "Bearer",
            "scope": "openid profile email",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access_token,
            "id_token": id_token,
        }),
    )
    .with_header("Cache-Control", "no-store, no-cache")
}

/// The client assertion must be a managed identity token the simulator issued for
/// `api://AzureADTokenExchange`, and the app registration must trust that identity.
fn authenticate_client(shared: &Shared, form: &QueryParams) -> Result<(), ApiResponse> {
    let assertion_type = param(form, "client_assertion_type");
    let assertion = param(form, "client_assertion");
    let (Some(kind), Some(assertion)) = (assertion_type, assertion) else {
        return Err(sts_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err(sts_error(
            401,
            "invalid_client",
            7000219,
            "'client_assertion_type' must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
        ));
    }
    let known = lock(&shared.tokens).get(assertion).cloned();
    let Some(info) = known else {
        return Err(sts_error(
            401,
            "invalid_client",
            700211,
            "No matching federated identity record found for presented assertion issuer.",
        ));
    };
    if info.expires <= Instant::now() {
        return Err(sts_error(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    let trusted = lock(&shared.sign_in).federated_credential;
    if info.audience != TOKEN_EXCHANGE_AUDIENCE || !trusted {
        return Err(sts_error(
            401,
            "invalid_client",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{IDENTITY_OBJECT_ID}'. Assertion Audience: '{}'.",
                issuer(shared, &shared.tenant_id),
                info.audience
            ),
        ));
    }
    Ok(())
}

fn id_token(
    shared: &Shared,
    state: &mut SignInState,
    grant: &CodeGrant,
    forgery: Option<IdTokenForgery>,
) -> String {
    let user = &grant.user;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let iat = if forgery == Some(IdTokenForgery::Expired) {
        now - 2 * ID_TOKEN_LIFETIME
    } else {
        now
    };
    let iss_tenant = match &forgery {
        Some(IdTokenForgery::IssuerTenant { tenant_id }) => tenant_id.clone(),
        _ => user.tenant_id.clone(),
    };
    let aud = match &forgery {
        Some(IdTokenForgery::Audience { value }) => value.clone(),
        _ => grant.client_id.clone(),
    };
    let mut claims = json!({
        "aud": aud,
        "iss": issuer(shared, &iss_tenant),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ID_TOKEN_LIFETIME,
        "name": user.name,
        "oid": user.object_id,
        "preferred_username": user.username,
        "rh": format!("0.{}", random_token(24)),
        "sid": new_guid(),
        // Pairwise: the same person has another `sub` in every app.
        "sub": b64url(&Sha256::digest(format!("{}:{}", user.object_id, grant.client_id).as_bytes())[..24]),
        "tid": user.tenant_id,
        "uti": random_token(16),
        "ver": "2.0",
    });
    match &forgery {
        Some(IdTokenForgery::Nonce { value }) => claims["nonce"] = json!(value),
        _ => {
            if let Some(n) = &grant.nonce {
                claims["nonce"] = json!(n);
            }
        }
    }
    if let Some(email) = &user.email {
        claims["email"] = json!(email);
        claims["xms_edov"] = json!(user.email_domain_verified);
    }
    if state.amr {
        claims["amr"] = if user.mfa {
            json!(["pwd", "mfa"])
        } else {
            json!(["pwd"])
        };
    }
    let payload = b64url(claims.to_string().as_bytes());
    let active = state.active_key();
    let active_kid = active.kid.clone();
    let active_pair = active.pair.clone();
    let rsa = |kid: &str, pair: &RsaKeyPair| {
        let header = b64url(
            json!({"typ": "JWT", "alg": "RS256", "kid": kid})
                .to_string()
                .as_bytes(),
        );
        let signed = format!("{header}.{payload}");
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .expect("RSA signing works");
        format!("{signed}.{}", b64url(&sig))
    };
    match forgery {
        Some(IdTokenForgery::AlgNone) => {
            let header = b64url(br#"{"typ":"JWT","alg":"none"}"#);
            format!("{header}.{payload}.")
        }
        Some(IdTokenForgery::WrongKey) => {
            let stranger = new_key();
            rsa(&active_kid, &stranger.pair)
        }
        Some(IdTokenForgery::Hs256WithPublicKey) => {
            let header = b64url(
                json!({"typ": "JWT", "alg": "HS256", "kid": active_kid})
                    .to_string()
                    .as_bytes(),
            );
            let signed = format!("{header}.{payload}");
            let secret = b64url(
                active_pair
                    .public_key()
                    .modulus()
                    .big_endian_without_leading_zero(),
            );
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
            mac.update(signed.as_bytes());
            format!("{signed}.{}", b64url(&mac.finalize().into_bytes()))
        }
        Some(IdTokenForgery::SignedWith { kid }) => match state.key(&kid) {
            Some(k) => rsa(&kid, &k.pair.clone()),
            None => rsa(&active_kid, &active_pair),
        },
        _ => rsa(&active_kid, &active_pair),
    }
}
