//! The cleanup's rules: what to do next with one guest, decided from facts alone.
//!
//! The timer removes people from a company's directory, so the decision is kept apart from
//! everything that could make it go wrong in a hard-to-see way (paging, throttling, storage
//! races, a wrong clock): [`decide`] takes what the directory says about a user, what the
//! portal recorded about it, the rules and "now", and answers with exactly one [`Action`].
//! Everything around it (listing, checkpointing, the caps, dry runs, the audit) lives in
//! `functions::cleanup`; this module has no I/O and is tested case by case below.
//!
//! The lifecycle of a guest, each step at most one per run:
//!
//! ```text
//!  active ──(PendingAcceptance for UNREDEEMED_REMINDER_DAYS)──> reminder mail ──> warned(unredeemed)
//!  active ──(access period over, or inactive INACTIVE_DAYS)───> warning mail  ──> warned(reason)
//!  active ──(a review ended the access: core::review)────────> warning mail  ──> warned(review)
//!  warned(unredeemed) ──(UNREDEEMED_REMOVE_DAYS after the reminder)──> disabled
//!  warned(review)     ──(once the warning has reached the guest)──────> disabled
//!  warned(other)      ──(WARNING_DAYS after the warning)─────────────> disabled
//!  disabled ──(GRACE_DAYS)──> soft-deleted (restorable for 30 days)
//! ```
//!
//! A person is never removed without having been told first (the reminder is the warning of
//! an unredeemed invitation), never deleted without having been disabled first, and a guest
//! whose reason went away (redeemed, signed in again, access extended, an admin re-enabled or
//! restored the account) goes back to active instead of on towards removal.

use time::{Duration, OffsetDateTime};

/// How long each step waits, in days (the `CLEANUP_*_DAYS` settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// An invitation still `PendingAcceptance` this long after it was sent gets one reminder.
    pub unredeemed_reminder_days: u32,
    /// ... and the guest is disabled this long after the reminder.
    pub unredeemed_remove_days: u32,
    /// No sign-in for this long gets a warning; 0 turns the rule off (it needs Entra ID P1
    /// and AuditLog.Read.All, which not every tenant has).
    pub inactive_days: u32,
    /// A warned guest is disabled this long after the warning.
    pub warning_days: u32,
    /// A disabled guest is soft-deleted this long after being disabled.
    pub grace_days: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            unredeemed_reminder_days: 14,
            unredeemed_remove_days: 14,
            inactive_days: 0,
            warning_days: 7,
            grace_days: 14,
        }
    }
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

/// Which guests the cleanup may touch at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only guests this portal created (its Guests table): the default, so a portal installed
    /// into a tenant with years of guests does not start removing people it never invited.
    Portal,
    /// Every guest of the tenant, on purpose (`CLEANUP_SCOPE=all_guests`).
    AllGuests,
}

/// `externalUserState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redemption {
    Pending,
    Accepted,
    /// Null: guests created before Entra tracked redemption, or a value we do not know.
    Unknown,
}

impl Redemption {
    pub fn from_graph(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case("PendingAcceptance") => Redemption::Pending,
            Some(v) if v.eq_ignore_ascii_case("Accepted") => Redemption::Accepted,
            _ => Redemption::Unknown,
        }
    }
}

/// The most recent sign-in, as far as this run knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// `signInActivity` was not read this run (no P1 licence or permission, or turned off):
    /// the inactivity rule cannot be applied, in either direction.
    NotRead,
    /// Read, and there is no sign-in on record.
    Never,
    At(OffsetDateTime),
}

impl Activity {
    /// The most recent of some of `signInActivity`'s timestamps. Each may be null or the
    /// `0001-01-01T00:00:00Z` sentinel, both "never"; pass them through [`graph_time`].
    pub fn most_recent(timestamps: &[Option<OffsetDateTime>]) -> Activity {
        timestamps
            .iter()
            .flatten()
            .max()
            .map_or(Activity::Never, |t| Activity::At(*t))
    }

    /// A user's activity from a `signInActivity` Graph returned. `successful` is
    /// `lastSuccessfulSignInDateTime`: `Some(value)` when Graph provides the property (the
    /// value null or the sentinel: no successful sign-in on record), `None` when it does not.
    /// `attempts` are `lastSignInDateTime` and `lastNonInteractiveSignInDateTime`, which count
    /// failed sign-ins too: someone spraying passwords at a stale guest would keep it alive.
    /// They are used only where Graph gives no successful sign-in at all, and then they can
    /// only keep a guest longer, never remove one sooner.
    pub fn judged(
        successful: Option<Option<OffsetDateTime>>,
        attempts: &[Option<OffsetDateTime>],
    ) -> Activity {
        match successful {
            Some(at) => Activity::most_recent(&[at]),
            None => Activity::most_recent(attempts),
        }
    }
}

/// A Graph timestamp. `None` for null, for text that is not RFC 3339, and for the
/// `0001-01-01` sentinel Graph sends for "no value" (a date before the first guest could
/// exist must not make anyone look active, or inactive, since year 1).
pub fn graph_time(raw: Option<&str>) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(raw?, &time::format_description::well_known::Rfc3339).ok()?;
    (t.year() > 1).then_some(t)
}

/// What the directory says about a user, read from one listing page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryFacts {
    /// `userType == "Guest"`. Checked per user even though the listing filters on it: a
    /// member must never be removed because of a filter typo or a service-side change.
    pub is_guest: bool,
    pub account_enabled: bool,
    pub created: Option<OffsetDateTime>,
    pub redemption: Redemption,
    /// `externalUserStateChangeDateTime`: when the invitation was redeemed (if accepted).
    pub redemption_changed: Option<OffsetDateTime>,
    pub activity: Activity,
}

/// Why the cleanup is moving a guest towards removal (stored as the guest's removal reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Unredeemed,
    AccessPeriod,
    Inactive,
    /// An access review ended the access: a sponsor or an admin said so, or nobody answered
    /// and the policy ends access then.
    Review,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unredeemed => "unredeemed",
            Reason::AccessPeriod => "access_period",
            Reason::Inactive => "inactive",
            Reason::Review => "review",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        match s {
            "unredeemed" => Some(Reason::Unredeemed),
            "access_period" => Some(Reason::AccessPeriod),
            "inactive" => Some(Reason::Inactive),
            "review" => Some(Reason::Review),
            _ => None,
        }
    }

    /// For people: logs and the operator's view.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Unredeemed => "invitation not redeemed",
            Reason::AccessPeriod => "access period over",
            Reason::Inactive => "inactive",
            Reason::Review => "access ended by its review",
        }
    }
}

/// Where the portal's record says the guest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Active,
    Warned,
    Disabled,
    Deleted,
}

/// Who made the guest the portal has a record of: the record alone does not make a guest the
/// portal's to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The portal's invitation, which it decided on (approved) at `decided_at`. A directory
    /// user created before that existed already: Graph answered the invitation with it.
    Invited { decided_at: OffsetDateTime },
    /// Recorded as existing before the portal invited it.
    PreExisting,
    /// A record the cleanup made for a guest outside the portal's records while
    /// `CLEANUP_SCOPE=all_guests` was on: it does not make the guest the portal's.
    Cleanup,
}

/// Clocks differ (Graph's `createdDateTime` against the portal's clock): a user counts as
/// older than the portal's decision only by more than this.
pub const CLOCK_SKEW: Duration = Duration::minutes(10);

impl Origin {
    /// Whether the directory user (created at `created`) is one the portal created.
    pub fn created_by_portal(self, created: Option<OffsetDateTime>) -> bool {
        match self {
            Origin::Invited { decided_at } => created.is_none_or(|c| c >= decided_at - CLOCK_SKEW),
            Origin::PreExisting | Origin::Cleanup => false,
        }
    }
}

/// The portal's record of a guest (a row of the Guests table), as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub origin: Origin,
    /// Whether the mail that told the guest of its current stage reached it.
    pub notice: Notice,
    pub stage: Stage,
    /// When the stage last changed. For an active guest it is also the floor of every clock:
    /// a guest that an admin re-enabled or restored is not judged on its past again.
    pub since: OffsetDateTime,
    pub reason: Option<Reason>,
    pub invited_at: OffsetDateTime,
    pub access_ends_at: Option<OffsetDateTime>,
    pub reminder_sent_at: Option<OffsetDateTime>,
    /// When an access review last ended the guest's access, unless a later answer kept it
    /// (see `core::review`).
    pub review_ended: Option<OffsetDateTime>,
}

/// The mail that told a guest of its current stage (a removal warning, a redeem reminder). A
/// guest is told before anything is taken from it, and the time it has to react counts from
/// when the mail server accepted the mail, not from when the portal wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A record from before notices went through the outbox: the mail was sent before the
    /// record moved on, so the stage's own time stands for it.
    Legacy,
    /// Recorded, not delivered yet (the mail server is down, or refused it: see `handler mail
    /// list --failed`). Nothing moves on until it arrives.
    Pending,
    Delivered(OffsetDateTime),
}

impl Tracked {
    /// How an untracked guest is judged when the scope is all guests: active since it was
    /// created, with no access period (only the portal knows one). Without a creation date
    /// its clocks start now, so nothing happens to it on a guess.
    pub fn untracked(created: Option<OffsetDateTime>, now: OffsetDateTime) -> Tracked {
        let since = created.unwrap_or(now);
        Tracked {
            origin: Origin::Cleanup,
            notice: Notice::Legacy,
            stage: Stage::Active,
            since,
            reason: None,
            invited_at: since,
            access_ends_at: None,
            reminder_sent_at: None,
            review_ended: None,
        }
    }
}

/// Why a guest goes back to active: the reason for removing it is gone. Nothing is done in
/// the directory; the record changes and the audit trail says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreWhy {
    /// Warned as unredeemed, and has now redeemed.
    Redeemed,
    /// Warned as inactive, and signed in after the warning.
    SignedInAgain,
    /// Warned because the access period was over, and the period was extended.
    AccessExtended,
    /// Warned as inactive, and the operator turned the inactivity rule off.
    RuleOff,
    /// Disabled by the cleanup, and an admin enabled the account again: the admin decided.
    ReEnabled,
    /// Deleted by the cleanup, and an admin restored it from deleted items.
    Undeleted,
    /// Warned without a recorded reason (a hand-edited row): nothing justifies going on.
    NoReason,
    /// Warned because a review ended the access, and a later answer kept it (an admin).
    ReviewKept,
}

impl RestoreWhy {
    pub fn describe(self) -> &'static str {
        match self {
            RestoreWhy::Redeemed => "redeemed the invitation",
            RestoreWhy::SignedInAgain => "signed in again",
            RestoreWhy::AccessExtended => "access period extended",
            RestoreWhy::RuleOff => "the inactivity rule is off",
            RestoreWhy::ReEnabled => "an admin enabled the account again",
            RestoreWhy::Undeleted => "an admin restored the deleted account",
            RestoreWhy::NoReason => "no removal reason on record",
            RestoreWhy::ReviewKept => "its access review was answered with keep",
        }
    }
}

/// Why a guest the cleanup looked at is left alone although a rule would act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipWhy {
    /// `userType` is not Guest (a member, or a guest converted to member).
    NotGuest,
    /// A member of the exclusion group.
    Excluded,
    /// Not created by this portal, and the scope is the portal's guests.
    OutOfScope,
    /// The portal invited it, but the directory user existed before (an admin invited it
    /// earlier): not the portal's, and to be recorded as such.
    PreExisting,
}

impl SkipWhy {
    pub fn describe(self) -> &'static str {
        match self {
            SkipWhy::NotGuest => "not a guest (userType is not Guest)",
            SkipWhy::Excluded => "member of the exclusion group",
            SkipWhy::OutOfScope => "not created by this portal",
            SkipWhy::PreExisting => {
                "existed before the portal invited it, so it is not the portal's to remove"
            }
        }
    }
}

/// The one thing to do with a guest in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Mail the redeem link once; this is the unredeemed guest's warning.
    RedeemReminder,
    /// Mail a removal warning.
    Warn(Reason),
    /// `accountEnabled=false`.
    Disable(Reason),
    /// Soft delete (restorable for 30 days).
    Delete(Reason),
    /// Back to active, in the portal's record only.
    Restore(RestoreWhy),
    Skip(SkipWhy),
}

impl Action {
    /// Disable and delete: what the per-run cap counts.
    pub fn is_removal(self) -> bool {
        matches!(self, Action::Disable(_) | Action::Delete(_))
    }

    /// A removal warning, or the reminder that is an unredeemed guest's warning: capped too,
    /// since every one of them leads to a removal a few days later.
    pub fn is_warning(self) -> bool {
        matches!(self, Action::Warn(_) | Action::RedeemReminder)
    }

    /// Whether carrying it out reaches a person (a mail) or the directory (a removal): what
    /// is checked against the directory again right before it is done.
    pub fn touches_a_person(self) -> bool {
        self.is_removal() || self.is_warning()
    }
}

/// What changed, if anything, between the plan (`planned`) and what the rules decide on the
/// directory as it is now (`now`): `None` when the plan still holds. For the log and the
/// audit trail.
pub fn what_changed(planned: Action, now: Action) -> Option<&'static str> {
    if planned == now {
        return None;
    }
    Some(match now {
        Action::Skip(SkipWhy::NotGuest) => "it is no longer a guest (userType is not Guest)",
        Action::Skip(SkipWhy::Excluded) => "it is now a member of the exclusion group",
        Action::Skip(SkipWhy::OutOfScope) => "it is no longer in the cleanup's scope",
        Action::Skip(SkipWhy::PreExisting) => "it existed before the portal invited it",
        Action::Restore(why) => why.describe(),
        Action::Nothing => "it is no longer due",
        _ => "it is now due for another step",
    })
}

/// One user as the cleanup sees it in a run.
#[derive(Clone, Copy, Debug)]
pub struct Case<'a> {
    pub user: &'a DirectoryFacts,
    /// The portal's record; `None` for a guest the portal did not create.
    pub tracked: Option<&'a Tracked>,
    /// A member of the exclusion group.
    pub excluded: bool,
}

/// Decides the next step for one user.
pub fn decide(case: Case<'_>, scope: Scope, rules: &Rules, now: OffsetDateTime) -> Action {
    if !case.user.is_guest {
        return Action::Skip(SkipWhy::NotGuest);
    }
    let untracked;
    let tracked = match (case.tracked, scope) {
        // In the portal's scope, a record is not enough: the guest must be the portal's own.
        (Some(t), Scope::Portal) => match t.origin {
            Origin::Invited { .. } if !t.origin.created_by_portal(case.user.created) => {
                return Action::Skip(SkipWhy::PreExisting)
            }
            Origin::Invited { .. } => t,
            Origin::PreExisting | Origin::Cleanup => return Action::Skip(SkipWhy::OutOfScope),
        },
        (Some(t), Scope::AllGuests) => t,
        (None, Scope::Portal) => return Action::Skip(SkipWhy::OutOfScope),
        (None, Scope::AllGuests) => {
            untracked = Tracked::untracked(case.user.created, now);
            &untracked
        }
    };
    let action = lifecycle(case.user, tracked, rules, now);
    // The exclusion group overrides every rule; it is reported only when a rule would have
    // acted, so the audit trail shows what the exclusion prevented, not every excluded guest.
    if case.excluded && action != Action::Nothing {
        return Action::Skip(SkipWhy::Excluded);
    }
    action
}

fn lifecycle(user: &DirectoryFacts, t: &Tracked, rules: &Rules, now: OffsetDateTime) -> Action {
    match t.stage {
        // Deleted users are not listed; one that is listed again was restored by an admin.
        Stage::Deleted => Action::Restore(RestoreWhy::Undeleted),
        Stage::Disabled if user.account_enabled => Action::Restore(RestoreWhy::ReEnabled),
        Stage::Disabled => match t.reason {
            Some(reason) if now >= t.since + days(rules.grace_days) => Action::Delete(reason),
            // A disabled row without a reason was not disabled by these rules: leave it.
            _ => Action::Nothing,
        },
        Stage::Warned => warned(user, t, rules, now),
        Stage::Active => active(user, t, rules, now),
    }
}

fn warned(user: &DirectoryFacts, t: &Tracked, rules: &Rules, now: OffsetDateTime) -> Action {
    let Some(reason) = t.reason else {
        return Action::Restore(RestoreWhy::NoReason);
    };
    // The guest's time to react counts from when the notice reached them; until it has,
    // nothing moves on (a restore still can).
    let told = match t.notice {
        Notice::Legacy => None,
        Notice::Pending => Some(None),
        Notice::Delivered(at) => Some(Some(at)),
    };
    let due = match reason {
        // The sponsors (or the policy's default) ended the access: the guest is disabled as
        // soon as the warning has reached them, and only a later "keep" takes it back.
        Reason::Review => {
            if t.review_ended.is_none() {
                return Action::Restore(RestoreWhy::ReviewKept);
            }
            match told {
                None => t.since,
                Some(None) => return Action::Nothing,
                Some(Some(at)) => at,
            }
        }
        Reason::Unredeemed => {
            if user.redemption != Redemption::Pending {
                return Action::Restore(RestoreWhy::Redeemed);
            }
            let from = match told {
                None => t.reminder_sent_at.unwrap_or(t.since),
                Some(None) => return Action::Nothing,
                Some(Some(at)) => at,
            };
            from + days(rules.unredeemed_remove_days)
        }
        Reason::AccessPeriod => {
            if t.access_ends_at.is_none_or(|end| end > now) {
                return Action::Restore(RestoreWhy::AccessExtended);
            }
            let from = match told {
                None => t.since,
                Some(None) => return Action::Nothing,
                Some(Some(at)) => at,
            };
            from + days(rules.warning_days)
        }
        Reason::Inactive => {
            if rules.inactive_days == 0 {
                return Action::Restore(RestoreWhy::RuleOff);
            }
            match user.activity {
                // Without sign-in data this run, neither restore nor go on: wait for a run
                // that can see.
                Activity::NotRead => return Action::Nothing,
                Activity::At(at) if at > t.since => {
                    return Action::Restore(RestoreWhy::SignedInAgain)
                }
                _ => {}
            }
            let from = match told {
                None => t.since,
                Some(None) => return Action::Nothing,
                Some(Some(at)) => at,
            };
            from + days(rules.warning_days)
        }
    };
    if now >= due {
        Action::Disable(reason)
    } else {
        Action::Nothing
    }
}

fn active(user: &DirectoryFacts, t: &Tracked, rules: &Rules, now: OffsetDateTime) -> Action {
    // 0. A review ended the access: people who know the guest said so (or nobody vouched for
    //    it), which weighs more than any clock. One that ended before the current stage began
    //    is past: an admin restored the guest since.
    if t.review_ended.is_some_and(|ended| ended >= t.since) {
        return Action::Warn(Reason::Review);
    }
    // 1. The access period, first: reminding someone to redeem access that is already over
    //    would be a wrong promise. An admin who restored the guest after its period ended
    //    (since > end) has decided to keep it.
    if let Some(end) = t.access_ends_at {
        if end <= now && t.since < end {
            return Action::Warn(Reason::AccessPeriod);
        }
    }
    // 2. An invitation not redeemed: one reminder, then removal (see `warned`). A reminder on
    //    record while active (a legacy row) counts as the warning.
    if user.redemption == Redemption::Pending {
        let start = t.invited_at.max(t.since);
        return match t.reminder_sent_at {
            None if now >= start + days(rules.unredeemed_reminder_days) => Action::RedeemReminder,
            Some(sent) if now >= sent + days(rules.unredeemed_remove_days) => {
                Action::Disable(Reason::Unredeemed)
            }
            _ => Action::Nothing,
        };
    }
    // 3. Inactivity, for guests that redeemed (pending ones are the rule above's). A guest
    //    that never signed in is aged from its redemption, else its creation.
    if rules.inactive_days > 0 {
        let last = match user.activity {
            Activity::NotRead => return Action::Nothing,
            Activity::At(at) => Some(at),
            Activity::Never => user.redemption_changed.or(user.created),
        };
        let start = last.map_or(t.since, |l| l.max(t.since));
        if now >= start + days(rules.inactive_days) {
            return Action::Warn(Reason::Inactive);
        }
    }
    Action::Nothing
}

/// What the per-run cap counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capped {
    /// Disables and deletes.
    Removals,
    /// Warning mails and reminders: each is a removal announced for a few days later, so a
    /// run that would announce too many stops before announcing any.
    Warnings,
}

impl Capped {
    fn noun(self) -> &'static str {
        match self {
            Capped::Removals => "removals",
            Capped::Warnings => "warnings",
        }
    }
}

/// Why a run's plan was refused by the per-run cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapExceeded {
    /// More than `CLEANUP_MAX_REMOVALS`.
    Count {
        what: Capped,
        planned: usize,
        max: u32,
    },
    /// More than `CLEANUP_MAX_REMOVAL_PERCENT` of the guests in scope.
    Share {
        what: Capped,
        planned: usize,
        in_scope: usize,
        percent: u32,
    },
}

/// Removals up to this many are never refused by the share rule alone: in a small tenant one
/// removal is already a large share, and a handful cannot empty a directory.
pub const SHARE_RULE_FLOOR: usize = 5;

/// The per-run cap: a bug or a wrong clock must not empty the directory. Checked on the
/// whole plan before the first removal or warning, for each of the two; a plan over the cap
/// removes and warns no one.
pub fn check_cap(
    what: Capped,
    planned: usize,
    in_scope: usize,
    max_removals: u32,
    max_percent: u32,
) -> Result<(), CapExceeded> {
    if planned > max_removals as usize {
        return Err(CapExceeded::Count {
            what,
            planned,
            max: max_removals,
        });
    }
    if planned > SHARE_RULE_FLOOR && planned * 100 > in_scope * max_percent as usize {
        return Err(CapExceeded::Share {
            what,
            planned,
            in_scope,
            percent: max_percent,
        });
    }
    Ok(())
}

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            CapExceeded::Count { what, planned, max } => write!(
                f,
                "{planned} {} planned, more than CLEANUP_MAX_REMOVALS={max}; if they are expected, set CLEANUP_MAX_REMOVALS to at least {planned} for one run (check the clock and the rules first)",
                what.noun()
            ),
            CapExceeded::Share {
                what,
                planned,
                in_scope,
                percent,
            } => {
                let needed = (planned * 100).div_ceil(in_scope.max(1));
                write!(
                    f,
                    "{planned} {} planned of {in_scope} guests in scope, more than CLEANUP_MAX_REMOVAL_PERCENT={percent}%; if they are expected, set CLEANUP_MAX_REMOVAL_PERCENT to at least {needed} for one run (check the clock and the rules first)",
                    what.noun()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

    fn d(n: i64) -> Duration {
        Duration::days(n)
    }

    fn rules() -> Rules {
        Rules {
            inactive_days: 90,
            ..Rules::default()
        }
    }

    /// A redeemed, enabled guest created 200 days ago that signed in yesterday.
    fn user() -> DirectoryFacts {
        DirectoryFacts {
            is_guest: true,
            account_enabled: true,
            created: Some(NOW - d(200)),
            redemption: Redemption::Accepted,
            redemption_changed: Some(NOW - d(199)),
            activity: Activity::At(NOW - d(1)),
        }
    }

    fn pending() -> DirectoryFacts {
        DirectoryFacts {
            redemption: Redemption::Pending,
            redemption_changed: Some(NOW - d(200)),
            activity: Activity::Never,
            ..user()
        }
    }

    fn tracked(stage: Stage, since: OffsetDateTime, reason: Option<Reason>) -> Tracked {
        Tracked {
            notice: Notice::Legacy,
            origin: Origin::Invited {
                decided_at: NOW - d(200),
            },
            stage,
            since,
            reason,
            invited_at: NOW - d(200),
            access_ends_at: None,
            reminder_sent_at: None,
            review_ended: None,
        }
    }

    fn active() -> Tracked {
        tracked(Stage::Active, NOW - d(200), None)
    }

    fn run(user: &DirectoryFacts, t: &Tracked) -> Action {
        run_with(user, t, &rules())
    }

    fn run_with(user: &DirectoryFacts, t: &Tracked, rules: &Rules) -> Action {
        decide(
            Case {
                user,
                tracked: Some(t),
                excluded: false,
            },
            Scope::Portal,
            rules,
            NOW,
        )
    }

    // --- safeguards ------------------------------------------------------------------------

    #[test]
    fn members_are_never_acted_on_whatever_the_record_says() {
        let member = DirectoryFacts {
            is_guest: false,
            ..user()
        };
        let due = tracked(Stage::Disabled, NOW - d(100), Some(Reason::AccessPeriod));
        assert_eq!(run(&member, &due), Action::Skip(SkipWhy::NotGuest));
        for scope in [Scope::Portal, Scope::AllGuests] {
            let case = Case {
                user: &member,
                tracked: None,
                excluded: false,
            };
            assert_eq!(
                decide(case, scope, &rules(), NOW),
                Action::Skip(SkipWhy::NotGuest)
            );
        }
    }

    #[test]
    fn only_guests_the_portal_created_are_in_its_scope() {
        let due = tracked(Stage::Disabled, NOW - d(100), Some(Reason::AccessPeriod));
        let off = DirectoryFacts {
            account_enabled: false,
            ..user()
        };
        let decide_in = |t: &Tracked, u: &DirectoryFacts, scope| {
            decide(
                Case {
                    user: u,
                    tracked: Some(t),
                    excluded: false,
                },
                scope,
                &rules(),
                NOW,
            )
        };
        // Created when (or after) the portal decided to invite: its own.
        let invited_at = |decided_at| Tracked {
            notice: Notice::Legacy,
            origin: Origin::Invited { decided_at },
            ..due.clone()
        };
        let off_created_at = |created| DirectoryFacts {
            created: Some(created),
            ..off.clone()
        };
        let own = invited_at(NOW - d(200));
        assert_eq!(
            decide_in(&own, &off_created_at(NOW - d(200)), Scope::Portal),
            Action::Delete(Reason::AccessPeriod)
        );
        // A few minutes older is the clocks disagreeing, not another creator.
        assert_eq!(
            decide_in(
                &own,
                &off_created_at(NOW - d(200) - Duration::minutes(9)),
                Scope::Portal
            ),
            Action::Delete(Reason::AccessPeriod)
        );
        // Older than the decision: Graph answered the invitation with an existing user.
        let older = off_created_at(NOW - d(400));
        assert_eq!(
            decide_in(&own, &older, Scope::Portal),
            Action::Skip(SkipWhy::PreExisting)
        );
        assert_eq!(
            decide_in(&own, &older, Scope::AllGuests),
            Action::Delete(Reason::AccessPeriod),
            "all guests, on purpose"
        );
        // Recorded as pre-existing, or made by the cleanup under all_guests: never the
        // portal's, whatever the record says.
        for origin in [Origin::PreExisting, Origin::Cleanup] {
            let t = Tracked {
                notice: Notice::Legacy,
                origin,
                ..due.clone()
            };
            assert_eq!(
                decide_in(&t, &off, Scope::Portal),
                Action::Skip(SkipWhy::OutOfScope),
                "{origin:?}"
            );
            assert_eq!(
                decide_in(&t, &off, Scope::AllGuests),
                Action::Delete(Reason::AccessPeriod),
                "{origin:?}"
            );
        }
        // Without a creation time, the record stands.
        let unknown = DirectoryFacts {
            created: None,
            ..off.clone()
        };
        assert_eq!(
            decide_in(&own, &unknown, Scope::Portal),
            Action::Delete(Reason::AccessPeriod)
        );
    }

    #[test]
    fn what_changed_since_the_plan_is_named() {
        let planned = Action::Delete(Reason::AccessPeriod);
        assert_eq!(what_changed(planned, planned), None);
        assert_eq!(
            what_changed(planned, Action::Restore(RestoreWhy::ReEnabled)),
            Some("an admin enabled the account again")
        );
        assert!(what_changed(planned, Action::Skip(SkipWhy::NotGuest))
            .unwrap()
            .contains("no longer a guest"));
        assert!(what_changed(planned, Action::Skip(SkipWhy::Excluded))
            .unwrap()
            .contains("exclusion group"));
        assert!(
            what_changed(Action::Warn(Reason::Inactive), Action::Nothing)
                .unwrap()
                .contains("no longer due")
        );
    }

    #[test]
    fn untracked_guests_are_out_of_scope_unless_widened() {
        let old_pending = DirectoryFacts {
            created: Some(NOW - d(30)),
            ..pending()
        };
        let case = Case {
            user: &old_pending,
            tracked: None,
            excluded: false,
        };
        assert_eq!(
            decide(case, Scope::Portal, &rules(), NOW),
            Action::Skip(SkipWhy::OutOfScope)
        );
        assert_eq!(
            decide(case, Scope::AllGuests, &rules(), NOW),
            Action::RedeemReminder,
            "aged from creation"
        );
        let young = DirectoryFacts {
            created: Some(NOW - d(3)),
            ..pending()
        };
        let case = Case {
            user: &young,
            tracked: None,
            excluded: false,
        };
        assert_eq!(
            decide(case, Scope::AllGuests, &rules(), NOW),
            Action::Nothing
        );
        // No creation date: nothing is decided on a guess.
        let unknown = DirectoryFacts {
            created: None,
            ..pending()
        };
        let case = Case {
            user: &unknown,
            tracked: None,
            excluded: false,
        };
        assert_eq!(
            decide(case, Scope::AllGuests, &rules(), NOW),
            Action::Nothing
        );
    }

    #[test]
    fn exclusion_overrides_every_rule_and_is_reported_only_when_a_rule_acts() {
        let due = tracked(Stage::Disabled, NOW - d(100), Some(Reason::AccessPeriod));
        let disabled = DirectoryFacts {
            account_enabled: false,
            ..user()
        };
        let excluded = |t: &Tracked, u: &DirectoryFacts| {
            decide(
                Case {
                    user: u,
                    tracked: Some(t),
                    excluded: true,
                },
                Scope::Portal,
                &rules(),
                NOW,
            )
        };
        assert_eq!(excluded(&due, &disabled), Action::Skip(SkipWhy::Excluded));
        assert_eq!(excluded(&active(), &user()), Action::Nothing);
        let untracked = Case {
            user: &pending(),
            tracked: None,
            excluded: true,
        };
        assert_eq!(
            decide(untracked, Scope::AllGuests, &rules(), NOW),
            Action::Skip(SkipWhy::Excluded)
        );
    }

    // --- unredeemed invitations ------------------------------------------------------------

    #[test]
    fn unredeemed_invitations_are_reminded_once_then_disabled_then_deleted() {
        let r = Rules::default();
        let invited = NOW - d(14);
        let mut t = Tracked {
            notice: Notice::Legacy,
            invited_at: invited,
            since: invited,
            ..active()
        };
        let u = pending();
        // Day 13: nothing. Day 14: the reminder.
        t.invited_at = NOW - d(13);
        t.since = t.invited_at;
        assert_eq!(run_with(&u, &t, &r), Action::Nothing);
        t.invited_at = invited;
        t.since = invited;
        assert_eq!(run_with(&u, &t, &r), Action::RedeemReminder);
        // Reminded: warned(unredeemed), disabled 14 days after the reminder, not before.
        let mut warned = tracked(Stage::Warned, NOW - d(13), Some(Reason::Unredeemed));
        warned.reminder_sent_at = Some(NOW - d(13));
        assert_eq!(run_with(&u, &warned, &r), Action::Nothing);
        warned.reminder_sent_at = Some(NOW - d(14));
        warned.since = NOW - d(14);
        assert_eq!(
            run_with(&u, &warned, &r),
            Action::Disable(Reason::Unredeemed)
        );
        // Disabled: soft-deleted after the grace period.
        let off = DirectoryFacts {
            account_enabled: false,
            ..u.clone()
        };
        let disabled = tracked(Stage::Disabled, NOW - d(13), Some(Reason::Unredeemed));
        assert_eq!(run_with(&off, &disabled, &r), Action::Nothing);
        let disabled = tracked(Stage::Disabled, NOW - d(14), Some(Reason::Unredeemed));
        assert_eq!(
            run_with(&off, &disabled, &r),
            Action::Delete(Reason::Unredeemed)
        );
    }

    #[test]
    fn a_reminded_guest_that_redeems_goes_back_to_active() {
        let mut warned = tracked(Stage::Warned, NOW - d(30), Some(Reason::Unredeemed));
        warned.reminder_sent_at = Some(NOW - d(30));
        assert_eq!(run(&user(), &warned), Action::Restore(RestoreWhy::Redeemed));
        let unknown = DirectoryFacts {
            redemption: Redemption::Unknown,
            ..user()
        };
        assert_eq!(
            run(&unknown, &warned),
            Action::Restore(RestoreWhy::Redeemed),
            "only a pending invitation keeps the reason"
        );
    }

    #[test]
    fn a_redeemed_guest_is_never_reminded() {
        let accepted = DirectoryFacts {
            activity: Activity::NotRead,
            ..user()
        };
        assert_eq!(run(&accepted, &active()), Action::Nothing);
    }

    #[test]
    fn a_reminder_on_record_while_active_counts_as_the_warning() {
        let mut t = active();
        t.reminder_sent_at = Some(NOW - d(20));
        assert_eq!(run(&pending(), &t), Action::Disable(Reason::Unredeemed));
        t.reminder_sent_at = Some(NOW - d(2));
        assert_eq!(run(&pending(), &t), Action::Nothing);
    }

    // --- access period ---------------------------------------------------------------------

    #[test]
    fn past_the_access_period_a_guest_is_warned_disabled_then_deleted() {
        let mut t = active();
        t.access_ends_at = Some(NOW + Duration::hours(1));
        assert_eq!(run(&user(), &t), Action::Nothing);
        t.access_ends_at = Some(NOW);
        assert_eq!(run(&user(), &t), Action::Warn(Reason::AccessPeriod));
        // Even a pending guest: the period wins over the reminder.
        assert_eq!(run(&pending(), &t), Action::Warn(Reason::AccessPeriod));

        let mut warned = tracked(Stage::Warned, NOW - d(6), Some(Reason::AccessPeriod));
        warned.access_ends_at = Some(NOW - d(6));
        assert_eq!(run(&user(), &warned), Action::Nothing);
        warned.since = NOW - d(7);
        assert_eq!(run(&user(), &warned), Action::Disable(Reason::AccessPeriod));

        let off = DirectoryFacts {
            account_enabled: false,
            ..user()
        };
        let disabled = tracked(Stage::Disabled, NOW - d(14), Some(Reason::AccessPeriod));
        assert_eq!(run(&off, &disabled), Action::Delete(Reason::AccessPeriod));
    }

    #[test]
    fn an_extended_access_period_takes_a_warned_guest_back() {
        let mut warned = tracked(Stage::Warned, NOW - d(10), Some(Reason::AccessPeriod));
        warned.access_ends_at = Some(NOW + d(30));
        assert_eq!(
            run(&user(), &warned),
            Action::Restore(RestoreWhy::AccessExtended)
        );
        warned.access_ends_at = None;
        assert_eq!(
            run(&user(), &warned),
            Action::Restore(RestoreWhy::AccessExtended)
        );
    }

    #[test]
    fn a_guest_restored_after_its_period_ended_is_not_warned_again_for_it() {
        let mut t = tracked(Stage::Active, NOW - d(1), None);
        t.access_ends_at = Some(NOW - d(20));
        assert_eq!(run(&user(), &t), Action::Nothing);
    }

    // --- inactivity ------------------------------------------------------------------------

    #[test]
    fn inactivity_counts_from_the_most_recent_sign_in() {
        let mut u = user();
        u.activity = Activity::At(NOW - d(89));
        assert_eq!(run(&u, &active()), Action::Nothing);
        u.activity = Activity::At(NOW - d(90));
        assert_eq!(run(&u, &active()), Action::Warn(Reason::Inactive));
        assert_eq!(
            Activity::most_recent(&[Some(NOW - d(100)), None, Some(NOW - d(3)),]),
            Activity::At(NOW - d(3))
        );
    }

    #[test]
    fn never_signed_in_guests_are_aged_from_redemption_then_creation() {
        let mut u = user();
        u.activity = Activity::Never;
        u.redemption_changed = Some(NOW - d(50));
        assert_eq!(run(&u, &active()), Action::Nothing, "redeemed 50 days ago");
        u.redemption_changed = Some(NOW - d(95));
        assert_eq!(run(&u, &active()), Action::Warn(Reason::Inactive));
        u.redemption_changed = None;
        u.created = Some(NOW - d(95));
        assert_eq!(run(&u, &active()), Action::Warn(Reason::Inactive));
        u.created = Some(NOW - d(10));
        let young = tracked(Stage::Active, NOW - d(10), None);
        assert_eq!(run(&u, &young), Action::Nothing);
    }

    #[test]
    fn activity_is_the_last_successful_sign_in_where_graph_provides_it() {
        let sprayed = Some(NOW - d(1));
        let success = Some(NOW - d(200));
        // Failed attempts yesterday do not hide 200 days without a successful sign-in.
        assert_eq!(
            Activity::judged(Some(success), &[sprayed, None]),
            Activity::At(NOW - d(200))
        );
        assert_eq!(
            Activity::judged(Some(None), &[sprayed, sprayed]),
            Activity::Never,
            "attempts only: no successful sign-in on record"
        );
        // Where Graph gives no successful sign-in at all, the attempts are all there is:
        // they can keep a guest longer, never remove one sooner.
        assert_eq!(
            Activity::judged(None, &[Some(NOW - d(50)), sprayed]),
            Activity::At(NOW - d(1))
        );
        assert_eq!(Activity::judged(None, &[None, None]), Activity::Never);
        let mut u = user();
        u.activity = Activity::judged(Some(success), &[sprayed, None]);
        assert_eq!(run(&u, &active()), Action::Warn(Reason::Inactive));
    }

    #[test]
    fn the_sentinel_and_bad_timestamps_mean_never() {
        assert_eq!(graph_time(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(graph_time(Some("yesterday")), None);
        assert_eq!(graph_time(None), None);
        assert_eq!(
            graph_time(Some("2026-11-01T08:30:00Z")),
            Some(datetime!(2026-11-01 8:30 UTC))
        );
        let sentinel = graph_time(Some("0001-01-01T00:00:00Z"));
        assert_eq!(
            Activity::most_recent(&[sentinel, None, sentinel]),
            Activity::Never
        );
    }

    #[test]
    fn without_sign_in_data_the_inactivity_rule_is_skipped_not_guessed() {
        let mut u = user();
        u.activity = Activity::NotRead;
        u.created = Some(NOW - d(200));
        u.redemption_changed = Some(NOW - d(199));
        assert_eq!(run(&u, &active()), Action::Nothing);
        // ... and a guest already warned for inactivity waits, neither restored nor removed.
        let warned = tracked(Stage::Warned, NOW - d(30), Some(Reason::Inactive));
        assert_eq!(run(&u, &warned), Action::Nothing);
        // The other rules still apply.
        let mut t = active();
        t.access_ends_at = Some(NOW - d(1));
        assert_eq!(run(&u, &t), Action::Warn(Reason::AccessPeriod));
    }

    #[test]
    fn the_inactivity_rule_off_warns_no_one_and_releases_warned_guests() {
        let off = Rules::default();
        let mut u = user();
        u.activity = Activity::At(NOW - d(400));
        assert_eq!(run_with(&u, &active(), &off), Action::Nothing);
        let warned = tracked(Stage::Warned, NOW - d(30), Some(Reason::Inactive));
        assert_eq!(
            run_with(&u, &warned, &off),
            Action::Restore(RestoreWhy::RuleOff)
        );
    }

    #[test]
    fn a_warned_inactive_guest_that_signs_in_goes_back_to_active() {
        let warned = tracked(Stage::Warned, NOW - d(3), Some(Reason::Inactive));
        let mut u = user();
        u.activity = Activity::At(NOW - d(1));
        assert_eq!(run(&u, &warned), Action::Restore(RestoreWhy::SignedInAgain));
        u.activity = Activity::At(NOW - d(100));
        assert_eq!(run(&u, &warned), Action::Nothing, "not yet 7 days");
        let warned = tracked(Stage::Warned, NOW - d(7), Some(Reason::Inactive));
        assert_eq!(run(&u, &warned), Action::Disable(Reason::Inactive));
        u.activity = Activity::Never;
        assert_eq!(run(&u, &warned), Action::Disable(Reason::Inactive));
    }

    #[test]
    fn a_restored_guest_is_not_judged_on_its_past_inactivity() {
        let mut u = user();
        u.activity = Activity::At(NOW - d(300));
        let restored = tracked(Stage::Active, NOW - d(2), None);
        assert_eq!(run(&u, &restored), Action::Nothing);
        let long_ago = tracked(Stage::Active, NOW - d(90), None);
        assert_eq!(run(&u, &long_ago), Action::Warn(Reason::Inactive));
    }

    // --- access reviews ---------------------------------------------------------------------

    #[test]
    fn an_ended_review_warns_first_then_disables_once_the_warning_arrived() {
        let mut t = active();
        t.review_ended = Some(NOW - d(1));
        // Whatever the other clocks say: an active, healthy guest.
        t.access_ends_at = Some(NOW + d(300));
        assert_eq!(run(&user(), &t), Action::Warn(Reason::Review));
        assert_eq!(run(&pending(), &t), Action::Warn(Reason::Review));

        let mut warned = tracked(Stage::Warned, NOW - d(1), Some(Reason::Review));
        warned.review_ended = Some(NOW - d(1));
        warned.notice = Notice::Pending;
        assert_eq!(run(&user(), &warned), Action::Nothing, "not told yet");
        warned.notice = Notice::Delivered(NOW - Duration::minutes(50));
        assert_eq!(
            run(&user(), &warned),
            Action::Disable(Reason::Review),
            "no warning days: the sponsors ended it"
        );
        let off = DirectoryFacts {
            account_enabled: false,
            ..user()
        };
        let mut disabled = tracked(Stage::Disabled, NOW - d(14), Some(Reason::Review));
        disabled.review_ended = Some(NOW - d(15));
        assert_eq!(run(&off, &disabled), Action::Delete(Reason::Review));
    }

    #[test]
    fn a_later_keep_takes_a_guest_warned_by_its_review_back() {
        let warned = tracked(Stage::Warned, NOW - d(1), Some(Reason::Review));
        assert_eq!(
            run(&user(), &warned),
            Action::Restore(RestoreWhy::ReviewKept)
        );
    }

    #[test]
    fn a_guest_restored_after_an_ended_review_is_not_warned_for_it_again() {
        let mut t = tracked(Stage::Active, NOW - d(1), None);
        t.review_ended = Some(NOW - d(20));
        assert_eq!(run(&user(), &t), Action::Nothing);
    }

    #[test]
    fn an_excluded_guest_whose_review_ended_is_left_alone() {
        let mut t = active();
        t.review_ended = Some(NOW - d(1));
        let action = decide(
            Case {
                user: &user(),
                tracked: Some(&t),
                excluded: true,
            },
            Scope::Portal,
            &rules(),
            NOW,
        );
        assert_eq!(action, Action::Skip(SkipWhy::Excluded));
    }

    // --- the admin has the last word -----------------------------------------------------

    #[test]
    fn an_account_an_admin_enabled_again_is_left_alone() {
        let disabled = tracked(Stage::Disabled, NOW - d(100), Some(Reason::AccessPeriod));
        assert_eq!(
            run(&user(), &disabled),
            Action::Restore(RestoreWhy::ReEnabled)
        );
    }

    #[test]
    fn a_deleted_guest_listed_again_was_restored_by_an_admin() {
        let deleted = tracked(Stage::Deleted, NOW - d(10), Some(Reason::Inactive));
        assert_eq!(
            run(&user(), &deleted),
            Action::Restore(RestoreWhy::Undeleted)
        );
    }

    #[test]
    fn rows_without_a_reason_never_lead_to_removal() {
        let warned = tracked(Stage::Warned, NOW - d(100), None);
        assert_eq!(
            run(&pending(), &warned),
            Action::Restore(RestoreWhy::NoReason)
        );
        let off = DirectoryFacts {
            account_enabled: false,
            ..user()
        };
        let disabled = tracked(Stage::Disabled, NOW - d(100), None);
        assert_eq!(run(&off, &disabled), Action::Nothing);
    }

    #[test]
    fn a_healthy_guest_is_left_alone() {
        assert_eq!(run(&user(), &active()), Action::Nothing);
        let mut t = active();
        t.access_ends_at = Some(NOW + d(100));
        assert_eq!(run(&user(), &t), Action::Nothing);
    }

    /// Every stage against every kind of user: removal only ever follows a warning, and
    /// deletion only ever follows disabling.
    #[test]
    fn removal_only_follows_the_previous_step() {
        let users = [
            user(),
            pending(),
            DirectoryFacts {
                account_enabled: false,
                ..user()
            },
            DirectoryFacts {
                account_enabled: false,
                ..pending()
            },
            DirectoryFacts {
                activity: Activity::NotRead,
                ..user()
            },
            DirectoryFacts {
                activity: Activity::At(NOW - d(500)),
                ..user()
            },
        ];
        let reasons = [
            None,
            Some(Reason::Unredeemed),
            Some(Reason::AccessPeriod),
            Some(Reason::Inactive),
            Some(Reason::Review),
        ];
        let reviews = [None, Some(NOW - d(90)), Some(NOW - d(2))];
        let ends = [None, Some(NOW - d(40)), Some(NOW + d(40))];
        let reminders = [None, Some(NOW - d(40))];
        for u in &users {
            for stage in [
                Stage::Active,
                Stage::Warned,
                Stage::Disabled,
                Stage::Deleted,
            ] {
                for reason in reasons {
                    for since in [NOW - d(1), NOW - d(60)] {
                        for (end, review_ended) in ends
                            .iter()
                            .flat_map(|e| reviews.iter().map(move |r| (*e, *r)))
                        {
                            for reminder in reminders {
                                let t = Tracked {
                                    notice: Notice::Legacy,
                                    origin: Origin::Invited {
                                        decided_at: NOW - d(200),
                                    },
                                    stage,
                                    since,
                                    reason,
                                    invited_at: NOW - d(200),
                                    access_ends_at: end,
                                    reminder_sent_at: reminder,
                                    review_ended,
                                };
                                let a = run(u, &t);
                                match a {
                                    Action::Delete(_) => {
                                        assert_eq!(stage, Stage::Disabled, "{t:?} {u:?}")
                                    }
                                    Action::Disable(_) => assert!(
                                        stage == Stage::Warned
                                            || (stage == Stage::Active && reminder.is_some()),
                                        "{t:?} {u:?}"
                                    ),
                                    Action::Warn(_) | Action::RedeemReminder => {
                                        assert_eq!(stage, Stage::Active, "{t:?} {u:?}")
                                    }
                                    _ => {}
                                }
                                if let Action::Delete(r) | Action::Disable(r) = a {
                                    if stage != Stage::Active {
                                        assert_eq!(
                                            Some(r),
                                            reason,
                                            "the recorded reason carries on"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // --- the cap ---------------------------------------------------------------------------

    #[test]
    fn the_cap_refuses_too_many_or_too_large_a_share() {
        let cap = |n, in_scope, max, pct| check_cap(Capped::Removals, n, in_scope, max, pct);
        assert_eq!(cap(0, 0, 50, 10), Ok(()));
        assert_eq!(cap(50, 1000, 50, 10), Ok(()));
        assert_eq!(
            cap(51, 1000, 50, 10),
            Err(CapExceeded::Count {
                what: Capped::Removals,
                planned: 51,
                max: 50
            })
        );
        // A handful is never refused by share alone.
        assert_eq!(cap(5, 6, 50, 10), Ok(()));
        assert_eq!(cap(1, 2, 50, 10), Ok(()));
        assert_eq!(
            cap(6, 59, 50, 10),
            Err(CapExceeded::Share {
                what: Capped::Removals,
                planned: 6,
                in_scope: 59,
                percent: 10
            })
        );
        assert_eq!(cap(6, 60, 50, 10), Ok(()));
        assert_eq!(cap(100, 100, 100, 100), Ok(()));
    }

    #[test]
    fn the_cap_says_what_to_change() {
        let msg = check_cap(Capped::Removals, 12, 40, 50, 10)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("12 removals planned of 40")
                && msg.contains("CLEANUP_MAX_REMOVAL_PERCENT to at least 30"),
            "{msg}"
        );
        let msg = check_cap(Capped::Removals, 80, 4000, 50, 10)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("CLEANUP_MAX_REMOVALS to at least 80"), "{msg}");
        let msg = check_cap(Capped::Warnings, 80, 4000, 50, 10)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("80 warnings planned")
                && msg.contains("CLEANUP_MAX_REMOVALS to at least 80"),
            "{msg}"
        );
    }

    #[test]
    fn warnings_and_reminders_are_what_the_warning_cap_counts() {
        assert!(Action::Warn(Reason::Inactive).is_warning());
        assert!(Action::RedeemReminder.is_warning());
        for a in [
            Action::Nothing,
            Action::Disable(Reason::Inactive),
            Action::Delete(Reason::Inactive),
            Action::Restore(RestoreWhy::ReEnabled),
            Action::Skip(SkipWhy::Excluded),
        ] {
            assert!(!a.is_warning(), "{a:?}");
        }
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            Reason::Unredeemed,
            Reason::AccessPeriod,
            Reason::Inactive,
            Reason::Review,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("boredom"), None);
        assert_eq!(
            Redemption::from_graph(Some("PendingAcceptance")),
            Redemption::Pending
        );
        assert_eq!(
            Redemption::from_graph(Some("Accepted")),
            Redemption::Accepted
        );
        assert_eq!(Redemption::from_graph(None), Redemption::Unknown);
    }
}
