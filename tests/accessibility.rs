//! axe-core in headless Chromium on every page a partner, approver or sponsor sees, in both
//! languages: the form (empty and with errors), "check your inbox", the confirm page, "awaiting
//! approval", a broken-link page, the decision page and its outcome, the access review page and
//! its outcome. Zero violations allowed.

mod common;

use common::*;
use serde_json::{json, Value};

async fn run_plan(plan: Vec<Value>) -> Value {
    let out = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/platform/a11y.mjs"))
        .env("PLAN", Value::Array(plan).to_string())
        .current_dir(repo_root().join("tests/platform"))
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser plan failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_clean(result: &Value, expected: &[String]) {
    let checked: Vec<&str> = result["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checked, expected, "every planned page was checked");
    for c in result["checked"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let lang = if name.ends_with("-sv") { "sv" } else { "en" };
        assert_eq!(c["lang"], lang, "{name} is in its language");
    }
    let mut problems = Vec::new();
    for (page, list) in result["violations"].as_object().unwrap() {
        for v in list.as_array().unwrap() {
            problems.push(format!(
                "{page}: {} ({}) at {}",
                v["id"], v["help"], v["nodes"]
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "accessibility violations:\n{}",
        problems.join("\n")
    );
}

fn partner(platform: &Platform, local: &str) -> Value {
    json!({
        "input[name=email]": platform.address(local),
        "input[name=first_name]": "Åsa",
        "input[name=last_name]": "Lovelace",
        "input[name=organisation]": "Partner AB",
        "textarea[name=justification]": "The joint project",
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_passes_axe_in_both_languages() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: ./dev test installs it"
    );
    let mut platform = Platform::start().await;
    platform.set(
        "PORTAL_TERMS_TEXT",
        "Use the access for the joint project only.",
    );
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    platform.set("PORTAL_PUBLIC_URL", &base);
    let _handler = platform.start_handler_on(port).await;

    // The partner's pages: form, form with errors, check your inbox.
    let mut plan = Vec::new();
    let mut expected = Vec::new();
    for lang in ["en", "sv"] {
        plan.extend([
            json!({"goto": format!("{base}/api/signup?lang={lang}")}),
            json!({"axe": format!("form-{lang}")}),
            json!({"fill": {"input[name=email]": "not an address"}}),
            json!({"click": "form button[type=submit]"}),
            json!({"axe": format!("form-errors-{lang}")}),
            json!({"fill": partner(&platform, &format!("a11y-{lang}"))}),
            json!({"check": "input[name=accept_terms]"}),
            json!({"click": "form button[type=submit]"}),
            json!({"axe": format!("check-inbox-{lang}")}),
        ]);
        expected.extend([
            format!("form-{lang}"),
            format!("form-errors-{lang}"),
            format!("check-inbox-{lang}"),
        ]);
    }
    assert_clean(&run_plan(plan).await, &expected);

    // The mailed link: confirm, awaiting approval; and a broken link.
    let mut plan = Vec::new();
    let mut expected = Vec::new();
    for lang in ["en", "sv"] {
        let link = platform
            .wait_for_mails(&platform.address(&format!("a11y-{lang}")), 1)
            .await[0]
            .link_containing("/api/signup/verify");
        plan.extend([
            json!({"goto": format!("{link}&lang={lang}")}),
            json!({"axe": format!("confirm-{lang}")}),
            json!({"click": "form button[type=submit]"}),
            json!({"axe": format!("awaiting-approval-{lang}")}),
            json!({"goto": format!("{base}/api/signup/verify?token=broken&lang={lang}")}),
            json!({"axe": format!("broken-link-{lang}")}),
        ]);
        expected.extend([
            format!("confirm-{lang}"),
            format!("awaiting-approval-{lang}"),
            format!("broken-link-{lang}"),
        ]);
    }
    assert_clean(&run_plan(plan).await, &expected);

    // The approver's pages: the decision and its outcome.
    let mut plan = Vec::new();
    let mut expected = Vec::new();
    for lang in ["en", "sv"] {
        let email = platform.address(&format!("a11y-{lang}"));
        let link = approver_link(&platform, "boss@contoso.example", &email).await;
        plan.extend([
            json!({"goto": format!("{link}&lang={lang}")}),
            json!({"axe": format!("decision-{lang}")}),
            json!({"click": "form:has(input[name=decision][value=approve]) button[type=submit]"}),
            json!({"axe": format!("decision-recorded-{lang}")}),
        ]);
        expected.extend([
            format!("decision-{lang}"),
            format!("decision-recorded-{lang}"),
        ]);
    }
    assert_clean(&run_plan(plan).await, &expected);

    // The sponsor's pages: an access review and its outcome. The approver who admitted the
    // guests is their sponsor; the policy starts reviewing them, and the timer opens a review.
    let reviewing = platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "boss@contoso.example",
        "--review-days",
        "90",
        "--replace",
    ]);
    assert_eq!(reviewing.code, 0, "{}", reviewing.stderr);
    for invitation in platform.sim.invitations() {
        assert!(platform.sim.redeem(&invitation.user_id));
    }
    let now = time::OffsetDateTime::now_utc();
    for at in [
        now + time::Duration::hours(1),
        now + time::Duration::days(80),
    ] {
        let (status, body) = _handler.invoke_cleanup(&rfc3339(at)).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut plan = Vec::new();
    let mut expected = Vec::new();
    for lang in ["en", "sv"] {
        let email = platform.address(&format!("a11y-{lang}"));
        let link = platform
            .wait_for_mail("boss@contoso.example", |m| {
                m.text.contains(&email) && m.text.contains("/api/approve/review")
            })
            .await
            .link_containing("/api/approve/review");
        plan.extend([
            json!({"goto": format!("{link}&lang={lang}")}),
            json!({"axe": format!("review-{lang}")}),
            json!({"click": "form:has(input[name=decision][value=keep]) button[type=submit]"}),
            json!({"axe": format!("review-recorded-{lang}")}),
        ]);
        expected.extend([format!("review-{lang}"), format!("review-recorded-{lang}")]);
    }
    assert_clean(&run_plan(plan).await, &expected);
}
