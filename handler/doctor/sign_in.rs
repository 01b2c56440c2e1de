//! Partner sign-in: whether policies need it and it is set up, the identity platform's
//! discovery and keys, the app registration's redirect URI, and whether the token endpoint
//! accepts the Function App's managed identity as the app's credential (probed with a code
//! that does not exist: `invalid_grant` means the client was authenticated and only the code
//! was refused; `invalid_client` means the federated credential is missing or wrong).

use super::{Doctor, Finding};
use crate::adapters::sign_in::{SignInClient, SignInError};
use crate::core::policy::Proof;
use crate::core::sign_in::{code_challenge, new_code_verifier, new_random_value};
use crate::settings::SignInSettings;

const CHECK: &str = "partner-sign-in";

pub async fn sign_in(d: &mut Doctor) -> Vec<Finding> {
    let settings = match SignInSettings::from_env(&d.env) {
        Ok(s) => s,
        Err(e) => return vec![Finding::fail(CHECK, e.to_string(), "correct the setting")],
    };
    let wanting: Vec<String> = d
        .policies
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|p| p.proof != Proof::Mailbox)
        .map(|p| p.key())
        .collect();
    let Some(settings) = settings else {
        if wanting.is_empty() {
            return vec![Finding::ok(
                CHECK,
                "off (SIGN_IN_CLIENT_ID is not set): partners prove their mailbox by the mailed link",
            )];
        }
        return vec![Finding::fail(
            CHECK,
            format!(
                "policies ask for a sign-in ({}), but SIGN_IN_CLIENT_ID is not set: those partners cannot get in",
                wanting.join(", ")
            ),
            "deploy with enablePartnerSignIn=true (it creates the app registration and sets SIGN_IN_CLIENT_ID), or change those policies' proof to mailbox",
        )];
    };
    let Some(portal) = &d.portal else {
        return vec![Finding::not_checked(
            CHECK,
            "PORTAL_PUBLIC_URL does not parse (see settings)",
        )];
    };
    let client = match SignInClient::new(
        crate::adapters::http_client(),
        &settings,
        &portal.public_url,
    ) {
        Ok(c) => c,
        Err(e) => {
            return vec![Finding::fail(
                CHECK,
                e,
                "check GRAPH_MANAGED_IDENTITY_CLIENT_ID",
            )]
        }
    };
    let authority = settings.authority.as_str().to_string();
    let discovery = match client.discovery().await {
        Ok(d) => d,
        Err(e) => {
            return vec![Finding::fail(
                CHECK,
                format!("cannot read the discovery document of {authority}: {e}"),
                "check SIGN_IN_AUTHORITY (https://login.microsoftonline.com/organizations/v2.0) and outbound HTTPS",
            )]
        }
    };
    let mut findings = Vec::new();
    match client.published_key_count().await {
        Ok(0) | Err(_) => findings.push(Finding::fail(
            CHECK,
            format!("no signing keys at {}", discovery.jwks_uri),
            "check SIGN_IN_AUTHORITY",
        )),
        Ok(_) => {}
    }
    // The authorize endpoint shows its own error page for an unknown app or an unregistered
    // redirect URI, before any sign-in.
    let verifier = new_code_verifier();
    if let Ok(url) = client
        .authorize_url(
            &new_random_value(),
            &new_random_value(),
            &code_challenge(&verifier),
            "",
        )
        .await
    {
        let page = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if page.contains("AADSTS700016") {
            findings.push(Finding::fail(
                CHECK,
                format!("the identity platform knows no app {}", settings.client_id),
                "set SIGN_IN_CLIENT_ID to the partner sign-in app's application (client) id (the deployment output SIGN_IN_CLIENT_ID)",
            ));
        } else if page.contains("AADSTS50011") {
            findings.push(Finding::fail(
                CHECK,
                format!("the app does not list {} as a redirect URI", client.redirect_uri()),
                "deploy again with the current publicUrl (the template registers the app's host names), or add the URI under Authentication in the app registration",
            ));
        }
    }
    let assertion = match client.client_assertion().await {
        Ok(a) => a,
        Err(e) => {
            if !d.in_azure() && d.env.raw("IDENTITY_ENDPOINT").is_none() {
                findings.push(Finding::warn(
                    CHECK,
                    "the app's credential was not checked: it is the Function App's managed identity, which only the app itself can use",
                    "run `handler doctor` inside the Function App (or read its sign-in errors in Application Insights)",
                ));
            } else {
                findings.push(Finding::fail(
                    CHECK,
                    format!("the managed identity gave no token for api://AzureADTokenExchange: {e}"),
                    "the Function App needs its system-assigned identity (or GRAPH_MANAGED_IDENTITY_CLIENT_ID for a user-assigned one)",
                ));
            }
            return with_mfa_warning(d, findings);
        }
    };
    match client
        .token_request(
            &discovery.token_endpoint,
            &[
                ("grant_type", "authorization_code"),
                ("code", "doctor-probe-not-a-code"),
                ("code_verifier", &verifier),
            ],
            &assertion,
        )
        .await
    {
        Err(SignInError::Refused { error, .. }) if error == "invalid_grant" => {
            findings.push(Finding::ok(
                CHECK,
                format!(
                    "app {} at {authority}: the identity platform takes the managed identity as its credential",
                    settings.client_id
                ),
            ))
        }
        Err(SignInError::Refused { error, codes, description }) => findings.push(Finding::fail(
            CHECK,
            format!("the token endpoint refused the app's credential: {error} {codes:?} {description}"),
            "the app registration needs a federated identity credential for this Function App's managed identity (issuer https://login.microsoftonline.com/<tenant>/v2.0, subject its principal id, audience api://AzureADTokenExchange); deploy with enablePartnerSignIn=true",
        )),
        Err(e) => findings.push(Finding::fail(
            CHECK,
            format!("the token endpoint could not be asked: {e}"),
            "check outbound HTTPS to the identity platform",
        )),
        Ok(_) => findings.push(Finding::warn(
            CHECK,
            "the token endpoint accepted a code that does not exist",
            "check SIGN_IN_AUTHORITY points at the Microsoft identity platform",
        )),
    }
    with_mfa_warning(d, findings)
}

/// Entra's v2.0 ID tokens carry no `amr` today: a policy requiring MFA refuses every sign-in.
fn with_mfa_warning(d: &Doctor, mut findings: Vec<Finding>) -> Vec<Finding> {
    let mfa: Vec<String> = d
        .policies
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|p| p.require_mfa)
        .map(|p| p.key())
        .collect();
    if !mfa.is_empty() {
        findings.push(Finding::warn(
            CHECK,
            format!(
                "policies require MFA ({}): the portal reads it from the ID token's amr claim, which Microsoft's v2.0 ID tokens do not carry today, so these policies refuse every sign-in",
                mfa.join(", ")
            ),
            "require MFA through the partner tenant's Conditional Access and cross-tenant access settings instead, or keep require_mfa only where you accept that nobody gets in until Microsoft sends amr",
        ));
    }
    findings
}
