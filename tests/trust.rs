//! Sign-up and approval trust only what a caller cannot forge: each test sends the forged or
//! hostile input through the binary, as an outsider would, and sees it refused.

mod common;

use std::time::Duration;

use b2b_signup::adapters::tables::{Row, TableName};
use b2b_signup::core::request::RequestStatus;
use common::*;
use graph_simulator::{Fault, FaultRoute};
use reqwest::Method;
use time::OffsetDateTime;

async fn sign_up_from(
    handler: &Handler,
    email: &str,
    forwarded: &str,
    extra: &[(&str, &str)],
) -> u16 {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(partner_fields(email, "Ip"))
        .finish();
    let mut rb = handler
        .forward(Method::POST, "/api/signup")
        .header("Content-Type", "application/x-www-form-urlencoded")
        // Appended after the host's own entry: the right-most hop is this one.
        .header("X-Forwarded-For", forwarded);
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    rb.body(body).send().await.unwrap().status().as_u16()
}

// 1. Client IP ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_client_cannot_choose_the_address_its_limit_counts_under() {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_RATE_LIMIT_IP", "3");
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let mut statuses = Vec::new();
    for k in 0..10 {
        let email = platform.address(&format!("ip{k}"));
        // A new X-Azure-ClientIP each time, and invented hops left of the platform's.
        let invented = format!("10.9.8.{k}");
        statuses.push(
            sign_up_from(
                &handler,
                &email,
                &format!("{invented}, 198.51.100.20"),
                &[("X-Azure-ClientIP", &invented), ("X-Real-IP", &invented)],
            )
            .await,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );

    // IPv6: one /64 is one client, however many addresses it uses.
    let mut v6 = Vec::new();
    for k in 1..=5 {
        let email = platform.address(&format!("six{k}"));
        v6.push(sign_up_from(&handler, &email, &format!("2001:db8:77:1::{k:x}"), &[]).await);
    }
    assert_eq!(v6, vec![200, 200, 200, 429, 429], "one /64");
    let email = platform.address("six-other");
    assert_eq!(
        sign_up_from(&handler, &email, "2001:db8:77:2::1", &[]).await,
        200,
        "another /64 is another client"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_its_header_names_the_client() {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_RATE_LIMIT_IP", "2");
    platform.set("PORTAL_CLIENT_IP_HEADER", "X-Azure-ClientIP");
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    // Front Door's address is the platform's hop for everyone; the header tells them apart.
    let mut statuses = Vec::new();
    for (k, client) in ["203.0.113.1", "203.0.113.2", "203.0.113.2", "203.0.113.2"]
        .iter()
        .enumerate()
    {
        let email = platform.address(&format!("fd{k}"));
        statuses.push(
            sign_up_from(
                &handler,
                &email,
                "147.243.0.1",
                &[("X-Azure-ClientIP", client)],
            )
            .await,
        );
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
}

// 3. Approvers written with capitals ------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_approver_written_with_capitals_decides_like_any_other() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "approve", "--approver", "Boss@Contoso.example"]);
    let handler = platform.start_handler().await;
    let email = platform.address("capitals");
    sign_up_and_verify(&platform, &handler, &email, "Cap").await;
    let link = approver_link(&platform, "Boss@contoso.example", &email).await;
    let page = handler
        .forward(Method::GET, &path_of(&link))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let (status, body) = decide(&handler, &link, "approve", "", false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
    // The command line takes any spelling too.
    let other = platform.address("capitals2");
    sign_up_and_verify(&platform, &handler, &other, "Cap").await;
    approver_link(&platform, "Boss@contoso.example", &other).await;
    let id = requests_for(&platform, &other).await[0].id.clone();
    let out = platform.cli(&["requests", "deny", &id, "--as", "BOSS@contoso.example"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

// 4. Squatting an unverified request ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn whoever_types_an_address_first_cannot_put_their_name_on_it() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let ceo = platform.address("ceo");
    personal("Mallory");
    personal("Grace");
    personal("Hopper");
    let mallory = [
        ("email", ceo.as_str()),
        ("first_name", "Mallory"),
        ("last_name", "Mallory"),
        ("organisation", "Mallory Ltd"),
    ];
    assert_eq!(submit_form(&handler, &mallory).await.status(), 200);
    platform.wait_for_mails(&ceo, 1).await;
    let grace = [
        ("email", ceo.as_str()),
        ("first_name", "Grace"),
        ("last_name", "Hopper"),
        ("organisation", "Partner AB"),
    ];
    assert_eq!(submit_form(&handler, &grace).await.status(), 200);
    // The real person's mail greets them and its link confirms their details.
    let mail = platform
        .wait_for_mail(&ceo, |m| m.text.contains("Grace"))
        .await;
    let link = mail.link_containing("/api/signup/verify");
    let confirm = handler
        .forward(Method::GET, &path_of(&link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        confirm.contains("Grace") && confirm.contains("Hopper"),
        "{confirm}"
    );
    assert!(
        !confirm.contains("Mallory"),
        "the page shows what is confirmed"
    );
    let resp = post_form(
        &handler,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let invitations = platform.sim.invitations();
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0].display_name.as_deref(), Some("Grace Hopper"));
    let request = requests_for(&platform, &ceo).await.remove(0);
    assert_eq!(request.applicant.organisation, "Partner AB");
    // The squatter's link is spent with the request.
    let theirs = platform
        .mails_to(&ceo)
        .into_iter()
        .find(|m| m.text.contains("Mallory"))
        .unwrap()
        .link_containing("/api/signup/verify");
    let resp = post_form(
        &handler,
        "/api/signup/verify",
        &[("token", &token_of(&theirs))],
    )
    .await;
    assert_eq!(resp.status(), 409);
    assert_eq!(platform.sim.invitations().len(), 1);
}

// 5. One person, two stages ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn two_stages_always_take_two_people() {
    let platform = Platform::start().await;
    let out = platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "first@contoso.example",
        "--second-stage-approver",
        "second@contoso.example",
        "--fallback-approver",
        "backup@contoso.example",
        "--escalate-after-days",
        "2",
        "--approval-window-days",
        "10",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let handler = platform.start_handler().await;
    let email = platform.address("stages");
    sign_up_and_verify(&platform, &handler, &email, "Two").await;
    approver_link(&platform, "first@contoso.example", &email).await;
    let t0 = requests_for(&platform, &email).await[0]
        .verified_at
        .unwrap();

    // Stage 1 escalates to the fallback approver, who approves it.
    let (s, body) = handler
        .invoke_cleanup(&rfc3339(t0 + time::Duration::days(3)))
        .await;
    assert_eq!(s, 200, "{body}");
    let escalation = approver_link(&platform, "backup@contoso.example", &email).await;
    let (status, body) = decide(&handler, &escalation, "approve", "", false).await;
    assert_eq!(status, 200, "{body}");
    approver_link(&platform, "second@contoso.example", &email).await;
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(
        (request.status, request.stage),
        (RequestStatus::PendingApproval, 2)
    );
    let started = request.stage_started_at.unwrap();

    // Stage 1 took long (the proof was five days before stage 2): stage 2 still gets its own
    // two days before it escalates.
    let store = platform.store();
    let stored = b2b_signup::store::requests::get(&store, &request.id)
        .await
        .unwrap()
        .unwrap();
    let mut long_ago = stored.request.clone();
    long_ago.verified_at = Some(started - time::Duration::days(5));
    b2b_signup::store::requests::save(&store, &long_ago, &stored.etag)
        .await
        .unwrap();
    let backup_mails = platform.mails_to("backup@contoso.example").len();
    let (_, body) = handler
        .invoke_cleanup(&rfc3339(started + time::Duration::days(1)))
        .await;
    assert!(body.to_string().contains("escalated 0"), "{body}");

    // Three days into stage 2 it escalates, but not to whoever approved stage 1.
    let (_, body) = handler
        .invoke_cleanup(&rfc3339(started + time::Duration::days(3)))
        .await;
    assert!(body.to_string().contains("escalated 1"), "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        platform.mails_to("backup@contoso.example").len(),
        backup_mails,
        "no second-stage link for the first stage's approver"
    );
    // Nor can they, or an alias of theirs, decide stage 2 another way.
    for who in ["backup@contoso.example", "Backup+2@contoso.example"] {
        let out = platform.cli(&["requests", "approve", &request.id, "--as", who]);
        assert_ne!(out.code, 0, "{who}: {}", out.stdout);
    }
    // Their stage-1 link, posted again, only shows that stage 1 was decided.
    decide(&handler, &escalation, "approve", "", false).await;
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingApproval
    );
    let second = approver_link(&platform, "second@contoso.example", &email).await;
    let (status, body) = decide(&handler, &second, "approve", "", false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requester_cannot_approve_through_an_alias() {
    let platform = Platform::start().await;
    let lead = platform.address("lead");
    let alias = platform.address("Lead+approvals");
    platform.add_partner_policy(&["--action", "approve", "--approver", &alias]);
    let handler = platform.start_handler().await;
    sign_up_and_verify(&platform, &handler, &lead, "Lead").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        platform.mails_to(&alias).is_empty(),
        "the requester's alias is not asked to approve"
    );
    let id = requests_for(&platform, &lead).await[0].id.clone();
    let out = platform.cli(&["requests", "approve", &id, "--as", &alias]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert_eq!(
        requests_for(&platform, &lead).await[0].status,
        RequestStatus::PendingApproval
    );
}

// 6. Signed-in approvers ----------------------------------------------------------------------

/// Starts the handler with the platform's settings: `None` when it serves, or its exit code
/// and stderr when it refuses to start.
async fn refusal(platform: &Platform) -> Option<(i32, String)> {
    match platform.start_handler_or_exit().await {
        Ok(mut handler) => {
            assert_eq!(
                handler.exit_code_within(Duration::from_millis(500)).await,
                None
            );
            None
        }
        Err(exit) => Some(exit),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_in_approvers_need_the_platforms_authentication_on() {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_APPROVERS_MUST_SIGN_IN", "true");
    let (code, stderr) = refusal(&platform).await.expect("refuses to start");
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("handler: setting PORTAL_APPROVERS_MUST_SIGN_IN"),
        "{stderr}"
    );
    assert!(stderr.contains("WEBSITE_AUTH_ENABLED"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    platform.set("WEBSITE_AUTH_ENABLED", "True");
    assert!(
        refusal(&platform).await.is_none(),
        "serves with Authentication on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_approver_is_matched_by_object_id_not_by_name() {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_APPROVERS_MUST_SIGN_IN", "true");
    platform.set("WEBSITE_AUTH_ENABLED", "True");
    let boss = platform.sim.add_member("boss@contoso.example", "Boss");
    let mallory = platform
        .sim
        .add_member("mallory@contoso.example", "Mallory");
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let handler = platform.start_handler().await;
    let email = platform.address("signed");
    sign_up_and_verify(&platform, &handler, &email, "Signed").await;
    let link = approver_link(&platform, "boss@contoso.example", &email).await;
    let token = token_of(&link);
    let post = |id: Option<&str>, name: Option<&str>| {
        let mut rb = handler
            .forward(Method::POST, "/api/approve")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!(
                "token={}&decision=approve",
                url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            ));
        if let Some(id) = id {
            rb = rb.header("X-MS-CLIENT-PRINCIPAL-ID", id);
        }
        if let Some(name) = name {
            rb = rb.header("X-MS-CLIENT-PRINCIPAL-NAME", name);
        }
        rb
    };
    let page = post(None, None).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains(
            "href=\"/.auth/login/aad?post_login_redirect_uri=%2Fapi%2Fapprove%3Ftoken%3D"
        ),
        "the page offers the platform's sign-in, back to this link: {page}"
    );
    assert!(
        page.contains("href=\"/.auth/logout?post_logout_redirect_uri="),
        "{page}"
    );
    for (id, name, why) in [
        (None, None, "not signed in"),
        (
            None,
            Some("boss@contoso.example"),
            "a name alone proves nothing",
        ),
        (
            Some(mallory.as_str()),
            Some("boss@contoso.example"),
            "someone else named boss",
        ),
    ] {
        let status = post(id, name).send().await.unwrap().status();
        assert_eq!(status, 403, "{why}");
    }
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingApproval
    );
    let status = post(Some(&boss.to_uppercase()), Some("renamed@contoso.example"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the object id decides");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_and_confirmations_posted_from_another_site_are_refused() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let handler = platform.start_handler().await;
    let email = platform.address("origin");
    let resp = submit_form(&handler, &partner_fields(&email, "Origin")).await;
    assert_eq!(resp.status(), 200);
    let verify = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");
    let forged = |path: &str, body: String, origin: &str| {
        handler
            .forward(Method::POST, path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", origin)
            .body(body)
    };
    let body = format!("token={}", urlencode(&token_of(&verify)));
    for origin in ["https://evil.example", "null"] {
        let status = forged("/api/signup/verify", body.clone(), origin)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 403, "{origin}");
    }
    assert_eq!(
        settled_requests(&platform, &email).await[0].status,
        RequestStatus::PendingVerification
    );
    // From the portal's own page (its public origin), it goes through.
    let status = forged("/api/signup/verify", body, "http://localhost:7071")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let link = approver_link(&platform, "boss@contoso.example", &email).await;
    let body = format!("token={}&decision=approve", urlencode(&token_of(&link)));
    let status = forged("/api/approve", body, "https://evil.example")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingApproval
    );
}

// 7. Retries use the admitting policy ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_grants_what_the_admitting_policy_says_not_a_newer_one() {
    let platform = Platform::start().await;
    let partners = platform.sim.add_group("Partners");
    let secret = platform.sim.add_group("Secret project");
    platform.add_partner_policy(&[
        "--include-subdomains",
        "--action",
        "auto",
        "--group",
        &partners,
    ]);
    let handler = platform.start_handler().await;
    let email = platform.address("retry");
    platform
        .sim
        .inject_fault(Fault::new(FaultRoute::Invitations, 503).times(100));
    let (status, _) = sign_up_and_verify(&platform, &handler, &email, "Retry").await;
    assert_eq!(status, 202);
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::InviteFailed
    );
    platform.sim.clear_faults();
    // Meanwhile the admin adds a stricter, more specific policy with another group.
    let out = platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "boss@contoso.example",
        "--group",
        &secret,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, body) = handler
        .invoke_cleanup(&rfc3339(
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited,
        "{body}"
    );
    let user = platform.sim.invitations()[0].user_id.clone();
    assert_eq!(platform.sim.group_members(&partners), vec![user]);
    assert!(
        platform.sim.group_members(&secret).is_empty(),
        "not the new policy's group"
    );
    assert!(platform
        .mails_to("boss@contoso.example")
        .iter()
        .all(|m| !m.text.contains(&email)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_stops_when_the_admitting_policy_now_wants_approvers_or_is_gone() {
    let platform = Platform::start().await;
    let group = platform.sim.add_group("Partners");
    platform.add_partner_policy(&["--action", "auto", "--group", &group]);
    let handler = platform.start_handler().await;
    let email = platform.address("changed");
    platform
        .sim
        .inject_fault(Fault::new(FaultRoute::Invitations, 503).times(100));
    sign_up_and_verify(&platform, &handler, &email, "Changed").await;
    platform.sim.clear_faults();
    let out = platform.add_partner_policy(&[
        "--replace",
        "--action",
        "approve",
        "--approver",
        "boss@contoso.example",
        "--group",
        &group,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, body) = handler
        .invoke_cleanup(&rfc3339(
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(
        request.status,
        RequestStatus::Failed,
        "{:?}",
        request.last_error
    );
    assert!(
        platform.sim.invitations().is_empty(),
        "nobody invited without the approver"
    );
    assert!(request.last_error.unwrap().contains("approval"));
}

// 8. A removed approver's link ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_approvers_link_shows_nothing_of_the_request() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "stays@contoso.example",
        "--approver",
        "leaves@contoso.example",
    ]);
    let handler = platform.start_handler().await;
    let email = platform.address("removed");
    sign_up_and_verify(&platform, &handler, &email, "Removed").await;
    let gone = approver_link(&platform, "leaves@contoso.example", &email).await;
    let stays = approver_link(&platform, "stays@contoso.example", &email).await;
    let invalid = handler
        .forward(Method::GET, "/api/approve?token=v1.k2.AAAA.AAAA")
        .send()
        .await
        .unwrap();
    let invalid_status = invalid.status();
    let invalid_page = invalid.text().await.unwrap();
    let out = platform.add_partner_policy(&[
        "--replace",
        "--action",
        "approve",
        "--approver",
        "stays@contoso.example",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let check = |label: &'static str| {
        let handler = &handler;
        let gone = gone.clone();
        let email = email.clone();
        let invalid_page = invalid_page.clone();
        async move {
            let resp = handler
                .forward(Method::GET, &path_of(&gone))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), invalid_status, "{label}: GET");
            let page = resp.text().await.unwrap();
            assert_eq!(
                page, invalid_page,
                "{label}: the same page as a broken link"
            );
            assert!(
                !page.contains(&email) && !page.contains("Removed"),
                "{label}"
            );
            let (status, page) = decide(handler, &gone, "deny", "", false).await;
            assert_eq!(status, invalid_status.as_u16(), "{label}: POST");
            assert!(!page.contains("stays@"), "{label}: not who decided");
        }
    };
    check("while open").await;
    let (status, _) = decide(&handler, &stays, "approve", "", false).await;
    assert_eq!(status, 200);
    check("after the decision").await;
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// 9. Addresses in error text --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn addresses_quoted_in_graph_errors_are_masked_everywhere() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("quoted");
    platform.sim.inject_fault(
        Fault::new(FaultRoute::Invitations, 400)
            .message(&format!("Invitation to {email} could not be completed"))
            .times(100),
    );
    sign_up_and_verify(&platform, &handler, &email, "Quoted").await;
    let request = requests_for(&platform, &email).await.remove(0);
    let error = request.last_error.clone().unwrap();
    assert!(error.contains("could not be completed"), "{error}");
    assert!(!error.contains(&email), "{error}");
    assert!(error.contains("sha256:"), "{error}");
    let trail = b2b_signup::store::audit::for_request(&platform.store(), &request.id)
        .await
        .unwrap();
    assert!(
        trail.iter().all(|e| !e.detail.contains(&email)),
        "{trail:?}"
    );
    let show = platform.cli(&["requests", "show", &request.id]);
    assert!(
        show.stdout.contains("could not be completed"),
        "{}",
        show.stdout
    );
    // (The handler's log is checked for the address when `handler` is dropped.)
}

// 10. Claims -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn two_take_overs_of_a_stale_claim_leave_one_open_request() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let email = platform.address("stale");
    let store = platform.store();
    // A claim left behind by a request that closed without freeing it (a crash in between).
    let old = b2b_signup::store::requests::new_id();
    let address = b2b_signup::core::email::EmailAddress::parse(&email).unwrap();
    let mut claim = Row::new(
        format!(
            "open-{}",
            b2b_signup::store::key_hash(&address.identity_key())
        ),
        "open",
    );
    claim.set("RequestId", old.as_str());
    store.insert(TableName::Requests, &claim).await.unwrap();
    let (a, b) = (
        platform.start_handler().await,
        platform.start_handler().await,
    );
    for _ in 0..3 {
        let fields = partner_fields(&email, "Stale");
        let (ra, rb) = tokio::join!(submit_form(&a, &fields), submit_form(&b, &fields));
        assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
        let all = settled_requests(&platform, &email).await;
        let open: Vec<_> = all.iter().filter(|r| !r.status.is_closed()).collect();
        assert_eq!(open.len(), 1, "{all:#?}");
        if platform.wait_for_mails(&email, 2).await.len() >= 2 {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_an_old_request_leaves_a_newer_requests_claim_alone() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let handler = platform.start_handler().await;
    let email = platform.address("twice");
    // An old request, waiting for its proof long past the deadline, whose claim a newer
    // request took over (as after a crash).
    let store = platform.store();
    let address = b2b_signup::core::email::EmailAddress::parse(&email).unwrap();
    let old = b2b_signup::core::request::SignupRequest::new(
        b2b_signup::store::requests::new_id(),
        b2b_signup::core::request::Applicant {
            email: address.clone(),
            first_name: "Old".into(),
            last_name: "Lovelace".into(),
            organisation: "Partner AB".into(),
            justification: None,
            language: b2b_signup::core::policy::Language::En,
        },
        OffsetDateTime::now_utc() - time::Duration::days(3),
    );
    b2b_signup::store::requests::insert(&store, &old)
        .await
        .unwrap();
    sign_up_and_verify(&platform, &handler, &email, "New").await;
    let newer = requests_for(&platform, &email)
        .await
        .into_iter()
        .find(|r| r.id != old.id)
        .unwrap();
    assert_eq!(newer.status, RequestStatus::PendingApproval);
    // The timer expires the old one, and frees only what is its own.
    let (s, body) = handler
        .invoke_cleanup(&rfc3339(
            OffsetDateTime::now_utc() + time::Duration::minutes(5),
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    let all = requests_for(&platform, &email).await;
    assert_eq!(
        all.iter().find(|r| r.id == old.id).unwrap().status,
        RequestStatus::Expired
    );
    // Another sign-up joins nothing new: the newer request still holds the address.
    assert_eq!(
        submit_form(&handler, &partner_fields(&email, "Again"))
            .await
            .status(),
        200
    );
    let all = settled_requests(&platform, &email).await;
    let open: Vec<_> = all.iter().filter(|r| !r.status.is_closed()).collect();
    assert_eq!(open.len(), 1, "{all:#?}");
    assert_eq!(open[0].id, newer.id);
}

// 11. Rows that would grow forever -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_rows_and_old_audit_entries_are_purged() {
    let mut platform = Platform::start().await;
    platform.set("AUDIT_RETENTION_DAYS", "30");
    platform.add_partner_policy(&["--action", "auto"]);
    let store = platform.store();
    let old = OffsetDateTime::now_utc() - time::Duration::days(40);
    b2b_signup::store::audit::record(
        &store,
        b2b_signup::store::audit::AuditEntry::new(old, "timer", "test.old").detail("old"),
    )
    .await
    .unwrap();
    // Counters of an hour long gone, as anonymous traffic leaves them.
    for k in 0..5 {
        let mut row = Row::new(format!("ip-stale{k}"), "400000-0");
        row.set("Count", 1u32);
        store.insert(TableName::Limits, &row).await.unwrap();
    }
    let handler = platform.start_handler().await;
    let email = platform.address("purge");
    submit_form(&handler, &partner_fields(&email, "Purge")).await;
    platform.wait_for_mails(&email, 1).await;
    let before = store.query(TableName::Limits, None).await.unwrap().len();
    assert!(before >= 8, "{before}");
    let (s, body) = handler
        .invoke_cleanup(&rfc3339(OffsetDateTime::now_utc()))
        .await;
    assert_eq!(s, 200, "{body}");
    let left = store.query(TableName::Limits, None).await.unwrap();
    assert!(
        left.iter()
            .all(|r| !r.partition_key.starts_with("ip-stale")),
        "old windows are gone: {left:?}"
    );
    assert!(!left.is_empty(), "this hour's counters stay");
    let audit = b2b_signup::store::audit::since(&store, old - time::Duration::days(1))
        .await
        .unwrap();
    assert!(audit.iter().all(|e| e.action != "test.old"), "{audit:?}");
    assert!(audit.iter().any(|e| e.action == "request.submitted"));
}

// 12. Plain-text SMTP ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn plain_smtp_to_another_machine_is_refused_unless_allowed_on_purpose() {
    let base = Platform::start().await;
    for (url, allow, starts) in [
        ("smtp://mail.contoso.example:587", None, false),
        (
            "smtp://mail.contoso.example:587?tls=opportunistic",
            None,
            false,
        ),
        ("smtp://mail.contoso.example:587?tls=required", None, true),
        ("smtps://mail.contoso.example:465", None, true),
        ("smtp://mail.contoso.example:25", Some("true"), true),
    ] {
        let mut changes = vec![("SMTP_URL", url)];
        if let Some(a) = allow {
            changes.push(("SMTP_ALLOW_PLAINTEXT", a));
        }
        match refusal(&base.with(&changes)).await {
            None => assert!(starts, "{url} should be refused"),
            Some((code, stderr)) => {
                assert!(!starts, "{url} should start: {stderr}");
                assert_eq!(code, 2);
                assert!(stderr.starts_with("handler: setting SMTP_URL"), "{stderr}");
                assert!(stderr.contains("TLS"), "{stderr}");
            }
        }
    }
}
