//! Access reviews through the binary: a guest stays as long as someone vouches for it. The
//! timer is invoked as the host invokes it, with the host's UtcNow moved forward to let the
//! days of a review interval pass; sponsors answer from the links in their mail, as a browser
//! posts the page's buttons.

mod common;

use b2b_signup::core::review::Decider;
use b2b_signup::core::token::{new_nonce, TokenClaims, TokenPurpose};
use b2b_signup::store::guests::{Guest, GuestState};
use common::*;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

fn logs(body: &Value) -> String {
    run_logs(body).join("\n")
}

async fn guest_row(platform: &Platform, user_id: &str) -> (Guest, String) {
    guest_record(platform, user_id).await
}

/// A guest admitted by an `auto` policy that names two sponsors and reviews every 90 days
/// (sponsors have 14 days to answer, and are reminded after 7).
struct Admitted {
    platform: Platform,
    handler: Handler,
    email: String,
    user_id: String,
    sponsors: [String; 2],
    /// When the guest was invited.
    t0: OffsetDateTime,
}

impl Admitted {
    async fn new(on_no_answer: &str) -> Admitted {
        Self::with(on_no_answer, &[]).await
    }

    async fn with(on_no_answer: &str, extra: &[&str]) -> Admitted {
        Self::with_settings(on_no_answer, extra, &[]).await
    }

    async fn with_settings(
        on_no_answer: &str,
        extra: &[&str],
        settings: &[(&str, &str)],
    ) -> Admitted {
        let mut platform = Platform::start().await;
        for (name, value) in settings {
            platform.set(name, value);
        }
        let sponsors = [
            format!("{}@contoso.example", unique("sponsor-a")),
            format!("{}@contoso.example", unique("sponsor-b")),
        ];
        for s in &sponsors {
            personal(s);
        }
        let mut args = vec![
            "--action",
            "auto",
            "--sponsor",
            sponsors[0].as_str(),
            "--sponsor",
            sponsors[1].as_str(),
            "--review-days",
            "90",
            "--on-no-answer",
            on_no_answer,
        ];
        args.extend_from_slice(extra);
        let out = platform.add_partner_policy(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        // One sponsor is a member of the tenant, so the directory can record them.
        platform.sim.add_member(&sponsors[0], "Sponsor A");
        let handler = platform.start_handler().await;
        let email = platform.address(&unique("ada"));
        let (status, page) = sign_up_and_verify(&platform, &handler, &email, "Ada").await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(platform.wait_for_mails(&email, 2).await.len(), 2);
        let user_id = platform.sim.invitations()[0].user_id.clone();
        // Redeemed: the cleanup has nothing against the guest but what the reviews say.
        assert!(platform.sim.redeem(&user_id));
        let t0 = guest_row(&platform, &user_id).await.0.invited_at;
        Admitted {
            platform,
            handler,
            email,
            user_id,
            sponsors,
            t0,
        }
    }

    /// When its first review opens: 14 days before the 90 are over.
    fn opens(&self) -> OffsetDateTime {
        self.t0 + Duration::days(76) + Duration::hours(1)
    }

    fn deadline(&self) -> OffsetDateTime {
        self.t0 + Duration::days(90)
    }

    /// The review link in the newest review mail to sponsor `i`.
    async fn link(&self, i: usize) -> String {
        self.platform
            .wait_for_mail(&self.sponsors[i], |m| {
                m.text.contains(&self.email) && m.text.contains("/api/approve/review")
            })
            .await
            .link_containing("/api/approve/review")
    }

    async fn open_review(&self) -> Value {
        let body = tick(&self.handler, self.opens()).await;
        for s in &self.sponsors {
            self.platform
                .wait_for_mail(s, |m| m.text.contains(&self.email))
                .await;
        }
        body
    }

    async fn answer(&self, link: &str, decision: &str) -> (u16, String) {
        let token = token_of(link);
        let resp = post_form(
            &self.handler,
            "/api/approve/review",
            &[("token", token.as_str()), ("decision", decision)],
        )
        .await;
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_review_keeps_the_guest_another_interval_and_opening_its_links_decides_nothing() {
    let a = Admitted::new("end").await;
    let row = guest_row(&a.platform, &a.user_id).await.0;
    assert_eq!(
        row.reviews.due_at,
        Some(a.deadline()),
        "scheduled at invitation"
    );
    assert_eq!(
        row.sponsors,
        a.sponsors.to_vec(),
        "the policy's sponsors, recorded"
    );
    let member = a.platform.sim.user_by_mail(&a.sponsors[0]).unwrap().id;
    assert_eq!(
        a.platform.sim.user(&a.user_id).unwrap().sponsors,
        vec![member],
        "the directory knows who sponsors the guest (the one it knows)"
    );

    // Not yet: a day before the review opens, nobody is asked.
    tick(&a.handler, a.opens() - Duration::days(1)).await;
    assert!(a.platform.mails_to(&a.sponsors[0]).is_empty());

    // A dry run says what the timer would do, and does none of it.
    let (_, etag) = guest_row(&a.platform, &a.user_id).await;
    let dry = a
        .platform
        .with(&[("CLEANUP_DRY_RUN", "true")])
        .start_handler()
        .await;
    let body = tick(&dry, a.opens()).await;
    assert!(
        logs(&body).contains(&format!("would ask 2 sponsors of guest {}", a.user_id))
            && logs(&body).contains("reviews would be opened 1"),
        "{}",
        logs(&body)
    );
    assert_eq!(guest_row(&a.platform, &a.user_id).await.1, etag);
    assert!(audit_of(&a.platform, "review.opened").await.is_empty());
    assert!(a.platform.mails_to(&a.sponsors[0]).is_empty());

    let body = a.open_review().await;
    assert!(logs(&body).contains("reviews opened 1"), "{}", logs(&body));
    let mail = a
        .platform
        .wait_for_mail(&a.sponsors[0], |m| m.text.contains(&a.email))
        .await;
    assert_eq!(mail.subject, "Does a guest still need access to Contoso?");
    assert!(
        mail.text
            .contains("Ada Lovelace from Partner AB has guest access to Contoso"),
        "{}",
        mail.text
    );
    assert!(
        mail.text.contains("If no sponsor answers by"),
        "{}",
        mail.text
    );
    let opened = audit_of(&a.platform, "review.opened").await;
    assert_eq!(opened.len(), 1);
    assert!(
        opened[0].detail.contains("2 sponsors asked"),
        "{}",
        opened[0].detail
    );

    // Scanners (and people) open the links as often as they like: nothing changes.
    let link = a.link(0).await;
    let (_, etag_before) = guest_row(&a.platform, &a.user_id).await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::HEAD,
        reqwest::Method::GET,
    ] {
        let resp = a
            .handler
            .forward(method.clone(), &path_of(&link))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let page = resp.text().await.unwrap();
        if method == reqwest::Method::GET {
            assert!(page.contains("Keep for another 90 days"), "{page}");
            assert!(page.contains("End access now"), "{page}");
        }
    }
    let (row, etag_after) = guest_row(&a.platform, &a.user_id).await;
    assert_eq!(etag_before, etag_after, "GET and HEAD wrote nothing");
    assert!(row.reviews.open.is_some() && row.reviews.last.is_none());

    let (status, page) = a.answer(&link, "keep").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Access kept"), "{page}");
    let row = guest_row(&a.platform, &a.user_id).await.0;
    let last = row.reviews.last.clone().expect("the answer is recorded");
    assert!(last.keep);
    assert_eq!(
        last.by,
        Decider::Sponsor(a.sponsors[0].clone()),
        "who answered, by identity"
    );
    assert!(row.reviews.open.is_none());
    let next = row.reviews.due_at.expect("the next review is scheduled");
    assert!(
        next >= a.opens() + Duration::days(90) - Duration::minutes(1),
        "another 90 days from the answer: {next}"
    );

    // The other sponsor's link now shows who answered, and changes nothing.
    let (status, page) = a.answer(&a.link(1).await, "end").await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("kept the access"), "{page}");
    assert!(guest_row(&a.platform, &a.user_id)
        .await
        .0
        .reviews
        .ended_at()
        .is_none());

    // The deadline passes: the answer stands, no default, no warning.
    let body = tick(&a.handler, a.deadline() + Duration::hours(1)).await;
    assert!(logs(&body).contains("kept by default 0"), "{}", logs(&body));
    let row = guest_row(&a.platform, &a.user_id).await.0;
    assert_eq!(row.state, GuestState::Active);
    assert_eq!(audit_of(&a.platform, "review.kept").await.len(), 1);
    assert!(audit_of(&a.platform, "review.kept_by_default")
        .await
        .is_empty());
    assert!(
        a.platform.mails_to(&a.email).len() == 2,
        "the guest heard nothing"
    );

    // The admin's view: the next review and the last answer.
    let out = a.platform.cli(&["guests", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(&a.user_id))
        .expect("the guest is listed");
    assert!(line.contains(&rfc3339(next)[..10]), "{line}");
    assert!(line.contains("kept"), "{line}");
    let out = a.platform.cli(&["guests", "list", "--json"]);
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(listed[0]["last_review"]
        .as_str()
        .unwrap()
        .starts_with("kept"));
    assert_eq!(listed[0]["next_review"].as_str().unwrap(), rfc3339(next));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ended_review_warns_the_guest_and_its_sponsors_then_disables_it() {
    let a = Admitted::new("keep").await;
    a.open_review().await;
    let (status, page) = a.answer(&a.link(1).await, "end").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Access ended"), "{page}");
    assert_eq!(audit_of(&a.platform, "review.ended").await.len(), 1);
    assert!(
        a.platform.sim.user(&a.user_id).unwrap().account_enabled,
        "the answer itself removes no one"
    );

    // The cleanup's next pass warns the guest, and its sponsors hear it too.
    let warn_at = a.opens() + Duration::hours(2);
    let body = tick(&a.handler, warn_at).await;
    assert!(logs(&body).contains("warned 1"), "{}", logs(&body));
    let warning = a
        .platform
        .wait_for_mail(&a.email, |m| m.subject.contains("will be removed"))
        .await;
    assert!(
        warning
            .text
            .contains("has been reviewed, and it does not continue"),
        "{}",
        warning.text
    );
    for s in &a.sponsors {
        let notice = a
            .platform
            .wait_for_mail(s, |m| m.subject.contains("about to lose access"))
            .await;
        assert!(notice.text.contains(&a.email), "{}", notice.text);
        assert!(
            notice.text.contains("Its review ended the access"),
            "{}",
            notice.text
        );
    }
    let row = guest_row(&a.platform, &a.user_id).await.0;
    assert_eq!(row.state, GuestState::Warned);
    assert_eq!(row.removal_reason.as_deref(), Some("review"));

    // Once the warning has reached the guest: disabled, without the usual warning days.
    let body = tick(&a.handler, warn_at + Duration::hours(2)).await;
    assert!(logs(&body).contains("disabled 1"), "{}", logs(&body));
    assert!(!a.platform.sim.user(&a.user_id).unwrap().account_enabled);
    assert_eq!(
        guest_row(&a.platform, &a.user_id).await.0.state,
        GuestState::Disabled
    );
    let disabled = audit_of(&a.platform, "guest.disabled").await;
    assert_eq!(disabled.len(), 1);
    assert!(
        disabled[0].detail.contains("review"),
        "{}",
        disabled[0].detail
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_review_is_reminded_then_its_default_keeps_the_guest() {
    let a = Admitted::new("keep").await;
    a.open_review().await;
    let first = a.link(0).await;

    let body = tick(
        &a.handler,
        a.opens() + Duration::days(7) + Duration::hours(1),
    )
    .await;
    assert!(logs(&body).contains("reminded 1"), "{}", logs(&body));
    let reminder = a
        .platform
        .wait_for_mail(&a.sponsors[0], |m| m.subject.starts_with("Reminder"))
        .await;
    assert!(
        reminder.text.contains("still waiting for an answer"),
        "{}",
        reminder.text
    );
    assert!(
        reminder.text.contains("goes on for another 90 days"),
        "{}",
        reminder.text
    );
    let body = tick(
        &a.handler,
        a.opens() + Duration::days(8) + Duration::hours(1),
    )
    .await;
    assert!(
        logs(&body).contains("reminded 0"),
        "reminded once: {}",
        logs(&body)
    );

    let body = tick(&a.handler, a.deadline() + Duration::hours(1)).await;
    assert!(logs(&body).contains("kept by default 1"), "{}", logs(&body));
    for s in &a.sponsors {
        let told = a
            .platform
            .wait_for_mail(s, |m| m.subject.contains("was not answered"))
            .await;
        assert!(
            told.text.contains("the access goes on for another 90 days"),
            "{}",
            told.text
        );
    }
    let row = guest_row(&a.platform, &a.user_id).await.0;
    let last = row.reviews.last.unwrap();
    assert!(last.keep);
    assert_eq!(last.by, Decider::Default);
    assert_eq!(
        last.at,
        a.deadline(),
        "the default's answer is at the deadline"
    );
    assert_eq!(row.reviews.due_at, Some(a.deadline() + Duration::days(90)));
    assert_eq!(
        audit_of(&a.platform, "review.kept_by_default").await.len(),
        1
    );

    // The link of the answered review now shows what happened, and decides nothing.
    let (status, page) = a.answer(&first, "end").await;
    assert_eq!(status, 409, "{page}");
    assert!(
        page.contains("Nobody answered in time, so the access was kept"),
        "{page}"
    );
    let body = tick(&a.handler, a.deadline() + Duration::hours(3)).await;
    assert!(logs(&body).contains("warned 0"), "{}", logs(&body));
    assert_eq!(
        guest_row(&a.platform, &a.user_id).await.0.state,
        GuestState::Active
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_review_whose_default_is_end_ends_the_access() {
    let a = Admitted::new("end").await;
    a.open_review().await;
    let body = tick(&a.handler, a.deadline() + Duration::hours(1)).await;
    assert!(
        logs(&body).contains("ended by default 1"),
        "{}",
        logs(&body)
    );
    let told = a
        .platform
        .wait_for_mail(&a.sponsors[0], |m| m.subject.contains("was not answered"))
        .await;
    assert!(told.text.contains("the access ends"), "{}", told.text);
    let row = guest_row(&a.platform, &a.user_id).await.0;
    assert_eq!(row.reviews.ended_at(), Some(a.deadline()));
    assert_eq!(
        audit_of(&a.platform, "review.ended_by_default").await.len(),
        1
    );

    let body = tick(&a.handler, a.deadline() + Duration::hours(3)).await;
    assert!(logs(&body).contains("warned 1"), "{}", logs(&body));
    a.platform
        .wait_for_mail(&a.email, |m| m.subject.contains("will be removed"))
        .await;
    tick(&a.handler, a.deadline() + Duration::hours(5)).await;
    assert!(!a.platform.sim.user(&a.user_id).unwrap().account_enabled);
    // Nothing more is asked about a guest whose access ended.
    tick(&a.handler, a.deadline() + Duration::days(80)).await;
    assert_eq!(audit_of(&a.platform, "review.opened").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sponsors_answering_at_once_make_one_decision() {
    let a = Admitted::new("end").await;
    a.open_review().await;
    let (keep, end) = (a.link(0).await, a.link(1).await);
    let ((s1, p1), (s2, p2)) = tokio::join!(a.answer(&keep, "keep"), a.answer(&end, "end"));
    let mut statuses = [s1, s2];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{p1}\n{p2}");
    let row = guest_row(&a.platform, &a.user_id).await.0;
    let last = row.reviews.last.unwrap();
    let (winner, loser_page) = if s1 == 200 { (0, &p2) } else { (1, &p1) };
    assert_eq!(
        last.keep,
        winner == 0,
        "the recorded answer is the winner's"
    );
    assert_eq!(last.by, Decider::Sponsor(a.sponsors[winner].clone()));
    assert!(
        loser_page.contains(&a.sponsors[winner]),
        "the loser sees who answered: {loser_page}"
    );
    let answers = audit_of(&a.platform, "review.kept").await.len()
        + audit_of(&a.platform, "review.ended").await.len();
    assert_eq!(answers, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn review_links_are_personal_bound_to_their_purpose_and_posted_from_the_page() {
    let a = Admitted::new("end").await;
    a.open_review().await;
    let link = a.link(0).await;
    let (_, etag) = guest_row(&a.platform, &a.user_id).await;
    let keys = signing_keys();
    let claims = |subject: &str, purpose, stage| TokenClaims {
        purpose,
        request_id: a.user_id.clone(),
        subject: subject.to_string(),
        stage,
        expires_at: (a.deadline()).unix_timestamp(),
        nonce: new_nonce(),
    };
    let stranger = format!("{}@contoso.example", unique("stranger"));
    personal(&stranger);
    for (name, token) in [
        (
            "not a sponsor",
            keys.sign(&claims(&stranger, TokenPurpose::Review, 1)),
        ),
        (
            "the guest itself",
            keys.sign(&claims(&a.email, TokenPurpose::Review, 1)),
        ),
        (
            "a decision token",
            keys.sign(&claims(&a.sponsors[0], TokenPurpose::Decide, 1)),
        ),
        ("altered", format!("{}x", token_of(&link))),
    ] {
        personal(&token);
        let resp = a
            .handler
            .forward(
                reqwest::Method::GET,
                &format!("/api/approve/review?token={token}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{name}");
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("token", token.as_str()), ("decision", "end")])
            .finish();
        let resp = a
            .handler
            .forward(reqwest::Method::POST, "/api/approve/review")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{name}");
    }
    // A link of another round (an earlier review's) shows no form.
    let old = keys.sign(&claims(&a.sponsors[0], TokenPurpose::Review, 0));
    personal(&old);
    let (status, page) = a
        .answer(&format!("https://x.example/?token={old}"), "end")
        .await;
    assert_ne!(status, 200, "{page}");
    // A POST from another site's page is refused.
    let resp = a
        .handler
        .forward(reqwest::Method::POST, "/api/approve/review")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", "https://evil.example")
        .body(format!("token={}&decision=end", token_of(&link)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (row, etag_after) = guest_row(&a.platform, &a.user_id).await;
    assert_eq!(etag, etag_after, "nothing above changed the guest");
    assert!(row.reviews.last.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_reviews_by_hand_from_the_command_line() {
    let a = Admitted::new("end").await;
    let out = a
        .platform
        .cli(&["guests", "review", &a.user_id, "--end", "--as", "kim"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ended the access"), "{}", out.stdout);
    let row = guest_row(&a.platform, &a.user_id).await.0;
    assert_eq!(
        row.reviews.last.as_ref().unwrap().by,
        Decider::Operator("kim".into())
    );
    let ended = audit_of(&a.platform, "review.ended").await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].actor, "operator");

    // Kept again, for 30 days rather than the policy's 90: the guest is back in good standing.
    let out = a
        .platform
        .cli(&["guests", "review", &a.user_id, "--keep", "--days", "30"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("kept guest"), "{}", out.stdout);
    let row = guest_row(&a.platform, &a.user_id).await.0;
    assert!(row.reviews.ended_at().is_none());
    let due = row.reviews.due_at.unwrap();
    assert!(
        (due - OffsetDateTime::now_utc() - Duration::days(30)).abs() < Duration::minutes(5),
        "{due}"
    );
    let body = tick(&a.handler, OffsetDateTime::now_utc() + Duration::hours(1)).await;
    assert!(logs(&body).contains("warned 0"), "{}", logs(&body));

    let out = a
        .platform
        .cli(&["guests", "review", "no-such-guest", "--keep"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let out = a.platform.cli(&["guests", "review", &a.user_id]);
    assert_eq!(out.code, 2, "--keep or --end: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn sponsors_hear_before_a_guest_is_disabled_for_its_access_period() {
    let a = Admitted::with("end", &["--access-days", "30"]).await;
    // With access days, the review comes before the access ends (30 days, not 90).
    let row = guest_row(&a.platform, &a.user_id).await.0;
    assert_eq!(row.reviews.due_at, row.access_ends_at);
    // The access period ends: the cleanup warns the guest, and its sponsors hear it too.
    let end = row.access_ends_at.unwrap();
    let body = tick(&a.handler, end + Duration::hours(1)).await;
    assert!(logs(&body).contains("warned 1"), "{}", logs(&body));
    a.platform
        .wait_for_mail(&a.email, |m| m.subject.contains("will be removed"))
        .await;
    for s in &a.sponsors {
        let notice = a
            .platform
            .wait_for_mail(s, |m| m.subject.contains("about to lose access"))
            .await;
        assert!(
            notice
                .text
                .contains("The period the access was given for has ended"),
            "{}",
            notice.text
        );
        assert!(notice.text.contains("Ada Lovelace"), "{}", notice.text);
    }
    let warned = audit_of(&a.platform, "guest.warned").await;
    assert!(
        warned[0].detail.contains("2 sponsors told"),
        "{}",
        warned[0].detail
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_signed_in_approvers_a_sponsor_must_be_signed_in_as_the_sponsor_the_link_names() {
    let a = Admitted::with_settings(
        "end",
        &[],
        &[
            ("PORTAL_APPROVERS_MUST_SIGN_IN", "true"),
            ("WEBSITE_AUTH_ENABLED", "True"),
        ],
    )
    .await;
    a.open_review().await;
    let link = a.link(0).await;
    let sponsor = a.platform.sim.user_by_mail(&a.sponsors[0]).unwrap().id;
    let post = |principal: Option<&str>| {
        let mut rb = a
            .handler
            .forward(reqwest::Method::POST, "/api/approve/review")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={}&decision=keep", token_of(&link)));
        if let Some(id) = principal {
            rb = rb.header("X-MS-CLIENT-PRINCIPAL-ID", id);
        }
        rb
    };
    let resp = post(None).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("post_login_redirect_uri=%2Fapi%2Fapprove%2Freview%3Ftoken%3D"),
        "the sign-in comes back to the review page: {page}"
    );
    let someone = a
        .platform
        .sim
        .add_member("mallory@contoso.example", "Mallory");
    assert_eq!(post(Some(&someone)).send().await.unwrap().status(), 403);
    assert!(guest_row(&a.platform, &a.user_id)
        .await
        .0
        .reviews
        .last
        .is_none());
    assert_eq!(post(Some(&sponsor)).send().await.unwrap().status(), 200);
    assert!(
        guest_row(&a.platform, &a.user_id)
            .await
            .0
            .reviews
            .last
            .unwrap()
            .keep
    );
}
