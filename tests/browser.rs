//! A person in a real browser: headless Chromium fills in the form by its labels, follows the
//! mailed link, presses the button, and ends on the page with the invitation.

mod common;

use b2b_signup::core::request::RequestStatus;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_signs_up_in_a_browser_and_follows_the_mailed_link() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: ./dev test installs it (apt-get install chromium)"
    );
    let mut platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let port = free_port();
    platform.set("PORTAL_PUBLIC_URL", &format!("http://127.0.0.1:{port}"));
    let handler = platform.start_handler_on(port).await;
    let email = platform.address("browser");
    let shots = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/platform/journey.mjs"))
        .env("FORM_URL", handler.url("/api/signup?lang=en"))
        .env("MAILDIR", platform.maildir())
        .env("EMAIL", &email)
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
    assert!(
        result["redeem"]
            .as_str()
            .unwrap()
            .contains("login.microsoftonline.com/redeem"),
        "{result}"
    );
    assert_eq!(platform.sim.invitations().len(), 1);
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
}
