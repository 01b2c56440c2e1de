//! Who the guest is, in the directory and across its lives, through the binary: the profile
//! the invitation sets (in the same `$batch` as the grants), the optional job title, and a
//! guest the cleanup removed who signs up again and is admitted: restored with its object id
//! (not invited as a new user), or enabled again.

mod common;

use b2b_signup::store::guests::GuestState;
use common::*;
use time::{Duration, OffsetDateTime};

/// The sign-up form as a browser gets it.
async fn form(handler: &Handler) -> String {
    let resp = handler
        .forward(reqwest::Method::GET, "/api/signup")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Submits the form with a job title and proves the mailbox.
async fn sign_up_with_job_title(platform: &Platform, handler: &Handler, email: &str, title: &str) {
    personal(title);
    let mut fields = partner_fields(email, "Ada");
    fields.push(("job_title", title));
    let resp = submit_form(handler, &fields).await;
    assert_eq!(resp.status(), 200);
    let link = platform.wait_for_mails(email, 1).await[0].link_containing("/api/signup/verify");
    let resp = post_form(
        handler,
        "/api/signup/verify",
        &[("token", &token_of(&link))],
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_directory_knows_who_the_guest_is_from_one_batch_with_the_grants() {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_ASK_JOB_TITLE", "true");
    let group = platform.sim.add_group("Partners");
    let out = platform.add_partner_policy(&["--action", "auto", "--group", &group]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let handler = platform.start_handler().await;

    assert!(
        form(&handler).await.contains("name=\"job_title\""),
        "the form asks for it"
    );
    let email = platform.address("ada");
    platform.sim.reset_calls();
    sign_up_with_job_title(
        &platform,
        &handler,
        &email,
        "Chief Analytical Engine Officer",
    )
    .await;

    let user_id = platform.sim.invitations()[0].user_id.clone();
    let user = platform.sim.user(&user_id).unwrap();
    assert_eq!(user.given_name.as_deref(), Some("Ada"));
    assert_eq!(user.surname.as_deref(), Some("Lovelace"));
    assert_eq!(user.company_name.as_deref(), Some("Partner AB"));
    assert_eq!(
        user.job_title.as_deref(),
        Some("Chief Analytical Engine Officer")
    );
    assert_eq!(platform.sim.group_members(&group), vec![user_id.clone()]);
    let calls = platform.sim.calls();
    assert_eq!(
        (calls.batch, calls.patch_user, calls.add_member),
        (1, 1, 1),
        "the profile and the group in one $batch"
    );
    let request = &requests_for(&platform, &email).await[0];
    assert_eq!(
        request.job_title.as_deref(),
        Some("Chief Analytical Engine Officer")
    );
    assert!(
        request.grant_problems.is_empty(),
        "{:?}",
        request.grant_problems
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_setting_the_form_asks_no_job_title_and_a_posted_one_is_ignored() {
    let platform = Platform::start().await;
    let out = platform.add_partner_policy(&["--action", "auto"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let handler = platform.start_handler().await;
    assert!(!form(&handler).await.contains("job_title"));
    let email = platform.address("grace");
    sign_up_with_job_title(&platform, &handler, &email, "Rear Admiral").await;
    let user_id = platform.sim.invitations()[0].user_id.clone();
    let user = platform.sim.user(&user_id).unwrap();
    assert_eq!(user.job_title, None, "not asked, not taken");
    assert_eq!(user.given_name.as_deref(), Some("Ada"));
}

/// A guest of an `auto` policy with a group and a 30-day access period, redeemed.
async fn admitted(platform: &Platform, handler: &Handler, email: &str) -> (String, OffsetDateTime) {
    let (status, page) = sign_up_and_verify(platform, handler, email, "Ada").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(platform.wait_for_mails(email, 2).await.len(), 2);
    let user_id = platform.sim.invitations().last().unwrap().user_id.clone();
    assert!(platform.sim.redeem(&user_id));
    (
        user_id.clone(),
        guest_row(platform, &user_id).await.invited_at,
    )
}

/// Lets the cleanup warn the guest (its access period is over) and disable it.
async fn disabled_by_the_cleanup(
    platform: &Platform,
    handler: &Handler,
    email: &str,
    user_id: &str,
    t0: OffsetDateTime,
) -> OffsetDateTime {
    let warned = t0 + Duration::days(30) + Duration::hours(1);
    tick(handler, warned).await;
    platform
        .wait_for_mail(email, |m| m.subject.contains("will be removed"))
        .await;
    let disabled = warned + Duration::days(7) + Duration::hours(1);
    tick(handler, disabled).await;
    assert!(!platform.sim.user(user_id).unwrap().account_enabled);
    assert_eq!(
        guest_row(platform, user_id).await.state,
        GuestState::Disabled
    );
    disabled
}

/// An `auto` policy with a group, a 30-day access period and a sponsor in the directory.
async fn policy_with_group(platform: &Platform) -> String {
    let group = platform.sim.add_group("Partners");
    let sponsor = format!("{}@contoso.example", unique("sponsor"));
    personal(&sponsor);
    platform.sim.add_member(&sponsor, "Sponsor");
    let out = platform.add_partner_policy(&[
        "--action",
        "auto",
        "--group",
        &group,
        "--access-days",
        "30",
        "--sponsor",
        &sponsor,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    group
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_the_cleanup_deleted_is_restored_with_its_object_id_when_it_returns() {
    let platform = Platform::start().await;
    let group = policy_with_group(&platform).await;
    let handler = platform.start_handler().await;
    let email = platform.address("returning");
    let (user_id, t0) = admitted(&platform, &handler, &email).await;
    let disabled = disabled_by_the_cleanup(&platform, &handler, &email, &user_id, t0).await;
    tick(&handler, disabled + Duration::days(14) + Duration::hours(1)).await;
    assert_eq!(platform.sim.deleted_users(), vec![user_id.clone()]);
    assert_eq!(
        guest_row(&platform, &user_id).await.state,
        GuestState::Deleted
    );

    // The same person signs up again, and the policy admits them.
    let (status, page) = sign_up_and_verify(&platform, &handler, &email, "Ada").await;
    assert_eq!(status, 200, "{page}");

    let invitations = platform.sim.invitations();
    assert_eq!(invitations.len(), 2);
    assert_eq!(
        invitations[1].user_id, user_id,
        "the invitation resolved to the restored guest"
    );
    assert!(invitations[1].existing_user, "not a new user");
    let user = platform.sim.user(&user_id).unwrap();
    assert!(!user.deleted, "restored from deleted items");
    assert!(user.account_enabled, "and enabled again");
    assert!(platform.sim.deleted_users().is_empty());
    let guests_in_directory = platform
        .sim
        .users()
        .into_iter()
        .filter(|u| u.mail.eq_ignore_ascii_case(&email))
        .count();
    assert_eq!(guests_in_directory, 1, "one identity for one person");
    assert_eq!(platform.sim.group_members(&group), vec![user_id.clone()]);
    assert_eq!(
        user.sponsors.len(),
        1,
        "its sponsor again, once (already a sponsor counts as done)"
    );

    let row = guest_row(&platform, &user_id).await;
    assert_eq!(row.state, GuestState::Active);
    assert!(row.removal_reason.is_none());
    assert!(row.access_ends_at.unwrap() > OffsetDateTime::now_utc() + Duration::days(29));
    let mut requests = requests_for(&platform, &email).await;
    requests.sort_by_key(|r| r.created_at);
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].grant_problems.is_empty(),
        "{:?}",
        requests[1].grant_problems
    );
    assert_eq!(
        row.request_id.as_deref(),
        Some(requests[1].id.as_str()),
        "the record belongs to the new request"
    );
    assert_eq!(row.invited_at, t0, "a guest since its first invitation");
    assert_eq!(audit_of(&platform, "guest.restored").await.len(), 1);
    let returned = audit_of(&platform, "guest.returned").await;
    assert_eq!(returned.len(), 1);
    assert!(
        returned[0].detail.contains("was deleted"),
        "{}",
        returned[0].detail
    );

    // And the cleanup sees an active guest, not one an admin restored on its own.
    let body = tick(&handler, OffsetDateTime::now_utc() + Duration::hours(1)).await;
    let summary = body["Logs"].as_array().unwrap().last().unwrap().to_string();
    assert!(summary.contains("restored 0"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_the_cleanup_disabled_is_enabled_again_when_it_returns() {
    let platform = Platform::start().await;
    let group = policy_with_group(&platform).await;
    let handler = platform.start_handler().await;
    let email = platform.address("disabled");
    let (user_id, t0) = admitted(&platform, &handler, &email).await;
    disabled_by_the_cleanup(&platform, &handler, &email, &user_id, t0).await;

    let (status, page) = sign_up_and_verify(&platform, &handler, &email, "Ada").await;
    assert_eq!(status, 200, "{page}");

    assert_eq!(platform.sim.invitations()[1].user_id, user_id);
    assert!(platform.sim.user(&user_id).unwrap().account_enabled);
    assert!(
        audit_of(&platform, "guest.restored").await.is_empty(),
        "nothing to restore"
    );
    let row = guest_row(&platform, &user_id).await;
    assert_eq!(row.state, GuestState::Active);
    assert_eq!(platform.sim.group_members(&group), vec![user_id.clone()]);
    let granted = audit_of(&platform, "guest.granted").await;
    assert!(
        granted.iter().any(|e| e.detail.contains("enabled again")),
        "{granted:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_someone_else_deleted_is_not_restored_by_a_sign_up() {
    let platform = Platform::start().await;
    policy_with_group(&platform).await;
    let handler = platform.start_handler().await;
    let email = platform.address("elsewhere");
    // Deleted by an admin, outside the portal: the portal has no record of it.
    let id = platform
        .sim
        .add_guest(graph_simulator::SeedGuest::new(&email));
    let (status, v) = {
        let (token, _) = platform.sim.admin_token();
        let resp = reqwest::Client::new()
            .delete(format!("{}/users/{id}", platform.sim.base_url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    assert_eq!(status, 204, "{v}");
    let (status, page) = sign_up_and_verify(&platform, &handler, &email, "Ada").await;
    assert_eq!(status, 200, "{page}");
    assert!(platform.sim.user(&id).unwrap().deleted, "left as it was");
    assert_ne!(platform.sim.invitations()[0].user_id, id, "a new user");
}
