//! Every mail goes through the outbox: recorded with the change that causes it, sent after the
//! answer, swept by the timer when an instance died or the mail server failed, and never lost
//! or sent twice. And the answer to the form does the same work for everyone: what the policy
//! makes of a submission happens after it, and unadmitted domains become demand an admin sees.

mod common;

use std::time::Duration;

use b2b_signup::adapters::tables::{Row, TableName};
use b2b_signup::core::outbox::{MailKind, MailState};
use b2b_signup::core::request::RequestStatus;
use common::*;
use time::OffsetDateTime;

fn later(minutes: i64) -> String {
    rfc3339(OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
}

/// Waits until `address` has a verification mail in the outbox that was tried at least once.
async fn wait_for_a_failed_attempt(platform: &Platform, address: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mails = outbox(platform).await;
        if mails
            .iter()
            .any(|m| m.letter.to == address && m.delivery.attempts > 0)
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{mails:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_killed_after_answering_while_smtp_defers_sends_the_mail_once_from_the_sweep() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let smtp = FaultySmtp::start("TempFail");
    let deferring = platform
        .with(&[("SMTP_URL", &smtp.url())])
        .start_handler()
        .await;
    let email = platform.address("killed");
    let resp = submit_form(&deferring, &partner_fields(&email, "Kill")).await;
    assert_eq!(resp.status(), 200);
    wait_for_a_failed_attempt(&platform, &email).await;
    // SIGKILL: no goodbye, no flush.
    drop(deferring);
    assert!(platform.mails_to(&email).is_empty());

    let healthy = platform.start_handler().await;
    let (status, body) = healthy.invoke_cleanup(&later(5)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("delivered 1"), "{body}");
    assert_eq!(platform.wait_for_mails(&email, 1).await.len(), 1);
    let (_, body) = healthy.invoke_cleanup(&later(10)).await;
    assert!(body.to_string().contains("mail due 0"), "{body}");
    assert_eq!(platform.mails_to(&email).len(), 1, "exactly one mail");
    let mail = outbox(&platform).await.remove(0);
    assert_eq!(mail.delivery.state, MailState::Delivered);
    assert_eq!(mail.delivery.attempts, 2, "one deferral, one delivery");
}

#[tokio::test(flavor = "multi_thread")]
async fn submissions_of_a_handler_killed_right_after_its_answers_are_finished_by_the_sweep() {
    let mut platform = Platform::start().await;
    // A sender owns a mail it is sending for 2 x this + 5 s of real time.
    platform.set("SMTP_TIMEOUT_SECONDS", "1");
    platform.add_partner_policy(&["--action", "auto"]);
    let first = platform.start_handler().await;
    let emails: Vec<String> = (0..5)
        .map(|k| platform.address(&format!("cut{k}")))
        .collect();
    for email in &emails {
        let resp = submit_form(&first, &partner_fields(email, "Cut")).await;
        assert_eq!(resp.status(), 200);
    }
    // Killed the moment the last answer is out: whatever the policies had not looked at yet,
    // and whatever mail had not left, is in storage.
    drop(first);
    let second = platform.start_handler().await;
    // A mail the dead instance was sending is its own until the lease runs out.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    let (status, body) = second.invoke_cleanup(&later(5)).await;
    assert_eq!(status, 200, "{body}");
    for email in &emails {
        assert!(
            !platform.wait_for_mails(email, 1).await.is_empty(),
            "{email}: {body}"
        );
        let requests = requests_for(&platform, email).await;
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].status, RequestStatus::PendingVerification);
    }
    second.invoke_cleanup(&later(15)).await;
    for email in &emails {
        // A kill between the mail server's "250 accepted" and the row saying so is the one
        // moment a mail can go out twice (SMTP has no idempotency); it is then the same
        // message, by its Message-ID, which mail systems recognise as a duplicate.
        let ids: std::collections::HashSet<String> =
            platform.mails_to(email).iter().map(message_id).collect();
        assert_eq!(ids.len(), 1, "{email}: one message");
    }
}

fn message_id(mail: &Mail) -> String {
    mail.raw_headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Message-ID in {}", mail.raw_headers))
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_down_for_hours_then_back_sends_every_pending_mail_once() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let down = platform
        .with(&[("SMTP_URL", &format!("smtp://127.0.0.1:{}", free_port()))])
        .start_handler()
        .await;
    let emails: Vec<String> = (0..6)
        .map(|k| platform.address(&format!("outage{k}")))
        .collect();
    for email in &emails {
        assert_eq!(
            submit_form(&down, &partner_fields(email, "Out"))
                .await
                .status(),
            200
        );
    }
    for email in &emails {
        wait_for_a_failed_attempt(&platform, email).await;
    }
    // The outage goes on: every sweep tries, backs off, and keeps the mail.
    for minutes in [2, 5, 12, 30, 70] {
        let (status, body) = down.invoke_cleanup(&later(minutes)).await;
        assert_eq!(status, 200, "{body}");
    }
    let mails = outbox(&platform).await;
    assert_eq!(mails.len(), emails.len());
    assert!(
        mails
            .iter()
            .all(|m| m.delivery.state == MailState::Pending && m.delivery.attempts >= 3),
        "{mails:#?}"
    );
    assert!(emails.iter().all(|e| platform.mails_to(e).is_empty()));
    drop(down);

    // Mail is back three hours later.
    let up = platform.start_handler().await;
    let (status, body) = up.invoke_cleanup(&later(180)).await;
    assert_eq!(status, 200, "{body}");
    for email in &emails {
        assert_eq!(platform.wait_for_mails(email, 1).await.len(), 1, "{email}");
    }
    up.invoke_cleanup(&later(240)).await;
    for email in &emails {
        assert_eq!(platform.mails_to(email).len(), 1, "{email}: once");
    }
    assert!(outbox(&platform)
        .await
        .iter()
        .all(|m| m.delivery.state == MailState::Delivered));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_handlers_sweeping_the_same_outbox_send_each_mail_once() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let down = platform
        .with(&[("SMTP_URL", &format!("smtp://127.0.0.1:{}", free_port()))])
        .start_handler()
        .await;
    // 18: under the per-IP limit of 20 an hour.
    let emails: Vec<String> = (0..18)
        .map(|k| platform.address(&format!("twice{k}")))
        .collect();
    for email in &emails {
        let resp = submit_form(&down, &partner_fields(email, "Two")).await;
        assert_eq!(resp.status(), 200);
    }
    for email in &emails {
        wait_for_a_failed_attempt(&platform, email).await;
    }
    drop(down);
    let (a, b) = (
        platform.start_handler().await,
        platform.start_handler().await,
    );
    let at = later(5);
    let ((sa, ba), (sb, bb)) = tokio::join!(a.invoke_cleanup(&at), b.invoke_cleanup(&at));
    assert_eq!((sa, sb), (200, 200), "{ba} {bb}");
    for email in &emails {
        assert_eq!(platform.wait_for_mails(email, 1).await.len(), 1, "{email}");
    }
    // Give a late duplicate every chance to arrive, then count again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total: usize = emails.iter().map(|e| platform.mails_to(e).len()).sum();
    assert_eq!(total, emails.len(), "no duplicate: {ba} {bb}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mailbox_gets_no_more_mail_than_its_limit_whatever_its_tags() {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_RATE_LIMIT_ADDRESS", "3");
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let mut statuses = Vec::new();
    let mut addresses = Vec::new();
    for k in 1..=12 {
        let email = platform.address(&format!("Victim+{k}"));
        statuses.push(
            submit_form(&handler, &partner_fields(&email, "Tag"))
                .await
                .status()
                .as_u16(),
        );
        addresses.push(email);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        9,
        "{statuses:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for address in &addresses[..3] {
        platform.wait_for_mails(address, 1).await;
    }
    let delivered: usize = addresses.iter().map(|a| platform.mails_to(a).len()).sum();
    assert_eq!(delivered, 3, "three mails reach the one inbox");
    // The invitation goes to the address as typed: the first tag is kept.
    assert!(platform.mails_to(&addresses[0])[0]
        .to
        .starts_with("Victim+1@"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_row_the_portal_did_not_write_is_never_sent() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("genuine");
    submit_form(&handler, &partner_fields(&email, "Real")).await;
    platform.wait_for_mails(&email, 1).await;
    let store = platform.store();
    let genuine = outbox(&platform).await.remove(0);

    // Someone with write access to the table adds a mail of their own, and changes the
    // recipient of a genuine one (the seal covers what is sent to whom).
    let victim = platform.address("phished");
    let mut forged = Row::new(&genuine.partition_key, "mail-verification-forged0001");
    forged
        .set("Kind", "verification")
        .set("To", victim.as_str())
        .set("Subject", "Your password expires")
        .set("Text", "Log in at https://evil.example/login")
        .set("Html", "<a href=\"https://evil.example/login\">log in</a>")
        .set("State", "pending")
        .set("Attempts", 0u32)
        .set("CreatedAt", later(-5))
        .set("DueAt", later(-5))
        .set("Seal", "k2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    store.insert(TableName::Requests, &forged).await.unwrap();
    let rk = format!("mail-{}", genuine.letter.id);
    let mut row = store
        .get(TableName::Requests, &genuine.partition_key, &rk)
        .await
        .unwrap()
        .unwrap();
    let etag = row.etag.clone().unwrap();
    row.set("To", victim.as_str())
        .set("State", "pending")
        .set("DueAt", later(-5));
    store
        .replace(TableName::Requests, &row, &etag)
        .await
        .unwrap();

    let (status, body) = handler.invoke_cleanup(&later(5)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_string().contains("not ours and refused 2"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        platform.mails_to(&victim).is_empty(),
        "nothing reaches the victim"
    );
    let failed = platform.cli(&["mail", "list", "--failed", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&failed.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    for m in list.as_array().unwrap() {
        assert_eq!(m["sealed"], false, "{m}");
        assert!(m["last_error"].as_str().unwrap().contains("seal"), "{m}");
    }
    assert!(handler.logs().contains("seal does not verify"));
    // And an admin cannot push it out by hand either.
    let retry = platform.cli(&["mail", "retry", "--all"]);
    assert_ne!(retry.code, 0);
    assert!(platform.mails_to(&victim).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unadmitted_sign_ups_become_demand_with_no_personal_data() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let denied_domain = format!("{}.example", unique("denied"));
    let out = platform.cli(&[
        "policy",
        "add",
        "--domain",
        &denied_domain,
        "--action",
        "deny",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let unknown_domain = format!("{}.example", unique("unknown"));
    let handler = platform.start_handler().await;

    let mut strangers = Vec::new();
    for (domain, n) in [(&unknown_domain, 3), (&denied_domain, 2)] {
        for k in 0..n {
            let email = format!("stranger{k}@{domain}");
            personal(&email);
            let resp = submit_form(&handler, &partner_fields(&email, "Stranger")).await;
            assert_eq!(resp.status(), 200, "the same answer");
            strangers.push(email);
        }
    }
    let admitted = platform.address("welcome");
    submit_form(&handler, &partner_fields(&admitted, "Welcome")).await;
    platform.wait_for_mails(&admitted, 1).await;

    // The policies looked at every submission right after its answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let demand = loop {
        let out = platform.cli(&["demand", "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let counted: u64 = v
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["no_policy"].as_u64().unwrap() + d["denied"].as_u64().unwrap())
            .sum();
        if counted == 5 {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let row = |domain: &str| {
        demand
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["domain"] == domain)
            .cloned()
            .unwrap_or_else(|| panic!("{domain} in {demand}"))
    };
    assert_eq!(row(&unknown_domain)["no_policy"], 3);
    assert_eq!(row(&unknown_domain)["policy_now"], "no policy");
    assert_eq!(row(&denied_domain)["denied"], 2);
    assert!(row(&denied_domain)["policy_now"]
        .as_str()
        .unwrap()
        .starts_with("denied by"));
    assert!(
        demand
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["domain"] != platform.partner_domain.as_str()),
        "admitted domains are not demand"
    );
    let table = platform.cli(&["demand"]);
    assert!(table.stdout.contains(&unknown_domain), "{}", table.stdout);

    // Nothing personal is kept of them: no request, no mail, nothing in the demand rows.
    for email in &strangers {
        assert!(requests_for(&platform, email).await.is_empty(), "{email}");
        assert!(platform.mails_to(email).is_empty(), "{email}");
    }
    let rows = platform
        .store()
        .query(TableName::Demand, None)
        .await
        .unwrap();
    let text = format!("{rows:?}");
    assert!(!text.contains("stranger"), "{text}");
    assert!(!text.contains("Stranger"), "{text}");
    assert!(!text.contains("Lovelace"), "{text}");
    // Only the admitted address has mail in the outbox.
    let mails = outbox(&platform).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].letter.kind, MailKind::Verification);
    assert_eq!(mails[0].letter.to, admitted);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timer_ticks_often_for_mail_and_requests_and_hourly_for_the_directory() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    let t = OffsetDateTime::now_utc();
    let (_, first) = handler.invoke_cleanup(&rfc3339(t)).await;
    assert!(first.to_string().contains("guests listed"), "{first}");
    let lists = platform.sim.calls().list_users_pages;
    for minutes in [5, 10, 55] {
        let (status, body) = handler
            .invoke_cleanup(&rfc3339(t + time::Duration::minutes(minutes)))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.to_string().contains("mail due"), "{body}");
        assert!(
            body.to_string().contains("guests and purges not due"),
            "{body}"
        );
    }
    assert_eq!(platform.sim.calls().list_users_pages, lists, "no listing");
    let (_, hour) = handler
        .invoke_cleanup(&rfc3339(t + time::Duration::minutes(61)))
        .await;
    assert!(hour.to_string().contains("guests listed"), "{hour}");
    // An operator's run does everything, whenever.
    let out = platform.cli(&["cleanup", "run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("guests listed"), "{}", out.stdout);
}
