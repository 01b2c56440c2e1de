//! `handler policy ...` works on the real tables (Azurite), and import/export round-trips a
//! human-editable file.

mod common;

use common::Platform;

#[tokio::test(flavor = "multi_thread")]
async fn policies_round_trip_through_the_command_line() {
    let platform = Platform::start().await;
    let empty = platform.cli(&["policy", "list"]);
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert!(empty.stdout.contains("no policies"));

    let add = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "Partner.Example",
        "--action",
        "auto",
        "--group",
        "0b7f3c2e-1111-4a5b-9c8d-000000000001",
        "--access-days",
        "90",
        "--note",
        "pilot",
    ]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    assert!(
        add.stdout.contains("added policy partner.example"),
        "{}",
        add.stdout
    );

    let approve = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "bücher.example",
        "--include-subdomains",
        "--action",
        "approve",
        "--approver",
        "boss@contoso.example",
        "--reminder-after-days",
        "3",
    ]);
    assert_eq!(approve.code, 0, "{}", approve.stderr);

    let again = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "partner.example",
        "--action",
        "deny",
    ]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);

    let invalid = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "a@b",
        "--action",
        "approve",
        "--redirect-url",
        "http://evil.example",
    ]);
    assert_eq!(invalid.code, 2);
    assert!(invalid.stderr.contains("domain:"), "{}", invalid.stderr);
    assert!(invalid.stderr.contains("approvers:"), "{}", invalid.stderr);
    assert!(
        invalid.stderr.contains("redirect_url:"),
        "{}",
        invalid.stderr
    );

    let list = platform.cli(&["policy", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let domains: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains.len(), 2);
    assert!(domains.contains(&"partner.example"));
    assert!(
        domains.contains(&"xn--bcher-kva.example"),
        "IDN stored as punycode: {domains:?}"
    );

    let show = platform.cli(&["policy", "show", "partner.example"]);
    assert!(show.stdout.contains("access_days = 90"), "{}", show.stdout);

    // Export, edit, import: the file is the source of truth.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    let export = platform.cli(&["policy", "export", file.to_str().unwrap()]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("[[policy]]"));
    let edited = text.replace("access_days = 90", "access_days = 30")
        + "\n[[policy]]\ndomain = \"newpartner.example\"\naction = \"deny\"\n";
    std::fs::write(&file, &edited).unwrap();
    let dry = platform.cli(&["policy", "import", file.to_str().unwrap(), "--dry-run"]);
    assert!(
        dry.stdout
            .contains("dry run: 1 added, 1 updated, 1 unchanged"),
        "{}",
        dry.stdout
    );
    assert!(
        platform.cli(&["policy", "show", "newpartner.example"]).code != 0,
        "dry run wrote nothing"
    );
    let import = platform.cli(&["policy", "import", file.to_str().unwrap()]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(platform
        .cli(&["policy", "show", "partner.example"])
        .stdout
        .contains("access_days = 30"));
    let round = platform.cli(&["policy", "export"]);
    assert_eq!(
        b2b_signup::cli::policy::parse_file(&round.stdout)
            .unwrap()
            .len(),
        3
    );

    // A file with any invalid entry imports nothing and names every problem.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[policy]]\ndomain = \"ok.example\"\naction = \"auto\"\n\n[[policy]]\ndomain = \"evil..example\"\naction = \"maybe\"\n",
    )
    .unwrap();
    let out = platform.cli(&["policy", "import", bad.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("policy #2"), "{}", out.stderr);
    assert!(out.stderr.contains("action:"), "{}", out.stderr);
    assert!(platform.cli(&["policy", "show", "ok.example"]).code != 0);

    // --prune removes what the file no longer lists.
    std::fs::write(
        &file,
        "[[policy]]\ndomain = \"partner.example\"\naction = \"auto\"\n",
    )
    .unwrap();
    let pruned = platform.cli(&["policy", "import", file.to_str().unwrap(), "--prune"]);
    assert!(pruned.stdout.contains("2 removed"), "{}", pruned.stdout);
    let remove = platform.cli(&["policy", "remove", "partner.example"]);
    assert_eq!(remove.code, 0);
    assert!(platform
        .cli(&["policy", "list"])
        .stdout
        .contains("no policies"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_edited_invalid_policy_is_reported_with_its_table_and_key() {
    let platform = Platform::start().await;
    assert_eq!(
        platform
            .cli(&[
                "policy",
                "add",
                "--domain",
                "partner.example",
                "--action",
                "auto"
            ])
            .code,
        0
    );
    let store = platform.store();
    let mut row = store
        .get(
            b2b_signup::adapters::tables::TableName::Policies,
            "policy",
            "partner.example",
        )
        .await
        .unwrap()
        .unwrap();
    row.set("Action", "sometimes");
    store
        .upsert(b2b_signup::adapters::tables::TableName::Policies, &row)
        .await
        .unwrap();
    let out = platform.cli(&["policy", "list"]);
    assert_eq!(out.code, 1);
    let table = format!("{}Policies", platform.table_prefix);
    assert!(
        out.stderr
            .contains(&format!("invalid entity in table {table}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("RowKey \"partner.example\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("action"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_policy_for_a_public_mail_provider_needs_the_explicit_flag() {
    let platform = Platform::start().await;
    let refused = platform.cli(&["policy", "add", "--domain", "gmail.com", "--action", "auto"]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("gmail.com is a public mail provider")
            && refused.stderr.contains("allow_consumer_domain"),
        "{}",
        refused.stderr
    );
    let listed = platform.cli(&["policy", "list"]);
    assert!(listed.stdout.contains("no policies"), "nothing was stored");

    // A file is refused whole, every problem named, and nothing is imported.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(
        &file,
        "[[policy]]\ndomain = \"partner.example\"\naction = \"auto\"\n\n[[policy]]\ndomain = \"web.de\"\naction = \"auto\"\n\n[[policy]]\ndomain = \"contoso.example\"\naction = \"auto\"\nallow_consumer_domain = true\n",
    )
    .unwrap();
    let import = platform.cli(&["policy", "import", file.to_str().unwrap()]);
    assert_eq!(import.code, 2, "{}", import.stdout);
    assert!(
        import.stderr.contains("policy #2 (web.de)")
            && import.stderr.contains("policy #3 (contoso.example)")
            && !import.stderr.contains("policy #1"),
        "{}",
        import.stderr
    );
    assert!(platform
        .cli(&["policy", "list"])
        .stdout
        .contains("no policies"));

    // The admin who means it says so; it is kept with the policy and exported.
    let allowed = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "gmail.com",
        "--action",
        "auto",
        "--allow-consumer-domain",
    ]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    let approve = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "outlook.com",
        "--action",
        "approve",
        "--approver",
        "boss@contoso.example",
    ]);
    assert_eq!(approve.code, 0, "a person decides: {}", approve.stderr);
    let exported = platform.cli(&["policy", "export"]);
    assert!(
        exported.stdout.contains("allow_consumer_domain = true"),
        "{}",
        exported.stdout
    );
    std::fs::write(&file, &exported.stdout).unwrap();
    let again = platform.cli(&["policy", "import", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("2 unchanged"), "{}", again.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn sponsors_and_reviews_round_trip_through_the_command_line_and_the_file() {
    let platform = Platform::start().await;
    let add = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "partner.example",
        "--action",
        "auto",
        "--sponsor",
        "owner@contoso.example",
        "--review-days",
        "90",
        "--on-no-answer",
        "keep",
    ]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    let listed = platform.cli(&["policy", "list"]);
    assert!(listed.stdout.contains("90d/keep"), "{}", listed.stdout);
    let shown = platform.cli(&["policy", "show", "partner.example"]);
    for line in [
        "sponsors = [\"owner@contoso.example\"]",
        "review_days = 90",
        "on_no_answer = \"keep\"",
    ] {
        assert!(shown.stdout.contains(line), "{line}: {}", shown.stdout);
    }
    let no_one = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "other.example",
        "--action",
        "auto",
        "--review-days",
        "90",
    ]);
    assert_eq!(no_one.code, 2);
    assert!(
        no_one
            .stderr
            .contains("review_days: Reviews need someone to answer them"),
        "{}",
        no_one.stderr
    );
}
