//! The in-memory directory: users, groups, service principals, invitations.
//!
//! Users live in a `BTreeMap` keyed by a creation sequence number, so a list
//! page is a range scan from the page cursor (O(page), not O(N)) and a
//! `$skiptoken` is just that cursor. Soft-deleted users move to a second map,
//! as Entra moves them to deleted items, so they cost nothing when listing.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::permissions::{role_id, GRAPH_APPLICATION_PERMISSIONS};
use crate::types::{
    InvitationRecord, UserSnapshot, CLIENT_ID, GRAPH_APP_ID, IDENTITY_OBJECT_ID, TENANT_DOMAIN,
};
use crate::util::{graph_datetime, new_guid, random_token};

/// `signInActivity`: the last interactive and non-interactive sign-in *attempts* (failed ones
/// included, as Graph documents) and the last *successful* sign-in.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignIn {
    pub last: Option<OffsetDateTime>,
    pub last_non_interactive: Option<OffsetDateTime>,
    pub last_successful: Option<OffsetDateTime>,
}

impl SignIn {
    /// No sign-in of any kind on record. Graph then does not return `signInActivity` at all
    /// ("not returned for a user who has never signed in or last signed in before April
    /// 2020"), rather than an object of nulls.
    pub fn is_empty(&self) -> bool {
        self.last.is_none() && self.last_non_interactive.is_none() && self.last_successful.is_none()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub seq: u64,
    pub id: String,
    pub display_name: String,
    pub mail: String,
    pub upn: String,
    /// "Guest" or "Member".
    pub user_type: String,
    pub account_enabled: bool,
    pub created: OffsetDateTime,
    pub creation_type: Option<String>,
    pub external_user_state: Option<String>,
    pub external_user_state_changed: Option<OffsetDateTime>,
    pub sign_in: SignIn,
    pub deleted_at: Option<OffsetDateTime>,
    /// Simple string properties that only matter for PATCH/$select round trips.
    pub props: Map<String, Value>,
    /// Object ids of the users and groups sponsoring this user (`/users/{id}/sponsors`),
    /// in the order they were added.
    pub sponsors: Vec<String>,
}

/// Properties a user has, with their canonical spelling.
pub(crate) const USER_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "mail",
    "userPrincipalName",
    "userType",
    "accountEnabled",
    "createdDateTime",
    "creationType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "signInActivity",
    "givenName",
    "surname",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "businessPhones",
    "otherMails",
    "deletedDateTime",
    "companyName",
    "department",
    "city",
    "country",
    "usageLocation",
    "employeeId",
    "mailNickname",
];

/// What Graph v1.0 returns for a user when no `$select` is given.
/// Notably `userType`, `externalUserState` and `accountEnabled` are not in it.
pub(crate) const DEFAULT_USER_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Plain string properties a PATCH may set (besides the typed ones handled in routes).
pub(crate) const PATCHABLE_STRINGS: &[&str] = &[
    "givenName",
    "surname",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "companyName",
    "department",
    "city",
    "country",
    "usageLocation",
    "employeeId",
];

pub(crate) fn canonical_user_property(name: &str) -> Option<&'static str> {
    USER_PROPERTIES
        .iter()
        .copied()
        .find(|p| p.eq_ignore_ascii_case(name))
}

fn opt_dt(t: Option<OffsetDateTime>) -> Value {
    t.map(|t| Value::String(graph_datetime(t)))
        .unwrap_or(Value::Null)
}

impl User {
    /// The JSON value of one (canonical) property.
    pub fn property(&self, name: &str) -> Value {
        match name {
            "id" => json!(self.id),
            "displayName" => json!(self.display_name),
            "mail" => json!(self.mail),
            "userPrincipalName" => json!(self.upn),
            "userType" => json!(self.user_type),
            "accountEnabled" => json!(self.account_enabled),
            "createdDateTime" => json!(graph_datetime(self.created)),
            "creationType" => json!(self.creation_type),
            "externalUserState" => json!(self.external_user_state),
            "externalUserStateChangeDateTime" => opt_dt(self.external_user_state_changed),
            "signInActivity" => json!({
                "lastSignInDateTime": opt_dt(self.sign_in.last),
                "lastSignInRequestId": self.sign_in.last.map(|_| new_guid()),
                "lastNonInteractiveSignInDateTime": opt_dt(self.sign_in.last_non_interactive),
                "lastNonInteractiveSignInRequestId": self.sign_in.last_non_interactive.map(|_| new_guid()),
                "lastSuccessfulSignInDateTime": opt_dt(self.sign_in.last_successful),
                "lastSuccessfulSignInRequestId": self.sign_in.last_successful.map(|_| new_guid()),
            }),
            "businessPhones" => json!([]),
            "otherMails" => {
                if self.user_type == "Guest" {
                    json!([self.mail])
                } else {
                    json!([])
                }
            }
            "deletedDateTime" => opt_dt(self.deleted_at),
            "mailNickname" => {
                json!(self
                    .upn
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .replace("#EXT#", ""))
            }
            other => self.props.get(other).cloned().unwrap_or(Value::Null),
        }
    }

    /// Renders the user with the given canonical properties (`id` always first).
    pub fn render(&self, select: &[&str]) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        for p in select {
            if *p == "signInActivity" && self.sign_in.is_empty() {
                continue;
            }
            if *p != "id" {
                m.insert((*p).to_string(), self.property(p));
            }
        }
        m
    }

    pub fn snapshot(&self) -> UserSnapshot {
        UserSnapshot {
            id: self.id.clone(),
            mail: self.mail.clone(),
            display_name: self.display_name.clone(),
            user_principal_name: self.upn.clone(),
            user_type: self.user_type.clone(),
            account_enabled: self.account_enabled,
            external_user_state: self.external_user_state.clone(),
            external_user_state_changed: self.external_user_state_changed,
            deleted: self.deleted_at.is_some(),
            created: self.created,
            last_sign_in: self.sign_in.last,
            given_name: self
                .props
                .get("givenName")
                .and_then(Value::as_str)
                .map(str::to_string),
            surname: self
                .props
                .get("surname")
                .and_then(Value::as_str)
                .map(str::to_string),
            company_name: self
                .props
                .get("companyName")
                .and_then(Value::as_str)
                .map(str::to_string),
            job_title: self
                .props
                .get("jobTitle")
                .and_then(Value::as_str)
                .map(str::to_string),
            sponsors: self.sponsors.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub display_name: String,
    /// Members in the order they were added (paging walks this by index).
    pub members: Vec<String>,
    pub member_set: HashSet<String>,
    /// Models on-prem-synced / some Microsoft 365 groups that refuse guests.
    pub refuses_guests: bool,
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub principal_display_name: String,
    pub app_role_id: String,
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    pub app_role_ids: Vec<String>,
    /// Roles other applications may be granted (`allowedMemberTypes: ["Application"]`), as
    /// (id, value): Microsoft Graph's application permissions.
    pub application_roles: Vec<(String, String)>,
    pub assignments: Vec<Assignment>,
}

impl ServicePrincipal {
    pub fn render_assignment(&self, a: &Assignment) -> Value {
        json!({
            "id": a.id,
            "deletedDateTime": null,
            "appRoleId": a.app_role_id,
            "createdDateTime": graph_datetime(a.created),
            "principalDisplayName": a.principal_display_name,
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "resourceDisplayName": self.display_name,
            "resourceId": self.id,
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    next_seq: u64,
    pub users: BTreeMap<u64, User>,
    pub deleted: BTreeMap<u64, User>,
    by_id: HashMap<String, u64>,
    /// Lower-cased mail -> ids of active users with that mail.
    by_mail: HashMap<String, Vec<String>>,
    /// Lower-cased userPrincipalName -> id of the active user.
    by_upn: HashMap<String, String>,
    pub groups: HashMap<String, Group>,
    pub service_principals: HashMap<String, ServicePrincipal>,
    pub invitations: Vec<InvitationRecord>,
    /// Object id of Microsoft Graph's service principal in this tenant.
    pub graph_sp_id: String,
    /// The tenant's authorization policy (`GET /policies/authorizationPolicy`).
    pub authorization_policy: Map<String, Value>,
}

/// What a new user is made of; the directory assigns id and sequence.
pub(crate) struct NewUser {
    pub display_name: String,
    pub mail: String,
    pub user_type: &'static str,
    pub created: OffsetDateTime,
    pub creation_type: Option<String>,
    pub external_user_state: Option<String>,
    pub external_user_state_changed: Option<OffsetDateTime>,
    pub account_enabled: bool,
    pub sign_in: SignIn,
}

/// `jane@contoso.com` -> `jane_contoso.com#EXT#@simtenant.onmicrosoft.com`.
pub(crate) fn guest_upn(mail: &str) -> String {
    format!("{}#EXT#@{}", mail.replace('@', "_"), TENANT_DOMAIN)
}

impl Directory {
    pub fn insert_user(&mut self, n: NewUser) -> String {
        self.next_seq += 1;
        let seq = self.next_seq;
        let id = new_guid();
        let upn = if n.user_type == "Guest" {
            guest_upn(&n.mail)
        } else {
            let local = n.mail.split('@').next().unwrap_or("user");
            format!("{local}@{TENANT_DOMAIN}")
        };
        let user = User {
            seq,
            id: id.clone(),
            display_name: n.display_name,
            mail: n.mail,
            upn,
            user_type: n.user_type.to_string(),
            account_enabled: n.account_enabled,
            created: n.created,
            creation_type: n.creation_type,
            external_user_state: n.external_user_state,
            external_user_state_changed: n.external_user_state_changed,
            sign_in: n.sign_in,
            deleted_at: None,
            props: Map::new(),
            sponsors: Vec::new(),
        };
        self.index(&user);
        self.by_id.insert(id.clone(), seq);
        self.users.insert(seq, user);
        id
    }

    fn index(&mut self, u: &User) {
        if !u.mail.is_empty() {
            self.by_mail
                .entry(u.mail.to_lowercase())
                .or_default()
                .push(u.id.clone());
        }
        self.by_upn.insert(u.upn.to_lowercase(), u.id.clone());
    }

    fn unindex(&mut self, u: &User) {
        let key = u.mail.to_lowercase();
        if let Some(ids) = self.by_mail.get_mut(&key) {
            ids.retain(|i| i != &u.id);
            if ids.is_empty() {
                self.by_mail.remove(&key);
            }
        }
        self.by_upn.remove(&u.upn.to_lowercase());
    }

    /// Resolves an id or a userPrincipalName, as `/users/{id | userPrincipalName}` does.
    fn resolve(&self, key: &str) -> Option<u64> {
        if let Some(seq) = self.by_id.get(key) {
            return Some(*seq);
        }
        let id = self.by_upn.get(&key.to_lowercase())?;
        self.by_id.get(id).copied()
    }

    pub fn user(&self, key: &str) -> Option<&User> {
        self.users.get(&self.resolve(key)?)
    }

    pub fn user_mut(&mut self, key: &str) -> Option<&mut User> {
        let seq = self.resolve(key)?;
        self.users.get_mut(&seq)
    }

    pub fn deleted_user(&self, id: &str) -> Option<&User> {
        self.deleted.get(self.by_id.get(id)?)
    }

    pub fn any_user(&self, id: &str) -> Option<&User> {
        self.user(id).or_else(|| self.deleted_user(id))
    }

    /// Active users whose mail equals `mail`, case-insensitively.
    pub fn users_by_mail(&self, mail: &str) -> Vec<&User> {
        self.by_mail
            .get(&mail.to_lowercase())
            .map(|ids| ids.iter().filter_map(|id| self.user(id)).collect())
            .unwrap_or_default()
    }

    pub fn set_mail(&mut self, key: &str, mail: String) -> bool {
        let Some(seq) = self.resolve(key) else {
            return false;
        };
        let Some(old) = self.users.get(&seq).cloned() else {
            return false;
        };
        self.unindex(&old);
        let user = self.users.get_mut(&seq).expect("present");
        user.mail = mail;
        let user = user.clone();
        self.index(&user);
        true
    }

    pub fn soft_delete(&mut self, key: &str) -> bool {
        let Some(seq) = self.resolve(key) else {
            return false;
        };
        let Some(mut user) = self.users.remove(&seq) else {
            return false;
        };
        self.unindex(&user);
        user.deleted_at = Some(OffsetDateTime::now_utc());
        self.deleted.insert(seq, user);
        true
    }

    /// Restores a soft-deleted user. `Err(true)` when the user is not in
    /// deleted items, `Err(false)` when an active user took its mail meanwhile.
    pub fn restore(&mut self, id: &str) -> Result<&User, bool> {
        let seq = *self.by_id.get(id).ok_or(true)?;
        let user = self.deleted.get(&seq).ok_or(true)?;
        if self.by_upn.contains_key(&user.upn.to_lowercase()) {
            return Err(false);
        }
        let mut user = self.deleted.remove(&seq).expect("present");
        user.deleted_at = None;
        self.index(&user);
        self.users.insert(seq, user);
        Ok(self.users.get(&seq).expect("present"))
    }

    pub fn purge(&mut self, id: &str) -> bool {
        let Some(seq) = self.by_id.get(id).copied() else {
            return false;
        };
        if self.deleted.remove(&seq).is_none() {
            return false;
        }
        self.by_id.remove(id);
        for g in self.groups.values_mut() {
            if g.member_set.remove(id) {
                g.members.retain(|m| m != id);
            }
        }
        for sp in self.service_principals.values_mut() {
            sp.assignments.retain(|a| a.principal_id != id);
        }
        true
    }

    pub fn add_group(&mut self, display_name: &str, refuses_guests: bool) -> String {
        let id = new_guid();
        self.groups.insert(
            id.clone(),
            Group {
                id: id.clone(),
                display_name: display_name.to_string(),
                members: Vec::new(),
                member_set: HashSet::new(),
                refuses_guests,
                created: OffsetDateTime::now_utc(),
            },
        );
        id
    }

    pub fn add_service_principal(&mut self, display_name: &str, roles: &[uuid::Uuid]) -> String {
        let id = new_guid();
        self.service_principals.insert(
            id.clone(),
            ServicePrincipal {
                id: id.clone(),
                app_id: new_guid(),
                display_name: display_name.to_string(),
                app_role_ids: roles.iter().map(|r| r.to_string()).collect(),
                application_roles: Vec::new(),
                assignments: Vec::new(),
            },
        );
        id
    }

    /// Every member of a group, nested groups' members included: the group's own members in
    /// the order they were added, then those of each nested group as it is reached. Nested
    /// groups are members too (Graph lists them), each object once, cycles walked once.
    pub fn transitive_members(&self, group_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut visited: HashSet<&str> = HashSet::from([group_id]);
        let mut queue = std::collections::VecDeque::from([group_id]);
        while let Some(g) = queue.pop_front() {
            let Some(group) = self.groups.get(g) else {
                continue;
            };
            for m in &group.members {
                if seen.insert(m.clone()) {
                    out.push(m.clone());
                }
                if let Some(nested) = self.groups.get(m.as_str()) {
                    if visited.insert(nested.id.as_str()) {
                        queue.push_back(nested.id.as_str());
                    }
                }
            }
        }
        out
    }

    /// Whether `object_id` is a member of `group_id`, directly or through nested groups.
    pub fn is_transitive_member(&self, object_id: &str, group_id: &str) -> bool {
        self.transitive_members(group_id)
            .iter()
            .any(|m| m == object_id)
    }

    /// Groups (ids) the active user is a direct member of.
    pub fn groups_of(&self, user_id: &str) -> Vec<&Group> {
        let mut gs: Vec<&Group> = self
            .groups
            .values()
            .filter(|g| g.member_set.contains(user_id))
            .collect();
        gs.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        gs
    }

    pub fn new_assignment_id() -> String {
        random_token(32)
    }

    /// What every tenant has from the start: Microsoft Graph's service principal with its
    /// application permissions, the app's own service principal holding `app_permissions`, and
    /// the default authorization policy.
    pub fn seed_tenant(&mut self, app_permissions: &[String]) {
        let graph_sp_id = new_guid();
        self.service_principals.insert(
            graph_sp_id.clone(),
            ServicePrincipal {
                id: graph_sp_id.clone(),
                app_id: GRAPH_APP_ID.to_string(),
                display_name: "Microsoft Graph".into(),
                app_role_ids: Vec::new(),
                application_roles: GRAPH_APPLICATION_PERMISSIONS
                    .iter()
                    .map(|(value, id)| (id.to_string(), value.to_string()))
                    .collect(),
                assignments: Vec::new(),
            },
        );
        self.graph_sp_id = graph_sp_id;
        self.service_principals.insert(
            IDENTITY_OBJECT_ID.to_string(),
            ServicePrincipal {
                id: IDENTITY_OBJECT_ID.to_string(),
                app_id: CLIENT_ID.to_string(),
                display_name: "b2b-signup".into(),
                app_role_ids: Vec::new(),
                application_roles: Vec::new(),
                assignments: Vec::new(),
            },
        );
        self.set_app_permissions(app_permissions);
        self.authorization_policy = default_authorization_policy();
    }

    /// Replaces the app's Microsoft Graph permissions. Unknown values are ignored.
    pub fn set_app_permissions(&mut self, values: &[String]) {
        let graph_sp_id = self.graph_sp_id.clone();
        let Some(graph) = self.service_principals.get_mut(&graph_sp_id) else {
            return;
        };
        graph
            .assignments
            .retain(|a| a.principal_id != IDENTITY_OBJECT_ID);
        for value in values {
            if let Some(id) = role_id(value) {
                graph.assignments.push(Assignment {
                    id: Directory::new_assignment_id(),
                    principal_id: IDENTITY_OBJECT_ID.to_string(),
                    principal_type: "ServicePrincipal".into(),
                    principal_display_name: "b2b-signup".into(),
                    app_role_id: id.to_string(),
                    created: OffsetDateTime::now_utc(),
                });
            }
        }
    }

    /// The values of the Microsoft Graph permissions the app holds now (its tokens' `roles`).
    pub fn app_permissions(&self) -> Vec<String> {
        let Some(graph) = self.service_principals.get(&self.graph_sp_id) else {
            return Vec::new();
        };
        graph
            .assignments
            .iter()
            .filter(|a| a.principal_id == IDENTITY_OBJECT_ID)
            .filter_map(|a| {
                graph
                    .application_roles
                    .iter()
                    .find(|(id, _)| *id == a.app_role_id)
                    .map(|(_, value)| value.clone())
            })
            .collect()
    }

    /// App role assignments held by a principal (a service principal's `appRoleAssignments`),
    /// with the resource each is on.
    pub fn assignments_of(&self, principal_id: &str) -> Vec<(&ServicePrincipal, &Assignment)> {
        let mut held: Vec<(&ServicePrincipal, &Assignment)> = self
            .service_principals
            .values()
            .flat_map(|sp| {
                sp.assignments
                    .iter()
                    .filter(|a| a.principal_id.eq_ignore_ascii_case(principal_id))
                    .map(move |a| (sp, a))
            })
            .collect();
        held.sort_by(|a, b| a.1.created.cmp(&b.1.created).then(a.1.id.cmp(&b.1.id)));
        held
    }
}

/// The authorization policy of a new tenant, as Graph v1.0 shows it (defaults of the commercial
/// cloud: anyone may invite guests, guests get the default limited access).
fn default_authorization_policy() -> Map<String, Value> {
    let policy = json!({
        "id": "authorizationPolicy",
        "allowInvitesFrom": "everyone",
        "allowedToSignUpEmailBasedSubscriptions": true,
        "allowedToUseSSPR": true,
        "allowEmailVerifiedUsersToJoinOrganization": false,
        "allowUserConsentForRiskyApps": false,
        "blockMsolPowerShell": false,
        "description": "Used to manage authorization related settings across the company.",
        "displayName": "Authorization Policy",
        "guestUserRoleId": GUEST_USER_ROLE_ID,
        "defaultUserRolePermissions": {
            "allowedToCreateApps": true,
            "allowedToCreateSecurityGroups": true,
            "allowedToCreateTenants": true,
            "allowedToReadBitlockerKeysForOwnedDevice": true,
            "allowedToReadOtherUsers": true,
            "permissionGrantPoliciesAssigned": ["ManagePermissionGrantsForSelf.microsoft-user-default-legacy"]
        }
    });
    match policy {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

/// The "Guest User" role template: guests have limited access to directory objects (default).
pub(crate) const GUEST_USER_ROLE_ID: &str = "10dae51f-b6af-4016-8d66-8c2a99b929b3";
