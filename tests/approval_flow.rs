//! Approvers decide from their inbox: personal links, pages that change nothing on GET, the
//! first decision wins, and the timer's reminders, escalation and expiry.

mod common;

use b2b_signup::core::request::RequestStatus;
use b2b_signup::core::token::{new_nonce, TokenClaims, TokenPurpose};
use common::*;
use reqwest::Method;
use time::{Duration, OffsetDateTime};

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_invites_once_with_the_approver_as_sponsor() {
    let platform = Platform::start().await;
    let boss = platform.sim.add_member("boss@contoso.example", "Boss");
    let group = platform.sim.add_group("Partners");
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "boss@contoso.example",
        "--approver",
        "deputy@contoso.example",
        "--group",
        &group,
    ]);
    let handler = platform.start_handler().await;
    let email = platform.address("ada");
    let (status, _) = sign_up_and_verify(&platform, &handler, &email, "Ada").await;
    assert_eq!(status, 200);
    let boss_link = approver_link(&platform, "boss@contoso.example", &email).await;
    let deputy_link = approver_link(&platform, "deputy@contoso.example", &email).await;
    assert_ne!(
        token_of(&boss_link),
        token_of(&deputy_link),
        "personal links"
    );

    // Scanners fetch both links, with GET and HEAD: nothing is decided.
    for link in [&boss_link, &deputy_link] {
        for method in [Method::GET, Method::HEAD] {
            let resp = handler
                .forward(method, &path_of(link))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingApproval
    );

    let (status, _page) = decide(&handler, &boss_link, "approve", "", false).await;
    assert_eq!(status, 200);
    let invitations = platform.sim.invitations();
    assert_eq!(invitations.len(), 1);
    assert_eq!(
        invitations[0].sponsors,
        vec![boss.clone()],
        "the approver sponsors the guest"
    );
    assert_eq!(platform.sim.group_members(&group).len(), 1);
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::Invited);
    assert_eq!(
        request.decision.as_ref().unwrap().by,
        "boss@contoso.example"
    );
    assert!(platform.wait_for_mails(&email, 2).await[1]
        .text
        .contains("login.microsoftonline.com/redeem"));

    // The deputy comes later: told who decided, nothing changes; replaying the boss's link too.
    let later = handler
        .forward(Method::GET, &path_of(&deputy_link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(later.contains("boss@contoso.example"), "{later}");
    let (status, page) = decide(&handler, &deputy_link, "deny", "", false).await;
    assert_eq!(status, 409);
    assert!(page.contains("boss@contoso.example"));
    assert_eq!(
        decide(&handler, &boss_link, "approve", "", false).await.0,
        409
    );
    assert_eq!(platform.sim.invitations().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn denial_mails_the_requester_and_writes_nothing_to_graph() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "approve", "--approver", "boss@contoso.example"]);
    let handler = platform.start_handler().await;
    for (local, share) in [("shared", true), ("private", false)] {
        let email = platform.address(local);
        sign_up_and_verify(&platform, &handler, &email, "Sam").await;
        let link = approver_link(&platform, "boss@contoso.example", &email).await;
        let (status, _) = decide(&handler, &link, "deny", "Contract not signed yet", share).await;
        assert_eq!(status, 200);
        assert_eq!(
            requests_for(&platform, &email).await[0].status,
            RequestStatus::Denied
        );
        let mails = platform.wait_for_mails(&email, 2).await;
        assert_eq!(mails.len(), 2);
        assert_eq!(
            mails[1].text.contains("Contract not signed yet"),
            share,
            "the reason only when shared"
        );
    }
    assert!(platform.sim.invitations().is_empty());
    let calls = platform.sim.calls();
    assert_eq!(
        calls.invitations + calls.add_member + calls.app_role + calls.batch,
        0,
        "no Graph write"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_approvers_at_the_same_moment_make_one_decision() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "a1@contoso.example",
        "--approver",
        "a2@contoso.example",
    ]);
    let handler = platform.start_handler().await;
    let email = platform.address("race");
    sign_up_and_verify(&platform, &handler, &email, "Race").await;
    let l1 = approver_link(&platform, "a1@contoso.example", &email).await;
    let l2 = approver_link(&platform, "a2@contoso.example", &email).await;
    let (r1, r2) = tokio::join!(
        decide(&handler, &l1, "approve", "", false),
        decide(&handler, &l2, "deny", "", false)
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "one wins, the other is told");
    let request = requests_for(&platform, &email).await.remove(0);
    let winner_approved = r1.0 == 200;
    assert_eq!(request.decision.as_ref().unwrap().approve, winner_approved);
    assert_eq!(
        platform.sim.invitations().len(),
        usize::from(winner_approved)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_expired_foreign_and_self_tokens_are_refused() {
    let platform = Platform::start().await;
    let partner_lead = platform.address("lead");
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "boss@contoso.example",
        "--approver",
        &partner_lead,
    ]);
    let handler = platform.start_handler().await;
    // The partner's lead is an approver, and signs up themself: they are not asked about their
    // own request, and a link made out to them anyway decides nothing.
    sign_up_and_verify(&platform, &handler, &partner_lead, "Lead").await;
    approver_link(&platform, "boss@contoso.example", &partner_lead).await;
    assert_eq!(
        platform.mails_to(&partner_lead).len(),
        1,
        "only the verification mail"
    );
    let request = requests_for(&platform, &partner_lead).await.remove(0);
    let keys = signing_keys();
    let own = format!(
        "http://localhost:7071/api/approve?token={}",
        keys.sign(&TokenClaims {
            purpose: TokenPurpose::Decide,
            request_id: request.id.clone(),
            subject: b2b_signup::core::email::EmailAddress::parse(&partner_lead)
                .unwrap()
                .identity_key(),
            stage: 1,
            expires_at: OffsetDateTime::now_utc().unix_timestamp() + 3600,
            nonce: new_nonce(),
        })
    );
    let resp = handler
        .forward(Method::GET, &path_of(&own))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "cannot decide one's own request");
    assert_eq!(decide(&handler, &own, "approve", "", false).await.0, 403);

    let claims = |subject: &str, expires: i64, purpose| TokenClaims {
        purpose,
        request_id: request.id.clone(),
        subject: subject.to_string(),
        stage: 1,
        expires_at: expires,
        nonce: new_nonce(),
    };
    let future = OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let expired = keys.sign(&claims(
        "boss@contoso.example",
        OffsetDateTime::now_utc().unix_timestamp() - 1,
        TokenPurpose::Decide,
    ));
    let stranger = keys.sign(&claims(
        "mallory@contoso.example",
        future,
        TokenPurpose::Decide,
    ));
    let verify_purpose = keys.sign(&claims(
        "boss@contoso.example",
        future,
        TokenPurpose::Verify,
    ));
    let boss_link = approver_link(&platform, "boss@contoso.example", &partner_lead).await;
    let mut forged = token_of(&boss_link);
    forged.pop();
    forged.push('x');
    for (token, expect) in [
        (expired, 400),
        // Someone the policy does not name: the same answer as a broken link.
        (stranger, 400),
        (verify_purpose, 400),
        (forged, 400),
    ] {
        let resp = post_form(
            &handler,
            "/api/approve",
            &[("token", &token), ("decision", "approve")],
        )
        .await;
        assert_eq!(resp.status(), expect, "{token}");
    }
    assert_eq!(
        requests_for(&platform, &partner_lead).await[0].status,
        RequestStatus::PendingApproval
    );
    assert!(platform.sim.invitations().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn reminders_escalation_and_expiry_happen_on_the_timer() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "slow@contoso.example",
        "--fallback-approver",
        "backup@contoso.example",
        "--reminder-after-days",
        "2",
        "--escalate-after-days",
        "4",
        "--approval-window-days",
        "6",
    ]);
    let handler = platform.start_handler().await;
    let email = platform.address("waiting");
    sign_up_and_verify(&platform, &handler, &email, "Wait").await;
    let t0 = requests_for(&platform, &email).await[0]
        .verified_at
        .unwrap();
    let count = |who: &str| {
        platform
            .mails_to(who)
            .iter()
            .filter(|m| m.text.contains(&email))
            .count()
    };
    platform
        .wait_for_mail("slow@contoso.example", |m| m.text.contains(&email))
        .await;
    assert_eq!(count("slow@contoso.example"), 1);

    handler
        .invoke_cleanup(&rfc3339(t0 + Duration::days(1)))
        .await;
    assert_eq!(
        count("slow@contoso.example"),
        1,
        "no reminder before its day"
    );
    let (s, body) = handler
        .invoke_cleanup(&rfc3339(t0 + Duration::days(2) + Duration::hours(1)))
        .await;
    assert_eq!(s, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count("slow@contoso.example") < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count("slow@contoso.example"), 2, "one reminder: {body}");
    handler
        .invoke_cleanup(&rfc3339(t0 + Duration::days(3)))
        .await;
    assert_eq!(count("slow@contoso.example"), 2, "only one reminder");
    assert_eq!(count("backup@contoso.example"), 0);
    handler
        .invoke_cleanup(&rfc3339(t0 + Duration::days(4) + Duration::hours(1)))
        .await;
    platform
        .wait_for_mail("backup@contoso.example", |m| m.text.contains(&email))
        .await;
    assert_eq!(
        count("backup@contoso.example"),
        1,
        "escalated to the fallback approver"
    );
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::PendingApproval
    );

    handler
        .invoke_cleanup(&rfc3339(t0 + Duration::days(6) + Duration::hours(1)))
        .await;
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::Expired);
    assert_eq!(
        platform.wait_for_mails(&email, 2).await.len(),
        2,
        "the requester is told"
    );
    // The escalation link, used after expiry, decides nothing.
    let link = approver_link(&platform, "backup@contoso.example", &email).await;
    assert_ne!(decide(&handler, &link, "approve", "", false).await.0, 200);
    assert!(platform.sim.invitations().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fallback_approver_can_decide_after_escalation() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "slow@contoso.example",
        "--fallback-approver",
        "backup@contoso.example",
        "--escalate-after-days",
        "1",
    ]);
    let handler = platform.start_handler().await;
    let email = platform.address("esc");
    sign_up_and_verify(&platform, &handler, &email, "Esc").await;
    let t0 = requests_for(&platform, &email).await[0]
        .verified_at
        .unwrap();
    handler
        .invoke_cleanup(&rfc3339(t0 + Duration::days(1) + Duration::hours(1)))
        .await;
    platform.wait_for_mails("backup@contoso.example", 1).await;
    let link = approver_link(&platform, "backup@contoso.example", &email).await;
    assert_eq!(decide(&handler, &link, "approve", "", false).await.0, 200);
    assert_eq!(platform.sim.invitations().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_stages_need_both_and_the_cli_decides_through_the_same_path() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "sponsor@contoso.example",
        "--second-stage-approver",
        "security@contoso.example",
    ]);
    let handler = platform.start_handler().await;
    let email = platform.address("staged");
    sign_up_and_verify(&platform, &handler, &email, "Staged").await;
    let link = approver_link(&platform, "sponsor@contoso.example", &email).await;
    assert_eq!(decide(&handler, &link, "approve", "", false).await.0, 200);
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(
        (request.status, request.stage),
        (RequestStatus::PendingApproval, 2)
    );
    assert!(
        platform.sim.invitations().is_empty(),
        "one yes is not enough"
    );
    platform.wait_for_mails("security@contoso.example", 1).await;

    // Stage 2 through the command line: the sponsor may not decide it, security may.
    let wrong = platform.cli(&[
        "requests",
        "approve",
        &request.id,
        "--as",
        "sponsor@contoso.example",
    ]);
    assert_eq!(wrong.code, 1, "{}", wrong.stdout);
    assert!(wrong.stderr.contains("not an approver"), "{}", wrong.stderr);
    let ok = platform.cli(&[
        "requests",
        "approve",
        &request.id,
        "--as",
        "security@contoso.example",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
    assert_eq!(platform.sim.invitations().len(), 1);
    let audit = b2b_signup::store::audit::for_request(&platform.store(), &request.id)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.actor.starts_with("operator as security@contoso.example")),
        "{audit:?}"
    );
}
