//! Faults on every outside call of the partner's and the approver's paths: Graph (token,
//! invitation, group add, app role, batch) answering 429 with Retry-After, 500/503, hanging
//! past the timeout, or dropping the connection; SMTP refusing to connect or deferring; Table
//! Storage going away. Every request ends in a terminal or retryable state, the timer finishes
//! the retryable ones, nothing is lost, and nobody gets a second identity or a second mail.

mod common;

use std::time::Duration;

use b2b_signup::core::request::RequestStatus;
use common::*;
use graph_simulator::{Fault, FaultRoute};
use time::OffsetDateTime;

/// Signs up through an auto policy with one group and one app role while `fault` is active,
/// then clears it and lets the timer finish. Returns what the partner saw after confirming.
async fn graph_fault_case(fault: Fault, label: &str) {
    let platform = Platform::start().await;
    let group = platform.sim.add_group("Partners");
    let role = uuid::Uuid::from_u128(42);
    let sp = platform.sim.add_service_principal("Partner app", &[role]);
    let out = platform.add_partner_policy(&[
        "--action",
        "auto",
        "--group",
        &group,
        "--app-role",
        &format!("{sp}:{role}"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let handler = platform.start_handler().await;
    let email = platform.address("fault");
    platform.sim.inject_fault(fault);
    let (status, _page) = sign_up_and_verify(&platform, &handler, &email, "Fault").await;
    let request = requests_for(&platform, &email).await.remove(0);
    assert!(
        matches!(
            request.status,
            RequestStatus::InviteFailed | RequestStatus::Invited
        ),
        "{label}: a terminal or retryable state, got {:?}",
        request.status
    );
    if request.status == RequestStatus::InviteFailed {
        assert_eq!(
            status, 202,
            "{label}: the partner is told access is being set up"
        );
        assert!(
            request.last_error.is_some(),
            "{label}: the error is recorded"
        );
    }
    platform.sim.clear_faults();
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let (s, body) = handler.invoke_cleanup(&rfc3339(later)).await;
    assert_eq!(s, 200, "{label}: {body}");
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(
        request.status,
        RequestStatus::Invited,
        "{label}: the timer finished it: {body}"
    );
    let user_id = request.invited_user_id.clone().unwrap();
    let identities = platform
        .sim
        .users()
        .into_iter()
        .filter(|u| u.mail.eq_ignore_ascii_case(&email))
        .count();
    assert_eq!(identities, 1, "{label}: one identity");
    assert_eq!(
        platform.sim.group_members(&group),
        vec![user_id.clone()],
        "{label}: one membership"
    );
    assert_eq!(
        platform.sim.app_role_assignments(&sp).len(),
        1,
        "{label}: one app role"
    );
    let mails = platform.wait_for_mails(&email, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let invitation_mails = platform
        .mails_to(&email)
        .iter()
        .filter(|m| m.text.contains("/redeem"))
        .count();
    assert_eq!(
        invitation_mails,
        1,
        "{label}: one invitation mail ({} mails)",
        mails.len()
    );
    // A second timer pass changes nothing.
    handler
        .invoke_cleanup(&rfc3339(later + time::Duration::hours(1)))
        .await;
    assert_invited_once(&platform, &email);
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_token_failure() {
    graph_fault_case(Fault::new(FaultRoute::Token, 500).times(100), "token 500").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invitation_throttled_with_retry_after() {
    graph_fault_case(
        Fault::new(FaultRoute::Invitations, 429)
            .retry_after(120)
            .times(100),
        "invite 429",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invitation_unavailable() {
    graph_fault_case(
        Fault::new(FaultRoute::Invitations, 503).times(100),
        "invite 503",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invitation_hangs_past_the_timeout() {
    graph_fault_case(
        Fault::slow(FaultRoute::Invitations, Duration::from_secs(30)).times(100),
        "invite timeout",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invitation_connection_dropped() {
    graph_fault_case(
        Fault::drop_connection(FaultRoute::Invitations).times(100),
        "invite dropped",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_add_fails_inside_the_batch() {
    graph_fault_case(
        Fault::new(FaultRoute::AddMember, 503).times(100),
        "group add 503",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn app_role_throttled_inside_the_batch() {
    graph_fault_case(
        Fault::new(FaultRoute::AppRoleAssignment, 429)
            .retry_after(60)
            .times(100),
        "app role 429",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_batch_fails() {
    graph_fault_case(Fault::new(FaultRoute::Batch, 500).times(100), "batch 500").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_blip_is_absorbed_without_the_timer() {
    // One 503, then Graph answers: the form's own retry covers it.
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("blip");
    platform
        .sim
        .inject_fault(Fault::new(FaultRoute::Invitations, 503).times(1));
    let (status, page) = sign_up_and_verify(&platform, &handler, &email, "Blip").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_down_at_submission_loses_nothing() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let down = platform.with(&[("SMTP_URL", &format!("smtp://127.0.0.1:{}", free_port()))]);
    let broken = down.start_handler().await;
    let email = platform.address("nomail");
    let resp = submit_form(&broken, &partner_fields(&email, "No")).await;
    assert_eq!(resp.status(), 200, "the same answer as always");
    let request = settled_requests(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::PendingVerification);
    // The mail is in the outbox, deferred after its first attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mail = loop {
        let mails = outbox(&platform).await;
        if let Some(m) = mails
            .iter()
            .find(|m| m.letter.to == email && m.delivery.attempts > 0)
        {
            break m.clone();
        }
        assert!(std::time::Instant::now() < deadline, "{mails:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        mail.delivery.state,
        b2b_signup::core::outbox::MailState::Pending
    );
    assert!(platform.mails_to(&email).is_empty());
    // The timer of an instance whose mail works sends it: once, however often it runs.
    let working = platform.start_handler().await;
    let later = OffsetDateTime::now_utc() + time::Duration::minutes(5);
    let (s, body) = working.invoke_cleanup(&rfc3339(later)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(platform.wait_for_mails(&email, 1).await.len(), 1, "{body}");
    working
        .invoke_cleanup(&rfc3339(later + time::Duration::minutes(5)))
        .await;
    assert_eq!(platform.mails_to(&email).len(), 1, "not sent twice");
    let all = requests_for(&platform, &email).await;
    assert_eq!(all.len(), 1, "no second request");
    assert_eq!(all[0].id, request.id);
    // The link works.
    let token = token_of(&platform.mails_to(&email)[0].link_containing("/api/signup/verify"));
    let resp = post_form(&working, "/api/signup/verify", &[("token", &token)]).await;
    assert_eq!(resp.status(), 200);
}

async fn invitation_mail_fault_case(smtp_url: String, label: &str) {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let working = platform.start_handler().await;
    let email = platform.address("mailfault");
    assert_eq!(
        submit_form(&working, &partner_fields(&email, "Mail"))
            .await
            .status(),
        200
    );
    let link = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");
    // The confirm click lands on an instance whose mail server fails: access is set up all
    // the same (the page shows the redeem link), and the invitation mail waits in the outbox.
    let failing = platform
        .with(&[("SMTP_URL", &smtp_url)])
        .start_handler()
        .await;
    let resp = post_form(
        &failing,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    assert_eq!(resp.status(), 200, "{label}");
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::Invited, "{label}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = outbox(&platform)
            .await
            .into_iter()
            .filter(|m| {
                m.letter.kind == b2b_signup::core::outbox::MailKind::Invitation
                    && m.delivery.state == b2b_signup::core::outbox::MailState::Pending
            })
            .count();
        if waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{label}: the invitation mail waits"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The timer on a healthy instance sends the mail, and invites nobody again.
    let (s, body) = working
        .invoke_cleanup(&rfc3339(
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(platform.sim.invitations().len(), 1, "{label}: invited once");
    assert_eq!(platform.wait_for_mails(&email, 2).await.len(), 2, "{label}");
    assert_eq!(
        platform
            .mails_to(&email)
            .iter()
            .filter(|m| m.text.contains("/redeem"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_connect_failure_for_the_invitation_mail() {
    invitation_mail_fault_case(
        format!("smtp://127.0.0.1:{}", free_port()),
        "connect refused",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_deferral_for_the_invitation_mail() {
    let smtp = FaultySmtp::start("TempFail");
    invitation_mail_fault_case(smtp.url(), "451 deferred").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_permanent_refusal_ends_in_the_dead_letters_for_an_operator() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let working = platform.start_handler().await;
    let email = platform.address("refused");
    submit_form(&working, &partner_fields(&email, "Ref")).await;
    let link = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");
    let smtp = FaultySmtp::start("PermFailNamed");
    let failing = platform
        .with(&[("SMTP_URL", &smtp.url())])
        .start_handler()
        .await;
    let resp = post_form(
        &failing,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    assert_eq!(resp.status(), 200);
    // The refusal is final at once: no retries, a dead letter an admin sees.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let out = platform.cli(&["mail", "list", "--failed", "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        if list.as_array().unwrap().len() == 1 {
            break list[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed["kind"], "invitation");
    assert_eq!(failed["attempts"], 1);
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("550"), "{error}");
    assert!(
        error.contains("sha256:"),
        "the quoted address is masked: {error}"
    );
    assert!(!error.contains(&email), "{error}");
    let plain = platform.cli(&["mail", "list", "--failed"]);
    assert!(
        plain.stdout.contains(failed["id"].as_str().unwrap()),
        "{}",
        plain.stdout
    );
    // The timer leaves dead mail alone.
    working
        .invoke_cleanup(&rfc3339(
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
        .await;
    assert_eq!(
        platform.mails_to(&email).len(),
        1,
        "only the verification mail"
    );
    // Once the cause is fixed, the admin retries it (here: with the working mail server).
    let retried = platform.cli(&["mail", "retry", failed["id"].as_str().unwrap()]);
    assert_eq!(retried.code, 0, "{}{}", retried.stdout, retried.stderr);
    assert!(retried.stdout.contains("delivered"), "{}", retried.stdout);
    assert_eq!(platform.wait_for_mails(&email, 2).await.len(), 2);
    let again = platform.cli(&["mail", "retry", "--all"]);
    assert_eq!(again.code, 0, "nothing left to retry: {}", again.stdout);
    assert_eq!(platform.mails_to(&email).len(), 2, "not sent twice");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn table_storage_going_away_loses_nothing() {
    let azurite = StorageOutage::start();
    let base = Platform::start().await;
    let platform = base.with(&[("PORTAL_STORAGE", &azurite.connection_string())]);
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("tables");

    // Storage down at submission: 503, nothing sent.
    azurite.cut();
    let resp = submit_form(&handler, &partner_fields(&email, "Tab")).await;
    assert_eq!(resp.status(), 503);
    assert!(platform.mails_to(&email).is_empty());
    azurite.restore();
    assert_eq!(
        submit_form(&handler, &partner_fields(&email, "Tab"))
            .await
            .status(),
        200
    );
    let link = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");

    // Storage down at confirmation: 503; the same link works once storage is back.
    azurite.cut();
    let resp = post_form(
        &handler,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    assert_eq!(resp.status(), 503);
    azurite.restore();
    let resp = post_form(
        &handler,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let all = requests_for(&platform, &email).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, RequestStatus::Invited);
    assert_eq!(platform.sim.invitations().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn table_storage_lost_between_invitation_and_its_record_is_finished_by_the_timer() {
    let azurite = StorageOutage::start();
    let base = Platform::start().await;
    let platform = base.with(&[("PORTAL_STORAGE", &azurite.connection_string())]);
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("midway");
    submit_form(&handler, &partner_fields(&email, "Mid")).await;
    let link = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");
    // Graph is slow enough that storage can vanish while the invitation is in flight.
    platform
        .sim
        .inject_fault(Fault::slow(FaultRoute::Invitations, Duration::from_millis(1500)).times(1));
    let token = token_of(&link);
    let fields = [("token", token.as_str())];
    let confirm = post_form(&handler, "/api/signup/verify", &fields);
    let cut = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        azurite.cut();
    };
    let (resp, ()) = tokio::join!(confirm, cut);
    assert_eq!(resp.status(), 503, "storage failed mid-way");
    azurite.restore();
    // The request is approved (saved before the invitation), its invitation not recorded.
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::Approved);
    assert!(request.invited_user_id.is_none());
    // The timer picks it up after its grace period: Graph resolves the address to the same
    // guest, so there is still one identity and one invitation mail.
    let later = OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let (s, body) = handler.invoke_cleanup(&rfc3339(later)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited,
        "{body}"
    );
    assert_invited_once(&platform, &email);
}

/// One identity in the directory and one invitation mail for `email`, however many times
/// setting up its access was tried.
fn assert_invited_once(platform: &Platform, email: &str) {
    assert_eq!(
        platform
            .sim
            .users()
            .into_iter()
            .filter(|u| u.mail.eq_ignore_ascii_case(email))
            .count(),
        1
    );
    assert_eq!(
        platform
            .mails_to(email)
            .iter()
            .filter(|m| m.text.contains("/redeem"))
            .count(),
        1
    );
}
