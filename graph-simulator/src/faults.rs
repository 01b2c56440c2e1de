//! Fault injection: which calls a fault applies to and what it does to them.

use std::time::Duration;

use crate::types::{Fault, FaultRoute};

/// The kind of a call, for counting and for matching faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Token,
    Invitations,
    ListUsers,
    GetUser,
    PatchUser,
    DeleteUser,
    AddMember,
    AppRole,
    Batch,
    Other,
}

impl Kind {
    pub fn matches(self, route: FaultRoute) -> bool {
        match route {
            FaultRoute::Any => self != Kind::Token,
            FaultRoute::Token => self == Kind::Token,
            FaultRoute::Invitations => self == Kind::Invitations,
            FaultRoute::AddMember => self == Kind::AddMember,
            FaultRoute::AppRoleAssignment => self == Kind::AppRole,
            FaultRoute::ListUsers => self == Kind::ListUsers,
            FaultRoute::GetUser => self == Kind::GetUser,
            FaultRoute::PatchUser => self == Kind::PatchUser,
            FaultRoute::DeleteUser => self == Kind::DeleteUser,
            FaultRoute::Batch => self == Kind::Batch,
        }
    }
}

/// What one triggered fault does to the call it hit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FaultAction {
    pub delay: Option<Duration>,
    pub outcome: FaultOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FaultOutcome {
    /// Go on and answer normally (a slow-but-fine call).
    Proceed,
    Drop,
    Fail {
        status: u16,
        retry_after: Option<u32>,
        message: Option<String>,
    },
}

impl From<&Fault> for FaultAction {
    fn from(f: &Fault) -> Self {
        let outcome = if f.drop_connection {
            FaultOutcome::Drop
        } else if f.status == 0 || (200..300).contains(&f.status) {
            FaultOutcome::Proceed
        } else {
            FaultOutcome::Fail {
                status: f.status,
                retry_after: f.retry_after,
                message: f.message.clone(),
            }
        };
        FaultAction {
            delay: f.delay,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_spares_tokens() {
        assert!(Kind::Batch.matches(FaultRoute::Any));
        assert!(!Kind::Token.matches(FaultRoute::Any));
        assert!(Kind::Token.matches(FaultRoute::Token));
        assert!(!Kind::GetUser.matches(FaultRoute::ListUsers));
    }

    #[test]
    fn success_status_with_delay_only_slows_down() {
        let a = FaultAction::from(&Fault::slow(FaultRoute::GetUser, Duration::from_millis(5)));
        assert_eq!(a.outcome, FaultOutcome::Proceed);
        assert_eq!(a.delay, Some(Duration::from_millis(5)));
    }
}
