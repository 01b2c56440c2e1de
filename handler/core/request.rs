//! A sign-up request and the only ways it may change.
//!
//! A request is born when a partner submits the form for an address some policy admits, and
//! moves through a small state machine. Every transition is a method here that checks the
//! current state, so the HTTP handlers, the approval links, the command line and the timer
//! cannot disagree about what is allowed; storage then makes each transition a
//! compare-and-swap, so the first writer wins and a replay changes nothing.
//!
//! ```text
//! submitted --(admitted)--> pending_verification     (not admitted: counted as demand, discarded)
//! pending_verification --verify--> pending_approval --approve--> approved --invite--> invited
//!        |                     \--(auto)-----------------------------^        \--fail--> invite_failed --retry--> ...
//!        |                      \--(deny / no policy)--> denied                               \--give up--> failed
//!        \--(too old)--> expired      pending_approval --deny--> denied, --(window over)--> expired
//! ```

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::email::{same_person, EmailAddress};
use super::policy::{Language, PolicyAction};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Recorded as the partner submitted it; the policy has not looked at it yet. Every valid
    /// submission starts here, whatever the policy will say, so the answer to the form does
    /// the same work for all of them (see `functions::signup`).
    Submitted,
    PendingVerification,
    PendingApproval,
    /// Decided yes (by policy or approver); the invitation is being set up.
    Approved,
    /// Invited, granted, and mailed: done.
    Invited,
    /// Setting up access failed in a way worth retrying; the timer will.
    InviteFailed,
    Denied,
    Expired,
    /// Retries are exhausted or the failure is permanent; an operator must look.
    Failed,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 9] = [
        RequestStatus::Submitted,
        RequestStatus::PendingVerification,
        RequestStatus::PendingApproval,
        RequestStatus::Approved,
        RequestStatus::Invited,
        RequestStatus::InviteFailed,
        RequestStatus::Denied,
        RequestStatus::Expired,
        RequestStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Submitted => "submitted",
            RequestStatus::PendingVerification => "pending_verification",
            RequestStatus::PendingApproval => "pending_approval",
            RequestStatus::Approved => "approved",
            RequestStatus::Invited => "invited",
            RequestStatus::InviteFailed => "invite_failed",
            RequestStatus::Denied => "denied",
            RequestStatus::Expired => "expired",
            RequestStatus::Failed => "failed",
        }
    }

    /// Closed requests never change again (but for purging personal data).
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            RequestStatus::Invited
                | RequestStatus::Denied
                | RequestStatus::Expired
                | RequestStatus::Failed
        )
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RequestStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RequestStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?} (one of {})",
                    RequestStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

/// What the partner typed, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applicant {
    pub email: EmailAddress,
    pub first_name: String,
    pub last_name: String,
    pub organisation: String,
    pub justification: Option<String>,
    pub language: Language,
}

impl Applicant {
    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// The sign-in that proved who the requester is (instead of the mailed link), as the
/// requester's own tenant vouched for them in its ID token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInProof {
    pub tenant_id: uuid::Uuid,
    pub object_id: uuid::Uuid,
    /// The name in the person's directory.
    pub name: String,
    /// The address the tenant verified (the same identity as the request's address).
    pub address: EmailAddress,
    /// Whether the sign-in used a second factor.
    pub mfa: bool,
    pub at: OffsetDateTime,
}

/// An approver's (or the policy's) decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub approve: bool,
    /// `policy` for automatic decisions, `timer` for expiry, otherwise the approver's address.
    pub by: String,
    pub at: OffsetDateTime,
    pub reason: Option<String>,
    /// Whether the requester may see the reason.
    pub share_reason: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignupRequest {
    pub id: String,
    pub status: RequestStatus,
    pub applicant: Applicant,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub verified_at: Option<OffsetDateTime>,
    /// The policy that admitted the address at verification time (its key), and its action.
    pub policy_key: Option<String>,
    pub action: Option<PolicyAction>,
    /// Approval stage: 1 or 2 (0 before approval).
    pub stage: u8,
    /// When the current stage began (the mailbox proof for stage 1, the stage-1 approval for
    /// stage 2): reminders and escalation count from here, so a second stage gets its own time.
    pub stage_started_at: Option<OffsetDateTime>,
    pub stage_one_approved_by: Option<String>,
    pub decision: Option<Decision>,
    pub reminders_sent: u32,
    pub escalated: bool,
    /// Invitation progress, step by step, so a retry resumes instead of repeating.
    pub invited_user_id: Option<String>,
    pub redeem_url: Option<String>,
    pub grants_done: bool,
    pub invitation_mailed: bool,
    pub outcome_mailed: bool,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Grants Graph refused for good (e.g. a group that refuses guests): reported, not retried.
    pub grant_problems: Vec<String>,
    /// Set when the requester proved who they are by signing in.
    pub signed_in: Option<SignInProof>,
    /// The job title the partner typed, where the form asks for one (`PORTAL_ASK_JOB_TITLE`):
    /// it goes into the guest's directory profile with the name and organisation.
    pub job_title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionError {
    /// The request is not in a state that allows this; carries the current status.
    WrongState(RequestStatus),
    /// An approver may not decide their own request.
    SelfApproval,
    /// The second stage must be someone other than whoever approved the first.
    SamePersonTwice,
}

impl std::fmt::Display for TransitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransitionError::WrongState(s) => write!(f, "the request is {s}"),
            TransitionError::SelfApproval => {
                f.write_str("an approver cannot decide their own request")
            }
            TransitionError::SamePersonTwice => {
                f.write_str("the second stage needs a different person from the first")
            }
        }
    }
}

/// How often the timer retries setting up access before giving up.
pub const MAX_ATTEMPTS: u32 = 8;

/// Where a verified request goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterVerification {
    Invite,
    AskApprovers,
    Deny,
}

impl SignupRequest {
    pub fn new(id: String, applicant: Applicant, now: OffsetDateTime) -> Self {
        SignupRequest {
            id,
            status: RequestStatus::PendingVerification,
            applicant,
            created_at: now,
            updated_at: now,
            verified_at: None,
            policy_key: None,
            action: None,
            stage: 0,
            stage_started_at: None,
            stage_one_approved_by: None,
            decision: None,
            reminders_sent: 0,
            escalated: false,
            invited_user_id: None,
            redeem_url: None,
            grants_done: false,
            invitation_mailed: false,
            outcome_mailed: false,
            attempts: 0,
            last_error: None,
            next_attempt_at: None,
            grant_problems: Vec::new(),
            signed_in: None,
            job_title: None,
        }
    }

    /// A submission as recorded before any policy has looked at it.
    pub fn submitted(id: String, applicant: Applicant, now: OffsetDateTime) -> Self {
        SignupRequest {
            status: RequestStatus::Submitted,
            ..SignupRequest::new(id, applicant, now)
        }
    }

    /// A policy admits the submission: the partner is sent a link to prove the mailbox.
    pub fn await_verification(&mut self, now: OffsetDateTime) -> Result<(), TransitionError> {
        if self.status != RequestStatus::Submitted {
            return Err(TransitionError::WrongState(self.status));
        }
        self.status = RequestStatus::PendingVerification;
        self.updated_at = now;
        Ok(())
    }

    /// The partner proved the mailbox. `policy` is what admits the address now (policies may
    /// have changed since the form was sent): `None` means no policy admits it any more.
    pub fn verify(
        &mut self,
        policy: Option<(&str, PolicyAction)>,
        now: OffsetDateTime,
    ) -> Result<AfterVerification, TransitionError> {
        if self.status != RequestStatus::PendingVerification {
            return Err(TransitionError::WrongState(self.status));
        }
        self.verified_at = Some(now);
        self.updated_at = now;
        let next = match policy {
            Some((key, action)) => {
                self.policy_key = Some(key.to_string());
                self.action = Some(action);
                match action {
                    PolicyAction::Auto => AfterVerification::Invite,
                    PolicyAction::Approve => AfterVerification::AskApprovers,
                    PolicyAction::Deny => AfterVerification::Deny,
                }
            }
            None => AfterVerification::Deny,
        };
        match next {
            AfterVerification::Invite => {
                self.status = RequestStatus::Approved;
                self.decision = Some(Decision {
                    approve: true,
                    by: "policy".into(),
                    at: now,
                    reason: None,
                    share_reason: false,
                });
            }
            AfterVerification::AskApprovers => {
                self.status = RequestStatus::PendingApproval;
                self.stage = 1;
                self.stage_started_at = Some(now);
            }
            AfterVerification::Deny => {
                self.status = RequestStatus::Denied;
                self.decision = Some(Decision {
                    approve: false,
                    by: "policy".into(),
                    at: now,
                    reason: None,
                    share_reason: false,
                });
            }
        }
        Ok(next)
    }

    /// An operator vouches for the address (bulk invitation from a file): the mailbox proof and
    /// the approval are the operator's, recorded as such.
    pub fn approve_by_operator(
        &mut self,
        policy_key: &str,
        operator: &str,
        now: OffsetDateTime,
    ) -> Result<(), TransitionError> {
        if self.status != RequestStatus::PendingVerification {
            return Err(TransitionError::WrongState(self.status));
        }
        self.verified_at = Some(now);
        self.updated_at = now;
        self.policy_key = Some(policy_key.to_string());
        self.action = Some(PolicyAction::Auto);
        self.status = RequestStatus::Approved;
        self.decision = Some(Decision {
            approve: true,
            by: operator.to_string(),
            at: now,
            reason: None,
            share_reason: false,
        });
        Ok(())
    }

    /// An approver decides the current stage. With `two_stages`, a yes at stage 1 moves to
    /// stage 2 (returns `Ok(false)`: not final); any no is final.
    pub fn decide(
        &mut self,
        decision: Decision,
        two_stages: bool,
    ) -> Result<bool, TransitionError> {
        if self.status != RequestStatus::PendingApproval {
            return Err(TransitionError::WrongState(self.status));
        }
        // One person is one mailbox: an alias (`+tag`, other case) is the same person.
        if same_person(&decision.by, self.applicant.email.as_str()) {
            return Err(TransitionError::SelfApproval);
        }
        if self.stage == 2
            && self
                .stage_one_approved_by
                .as_deref()
                .is_some_and(|first| same_person(first, &decision.by))
        {
            return Err(TransitionError::SamePersonTwice);
        }
        self.updated_at = decision.at;
        if decision.approve && two_stages && self.stage == 1 {
            self.stage = 2;
            self.stage_started_at = Some(decision.at);
            self.stage_one_approved_by = Some(decision.by);
            self.reminders_sent = 0;
            self.escalated = false;
            return Ok(false);
        }
        self.status = if decision.approve {
            RequestStatus::Approved
        } else {
            RequestStatus::Denied
        };
        self.decision = Some(decision);
        Ok(true)
    }

    /// The timer closes a request nobody finished in time.
    pub fn expire(&mut self, now: OffsetDateTime) -> Result<(), TransitionError> {
        if !matches!(
            self.status,
            RequestStatus::PendingVerification | RequestStatus::PendingApproval
        ) {
            return Err(TransitionError::WrongState(self.status));
        }
        self.status = RequestStatus::Expired;
        self.updated_at = now;
        if self.verified_at.is_some() {
            self.decision = Some(Decision {
                approve: false,
                by: "timer".into(),
                at: now,
                reason: None,
                share_reason: false,
            });
        }
        Ok(())
    }

    /// Whether setting up access is due (now or on the timer's next pass).
    pub fn needs_setup(&self) -> bool {
        matches!(
            self.status,
            RequestStatus::Approved | RequestStatus::InviteFailed
        )
    }

    /// Setting up access failed. Retryable failures wait with exponential backoff
    /// (1, 2, 4 ... minutes, capped at 6 h) until [`MAX_ATTEMPTS`]; the rest end in `failed`.
    pub fn setup_failed(&mut self, error: String, retryable: bool, now: OffsetDateTime) {
        self.attempts += 1;
        self.last_error = Some(error);
        self.updated_at = now;
        if retryable && self.attempts < MAX_ATTEMPTS {
            self.status = RequestStatus::InviteFailed;
            let minutes = (1i64 << (self.attempts - 1).min(9)).min(360);
            self.next_attempt_at = Some(now + Duration::minutes(minutes));
        } else {
            self.status = RequestStatus::Failed;
            self.next_attempt_at = None;
        }
    }

    /// Whether the timer should retry now.
    pub fn retry_due(&self, now: OffsetDateTime) -> bool {
        match self.status {
            RequestStatus::InviteFailed => self.next_attempt_at.is_none_or(|t| t <= now),
            // Approved but never finished (the instance died mid-way): pick it up after a
            // grace period, so the timer does not race the form that is still working on it.
            RequestStatus::Approved => now - self.updated_at >= Duration::minutes(2),
            _ => false,
        }
    }

    pub fn setup_complete(&mut self, now: OffsetDateTime) {
        self.status = RequestStatus::Invited;
        self.updated_at = now;
        self.last_error = None;
        self.next_attempt_at = None;
    }

    /// Personal data is removed from closed requests after the retention period; the ids and
    /// statuses stay for the audit trail.
    pub fn is_purgeable(&self, now: OffsetDateTime, retention: Duration) -> bool {
        self.status.is_closed() && now - self.updated_at >= retention
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn request() -> SignupRequest {
        let applicant = Applicant {
            email: EmailAddress::parse("ada@partner.example").unwrap(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            organisation: "Partner".into(),
            justification: None,
            language: Language::En,
        };
        SignupRequest::new("r1".into(), applicant, datetime!(2026-11-01 10:00 UTC))
    }

    fn decision(approve: bool, by: &str) -> Decision {
        Decision {
            approve,
            by: by.into(),
            at: datetime!(2026-11-02 10:00 UTC),
            reason: None,
            share_reason: false,
        }
    }

    #[test]
    fn verification_routes_by_policy_action() {
        let now = datetime!(2026-11-01 11:00 UTC);
        for (policy, status, next) in [
            (
                Some(("p", PolicyAction::Auto)),
                RequestStatus::Approved,
                AfterVerification::Invite,
            ),
            (
                Some(("p", PolicyAction::Approve)),
                RequestStatus::PendingApproval,
                AfterVerification::AskApprovers,
            ),
            (
                Some(("p", PolicyAction::Deny)),
                RequestStatus::Denied,
                AfterVerification::Deny,
            ),
            (None, RequestStatus::Denied, AfterVerification::Deny),
        ] {
            let mut r = request();
            assert_eq!(r.verify(policy, now).unwrap(), next);
            assert_eq!(r.status, status);
            assert_eq!(r.verified_at, Some(now));
        }
    }

    #[test]
    fn a_link_used_twice_changes_nothing_the_second_time() {
        let mut r = request();
        r.verify(
            Some(("p", PolicyAction::Auto)),
            datetime!(2026-11-01 11:00 UTC),
        )
        .unwrap();
        let before = r.clone();
        assert_eq!(
            r.verify(
                Some(("p", PolicyAction::Deny)),
                datetime!(2026-11-01 12:00 UTC)
            ),
            Err(TransitionError::WrongState(RequestStatus::Approved))
        );
        assert_eq!(r, before);
    }

    #[test]
    fn first_decision_wins_and_requesters_cannot_approve_themselves() {
        let mut r = request();
        r.verify(
            Some(("p", PolicyAction::Approve)),
            datetime!(2026-11-01 11:00 UTC),
        )
        .unwrap();
        assert_eq!(
            r.decide(decision(true, "ada@partner.example"), false),
            Err(TransitionError::SelfApproval)
        );
        assert_eq!(
            r.decide(decision(false, "boss@corp.example"), false),
            Ok(true)
        );
        assert_eq!(r.status, RequestStatus::Denied);
        assert_eq!(
            r.decide(decision(true, "other@corp.example"), false),
            Err(TransitionError::WrongState(RequestStatus::Denied))
        );
        assert_eq!(r.decision.as_ref().unwrap().by, "boss@corp.example");
    }

    #[test]
    fn two_stages_need_two_yeses_and_any_no_ends_it() {
        let mut r = request();
        r.verify(
            Some(("p", PolicyAction::Approve)),
            datetime!(2026-11-01 11:00 UTC),
        )
        .unwrap();
        assert_eq!(
            r.decide(decision(true, "sponsor@corp.example"), true),
            Ok(false)
        );
        assert_eq!((r.status, r.stage), (RequestStatus::PendingApproval, 2));
        assert_eq!(
            r.decide(decision(true, "security@corp.example"), true),
            Ok(true)
        );
        assert_eq!(r.status, RequestStatus::Approved);

        let mut r = request();
        r.verify(
            Some(("p", PolicyAction::Approve)),
            datetime!(2026-11-01 11:00 UTC),
        )
        .unwrap();
        assert_eq!(
            r.decide(decision(false, "sponsor@corp.example"), true),
            Ok(true)
        );
        assert_eq!(r.status, RequestStatus::Denied);
    }

    #[test]
    fn aliases_are_the_same_person_for_self_approval_and_for_both_stages() {
        let mut r = request();
        r.verify(
            Some(("p", PolicyAction::Approve)),
            datetime!(2026-11-01 11:00 UTC),
        )
        .unwrap();
        assert_eq!(r.stage_started_at, Some(datetime!(2026-11-01 11:00 UTC)));
        assert_eq!(
            r.decide(decision(true, "Ada+boss@partner.example"), true),
            Err(TransitionError::SelfApproval)
        );
        assert_eq!(
            r.decide(decision(true, "sponsor@corp.example"), true),
            Ok(false)
        );
        assert_eq!(r.stage_started_at, Some(datetime!(2026-11-02 10:00 UTC)));
        let before = r.clone();
        for same in ["sponsor@corp.example", "Sponsor+2@corp.example"] {
            assert_eq!(
                r.decide(decision(true, same), true),
                Err(TransitionError::SamePersonTwice)
            );
            assert_eq!(
                r.decide(decision(false, same), true),
                Err(TransitionError::SamePersonTwice),
                "nor deny in the second stage"
            );
        }
        assert_eq!(r, before);
        assert_eq!(
            r.decide(decision(true, "ciso@corp.example"), true),
            Ok(true)
        );
    }

    #[test]
    fn failures_back_off_then_give_up() {
        let mut r = request();
        r.verify(
            Some(("p", PolicyAction::Auto)),
            datetime!(2026-11-01 11:00 UTC),
        )
        .unwrap();
        let now = datetime!(2026-11-01 11:00 UTC);
        r.setup_failed("429".into(), true, now);
        assert_eq!(r.status, RequestStatus::InviteFailed);
        assert_eq!(r.next_attempt_at, Some(now + Duration::minutes(1)));
        assert!(!r.retry_due(now));
        assert!(r.retry_due(now + Duration::minutes(1)));
        r.setup_failed("429".into(), true, now);
        assert_eq!(r.next_attempt_at, Some(now + Duration::minutes(2)));
        for _ in 2..MAX_ATTEMPTS {
            r.setup_failed("503".into(), true, now);
        }
        assert_eq!(r.status, RequestStatus::Failed);
        assert_eq!(r.attempts, MAX_ATTEMPTS);

        let mut r = request();
        r.verify(Some(("p", PolicyAction::Auto)), now).unwrap();
        r.setup_failed("403 guest invitations are restricted".into(), false, now);
        assert_eq!(r.status, RequestStatus::Failed);
    }

    #[test]
    fn only_open_requests_expire() {
        let mut r = request();
        r.expire(datetime!(2026-11-03 10:00 UTC)).unwrap();
        assert_eq!(r.status, RequestStatus::Expired);
        assert!(r.expire(datetime!(2026-11-04 10:00 UTC)).is_err());
        assert!(r.is_purgeable(datetime!(2027-03-01 10:00 UTC), Duration::days(90)));
        assert!(!r.is_purgeable(datetime!(2026-11-05 10:00 UTC), Duration::days(90)));
    }

    #[test]
    fn a_submission_waits_for_verification_only_once() {
        let now = datetime!(2026-11-01 10:00 UTC);
        let mut r = SignupRequest::submitted("r1".into(), request().applicant, now);
        assert_eq!(r.status, RequestStatus::Submitted);
        assert!(!r.status.is_closed());
        assert_eq!(
            r.verify(Some(("p", PolicyAction::Auto)), now),
            Err(TransitionError::WrongState(RequestStatus::Submitted)),
            "nobody has a link yet"
        );
        r.await_verification(now).unwrap();
        assert_eq!(r.status, RequestStatus::PendingVerification);
        assert!(r.await_verification(now).is_err());
    }

    #[test]
    fn statuses_round_trip_as_text() {
        for s in RequestStatus::ALL {
            assert_eq!(s.as_str().parse::<RequestStatus>().unwrap(), s);
        }
        assert!("approved_maybe".parse::<RequestStatus>().is_err());
    }
}
