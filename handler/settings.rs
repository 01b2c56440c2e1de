//! Typed settings, read once from the app settings (environment variables).
//!
//! Azure Functions hands every app setting to the handler as an environment variable, and the
//! local dev loop and the tests do the same, so this is the one place that knows setting names.
//! Parsing is pure (it takes an [`Environment`], not the process environment) so it can be
//! unit-tested, and a bad value stops start-up with one line naming the setting and what is
//! expected, never with a backtrace. Secrets are never echoed back in those lines.
//!
//! Sections are parsed separately so the command line can work with storage alone
//! (`handler policy list` needs no SMTP server or signing key).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::policy::Language;
use crate::core::token::SigningKeys;

/// A snapshot of name/value settings: the process environment, or a map in tests.
#[derive(Clone, Debug, Default)]
pub struct Environment(HashMap<String, String>);

impl Environment {
    pub fn from_process() -> Self {
        Environment(std::env::vars().collect())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Environment(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// A value that is present and not blank. App Service keeps settings that an admin
    /// cleared as empty strings; they mean "not set".
    ///
    /// A value that is still a Key Vault reference (`@Microsoft.KeyVault(...)`) is an error:
    /// the platform hands the literal reference over when it could not read the secret (most
    /// often while a new role assignment propagates), and taking it as the value would make
    /// the portal sign with, or log in with, the reference's text.
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, SettingError> {
        let value = self.raw(name);
        match value.and_then(KeyVaultReference::parse) {
            Some(reference) => Err(reference.unresolved(name)),
            None => Ok(value),
        }
    }

    /// The value as given, Key Vault reference or not (blank still counts as unset).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Every name and non-blank value, sorted by name.
    pub fn entries(&self) -> Vec<(&str, &str)> {
        let mut all: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.trim()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        all.sort_unstable();
        all
    }

    /// The same settings with some replaced or added.
    pub fn overlay<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut map = self.0.clone();
        map.extend(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Environment(map)
    }
}

/// An app setting written as a Key Vault reference, in either of the forms App Service takes:
/// `@Microsoft.KeyVault(SecretUri=https://VAULT.vault.azure.net/secrets/NAME[/VERSION])` or
/// `@Microsoft.KeyVault(VaultName=VAULT;SecretName=NAME[;SecretVersion=VERSION])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultReference {
    pub vault: Option<String>,
    pub secret: Option<String>,
}

impl KeyVaultReference {
    pub fn parse(value: &str) -> Option<KeyVaultReference> {
        const PREFIX: &str = "@microsoft.keyvault(";
        let value = value.trim();
        if value.len() < PREFIX.len() || !value[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return None;
        }
        let inner = value[PREFIX.len()..].trim_end_matches(')');
        let mut reference = KeyVaultReference {
            vault: None,
            secret: None,
        };
        for part in inner.split(';') {
            let Some((key, val)) = part.split_once('=') else {
                continue;
            };
            let val = val.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "vaultname" => reference.vault = Some(val.to_string()),
                "secretname" => reference.secret = Some(val.to_string()),
                "secreturi" => {
                    if let Ok(uri) = url::Url::parse(val) {
                        reference.vault = uri
                            .host_str()
                            .and_then(|h| h.split('.').next())
                            .map(str::to_string);
                        let mut segments = uri.path_segments().into_iter().flatten();
                        if segments.next() == Some("secrets") {
                            reference.secret = segments
                                .next()
                                .filter(|s| !s.is_empty())
                                .map(str::to_string);
                        }
                    }
                }
                _ => {}
            }
        }
        Some(reference)
    }

    /// "secret smtp-password in vault kv-contoso" (or what of it the reference names).
    pub fn describe(&self) -> String {
        let secret = self.secret.as_deref().unwrap_or("(unnamed)");
        match &self.vault {
            Some(vault) => format!("secret {secret} in vault {vault}"),
            None => format!("secret {secret}"),
        }
    }

    fn unresolved(&self, name: &'static str) -> SettingError {
        invalid(
            name,
            format!(
                "its value, not an unresolved Key Vault reference ({}): the platform could not read the secret. \
                 Check that the Function App's managed identity has the Key Vault Secrets User role on that secret \
                 (a new role assignment takes a few minutes to apply) and that the secret exists, then restart the app",
                self.describe()
            ),
        )
    }
}

/// A setting that is missing or malformed. Display is the one line start-up prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub name: &'static str,
    pub expected: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting {}: expected {}", self.name, self.expected)
    }
}

impl std::error::Error for SettingError {}

fn invalid(name: &'static str, expected: impl Into<String>) -> SettingError {
    SettingError {
        name,
        expected: expected.into(),
    }
}

fn required<'a>(
    env: &'a Environment,
    name: &'static str,
    what: &str,
) -> Result<&'a str, SettingError> {
    env.get(name)?
        .ok_or_else(|| invalid(name, format!("{what} (it is not set)")))
}

fn parse_number<T: std::str::FromStr>(
    env: &Environment,
    name: &'static str,
    default: T,
    what: &str,
) -> Result<T, SettingError> {
    match env.get(name)? {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(name, format!("{what}, got {v:?}"))),
    }
}

fn parse_bool(env: &Environment, name: &'static str, default: bool) -> Result<bool, SettingError> {
    match env.get(name)?.map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(v) => Err(invalid(name, format!("true or false, got {v:?}"))),
    }
}

fn parse_url(
    env: &Environment,
    name: &'static str,
    default: Option<&str>,
) -> Result<url::Url, SettingError> {
    let raw = match (env.get(name)?, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d,
        (None, None) => return Err(invalid(name, "an absolute http(s) URL (it is not set)")),
    };
    let parsed = url::Url::parse(raw.trim_end_matches('/'))
        .map_err(|_| invalid(name, format!("an absolute http(s) URL, got {raw:?}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid(
            name,
            format!("an absolute http(s) URL, got {raw:?}"),
        ));
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(invalid(
            name,
            format!("an https URL (plain http is only accepted for localhost), got {raw:?}"),
        ));
    }
    Ok(parsed)
}

fn is_loopback(url: &url::Url) -> bool {
    matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

// ---------------------------------------------------------------------------------------------
// Storage

/// Where the portal's tables live and how it authenticates to them.
#[derive(Clone, Debug)]
pub struct StorageSettings {
    pub account: String,
    /// The table service endpoint, e.g. `https://acct.table.core.windows.net` or Azurite's
    /// path-style `http://127.0.0.1:10002/devstoreaccount1`.
    pub table_endpoint: url::Url,
    pub auth: StorageAuth,
    /// Prefix of the portal's table names, so several portals (or test runs) can share one
    /// account without seeing each other's data.
    pub table_prefix: String,
}

#[derive(Clone)]
pub enum StorageAuth {
    SharedKey(String),
    /// Entra ID through the same credential as Graph (managed identity in Azure).
    ManagedIdentity,
}

impl fmt::Debug for StorageAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageAuth::SharedKey(_) => f.write_str("SharedKey(..)"),
            StorageAuth::ManagedIdentity => f.write_str("ManagedIdentity"),
        }
    }
}

/// Azurite's well-known development account (public, documented by Microsoft).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl StorageSettings {
    pub fn from_env(env: &Environment) -> Result<Self, SettingError> {
        let table_prefix = env
            .get("PORTAL_TABLE_PREFIX")?
            .unwrap_or("portal")
            .to_string();
        if !(1..=40).contains(&table_prefix.len())
            || !table_prefix.starts_with(|c: char| c.is_ascii_alphabetic())
            || !table_prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "PORTAL_TABLE_PREFIX",
                "1 to 40 letters and digits, starting with a letter",
            ));
        }
        // A table endpoint URL alone means: authenticate with Entra ID (managed identity),
        // which is what production should use so no account key sits in app settings.
        if let Some(endpoint) = env.get("PORTAL_TABLE_ENDPOINT")? {
            let url = parse_url(env, "PORTAL_TABLE_ENDPOINT", None)?;
            let account = account_from_endpoint(&url).ok_or_else(|| {
                invalid(
                    "PORTAL_TABLE_ENDPOINT",
                    format!("a table endpoint like https://ACCOUNT.table.core.windows.net, got {endpoint:?}"),
                )
            })?;
            return Ok(StorageSettings {
                account,
                table_endpoint: url,
                auth: StorageAuth::ManagedIdentity,
                table_prefix,
            });
        }
        let (name, raw) = match (env.get("PORTAL_STORAGE")?, env.get("AzureWebJobsStorage")?) {
            (Some(v), _) => ("PORTAL_STORAGE", v),
            (None, Some(v)) => ("AzureWebJobsStorage", v),
            (None, None) => {
                return Err(invalid(
                    "PORTAL_STORAGE",
                    "a storage connection string (or AzureWebJobsStorage, or PORTAL_TABLE_ENDPOINT for managed identity); it is not set",
                ))
            }
        };
        let (account, table_endpoint, key) =
            parse_connection_string(raw).map_err(|why| invalid(name, why))?;
        Ok(StorageSettings {
            account,
            table_endpoint,
            auth: StorageAuth::SharedKey(key),
            table_prefix,
        })
    }
}

fn account_from_endpoint(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    if is_loopback(url) {
        // Azurite is path-style: the account is the first path segment.
        return url
            .path_segments()?
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    host.split('.')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Parses the connection-string forms an admin meets: `UseDevelopmentStorage=true`, the
/// portal's `AccountName=..;AccountKey=..;EndpointSuffix=..` and explicit `TableEndpoint=..`.
/// Returns account, table endpoint and key. The error never contains the key.
pub fn parse_connection_string(raw: &str) -> Result<(String, url::Url, String), String> {
    let mut parts: HashMap<String, String> = HashMap::new();
    for piece in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = piece
            .split_once('=')
            .ok_or("a connection string of Key=Value pairs separated by ';'")?;
        parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    if parts
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        let proxy = parts
            .get("developmentstorageproxyuri")
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1");
        let endpoint = url::Url::parse(&format!(
            "{}:10002/{DEV_ACCOUNT}",
            proxy.trim_end_matches('/')
        ))
        .map_err(|_| "DevelopmentStorageProxyUri to be a URL".to_string())?;
        return Ok((DEV_ACCOUNT.into(), endpoint, DEV_ACCOUNT_KEY.into()));
    }
    let account = parts
        .get("accountname")
        .cloned()
        .ok_or("AccountName=... in the connection string")?;
    let key = parts
        .get("accountkey")
        .cloned()
        .ok_or("AccountKey=... in the connection string (for keyless access set PORTAL_TABLE_ENDPOINT instead)")?;
    if base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &key).is_err() {
        return Err("AccountKey to be base64".into());
    }
    let endpoint = match parts.get("tableendpoint") {
        Some(e) => e.clone(),
        None => {
            let protocol = parts
                .get("defaultendpointsprotocol")
                .map(String::as_str)
                .unwrap_or("https");
            let suffix = parts
                .get("endpointsuffix")
                .map(String::as_str)
                .unwrap_or("core.windows.net");
            format!("{protocol}://{account}.table.{suffix}")
        }
    };
    let endpoint = url::Url::parse(endpoint.trim_end_matches('/'))
        .map_err(|_| "TableEndpoint to be an absolute URL".to_string())?;
    Ok((account, endpoint, key))
}

// ---------------------------------------------------------------------------------------------
// Microsoft Graph

#[derive(Clone, Debug)]
pub struct GraphSettings {
    /// `https://graph.microsoft.com/v1.0` in production; the simulator locally.
    pub base_url: url::Url,
    pub scope: String,
    pub credential: GraphCredential,
    /// Whether the tenant has Entra ID P1 and the app AuditLog.Read.All, so sign-in activity
    /// can be read. When false the inactivity rule of the cleanup is skipped.
    pub sign_in_activity: bool,
}

#[derive(Clone)]
pub enum GraphCredential {
    /// The Function App's managed identity (App Service protocol: IDENTITY_ENDPOINT and
    /// IDENTITY_HEADER, set by the platform). `client_id` selects a user-assigned identity.
    ManagedIdentity { client_id: Option<String> },
    /// The admin's own `az login` session: for the command line on an admin's machine
    /// (Table Data Contributor on the account, and Graph permissions through the CLI's app).
    AzureCli,
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: String,
        authority_host: url::Url,
    },
}

impl fmt::Debug for GraphCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphCredential::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            GraphCredential::AzureCli => f.write_str("AzureCli"),
            GraphCredential::ClientSecret {
                tenant_id,
                client_id,
                authority_host,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("authority_host", &authority_host.as_str())
                .finish_non_exhaustive(),
        }
    }
}

impl GraphSettings {
    pub fn from_env(env: &Environment) -> Result<Self, SettingError> {
        let base_url = parse_url(
            env,
            "GRAPH_BASE_URL",
            Some("https://graph.microsoft.com/v1.0"),
        )?;
        let scope = env
            .get("GRAPH_SCOPE")?
            .unwrap_or("https://graph.microsoft.com/.default")
            .to_string();
        let credential = match env.get("GRAPH_CREDENTIAL")?.unwrap_or("managed_identity") {
            "managed_identity" => GraphCredential::ManagedIdentity {
                client_id: env
                    .get("GRAPH_MANAGED_IDENTITY_CLIENT_ID")?
                    .map(str::to_string),
            },
            "azure_cli" => GraphCredential::AzureCli,
            "client_secret" => GraphCredential::ClientSecret {
                tenant_id: required(env, "GRAPH_TENANT_ID", "the directory (tenant) id")?
                    .to_string(),
                client_id: required(env, "GRAPH_CLIENT_ID", "the application (client) id")?
                    .to_string(),
                secret: required(env, "GRAPH_CLIENT_SECRET", "the client secret")?.to_string(),
                authority_host: parse_url(
                    env,
                    "GRAPH_AUTHORITY_HOST",
                    Some("https://login.microsoftonline.com"),
                )?,
            },
            other => {
                return Err(invalid(
                    "GRAPH_CREDENTIAL",
                    format!("managed_identity, client_secret or azure_cli, got {other:?}"),
                ))
            }
        };
        Ok(GraphSettings {
            base_url,
            scope,
            credential,
            sign_in_activity: parse_bool(env, "GRAPH_SIGN_IN_ACTIVITY", true)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Mail

#[derive(Clone)]
pub struct MailSettings {
    /// `smtp://host:port` (STARTTLS when offered), `smtp://host:port?tls=required`, or
    /// `smtps://host:465`. Credentials come from SMTP_USERNAME / SMTP_PASSWORD so the password
    /// can be a Key Vault reference of its own.
    pub smtp_url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From header, e.g. `Contoso Partner Access <no-reply@contoso.com>`.
    pub from: String,
    /// `SMTP_TIMEOUT_SECONDS` (15): how long one exchange with the mail server may take. A
    /// sender owns a mail it is sending for about twice this (see `core::outbox`).
    pub timeout: Duration,
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_url", &self.smtp_url)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl MailSettings {
    pub fn from_env(env: &Environment) -> Result<Self, SettingError> {
        let smtp_url = required(
            env,
            "SMTP_URL",
            "an SMTP URL like smtp://mail.contoso.com:587?tls=required",
        )?;
        let parsed = url::Url::parse(smtp_url).map_err(|_| {
            invalid(
                "SMTP_URL",
                "an SMTP URL like smtp://mail.contoso.com:587?tls=required",
            )
        })?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host().is_none() {
            return Err(invalid(
                "SMTP_URL",
                "an smtp:// or smtps:// URL with a host",
            ));
        }
        if !parsed.password().unwrap_or("").is_empty() {
            return Err(invalid(
                "SMTP_URL",
                "no password inside the URL: put it in SMTP_PASSWORD (a Key Vault reference in Azure)",
            ));
        }
        // Mail carries links that act (verify, decide) and the SMTP password: in clear text only
        // to this machine, or where an admin says so in as many words.
        let encrypted = parsed.scheme() == "smtps"
            || parsed
                .query_pairs()
                .any(|(k, v)| k == "tls" && v == "required");
        // An smtp: URL's host is opaque to the URL parser: an address is text to parse here.
        let host = parsed.host_str().unwrap_or("").trim_matches(['[', ']']);
        let local = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !encrypted && !local && !parse_bool(env, "SMTP_ALLOW_PLAINTEXT", false)? {
            return Err(invalid(
                "SMTP_URL",
                "TLS for a mail server that is not on this machine: smtps://host:465 or smtp://host:587?tls=required (plain or opportunistic SMTP sends links and the password readably; SMTP_ALLOW_PLAINTEXT=true allows it on purpose)",
            ));
        }
        let from = required(
            env,
            "MAIL_FROM",
            "a sender like Partner Access <no-reply@contoso.com>",
        )?;
        if from.contains(['\r', '\n']) || !from.contains('@') {
            return Err(invalid(
                "MAIL_FROM",
                "a sender like Partner Access <no-reply@contoso.com>",
            ));
        }
        let timeout: u64 = parse_number(
            env,
            "SMTP_TIMEOUT_SECONDS",
            15,
            "a number of seconds from 1 to 120",
        )?;
        if !(1..=120).contains(&timeout) {
            return Err(invalid(
                "SMTP_TIMEOUT_SECONDS",
                format!("a number of seconds from 1 to 120, got {timeout}"),
            ));
        }
        Ok(MailSettings {
            smtp_url: smtp_url.to_string(),
            username: env.get("SMTP_USERNAME")?.map(str::to_string),
            password: env.get("SMTP_PASSWORD")?.map(str::to_string),
            from: from.to_string(),
            timeout: Duration::from_secs(timeout),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The portal itself

#[derive(Clone, Debug)]
pub struct Branding {
    pub org_name: String,
    /// `#rrggbb`, validated so it can be placed in a style attribute safely.
    pub accent_color: String,
    pub logo_file: Option<PathBuf>,
    pub terms_url: Option<url::Url>,
    pub terms_text: Option<String>,
    pub mail_footer: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RateLimits {
    /// Sign-ups per client IP per hour.
    pub per_ip: u32,
    /// Sign-ups (and verification mails) per address per hour.
    pub per_address: u32,
    /// Sign-ups per email domain per hour.
    pub per_domain: u32,
}

#[derive(Clone, Debug)]
pub struct PortalSettings {
    /// The public address of the function app, e.g. `https://contoso-signup.azurewebsites.net`;
    /// every link in mail is built from it, never from a request's Host header (which an
    /// attacker controls).
    pub public_url: url::Url,
    pub signing_keys: SigningKeys,
    pub default_language: Language,
    pub branding: Branding,
    pub verification_hours: u32,
    pub limits: RateLimits,
    /// Approvers must be signed in through App Service Authentication, and be the approver the
    /// link names.
    pub approvers_must_sign_in: bool,
    pub policy_cache: Duration,
    /// `PORTAL_CLIENT_IP_HEADER`: a header a trusted proxy in front of the app writes with the
    /// client's address (Front Door's `X-Azure-ClientIP`). Unset, the client is the right-most
    /// `X-Forwarded-For` entry, the one the platform's own front end appended: every other
    /// header is the client's to invent.
    pub client_ip_header: Option<String>,
    /// `PORTAL_ASK_JOB_TITLE` (false): the form asks for a job title (optional to fill in),
    /// which goes into the guest's directory profile.
    pub ask_job_title: bool,
}

impl PortalSettings {
    pub fn from_env(env: &Environment) -> Result<Self, SettingError> {
        let public_url = parse_url(env, "PORTAL_PUBLIC_URL", None)?;
        let signing_keys = SigningKeys::parse(required(
            env,
            "PORTAL_SIGNING_KEYS",
            "signing keys as kid:base64secret[,kid:base64secret] (32+ random bytes each)",
        )?)
        .map_err(|why| invalid("PORTAL_SIGNING_KEYS", why))?;
        let default_language = match env.get("PORTAL_DEFAULT_LANGUAGE")? {
            None => Language::En,
            Some(v) => v
                .parse()
                .map_err(|_| invalid("PORTAL_DEFAULT_LANGUAGE", format!("en or sv, got {v:?}")))?,
        };
        let accent_color = env
            .get("PORTAL_ACCENT_COLOR")?
            .unwrap_or("#0f6cbd")
            .to_string();
        if !(accent_color.len() == 7
            && accent_color.starts_with('#')
            && accent_color[1..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(invalid(
                "PORTAL_ACCENT_COLOR",
                format!("a colour like #0f6cbd, got {accent_color:?}"),
            ));
        }
        let terms_url = match env.get("PORTAL_TERMS_URL")? {
            None => None,
            Some(_) => Some(parse_url(env, "PORTAL_TERMS_URL", None)?),
        };
        let branding = Branding {
            org_name: env
                .get("PORTAL_ORG_NAME")?
                .unwrap_or("Partner access")
                .to_string(),
            accent_color,
            logo_file: env.get("PORTAL_LOGO_FILE")?.map(PathBuf::from),
            terms_url,
            terms_text: env.get("PORTAL_TERMS_TEXT")?.map(str::to_string),
            mail_footer: env.get("PORTAL_MAIL_FOOTER")?.map(str::to_string),
        };
        Ok(PortalSettings {
            public_url,
            signing_keys,
            default_language,
            branding,
            verification_hours: parse_number(
                env,
                "PORTAL_VERIFICATION_HOURS",
                24,
                "a number of hours",
            )?,
            limits: RateLimits {
                per_ip: parse_number(env, "PORTAL_RATE_LIMIT_IP", 20, "sign-ups per IP per hour")?,
                per_address: parse_number(
                    env,
                    "PORTAL_RATE_LIMIT_ADDRESS",
                    3,
                    "sign-ups per address per hour",
                )?,
                per_domain: parse_number(
                    env,
                    "PORTAL_RATE_LIMIT_DOMAIN",
                    100,
                    "sign-ups per domain per hour",
                )?,
            },
            approvers_must_sign_in: {
                let on = parse_bool(env, "PORTAL_APPROVERS_MUST_SIGN_IN", false)?;
                // The principal headers are the platform's only when its Authentication is
                // on; otherwise any client can send them, and this option would trust a forgery.
                let platform_auth = env
                    .get("WEBSITE_AUTH_ENABLED")?
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if on && !platform_auth {
                    return Err(invalid(
                        "PORTAL_APPROVERS_MUST_SIGN_IN",
                        "App Service Authentication to be on (WEBSITE_AUTH_ENABLED=True) when it is true: without it anyone can send the signed-in headers; turn Authentication on (the template does with approversMustSignIn) or set this to false",
                    ));
                }
                on
            },
            client_ip_header: match env.get("PORTAL_CLIENT_IP_HEADER")? {
                None => None,
                Some(h)
                    if !h.is_empty()
                        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                {
                    Some(h.to_ascii_lowercase())
                }
                Some(h) => {
                    return Err(invalid(
                        "PORTAL_CLIENT_IP_HEADER",
                        format!("a header name like X-Azure-ClientIP, got {h:?}"),
                    ))
                }
            },
            policy_cache: Duration::from_secs(parse_number(
                env,
                "PORTAL_POLICY_CACHE_SECONDS",
                30,
                "a number of seconds",
            )?),
            ask_job_title: parse_bool(env, "PORTAL_ASK_JOB_TITLE", false)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The cleanup timer

/// What the cleanup may do and how fast (see `crate::core::cleanup` for the lifecycle).
#[derive(Clone, Debug)]
pub struct CleanupSettings {
    /// The lifecycle's waiting times: `CLEANUP_UNREDEEMED_REMINDER_DAYS` (14),
    /// `CLEANUP_UNREDEEMED_REMOVE_DAYS` (14), `CLEANUP_INACTIVE_DAYS` (0 = off),
    /// `CLEANUP_WARNING_DAYS` (7), `CLEANUP_GRACE_DAYS` (14).
    pub rules: crate::core::cleanup::Rules,
    /// `CLEANUP_SCOPE`: `portal` (default, only guests this portal created) or `all_guests`.
    pub scope: crate::core::cleanup::Scope,
    /// `CLEANUP_EXCLUSION_GROUP_ID`: members of this group are never touched.
    pub exclusion_group_id: Option<String>,
    /// `CLEANUP_MAX_REMOVALS` (50): more planned removals (disable + delete) in one run stop
    /// the run before any removal.
    pub max_removals: u32,
    /// `CLEANUP_MAX_REMOVAL_PERCENT` (10): likewise, as a share of the guests in scope.
    pub max_removal_percent: u32,
    /// `CLEANUP_DRY_RUN` (false): report the plan, change nothing.
    pub dry_run: bool,
    /// `CLEANUP_TIME_BUDGET_SECONDS` (480): a run checkpoints and stops after this long, well
    /// inside the Functions host's 10-minute limit; the next run resumes.
    pub time_budget: Duration,
    /// `CLEANUP_RETENTION_DAYS` (90): personal data of closed requests is purged after this.
    pub retention_days: u32,
    /// `CLEANUP_CONCURRENCY` (4): `$batch` calls in flight at once. Graph's write quota, not
    /// this, should bound the rate; more than a few only earns more 429s.
    pub concurrency: usize,
    /// `CLEANUP_DIRECTORY_INTERVAL_MINUTES` (60): the timer fires every few minutes
    /// (`CLEANUP_SCHEDULE`) to send mail and move requests along; the directory cleanup and
    /// the purges run at most this often.
    pub directory_interval: time::Duration,
    /// `MAIL_RETENTION_DAYS` (7): sent mail stays in the outbox this long (dead mail four times
    /// as long, for an admin to see), then it goes with the addresses and names it holds.
    pub mail_retention_days: u32,
    /// `DEMAND_RETENTION_DAYS` (365): a domain nobody tried to sign up from for this long
    /// leaves `handler demand`.
    pub demand_retention_days: u32,
    /// `AUDIT_RETENTION_DAYS` (400): audit entries older than this are deleted. The default
    /// keeps a year and a month, so a yearly review still finds last year's trail.
    pub audit_retention_days: u32,
    /// `REVIEW_ANSWER_DAYS` (14): how long sponsors have to answer an access review (at most
    /// half a policy's review interval); the review opens this long before its period ends.
    pub review_answer_days: u32,
    /// `REVIEW_REMINDER_DAYS` (7; 0: none): an unanswered review is reminded once this long
    /// after it opened.
    pub review_reminder_days: u32,
}

impl CleanupSettings {
    pub fn from_env(env: &Environment) -> Result<Self, SettingError> {
        use crate::core::cleanup::{Rules, Scope};
        let d = Rules::default();
        let days = |name: &'static str, default: u32| {
            let v: u32 = parse_number(env, name, default, "a whole number of days")?;
            if v > 3650 {
                return Err(invalid(name, format!("at most 3650 days, got {v}")));
            }
            Ok(v)
        };
        let rules = Rules {
            unredeemed_reminder_days: days(
                "CLEANUP_UNREDEEMED_REMINDER_DAYS",
                d.unredeemed_reminder_days,
            )?,
            unredeemed_remove_days: days(
                "CLEANUP_UNREDEEMED_REMOVE_DAYS",
                d.unredeemed_remove_days,
            )?,
            inactive_days: days("CLEANUP_INACTIVE_DAYS", d.inactive_days)?,
            warning_days: days("CLEANUP_WARNING_DAYS", d.warning_days)?,
            grace_days: days("CLEANUP_GRACE_DAYS", d.grace_days)?,
        };
        let scope = match env.get("CLEANUP_SCOPE")?.unwrap_or("portal") {
            "portal" => Scope::Portal,
            "all_guests" => Scope::AllGuests,
            other => {
                return Err(invalid(
                    "CLEANUP_SCOPE",
                    format!("portal or all_guests, got {other:?}"),
                ))
            }
        };
        // The id goes into a Graph URL path: only a GUID is accepted.
        let exclusion_group_id = match env.get("CLEANUP_EXCLUSION_GROUP_ID")? {
            None => None,
            Some(v) => Some(
                uuid::Uuid::parse_str(v)
                    .map_err(|_| {
                        invalid(
                            "CLEANUP_EXCLUSION_GROUP_ID",
                            format!("a group object id (GUID), got {v:?}"),
                        )
                    })?
                    .hyphenated()
                    .to_string(),
            ),
        };
        let max_removal_percent: u32 = parse_number(
            env,
            "CLEANUP_MAX_REMOVAL_PERCENT",
            10,
            "a percentage from 0 to 100",
        )?;
        if max_removal_percent > 100 {
            return Err(invalid(
                "CLEANUP_MAX_REMOVAL_PERCENT",
                format!("a percentage from 0 to 100, got {max_removal_percent}"),
            ));
        }
        let review_answer_days = days("REVIEW_ANSWER_DAYS", 14)?;
        if !(1..=90).contains(&review_answer_days) {
            return Err(invalid(
                "REVIEW_ANSWER_DAYS",
                format!("a number of days from 1 to 90, got {review_answer_days}"),
            ));
        }
        let review_reminder_days = days("REVIEW_REMINDER_DAYS", 7)?;
        if review_reminder_days >= review_answer_days {
            return Err(invalid(
                "REVIEW_REMINDER_DAYS",
                format!("fewer days than REVIEW_ANSWER_DAYS ({review_answer_days}), or 0 for no reminder, got {review_reminder_days}"),
            ));
        }
        let concurrency: usize = parse_number(
            env,
            "CLEANUP_CONCURRENCY",
            4,
            "a number of batches from 1 to 16",
        )?;
        if !(1..=16).contains(&concurrency) {
            return Err(invalid(
                "CLEANUP_CONCURRENCY",
                format!("a number of batches from 1 to 16, got {concurrency}"),
            ));
        }
        Ok(CleanupSettings {
            rules,
            scope,
            exclusion_group_id,
            max_removals: parse_number(
                env,
                "CLEANUP_MAX_REMOVALS",
                50,
                "a number of guests per run",
            )?,
            max_removal_percent,
            dry_run: parse_bool(env, "CLEANUP_DRY_RUN", false)?,
            time_budget: Duration::from_secs(parse_number(
                env,
                "CLEANUP_TIME_BUDGET_SECONDS",
                480,
                "a number of seconds (under the host's 600-second limit)",
            )?),
            retention_days: days("CLEANUP_RETENTION_DAYS", 90)?,
            concurrency,
            directory_interval: {
                let minutes: u32 = parse_number(
                    env,
                    "CLEANUP_DIRECTORY_INTERVAL_MINUTES",
                    60,
                    "a number of minutes from 1 to 1440",
                )?;
                if !(1..=1440).contains(&minutes) {
                    return Err(invalid(
                        "CLEANUP_DIRECTORY_INTERVAL_MINUTES",
                        format!("a number of minutes from 1 to 1440, got {minutes}"),
                    ));
                }
                time::Duration::minutes(i64::from(minutes))
            },
            mail_retention_days: days("MAIL_RETENTION_DAYS", 7)?.max(1),
            demand_retention_days: days("DEMAND_RETENTION_DAYS", 365)?.max(1),
            audit_retention_days: days("AUDIT_RETENTION_DAYS", 400)?.max(1),
            review_answer_days,
            review_reminder_days,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Logging and the host

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: what Application Insights and Log Analytics index.
    Json,
    /// Readable lines for a terminal.
    Text,
}

impl LogFormat {
    pub fn from_env(env: &Environment) -> Result<Self, SettingError> {
        match env.get("PORTAL_LOG_FORMAT")? {
            Some("json") => Ok(LogFormat::Json),
            Some("text") => Ok(LogFormat::Text),
            Some(other) => Err(invalid(
                "PORTAL_LOG_FORMAT",
                format!("json or text, got {other:?}"),
            )),
            // In Azure the platform sets WEBSITE_SITE_NAME; there JSON is what gets indexed.
            None if env.get("WEBSITE_SITE_NAME")?.is_some() => Ok(LogFormat::Json),
            None => Ok(LogFormat::Text),
        }
    }
}

/// The port the Functions host told us to listen on.
pub fn handler_port(env: &Environment) -> Result<u16, SettingError> {
    let (name, raw) = match (
        env.get("FUNCTIONS_CUSTOMHANDLER_PORT")?,
        env.get("FUNCTIONS_HTTPWORKER_PORT")?,
    ) {
        (Some(v), _) => ("FUNCTIONS_CUSTOMHANDLER_PORT", v),
        (None, Some(v)) => ("FUNCTIONS_HTTPWORKER_PORT", v),
        (None, None) => {
            return Err(invalid(
                "FUNCTIONS_CUSTOMHANDLER_PORT",
                "the port the Functions host assigns (set it yourself when running the handler by hand)",
            ))
        }
    };
    raw.parse()
        .map_err(|_| invalid(name, format!("a TCP port number, got {raw:?}")))
}

// ---------------------------------------------------------------------------------------------
// Partner sign-in (OpenID Connect)

/// Where partners sign in and as which app; absent when `SIGN_IN_CLIENT_ID` is not set (the
/// form then offers only the mailed link).
#[derive(Clone, Debug)]
pub struct SignInSettings {
    /// The multi-tenant app registration's application (client) id.
    pub client_id: String,
    /// `https://login.microsoftonline.com/organizations/v2.0`; its discovery document is
    /// `{authority}/.well-known/openid-configuration`.
    pub authority: url::Url,
    /// A user-assigned identity's client id for the client assertion (the same identity the
    /// portal uses for Graph); `None` is the system-assigned one.
    pub managed_identity_client_id: Option<String>,
}

impl SignInSettings {
    pub fn from_env(env: &Environment) -> Result<Option<Self>, SettingError> {
        let Some(client_id) = env.get("SIGN_IN_CLIENT_ID")? else {
            return Ok(None);
        };
        if uuid::Uuid::parse_str(client_id).is_err() {
            return Err(invalid(
                "SIGN_IN_CLIENT_ID",
                format!(
                    "the partner sign-in app's application (client) id, a GUID, got {client_id:?}"
                ),
            ));
        }
        Ok(Some(SignInSettings {
            client_id: client_id.to_ascii_lowercase(),
            authority: parse_url(
                env,
                "SIGN_IN_AUTHORITY",
                Some("https://login.microsoftonline.com/organizations/v2.0"),
            )?,
            managed_identity_client_id: env
                .get("GRAPH_MANAGED_IDENTITY_CLIENT_ID")?
                .map(str::to_string),
        }))
    }

    /// The portal's callback, registered as the app's redirect URI.
    pub fn redirect_uri(public_url: &url::Url) -> String {
        format!(
            "{}/api/signup/signed-in",
            public_url.as_str().trim_end_matches('/')
        )
    }
}

/// Everything the running portal needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub storage: StorageSettings,
    pub graph: GraphSettings,
    pub sign_in: Option<SignInSettings>,
    pub mail: MailSettings,
    pub portal: PortalSettings,
    pub cleanup: CleanupSettings,
}

impl Settings {
    pub fn from_env(env: &Environment) -> Result<Self, SettingError> {
        Ok(Settings {
            storage: StorageSettings::from_env(env)?,
            graph: GraphSettings::from_env(env)?,
            sign_in: SignInSettings::from_env(env)?,
            mail: MailSettings::from_env(env)?,
            portal: PortalSettings::from_env(env)?,
            cleanup: CleanupSettings::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_maps_to_azurite() {
        let (account, endpoint, key) =
            parse_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(account, DEV_ACCOUNT);
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:10002/devstoreaccount1");
        assert_eq!(key, DEV_ACCOUNT_KEY);
    }

    #[test]
    fn explicit_table_endpoint_wins_over_suffix() {
        let raw = format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:41234/{DEV_ACCOUNT};"
        );
        let (account, endpoint, _) = parse_connection_string(&raw).unwrap();
        assert_eq!(account, DEV_ACCOUNT);
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:41234/devstoreaccount1");
    }

    #[test]
    fn account_key_strings_build_the_public_endpoint() {
        let (account, endpoint, _) = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=contosoportal;AccountKey=aGVsbG8=;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(account, "contosoportal");
        assert_eq!(
            endpoint.as_str(),
            "https://contosoportal.table.core.windows.net/"
        );
    }

    #[test]
    fn connection_string_errors_never_echo_the_key() {
        let err =
            parse_connection_string("AccountName=a;AccountKey=not base64 secret!!").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        assert!(parse_connection_string("garbage").is_err());
    }

    #[test]
    fn managed_identity_storage_from_endpoint() {
        let env = Environment::from_pairs([(
            "PORTAL_TABLE_ENDPOINT",
            "https://contosoportal.table.core.windows.net",
        )]);
        let s = StorageSettings::from_env(&env).unwrap();
        assert_eq!(s.account, "contosoportal");
        assert!(matches!(s.auth, StorageAuth::ManagedIdentity));
    }

    #[test]
    fn missing_storage_names_the_setting() {
        let err = StorageSettings::from_env(&Environment::default()).unwrap_err();
        assert_eq!(err.name, "PORTAL_STORAGE");
        assert!(err
            .to_string()
            .starts_with("setting PORTAL_STORAGE: expected"));
    }

    #[test]
    fn bad_prefix_is_refused() {
        let env = Environment::from_pairs([
            ("PORTAL_STORAGE", "UseDevelopmentStorage=true"),
            ("PORTAL_TABLE_PREFIX", "9-bad"),
        ]);
        assert_eq!(
            StorageSettings::from_env(&env).unwrap_err().name,
            "PORTAL_TABLE_PREFIX"
        );
    }

    #[test]
    fn plain_http_is_only_for_loopback() {
        let env = Environment::from_pairs([("GRAPH_BASE_URL", "http://graph.example.com/v1.0")]);
        assert_eq!(
            GraphSettings::from_env(&env).unwrap_err().name,
            "GRAPH_BASE_URL"
        );
        let env = Environment::from_pairs([("GRAPH_BASE_URL", "http://127.0.0.1:7300/v1.0")]);
        assert!(GraphSettings::from_env(&env).is_ok());
    }

    #[test]
    fn client_secret_needs_its_three_values() {
        let env = Environment::from_pairs([
            ("GRAPH_CREDENTIAL", "client_secret"),
            ("GRAPH_TENANT_ID", "t"),
        ]);
        assert_eq!(
            GraphSettings::from_env(&env).unwrap_err().name,
            "GRAPH_CLIENT_ID"
        );
        let env = Environment::from_pairs([("GRAPH_CREDENTIAL", "certificate")]);
        assert_eq!(
            GraphSettings::from_env(&env).unwrap_err().name,
            "GRAPH_CREDENTIAL"
        );
    }

    #[test]
    fn smtp_password_in_url_is_refused() {
        let env = Environment::from_pairs([
            ("SMTP_URL", "smtp://user:hunter2@mail.example.com:587"),
            ("MAIL_FROM", "a@b.c"),
        ]);
        let err = MailSettings::from_env(&env).unwrap_err();
        assert_eq!(err.name, "SMTP_URL");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn blank_values_count_as_unset() {
        let env = Environment::from_pairs([
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "  "),
            ("FUNCTIONS_HTTPWORKER_PORT", "7071"),
        ]);
        assert_eq!(handler_port(&env).unwrap(), 7071);
        let env = Environment::from_pairs([("FUNCTIONS_CUSTOMHANDLER_PORT", "seventy")]);
        assert_eq!(
            handler_port(&env).unwrap_err().name,
            "FUNCTIONS_CUSTOMHANDLER_PORT"
        );
    }

    #[test]
    fn cleanup_defaults_are_the_documented_ones() {
        let c = CleanupSettings::from_env(&Environment::default()).unwrap();
        assert_eq!(c.rules, crate::core::cleanup::Rules::default());
        assert_eq!(c.scope, crate::core::cleanup::Scope::Portal);
        assert_eq!((c.max_removals, c.max_removal_percent), (50, 10));
        assert_eq!(c.time_budget, Duration::from_secs(480));
        assert_eq!(c.retention_days, 90);
        assert!(!c.dry_run && c.exclusion_group_id.is_none());
    }

    #[test]
    fn cleanup_settings_are_checked() {
        for (name, value) in [
            ("CLEANUP_SCOPE", "everyone"),
            ("CLEANUP_EXCLUSION_GROUP_ID", "../users"),
            ("CLEANUP_MAX_REMOVAL_PERCENT", "150"),
            ("CLEANUP_INACTIVE_DAYS", "-1"),
            ("CLEANUP_DRY_RUN", "maybe"),
            ("CLEANUP_CONCURRENCY", "0"),
        ] {
            let env = Environment::from_pairs([(name, value)]);
            assert_eq!(CleanupSettings::from_env(&env).unwrap_err().name, name);
        }
        let env = Environment::from_pairs([
            ("CLEANUP_SCOPE", "all_guests"),
            (
                "CLEANUP_EXCLUSION_GROUP_ID",
                "0F0E0D0C-0B0A-0908-0706-050403020100",
            ),
        ]);
        let c = CleanupSettings::from_env(&env).unwrap();
        assert_eq!(c.scope, crate::core::cleanup::Scope::AllGuests);
        assert_eq!(
            c.exclusion_group_id.as_deref(),
            Some("0f0e0d0c-0b0a-0908-0706-050403020100")
        );
    }

    #[test]
    fn key_vault_references_name_their_vault_and_secret() {
        for (value, vault, secret) in [
            (
                "@Microsoft.KeyVault(SecretUri=https://kv-signup-abc.vault.azure.net/secrets/smtp-password/)",
                Some("kv-signup-abc"),
                Some("smtp-password"),
            ),
            (
                "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/portal-signing-keys/0123abcd)",
                Some("kv-x"),
                Some("portal-signing-keys"),
            ),
            (
                "@Microsoft.KeyVault(VaultName=kv-y;SecretName=smtp-password;SecretVersion=9)",
                Some("kv-y"),
                Some("smtp-password"),
            ),
            ("  @microsoft.keyvault(SecretUri=not a url)", None, None),
        ] {
            let reference = KeyVaultReference::parse(value).expect(value);
            assert_eq!(reference.vault.as_deref(), vault, "{value}");
            assert_eq!(reference.secret.as_deref(), secret, "{value}");
        }
        assert_eq!(KeyVaultReference::parse("k1:abc"), None);
        assert_eq!(KeyVaultReference::parse("Microsoft.KeyVault(x)"), None);
    }

    #[test]
    fn an_unresolved_key_vault_reference_is_refused_by_name() {
        let reference =
            "@Microsoft.KeyVault(SecretUri=https://kv-a.vault.azure.net/secrets/smtp-password/)";
        let env = Environment::from_pairs([
            ("SMTP_URL", "smtp://mail.example.com:587?tls=required"),
            ("MAIL_FROM", "a@b.example"),
            ("SMTP_USERNAME", "portal"),
            ("SMTP_PASSWORD", reference),
        ]);
        let err = MailSettings::from_env(&env).unwrap_err();
        assert_eq!(err.name, "SMTP_PASSWORD");
        let line = err.to_string();
        assert!(line.contains("unresolved Key Vault reference"), "{line}");
        assert!(
            line.contains("secret smtp-password in vault kv-a"),
            "{line}"
        );
        assert!(line.contains("Key Vault Secrets User"), "{line}");
        assert_eq!(line.lines().count(), 1);
        // The raw value is still there for whoever must say what it is.
        assert_eq!(env.raw("SMTP_PASSWORD"), Some(reference));
    }

    #[test]
    fn accent_colour_is_validated() {
        let env = Environment::from_pairs([
            ("PORTAL_PUBLIC_URL", "https://portal.example.com"),
            (
                "PORTAL_SIGNING_KEYS",
                "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            ("PORTAL_ACCENT_COLOR", "red;background:url(x)"),
        ]);
        assert_eq!(
            PortalSettings::from_env(&env).unwrap_err().name,
            "PORTAL_ACCENT_COLOR"
        );
    }
}
