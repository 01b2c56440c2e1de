//! A person in a real browser: headless Chromium fills in the form by its labels, follows the
//! mailed link (or signs in with a work account), presses the button, and ends on the page with
//! the invitation.

mod common;

use b2b_signup::core::request::RequestStatus;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_signs_up_in_a_browser_and_follows_the_mailed_link() {
    chromium_is_installed();
    let mut platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let port = free_port();
    platform.set("PORTAL_PUBLIC_URL", &format!("http://127.0.0.1:{port}"));
    let handler = platform.start_handler_on(port).await;
    let email = platform.address("browser");
    journey(&platform, &handler, &email, "mailbox").await;
    assert_eq!(platform.sim.invitations().len(), 1);
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_signs_in_with_a_work_account_in_a_browser_and_is_invited_at_once() {
    chromium_is_installed();
    let mut platform = Platform::start().await;
    let tenant = "3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    let out = platform.add_partner_policy(&[
        "--tenant",
        tenant,
        "--proof",
        "sign_in",
        "--require-mfa",
        "--action",
        "auto",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    platform.set("PORTAL_PUBLIC_URL", &public);
    let (client_id, authority) = (
        platform.sim.sign_in_client_id(),
        platform.sim.sign_in_authority(),
    );
    platform.set("SIGN_IN_CLIENT_ID", &client_id);
    platform.set("SIGN_IN_AUTHORITY", &authority);
    platform
        .sim
        .set_redirect_uris(&[&format!("{public}/api/signup/signed-in")]);
    let handler = platform.start_handler_on(port).await;
    let email = platform.address("browser");
    personal("Ada Lovelace");
    platform.sim.add_sign_in_user(
        graph_simulator::SignInUser::new(tenant, &email, "Ada Lovelace").with_mfa(),
    );
    let result = journey(&platform, &handler, &email, "sign_in").await;
    assert_eq!(
        result["signInPage"],
        platform.sim.authority_host(),
        "{result}"
    );
    assert_eq!(result["landed"], "/api/signup/signed-in", "{result}");
    let request = &requests_for(&platform, &email).await[0];
    assert_eq!(request.status, RequestStatus::Invited);
    assert!(request.signed_in.as_ref().is_some_and(|s| s.mfa));
    // Only the invitation was mailed: no verification link.
    let mails = platform.wait_for_mails(&email, 1).await;
    assert!(mails.iter().all(|m| !m.text.contains("/api/signup/verify")));
}

fn chromium_is_installed() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: ./dev test installs it (apt-get install chromium)"
    );
}

/// Runs `tests/platform/journey.mjs` (headless Chromium) through the form of `handler` as
/// `email`, by the mailed link (`mailbox`) or by signing in (`sign_in`), to the page with the
/// invitation; what it saw, as JSON.
async fn journey(
    platform: &Platform,
    handler: &Handler,
    email: &str,
    kind: &str,
) -> serde_json::Value {
    let shots = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/platform/journey.mjs"))
        .env("FORM_URL", handler.url("/api/signup?lang=en"))
        .env("MAILDIR", platform.maildir())
        .env("EMAIL", email)
        .env("JOURNEY", kind)
        .env(
            "SCREENSHOT_DIR",
            std::env::var("B2B_SCREENSHOTS").unwrap_or_else(|_| shots.path().display().to_string()),
        )
        .env("NODE_PATH", repo_root().join("tests/platform/node_modules"))
        .current_dir(repo_root().join("tests/platform"))
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser journey failed:\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // Every journey ends on the page with the invitation.
    assert!(
        result["redeem"]
            .as_str()
            .unwrap()
            .contains("login.microsoftonline.com/redeem"),
        "{result}"
    );
    result
}
