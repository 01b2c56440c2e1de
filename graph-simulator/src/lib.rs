//! A local stand-in for the parts of Microsoft Graph v1.0 and of the Entra ID
//! token endpoints that the b2b-signup portal calls.
//!
//! # Why it exists
//! Graph has no local emulator, and the portal's behaviour under Graph's
//! quirks (paging by opaque nextLinks, `$batch` answers in any order, 429s
//! with `Retry-After` inside a 200 batch, duplicate-membership 400s, a guest
//! that already exists, signInActivity needing a P1 licence) is exactly what
//! must be tested. The simulator reproduces those documented shapes, status
//! codes and error bodies, so tests and the local dev loop run the portal's
//! production code path with only its base URLs changed through settings.
//!
//! # Use
//! In tests, start one per test on a random loopback port:
//! ```no_run
//! # async fn t() -> std::io::Result<()> {
//! use graph_simulator::{Simulator, SimulatorConfig};
//! let sim = Simulator::start(SimulatorConfig::default()).await?;
//! let graph_base = sim.base_url(); // http://127.0.0.1:PORT/v1.0
//! # Ok(()) }
//! ```
//! For the dev loop, run the binary: `graph-simulator --port 7300
//! [--seed-guests N] [--latency-ms N]`, and drive it through `/_sim/...`.
//!
//! # What is served
//! * Tokens: `POST /{tenant}/oauth2/v2.0/token` (client credentials),
//!   `GET /msi/token` (App Service managed identity, `X-IDENTITY-HEADER`),
//!   `GET /metadata/identity/oauth2/token` (IMDS, `Metadata: true`).
//! * Graph under `/v1.0`: `POST /invitations`; `GET /users` (`$filter`,
//!   `$select`, `$top`, `$count`, `$skiptoken`); `GET|PATCH|DELETE /users/{id}`;
//!   `POST /users/{id}/checkMemberGroups`; `GET /users/{id}/memberOf`;
//!   `GET /groups/{id}`; `GET /groups/{id}/members`; `GET /groups/{id}/transitiveMembers`;
//!   `POST /groups/{id}/members/$ref`; `DELETE /groups/{id}/members/{uid}/$ref`;
//!   `GET /servicePrincipals/{id}`; `GET|POST /servicePrincipals/{id}/appRoleAssignedTo`;
//!   `GET /servicePrincipals[?$filter=appId eq '..']`, `GET /servicePrincipals(appId='..')`,
//!   `GET /servicePrincipals/{id}/appRoleAssignments`;
//!   `GET /directory/deletedItems/microsoft.graph.user`;
//!   `GET|DELETE /directory/deletedItems/{id}`; `POST /directory/deletedItems/{id}/restore`;
//!   `GET /policies/authorizationPolicy`; `POST /$batch`.
//! * Permissions: app-only tokens carry the app's Graph application permissions as `roles`
//!   (default [`DEFAULT_APP_PERMISSIONS`]); a call whose documented permissions the token lacks
//!   answers 403 `Authorization_RequestDenied`.
//! * Admin (no auth): `GET /_sim/config`, `GET /_sim/state[?users=false]`,
//!   `GET /_sim/users[?mail=]`, `GET /_sim/users/{id}`, `POST /_sim/users/{id}/redeem`,
//!   `POST /_sim/users/{id}/signIn {"at"|"sentinel"[, "failed"]}`, `POST /_sim/members`,
//!   `POST /_sim/guests` (one guest, or `{"count":N,"createdDaysAgo":D}`),
//!   `POST /_sim/groups {"displayName","refusesGuests"}`, `GET /_sim/groups/{id}/members`,
//!   `POST /_sim/servicePrincipals {"displayName","appRoleIds"}`,
//!   `GET /_sim/servicePrincipals/{id}/assignments`, `GET /_sim/invitations`,
//!   `GET /_sim/deleted`, `GET|DELETE /_sim/calls`, `GET|POST|DELETE /_sim/faults`,
//!   `PUT /_sim/latency {"ms"}`, `POST /_sim/tokens/expire`,
//!   `GET|PUT /_sim/permissions {"permissions":[..]}` (the app's Graph application permissions),
//!   `PATCH /_sim/authorizationPolicy {..}`, `POST /_sim/tokens/admin` (a delegated admin token,
//!   shaped like `az account get-access-token` output); for sign-in: `GET|POST /_sim/signIn/users`
//!   ([`SignInUser`]), `POST /_sim/signIn/tenants {"tenantId","name"}`,
//!   `PUT /_sim/signIn/redirectUris {"uris":[..]}`, `POST /_sim/signIn/forgery` ([`IdTokenForgery`]),
//!   `POST /_sim/signIn/rollKeys {"withdrawOld"}`, `PUT /_sim/signIn/federatedCredential {"present"}`,
//!   `PUT /_sim/signIn/amr {"on"}`.
//! * Sign-in (OpenID Connect, see the `sign_in` module): `GET /{tenant}/v2.0/.well-known/openid-configuration`,
//!   `GET /{tenant}/discovery/v2.0/keys`, `GET|POST /{tenant}/oauth2/v2.0/authorize` (a sign-in
//!   page), and the authorization code grant with PKCE on the token endpoint, the client
//!   authenticated by its managed identity's token as a client assertion.

mod admin;
mod auth;
mod batch;
mod errors;
mod faults;
mod odata;
mod permissions;
mod routes;
mod server;
mod shared;
mod sign_in;
mod state;
mod throttle;
mod types;
mod util;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::shared::Shared;
use crate::state::{NewUser, SignIn};

pub use crate::sign_in::{
    IdTokenForgery, SignInUser, DEFAULT_REDIRECT_URI, SIGN_IN_CLIENT_ID, TOKEN_EXCHANGE_AUDIENCE,
};
pub use crate::types::{
    CallCounts, Fault, FaultRoute, InvitationRecord, SeedGuest, SimulatorConfig, UserSnapshot,
    CLIENT_ID, CLIENT_SECRET, DEFAULT_APP_PERMISSIONS, DEFAULT_TENANT_ID, GRAPH_APP_ID,
    IDENTITY_HEADER, IDENTITY_OBJECT_ID, SIGN_IN_SENTINEL, TENANT_DOMAIN,
};

/// A running simulator. Cheap to clone; all clones drive the same server.
/// The server runs until the tokio runtime it was started on shuts down.
#[derive(Debug, Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

impl Simulator {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::start_on(listener, config).await
    }

    /// Serves on an already bound listener (the binary's fixed port).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        config: SimulatorConfig,
    ) -> std::io::Result<Simulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(addr, config));
        tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Simulator { shared })
    }

    /// Starts on a dedicated thread with its own runtime, and runs until the
    /// process exits. For tests whose own runtime may block (waiting on a child
    /// process, a blocking client): a simulator on the test's runtime would
    /// stop answering while it is blocked. Callable from sync or async code.
    pub fn start_detached(config: SimulatorConfig) -> std::io::Result<Simulator> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("graph-simulator".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Simulator::start(config).await {
                        Ok(sim) => {
                            let _ = tx.send(Ok(sim));
                            std::future::pending::<()>().await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        rx.recv()
            .map_err(|_| std::io::Error::other("the simulator thread ended before starting"))?
    }

    /// `http://127.0.0.1:PORT/v1.0`, the Graph base URL.
    pub fn base_url(&self) -> String {
        format!("{}/v1.0", self.authority_host())
    }

    /// `http://127.0.0.1:PORT`; the token endpoint is
    /// `{authority_host}/{tenant}/oauth2/v2.0/token`.
    pub fn authority_host(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The App Service managed identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.authority_host())
    }

    /// The secret `IDENTITY_HEADER` value that endpoint demands.
    pub fn identity_header(&self) -> String {
        IDENTITY_HEADER.to_string()
    }

    /// The one registered app (client credentials); also the managed identity's client id.
    pub fn client_id(&self) -> String {
        CLIENT_ID.to_string()
    }

    pub fn client_secret(&self) -> String {
        CLIENT_SECRET.to_string()
    }

    pub fn tenant_id(&self) -> String {
        self.shared.tenant_id.clone()
    }

    /// A member user (the kind that can't be invited).
    pub fn add_member(&self, mail: &str, display_name: &str) -> String {
        self.shared.dir().insert_user(NewUser {
            display_name: display_name.to_string(),
            mail: mail.to_string(),
            user_type: "Member",
            created: OffsetDateTime::now_utc(),
            creation_type: None,
            external_user_state: None,
            external_user_state_changed: None,
            account_enabled: true,
            sign_in: SignIn::default(),
        })
    }

    /// A guest as if invited earlier; returns its object id.
    pub fn add_guest(&self, g: SeedGuest) -> String {
        let display_name = if g.display_name.is_empty() {
            g.mail.split('@').next().unwrap_or_default().to_string()
        } else {
            g.display_name
        };
        let changed = g
            .external_user_state
            .as_ref()
            .map(|_| g.state_changed.unwrap_or(g.created));
        self.shared.dir().insert_user(NewUser {
            display_name,
            mail: g.mail,
            user_type: "Guest",
            created: g.created,
            creation_type: Some("Invitation".into()),
            external_user_state: g.external_user_state,
            external_user_state_changed: changed,
            account_enabled: g.account_enabled,
            sign_in: SignIn {
                last: g.last_sign_in,
                last_non_interactive: g.last_sign_in,
                last_successful: g.last_sign_in,
            },
        })
    }

    /// `n` pending guests created at `created`, mailed `seed-guest-<k>@seed.example`.
    /// Takes one lock for the whole batch, so 100,000 guests seed in well under a second.
    pub fn seed_guests(&self, n: usize, created: OffsetDateTime) {
        let mut dir = self.shared.dir();
        let base = dir.users.len() + dir.deleted.len();
        for k in 0..n {
            let ordinal = base + k + 1;
            dir.insert_user(NewUser {
                display_name: format!("Seed Guest {ordinal}"),
                mail: format!("seed-guest-{ordinal}@seed.example"),
                user_type: "Guest",
                created,
                creation_type: Some("Invitation".into()),
                external_user_state: Some("PendingAcceptance".into()),
                external_user_state_changed: Some(created),
                account_enabled: true,
                sign_in: SignIn::default(),
            });
        }
    }

    pub fn add_group(&self, display_name: &str) -> String {
        self.shared.dir().add_group(display_name, false)
    }

    /// A group that answers 403 `Authorization_RequestDenied` when a guest is
    /// added, like on-premises-synced groups.
    pub fn add_group_refusing_guests(&self, display_name: &str) -> String {
        self.shared.dir().add_group(display_name, true)
    }

    /// A resource service principal exposing `app_role_ids` (the all-zero
    /// default-access role is always accepted as well).
    pub fn add_service_principal(&self, display_name: &str, app_role_ids: &[uuid::Uuid]) -> String {
        self.shared
            .dir()
            .add_service_principal(display_name, app_role_ids)
    }

    /// Every user, active and soft-deleted, in creation order.
    pub fn users(&self) -> Vec<UserSnapshot> {
        let dir = self.shared.dir();
        let mut all: Vec<&state::User> = dir.users.values().chain(dir.deleted.values()).collect();
        all.sort_by_key(|u| u.seq);
        all.into_iter().map(state::User::snapshot).collect()
    }

    /// An active or soft-deleted user by object id.
    pub fn user(&self, id: &str) -> Option<UserSnapshot> {
        self.shared.dir().any_user(id).map(state::User::snapshot)
    }

    /// The active user with this mail (case-insensitive), guests first.
    pub fn user_by_mail(&self, mail: &str) -> Option<UserSnapshot> {
        let dir = self.shared.dir();
        let mut found = dir.users_by_mail(mail);
        found.sort_by_key(|u| (u.user_type != "Guest", u.seq));
        found.first().map(|u| u.snapshot())
    }

    /// Makes `member` (a user or another group) a direct member of `group`, as
    /// `POST /groups/{id}/members/$ref` does. False if either is unknown or already there.
    pub fn add_group_member(&self, group: &str, member: &str) -> bool {
        let mut dir = self.shared.dir();
        let known = dir.user(member).map(|u| u.id.clone()).or_else(|| {
            (dir.groups.contains_key(member) && member != group).then(|| member.to_string())
        });
        let Some(member) = known else {
            return false;
        };
        let Some(g) = dir.groups.get_mut(group) else {
            return false;
        };
        if !g.member_set.insert(member.clone()) {
            return false;
        }
        g.members.push(member);
        true
    }

    /// Member ids of a group, in the order they were added (empty if unknown).
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        self.shared
            .dir()
            .groups
            .get(group_id)
            .map(|g| g.members.clone())
            .unwrap_or_default()
    }

    /// `(principalId, appRoleId)` of each assignment on the service principal.
    pub fn app_role_assignments(&self, sp_id: &str) -> Vec<(String, String)> {
        self.shared
            .dir()
            .service_principals
            .get(sp_id)
            .map(|sp| {
                sp.assignments
                    .iter()
                    .map(|a| (a.principal_id.clone(), a.app_role_id.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn invitations(&self) -> Vec<InvitationRecord> {
        self.shared.dir().invitations.clone()
    }

    /// Ids of soft-deleted users (restorable).
    pub fn deleted_users(&self) -> Vec<String> {
        self.shared
            .dir()
            .deleted
            .values()
            .map(|u| u.id.clone())
            .collect()
    }

    /// Changes an active user as an admin (or the user) would. False if unknown.
    fn change_user(&self, id: &str, change: impl FnOnce(&mut state::User)) -> bool {
        match self.shared.dir().user_mut(id) {
            Some(u) => {
                change(u);
                true
            }
            None => false,
        }
    }

    /// Marks a guest as having redeemed its invitation. False if unknown.
    pub fn redeem(&self, id: &str) -> bool {
        self.change_user(id, |u| {
            u.external_user_state = Some("Accepted".into());
            u.external_user_state_changed = Some(OffsetDateTime::now_utc());
        })
    }

    /// Sets all three signInActivity timestamps (None = never signed in).
    pub fn set_last_sign_in(&self, id: &str, at: Option<OffsetDateTime>) -> bool {
        self.change_user(id, |u| {
            u.sign_in = SignIn {
                last: at,
                last_non_interactive: at,
                last_successful: at,
            };
        })
    }

    /// What an admin does in the portal or with `PATCH /users/{id}`: converts a guest to a
    /// member (`"Member"`) or back. False if unknown.
    pub fn set_user_type(&self, id: &str, user_type: &str) -> bool {
        self.change_user(id, |u| {
            u.user_type = user_type.to_string();
        })
    }

    /// An admin enables (or disables) an account. False if unknown.
    pub fn set_account_enabled(&self, id: &str, enabled: bool) -> bool {
        self.change_user(id, |u| {
            u.account_enabled = enabled;
        })
    }

    /// A failed interactive sign-in attempt (a wrong password, a sprayed one): Graph records
    /// it in `lastSignInDateTime` but not in `lastSuccessfulSignInDateTime`.
    pub fn record_failed_sign_in(&self, id: &str, at: OffsetDateTime) -> bool {
        self.change_user(id, |u| {
            u.sign_in.last = Some(at);
        })
    }

    pub fn calls(&self) -> CallCounts {
        self.shared.calls()
    }

    pub fn reset_calls(&self) {
        self.shared.reset_calls();
    }

    /// Queues a fault; faults apply oldest first to the calls they match.
    pub fn inject_fault(&self, f: Fault) {
        self.shared.inject_fault(f);
    }

    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    pub fn set_latency(&self, d: Duration) {
        self.shared.set_latency(d);
    }

    /// Expires every token issued so far: the next Graph call with one answers 401.
    pub fn expire_tokens(&self) {
        auth::expire_all(&self.shared);
    }

    /// Replaces the app's Microsoft Graph application permissions (e.g. `User.Invite.All`).
    /// Tokens issued earlier keep the roles they were issued with, as Entra's do.
    pub fn set_app_permissions(&self, permissions: &[&str]) {
        let values: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        self.shared.dir().set_app_permissions(&values);
    }

    /// The app's Microsoft Graph application permissions now.
    pub fn app_permissions(&self) -> Vec<String> {
        self.shared.dir().app_permissions()
    }

    /// A delegated token of a tenant administrator (what `az account get-access-token` gives an
    /// admin signed in with the Azure CLI) and its expiry in Unix seconds. It carries `scp`,
    /// not `roles`, and may call everything.
    pub fn admin_token(&self) -> (String, i64) {
        auth::issue_admin(&self.shared, std::time::Duration::from_secs(3599))
    }

    /// Object id of Microsoft Graph's service principal in this tenant.
    pub fn graph_service_principal_id(&self) -> String {
        self.shared.dir().graph_sp_id.clone()
    }

    /// Merges `changes` (property -> value) into the tenant's authorization policy, e.g.
    /// `{"allowInvitesFrom": "none"}`.
    pub fn set_authorization_policy(&self, changes: serde_json::Value) {
        if let serde_json::Value::Object(changes) = changes {
            self.shared.dir().authorization_policy.extend(changes);
        }
    }

    // --- the sign-in side (OpenID Connect) ------------------------------------------------

    /// The authority a portal signs partners in against: `{authority_host}/organizations/v2.0`
    /// (its discovery document is under `/.well-known/openid-configuration`).
    pub fn sign_in_authority(&self) -> String {
        format!("{}/organizations/v2.0", self.authority_host())
    }

    /// The client id of the portal's multi-tenant sign-in app registration.
    pub fn sign_in_client_id(&self) -> String {
        SIGN_IN_CLIENT_ID.to_string()
    }

    /// A partner tenant by id (lower-case GUID) and display name.
    pub fn add_sign_in_tenant(&self, tenant_id: &str, name: &str) {
        shared::lock(&self.shared.sign_in).add_tenant(tenant_id, name);
    }

    /// A person who can sign in (their tenant is added if new); returns their object id.
    pub fn add_sign_in_user(&self, user: SignInUser) -> String {
        shared::lock(&self.shared.sign_in).add_user(user)
    }

    /// Everyone who can sign in.
    pub fn sign_in_users(&self) -> Vec<SignInUser> {
        shared::lock(&self.shared.sign_in).users()
    }

    /// Replaces the app registration's redirect URIs (default [`DEFAULT_REDIRECT_URI`]).
    pub fn set_redirect_uris(&self, uris: &[&str]) {
        shared::lock(&self.shared.sign_in)
            .set_redirect_uris(uris.iter().map(|u| u.to_string()).collect());
    }

    /// Makes the next ID token the token endpoint issues wrong in this way (once).
    pub fn forge_next_id_token(&self, forgery: IdTokenForgery) {
        shared::lock(&self.shared.sign_in).set_forgery(Some(forgery));
    }

    /// Adds or removes the app registration's federated credential for the managed identity.
    pub fn set_federated_credential(&self, present: bool) {
        shared::lock(&self.shared.sign_in).set_federated_credential(present);
    }

    /// Whether ID tokens carry `amr` (default true; Entra's v2.0 ID tokens do not).
    pub fn set_id_token_amr(&self, on: bool) {
        shared::lock(&self.shared.sign_in).set_amr(on);
    }

    /// Key rollover: a new key is published and signs from now on; with `withdraw_old`,
    /// the earlier keys leave the published set. Returns the new key's id.
    pub fn roll_signing_keys(&self, withdraw_old: bool) -> String {
        shared::lock(&self.shared.sign_in).roll_keys(withdraw_old)
    }

    /// The key id that signs ID tokens now.
    pub fn active_signing_kid(&self) -> String {
        shared::lock(&self.shared.sign_in).active_kid()
    }

    /// The key ids in the published key set.
    pub fn published_kids(&self) -> Vec<String> {
        shared::lock(&self.shared.sign_in).published_kids()
    }
}
