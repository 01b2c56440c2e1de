//! The settings themselves: every section parses, the signing keys are random, and links in
//! mail point to an https origin.

use super::{Doctor, Finding};
use crate::settings::{
    CleanupSettings, GraphSettings, KeyVaultReference, LogFormat, MailSettings, PortalSettings,
    SettingError, StorageSettings,
};

const CHECK: &str = "settings";

pub async fn parse(d: &mut Doctor) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut failed = |e: SettingError| findings.push(failure(d, &e));
    let storage = StorageSettings::from_env(&d.env).map_err(&mut failed).ok();
    let graph = GraphSettings::from_env(&d.env).map_err(&mut failed).ok();
    let mail = MailSettings::from_env(&d.env).map_err(&mut failed).ok();
    let portal = PortalSettings::from_env(&d.env).map_err(&mut failed).ok();
    let cleanup = CleanupSettings::from_env(&d.env).map_err(&mut failed).ok();
    let _ = LogFormat::from_env(&d.env).map_err(&mut failed);
    if findings.is_empty() {
        findings.push(Finding::ok(CHECK, "every setting parses"));
    }
    if let (Some(graph), Some(cleanup)) = (&graph, &cleanup) {
        if cleanup.rules.inactive_days > 0 && !graph.sign_in_activity {
            findings.push(Finding::warn(
                CHECK,
                format!(
                    "CLEANUP_INACTIVE_DAYS is {} but GRAPH_SIGN_IN_ACTIVITY is false, so the inactivity rule is skipped",
                    cleanup.rules.inactive_days
                ),
                "set GRAPH_SIGN_IN_ACTIVITY=true (needs Entra ID P1 and AuditLog.Read.All), or CLEANUP_INACTIVE_DAYS=0",
            ));
        }
        if cleanup.dry_run {
            findings.push(Finding::warn(
                CHECK,
                "CLEANUP_DRY_RUN is on: the cleanup only reports what it would do",
                "read a few of its reports (handler audit), then set CLEANUP_DRY_RUN=false",
            ));
        }
    }
    d.storage = storage;
    d.graph_settings = graph;
    d.mail = mail;
    d.portal = portal;
    d.cleanup = cleanup;
    findings
}

/// A setting that does not parse; a Key Vault reference gets its own words, since the fix is
/// a role or a secret, not the value.
fn failure(d: &Doctor, e: &SettingError) -> Finding {
    match d.env.raw(e.name).and_then(KeyVaultReference::parse) {
        Some(reference) => {
            let fix = if d.in_azure() {
                format!(
                    "give the Function App's managed identity the Key Vault Secrets User role on {} and check that the secret exists, then restart the app (a new role assignment takes minutes to apply)",
                    reference.describe()
                )
            } else {
                format!(
                    "outside Azure the platform does not resolve Key Vault references: put the secret's value in {} (with azd: export {}=\"$(azd env get-value {})\"), or run the doctor through `azd hooks run postdeploy`",
                    e.name, e.name, e.name
                )
            };
            Finding::fail(
                CHECK,
                format!(
                    "{} is an unresolved Key Vault reference to {}",
                    e.name,
                    reference.describe()
                ),
                fix,
            )
        }
        None => Finding::fail(
            CHECK,
            e.to_string(),
            format!("set {} as docs/settings.md describes", e.name),
        ),
    }
}

/// A run whose links point at this machine: weak local keys are expected there.
fn is_local(d: &Doctor, portal: &PortalSettings) -> bool {
    !d.in_azure()
        && matches!(
            portal.public_url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]")
        )
}

pub async fn signing_keys(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "signing-keys";
    let Some(portal) = &d.portal else {
        return vec![Finding::not_checked(
            CHECK,
            "the portal's settings do not parse (see settings)",
        )];
    };
    let weaknesses = portal.signing_keys.weaknesses();
    if weaknesses.is_empty() {
        let count = portal.signing_keys.all().count();
        return vec![Finding::ok(
            CHECK,
            format!(
                "{count} key(s), '{}' signs: random secrets of 32 bytes or more",
                portal.signing_keys.current_id()
            ),
        )];
    }
    let fix = "generate a key with 32 random bytes, e.g. k2:$(head -c 32 /dev/urandom | base64), put it first in PORTAL_SIGNING_KEYS and keep the old key after it until its links expire (docs/deploy.md, rotating the signing key)";
    let local = is_local(d, portal);
    weaknesses
        .into_iter()
        .map(|w| {
            if local {
                Finding::warn(CHECK, format!("{w}: acceptable for local runs only"), fix)
            } else {
                Finding::fail(
                    CHECK,
                    format!("{w}: anyone who guesses it can forge links"),
                    fix,
                )
            }
        })
        .collect()
}

pub async fn public_url(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "public-url";
    let Some(portal) = &d.portal else {
        return vec![Finding::not_checked(
            CHECK,
            "the portal's settings do not parse (see settings)",
        )];
    };
    let url = portal.public_url.as_str().trim_end_matches('/');
    if portal.public_url.scheme() == "https" {
        return vec![Finding::ok(CHECK, format!("links in mail point to {url}"))];
    }
    // Settings accept plain http only for loopback hosts.
    if d.in_azure() {
        return vec![Finding::fail(
            CHECK,
            format!("PORTAL_PUBLIC_URL is {url} inside Azure: links in mail would point at the partner's own machine"),
            "set PORTAL_PUBLIC_URL to https://<the app's default host name> or your custom domain (the template does when publicUrl is empty)",
        )];
    }
    vec![Finding::ok(
        CHECK,
        format!("links in mail point to {url}: plain http, for local runs only"),
    )]
}
