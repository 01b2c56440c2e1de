//! The public, plain-data types of the simulator's Rust API.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::macros::datetime;
use time::OffsetDateTime;

/// The tenant id a simulator uses unless told otherwise.
pub const DEFAULT_TENANT_ID: &str = "7d3b5f2a-9c41-4e8b-a6d0-3f1e2c9b8a75";
/// The tenant's initial domain, used in guests' userPrincipalName.
pub const TENANT_DOMAIN: &str = "simtenant.onmicrosoft.com";
/// The one app registration that may use client credentials.
pub const CLIENT_ID: &str = "c0ffee00-5157-4a11-b2b0-51a7e0000001";
/// Its secret. Dev-only, like everything here.
pub const CLIENT_SECRET: &str = "sim~secret.not-for-production-0001";
/// The secret the App Service managed identity endpoint demands in `X-IDENTITY-HEADER`.
pub const IDENTITY_HEADER: &str = "sim-identity-header-0001";
/// Object id of the app's service principal (the managed identity's principal id): the `oid`
/// of its tokens and the principal of its Graph permissions.
pub const IDENTITY_OBJECT_ID: &str = "5e1f0b7a-2c3d-4e5f-8a9b-0c1d2e3f4a5b";
/// Microsoft Graph's application id, the same in every tenant.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The application permissions a new simulator grants its app: everything the portal can use
/// (invitations, guests, group memberships, app role assignments, sign-in activity), and not
/// Policy.Read.All, which the portal does not need.
pub const DEFAULT_APP_PERMISSIONS: &[&str] = &[
    "User.Invite.All",
    "User.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "Application.Read.All",
    "AuditLog.Read.All",
];

/// What Entra reports in signInActivity for "no value" on some tenants.
pub const SIGN_IN_SENTINEL: OffsetDateTime = datetime!(0001-01-01 0:00 UTC);

/// How a simulator behaves. Build it with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Added to every Graph call (once per outer call for `$batch`), to model
    /// the ~50 ms a real Graph round trip costs. Token endpoints are not delayed.
    pub latency: Duration,
    /// The invitation manager's limit: at most N `POST /invitations` per window
    /// per tenant. Default 150 per 5 s, as documented.
    pub invitation_throttle: Option<(u32, Duration)>,
    /// The directory write limit per app and tenant: every POST/PATCH/DELETE,
    /// batch sub-requests included (the `$batch` envelope itself is free).
    /// Default 3,000 per 150 s, as documented.
    pub write_throttle: Option<(u32, Duration)>,
    pub tenant_id: String,
    /// Entra ID P1. Without it, selecting or filtering on signInActivity answers 403.
    pub p1_license: bool,
    /// Microsoft Graph application permissions granted to the app (values such as
    /// `User.Invite.All`): its tokens carry them as `roles`, and calls needing others get 403.
    pub app_permissions: Vec<String>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            latency: Duration::ZERO,
            invitation_throttle: Some((150, Duration::from_secs(5))),
            write_throttle: Some((3000, Duration::from_secs(150))),
            tenant_id: DEFAULT_TENANT_ID.to_string(),
            p1_license: true,
            app_permissions: DEFAULT_APP_PERMISSIONS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        }
    }
}

/// A guest to put in the directory directly, as if invited earlier.
#[derive(Debug, Clone)]
pub struct SeedGuest {
    pub mail: String,
    pub display_name: String,
    pub created: OffsetDateTime,
    /// `"PendingAcceptance"` or `"Accepted"`; `None` leaves the property null,
    /// as Graph shows for guests created before redemption was tracked.
    pub external_user_state: Option<String>,
    /// `externalUserStateChangeDateTime`; `None` means "same as created".
    pub state_changed: Option<OffsetDateTime>,
    /// The last sign-in (interactive, non-interactive and successful alike);
    /// `None` = never signed in (nulls), [`SIGN_IN_SENTINEL`] = the `0001-01-01` value.
    pub last_sign_in: Option<OffsetDateTime>,
    pub account_enabled: bool,
}

impl Default for SeedGuest {
    fn default() -> Self {
        SeedGuest {
            mail: String::new(),
            display_name: String::new(),
            created: OffsetDateTime::now_utc(),
            external_user_state: Some("PendingAcceptance".into()),
            state_changed: None,
            last_sign_in: None,
            account_enabled: true,
        }
    }
}

impl SeedGuest {
    /// A pending, enabled guest created now, named after the mail's local part.
    pub fn new(mail: &str) -> Self {
        SeedGuest {
            mail: mail.to_string(),
            display_name: mail.split('@').next().unwrap_or(mail).to_string(),
            ..Default::default()
        }
    }
    pub fn display_name(mut self, name: &str) -> Self {
        self.display_name = name.to_string();
        self
    }
    pub fn created(mut self, at: OffsetDateTime) -> Self {
        self.created = at;
        self
    }
    /// Redeemed at `at`.
    pub fn accepted(mut self, at: OffsetDateTime) -> Self {
        self.external_user_state = Some("Accepted".into());
        self.state_changed = Some(at);
        self
    }
    pub fn last_sign_in(mut self, at: OffsetDateTime) -> Self {
        self.last_sign_in = Some(at);
        self
    }
    /// signInActivity carries `0001-01-01T00:00:00Z` instead of nulls.
    pub fn sign_in_sentinel(mut self) -> Self {
        self.last_sign_in = Some(SIGN_IN_SENTINEL);
        self
    }
    pub fn disabled(mut self) -> Self {
        self.account_enabled = false;
        self
    }
}

/// A user as the directory holds it (for assertions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSnapshot {
    pub id: String,
    pub mail: String,
    pub display_name: String,
    pub user_principal_name: String,
    /// `"Guest"` or `"Member"`.
    pub user_type: String,
    pub account_enabled: bool,
    pub external_user_state: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub external_user_state_changed: Option<OffsetDateTime>,
    pub deleted: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sign_in: Option<OffsetDateTime>,
    /// The profile properties a PATCH may have set.
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    /// Object ids of its sponsors.
    pub sponsors: Vec<String>,
}

/// One successful `POST /invitations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationRecord {
    pub invitation_id: String,
    pub email: String,
    pub user_id: String,
    pub display_name: Option<String>,
    /// Ids from `invitedUserSponsors`.
    pub sponsors: Vec<String>,
    pub redirect_url: String,
    pub send_invitation_message: bool,
    pub invited_user_message_info: Option<serde_json::Value>,
    pub reset_redemption: bool,
    /// True when the email already had a guest and the invitation resolved to it.
    pub existing_user: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// How many calls of each kind the simulator answered.
///
/// Kinds count direct calls and batch sub-requests alike (a DELETE inside a
/// batch is a `delete_user`). `total` counts outer HTTP calls only (Graph and
/// token endpoints, not `/_sim`). `throttled_429` counts every 429 answered,
/// from the throttles or from injected faults, sub-requests included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub token: u64,
    pub invitations: u64,
    pub list_users_pages: u64,
    pub get_user: u64,
    pub patch_user: u64,
    pub delete_user: u64,
    pub add_member: u64,
    pub app_role: u64,
    pub batch: u64,
    pub batch_subrequests: u64,
    /// `GET /users` sub-requests of `$batch` calls (known users read again by id), also
    /// counted in `list_users_pages`.
    pub list_users_in_batch: u64,
    /// `$batch` calls whose sub-requests are all reads (GET), also counted in `batch`.
    pub batch_reads_only: u64,
    pub throttled_429: u64,
    /// Graph calls of any other kind (group reads, checkMemberGroups, restore, ...).
    pub other: u64,
    pub total: u64,
}

/// Which calls a [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultRoute {
    Invitations,
    AddMember,
    AppRoleAssignment,
    ListUsers,
    GetUser,
    PatchUser,
    DeleteUser,
    /// The `$batch` envelope (sub-requests match their own routes).
    Batch,
    /// Both token endpoints (client credentials and managed identity).
    Token,
    /// Any Graph call, batch envelopes and sub-requests included; not tokens.
    Any,
}

/// A failure to inject into the next matching calls.
///
/// A 2xx `status` (or 0) with a `delay` makes the call slow but otherwise normal.
/// `drop_connection` closes the TCP connection without an answer (inside a
/// batch, it drops the batch's connection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub route: FaultRoute,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub retry_after: Option<u32>,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default, rename = "delayMs", with = "opt_millis")]
    pub delay: Option<Duration>,
    #[serde(default)]
    pub drop_connection: bool,
    /// The error's `message` instead of the status's usual one (Graph's messages can quote
    /// the object they are about, an address included).
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// Fail the next matching call once with `status`.
    pub fn new(route: FaultRoute, status: u16) -> Self {
        Fault {
            route,
            status,
            retry_after: None,
            times: 1,
            delay: None,
            drop_connection: false,
            message: None,
        }
    }
    /// Close the connection of the next matching call without answering.
    pub fn drop_connection(route: FaultRoute) -> Self {
        Fault {
            drop_connection: true,
            ..Fault::new(route, 0)
        }
    }
    /// Answer the next matching call normally, but only after `delay`.
    pub fn slow(route: FaultRoute, delay: Duration) -> Self {
        Fault {
            delay: Some(delay),
            ..Fault::new(route, 0)
        }
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
    pub fn message(mut self, text: &str) -> Self {
        self.message = Some(text.to_string());
        self
    }
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
