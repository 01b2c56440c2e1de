//! The partner's whole journey, through the binary as the host drives it, against Azurite, a
//! real SMTP server and the Graph simulator.

mod common;

use b2b_signup::core::request::RequestStatus;
use b2b_signup::core::token::{new_nonce, TokenClaims, TokenPurpose};
use common::*;
use graph_simulator::{Fault, FaultRoute};
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn auto_domain_is_verified_invited_granted_and_mailed() {
    let platform = Platform::start().await;
    let group = platform.sim.add_group("Partners");
    let sp = platform
        .sim
        .add_service_principal("Partner app", &[uuid::Uuid::from_u128(7)]);
    let role = format!("{sp}:{}", uuid::Uuid::from_u128(7));
    let out = platform.add_partner_policy(&[
        "--action",
        "auto",
        "--group",
        &group,
        "--app-role",
        &role,
        "--access-days",
        "90",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let handler = platform.start_handler().await;
    let email = platform.address("ada");

    let resp = submit_form(&handler, &partner_fields(&email, "Ada")).await;
    assert_eq!(resp.status(), 200);
    let mails = platform.wait_for_mails(&email, 1).await;
    assert_eq!(mails.len(), 1, "one verification mail");
    let verify_link = mails[0].link_containing("/api/signup/verify");
    assert!(
        verify_link.starts_with("http://localhost:7071/api/signup/verify?token="),
        "{verify_link}"
    );
    assert!(
        !mails[0].html.is_empty() && !mails[0].text.is_empty(),
        "text and HTML parts"
    );

    // A mail scanner fetches the link (GET and HEAD): nothing changes.
    for method in [Method::GET, Method::HEAD, Method::GET] {
        let resp = handler
            .forward(method, &path_of(&verify_link))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["referrer-policy"], "same-origin");
    }
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingVerification
    );
    assert!(platform.sim.invitations().is_empty());

    // The person presses the button.
    let page = handler
        .forward(Method::GET, &path_of(&verify_link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"token\""), "{page}");
    let token = token_of(&verify_link);
    let resp = post_form(&handler, "/api/signup/verify", &[("token", &token)]).await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();

    let invitations = platform.sim.invitations();
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0].email, email);
    assert!(
        !invitations[0].send_invitation_message,
        "the portal sends its own mail"
    );
    let user_id = invitations[0].user_id.clone();
    assert!(
        page.contains("login.microsoftonline.com/redeem"),
        "the page links to the redeem URL: {page}"
    );
    assert_eq!(platform.sim.group_members(&group), vec![user_id.clone()]);
    assert_eq!(platform.sim.app_role_assignments(&sp).len(), 1);

    let request = &requests_for(&platform, &email).await[0];
    assert_eq!(request.status, RequestStatus::Invited);
    assert_eq!(request.invited_user_id.as_deref(), Some(user_id.as_str()));
    let guests = b2b_signup::store::guests::all(&platform.store())
        .await
        .unwrap();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].0.user_id, user_id);
    assert!(
        guests[0].0.access_ends_at.is_some(),
        "90 days of access recorded"
    );

    let mails = platform.wait_for_mails(&email, 2).await;
    assert_eq!(mails.len(), 2);
    assert!(mails[1]
        .link_containing("login.microsoftonline.com/redeem")
        .contains("redeem"));

    // The link is single-use.
    let again = post_form(&handler, "/api/signup/verify", &[("token", &token)]).await;
    assert_eq!(again.status(), 409);
    assert_eq!(platform.sim.invitations().len(), 1);

    let audit = b2b_signup::store::audit::for_request(&platform.store(), &request.id)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "request.submitted",
        "request.verified",
        "guest.invited",
        "guest.granted",
        "request.completed",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    // Addresses are masked in logs; names never appear.
    let logs = handler.logs();
    assert!(!logs.contains(&email), "the address leaked into the log");
    assert!(!logs.contains("Lovelace"), "a name leaked into the log");
    assert!(!logs.contains(&token), "a token leaked into the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_domain_waits_for_a_decision_and_shows_in_the_cli() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let handler = platform.start_handler().await;
    let email = platform.address("grace");
    let (status, _page) = sign_up_and_verify(&platform, &handler, &email, "Grace").await;
    assert_eq!(status, 200);
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingApproval
    );
    assert!(platform.sim.invitations().is_empty());
    let list = platform.cli(&["requests", "list", "--status", "pending_approval"]);
    assert!(list.stdout.contains(&email), "{}", list.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_valid_submission_gets_the_same_answer_and_only_admitted_ones_get_mail() {
    let platform = Platform::start().await;
    let denied = format!("denied-{}", platform.partner_domain);
    platform.add_partner_policy(&["--action", "auto"]);
    platform.cli(&["policy", "add", "--domain", &denied, "--action", "deny"]);
    let handler = platform.start_handler().await;
    let admitted = platform.address("a");
    let denied_addr = format!("d@{denied}");
    let unknown = format!("u@unknown-{}", platform.partner_domain);

    let mut bodies = Vec::new();
    for email in [&admitted, &denied_addr, &unknown] {
        let resp = submit_form(&handler, &partner_fields(email, "Sam")).await;
        assert_eq!(resp.status(), 200);
        bodies.push(resp.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1], "denied looks like admitted");
    assert_eq!(bodies[0], bodies[2], "unknown looks like admitted");
    assert_eq!(platform.wait_for_mails(&admitted, 1).await.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        platform.mails_to(&denied_addr).is_empty(),
        "no mail to a denied domain"
    );
    assert!(
        platform.mails_to(&unknown).is_empty(),
        "no mail to an unknown domain"
    );
    assert!(requests_for(&platform, &denied_addr).await.is_empty());

    // A repeat while the first is pending re-sends the link but makes no second request.
    let resp = submit_form(&handler, &partner_fields(&admitted, "Sam")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(platform.wait_for_mails(&admitted, 2).await.len(), 2);
    assert_eq!(requests_for(&platform, &admitted).await.len(), 1);

    // JSON callers get the same uniform answer.
    let resp = handler
        .forward(Method::POST, "/api/signup")
        .json(&serde_json::json!({"email": unknown, "first_name": "U", "last_name": "V", "organisation": "W"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["status"],
        "check_inbox"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_denied_after_submission_is_denied_at_verification_with_a_polite_mail() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("late");
    let resp = submit_form(&handler, &partner_fields(&email, "Late")).await;
    assert_eq!(resp.status(), 200);
    let link = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");
    platform.add_partner_policy(&["--action", "deny", "--replace"]);
    let resp = post_form(
        &handler,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Denied
    );
    assert!(platform.sim.invitations().is_empty(), "no Graph call");
    assert_eq!(
        platform.wait_for_mails(&email, 2).await.len(),
        2,
        "a polite denial mail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_expired_foreign_and_reused_links_are_refused() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let handler = platform.start_handler().await;
    let email = platform.address("eve");
    submit_form(&handler, &partner_fields(&email, "Eve")).await;
    let link = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");
    let token = token_of(&link);
    let request = requests_for(&platform, &email).await.remove(0);

    // One character changed anywhere: refused, on GET and on POST.
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let get = handler
        .forward(Method::GET, &format!("/api/signup/verify?token={tampered}"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 400);
    let post = post_form(&handler, "/api/signup/verify", &[("token", &tampered)]).await;
    assert_eq!(post.status(), 400);

    // Expired: signed with the right key, but past its time.
    let keys = signing_keys();
    let expired = keys.sign(&TokenClaims {
        purpose: TokenPurpose::Verify,
        request_id: request.id.clone(),
        subject: request.applicant.email.identity_key(),
        stage: 0,
        expires_at: time::OffsetDateTime::now_utc().unix_timestamp() - 60,
        nonce: new_nonce(),
    });
    let resp = post_form(&handler, "/api/signup/verify", &[("token", &expired)]).await;
    assert_eq!(resp.status(), 400);
    // The wrong purpose: a decision token cannot verify a mailbox.
    let wrong_purpose = keys.sign(&TokenClaims {
        purpose: TokenPurpose::Decide,
        request_id: request.id.clone(),
        subject: request.applicant.email.identity_key(),
        stage: 0,
        expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + 600,
        nonce: new_nonce(),
    });
    assert_eq!(
        post_form(&handler, "/api/signup/verify", &[("token", &wrong_purpose)])
            .await
            .status(),
        400
    );
    // Signed by a key the portal does not hold.
    let foreign = b2b_signup::core::token::SigningKeys::parse(
        "zz:Zm9yZWlnbi1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    )
    .unwrap()
    .sign(&TokenClaims {
        purpose: TokenPurpose::Verify,
        request_id: request.id.clone(),
        subject: request.applicant.email.identity_key(),
        stage: 0,
        expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + 600,
        nonce: new_nonce(),
    });
    assert_eq!(
        post_form(&handler, "/api/signup/verify", &[("token", &foreign)])
            .await
            .status(),
        400
    );
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingVerification,
        "nothing changed"
    );

    // The real one works once; the second use is refused.
    assert_eq!(
        post_form(&handler, "/api/signup/verify", &[("token", &token)])
            .await
            .status(),
        200
    );
    assert_eq!(
        post_form(&handler, "/api/signup/verify", &[("token", &token)])
            .await
            .status(),
        409
    );
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingApproval
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_throttling_and_failure_during_invite_are_retried_later_with_one_invitation() {
    for (status, retry_after) in [(429u16, Some(30u32)), (500, None)] {
        let platform = Platform::start().await;
        platform.add_partner_policy(&["--action", "auto"]);
        let handler = platform.start_handler().await;
        let email = platform.address("retry");
        // Enough failures to outlast the form's patience.
        let mut fault = Fault::new(FaultRoute::Invitations, status).times(50);
        if let Some(s) = retry_after {
            fault = fault.retry_after(s);
        }
        platform.sim.inject_fault(fault);
        let (code, _page) = sign_up_and_verify(&platform, &handler, &email, "Retry").await;
        assert_eq!(code, 202, "the partner is told access is being set up");
        let request = requests_for(&platform, &email).await.remove(0);
        assert_eq!(request.status, RequestStatus::InviteFailed);
        assert_eq!(request.attempts, 1);
        assert!(
            request
                .last_error
                .as_deref()
                .unwrap()
                .contains("invitation"),
            "{:?}",
            request.last_error
        );
        assert!(platform.sim.invitations().is_empty());

        // The timer, before the backoff has passed, leaves it alone.
        platform.sim.clear_faults();
        let now = time::OffsetDateTime::now_utc();
        let (s, body) = handler.invoke_cleanup(&fmt(now)).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(
            requests_for(&platform, &email).await[0].status,
            RequestStatus::InviteFailed
        );
        // After the backoff it finishes the job: exactly one invitation, one invitation mail.
        let (s, body) = handler
            .invoke_cleanup(&fmt(now + time::Duration::minutes(5)))
            .await;
        assert_eq!(s, 200, "{body}");
        let request = requests_for(&platform, &email).await.remove(0);
        assert_eq!(request.status, RequestStatus::Invited, "{body}");
        assert_eq!(platform.sim.invitations().len(), 1);
        let (s, _) = handler
            .invoke_cleanup(&fmt(now + time::Duration::minutes(10)))
            .await;
        assert_eq!(s, 200);
        assert_eq!(platform.sim.invitations().len(), 1, "never invited twice");
        let mails = platform.wait_for_mails(&email, 2).await;
        assert_eq!(mails.len(), 2, "verification + one invitation mail");
    }
}

fn fmt(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn both_languages_render_and_the_switch_works() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    let sv = handler
        .forward(Method::GET, "/api/signup")
        .header("Accept-Language", "sv-SE,sv;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sv.contains("lang=\"sv\""), "{sv}");
    let en = handler
        .forward(Method::GET, "/api/signup?lang=en")
        .header("Accept-Language", "sv-SE")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("lang=\"en\""));
    assert_ne!(sv, en);
    assert!(
        sv.contains("?lang=en") && en.contains("?lang=sv"),
        "a visible switch both ways"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_errors_keep_values_and_json_gets_field_errors() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    let resp = submit_form(
        &handler,
        &[
            ("email", "not an address"),
            ("first_name", "Ada"),
            ("last_name", ""),
            ("organisation", "X"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("value=\"Ada\""), "values kept");
    assert!(
        page.contains("aria-invalid=\"true\""),
        "errors marked on fields"
    );
    let resp = handler
        .forward(Method::POST, "/api/signup")
        .json(&serde_json::json!({"email": "x", "first_name": "", "last_name": "L", "organisation": "O"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(
        v["fields"]["email"].is_string() && v["fields"]["first_name"].is_string(),
        "{v}"
    );
    // Malformed JSON, wrong content type, oversized body: clear statuses, nothing stored.
    let bad = handler
        .forward(Method::POST, "/api/signup")
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let text = handler
        .forward(Method::POST, "/api/signup")
        .header("Content-Type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let big = handler
        .forward(Method::POST, "/api/signup")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("email={}", "a".repeat(40_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert!(
        b2b_signup::store::requests::list(&platform.store(), None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_escaped_in_pages_and_mails() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let handler = platform.start_handler().await;
    let email = platform.address("xss");
    let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let mut fields = partner_fields(&email, hostile);
    fields[3] = ("organisation", hostile);
    // In a re-rendered form (another field invalid), the value comes back escaped.
    let mut invalid = fields.clone();
    invalid[2] = ("last_name", "");
    let page = submit_form(&handler, &invalid).await.text().await.unwrap();
    assert!(!page.contains("<script>alert(1)"), "escaped in the form");
    assert!(page.contains("&lt;script&gt;"));
    // A name with a line break cannot reach a header or forge a mail line.
    let mut crlf = partner_fields(&email, "Ada\r\nBcc: victim@example.com");
    crlf.truncate(5);
    assert_eq!(submit_form(&handler, &crlf).await.status(), 400);

    let resp = submit_form(&handler, &fields).await;
    assert_eq!(resp.status(), 200);
    let verify = platform.wait_for_mails(&email, 1).await;
    assert!(
        !verify[0].html.contains("<script>alert(1)"),
        "escaped in the verification mail"
    );
    let link = verify[0].link_containing("/api/signup/verify");
    assert_eq!(
        post_form(
            &handler,
            "/api/signup/verify",
            &[("token", &token_of(&link))]
        )
        .await
        .status(),
        200
    );
    let mail = platform
        .wait_for_mail("boss@contoso.example", |m| m.text.contains(&email))
        .await;
    assert!(
        !mail.html.contains("<script>alert(1)"),
        "escaped in the approver mail"
    );
    assert!(
        !mail.html.contains("<img src=x"),
        "escaped in the approver mail"
    );
    assert!(
        !mail.subject.contains("script"),
        "requester input never in a subject"
    );
    let decide = handler
        .forward(Method::GET, &path_of(&mail.link_containing("/api/approve")))
        .send()
        .await
        .unwrap();
    let page = decide.text().await.unwrap();
    assert!(
        !page.contains("<script>alert(1)") && page.contains("&lt;script&gt;"),
        "escaped on the decision page"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_with_retry_after() {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_RATE_LIMIT_ADDRESS", "2");
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("spam");
    for _ in 0..2 {
        assert_eq!(
            submit_form(&handler, &partner_fields(&email, "S"))
                .await
                .status(),
            200
        );
    }
    let resp = submit_form(&handler, &partner_fields(&email, "S")).await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait));
    assert_eq!(
        platform.wait_for_mails(&email, 2).await.len(),
        2,
        "no third mail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_down_gives_503_and_writes_nothing() {
    let mut platform = Platform::start().await;
    let dead = free_port();
    platform.set(
        "PORTAL_STORAGE",
        &format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{dead}/devstoreaccount1",
            b2b_signup::settings::DEV_ACCOUNT_KEY
        ),
    );
    let handler = platform.start_handler().await;
    let email = platform.address("down");
    let resp = submit_form(&handler, &partner_fields(&email, "Down")).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(platform.mails_to(&email).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operators_branding_is_served_by_the_handler_itself() {
    let mut platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.png");
    // A 1x1 PNG.
    let png: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0,
        0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0a, 0x49, 0x44,
        0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    std::fs::write(&logo, png).unwrap();
    platform.set("PORTAL_LOGO_FILE", logo.to_str().unwrap());
    platform.set("PORTAL_ORG_NAME", "Fabrikam Partner Portal");
    platform.set("PORTAL_ACCENT_COLOR", "#8a1538");
    platform.set("PORTAL_TERMS_URL", "https://fabrikam.example/terms");
    let handler = platform.start_handler().await;
    let page = handler
        .forward(Method::GET, "/api/signup")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Fabrikam Partner Portal"));
    assert!(page.contains("#8a1538"));
    assert!(
        page.contains("src=\"/api/signup/logo\""),
        "the logo comes from the handler"
    );
    assert!(
        page.contains("https://fabrikam.example/terms") && page.contains("name=\"accept_terms\"")
    );
    assert!(!page.contains("src=\"http"), "no external assets");
    let resp = handler
        .forward(Method::GET, "/api/signup/logo")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), png);
    // With terms configured, a submission without accepting them is refused with a field error.
    let email = platform.address("terms");
    let resp = submit_form(&handler, &partner_fields(&email, "Terms")).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("accept_terms"));
}
