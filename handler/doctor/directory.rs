//! Microsoft Graph and the tenant: a token, the permissions the enabled features need, whether
//! the tenant lets applications invite guests and what guests may see, and whether every group,
//! application, app role, approver and sponsor the policies name exists as the portal needs it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Doctor, Finding};
use crate::adapters::graph::{GraphClient, GraphError};
use crate::core::permissions::{self, Features};
use crate::core::policy::Policy;
use crate::settings::GraphCredential;

/// How long one Graph call of the doctor may wait out throttling.
const PATIENCE: Duration = Duration::from_secs(10);

/// The role templates `guestUserRoleId` can name.
const GUEST_SAME_AS_MEMBERS: &str = "a0b1b346-4d3e-4e8b-98f8-753987be4970";
const GUEST_LIMITED: &str = "10dae51f-b6af-4016-8d66-8c2a99b929b3";
const GUEST_RESTRICTED: &str = "2af84b1e-32c8-42b7-82bc-daa82404023b";

pub async fn token(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "graph-token";
    let Some(settings) = d.graph_settings.clone() else {
        return vec![Finding::not_checked(
            CHECK,
            "the GRAPH_* settings do not parse (see settings)",
        )];
    };
    let fix = match &settings.credential {
        GraphCredential::ManagedIdentity { .. } if d.in_azure() => {
            "the Function App needs its system-assigned managed identity (the template turns it on; GRAPH_MANAGED_IDENTITY_CLIENT_ID must name a user-assigned one the app has)"
        }
        GraphCredential::ManagedIdentity { .. } => {
            "a managed identity exists only inside Azure: on your machine run az login and set GRAPH_CREDENTIAL=azure_cli"
        }
        GraphCredential::AzureCli => {
            "run az login (as an administrator of the portal's tenant) and check az account show"
        }
        GraphCredential::ClientSecret { .. } => {
            "check GRAPH_TENANT_ID, GRAPH_CLIENT_ID and GRAPH_CLIENT_SECRET (an expired secret fails the same way)"
        }
    };
    let credential = match crate::adapters::identity::credential(&settings.credential) {
        Ok(c) => c,
        Err(e) => return vec![Finding::fail(CHECK, e, fix)],
    };
    let graph = GraphClient::new(
        crate::adapters::http_client(),
        &settings.base_url,
        &settings.scope,
        credential,
    )
    .with_patience(PATIENCE);
    match graph.token_claims().await {
        Ok(claims) => {
            let base = settings.base_url.as_str().trim_end_matches('/');
            let message = if claims.is_app_only() {
                format!(
                    "a token for {base} as the application {} (service principal {})",
                    claims.appid.as_deref().unwrap_or("?"),
                    claims.oid.as_deref().unwrap_or("?")
                )
            } else {
                format!("a token for {base} as a signed-in person (delegated, not the app's own)")
            };
            d.graph = Some(graph);
            d.claims = Some(claims);
            vec![Finding::ok(CHECK, message)]
        }
        Err(e) => vec![Finding::fail(
            CHECK,
            format!("no token for Microsoft Graph: {e}"),
            fix,
        )],
    }
}

/// What the portal is set up to do, from the policies and the cleanup's settings.
fn features(d: &Doctor) -> Features {
    let policies = d.policies.as_deref().unwrap_or_default();
    let cleanup = d.cleanup.as_ref();
    Features {
        policy_groups: policies.iter().any(|p| !p.groups.is_empty()),
        policy_app_roles: policies.iter().any(|p| !p.app_roles.is_empty()),
        exclusion_group: cleanup.is_some_and(|c| c.exclusion_group_id.is_some()),
        inactivity_rule: cleanup.is_some_and(|c| c.rules.inactive_days > 0)
            && d.graph_settings
                .as_ref()
                .is_some_and(|g| g.sign_in_activity),
    }
}

/// The command an admin runs to grant what is missing.
fn grant_command(d: &Doctor, features: Features) -> String {
    let principal = d
        .identity_object_id()
        .unwrap_or_else(|| "<FUNCTION_APP_PRINCIPAL_ID>".into());
    let mut command = format!("infra/grant-graph-permissions.sh {principal}");
    if features.policy_app_roles {
        command.push_str(" --app-role-grants");
    }
    if features.inactivity_rule {
        command.push_str(" --inactivity-cleanup");
    }
    command
}

pub async fn permissions(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "graph-permissions";
    let (graph, claims) = match d.graph() {
        Ok(g) => g,
        Err(why) => return vec![Finding::not_checked(CHECK, why)],
    };
    let features = features(d);
    let (granted, source) = if claims.is_app_only() {
        (claims.roles.clone(), "the token's roles".to_string())
    } else if let Some(id) = &d.identity {
        match graph.graph_permissions_of(id).await {
            Ok(Some(granted)) => (granted, format!("the app role assignments of {id}")),
            Ok(None) => {
                return vec![Finding::fail(
                    CHECK,
                    format!("--identity {id} is no service principal of this tenant"),
                    "pass the Function App's principal id: azd env get-value FUNCTION_APP_PRINCIPAL_ID (or az functionapp identity show)",
                )]
            }
            Err(e) => {
                return vec![Finding::fail(
                    CHECK,
                    format!("the permissions of {id} cannot be read: {e}"),
                    "sign in (az login) as an administrator who may read service principals",
                )]
            }
        }
    } else {
        return vec![Finding::warn(
            CHECK,
            "the token is a person's (delegated), so it does not show which permissions the Function App's identity holds",
            "pass --identity <the app's principal id> (azd env get-value FUNCTION_APP_PRINCIPAL_ID); azd hooks run postdeploy does",
        )];
    };
    let needs = permissions::needed(features);
    let mut findings = Vec::new();
    let mut met = Vec::new();
    let mut unused = Vec::new();
    let cached = if claims.is_app_only() {
        "; the running app sees a new permission once its cached token expires (up to 24 hours)"
    } else {
        ""
    };
    for need in &needs {
        if need.is_met_by(&granted) {
            met.push(need.permission);
        } else if need.in_use {
            findings.push(Finding::fail(
                CHECK,
                format!(
                    "{} is not granted: the portal needs it to {}",
                    need.permission, need.purpose
                ),
                format!(
                    "as a Privileged Role Administrator run {}{cached}",
                    grant_command(d, features)
                ),
            ));
        } else {
            unused.push(need.permission);
        }
    }
    for (permission, why) in permissions::excessive(features, &granted) {
        findings.push(Finding::warn(
            CHECK,
            format!("{permission} is granted: it {why}"),
            "remove it in the Entra admin center (Enterprise applications > the identity > Permissions), or delete that app role assignment with az rest",
        ));
    }
    let mut summary = format!("needed and granted ({source}): {}", met.join(", "));
    if !unused.is_empty() {
        summary.push_str(&format!(
            "; not granted and not needed by the current setup: {}",
            unused.join(", ")
        ));
    }
    findings.insert(0, Finding::ok(CHECK, summary));
    findings
}

pub async fn sign_in_activity(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "sign-in-activity";
    if !features(d).inactivity_rule {
        return vec![Finding::ok(
            CHECK,
            "the cleanup's inactivity rule is off, so sign-in activity is not read",
        )];
    }
    let (graph, claims) = match d.graph() {
        Ok(g) => g,
        Err(why) => return vec![Finding::not_checked(CHECK, why)],
    };
    match graph.probe_sign_in_activity().await {
        Ok(()) => vec![Finding::ok(
            CHECK,
            "sign-in activity can be read (Entra ID P1 and AuditLog.Read.All)",
        )],
        Err(GraphError::Refused {
            status: 403, code, ..
        }) if code.contains("NonPremium") => {
            vec![Finding::fail(
                CHECK,
                "the tenant has no Entra ID P1, so guests' sign-in activity cannot be read and the cleanup's inactivity rule fails",
                "license Entra ID P1, or turn the rule off: CLEANUP_INACTIVE_DAYS=0 (or GRAPH_SIGN_IN_ACTIVITY=false)",
            )]
        }
        Err(e @ GraphError::Refused { status: 403, .. }) => {
            let whose = if claims.is_app_only() {
                "the app"
            } else {
                "you"
            };
            vec![Finding::fail(
                CHECK,
                format!("sign-in activity cannot be read by {whose}: {e}"),
                format!("grant AuditLog.Read.All: {}", grant_command(d, features(d))),
            )]
        }
        Err(e) => vec![Finding::fail(
            CHECK,
            format!("sign-in activity cannot be read: {e}"),
            "run the doctor again; if it persists, check Graph's service health",
        )],
    }
}

pub async fn guest_settings(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "guest-invitations";
    const ACCESS: &str = "guest-access";
    let (graph, claims) = match d.graph() {
        Ok(g) => g,
        Err(why) => return vec![Finding::not_checked(CHECK, why)],
    };
    let policy = match graph.authorization_policy().await {
        Ok(p) => p,
        Err(GraphError::Refused { status: 403, .. }) => {
            let who = if claims.is_app_only() {
                "the app's identity lacks Policy.Read.All, which the portal itself does not need"
            } else {
                "your sign-in may not read policies (Global Reader or Security Reader can)"
            };
            return vec![Finding::warn(
                CHECK,
                format!("the tenant's guest invite settings cannot be read: {who}"),
                format!(
                    "run the doctor as an administrator: GRAPH_CREDENTIAL=azure_cli handler doctor --identity {} (azd hooks run postdeploy does)",
                    d.identity_object_id().unwrap_or_else(|| "<FUNCTION_APP_PRINCIPAL_ID>".into())
                ),
            )];
        }
        Err(e) => {
            return vec![Finding::warn(
                CHECK,
                format!("the tenant's guest invite settings cannot be read: {e}"),
                "run the doctor again later",
            )]
        }
    };
    let principal = d
        .identity_object_id()
        .unwrap_or_else(|| "<FUNCTION_APP_PRINCIPAL_ID>".into());
    let invites = match policy.allow_invites_from.as_deref() {
        Some(v @ ("everyone" | "adminsGuestInvitersAndAllMembers")) => Finding::ok(
            CHECK,
            format!("the tenant lets applications invite guests (allowInvitesFrom = {v})"),
        ),
        Some("adminsAndGuestInviters") => Finding::warn(
            CHECK,
            "only admins and Guest Inviters may invite guests (allowInvitesFrom = adminsAndGuestInviters): the portal's invitations may be refused with 403",
            format!(
                "if invitations fail, give the identity the Guest Inviter role: infra/grant-graph-permissions.sh {principal} --guest-inviter"
            ),
        ),
        Some("none") => Finding::fail(
            CHECK,
            "the tenant lets no one invite guests (allowInvitesFrom = none), so every invitation the portal makes is refused",
            format!(
                "Entra admin center > External Identities > External collaboration settings > Guest invite settings: allow at least admins and Guest Inviters, then infra/grant-graph-permissions.sh {principal} --guest-inviter"
            ),
        ),
        other => Finding::warn(
            CHECK,
            format!("allowInvitesFrom is {other:?}, which the portal does not know"),
            "check External collaboration settings > Guest invite settings in the Entra admin center",
        ),
    };
    let access = match policy.guest_user_role_id.as_deref() {
        Some(GUEST_LIMITED) => Finding::ok(
            ACCESS,
            "partners who sign up get the default guest access: their own profile and the groups and apps they are given, not the directory",
        ),
        Some(GUEST_RESTRICTED) => Finding::ok(
            ACCESS,
            "partners who sign up get restricted guest access: they cannot even list the members of groups they are in",
        ),
        Some(GUEST_SAME_AS_MEMBERS) => Finding::warn(
            ACCESS,
            "partners who sign up get the same directory access as members (guestUserRoleId = User): they can read every user, group and application",
            "External collaboration settings > Guest user access: choose limited (the default) or restricted access",
        ),
        other => Finding::warn(
            ACCESS,
            format!("guestUserRoleId is {other:?}, which the portal does not know"),
            "check External collaboration settings > Guest user access in the Entra admin center",
        ),
    };
    vec![invites, access]
}

/// Everything a set of policies names, with the keys of the policies naming it.
fn named_by<T: Ord + Clone>(
    policies: &[Policy],
    items: impl Fn(&Policy) -> Vec<T>,
) -> BTreeMap<T, Vec<String>> {
    let mut all: BTreeMap<T, Vec<String>> = BTreeMap::new();
    for p in policies {
        for item in items(p) {
            let keys = all.entry(item).or_default();
            if !keys.contains(&p.key()) {
                keys.push(p.key());
            }
        }
    }
    all
}

/// What checks of the policies' objects build on: the policies and a Graph client.
fn policies_and_graph(d: &Doctor) -> Result<(&[Policy], &GraphClient), &'static str> {
    Ok((d.policies()?, d.graph()?.0))
}

/// The findings, after one `ok` line counting the objects that passed (if any did).
fn with_count(
    mut findings: Vec<Finding>,
    fine: usize,
    check: &'static str,
    say: impl Fn(usize) -> String,
) -> Vec<Finding> {
    if fine > 0 {
        findings.insert(0, Finding::ok(check, say(fine)));
    }
    findings
}

fn policy_words(keys: &[String]) -> String {
    let plural = if keys.len() == 1 {
        "policy"
    } else {
        "policies"
    };
    format!("{plural} {}", keys.join(", "))
}

pub async fn policy_groups(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "policy-groups";
    let (policies, graph) = match policies_and_graph(d) {
        Ok(both) => both,
        Err(why) => return vec![Finding::not_checked(CHECK, why)],
    };
    let groups = named_by(policies, |p| {
        p.groups.iter().map(|g| g.to_string()).collect()
    });
    if groups.is_empty() {
        return vec![Finding::ok(CHECK, "no policy adds guests to groups")];
    }
    let fix_policy = "put an existing cloud group's object id in the policy (handler policy export, edit, handler policy import)";
    let mut findings = Vec::new();
    let mut fine = 0;
    for (id, keys) in &groups {
        let by = policy_words(keys);
        match graph.group(id).await {
            Ok(None) => findings.push(Finding::fail(
                CHECK,
                format!("group {id} ({by}) does not exist"),
                fix_policy,
            )),
            Ok(Some(g)) => {
                let name = g.display_name.clone().unwrap_or_else(|| id.clone());
                if g.on_premises_sync_enabled == Some(true) {
                    findings.push(Finding::fail(
                        CHECK,
                        format!("group '{name}' ({id}, {by}) is synced from on-premises: Graph cannot add guests to it"),
                        fix_policy,
                    ));
                } else if g.mail_enabled == Some(true)
                    && !g.group_types.iter().any(|t| t == "Unified")
                {
                    findings.push(Finding::fail(
                        CHECK,
                        format!("group '{name}' ({id}, {by}) is a distribution list or mail-enabled security group: Graph cannot change its members"),
                        fix_policy,
                    ));
                } else {
                    fine += 1;
                }
            }
            Err(e) => findings.push(Finding::fail(
                CHECK,
                format!("group {id} ({by}) cannot be read: {e}"),
                "grant GroupMember.ReadWrite.All (see graph-permissions)",
            )),
        }
    }
    with_count(findings, fine, CHECK, |n| {
        format!("{n} group(s) the policies name exist and take guests")
    })
}

pub async fn policy_app_roles(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "policy-app-roles";
    let (policies, graph) = match policies_and_graph(d) {
        Ok(both) => both,
        Err(why) => return vec![Finding::not_checked(CHECK, why)],
    };
    let roles = named_by(policies, |p| {
        p.app_roles
            .iter()
            .map(|r| (r.resource_id.to_string(), r.app_role_id))
            .collect()
    });
    if roles.is_empty() {
        return vec![Finding::ok(CHECK, "no policy assigns app roles")];
    }
    let fix_policy = "correct resource_id (the application's service principal object id) and app_role_id in the policy (handler policy export, edit, handler policy import)";
    let mut findings = Vec::new();
    let mut fine = 0;
    for ((resource, role), keys) in &roles {
        let by = policy_words(keys);
        let sp = match graph.service_principal(resource).await {
            Ok(Some(sp)) => sp,
            Ok(None) => {
                findings.push(Finding::fail(
                    CHECK,
                    format!("application {resource} ({by}) does not exist as a service principal in this tenant"),
                    fix_policy,
                ));
                continue;
            }
            Err(e) => {
                findings.push(Finding::fail(
                    CHECK,
                    format!("application {resource} ({by}) cannot be read: {e}"),
                    "grant Application.Read.All (see graph-permissions)",
                ));
                continue;
            }
        };
        let name = sp.display_name.clone().unwrap_or_else(|| resource.clone());
        if role.is_nil() {
            fine += 1;
            continue;
        }
        match sp
            .app_roles
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(&role.to_string()))
        {
            None => findings.push(Finding::fail(
                CHECK,
                format!("app role {role} ({by}) is not defined by '{name}'"),
                fix_policy,
            )),
            Some(r) if !r.is_enabled => findings.push(Finding::fail(
                CHECK,
                format!("app role {role} of '{name}' ({by}) is disabled"),
                "enable the role in the application's manifest, or name another",
            )),
            Some(r) if !r.allowed_member_types.iter().any(|t| t == "User") => {
                findings.push(Finding::fail(
                    CHECK,
                    format!("app role {role} of '{name}' ({by}) cannot be assigned to users"),
                    "name a role whose allowed member types include users",
                ))
            }
            Some(_) => fine += 1,
        }
    }
    with_count(findings, fine, CHECK, |n| {
        format!("{n} app role(s) the policies name exist and can be given to guests")
    })
}

pub async fn approvers(d: &mut Doctor) -> Vec<Finding> {
    people(d, &APPROVERS, |p| {
        p.approvers
            .iter()
            .chain(&p.second_stage_approvers)
            .chain(&p.fallback_approvers)
            .map(|a| a.as_str().to_string())
            .collect()
    })
    .await
}

/// Sponsors answer access reviews from their mail wherever they are; one who is not an
/// enabled member of the tenant is a warning, not a failure: Graph cannot record them as the
/// guest's sponsor, and with PORTAL_APPROVERS_MUST_SIGN_IN they cannot answer.
pub async fn sponsors(d: &mut Doctor) -> Vec<Finding> {
    people(d, &SPONSORS, |p| {
        p.sponsors.iter().map(|a| a.as_str().to_string()).collect()
    })
    .await
}

/// A kind of person the policies name, as its check reports it.
struct People {
    check: &'static str,
    noun: &'static str,
    none: &'static str,
    /// Whether one who is not an enabled member blocks the portal.
    must_be_member: bool,
}

const APPROVERS: People = People {
    check: "approvers",
    noun: "approver",
    none: "no policy asks approvers",
    must_be_member: true,
};

const SPONSORS: People = People {
    check: "sponsors",
    noun: "sponsor",
    none: "no policy names sponsors",
    must_be_member: false,
};

/// Each person the policies name (`pick`) looked up in the directory: an enabled member.
async fn people(
    d: &mut Doctor,
    kind: &People,
    pick: impl Fn(&Policy) -> Vec<String>,
) -> Vec<Finding> {
    let check = kind.check;
    let noun = kind.noun;
    let (policies, graph) = match policies_and_graph(d) {
        Ok(both) => both,
        Err(why) => return vec![Finding::not_checked(check, why)],
    };
    let people = named_by(policies, pick);
    if people.is_empty() {
        return vec![Finding::ok(check, kind.none)];
    }
    let fix = "name an enabled member of the tenant by their mail or user principal name (handler policy export, edit, handler policy import)";
    let problem = |message: String| {
        if kind.must_be_member {
            Finding::fail(check, message, fix)
        } else {
            Finding::warn(check, message, fix)
        }
    };
    let mut findings = Vec::new();
    let mut fine = 0;
    for (address, keys) in &people {
        let by = policy_words(keys);
        match graph.find_person(address).await {
            Ok(None) => findings.push(problem(format!(
                "{noun} {address} ({by}) is not a user of this tenant"
            ))),
            Ok(Some(u)) if u.user_type.as_deref() != Some("Member") => {
                findings.push(problem(format!(
                    "{noun} {address} ({by}) is a {}, not a member of the tenant",
                    u.user_type.as_deref().unwrap_or("user of unknown type")
                )))
            }
            Ok(Some(u)) if u.account_enabled == Some(false) => findings.push(problem(format!(
                "{noun} {address} ({by}) has a disabled account"
            ))),
            Ok(Some(_)) => fine += 1,
            Err(e) => findings.push(Finding::fail(
                check,
                format!("{noun} {address} ({by}) cannot be looked up: {e}"),
                "grant User.ReadWrite.All (see graph-permissions)",
            )),
        }
    }
    with_count(findings, fine, check, |n| {
        format!("{n} {noun}(s) are enabled members of the tenant")
    })
}

pub async fn exclusion_group(d: &mut Doctor) -> Vec<Finding> {
    const CHECK: &str = "exclusion-group";
    let Some(cleanup) = &d.cleanup else {
        return vec![Finding::not_checked(
            CHECK,
            "the CLEANUP_* settings do not parse (see settings)",
        )];
    };
    let Some(id) = cleanup.exclusion_group_id.clone() else {
        return vec![Finding::ok(
            CHECK,
            "CLEANUP_EXCLUSION_GROUP_ID is not set: no guest is exempt from the cleanup",
        )];
    };
    let graph = match d.graph() {
        Ok((g, _)) => g,
        Err(why) => return vec![Finding::not_checked(CHECK, why)],
    };
    match graph.group(&id).await {
        Ok(Some(g)) => vec![Finding::ok(
            CHECK,
            format!(
                "the exclusion group '{}' exists: its members are never cleaned up",
                g.display_name.unwrap_or(id)
            ),
        )],
        Ok(None) => vec![Finding::fail(
            CHECK,
            format!("CLEANUP_EXCLUSION_GROUP_ID names no group ({id}): the cleanup cannot tell whom to spare"),
            "set it to an existing group's object id, or clear it",
        )],
        Err(e) => vec![Finding::fail(
            CHECK,
            format!("the exclusion group {id} cannot be read: {e}"),
            "grant GroupMember.Read.All or higher (see graph-permissions)",
        )],
    }
}
