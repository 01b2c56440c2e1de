//! The operator's views: requests, one request with its audit trail, the audit trail since a
//! time, and the guests this portal created.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_sees_requests_their_history_and_guests() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let email = platform.address("seen");
    sign_up_and_verify(&platform, &handler, &email, "Seen").await;
    let request = requests_for(&platform, &email).await.remove(0);

    let list = platform.cli(&[
        "requests",
        "list",
        "--domain",
        &platform.partner_domain.to_uppercase(),
    ]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains(&request.id) && list.stdout.contains("invited"),
        "{}",
        list.stdout
    );
    let none = platform.cli(&["requests", "list", "--status", "denied"]);
    assert!(none.stdout.contains("no requests"), "{}", none.stdout);
    let bad = platform.cli(&["requests", "list", "--status", "sort-of"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unknown status") && bad.stderr.contains("pending_approval"),
        "{}",
        bad.stderr
    );

    let json = platform.cli(&["requests", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v[0]["email"], email.as_str());

    let show = platform.cli(&["requests", "show", &request.id]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    for action in [
        "request.submitted",
        "request.verified",
        "guest.invited",
        "request.completed",
    ] {
        assert!(
            show.stdout.contains(action),
            "{action} in:\n{}",
            show.stdout
        );
    }
    assert_eq!(platform.cli(&["requests", "show", "nope"]).code, 1);

    let audit = platform.cli(&["audit", "--since", "1h"]);
    assert!(
        audit.stdout.contains("guest.invited") && audit.stdout.contains(&request.id),
        "{}",
        audit.stdout
    );
    let future = platform.cli(&["audit", "--since", "2099-01-01"]);
    assert!(
        future.stdout.contains("no audit entries"),
        "{}",
        future.stdout
    );
    assert_eq!(platform.cli(&["audit", "--since", "last week"]).code, 2);

    let guests = platform.cli(&["guests", "list", "--json"]);
    let g: serde_json::Value = serde_json::from_str(&guests.stdout).unwrap();
    assert_eq!(g.as_array().unwrap().len(), 1);
    assert_eq!(
        g[0]["user_id"],
        request.invited_user_id.clone().unwrap().as_str()
    );
    assert_eq!(g[0]["state"], "active");
}
