//! The token endpoints (client credentials, App Service managed identity,
//! IMDS) and the bearer check in front of every Graph call.
//!
//! Tokens are JWT-shaped but unsigned: clients must treat them as opaque, and
//! the simulator only looks them up in its own table. The managed identity
//! answer follows what azure_identity 1.x `ManagedIdentityCredential` expects
//! for App Service: `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...`
//! with `X-IDENTITY-HEADER`, answered with `expires_on` as a *string* of Unix seconds.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::errors::{ApiResponse, GraphError};
use crate::odata::QueryParams;
use crate::permissions::Caller;
use crate::shared::{lock, Shared, TokenInfo};
use crate::types::{CLIENT_ID, CLIENT_SECRET, IDENTITY_HEADER, IDENTITY_OBJECT_ID, TENANT_DOMAIN};
use crate::util::{b64url, new_guid, random_token};

pub(crate) const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Microsoft Graph's well-known application id, also valid as a resource.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Client-credential tokens last an hour, as Entra's do.
const APP_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
/// Managed identity tokens last about a day.
const MSI_TOKEN_LIFETIME: Duration = Duration::from_secs(86_399);

fn is_graph_resource(resource: &str) -> bool {
    let r = resource.trim_end_matches('/');
    r.eq_ignore_ascii_case(GRAPH_RESOURCE) || r.eq_ignore_ascii_case(GRAPH_APP_ID)
}

/// Issues an app-only token for `audience` and remembers it: the app's Graph permissions at
/// this moment become its `roles`, as Entra fixes them when it issues a token. Returns the token
/// and its expiry as Unix seconds.
pub(crate) fn issue(shared: &Shared, audience: &str, lifetime: Duration) -> (String, i64) {
    let roles = shared.dir().app_permissions();
    let mut claims = json!({
        "appid": CLIENT_ID,
        "idtyp": "app",
        "oid": IDENTITY_OBJECT_ID,
        "sub": IDENTITY_OBJECT_ID,
    });
    // Entra leaves the claim out when the app holds no application permission.
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    remember(shared, audience, lifetime, claims, Caller::App(roles))
}

/// A delegated token of a tenant administrator, as `az account get-access-token` gives an
/// admin signed in with the Azure CLI: `scp` instead of `roles`.
pub(crate) fn issue_admin(shared: &Shared, lifetime: Duration) -> (String, i64) {
    let claims = json!({
        "appid": AZURE_CLI_APP_ID,
        "idtyp": "user",
        "oid": ADMIN_OBJECT_ID,
        "sub": ADMIN_OBJECT_ID,
        "upn": format!("admin@{TENANT_DOMAIN}"),
        "scp": "Application.ReadWrite.All AuditLog.Read.All Directory.AccessAsUser.All Group.ReadWrite.All Policy.Read.All User.ReadWrite.All",
        "wids": ["62e90394-69f5-4237-9190-012177145e10"],
    });
    remember(shared, GRAPH_RESOURCE, lifetime, claims, Caller::Admin)
}

/// The Azure CLI's well-known application id.
const AZURE_CLI_APP_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// The object id of the simulated administrator who signs in with the Azure CLI.
const ADMIN_OBJECT_ID: &str = "a11ce000-0000-4000-8000-00000000ad01";

fn remember(
    shared: &Shared,
    audience: &str,
    lifetime: Duration,
    mut claims: Value,
    caller: Caller,
) -> (String, i64) {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let exp = now + lifetime.as_secs() as i64;
    let header = b64url(br#"{"typ":"JWT","alg":"none"}"#);
    claims["aud"] = json!(audience);
    claims["iss"] = json!(format!("https://sts.windows.net/{}/", shared.tenant_id));
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now);
    claims["exp"] = json!(exp);
    claims["tid"] = json!(shared.tenant_id);
    claims["uti"] = json!(random_token(12));
    let token = format!(
        "{header}.{}.{}",
        b64url(claims.to_string().as_bytes()),
        random_token(32)
    );
    let mut tokens = lock(&shared.tokens);
    // Keep the table from growing without bound in long benchmark runs.
    if tokens.len() > 10_000 {
        let now = Instant::now();
        tokens.retain(|_, t| t.expires > now);
    }
    tokens.insert(
        token.clone(),
        TokenInfo {
            expires: Instant::now() + lifetime,
            audience: audience.to_string(),
            caller,
        },
    );
    (token, exp)
}

/// Makes every token issued so far expired (to test a client's refresh path).
pub(crate) fn expire_all(shared: &Shared) {
    let past = Instant::now();
    for t in lock(&shared.tokens).values_mut() {
        t.expires = past;
    }
}

fn invalid_token(message: &str) -> GraphError {
    GraphError::new(401, "InvalidAuthenticationToken", message)
}

/// The check Graph's gateway does before anything else; the caller, when the token is good.
pub(crate) fn check_bearer(
    shared: &Shared,
    authorization: Option<&str>,
) -> Result<Caller, GraphError> {
    let token = authorization
        .and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .unwrap_or("");
    if token.is_empty() {
        return Err(invalid_token("Access token is empty."));
    }
    let tokens = lock(&shared.tokens);
    let Some(info) = tokens.get(token) else {
        return Err(invalid_token(
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ));
    };
    if info.expires <= Instant::now() {
        return Err(invalid_token(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    if !is_graph_resource(&info.audience) {
        return Err(invalid_token(
            "Access token validation failure. Invalid audience.",
        ));
    }
    Ok(info.caller.clone())
}

/// An Entra ID (AADSTS) error answer.
pub(crate) fn sts_error(status: u16, error: &str, code: u32, description: &str) -> ApiResponse {
    let trace = new_guid();
    let corr = new_guid();
    let ts = crate::util::inner_error_date(OffsetDateTime::now_utc());
    ApiResponse::json(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}Z"
            ),
            "error_codes": [code],
            "timestamp": format!("{ts}Z"),
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
    .without_odata_content_type()
}

impl ApiResponse {
    fn without_odata_content_type(mut self) -> Self {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        self.headers.push((
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        ));
        self
    }
}

/// `POST {authority}/{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`.
pub(crate) fn client_credentials(shared: &Shared, tenant: &str, body: &[u8]) -> ApiResponse {
    let form = QueryParams::parse(&String::from_utf8_lossy(body));
    let get = |k: &str| form.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !tenant.eq_ignore_ascii_case(&shared.tenant_id)
        && !tenant.eq_ignore_ascii_case(TENANT_DOMAIN)
    {
        return sts_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    let missing = |p: &str| {
        sts_error(
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{p}'."),
        )
    };
    let Some(grant) = get("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return sts_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = get("client_id") else {
        return missing("client_id");
    };
    if !client_id.eq_ignore_ascii_case(CLIENT_ID) {
        return sts_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", shared.tenant_id),
        );
    }
    let Some(secret) = get("client_secret") else {
        return sts_error(
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        );
    };
    if secret != CLIENT_SECRET {
        return sts_error(
            401,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{CLIENT_ID}'."),
        );
    }
    let Some(scope) = get("scope") else {
        return missing("scope");
    };
    let Some(resource) = scope
        .split_whitespace()
        .next()
        .and_then(|s| s.strip_suffix("/.default"))
    else {
        return sts_error(
            400,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        );
    };
    let audience = if is_graph_resource(resource) {
        GRAPH_RESOURCE
    } else {
        resource
    };
    let (token, _) = issue(shared, audience, APP_TOKEN_LIFETIME);
    let secs = APP_TOKEN_LIFETIME.as_secs();
    ApiResponse::json(
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": secs,
            "ext_expires_in": secs,
            "access_token": token,
        }),
    )
    .without_odata_content_type()
}

fn msi_error(status: u16, message: &str) -> ApiResponse {
    ApiResponse::json(
        status,
        json!({"statusCode": status, "message": message, "correlationId": new_guid()}),
    )
    .without_odata_content_type()
}

/// The managed identity endpoints. `imds` selects the VM flavour
/// (`Metadata: true`, api-version 2018-02-01) over App Service's.
pub(crate) fn managed_identity(
    shared: &Shared,
    query: &QueryParams,
    header: impl Fn(&str) -> Option<String>,
    imds: bool,
) -> ApiResponse {
    let q = |k: &str| {
        query
            .0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    if imds {
        if !header("metadata").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return ApiResponse::json(
                400,
                json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
            )
            .without_odata_content_type();
        }
    } else {
        match header("x-identity-header") {
            None => return msi_error(400, "X-IDENTITY-HEADER is missing from the request."),
            Some(v) if v != IDENTITY_HEADER => {
                return msi_error(401, "The X-IDENTITY-HEADER value is not valid.")
            }
            Some(_) => {}
        }
    }
    let api_ok = match q("api-version") {
        Some(v) if imds => v == "2018-02-01" || v == "2019-08-01",
        Some(v) => v == "2019-08-01",
        None => false,
    };
    if !api_ok {
        return msi_error(
            400,
            "The api-version parameter is missing or not supported.",
        );
    }
    let Some(resource) = q("resource").filter(|r| !r.is_empty()) else {
        return msi_error(400, "The resource parameter is required.");
    };
    // One identity: the simulator's app. Asking for another one is what
    // "identity not assigned to this resource" looks like.
    for key in [
        "client_id",
        "object_id",
        "msi_res_id",
        "mi_res_id",
        "principal_id",
    ] {
        if let Some(v) = q(key) {
            if !(key == "client_id" && v.eq_ignore_ascii_case(CLIENT_ID)) {
                return msi_error(
                    400,
                    &format!("No managed identity matches the specified {key} '{v}'."),
                );
            }
        }
    }
    let audience = if is_graph_resource(resource) {
        GRAPH_RESOURCE
    } else {
        resource
    };
    let (token, exp) = issue(shared, audience, MSI_TOKEN_LIFETIME);
    let mut body = json!({
        "access_token": token,
        "expires_on": exp.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": CLIENT_ID,
    });
    if imds {
        body["expires_in"] = Value::String(MSI_TOKEN_LIFETIME.as_secs().to_string());
        body["not_before"] = Value::String((exp - MSI_TOKEN_LIFETIME.as_secs() as i64).to_string());
    }
    ApiResponse::json(200, body).without_odata_content_type()
}
