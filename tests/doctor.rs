//! `handler doctor`, run as an admin runs it (`Platform::cli`), against the real stand-ins: each
//! check passes when what the portal depends on is in place, and fails (or warns) with the
//! finding and its fix when it is not. The Graph simulator plays the tenant: its application
//! permissions become the token's `roles`, its authorization policy says who may invite, and
//! its groups, applications and users are what the policies name.

mod common;

use common::{unique, CliOutput, FaultySmtp, Platform};
use graph_simulator::{SimulatorConfig, DEFAULT_APP_PERMISSIONS, IDENTITY_OBJECT_ID};

/// Random secrets (from /dev/urandom), as a deployment has.
const STRONG_KEYS: &str =
    "k2:XbjbiRGy5HIweC3MLJiQS7+MKC3HFKf19rp99JdOI44=,k1:lq1PqQBBPpYJoGAN9vRufKsUP7/1kGOUfelYKCzHJ2w=";

/// The printed checklist: one `(status, check, rest of the line)` per finding.
struct Checklist {
    out: CliOutput,
    lines: Vec<(String, String, String)>,
}

impl Checklist {
    fn of(out: CliOutput) -> Checklist {
        let lines = out
            .stdout
            .lines()
            .filter_map(|l| {
                let mut words = l.splitn(3, char::is_whitespace);
                let status = words.next()?;
                if !matches!(status, "ok" | "warn" | "fail") {
                    return None;
                }
                let rest = l[status.len()..].trim_start();
                let (check, message) = rest.split_once(char::is_whitespace)?;
                Some((status.into(), check.into(), message.trim_start().into()))
            })
            .collect();
        Checklist { out, lines }
    }

    fn dump(&self) -> String {
        format!(
            "exit {}\n{}\nstderr: {}",
            self.out.code, self.out.stdout, self.out.stderr
        )
    }

    /// The one line of `check` with `status` whose text holds every needle.
    #[track_caller]
    fn has(&self, status: &str, check: &str, needles: &[&str]) -> &str {
        self.lines
            .iter()
            .find(|(s, c, m)| s == status && c == check && needles.iter().all(|n| m.contains(n)))
            .map(|(_, _, m)| m.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "no `{status} {check}` line with {needles:?}:\n{}",
                    self.dump()
                )
            })
    }

    /// Every status `check` reported.
    fn statuses(&self, check: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(_, c, _)| c == check)
            .map(|(s, _, _)| s.as_str())
            .collect()
    }

    #[track_caller]
    fn all_ok(&self, check: &str) {
        let statuses = self.statuses(check);
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| *s == "ok"),
            "{check}: {statuses:?}\n{}",
            self.dump()
        );
    }

    #[track_caller]
    fn blocks(&self) {
        assert_eq!(self.out.code, 1, "a failure blocks:\n{}", self.dump());
        assert!(
            self.out.stderr.contains("problem(s) block the portal"),
            "{}",
            self.dump()
        );
    }
}

fn doctor(platform: &Platform, args: &[&str]) -> Checklist {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let out = platform.cli(&all);
    let list = Checklist::of(out);
    assert!(
        list.out.stdout.contains("doctor: "),
        "no summary line:\n{}",
        list.dump()
    );
    list
}

/// What a fully set-up portal has: strong keys, an https address, the permissions its
/// features need (and Policy.Read.All, so the guest settings are readable), a policy whose
/// group, app role and approver exist, an exclusion group, the inactivity rule with P1, and
/// a relay that takes the sender.
struct Ready {
    platform: Platform,
    approver: String,
    group: String,
    sender: String,
}

async fn ready() -> Ready {
    let mut platform = Platform::start().await;
    platform.set("PORTAL_SIGNING_KEYS", STRONG_KEYS);
    platform.set("PORTAL_PUBLIC_URL", "https://signup.contoso.example");
    let mut granted: Vec<&str> = DEFAULT_APP_PERMISSIONS.to_vec();
    granted.push("Policy.Read.All");
    platform.sim.set_app_permissions(&granted);
    let approver = format!("{}@contoso.example", unique("approver"));
    platform.sim.add_member(&approver, "Ada Approver");
    let sponsor = format!("{}@contoso.example", unique("sponsor"));
    platform.sim.add_member(&sponsor, "Sam Sponsor");
    let group = platform.sim.add_group("Partners");
    let role = uuid::Uuid::new_v4();
    let app = platform
        .sim
        .add_service_principal("Partner portal app", &[role]);
    let out = platform.add_partner_policy(&[
        "--action",
        "approve",
        "--approver",
        &approver,
        "--group",
        &group,
        "--app-role",
        &format!("{app}:{role}"),
        "--sponsor",
        &sponsor,
        "--review-days",
        "180",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let exclusion = platform.sim.add_group("Never clean up");
    platform.set("CLEANUP_EXCLUSION_GROUP_ID", &exclusion);
    platform.set("CLEANUP_INACTIVE_DAYS", "90");
    let sender = format!("{}@contoso.example", unique("doctor-sender"));
    platform.set("MAIL_FROM", &format!("Contoso Partner Access <{sender}>"));
    Ready {
        platform,
        approver,
        group,
        sender,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_portal_with_everything_in_place_passes_every_check_and_sends_no_mail() {
    let ready = ready().await;
    let list = doctor(&ready.platform, &[]);
    assert_eq!(list.out.code, 0, "{}", list.dump());
    for check in [
        "settings",
        "signing-keys",
        "public-url",
        "table-storage",
        "graph-token",
        "graph-permissions",
        "sign-in-activity",
        "guest-invitations",
        "guest-access",
        "policy-groups",
        "policy-app-roles",
        "approvers",
        "sponsors",
        "exclusion-group",
        "smtp",
    ] {
        list.all_ok(check);
    }
    list.has(
        "ok",
        "graph-permissions",
        &["GroupMember.ReadWrite.All", "AuditLog.Read.All"],
    );
    list.has("ok", "guest-invitations", &["allowInvitesFrom = everyone"]);
    list.has("ok", "approvers", &["1 approver(s)"]);
    list.has("ok", "sponsors", &["1 sponsor(s)"]);
    list.has("ok", "smtp", &[&ready.sender, "without signing in"]);
    assert!(
        list.out.stdout.contains("0 warn, 0 fail"),
        "{}",
        list.dump()
    );
    // MAIL FROM, RSET, QUIT: nothing was delivered from the sender the doctor offered.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !ready
            .platform
            .mails_to_any()
            .iter()
            .any(|m| m.from.contains(&ready.sender)),
        "the doctor sent mail"
    );
    // The probe row is gone again.
    let rows = ready
        .platform
        .store()
        .partition(b2b_signup::adapters::tables::TableName::Jobs, "doctor")
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    let _ = (&ready.approver, &ready.group);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_that_do_not_parse_are_named_and_the_other_checks_still_run() {
    let mut platform = Platform::start().await;
    platform.set("SMTP_URL", "mail.contoso.example");
    platform.set(
        "SMTP_PASSWORD",
        "@Microsoft.KeyVault(SecretUri=https://kv-signup-x1.vault.azure.net/secrets/smtp-password/)",
    );
    platform.set("CLEANUP_DRY_RUN", "true");
    let list = doctor(&platform, &[]);
    list.blocks();
    list.has("fail", "settings", &["SMTP_URL"]);
    // The mail section stops at its first bad value; the reference is named on its own once
    // SMTP_URL is right.
    platform.set("SMTP_URL", "smtp://127.0.0.1:9");
    let list = doctor(&platform, &[]);
    list.has(
        "fail",
        "settings",
        &[
            "SMTP_PASSWORD is an unresolved Key Vault reference",
            "secret smtp-password in vault kv-signup-x1",
        ],
    );
    list.has("warn", "settings", &["CLEANUP_DRY_RUN is on"]);
    list.has("warn", "smtp", &["not checked"]);
    // Storage and Graph were checked all the same.
    list.has(
        "ok",
        "table-storage",
        &["rows can be written, read and deleted"],
    );
    list.all_ok("graph-token");
    // Inside Azure the fix is the role on the secret.
    platform.set("WEBSITE_SITE_NAME", "signup-func-abc");
    let list = doctor(&platform, &[]);
    let line = list.has("fail", "settings", &["SMTP_PASSWORD"]);
    assert!(line.contains("Key Vault Secrets User"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn weak_signing_keys_and_a_local_address_in_azure_fail() {
    let ready = ready().await;
    // The test suite's own keys are readable text: fine locally, not for a real address.
    let platform = ready
        .platform
        .with(&[("PORTAL_SIGNING_KEYS", common::TEST_SIGNING_KEYS)]);
    let list = doctor(&platform, &[]);
    list.blocks();
    list.has("fail", "signing-keys", &["'k2'", "printable text", "forge"]);
    let local = platform.with(&[("PORTAL_PUBLIC_URL", "http://localhost:7071")]);
    let list = doctor(&local, &[]);
    list.has("warn", "signing-keys", &["local runs only"]);
    list.has(
        "ok",
        "public-url",
        &["http://localhost:7071", "local runs only"],
    );
    assert!(list.statuses("signing-keys").iter().all(|s| *s == "warn"));
    // The same address inside Azure: links in mail would point nowhere.
    let in_azure = local.with(&[
        ("WEBSITE_SITE_NAME", "signup-func-abc"),
        ("PORTAL_SIGNING_KEYS", STRONG_KEYS),
    ]);
    let list = doctor(&in_azure, &[]);
    list.blocks();
    list.has("fail", "public-url", &["inside Azure"]);
    list.all_ok("signing-keys");
}

#[tokio::test(flavor = "multi_thread")]
async fn table_storage_that_cannot_be_reached_or_refuses_the_key_fails() {
    let ready = ready().await;
    let dead = common::free_port();
    let unreachable = ready.platform.with(&[(
        "PORTAL_STORAGE",
        &format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{dead}/devstoreaccount1",
            b2b_signup::settings::DEV_ACCOUNT_KEY
        ),
    )]);
    let list = doctor(&unreachable, &[]);
    list.blocks();
    list.has("fail", "table-storage", &["cannot be reached"]);
    // What needs the policies says so instead of guessing.
    list.has("warn", "policy-groups", &["not checked"]);
    list.has("warn", "approvers", &["not checked"]);

    let wrong_key = ready.platform.env["PORTAL_STORAGE"].replace(
        b2b_signup::settings::DEV_ACCOUNT_KEY,
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==",
    );
    let refused = ready.platform.with(&[("PORTAL_STORAGE", &wrong_key)]);
    let list = doctor(&refused, &[]);
    list.blocks();
    list.has("fail", "table-storage", &["refused the account key"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_graph_token_fails_and_the_graph_checks_say_not_checked() {
    let ready = ready().await;
    let platform = ready
        .platform
        .with(&[("IDENTITY_HEADER", "not-the-platforms-header")]);
    let list = doctor(&platform, &[]);
    list.blocks();
    list.has("fail", "graph-token", &["no token for Microsoft Graph"]);
    for check in [
        "graph-permissions",
        "guest-invitations",
        "policy-groups",
        "approvers",
    ] {
        list.has("warn", check, &["not checked"]);
    }
    list.all_ok("table-storage");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_permissions_fail_with_the_grant_command_and_excess_power_is_called_out() {
    let ready = ready().await;
    ready
        .platform
        .sim
        .set_app_permissions(&["User.Invite.All", "Policy.Read.All"]);
    let list = doctor(&ready.platform, &[]);
    list.blocks();
    let grant = format!("infra/grant-graph-permissions.sh {IDENTITY_OBJECT_ID} --app-role-grants --inactivity-cleanup");
    for permission in [
        "User.ReadWrite.All",
        "GroupMember.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "Application.Read.All",
        "AuditLog.Read.All",
    ] {
        let line = list.has("fail", "graph-permissions", &[permission, "not granted"]);
        assert!(line.contains(&grant), "{line}");
        assert!(line.contains("24 hours"), "{line}");
    }
    // What the missing permissions break shows where it breaks.
    list.has("fail", "sign-in-activity", &["cannot be read"]);
    list.has("fail", "policy-groups", &["cannot be read"]);
    list.has("fail", "approvers", &["cannot be looked up"]);

    // AppRoleAssignment.ReadWrite.All while no policy assigns app roles: a warning.
    let plain = Platform::start().await;
    let plain = plain.with(&[("PORTAL_SIGNING_KEYS", STRONG_KEYS)]);
    let list = doctor(&plain, &[]);
    assert_eq!(list.out.code, 0, "{}", list.dump());
    list.has(
        "warn",
        "graph-permissions",
        &[
            "AppRoleAssignment.ReadWrite.All",
            "grant itself any permission",
        ],
    );
    list.has(
        "ok",
        "graph-permissions",
        &["User.Invite.All", "User.ReadWrite.All"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tenants_guest_settings_are_read_and_explained() {
    let ready = ready().await;
    let sim = &ready.platform.sim;
    sim.set_authorization_policy(serde_json::json!({"allowInvitesFrom": "none"}));
    let list = doctor(&ready.platform, &[]);
    list.blocks();
    list.has(
        "fail",
        "guest-invitations",
        &["allowInvitesFrom = none", "refused"],
    );

    sim.set_authorization_policy(serde_json::json!({
        "allowInvitesFrom": "adminsAndGuestInviters",
        "guestUserRoleId": "a0b1b346-4d3e-4e8b-98f8-753987be4970",
    }));
    let list = doctor(&ready.platform, &[]);
    assert_eq!(list.out.code, 0, "warnings do not block:\n{}", list.dump());
    let line = list.has("warn", "guest-invitations", &["adminsAndGuestInviters"]);
    assert!(line.contains("--guest-inviter"), "{line}");
    list.has(
        "warn",
        "guest-access",
        &["same directory access as members"],
    );

    sim.set_authorization_policy(serde_json::json!({
        "allowInvitesFrom": "adminsGuestInvitersAndAllMembers",
        "guestUserRoleId": "2af84b1e-32c8-42b7-82bc-daa82404023b",
    }));
    let list = doctor(&ready.platform, &[]);
    list.all_ok("guest-invitations");
    list.has("ok", "guest-access", &["restricted"]);

    // The portal's own identity without Policy.Read.All cannot read them: it says so, and who can.
    sim.set_app_permissions(DEFAULT_APP_PERMISSIONS);
    let list = doctor(&ready.platform, &[]);
    let line = list.has(
        "warn",
        "guest-invitations",
        &["cannot be read", "Policy.Read.All"],
    );
    assert!(line.contains("GRAPH_CREDENTIAL=azure_cli"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_app_roles_approvers_and_the_exclusion_group_the_settings_name_must_exist() {
    let ready = ready().await;
    let platform = &ready.platform;
    let sim = &platform.sim;
    let synced = sim.add_group_refusing_guests("Synced from AD");
    let gone_group = uuid::Uuid::new_v4().to_string();
    let app = sim.add_service_principal("Another app", &[uuid::Uuid::new_v4()]);
    let undefined_role = uuid::Uuid::new_v4();
    let gone_app = uuid::Uuid::new_v4();
    let stranger = format!("{}@elsewhere.example", unique("stranger"));
    let disabled = format!("{}@contoso.example", unique("disabled"));
    let disabled_id = sim.add_member(&disabled, "Dis Abled");
    assert!(sim.set_account_enabled(&disabled_id, false));
    let guest = format!("{}@partner.example", unique("guest"));
    sim.add_guest(graph_simulator::SeedGuest::new(&guest));
    // Sponsors answer from their mail wherever they are: one outside the tenant is a warning.
    let sponsor_elsewhere = format!("{}@vendor.example", unique("sponsor"));
    let out = platform.cli(&[
        "policy",
        "add",
        "--domain",
        "vendor.example",
        "--action",
        "approve",
        "--approver",
        &stranger,
        "--approver",
        &disabled,
        "--fallback-approver",
        &guest,
        "--escalate-after-days",
        "3",
        "--sponsor",
        &sponsor_elsewhere,
        "--group",
        &synced,
        "--group",
        &gone_group,
        "--app-role",
        &format!("{app}:{undefined_role}"),
        "--app-role",
        &gone_app.to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let platform = platform.with(&[(
        "CLEANUP_EXCLUSION_GROUP_ID",
        &uuid::Uuid::new_v4().to_string(),
    )]);
    let list = doctor(&platform, &[]);
    list.blocks();
    list.has(
        "fail",
        "policy-groups",
        &[&gone_group, "does not exist", "vendor.example"],
    );
    list.has("fail", "policy-groups", &["Synced from AD", "on-premises"]);
    list.has("ok", "policy-groups", &["1 group(s)"]);
    list.has(
        "fail",
        "policy-app-roles",
        &[&undefined_role.to_string(), "not defined by 'Another app'"],
    );
    list.has(
        "fail",
        "policy-app-roles",
        &[&gone_app.to_string(), "does not exist"],
    );
    list.has(
        "fail",
        "approvers",
        &[&stranger, "not a user of this tenant"],
    );
    list.has("fail", "approvers", &[&disabled, "disabled"]);
    list.has("fail", "approvers", &[&guest, "Guest", "not a member"]);
    list.has("ok", "approvers", &["1 approver(s)"]);
    list.has(
        "warn",
        "sponsors",
        &[&sponsor_elsewhere, "not a user of this tenant"],
    );
    list.has("ok", "sponsors", &["1 sponsor(s)"]);
    list.has("fail", "exclusion-group", &["names no group"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inactivity_rule_needs_entra_id_p1() {
    let mut platform = Platform::start_with(SimulatorConfig {
        p1_license: false,
        ..Default::default()
    })
    .await;
    platform.set("PORTAL_SIGNING_KEYS", STRONG_KEYS);
    platform.set("CLEANUP_INACTIVE_DAYS", "60");
    let list = doctor(&platform, &[]);
    list.blocks();
    list.has("fail", "sign-in-activity", &["no Entra ID P1"]);
    // Off, it is not read at all.
    let off = platform.with(&[("CLEANUP_INACTIVE_DAYS", "0")]);
    let list = doctor(&off, &[]);
    list.has("ok", "sign-in-activity", &["inactivity rule is off"]);
    assert_eq!(list.out.code, 0, "{}", list.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smtp_relay_is_checked_step_by_step_without_sending() {
    let ready = ready().await;
    let platform = &ready.platform;
    let check = |changes: &[(&str, &str)]| doctor(&platform.with(changes), &[]);

    let closed = format!("smtp://127.0.0.1:{}", common::free_port());
    let list = check(&[("SMTP_URL", &closed)]);
    list.blocks();
    list.has("fail", "smtp", &["cannot connect"]);

    // STARTTLS demanded of a server that does not offer it.
    let plain = format!("{}?tls=required", platform.env["SMTP_URL"]);
    let list = check(&[("SMTP_URL", &plain)]);
    list.blocks();
    list.has("fail", "smtp", &["STARTTLS", "does not offer"]);

    let refuses_sender = FaultySmtp::start("RejectSender");
    let list = check(&[("SMTP_URL", &refuses_sender.url())]);
    list.blocks();
    list.has("fail", "smtp", &["refused the sender", &ready.sender]);

    let auth = FaultySmtp::with_auth("portal", "right-password");
    let list = check(&[
        ("SMTP_URL", &auth.url()),
        ("SMTP_USERNAME", "portal"),
        ("SMTP_PASSWORD", "wrong-password"),
    ]);
    list.blocks();
    list.has("fail", "smtp", &["did not accept the credentials"]);
    let list = check(&[("SMTP_URL", &auth.url())]);
    list.blocks();
    list.has(
        "fail",
        "smtp",
        &["refused the sender", "SMTP_USERNAME and SMTP_PASSWORD"],
    );
    let list = check(&[
        ("SMTP_URL", &auth.url()),
        ("SMTP_USERNAME", "portal"),
        ("SMTP_PASSWORD", "right-password"),
    ]);
    assert_eq!(list.out.code, 0, "{}", list.dump());
    list.has("ok", "smtp", &["signed in as SMTP_USERNAME"]);

    // Credentials for a server that offers no authentication at all.
    let list = check(&[("SMTP_USERNAME", "portal"), ("SMTP_PASSWORD", "secret")]);
    list.blocks();
    list.has("fail", "smtp", &["offers no authentication"]);
}

/// An admin on their own machine: signed in with the Azure CLI, the app's settings from
/// `az functionapp config appsettings list`, the secrets from the azd environment, and the
/// Function App's identity named with --identity. A stand-in `az` on PATH answers
/// `az account get-access-token` with the simulator's token for a signed-in administrator.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_with_the_azure_cli_checks_the_deployed_apps_identity() {
    let ready = ready().await;
    let bin = tempfile::tempdir().unwrap();
    common::admin_az(bin.path(), &ready.platform.sim);
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    // The app's settings as the Azure CLI lists them: the signing keys are a Key Vault
    // reference there, and the azd environment (here: the process environment) has the value.
    let app_settings = tempfile::NamedTempFile::new().unwrap();
    let listed = serde_json::json!([
        {"name": "PORTAL_SIGNING_KEYS", "slotSetting": false, "value": "@Microsoft.KeyVault(SecretUri=https://kv-signup-q.vault.azure.net/secrets/portal-signing-keys/)"},
        {"name": "PORTAL_PUBLIC_URL", "slotSetting": false, "value": "https://signup-func-q.azurewebsites.net"},
        {"name": "GRAPH_SIGN_IN_ACTIVITY", "slotSetting": false, "value": "true"},
    ]);
    std::fs::write(app_settings.path(), listed.to_string()).unwrap();
    let file = app_settings.path().to_str().unwrap().to_string();
    let admin = ready.platform.with(&[
        ("PATH", &path),
        ("GRAPH_CREDENTIAL", "azure_cli"),
        ("PORTAL_PUBLIC_URL", "http://localhost:7071"),
    ]);
    // The app's identity lacks a permission its policies need.
    let mut held: Vec<&str> = DEFAULT_APP_PERMISSIONS
        .iter()
        .copied()
        .filter(|p| *p != "GroupMember.ReadWrite.All")
        .collect();
    ready.platform.sim.set_app_permissions(&held);
    let list = doctor(
        &admin,
        &["--app-settings", &file, "--identity", IDENTITY_OBJECT_ID],
    );
    list.blocks();
    list.has("ok", "graph-token", &["signed-in person"]);
    list.has(
        "ok",
        "public-url",
        &["https://signup-func-q.azurewebsites.net"],
    );
    list.all_ok("signing-keys");
    let line = list.has(
        "fail",
        "graph-permissions",
        &["GroupMember.ReadWrite.All", "not granted"],
    );
    assert!(
        line.contains(&format!("grant-graph-permissions.sh {IDENTITY_OBJECT_ID}")),
        "{line}"
    );
    assert!(!line.contains("24 hours"), "{line}");
    // The administrator may read the guest settings the app's identity may not.
    list.all_ok("guest-invitations");

    held.push("GroupMember.ReadWrite.All");
    ready.platform.sim.set_app_permissions(&held);
    let list = doctor(
        &admin,
        &["--app-settings", &file, "--identity", IDENTITY_OBJECT_ID],
    );
    assert_eq!(list.out.code, 0, "{}", list.dump());
    list.has(
        "ok",
        "graph-permissions",
        &[&format!("app role assignments of {IDENTITY_OBJECT_ID}")],
    );

    // Without --identity the doctor cannot tell the app's permissions from the admin's token.
    let list = doctor(&admin, &["--app-settings", &file]);
    list.has("warn", "graph-permissions", &["--identity"]);
    // A wrong identity is named as such.
    let nobody = uuid::Uuid::new_v4().to_string();
    let list = doctor(&admin, &["--app-settings", &file, "--identity", &nobody]);
    list.has(
        "fail",
        "graph-permissions",
        &[&nobody, "no service principal"],
    );
    // And without the secret here the reference stays unresolved, with the way to supply it.
    let no_secret = admin.with(&[("PORTAL_SIGNING_KEYS", "")]);
    let list = doctor(
        &no_secret,
        &["--app-settings", &file, "--identity", IDENTITY_OBJECT_ID],
    );
    let line = list.has(
        "fail",
        "settings",
        &["PORTAL_SIGNING_KEYS is an unresolved Key Vault reference"],
    );
    assert!(
        line.contains("azd env get-value PORTAL_SIGNING_KEYS"),
        "{line}"
    );
}

/// The azd postdeploy hook: with the app's settings from `az functionapp config appsettings
/// list`, the secrets and the app's identity from the azd environment (which azd hands hooks as
/// environment variables) and the admin's `az login`, it prints the doctor's checklist and
/// passes on its verdict.
#[tokio::test(flavor = "multi_thread")]
async fn the_azd_postdeploy_hook_prints_the_checklist_of_the_deployed_app() {
    let ready = ready().await;
    let bin = tempfile::tempdir().unwrap();
    common::admin_az(bin.path(), &ready.platform.sim);
    let app_settings = tempfile::NamedTempFile::new().unwrap();
    let listed = serde_json::json!([
        {"name": "PORTAL_SIGNING_KEYS", "slotSetting": false, "value": "@Microsoft.KeyVault(SecretUri=https://kv-signup-q.vault.azure.net/secrets/portal-signing-keys/)"},
        {"name": "PORTAL_PUBLIC_URL", "slotSetting": false, "value": "https://signup-func-q.azurewebsites.net"},
    ]);
    std::fs::write(app_settings.path(), listed.to_string()).unwrap();
    let run = |granted: &[&str]| {
        ready.platform.sim.set_app_permissions(granted);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg(common::repo_root().join("scripts/azd/postdeploy.sh"))
            .env_clear()
            .envs(&ready.platform.env)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("APP_SETTINGS_FILE", app_settings.path())
            .env("HANDLER_BINARY", env!("CARGO_BIN_EXE_handler"))
            .env("FUNCTION_APP_NAME", "signup-func-q")
            .env("AZURE_RESOURCE_GROUP", "rg-contoso-signup")
            .env("FUNCTION_APP_PRINCIPAL_ID", IDENTITY_OBJECT_ID)
            .env("PORTAL_PUBLIC_URL", "http://localhost:7071");
        let out = tokio::task::block_in_place(|| cmd.output()).unwrap();
        Checklist::of(CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    };
    let list = run(DEFAULT_APP_PERMISSIONS);
    assert_eq!(list.out.code, 0, "{}", list.dump());
    list.has("ok", "graph-token", &["signed-in person"]);
    list.has("ok", "graph-permissions", &[IDENTITY_OBJECT_ID]);
    list.has(
        "ok",
        "public-url",
        &["https://signup-func-q.azurewebsites.net"],
    );
    list.all_ok("guest-invitations");
    assert!(list.out.stdout.contains("doctor: "), "{}", list.dump());

    let list = run(&["User.Invite.All"]);
    assert_ne!(list.out.code, 0, "{}", list.dump());
    list.has("fail", "graph-permissions", &["User.ReadWrite.All"]);
    assert!(
        list.out.stdout.contains("azd hooks run postdeploy"),
        "{}",
        list.dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_sign_in_is_checked_from_the_policies_to_the_apps_credential() {
    let mut ready = ready().await;
    let tenant = "3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    let out = ready.platform.cli(&[
        "policy", "add", "--tenant", tenant, "--proof", "sign_in", "--action", "auto",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A policy asks for a sign-in the portal cannot offer.
    let list = doctor(&ready.platform, &[]);
    list.has("fail", "partner-sign-in", &["SIGN_IN_CLIENT_ID", tenant]);
    assert_eq!(list.out.code, 1);

    let (client_id, authority) = (
        ready.platform.sim.sign_in_client_id(),
        ready.platform.sim.sign_in_authority(),
    );
    ready.platform.set("SIGN_IN_CLIENT_ID", &client_id);
    ready.platform.set("SIGN_IN_AUTHORITY", &authority);
    let callback = "https://signup.contoso.example/api/signup/signed-in";
    ready.platform.sim.set_redirect_uris(&[callback]);
    let list = doctor(&ready.platform, &[]);
    list.all_ok("partner-sign-in");
    list.has("ok", "partner-sign-in", &[&client_id, "managed identity"]);

    // The app registration lacks the portal's redirect URI.
    ready
        .platform
        .sim
        .set_redirect_uris(&["https://elsewhere.example/api/signup/signed-in"]);
    let list = doctor(&ready.platform, &[]);
    list.has("fail", "partner-sign-in", &["redirect URI", callback]);

    // Nobody trusts the managed identity as the app's credential.
    ready.platform.sim.set_redirect_uris(&[callback]);
    ready.platform.sim.set_federated_credential(false);
    let list = doctor(&ready.platform, &[]);
    list.has("fail", "partner-sign-in", &["invalid_client", "70021"]);

    // A policy requiring MFA is warned about (Entra's v2.0 ID tokens carry no amr).
    ready.platform.sim.set_federated_credential(true);
    let out = ready.platform.cli(&[
        "policy",
        "add",
        "--tenant",
        tenant,
        "--proof",
        "sign_in",
        "--require-mfa",
        "--action",
        "auto",
        "--replace",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = doctor(&ready.platform, &[]);
    list.has("warn", "partner-sign-in", &["amr", "tenant:"]);
    list.has("ok", "partner-sign-in", &["managed identity"]);
}
