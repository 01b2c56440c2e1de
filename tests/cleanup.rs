//! The cleanup timer, through the binary as the host invokes it (chunked JSON with the host's
//! UtcNow, which these tests move forward to let days pass), against Azurite, a real SMTP
//! server and the Graph simulator. Each job and each safeguard, and the machinery that makes
//! a run safe to interrupt and to overlap.

mod common;

use b2b_signup::adapters::tables::TableName;
use b2b_signup::core::request::RequestStatus;
use b2b_signup::core::token::SigningKeys;
use b2b_signup::store::audit;
use b2b_signup::store::guests::{self, Guest, GuestOrigin, GuestState};
use b2b_signup::store::jobs;
use common::*;
use graph_simulator::{Fault, FaultRoute, SeedGuest, SimulatorConfig};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

fn logs(body: &Value) -> Vec<String> {
    run_logs(body)
}

/// The run's summary line (the last one).
fn summary(body: &Value) -> String {
    logs(body).last().cloned().unwrap_or_default()
}

/// A guest the portal recorded, as `access::set_up` records one.
fn record(user_id: &str, email: &str, invited_at: OffsetDateTime) -> Guest {
    Guest {
        user_id: user_id.to_string(),
        email: email.to_string(),
        request_id: None,
        policy_key: None,
        invited_at,
        access_ends_at: None,
        redeem_url: Some(format!(
            "https://login.microsoftonline.com/redeem?rd=test-{user_id}"
        )),
        language: "en".into(),
        first_name: "Test".into(),
        state: GuestState::Active,
        state_changed_at: invited_at,
        removal_reason: None,
        reminder_sent_at: None,
        origin: GuestOrigin::Invited,
        invite_decided_at: Some(invited_at),
        notice_mail_id: None,
        last_mail_delivered: None,
        last_name: "Guest".into(),
        organisation: "Partner AB".into(),
        sponsors: Vec::new(),
        reviews: Default::default(),
    }
}

async fn save(platform: &Platform, g: &Guest) {
    guests::record(&platform.store(), g).await.unwrap();
}

/// A guest in the directory and in the portal's table, disabled by the cleanup
/// `disabled_days_ago` days before `at` for its access period: due for deletion once the
/// grace period (14 days) has passed.
async fn disabled_guest(
    platform: &Platform,
    local: &str,
    at: OffsetDateTime,
    disabled_days_ago: i64,
) -> String {
    let email = platform.address(local);
    let id = platform.sim.add_guest(
        SeedGuest::new(&email)
            .created(at - Duration::days(120))
            .accepted(at - Duration::days(119))
            .disabled(),
    );
    let mut g = record(&id, &email, at - Duration::days(120));
    g.access_ends_at = Some(at - Duration::days(disabled_days_ago + 7));
    g.state = GuestState::Disabled;
    g.state_changed_at = at - Duration::days(disabled_days_ago);
    g.removal_reason = Some("access_period".into());
    save(platform, &g).await;
    id
}

/// Everything a dry run must leave as it was: the directory, the guest rows (with their
/// ETags), the audit trail and the Jobs table.
async fn snapshot(
    platform: &Platform,
) -> (
    Vec<graph_simulator::UserSnapshot>,
    Vec<(Guest, String)>,
    usize,
    usize,
) {
    let store = platform.store();
    let mut rows = guests::all(&store).await.unwrap();
    rows.sort_by(|a, b| a.0.user_id.cmp(&b.0.user_id));
    let audit = audit::since(&store, OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap()
        .len();
    let jobs = store.query(TableName::Jobs, None).await.unwrap().len();
    (platform.sim.users(), rows, audit, jobs)
}

async fn auto_policy(platform: &Platform, extra: &[&str]) {
    let mut args = vec![
        "policy",
        "add",
        "--domain",
        &platform.partner_domain,
        "--action",
        "auto",
    ];
    args.extend_from_slice(extra);
    let out = platform.cli(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

// --- the lifecycle jobs ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_unredeemed_invitation_is_reminded_once_then_disabled_then_soft_deleted() {
    let platform = Platform::start().await;
    auto_policy(&platform, &[]).await;
    let handler = platform.start_handler().await;
    let email = platform.address("ada");
    let (status, _) = sign_up_and_verify(&platform, &handler, &email, "Ada").await;
    assert_eq!(status, 200);
    assert_eq!(platform.wait_for_mails(&email, 2).await.len(), 2);
    let user_id = platform.sim.invitations()[0].user_id.clone();
    let t0 = guest_row(&platform, &user_id).await.invited_at;
    let day = |d: i64| t0 + Duration::days(d) + Duration::hours(1);

    tick(&handler, day(13)).await;
    assert_eq!(
        platform.mails_to(&email).len(),
        2,
        "no reminder before day 14"
    );

    let body = tick(&handler, day(14)).await;
    let mails = platform.wait_for_mails(&email, 3).await;
    assert_eq!(mails.len(), 3, "one reminder: {body}");
    assert!(
        mails[2].subject.contains("accept your invitation"),
        "{}",
        mails[2].subject
    );
    assert!(mails[2].text.contains("Ada"), "greets by first name");
    assert!(
        mails[2]
            .link_containing("login.microsoftonline.com/redeem")
            .contains("redeem"),
        "the reminder carries the redeem link"
    );
    assert!(
        logs(&body)
            .iter()
            .any(|l| l.contains(&user_id) && l.contains("reminded")),
        "{body}"
    );
    let row = guest_row(&platform, &user_id).await;
    assert_eq!(row.state, GuestState::Warned);
    assert_eq!(row.removal_reason.as_deref(), Some("unredeemed"));

    tick(&handler, day(15)).await;
    tick(&handler, day(27)).await;
    assert_eq!(platform.mails_to(&email).len(), 3, "reminded once");
    assert!(platform.sim.user(&user_id).unwrap().account_enabled);

    let body = tick(&handler, day(28) + Duration::hours(1)).await;
    assert!(
        !platform.sim.user(&user_id).unwrap().account_enabled,
        "disabled 14 days after the reminder: {body}"
    );
    assert_eq!(
        guest_row(&platform, &user_id).await.state,
        GuestState::Disabled
    );
    assert!(platform.sim.deleted_users().is_empty());

    tick(&handler, day(41)).await;
    assert!(
        platform.sim.deleted_users().is_empty(),
        "the grace period is 14 days"
    );
    let body = tick(&handler, day(42) + Duration::hours(2)).await;
    assert_eq!(
        platform.sim.deleted_users(),
        vec![user_id.clone()],
        "{body}"
    );
    assert!(
        platform.sim.user(&user_id).unwrap().deleted,
        "soft-deleted, restorable"
    );
    assert_eq!(
        guest_row(&platform, &user_id).await.state,
        GuestState::Deleted
    );
    for action in ["guest.reminded", "guest.disabled", "guest.deleted"] {
        let entries = audit_of(&platform, action).await;
        assert_eq!(entries.len(), 1, "{action}");
        assert_eq!(entries[0].user_id.as_deref(), Some(user_id.as_str()));
        assert!(
            !entries[0].detail.contains("ada@"),
            "masked: {}",
            entries[0].detail
        );
    }
    let calls = platform.sim.calls();
    assert_eq!(
        (calls.patch_user, calls.delete_user),
        (2, 1),
        "the profile at the invitation, the disable; the delete"
    );
    assert!(calls.batch >= 2, "writes go through $batch");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_access_period_a_guest_is_warned_disabled_then_soft_deleted() {
    let platform = Platform::start().await;
    let base = OffsetDateTime::now_utc();
    let email = platform.address("greta");
    let id = platform.sim.add_guest(
        SeedGuest::new(&email)
            .created(base)
            .accepted(base)
            .last_sign_in(base + Duration::days(29)),
    );
    let mut g = record(&id, &email, base);
    g.access_ends_at = Some(base + Duration::days(30));
    g.language = "sv".into();
    g.first_name = "Greta".into();
    save(&platform, &g).await;
    let member = platform.sim.add_member(&platform.address("staff"), "Staff");
    let handler = platform.start_handler().await;

    tick(&handler, base + Duration::days(29)).await;
    assert!(
        platform.mails_to(&email).is_empty(),
        "not before the period ends"
    );

    let warned_at = base + Duration::days(30) + Duration::hours(1);
    let body = tick(&handler, warned_at).await;
    let mails = platform.wait_for_mails(&email, 1).await;
    assert_eq!(mails.len(), 1, "{body}");
    assert!(
        mails[0].subject.contains("Din gäståtkomst"),
        "in the guest's language: {}",
        mails[0].subject
    );
    assert!(mails[0].text.contains("Greta"));
    let disable_day = rfc3339(warned_at + Duration::days(7))[..10].to_string();
    assert!(
        mails[0].text.contains(&disable_day),
        "says when: {}",
        mails[0].text
    );
    let row = guest_row(&platform, &id).await;
    assert_eq!(
        (row.state, row.removal_reason.as_deref()),
        (GuestState::Warned, Some("access_period"))
    );

    tick(&handler, warned_at + Duration::days(6)).await;
    assert!(
        platform.sim.user(&id).unwrap().account_enabled,
        "7 days' warning"
    );
    tick(&handler, warned_at + Duration::days(7)).await;
    assert!(!platform.sim.user(&id).unwrap().account_enabled);
    let listing = platform.cli(&["guests", "list"]);
    assert!(
        listing.stdout.contains("disabled") && listing.stdout.contains("access_period"),
        "{}",
        listing.stdout
    );
    tick(&handler, warned_at + Duration::days(20)).await;
    assert!(platform.sim.deleted_users().is_empty());
    tick(&handler, warned_at + Duration::days(21)).await;
    assert_eq!(platform.sim.deleted_users(), vec![id.clone()]);
    assert_eq!(
        platform.mails_to(&email).len(),
        1,
        "one warning, no more mail"
    );

    let staff = platform.sim.user(&member).unwrap();
    assert!(
        staff.account_enabled && !staff.deleted,
        "members are never touched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inactivity_counts_the_most_recent_sign_in_and_the_sentinel_as_never() {
    let mut platform = Platform::start().await;
    platform.set("CLEANUP_INACTIVE_DAYS", "30");
    let t = OffsetDateTime::now_utc() + Duration::days(100);
    let long_ago = t - Duration::days(41);
    let guest = |local: &str| {
        let email = platform.address(local);
        (SeedGuest::new(&email).created(long_ago), email)
    };
    let (seed, stale_mail) = guest("stale");
    let stale = platform
        .sim
        .add_guest(seed.accepted(long_ago).last_sign_in(t - Duration::days(40)));
    let (seed, never_mail) = guest("never");
    let never = platform
        .sim
        .add_guest(seed.accepted(t - Duration::days(40)).sign_in_sentinel());
    let (seed, newly_mail) = guest("newly");
    let newly = platform
        .sim
        .add_guest(seed.accepted(t - Duration::days(10)).sign_in_sentinel());
    let (seed, fresh_mail) = guest("fresh");
    let fresh = platform
        .sim
        .add_guest(seed.accepted(long_ago).last_sign_in(t - Duration::days(5)));
    for (id, email) in [
        (&stale, &stale_mail),
        (&never, &never_mail),
        (&newly, &newly_mail),
        (&fresh, &fresh_mail),
    ] {
        save(&platform, &record(id, email, long_ago)).await;
    }
    let handler = platform.start_handler().await;

    let body = tick(&handler, t).await;
    assert_eq!(
        platform.wait_for_mails(&stale_mail, 1).await.len(),
        1,
        "{body}"
    );
    assert_eq!(
        platform.wait_for_mails(&never_mail, 1).await.len(),
        1,
        "never signed in, redeemed 40 days ago"
    );
    assert!(platform.mails_to(&stale_mail)[0]
        .text
        .contains("has not been used"));
    assert!(
        platform.mails_to(&newly_mail).is_empty(),
        "redeemed 10 days ago"
    );
    assert!(
        platform.mails_to(&fresh_mail).is_empty(),
        "signed in 5 days ago"
    );
    assert_eq!(
        guest_row(&platform, &stale).await.removal_reason.as_deref(),
        Some("inactive")
    );

    // The warned guest signs in again: back to active, and kept.
    platform
        .sim
        .set_last_sign_in(&stale, Some(t + Duration::days(1)));
    let body = tick(&handler, t + Duration::days(2)).await;
    assert_eq!(
        guest_row(&platform, &stale).await.state,
        GuestState::Active,
        "{body}"
    );
    assert_eq!(audit_of(&platform, "guest.restored").await.len(), 1);

    tick(&handler, t + Duration::days(7) + Duration::hours(1)).await;
    assert!(
        !platform.sim.user(&never).unwrap().account_enabled,
        "never signed in: disabled"
    );
    for id in [&stale, &newly, &fresh] {
        assert!(platform.sim.user(id).unwrap().account_enabled);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_p1_the_inactivity_rule_is_skipped_once_and_the_others_still_run() {
    let mut platform = Platform::start_with(SimulatorConfig {
        p1_license: false,
        ..Default::default()
    })
    .await;
    platform.set("CLEANUP_INACTIVE_DAYS", "30");
    let t = OffsetDateTime::now_utc() + Duration::days(100);
    let old = t - Duration::days(200);
    let idle_mail = platform.address("idle");
    let idle = platform
        .sim
        .add_guest(SeedGuest::new(&idle_mail).created(old).accepted(old));
    save(&platform, &record(&idle, &idle_mail, old)).await;
    let over_mail = platform.address("over");
    let over = platform.sim.add_guest(
        SeedGuest::new(&over_mail)
            .created(old)
            .accepted(old)
            .last_sign_in(t),
    );
    let mut g = record(&over, &over_mail, old);
    g.access_ends_at = Some(t - Duration::days(1));
    save(&platform, &g).await;
    let handler = platform.start_handler().await;

    let body = tick(&handler, t).await;
    let lines = logs(&body);
    let said = lines
        .iter()
        .filter(|l| l.contains("signInActivity"))
        .count();
    assert_eq!(said, 1, "said once: {lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("AuditLog.Read.All") && l.contains("P1")));
    assert!(
        summary(&body).contains("inactivity rule not applied (no sign-in activity)"),
        "{}",
        summary(&body)
    );
    assert_eq!(
        platform.wait_for_mails(&over_mail, 1).await.len(),
        1,
        "the access rule still runs"
    );
    assert!(
        platform.mails_to(&idle_mail).is_empty(),
        "inactivity is not guessed"
    );
    assert_eq!(guest_row(&platform, &idle).await.state, GuestState::Active);
}

// --- the safeguards -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn guests_the_portal_did_not_create_are_left_alone_unless_the_scope_is_widened() {
    let mut platform = Platform::start().await;
    let t = OffsetDateTime::now_utc() + Duration::days(60);
    let outsider_mail = platform.address("outsider");
    let outsider = platform
        .sim
        .add_guest(SeedGuest::new(&outsider_mail).created(t - Duration::days(30)));
    // A member the portal's table (wrongly) lists as a long-disabled guest: still untouched.
    let member = platform
        .sim
        .add_member(&platform.address("converted"), "Converted");
    let mut row = record(
        &member,
        &platform.address("converted"),
        t - Duration::days(100),
    );
    row.state = GuestState::Disabled;
    row.state_changed_at = t - Duration::days(60);
    row.removal_reason = Some("access_period".into());
    save(&platform, &row).await;

    let handler = platform.start_handler().await;
    let body = tick(&handler, t).await;
    assert!(
        summary(&body).contains("outside the portal's scope 1"),
        "{}",
        summary(&body)
    );
    assert!(platform.mails_to(&outsider_mail).is_empty());
    assert!(guests::get(&platform.store(), &outsider)
        .await
        .unwrap()
        .is_none());
    drop(handler);

    platform.set("CLEANUP_SCOPE", "all_guests");
    let handler = platform.start_handler().await;
    // The directory is cleaned up once per CLEANUP_DIRECTORY_INTERVAL_MINUTES: the next pass.
    let body = tick(&handler, t + Duration::hours(1)).await;
    let mails = platform.wait_for_mails(&outsider_mail, 1).await;
    assert_eq!(mails.len(), 1, "widened on purpose: {body}");
    assert!(mails[0]
        .link_containing("myapps.microsoft.com")
        .contains("myapps"));
    let tracked = guest_row(&platform, &outsider).await;
    assert_eq!(
        (tracked.state, tracked.email.as_str(), tracked.origin),
        (
            GuestState::Warned,
            outsider_mail.as_str(),
            GuestOrigin::Cleanup
        )
    );
    drop(handler);

    // Back to the portal's own guests: the record the widened run made does not make the
    // outsider the portal's. Its warning period runs out and nothing happens to it.
    platform.set("CLEANUP_SCOPE", "portal");
    let handler = platform.start_handler().await;
    let body = tick(&handler, t + Duration::days(8)).await;
    assert!(
        summary(&body).contains("outside the portal's scope 1"),
        "{}",
        summary(&body)
    );
    let o = platform.sim.user(&outsider).unwrap();
    assert!(o.account_enabled && !o.deleted, "{body}");
    assert_eq!(
        guest_row(&platform, &outsider).await.state,
        GuestState::Warned
    );

    let m = platform.sim.user(&member).unwrap();
    assert!(m.account_enabled && !m.deleted, "a member is never touched");
    let calls = platform.sim.calls();
    assert_eq!((calls.patch_user, calls.delete_user), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn members_of_the_exclusion_group_are_never_touched() {
    let mut platform = Platform::start().await;
    let keep = platform.sim.add_group("Never clean up");
    platform.set("CLEANUP_EXCLUSION_GROUP_ID", &keep);
    // The portal itself puts this guest in the group (its policy grants the group).
    auto_policy(&platform, &["--group", &keep]).await;
    let handler = platform.start_handler().await;
    let kept_mail = platform.address("kept");
    assert_eq!(
        sign_up_and_verify(&platform, &handler, &kept_mail, "Kept")
            .await
            .0,
        200
    );
    let kept = platform.sim.invitations()[0].user_id.clone();
    assert_eq!(platform.sim.group_members(&keep), vec![kept.clone()]);
    let t0 = guest_row(&platform, &kept).await.invited_at;
    // Another guest invited at the same time, not in the group.
    let other_mail = platform.address("other");
    let other = platform
        .sim
        .add_guest(SeedGuest::new(&other_mail).created(t0));
    save(&platform, &record(&other, &other_mail, t0)).await;

    let body = tick(&handler, t0 + Duration::days(15)).await;
    assert_eq!(
        platform.wait_for_mails(&other_mail, 1).await.len(),
        1,
        "{body}"
    );
    assert_eq!(
        platform.mails_to(&kept_mail).len(),
        2,
        "only the sign-up's mails: {:?}",
        platform
            .mails_to(&kept_mail)
            .iter()
            .map(|m| &m.subject)
            .collect::<Vec<_>>()
    );
    assert_eq!(guest_row(&platform, &kept).await.state, GuestState::Active);
    let skipped = audit_of(&platform, "guest.skipped").await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].user_id.as_deref(), Some(kept.as_str()));
    assert!(skipped[0].detail.contains("exclusion group"));

    tick(&handler, t0 + Duration::days(60)).await;
    let k = platform.sim.user(&kept).unwrap();
    assert!(k.account_enabled && !k.deleted);
    assert!(
        !platform.sim.user(&other).unwrap().account_enabled,
        "the other one goes on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cap_stops_a_run_that_would_remove_too_many() {
    let mut platform = Platform::start().await;
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    let mut due = Vec::new();
    for k in 0..8 {
        due.push(disabled_guest(&platform, &format!("due{k}"), t, 20).await);
    }
    let healthy_mail = platform.address("healthy");
    let healthy = platform.sim.add_guest(
        SeedGuest::new(&healthy_mail)
            .created(t - Duration::days(1))
            .accepted(t),
    );
    save(
        &platform,
        &record(&healthy, &healthy_mail, t - Duration::days(1)),
    )
    .await;
    let handler = platform.start_handler().await;

    let body = tick(&handler, t).await;
    let lines = logs(&body);
    assert!(
        lines.iter().any(|l| l.contains("stopped before any change")
            && l.contains("8 removals planned of 9 guests in scope")
            && l.contains("CLEANUP_MAX_REMOVAL_PERCENT to at least 89")),
        "{lines:#?}"
    );
    let calls = platform.sim.calls();
    assert_eq!(
        (calls.patch_user, calls.delete_user, calls.batch),
        (0, 0, 0),
        "nothing removed"
    );
    assert!(platform.sim.deleted_users().is_empty());
    assert_eq!(audit_of(&platform, "cleanup.stopped").await.len(), 1);
    drop(handler);

    // By count too, below the share rule's floor.
    platform.set("CLEANUP_MAX_REMOVAL_PERCENT", "100");
    platform.set("CLEANUP_MAX_REMOVALS", "7");
    let handler = platform.start_handler().await;
    // A run stopped at the cap counts as the hour's pass: the next one comes an hour later.
    let body = tick(&handler, t + Duration::minutes(5)).await;
    assert!(
        summary(&body).contains("guests and purges not due"),
        "{body}"
    );
    assert!(platform.sim.deleted_users().is_empty());
    let body = tick(&handler, t + Duration::hours(1)).await;
    assert!(
        logs(&body)
            .iter()
            .any(|l| l.contains("CLEANUP_MAX_REMOVALS to at least 8")),
        "{body}"
    );
    assert!(platform.sim.deleted_users().is_empty());
    drop(handler);

    // The operator raises the cap for one run: the same plan goes through.
    platform.set("CLEANUP_MAX_REMOVALS", "8");
    let handler = platform.start_handler().await;
    tick(&handler, t + Duration::hours(2)).await;
    let mut deleted = platform.sim.deleted_users();
    deleted.sort();
    due.sort();
    assert_eq!(deleted, due);
    assert!(!platform.sim.user(&healthy).unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_reports_everything_and_changes_nothing() {
    let mut platform = Platform::start().await;
    let now = OffsetDateTime::now_utc();
    // One guest due for each step.
    let remind_mail = platform.address("remind");
    let remind = platform
        .sim
        .add_guest(SeedGuest::new(&remind_mail).created(now - Duration::days(20)));
    save(
        &platform,
        &record(&remind, &remind_mail, now - Duration::days(20)),
    )
    .await;
    let warn_mail = platform.address("warn");
    let warn = platform
        .sim
        .add_guest(SeedGuest::new(&warn_mail).accepted(now - Duration::days(50)));
    let mut g = record(&warn, &warn_mail, now - Duration::days(50));
    g.access_ends_at = Some(now - Duration::days(1));
    save(&platform, &g).await;
    let disable_mail = platform.address("disable");
    let disable = platform
        .sim
        .add_guest(SeedGuest::new(&disable_mail).accepted(now - Duration::days(50)));
    let mut g = record(&disable, &disable_mail, now - Duration::days(50));
    g.access_ends_at = Some(now - Duration::days(9));
    g.state = GuestState::Warned;
    g.state_changed_at = now - Duration::days(8);
    g.removal_reason = Some("access_period".into());
    save(&platform, &g).await;
    let delete = disabled_guest(&platform, "delete", now, 15).await;

    let before = snapshot(&platform).await;
    let watched = [remind_mail.clone(), warn_mail.clone(), disable_mail.clone()];
    let mail_count = |platform: &Platform| {
        watched
            .iter()
            .map(|m| platform.mails_to(m).len())
            .sum::<usize>()
    };

    let out = platform.cli(&["cleanup", "run", "--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for expected in [
        format!("would remind guest {remind}"),
        format!("would warn guest {warn}"),
        format!("would disable guest {disable}"),
        format!("would delete guest {delete}"),
    ] {
        assert!(
            out.stdout.contains(&expected),
            "{expected} in:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("cleanup (dry run):"), "{}", out.stdout);

    platform.set("CLEANUP_DRY_RUN", "true");
    let handler = platform.start_handler().await;
    let body = tick(&handler, now + Duration::minutes(1)).await;
    assert!(
        summary(&body).contains("would be deleted 1"),
        "{}",
        summary(&body)
    );
    drop(handler);

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(mail_count(&platform), 0, "no mail");
    let calls = platform.sim.calls();
    assert_eq!(
        (calls.patch_user, calls.delete_user),
        (0, 0),
        "no Graph write"
    );
    assert_eq!(
        calls.batch, calls.batch_reads_only,
        "its $batch calls only read (the re-check)"
    );
    assert!(
        snapshot(&platform).await == before,
        "directory, guest rows, audit and jobs unchanged"
    );

    // The same plan, for real (so the dry run above had something to not do).
    platform.set("CLEANUP_DRY_RUN", "false");
    let out = platform.cli(&["cleanup", "run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(platform.sim.deleted_users(), vec![delete]);
    assert!(!platform.sim.user(&disable).unwrap().account_enabled);
    assert_eq!(platform.wait_for_mails(&remind_mail, 1).await.len(), 1);
    assert_eq!(platform.wait_for_mails(&warn_mail, 1).await.len(), 1);
    assert!(audit_of(&platform, "guest.deleted").await[0].actor == "operator");
}

// --- requests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_invitation_is_retried_by_the_timer_and_invites_once() {
    let platform = Platform::start().await;
    auto_policy(&platform, &[]).await;
    let handler = platform.start_handler().await;
    // Throttled for longer than a partner should wait: the form leaves it to the timer.
    platform
        .sim
        .inject_fault(Fault::new(FaultRoute::Invitations, 429).retry_after(30));
    let email = platform.address("later");
    sign_up_and_verify(&platform, &handler, &email, "Later").await;
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(
        request.status,
        RequestStatus::InviteFailed,
        "{:?}",
        request.last_error
    );
    assert!(platform.sim.invitations().is_empty());

    let due = request.next_attempt_at.unwrap() + Duration::minutes(1);
    let body = tick(&handler, due).await;
    assert!(
        summary(&body).contains("retried 1 (1 completed"),
        "{}",
        summary(&body)
    );
    tick(&handler, due + Duration::hours(1)).await;
    assert_eq!(platform.sim.invitations().len(), 1, "invited once");
    assert_eq!(
        requests_for(&platform, &email).await[0].status,
        RequestStatus::Invited
    );
    assert_eq!(platform.wait_for_mails(&email, 2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_requests_lose_their_personal_data_after_the_retention_period() {
    let platform = Platform::start().await;
    auto_policy(&platform, &[]).await;
    let handler = platform.start_handler().await;
    let email = platform.address("bygone");
    sign_up_and_verify(&platform, &handler, &email, "Bygone").await;
    let request = requests_for(&platform, &email).await.remove(0);
    assert_eq!(request.status, RequestStatus::Invited);
    let user_id = request.invited_user_id.clone().unwrap();

    tick(&handler, request.updated_at + Duration::days(89)).await;
    assert_eq!(
        requests_for(&platform, &email).await.len(),
        1,
        "kept 90 days"
    );
    let body = tick(
        &handler,
        request.updated_at + Duration::days(90) + Duration::hours(1),
    )
    .await;
    assert!(requests_for(&platform, &email).await.is_empty(), "{body}");
    let purged = audit_of(&platform, "request.purged").await;
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0].request_id.as_deref(), Some(request.id.as_str()));
    assert!(
        !purged[0].detail.contains("bygone@"),
        "no personal data in the trail"
    );
    assert_eq!(
        guest_row(&platform, &user_id).await.user_id,
        user_id,
        "the guest stays"
    );
}

// --- interrupted and overlapping runs ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_resumes_where_it_stopped_without_repeating_anything() {
    let mut platform = Platform::start().await;
    // Every run does one unit of work (a listing page or a wave of one $batch) and stops.
    platform.set("CLEANUP_TIME_BUDGET_SECONDS", "0");
    platform.set("CLEANUP_CONCURRENCY", "1");
    platform.set("CLEANUP_MAX_REMOVAL_PERCENT", "100");
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    let mut due = Vec::new();
    for k in 0..15 {
        due.push(disabled_guest(&platform, &format!("early{k}"), t, 20).await);
    }
    // 1,100 guests the portal did not create: the listing takes two pages.
    platform.sim.seed_guests(1100, t - Duration::days(400));
    for k in 0..15 {
        due.push(disabled_guest(&platform, &format!("late{k}"), t, 20).await);
    }
    let handler = platform.start_handler().await;

    let mut runs = Vec::new();
    for _ in 0..8 {
        let body = tick(&handler, t).await;
        let done = !summary(&body).contains("paused");
        runs.push(body);
        if done {
            break;
        }
    }
    let all: Vec<Vec<String>> = runs.iter().map(logs).collect();
    assert_eq!(
        runs.len(),
        4,
        "page 1 | page 2 | 20 deletes | 10 deletes: {all:#?}"
    );
    assert!(
        summary(&runs[0]).contains("paused after 1 listing pages"),
        "{all:#?}"
    );
    assert!(
        all[1].iter().any(|l| l.contains("resuming the listing")),
        "{all:#?}"
    );
    assert!(
        all[2]
            .iter()
            .any(|l| l.contains("resuming the plan") && l.contains("0 of 30")),
        "{all:#?}"
    );
    assert!(
        all[3]
            .iter()
            .any(|l| l.contains("20 of 30 actions already done")),
        "{all:#?}"
    );
    assert!(
        summary(&runs[3]).contains("deleted 10"),
        "{}",
        summary(&runs[3])
    );

    let calls = platform.sim.calls();
    assert_eq!(
        calls.list_users_pages - calls.list_users_in_batch,
        2,
        "the listing was resumed, not restarted"
    );
    assert_eq!(calls.delete_user, 30, "each guest deleted once");
    assert_eq!(
        (calls.batch - calls.batch_reads_only, calls.batch_reads_only),
        (2, 2),
        "two removal batches; each acting run re-read its guests first"
    );
    let mut deleted = platform.sim.deleted_users();
    deleted.sort();
    due.sort();
    assert_eq!(deleted, due);
    assert_eq!(audit_of(&platform, "guest.deleted").await.len(), 30);
    let jobs = platform.store().query(TableName::Jobs, None).await.unwrap();
    assert!(
        jobs.iter().all(|r| r.partition_key != "cleanup"),
        "checkpoint, plan and lease are gone: {jobs:?}"
    );

    // The pass is complete: the next tick leaves the directory alone, and the next pass
    // an hour later finds nothing to do.
    let body = tick(&handler, t + Duration::minutes(5)).await;
    assert!(
        summary(&body).contains("guests and purges not due"),
        "{}",
        summary(&body)
    );
    let body = tick(&handler, t + Duration::hours(1)).await;
    assert!(summary(&body).contains("deleted 0"), "{}", summary(&body));
    assert_eq!(platform.sim.calls().delete_user, 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_overlapping_runs_do_not_both_act() {
    let platform = Platform::start().await;
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    let mut due = Vec::new();
    for k in 0..5 {
        due.push(disabled_guest(&platform, &format!("gone{k}"), t, 20).await);
    }
    let remind_mail = platform.address("remind");
    let remind = platform
        .sim
        .add_guest(SeedGuest::new(&remind_mail).created(t - Duration::days(20)));
    save(
        &platform,
        &record(&remind, &remind_mail, t - Duration::days(20)),
    )
    .await;
    // Two instances (the host's singleton lock was lost), and a slow Graph so the runs overlap.
    let first = platform.start_handler().await;
    let second = platform.start_handler().await;
    platform
        .sim
        .set_latency(std::time::Duration::from_millis(400));

    let at = rfc3339(t);
    let (a, b) = tokio::join!(first.invoke_cleanup(&at), second.invoke_cleanup(&at));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let held = |body: &Value| {
        logs(body)
            .iter()
            .any(|l| l.contains("another cleanup run holds the lease until"))
    };
    assert!(
        held(&a.1) != held(&b.1),
        "exactly one run acts: {a:?} {b:?}"
    );
    platform.sim.set_latency(std::time::Duration::ZERO);

    assert_eq!(
        platform.sim.calls().delete_user,
        5,
        "each guest deleted once"
    );
    assert_eq!(platform.sim.deleted_users().len(), 5);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(platform.mails_to(&remind_mail).len(), 1, "one reminder");
    assert_eq!(audit_of(&platform, "guest.deleted").await.len(), 5);
    // The lease was released: the next run acts.
    let body = tick(&first, t).await;
    assert!(!held(&body), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warning_that_could_not_be_mailed_is_sent_by_the_next_run_before_anything_moves_on() {
    let mut platform = Platform::start().await;
    let t = (OffsetDateTime::now_utc() + Duration::days(30))
        .replace_nanosecond(0)
        .unwrap();
    let email = platform.address("unreachable");
    let id = platform
        .sim
        .add_guest(SeedGuest::new(&email).accepted(t - Duration::days(50)));
    let mut g = record(&id, &email, t - Duration::days(50));
    g.access_ends_at = Some(t - Duration::days(1));
    save(&platform, &g).await;
    let smtp = platform.env["SMTP_URL"].clone();
    platform.set("SMTP_URL", "smtp://127.0.0.1:9");
    let handler = platform.start_handler().await;

    // The warning is recorded with the guest's new stage; the mail waits in the outbox.
    let body = tick(&handler, t).await;
    assert!(summary(&body).contains("warned 1"), "{}", summary(&body));
    let row = guest_row(&platform, &id).await;
    assert_eq!(row.state, GuestState::Warned);
    assert_eq!(row.notice(), b2b_signup::core::cleanup::Notice::Pending);
    let mails = outbox(&platform).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0].delivery.state,
        b2b_signup::core::outbox::MailState::Pending
    );
    // Days later, the warning still not delivered: not disabled.
    let body = tick(&handler, t + Duration::days(10)).await;
    assert!(platform.sim.user(&id).unwrap().account_enabled, "{body}");
    assert!(platform.mails_to(&email).is_empty());
    drop(handler);

    platform.set("SMTP_URL", &smtp);
    let handler = platform.start_handler().await;
    let delivered_at = t + Duration::days(11);
    tick(&handler, delivered_at).await;
    assert_eq!(platform.wait_for_mails(&email, 1).await.len(), 1);
    let row = guest_row(&platform, &id).await;
    assert_eq!(
        row.notice(),
        b2b_signup::core::cleanup::Notice::Delivered(delivered_at)
    );
    tick(&handler, delivered_at + Duration::days(6)).await;
    assert!(
        platform.sim.user(&id).unwrap().account_enabled,
        "the warning period counts from the mail that was delivered"
    );
    tick(&handler, delivered_at + Duration::days(8)).await;
    assert!(!platform.sim.user(&id).unwrap().account_enabled);
    assert_eq!(platform.mails_to(&email).len(), 1, "warned once");
}

/// Faults on the cleanup's own Graph calls: the guest list failing, the delete batch throttled
/// past the run's patience, the batch connection dropped, the disable PATCH failing. Each run
/// ends with nothing half-done that the next run cannot finish, and nobody is removed twice.
#[tokio::test(flavor = "multi_thread")]
async fn graph_faults_during_the_cleanup_leave_work_for_the_next_run_and_nothing_doubled() {
    let platform = Platform::start().await;
    let now = OffsetDateTime::now_utc();
    let ids = [
        disabled_guest(&platform, "fault-a", now, 20).await,
        disabled_guest(&platform, "fault-b", now, 20).await,
    ];
    let handler = platform.start_handler().await;
    let deleted = |p: &Platform| {
        ids.iter()
            .filter(|id| p.sim.deleted_users().contains(id))
            .count()
    };

    // The listing fails: the run reports it, removes nobody, and the next run does the work.
    platform.sim.inject_fault(
        Fault::new(FaultRoute::ListUsers, 503)
            .retry_after(3600)
            .times(1000),
    );
    let (status, body) = handler.invoke_cleanup(&rfc3339(now)).await;
    assert!(status == 200 || status == 500, "{body}");
    assert_eq!(deleted(&platform), 0, "{body}");
    platform.sim.clear_faults();

    // The delete batch is throttled far beyond the run's patience: nothing is counted as done.
    platform.sim.inject_fault(
        Fault::new(FaultRoute::DeleteUser, 429)
            .retry_after(3600)
            .times(1000),
    );
    let (_, body) = handler
        .invoke_cleanup(&rfc3339(now + Duration::hours(1)))
        .await;
    assert_eq!(deleted(&platform), 0, "{body}");
    for id in &ids {
        assert_eq!(
            guest_row(&platform, id).await.state,
            GuestState::Disabled,
            "not marked deleted: {body}"
        );
    }
    platform.sim.clear_faults();

    // The batch connection drops once: the run retries or leaves it; either way no double act.
    platform
        .sim
        .inject_fault(Fault::drop_connection(FaultRoute::Batch).times(1));
    handler
        .invoke_cleanup(&rfc3339(now + Duration::hours(2)))
        .await;
    platform.sim.clear_faults();
    let body = tick(&handler, now + Duration::hours(3)).await;
    assert_eq!(
        deleted(&platform),
        2,
        "the next run finished the job: {body}"
    );
    for id in &ids {
        assert_eq!(guest_row(&platform, id).await.state, GuestState::Deleted);
    }
    let deletions = audit_of(&platform, "guest.deleted").await;
    assert_eq!(
        deletions.len(),
        2,
        "each removal audited once: {deletions:?}"
    );
    let body = tick(&handler, now + Duration::minutes(4)).await;
    assert_eq!(
        audit_of(&platform, "guest.deleted").await.len(),
        2,
        "nothing repeated: {body}"
    );
}

/// The cleanup records a wave's removals as compare-and-swap merges in one transaction per
/// Guests partition. A transaction is all or nothing: one row changed since it was read
/// refuses its whole transaction (and nothing of it is written), and leaves the others alone.
#[tokio::test(flavor = "multi_thread")]
async fn guest_rows_merge_by_partition_and_a_changed_row_refuses_only_its_transaction() {
    let platform = Platform::start().await;
    let store = platform.store();
    let now = OffsetDateTime::now_utc();
    let ids = [
        "aa000001-0000-0000-0000-000000000001",
        "aa000002-0000-0000-0000-000000000002",
        "aa000003-0000-0000-0000-000000000003",
        "bb000001-0000-0000-0000-000000000004",
    ];
    let mut etags = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        save(
            &platform,
            &record(id, &format!("merge{k}@partner.example"), now),
        )
        .await;
        etags.push(guests::get(&store, id).await.unwrap().unwrap().1);
    }
    // Someone warns the second guest after the plan was made: its ETag moves on.
    guests::advance(
        &store,
        ids[1],
        &etags[1],
        GuestState::Warned,
        now,
        "inactive",
        None,
    )
    .await
    .unwrap();

    let rows: Vec<_> = ids
        .iter()
        .zip(&etags)
        .map(|(id, etag)| {
            let row = guests::advance_row(id, GuestState::Deleted, now, "access_period", None);
            (row, etag.clone())
        })
        .collect();
    let results = store.merge_batch(TableName::Guests, &rows).await;
    assert_eq!(
        results,
        vec![
            Err(b2b_signup::adapters::tables::StoreError::Changed),
            Err(b2b_signup::adapters::tables::StoreError::Changed),
            Err(b2b_signup::adapters::tables::StoreError::Changed),
            Ok(()),
        ]
    );
    // Nothing of the refused transaction was written; the other partition's row was.
    assert_eq!(guest_row(&platform, ids[0]).await.state, GuestState::Active);
    assert_eq!(guest_row(&platform, ids[1]).await.state, GuestState::Warned);
    assert_eq!(guest_row(&platform, ids[2]).await.state, GuestState::Active);
    assert_eq!(
        guest_row(&platform, ids[3]).await.state,
        GuestState::Deleted
    );

    // With fresh ETags the same merges go through, and only the named properties change.
    let fresh: Vec<_> = rows
        .into_iter()
        .take(3)
        .zip(&ids)
        .map(|((row, _), id)| (row, id))
        .collect();
    let mut again = Vec::new();
    for (row, id) in fresh {
        again.push((row, guests::get(&store, id).await.unwrap().unwrap().1));
    }
    let results = store.merge_batch(TableName::Guests, &again).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for id in &ids[..3] {
        let g = guest_row(&platform, id).await;
        assert_eq!(g.state, GuestState::Deleted);
        assert_eq!(g.removal_reason.as_deref(), Some("access_period"));
        assert_eq!(g.first_name, "Test", "a merge keeps the other properties");
    }
}

// --- acting only on what is true now, and on nothing anyone else wrote -----------------------

/// The test portal's current signing key (`k2`), as `PORTAL_SIGNING_KEYS` spells it.
fn current_test_key() -> &'static str {
    TEST_SIGNING_KEYS.split(',').next().unwrap()
}

fn test_keys() -> SigningKeys {
    SigningKeys::parse(TEST_SIGNING_KEYS).unwrap()
}

/// The cleanup job's lease, checkpoint and plan rows (not its record of finished passes).
async fn jobs_rows(platform: &Platform) -> Vec<b2b_signup::adapters::tables::Row> {
    let mut rows = platform.store().query(TableName::Jobs, None).await.unwrap();
    rows.retain(|r| r.partition_key == "cleanup");
    rows
}

/// A guest past its access period with a record the portal wrote: due for a warning.
async fn guest_past_access(
    platform: &Platform,
    local: &str,
    at: OffsetDateTime,
) -> (String, String) {
    let email = platform.address(local);
    let created = at - Duration::days(100);
    let id = platform.sim.add_guest(
        SeedGuest::new(&email)
            .created(created)
            .accepted(created)
            .last_sign_in(at - Duration::days(1)),
    );
    let mut g = record(&id, &email, created);
    g.access_ends_at = Some(at - Duration::days(1));
    save(platform, &g).await;
    (id, email)
}

/// A plan made before admins changed the directory: the run that resumes it reads each guest
/// again right before acting, leaves alone every guest the directory changed for (converted to
/// a member, enabled again, put in the exclusion group through a nested group) and names each
/// in its log, in the handler's log and in a dry run's report; the rest goes ahead.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_plan_acts_only_on_what_is_still_true() {
    let mut platform = Platform::start().await;
    // Every run does one unit of work: the first lists (one page), plans, and stops there.
    platform.set("CLEANUP_TIME_BUDGET_SECONDS", "0");
    platform.set("CLEANUP_MAX_REMOVAL_PERCENT", "100");
    let keep = platform.sim.add_group("Never clean up");
    let partners = platform.sim.add_group("Partners we keep");
    assert!(platform.sim.add_group_member(&keep, &partners));
    platform.set("CLEANUP_EXCLUSION_GROUP_ID", &keep);
    // The real clock: the dry run below runs on it.
    let now = OffsetDateTime::now_utc();
    let converted = disabled_guest(&platform, "converted", now, 20).await;
    let enabled = disabled_guest(&platform, "enabled", now, 20).await;
    let excluded = disabled_guest(&platform, "excluded", now, 20).await;
    let due = disabled_guest(&platform, "due", now, 20).await;
    let (warned, warned_mail) = guest_past_access(&platform, "warnme", now).await;
    let (spared, spared_mail) = guest_past_access(&platform, "spared", now).await;
    let handler = platform.start_handler().await;

    let body = tick(&handler, now).await;
    assert!(
        summary(&body).contains("paused after 0 of 6 actions"),
        "{}",
        summary(&body)
    );
    // Meanwhile, in the directory:
    assert!(platform.sim.set_user_type(&converted, "Member"));
    assert!(platform.sim.set_account_enabled(&enabled, true));
    assert!(platform.sim.add_group_member(&partners, &excluded));
    assert!(platform.sim.add_group_member(&partners, &spared));
    let changed = [
        (
            &converted,
            "it is no longer a guest (userType is not Guest)",
        ),
        (&enabled, "an admin enabled the account again"),
        (&excluded, "it is now a member of the exclusion group"),
        (&spared, "it is now a member of the exclusion group"),
    ];

    let jobs_before = jobs_rows(&platform).await;
    let out = platform.cli(&["cleanup", "run", "--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (id, why) in changed {
        let line = format!("would skip guest {id}: the directory changed since listing ({why})");
        assert!(out.stdout.contains(&line), "{line} in:\n{}", out.stdout);
    }
    assert!(
        out.stdout.contains(&format!("would delete guest {due}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("would warn guest {warned}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("would be skipped because the directory changed since listing 4"),
        "{}",
        out.stdout
    );
    assert!(
        platform.sim.deleted_users().is_empty(),
        "a dry run removes no one"
    );
    assert_eq!(
        jobs_rows(&platform).await,
        jobs_before,
        "nor writes the plan"
    );

    let body = tick(&handler, now + Duration::minutes(1)).await;
    let lines = logs(&body);
    let handler_log = handler.logs();
    for (id, why) in changed {
        let line = format!(
            "skipped guest {id}: the directory changed since listing ({why}); the next run decides again"
        );
        assert!(lines.contains(&line), "{line} in {lines:#?}");
        assert!(handler_log.contains(&line), "{line} in the handler's log");
    }
    assert!(
        summary(&body).contains("skipped because the directory changed since listing 4"),
        "{}",
        summary(&body)
    );
    assert_eq!(
        platform.sim.deleted_users(),
        vec![due.clone()],
        "{lines:#?}"
    );
    for id in [&converted, &excluded] {
        assert!(!platform.sim.user(id).unwrap().deleted);
    }
    assert!(platform.sim.user(&enabled).unwrap().account_enabled);
    assert_eq!(platform.wait_for_mails(&warned_mail, 1).await.len(), 1);
    assert!(
        platform.mails_to(&spared_mail).is_empty(),
        "excluded meanwhile"
    );
    let skipped = audit_of(&platform, "guest.skipped").await;
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(skipped
        .iter()
        .all(|e| e.detail.starts_with("the directory changed since listing")));
    assert!(jobs_rows(&platform).await.is_empty(), "the plan is done");
}

/// A plan that passed the cap when it was made meets it again, as it is set now, when a later
/// run resumes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_plan_meets_the_cap_as_it_is_set_now() {
    let mut platform = Platform::start().await;
    platform.set("CLEANUP_TIME_BUDGET_SECONDS", "0");
    platform.set("CLEANUP_MAX_REMOVAL_PERCENT", "100");
    platform.set("CLEANUP_MAX_REMOVALS", "10");
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    for k in 0..6 {
        disabled_guest(&platform, &format!("capped{k}"), t, 20).await;
    }
    let handler = platform.start_handler().await;
    let body = tick(&handler, t).await;
    assert!(
        summary(&body).contains("paused after 0 of 6 actions"),
        "{body}"
    );
    drop(handler);

    platform.set("CLEANUP_MAX_REMOVALS", "5");
    let handler = platform.start_handler().await;
    let body = tick(&handler, t + Duration::minutes(5)).await;
    let lines = logs(&body);
    assert!(
        lines.iter().any(|l| l.starts_with("cleanup stopped before any change to guests: 6 removals planned, more than CLEANUP_MAX_REMOVALS=5")
            && l.contains("set CLEANUP_MAX_REMOVALS to at least 6")),
        "{lines:#?}"
    );
    assert!(platform.sim.deleted_users().is_empty());
    assert_eq!(platform.sim.calls().delete_user, 0);
    assert_eq!(audit_of(&platform, "cleanup.stopped").await.len(), 1);
    assert!(jobs_rows(&platform).await.is_empty(), "the plan is dropped");
}

/// The plan and the checkpoint drive removals and sit in a table others may be able to write:
/// a row that does not verify under the portal's signing keys is discarded, with the reason in
/// the log and the audit trail, and the run plans again from the directory. Key rotation keeps
/// a plan signed with the previous key; a retired key's plan is discarded.
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_or_checkpoint_the_portal_did_not_sign_is_discarded_and_never_followed() {
    let mut platform = Platform::start().await;
    platform.set("CLEANUP_TIME_BUDGET_SECONDS", "0");
    platform.set("CLEANUP_MAX_REMOVAL_PERCENT", "100");
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    let due = disabled_guest(&platform, "signed", t, 20).await;
    let victim_mail = platform.address("victim");
    let victim = platform.sim.add_guest(
        SeedGuest::new(&victim_mail)
            .created(t - Duration::days(10))
            .accepted(t - Duration::days(10)),
    );
    save(
        &platform,
        &record(&victim, &victim_mail, t - Duration::days(10)),
    )
    .await;
    let handler = platform.start_handler().await;
    let store = platform.store();
    let discarded = |body: &Value, why: &str| {
        logs(body).iter().any(|l| {
            l.starts_with("the stored cleanup plan is discarded and made again: ")
                && l.contains(why)
        })
    };

    tick(&handler, t).await;
    // Someone who can write the Jobs table adds the victim to the plan.
    let mut row = store
        .get(TableName::Jobs, "cleanup", "plan-000000")
        .await
        .unwrap()
        .expect("the plan's first row");
    let (_, victim_etag) = guests::get(&store, &victim).await.unwrap().unwrap();
    let lines = row.props["E0"].as_str().unwrap().to_string();
    row.set("E0", format!("{lines}\nXa|{victim}|{victim_etag}||"));
    store.upsert(TableName::Jobs, &row).await.unwrap();
    let body = tick(&handler, t + Duration::hours(1)).await;
    assert!(
        discarded(
            &body,
            "plan row plan-000000 is not trusted as this plan's: its signature does not match its content (changed or forged)"
        ),
        "{body}"
    );
    assert_eq!(audit_of(&platform, "cleanup.plan_discarded").await.len(), 1);

    // A checkpoint written without the key.
    let mut checkpoint = store
        .get(TableName::Jobs, "cleanup", "checkpoint")
        .await
        .unwrap()
        .expect("the new plan's checkpoint");
    checkpoint.props.remove("Signature");
    store.upsert(TableName::Jobs, &checkpoint).await.unwrap();
    let body = tick(&handler, t + Duration::hours(2)).await;
    assert!(
        discarded(
            &body,
            "the checkpoint is not trusted: it carries no signature"
        ),
        "{body}"
    );
    assert_eq!(audit_of(&platform, "cleanup.plan_discarded").await.len(), 2);
    drop(handler);

    // The keys rotate: the plan signed with the old key is still the portal's.
    let k3 = "k3:dGVzdC1zaWduaW5nLWtleS0zLTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZA==";
    platform.set(
        "PORTAL_SIGNING_KEYS",
        &format!("{k3},{}", current_test_key()),
    );
    let handler = platform.start_handler().await;
    let body = tick(&handler, t + Duration::hours(3)).await;
    assert!(!discarded(&body, ""), "{body}");
    assert_eq!(platform.sim.deleted_users(), vec![due.clone()], "{body}");
    assert!(jobs_rows(&platform).await.is_empty());

    // A plan signed with a key that is then retired is not.
    disabled_guest(&platform, "later", t, 20).await;
    let body = tick(&handler, t + Duration::hours(4)).await;
    assert!(summary(&body).contains("paused"), "{body}");
    drop(handler);
    platform.set(
        "PORTAL_SIGNING_KEYS",
        "k4:dGVzdC1zaWduaW5nLWtleS00LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZA==",
    );
    let handler = platform.start_handler().await;
    let body = tick(&handler, t + Duration::hours(5)).await;
    assert!(
        discarded(
            &body,
            "the checkpoint is not trusted: it is signed with key 'k3', which is not among PORTAL_SIGNING_KEYS"
        ),
        "{body}"
    );
    let v = platform.sim.user(&victim).unwrap();
    assert!(
        v.account_enabled && !v.deleted,
        "the victim was never touched"
    );
    assert!(platform.mails_to(&victim_mail).is_empty());
}

/// A stored `@odata.nextLink` (signed, so written by the portal, say under another
/// GRAPH_BASE_URL) is followed only on the origin of GRAPH_BASE_URL: one to another host is
/// discarded, and no request, so no Graph token, goes there.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_paging_link_to_another_host_is_never_followed() {
    let platform = Platform::start().await;
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    let due = disabled_guest(&platform, "paged", t, 20).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let visited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = visited.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mut c = jobs::Checkpoint::new(t, false);
    c.next_link = Some(format!(
        "http://127.0.0.1:{port}/v1.0/users?$filter=userType+eq+%27Guest%27&$skiptoken=abc"
    ));
    c.pages = 1;
    jobs::save_checkpoint(&platform.store(), &test_keys(), "cleanup", &c)
        .await
        .unwrap();
    let handler = platform.start_handler().await;

    let body = tick(&handler, t).await;
    assert!(
        logs(&body).iter().any(|l| l.contains(
            "discarded and made again: its nextLink is not on the origin of GRAPH_BASE_URL"
        )),
        "{body}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !visited.load(std::sync::atomic::Ordering::SeqCst),
        "nothing was sent to the other host"
    );
    assert_eq!(
        platform.sim.deleted_users(),
        vec![due],
        "listed again from the first page"
    );
    assert_eq!(audit_of(&platform, "cleanup.plan_discarded").await.len(), 1);
}

/// The exclusion group holds a group that holds the guest: transitive members are read, every
/// page of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_in_a_group_nested_in_the_exclusion_group_is_never_touched() {
    let mut platform = Platform::start().await;
    platform.set("CLEANUP_MAX_REMOVAL_PERCENT", "100");
    let keep = platform.sim.add_group("Never clean up");
    let inner = platform.sim.add_group("Long-standing partners");
    assert!(platform.sim.add_group_member(&keep, &inner));
    platform.set("CLEANUP_EXCLUSION_GROUP_ID", &keep);
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    // Enough members before it that the guest is on the group's second page.
    platform.sim.seed_guests(1000, t - Duration::days(400));
    for u in platform.sim.users() {
        assert!(platform.sim.add_group_member(&inner, &u.id));
    }
    let nested = disabled_guest(&platform, "nested", t, 20).await;
    assert!(platform.sim.add_group_member(&inner, &nested));
    let other = disabled_guest(&platform, "other", t, 20).await;
    let handler = platform.start_handler().await;

    let body = tick(&handler, t).await;
    assert_eq!(platform.sim.deleted_users(), vec![other], "{body}");
    let n = platform.sim.user(&nested).unwrap();
    assert!(!n.deleted && !n.account_enabled, "left as it was");
    let skipped = audit_of(&platform, "guest.skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].user_id.as_deref(), Some(nested.as_str()));
    assert!(skipped[0].detail.contains("exclusion group"));
    assert!(
        summary(&body).contains("excluded and due 1"),
        "{}",
        summary(&body)
    );
}

/// Failed sign-ins (someone spraying passwords at a stale guest) do not keep it alive: the
/// last successful sign-in counts. A guest Graph gives no signInActivity for is not judged at
/// all, rather than judged "never signed in".
#[tokio::test(flavor = "multi_thread")]
async fn inactivity_is_judged_by_the_last_successful_sign_in_and_missing_activity_is_not_never() {
    let mut platform = Platform::start().await;
    platform.set("CLEANUP_INACTIVE_DAYS", "30");
    let t = OffsetDateTime::now_utc() + Duration::days(100);
    let old = t - Duration::days(200);
    let guest = |local: &str| {
        let email = platform.address(local);
        (SeedGuest::new(&email).created(old).accepted(old), email)
    };
    let (seed, sprayed_mail) = guest("sprayed");
    let sprayed = platform
        .sim
        .add_guest(seed.last_sign_in(t - Duration::days(60)));
    assert!(platform
        .sim
        .record_failed_sign_in(&sprayed, t - Duration::days(1)));
    let (seed, missing_mail) = guest("missing");
    let missing = platform.sim.add_guest(seed);
    let (seed, fresh_mail) = guest("fresh");
    let fresh = platform
        .sim
        .add_guest(seed.last_sign_in(t - Duration::days(5)));
    for (id, email) in [
        (&sprayed, &sprayed_mail),
        (&missing, &missing_mail),
        (&fresh, &fresh_mail),
    ] {
        save(&platform, &record(id, email, old)).await;
    }
    let handler = platform.start_handler().await;

    let body = tick(&handler, t).await;
    let mails = platform.wait_for_mails(&sprayed_mail, 1).await;
    assert_eq!(mails.len(), 1, "{body}");
    assert!(mails[0].text.contains("has not been used"));
    assert_eq!(
        guest_row(&platform, &sprayed)
            .await
            .removal_reason
            .as_deref(),
        Some("inactive")
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        platform.mails_to(&missing_mail).is_empty(),
        "no signInActivity is not 'never signed in'"
    );
    assert!(platform.mails_to(&fresh_mail).is_empty());
    assert_eq!(
        guest_row(&platform, &missing).await.state,
        GuestState::Active
    );
    assert!(
        summary(&body)
            .contains("inactivity not judged for 1 guests Graph gave no sign-in activity for"),
        "{}",
        summary(&body)
    );
}

/// Warnings announce removals: a run that would warn more guests than the cap allows stops
/// before warning anyone and says what to change.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_would_warn_more_guests_than_the_cap_allows_stops_before_warning() {
    let mut platform = Platform::start().await;
    platform.set("CLEANUP_MAX_REMOVALS", "5");
    platform.set("CLEANUP_MAX_REMOVAL_PERCENT", "100");
    let t = OffsetDateTime::now_utc() + Duration::days(30);
    let mut warned = Vec::new();
    for k in 0..8 {
        warned.push(guest_past_access(&platform, &format!("warn{k}"), t).await);
    }
    let handler = platform.start_handler().await;

    let body = tick(&handler, t).await;
    let lines = logs(&body);
    assert!(
        lines.iter().any(|l| l.starts_with(
            "cleanup stopped before any change to guests: 8 warnings planned, more than CLEANUP_MAX_REMOVALS=5"
        ) && l.contains("set CLEANUP_MAX_REMOVALS to at least 8")),
        "{lines:#?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for (id, email) in &warned {
        assert!(platform.mails_to(email).is_empty(), "no one warned");
        assert_eq!(guest_row(&platform, id).await.state, GuestState::Active);
    }
    assert_eq!(audit_of(&platform, "cleanup.stopped").await.len(), 1);
    drop(handler);

    platform.set("CLEANUP_MAX_REMOVALS", "8");
    let handler = platform.start_handler().await;
    tick(&handler, t + Duration::hours(1)).await;
    for (_, email) in &warned {
        assert_eq!(platform.wait_for_mails(email, 1).await.len(), 1);
    }
}

/// Graph answers an invitation to an address an admin invited long before with that existing
/// guest. The portal records it as pre-existing and never warns or removes it in its own
/// scope, while the guest it did create goes its way.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_existed_before_the_portal_invited_it_is_recorded_so_and_never_removed() {
    let platform = Platform::start().await;
    auto_policy(&platform, &["--access-days", "1"]).await;
    let now = OffsetDateTime::now_utc();
    let existing_mail = platform.address("longstanding");
    let existing = platform.sim.add_guest(
        SeedGuest::new(&existing_mail)
            .created(now - Duration::days(300))
            .accepted(now - Duration::days(299)),
    );
    let newcomer_mail = platform.address("newcomer");
    let handler = platform.start_handler().await;
    for (email, name) in [(&existing_mail, "Long"), (&newcomer_mail, "New")] {
        assert_eq!(
            sign_up_and_verify(&platform, &handler, email, name).await.0,
            200
        );
        assert_eq!(platform.wait_for_mails(email, 2).await.len(), 2);
    }
    let invitations = platform.sim.invitations();
    assert_eq!(invitations[0].user_id, existing);
    assert!(
        invitations[0].existing_user,
        "Graph answered with the existing guest"
    );
    let newcomer = invitations[1].user_id.clone();
    assert_eq!(
        guest_row(&platform, &existing).await.origin,
        GuestOrigin::Invited
    );

    let body = tick(&handler, now + Duration::days(2)).await;
    assert!(
        logs(&body).contains(&format!(
            "recorded guest {existing} as pre-existing: it existed before the portal invited it, so it is not the portal's to remove"
        )),
        "{body}"
    );
    assert_eq!(
        guest_row(&platform, &existing).await.origin,
        GuestOrigin::PreExisting
    );
    assert_eq!(audit_of(&platform, "guest.pre_existing").await.len(), 1);
    assert_eq!(
        platform.wait_for_mails(&newcomer_mail, 3).await.len(),
        3,
        "{body}"
    );

    let body = tick(&handler, now + Duration::days(10)).await;
    assert!(
        !platform.sim.user(&newcomer).unwrap().account_enabled,
        "{body}"
    );
    let e = platform.sim.user(&existing).unwrap();
    assert!(e.account_enabled && !e.deleted, "{body}");
    assert_eq!(
        platform.mails_to(&existing_mail).len(),
        2,
        "only the sign-up's mails"
    );
    assert_eq!(
        audit_of(&platform, "guest.pre_existing").await.len(),
        1,
        "recorded once"
    );
}
