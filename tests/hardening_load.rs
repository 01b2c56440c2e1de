//! Two handler instances on one Table Storage take a burst of sign-ups from many client IPs,
//! with every address submitted several times, then every request is verified and decided by
//! two approvers at the same moment on different instances. Nothing is lost or duplicated,
//! each request gets one decision, and the per-address limit holds across both instances.
//!
//! The CI size is 400 sign-ups; `B2B_LOAD_SIGNUPS=2000 cargo test --release --test
//! hardening_load -- --nocapture` runs the full size and prints the counts.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use b2b_signup::core::request::RequestStatus;
use common::*;
use futures::StreamExt;

const REPEATS: usize = 4;
const PER_ADDRESS: usize = 3;

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_take_a_burst_without_losing_or_duplicating_anything() {
    let total: usize = std::env::var("B2B_LOAD_SIGNUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let addresses = total / REPEATS;
    let mut platform = Platform::start().await;
    platform.set("PORTAL_RATE_LIMIT_ADDRESS", &PER_ADDRESS.to_string());
    platform.set("PORTAL_RATE_LIMIT_IP", "100000");
    platform.set("PORTAL_RATE_LIMIT_DOMAIN", "100000");
    platform.set("PORTAL_POLICY_CACHE_SECONDS", "30");
    platform.set("PORTAL_LOG_FORMAT", "text");
    platform.set(
        "RUST_LOG",
        if std::env::var("B2B_DEBUG_LOAD").is_ok() {
            "info"
        } else {
            "warn"
        },
    );
    platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        "first@contoso.example",
        "--approver",
        "second@contoso.example",
    ]);
    let a = Arc::new(platform.start_handler().await);
    let b = Arc::new(platform.start_handler().await);
    let emails: Vec<String> = (0..addresses)
        .map(|i| platform.address(&format!("load{i}")))
        .collect();

    // The burst: every address REPEATS times, alternating instances, each from its own IP.
    let statuses: Arc<std::sync::Mutex<HashMap<u16, usize>>> = Default::default();
    let started = std::time::Instant::now();
    futures::stream::iter(0..total)
        .for_each_concurrent(32, |i| {
            let handler = if i % 2 == 0 { a.clone() } else { b.clone() };
            let email = emails[i % addresses].clone();
            let statuses = statuses.clone();
            async move {
                let body = format!(
                    "email={}&first_name=Load&last_name=Test&organisation=Partner",
                    urlencode(&email)
                );
                let resp = handler
                    .forward(reqwest::Method::POST, "/api/signup")
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .header(
                        "X-Forwarded-For",
                        format!("198.18.{}.{}", i / 250, i % 250 + 1),
                    )
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                *statuses
                    .lock()
                    .unwrap()
                    .entry(resp.status().as_u16())
                    .or_default() += 1;
            }
        })
        .await;
    let burst = started.elapsed();
    let statuses = statuses.lock().unwrap().clone();
    let accepted = statuses.get(&200).copied().unwrap_or(0);
    let limited = statuses.get(&429).copied().unwrap_or(0);
    println!("burst: {total} sign-ups for {addresses} addresses on 2 instances in {burst:?}: {statuses:?}");
    if std::env::var("B2B_DEBUG_LOAD").is_ok() {
        for h in [&a, &b] {
            let logs = h.logs();
            for what in ["client IP over", "address over", "domain over"] {
                println!("{what}: {}", logs.matches(what).count());
            }
        }
    }
    assert_eq!(accepted + limited, total, "only 200 and 429: {statuses:?}");
    assert_eq!(
        accepted,
        addresses * PER_ADDRESS,
        "the per-address limit holds across instances"
    );
    assert_eq!(limited, addresses * (REPEATS - PER_ADDRESS));

    // The policies look at each submission right after its answer: wait for them to finish.
    let store = platform.store();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mine = loop {
        let requests = b2b_signup::store::requests::list(&store, None, None)
            .await
            .unwrap();
        let mine: Vec<_> = requests
            .into_iter()
            .filter(|r| r.applicant.email.domain().as_str() == platform.partner_domain)
            .collect();
        let settled = mine.iter().all(|r| r.status != RequestStatus::Submitted);
        if settled || std::time::Instant::now() > deadline {
            break mine;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        mine.len(),
        addresses,
        "one request per address, none lost, none duplicated"
    );
    assert!(mine
        .iter()
        .all(|r| r.status == RequestStatus::PendingVerification));

    // Mail: each address got its link, at most PER_ADDRESS times.
    let mut mails_per_address: HashMap<String, usize> = HashMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        mails_per_address.clear();
        for e in &emails {
            mails_per_address.insert(e.clone(), 0);
        }
        for m in read_all_mails(&platform) {
            if let Some(n) = mails_per_address.get_mut(&m.to.to_lowercase()) {
                *n += 1;
            }
        }
        let sent: usize = mails_per_address.values().sum();
        if sent >= addresses * PER_ADDRESS || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        mails_per_address
            .values()
            .all(|n| (1..=PER_ADDRESS).contains(n)),
        "{mails_per_address:?}"
    );

    // Verify every request (on alternating instances), then two approvers decide each request
    // at the same moment on different instances.
    let links: Vec<String> = emails
        .iter()
        .map(|e| {
            platform
                .mails_to(e)
                .last()
                .expect("a verification mail")
                .link_containing("/api/signup/verify")
        })
        .collect();
    futures::stream::iter(links.iter().enumerate())
        .for_each_concurrent(16, |(i, link)| {
            let handler = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move {
                let resp = post_form(
                    &handler,
                    "/api/signup/verify",
                    &[("token", &token_of(link))],
                )
                .await;
                assert_eq!(resp.status(), 200);
            }
        })
        .await;
    // Approvers are mailed right after each answer: two per request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let approver_mails: Vec<Mail> = loop {
        let mails: Vec<Mail> = read_all_mails(&platform)
            .into_iter()
            .filter(|m| m.to.ends_with("@contoso.example"))
            .collect();
        if mails.len() >= 2 * addresses || std::time::Instant::now() > deadline {
            break mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        approver_mails.len(),
        2 * addresses,
        "each approver mailed once per request"
    );
    let wins = Arc::new(AtomicUsize::new(0));
    let losses = Arc::new(AtomicUsize::new(0));
    futures::stream::iter(emails.iter().enumerate())
        .for_each_concurrent(16, |(i, email)| {
            let (a, b) = (a.clone(), b.clone());
            let (wins, losses) = (wins.clone(), losses.clone());
            let first = approver_mails
                .iter()
                .find(|m| m.to == "first@contoso.example" && m.text.contains(email.as_str()))
                .unwrap()
                .link_containing("/api/approve");
            let second = approver_mails
                .iter()
                .find(|m| m.to == "second@contoso.example" && m.text.contains(email.as_str()))
                .unwrap()
                .link_containing("/api/approve");
            async move {
                let (t1, t2) = (token_of(&first), token_of(&second));
                let d1 = if i % 3 == 0 { "deny" } else { "approve" };
                let f1 = [("token", t1.as_str()), ("decision", d1)];
                let f2 = [("token", t2.as_str()), ("decision", "approve")];
                let (r1, r2) = tokio::join!(
                    post_form(&a, "/api/approve", &f1),
                    post_form(&b, "/api/approve", &f2)
                );
                for r in [r1.status().as_u16(), r2.status().as_u16()] {
                    match r {
                        200 => wins.fetch_add(1, Ordering::Relaxed),
                        409 => losses.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected decision status {other}"),
                    };
                }
            }
        })
        .await;
    let requests = b2b_signup::store::requests::list(&store, None, None)
        .await
        .unwrap();
    let mine: Vec<_> = requests
        .iter()
        .filter(|r| r.applicant.email.domain().as_str() == platform.partner_domain)
        .collect();
    let invited = mine
        .iter()
        .filter(|r| r.status == RequestStatus::Invited)
        .count();
    let denied = mine
        .iter()
        .filter(|r| r.status == RequestStatus::Denied)
        .count();
    println!(
        "decisions: {} requests, {} won, {} told someone decided first; {invited} invited, {denied} denied; {} invitations in Graph",
        mine.len(),
        wins.load(Ordering::Relaxed),
        losses.load(Ordering::Relaxed),
        platform.sim.invitations().len()
    );
    assert_eq!(
        wins.load(Ordering::Relaxed),
        addresses,
        "exactly one decision per request"
    );
    assert_eq!(losses.load(Ordering::Relaxed), addresses);
    assert_eq!(invited + denied, addresses, "every request decided");
    assert_eq!(
        platform.sim.invitations().len(),
        invited,
        "one invitation per approved request"
    );
    for r in &mine {
        let by = &r.decision.as_ref().unwrap().by;
        assert!(by == "first@contoso.example" || by == "second@contoso.example");
    }
}

fn read_all_mails(platform: &Platform) -> Vec<Mail> {
    // Mails to this test's addresses and its approvers only; the maildir is shared.
    let domain = platform.partner_domain.clone();
    let mut out = Vec::new();
    for m in platform.mails_to_any() {
        if m.to.ends_with(&domain) || m.text.contains(&domain) {
            out.push(m);
        }
    }
    out
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
