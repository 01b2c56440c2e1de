//! Which Microsoft Graph application permissions the portal needs, from what it is set up to do.
//!
//! The portal asks for no more than its features use (see docs/deploy.md): inviting and reading
//! and removing guests always; adding guests to groups when a policy names groups (and reading a
//! group's members for the cleanup's exclusion group); assigning app roles when a policy names
//! them; sign-in activity when the cleanup's inactivity rule is on. Each need can be met by the
//! least privileged permission Microsoft documents for the calls or by a broader one, so a need
//! is a list of permissions any one of which satisfies it.

/// What the portal is set up to do, as far as Graph permissions are concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Some policy adds guests to groups.
    pub policy_groups: bool,
    /// Some policy assigns app roles.
    pub policy_app_roles: bool,
    /// `CLEANUP_EXCLUSION_GROUP_ID` is set: the cleanup reads that group's members.
    pub exclusion_group: bool,
    /// The cleanup's inactivity rule is on (`CLEANUP_INACTIVE_DAYS` > 0 with
    /// `GRAPH_SIGN_IN_ACTIVITY`).
    pub inactivity_rule: bool,
}

/// One thing the portal needs Graph to allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionNeed {
    /// The permission to grant: the least privileged one that serves the need.
    pub permission: &'static str,
    /// Permissions that satisfy the need as well (the first is `permission`).
    pub satisfied_by: &'static [&'static str],
    /// What it is for, in the admin's words.
    pub purpose: &'static str,
    /// Whether the portal's current setup uses it (a missing permission then blocks), or would
    /// as soon as a policy or setting asks for the feature.
    pub in_use: bool,
}

impl PermissionNeed {
    pub fn is_met_by(&self, granted: &[String]) -> bool {
        self.satisfied_by
            .iter()
            .any(|p| granted.iter().any(|g| g == p))
    }
}

const INVITE: &[&str] = &[
    "User.Invite.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const USERS: &[&str] = &["User.ReadWrite.All", "Directory.ReadWrite.All"];
const ADD_MEMBERS: &[&str] = &[
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const READ_MEMBERS: &[&str] = &[
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const ASSIGN_APP_ROLES: &[&str] = &["AppRoleAssignment.ReadWrite.All"];
const READ_APPLICATIONS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const SIGN_IN_ACTIVITY: &[&str] = &["AuditLog.Read.All"];

/// The permissions this setup needs, in the order an admin grants them.
pub fn needed(features: Features) -> Vec<PermissionNeed> {
    let groups_in_use = features.policy_groups;
    let mut needs = vec![
        PermissionNeed {
            permission: "User.Invite.All",
            satisfied_by: INVITE,
            purpose: "invite partners (POST /invitations)",
            in_use: true,
        },
        PermissionNeed {
            permission: "User.ReadWrite.All",
            satisfied_by: USERS,
            purpose: "read guests, approvers and sponsors; set a new guest's profile and sponsors, restore and re-enable a returning one; disable and delete guests in the cleanup",
            in_use: true,
        },
        PermissionNeed {
            permission: "GroupMember.ReadWrite.All",
            satisfied_by: ADD_MEMBERS,
            purpose: "add guests to the groups policies name",
            in_use: groups_in_use,
        },
    ];
    if features.exclusion_group && !groups_in_use {
        needs.push(PermissionNeed {
            permission: "GroupMember.Read.All",
            satisfied_by: READ_MEMBERS,
            purpose: "read the members of the cleanup's exclusion group",
            in_use: true,
        });
    }
    needs.push(PermissionNeed {
        permission: "AppRoleAssignment.ReadWrite.All",
        satisfied_by: ASSIGN_APP_ROLES,
        purpose: "assign the app roles policies name",
        in_use: features.policy_app_roles,
    });
    needs.push(PermissionNeed {
        permission: "Application.Read.All",
        satisfied_by: READ_APPLICATIONS,
        purpose: "read the applications whose app roles policies name",
        in_use: features.policy_app_roles,
    });
    if features.inactivity_rule {
        needs.push(PermissionNeed {
            permission: "AuditLog.Read.All",
            satisfied_by: SIGN_IN_ACTIVITY,
            purpose: "read guests' sign-in activity for the cleanup's inactivity rule",
            in_use: true,
        });
    }
    needs
}

/// Granted permissions that let the identity do far more than the portal needs. Above all
/// AppRoleAssignment.ReadWrite.All: with it an app can grant itself any application permission,
/// so it is worth holding only while policies assign app roles.
pub fn excessive(features: Features, granted: &[String]) -> Vec<(&'static str, &'static str)> {
    const BROAD: &[(&str, &str)] = &[
        (
            "Directory.ReadWrite.All",
            "lets the identity change almost anything in the directory",
        ),
        (
            "Application.ReadWrite.All",
            "lets the identity change every application, its own credentials included",
        ),
    ];
    let mut found: Vec<(&'static str, &'static str)> = BROAD
        .iter()
        .copied()
        .filter(|(p, _)| granted.iter().any(|g| g == p))
        .collect();
    if !features.policy_app_roles
        && granted
            .iter()
            .any(|g| g == "AppRoleAssignment.ReadWrite.All")
    {
        found.push((
            "AppRoleAssignment.ReadWrite.All",
            "lets the identity grant itself any permission, and no policy assigns app roles",
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn in_use(features: Features) -> Vec<&'static str> {
        needed(features)
            .into_iter()
            .filter(|n| n.in_use)
            .map(|n| n.permission)
            .collect()
    }

    #[test]
    fn the_base_setup_needs_inviting_and_users() {
        assert_eq!(
            in_use(Features::default()),
            ["User.Invite.All", "User.ReadWrite.All"]
        );
    }

    #[test]
    fn each_feature_adds_its_permissions() {
        let all = Features {
            policy_groups: true,
            policy_app_roles: true,
            exclusion_group: true,
            inactivity_rule: true,
        };
        assert_eq!(
            in_use(all),
            [
                "User.Invite.All",
                "User.ReadWrite.All",
                "GroupMember.ReadWrite.All",
                "AppRoleAssignment.ReadWrite.All",
                "Application.Read.All",
                "AuditLog.Read.All"
            ]
        );
        // The exclusion group alone needs only to read members.
        let exclusion = Features {
            exclusion_group: true,
            ..Features::default()
        };
        assert!(in_use(exclusion).contains(&"GroupMember.Read.All"));
        assert!(!in_use(exclusion).contains(&"GroupMember.ReadWrite.All"));
    }

    #[test]
    fn a_broader_permission_meets_a_need() {
        let invite = &needed(Features::default())[0];
        assert!(invite.is_met_by(&granted(&["User.ReadWrite.All"])));
        assert!(!invite.is_met_by(&granted(&["User.Read.All", "Group.ReadWrite.All"])));
    }

    #[test]
    fn self_granting_power_is_called_out_unless_app_roles_are_in_use() {
        let held = granted(&["User.Invite.All", "AppRoleAssignment.ReadWrite.All"]);
        let found = excessive(Features::default(), &held);
        assert_eq!(found.len(), 1);
        assert!(found[0].1.contains("grant itself any permission"));
        let with_roles = Features {
            policy_app_roles: true,
            ..Features::default()
        };
        assert!(excessive(with_roles, &held).is_empty());
        assert_eq!(
            excessive(with_roles, &granted(&["Directory.ReadWrite.All"]))[0].0,
            "Directory.ReadWrite.All"
        );
    }
}
