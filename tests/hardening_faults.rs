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
async fn smtp_down_at_verification_loses_nothing() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let down = platform.with(&[("SMTP_URL", &format!("smtp://127.0.0.1:{}", free_port()))]);
    let broken = down.start_handler().await;
    let email = platform.address("nomail");
    let resp = submit_form(&broken, &partner_fields(&email, "No")).await;
    assert_eq!(resp.status(), 200, "the same answer as always");
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::PendingVerification);
    assert!(platform.mails_to(&email).is_empty());
    // The partner tries again once mail works: the same request, the link arrives.
    let working = platform.start_handler().await;
    assert_eq!(
        submit_form(&working, &partner_fields(&email, "No"))
            .await
            .status(),
        200
    );
    assert_eq!(platform.wait_for_mails(&email, 1).await.len(), 1);
    let all = requests_for(&platform, &email).await;
    assert_eq!(all.len(), 1, "no second request");
    assert_eq!(all[0].id, request.id);
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
    // The confirm click lands on an instance whose mail server fails.
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
    assert_eq!(resp.status(), 202, "{label}");
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::InviteFailed, "{label}");
    assert!(
        request.invited_user_id.is_some(),
        "{label}: the invitation itself is kept"
    );
    assert!(
        request
            .last_error
            .as_deref()
            .unwrap()
            .contains("invitation mail"),
        "{label}: {:?}",
        request.last_error
    );
    // The timer on a healthy instance sends the mail, and invites nobody again.
    let (s, body) = working
        .invoke_cleanup(&rfc3339(
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited,
        "{label}: {body}"
    );
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
async fn smtp_permanent_refusal_ends_in_failed_for_an_operator() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let working = platform.start_handler().await;
    let email = platform.address("refused");
    submit_form(&working, &partner_fields(&email, "Ref")).await;
    let link = platform.wait_for_mails(&email, 1).await[0].link_containing("/api/signup/verify");
    let smtp = FaultySmtp::start("PermFail");
    let failing = platform
        .with(&[("SMTP_URL", &smtp.url())])
        .start_handler()
        .await;
    post_form(
        &failing,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(
        request.status,
        RequestStatus::Failed,
        "a 5xx refusal is final: {:?}",
        request.last_error
    );
    let list = platform.cli(&["requests", "list", "--status", "failed"]);
    assert!(list.stdout.contains(&request.id), "visible to the operator");
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
