//! `handler invite FILE.csv`: each row through the same invitation path as a sign-up, a
//! per-row report, and a rerun that resumes instead of inviting anyone twice.

mod common;

use b2b_signup::core::request::RequestStatus;
use common::*;
use graph_simulator::{Fault, FaultRoute};

#[tokio::test(flavor = "multi_thread")]
async fn bulk_invitations_report_per_row_and_resume() {
    let platform = Platform::start().await;
    let group = platform.sim.add_group("Partners");
    platform.add_partner_policy(&["--action", "auto", "--group", &group]);
    let denied = format!("denied-{}", platform.partner_domain);
    platform.cli(&["policy", "add", "--domain", &denied, "--action", "deny"]);
    let (a, b, c) = (
        platform.address("bulk-a"),
        platform.address("bulk-b"),
        platform.address("bulk-c"),
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("partners.csv");
    std::fs::write(
        &csv,
        format!(
            "email,first_name,last_name,organisation,language\n{a},Ann,Andersson,Partner AB,sv\n{b},Bo,Berg,Partner AB,en\nnot-an-address,X,Y,Z,en\nsomeone@{denied},D,E,F,en\n{c},Cai,Chen,Partner AB,en\nwho@unknown.example,U,V,W,en\n"
        ),
    )
    .unwrap();
    let first = platform.cli(&["invite", csv.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let report = &first.stdout;
    let row = |n: usize| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("{n:<5} ")))
            .unwrap_or_else(|| panic!("row {n} in report:\n{report}"))
            .to_string()
    };
    assert!(row(1).ends_with("invited"), "{report}");
    assert!(row(2).ends_with("invited"), "{report}");
    assert!(row(3).contains("skipped"), "{report}");
    assert!(row(4).contains("denied by policy"), "{report}");
    assert!(row(5).ends_with("invited"), "{report}");
    assert!(row(6).contains("no policy admits"), "{report}");
    assert!(report.contains("6 rows:"), "{report}");
    assert_eq!(platform.sim.invitations().len(), 3);
    assert_eq!(
        platform.sim.group_members(&group).len(),
        3,
        "same grants as a sign-up"
    );
    for address in [&a, &b, &c] {
        let mails = platform.wait_for_mails(address, 1).await;
        assert_eq!(mails.len(), 1, "our own invitation mail");
        assert!(mails[0].text.contains("/redeem"));
    }
    // The row's language is the mail's language.
    assert_ne!(
        platform.mails_to(&a)[0].subject,
        platform.mails_to(&b)[0].subject
    );
    let requests =
        b2b_signup::store::requests::list(&platform.store(), Some(RequestStatus::Invited), None)
            .await
            .unwrap();
    assert_eq!(requests.len(), 3);
    assert!(requests
        .iter()
        .all(|r| r.decision.as_ref().unwrap().by == "operator"));

    // Rerun (e.g. after an interruption): finished rows are not touched again.
    let second = platform.cli(&["invite", csv.to_str().unwrap()]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stderr.contains("resuming"), "{}", second.stderr);
    assert_eq!(platform.sim.invitations().len(), 3, "nobody invited twice");
    assert_eq!(platform.mails_to(&a).len(), 1, "nobody mailed twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_row_is_finished_by_the_rerun() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let a = platform.address("resume-a");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("one.csv");
    std::fs::write(
        &csv,
        format!("email,first_name,last_name,organisation\n{a},Ann,A,P\n"),
    )
    .unwrap();
    // Graph throttles with a long Retry-After: the row is left retryable, not lost.
    platform.sim.inject_fault(
        Fault::new(FaultRoute::Invitations, 429)
            .retry_after(600)
            .times(1),
    );
    let first = platform.cli(&["invite", csv.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("will retry"), "{}", first.stdout);
    assert!(platform.sim.invitations().is_empty());
    let second = platform.cli(&["invite", csv.to_str().unwrap()]);
    assert!(
        second
            .stdout
            .lines()
            .any(|l| l.starts_with("1 ") && l.ends_with("invited")),
        "{}",
        second.stdout
    );
    assert_eq!(platform.sim.invitations().len(), 1);
    let requests = requests_for(&platform, &a).await;
    assert_eq!(requests.len(), 1, "the rerun resumed the same request");
}
