//! Microsoft Graph application permissions: which the simulated app holds, and which a call needs.
//!
//! In Entra an app's application permissions are app role assignments from its service
//! principal to Microsoft Graph's, and an app-only token carries their values in its `roles`
//! claim, fixed when the token is issued. The simulator keeps them the same way: the app's
//! service principal ([`crate::IDENTITY_OBJECT_ID`]) has one assignment on the Microsoft Graph
//! service principal per permission, tokens are issued with the values held at that moment, and
//! each Graph call checks the token's roles against the permissions Microsoft documents for it
//! (least privileged or higher), answering 403 `Authorization_RequestDenied` when none is held.
//! Delegated (user) tokens, issued for an administrator's tools, pass every check, as a Global
//! Administrator's would.

/// Microsoft Graph's application permissions the simulator knows, with their real app role ids.
pub(crate) const GRAPH_APPLICATION_PERMISSIONS: &[(&str, &str)] = &[
    ("User.Invite.All", "09850681-111b-4a89-9bed-3f2cae46d706"),
    ("User.Read.All", "df021288-bdef-4463-88db-98f22de89214"),
    ("User.ReadWrite.All", "741f803b-c850-494e-b5df-cde7c675a1ca"),
    (
        "GroupMember.Read.All",
        "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    ),
    (
        "GroupMember.ReadWrite.All",
        "dbaae8cf-10b5-4b86-a4a1-f871c94c6695",
    ),
    ("Group.Read.All", "5b567255-7703-4780-807c-7be8301ae99b"),
    (
        "Group.ReadWrite.All",
        "62a82d76-70ea-41e2-9197-370581804d09",
    ),
    (
        "Application.Read.All",
        "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    ),
    (
        "Application.ReadWrite.All",
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    ),
    (
        "AppRoleAssignment.ReadWrite.All",
        "06b708a9-e830-4db3-a914-8e69da51d44f",
    ),
    ("AuditLog.Read.All", "b0afded3-3588-46d8-8b3d-9842eff778da"),
    ("Policy.Read.All", "246dd0d5-5bd0-4def-940b-0421030a5b68"),
    (
        "Policy.ReadWrite.Authorization",
        "fb221be6-99f2-473f-bd32-01c6a0e9ca3b",
    ),
    ("Directory.Read.All", "7ab1d382-f21e-4acd-a863-ba3e13f7da61"),
    (
        "Directory.ReadWrite.All",
        "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
    ),
];

/// The app role id of a permission, if the simulator knows it.
pub(crate) fn role_id(value: &str) -> Option<&'static str> {
    GRAPH_APPLICATION_PERMISSIONS
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, id)| *id)
}

const READ_USERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const WRITE_USERS: &[&str] = &["User.ReadWrite.All", "Directory.ReadWrite.All"];
pub(crate) const INVITE: &[&str] = &[
    "User.Invite.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const READ_GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const WRITE_MEMBERS: &[&str] = &[
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const READ_APPLICATIONS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ASSIGN_APP_ROLES: &[&str] = &["AppRoleAssignment.ReadWrite.All"];
const READ_AUTHORIZATION_POLICY: &[&str] = &["Policy.Read.All", "Policy.ReadWrite.Authorization"];
/// Reading signInActivity needs this on top of reading users (and Entra ID P1).
pub(crate) const READ_SIGN_IN_ACTIVITY: &[&str] = &["AuditLog.Read.All"];

/// What a kind of call needs: any one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    ReadUsers,
    WriteUsers,
    Invite,
    ReadGroups,
    WriteMembers,
    ReadApplications,
    AssignAppRoles,
    ReadAuthorizationPolicy,
    /// The `$batch` envelope: each sub-request is checked on its own.
    Nothing,
}

impl Need {
    pub(crate) fn any_of(self) -> &'static [&'static str] {
        match self {
            Need::ReadUsers => READ_USERS,
            Need::WriteUsers => WRITE_USERS,
            Need::Invite => INVITE,
            Need::ReadGroups => READ_GROUPS,
            Need::WriteMembers => WRITE_MEMBERS,
            Need::ReadApplications => READ_APPLICATIONS,
            Need::AssignAppRoles => ASSIGN_APP_ROLES,
            Need::ReadAuthorizationPolicy => READ_AUTHORIZATION_POLICY,
            Need::Nothing => &[],
        }
    }
}

/// Who is calling, as the bearer token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// An app-only token with these `roles`.
    App(Vec<String>),
    /// A signed-in administrator (delegated token).
    Admin,
}

impl Caller {
    /// Whether the caller holds one of `any_of` (an empty list needs nothing).
    pub(crate) fn holds_any(&self, any_of: &[&str]) -> bool {
        match self {
            Caller::Admin => true,
            Caller::App(roles) => {
                any_of.is_empty() || any_of.iter().any(|p| roles.iter().any(|r| r == p))
            }
        }
    }
}
