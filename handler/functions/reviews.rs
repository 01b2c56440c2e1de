//! Access reviews around the rules of `core::review`, in one place that the review page, the
//! command line and the timer all use: who may answer for a guest, recording an answer (the
//! first one wins), the sponsors' mails, and the timer's pass that opens reviews, reminds and
//! applies the policy's default when nobody answered.
//!
//! A guest's reviews live on its row in the Guests table, so an answer and the mails it causes
//! are one entity-group transaction in the guest's partition (through the outbox), and every
//! change is a compare-and-swap on the row's ETag: of two sponsors answering at once, and of a
//! sponsor and the timer's default, one wins and the other sees what was decided.
//!
//! An ended review removes no one here: it marks the record, and the cleanup warns the guest
//! and disables it through its own path, with its safeguards (see `core::cleanup`).

use time::OffsetDateTime;

use super::{outbox, Portal};
use crate::adapters::tables::{format_time, StoreError, TableName};
use crate::core::email::{same_person, EmailAddress};
use crate::core::outbox::{Letter, LinkRecipe, MailKind};
use crate::core::policy::{OnNoAnswer, Policy};
use crate::core::review::{self, Decider, Decision, Reviews, Schedule, Standing, Step};
use crate::core::token::{new_nonce, TokenClaims, TokenPurpose};
use crate::store::audit::{self, AuditEntry};
use crate::store::guests::{self, Guest, GuestOrigin, GuestState};
use crate::views::{self, GuestSummary, ReviewAsk};

/// Reviews opened by one pass of the timer at most: a policy that starts reviewing many guests
/// invited on the same day mails their sponsors over a few passes, not in one burst. The rest
/// are still due at the next pass.
const OPENED_PER_PASS: u32 = 200;

/// How a policy reviews its guests, with the answer window and reminder of the settings;
/// `None` when it does not.
pub fn schedule(portal: &Portal, policy: &Policy) -> Option<Schedule> {
    (policy.review_days > 0).then_some(Schedule {
        interval_days: policy.review_days,
        on_no_answer: policy.on_no_answer,
        answer_days: portal.settings.cleanup.review_answer_days,
        reminder_days: portal.settings.cleanup.review_reminder_days,
    })
}

/// The policy a guest was admitted under, if it still exists.
fn policy_of<'p>(policies: &'p [Policy], guest: &Guest) -> Option<&'p Policy> {
    let key = guest.policy_key.as_deref()?;
    policies.iter().find(|p| p.key() == key)
}

/// Who answers for a guest: the sponsors recorded when it was admitted and whoever its policy
/// names as sponsors now, each person once, never the guest itself.
pub fn sponsors_now(guest: &Guest, policy: Option<&Policy>) -> Vec<EmailAddress> {
    let recorded = guest
        .sponsors
        .iter()
        .filter_map(|s| EmailAddress::parse(s).ok());
    let named = policy.into_iter().flat_map(|p| p.sponsors.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    recorded
        .chain(named)
        .filter(|s| seen.insert(s.identity_key()) && !same_person(s.as_str(), &guest.email))
        .collect()
}

/// Whether the person a review link names (its subject, an identity key) may still use it.
/// A sponsor the policy no longer names, and who was not recorded for the guest, sees the
/// same page as a broken link.
pub fn may_use_link(guest: &Guest, policy: Option<&Policy>, subject: &str) -> bool {
    sponsors_now(guest, policy)
        .iter()
        .any(|s| s.identity_key() == subject)
}

fn day(t: OffsetDateTime) -> String {
    format_time(t)[..10].to_string()
}

/// The texts a guest's summary borrows (dates formatted once).
pub struct Shown {
    invited: String,
    access_ends: Option<String>,
}

impl Shown {
    pub fn of(guest: &Guest) -> Shown {
        Shown {
            invited: day(guest.invited_at),
            access_ends: guest.access_ends_at.map(day),
        }
    }

    pub fn summary<'a>(&'a self, guest: &'a Guest) -> GuestSummary<'a> {
        GuestSummary {
            first_name: &guest.first_name,
            last_name: &guest.last_name,
            email: &guest.email,
            organisation: &guest.organisation,
            policy: guest.policy_key.as_deref().unwrap_or("-"),
            invited: &self.invited,
            access_ends: self.access_ends.as_deref(),
        }
    }
}

/// The review mail for each sponsor: a personal link bound to the guest, the sponsor and the
/// review's round, valid until the deadline.
fn review_letters(
    portal: &Portal,
    guest: &Guest,
    policy: &Policy,
    sponsors: &[EmailAddress],
    round: u32,
    deadline: OffsetDateTime,
    reminder: bool,
) -> Vec<Letter> {
    let brand = super::web::brand(portal);
    let lang = portal.settings.portal.default_language;
    let shown = Shown::of(guest);
    let summary = shown.summary(guest);
    let deadline_text = day(deadline);
    let ask = ReviewAsk {
        days: policy.review_days,
        deadline: &deadline_text,
        keep_without_answer: policy.on_no_answer == OnNoAnswer::Keep,
    };
    let kind = if reminder {
        MailKind::ReviewReminder
    } else {
        MailKind::ReviewRequest
    };
    sponsors
        .iter()
        .map(|sponsor| {
            let recipe = LinkRecipe::new(
                &TokenClaims {
                    purpose: TokenPurpose::Review,
                    request_id: guest.user_id.clone(),
                    subject: sponsor.identity_key(),
                    stage: Reviews::link_stage(round),
                    expires_at: deadline.unix_timestamp(),
                    nonce: new_nonce(),
                },
                false,
            );
            let mail =
                views::review_mail(&brand, lang, &summary, &ask, &recipe.placeholder, reminder);
            Letter::new(kind, sponsor.as_str(), mail.subject, mail.text, mail.html)
                .with_link(recipe)
        })
        .collect()
}

/// What an answer came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// Recorded: the guest as it now stands (`next_due`: kept until then).
    Recorded {
        kept: bool,
        guest: Box<Guest>,
        next_due: Option<OffsetDateTime>,
    },
    /// Someone answered first (or the review is closed): the last answer, if any.
    Already(Option<Decision>),
    /// The link's holder may not answer for this guest (or there is no such guest).
    NotASponsor,
    NotFound,
    /// An admin keeps a guest whose policy does not review and gave no number of days.
    NoInterval,
}

/// Records an answer to a guest's review: from a sponsor's link (`round` is the review it was
/// sent for), from an admin (`round` `None`: any time; `days` overrides the policy's interval),
/// or the timer's default at the deadline. The first answer wins; the row is compare-and-swapped
/// and a write that lost to anything else is tried again on the row as it is now.
#[allow(clippy::too_many_arguments)]
pub async fn answer(
    portal: &Portal,
    user_id: &str,
    by: Decider,
    round: Option<u8>,
    keep: bool,
    days: Option<u32>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Answered, StoreError> {
    let policies = portal.policies().await?;
    for _ in 0..3 {
        let Some((guest, etag)) = guests::get(&portal.store, user_id).await? else {
            return Ok(Answered::NotFound);
        };
        let policy = policy_of(&policies, &guest);
        if let Decider::Sponsor(key) = &by {
            if !may_use_link(&guest, policy, key) {
                return Ok(Answered::NotASponsor);
            }
        }
        let interval = match (days, policy.map(|p| p.review_days).filter(|d| *d > 0)) {
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) if keep => return Ok(Answered::NoInterval),
            (None, None) => 0,
        };
        let answered = match review::answer(
            &guest.reviews,
            interval,
            round,
            keep,
            by.clone(),
            now,
            guest.access_ends_at,
        ) {
            Ok(a) => a,
            Err(review::Refused::Answered(last)) => return Ok(Answered::Already(last)),
        };
        let deadline = guest.reviews.open.map(|o| o.deadline);
        let updated = Guest {
            reviews: answered.reviews.clone(),
            access_ends_at: answered.access_ends_at,
            ..guest.clone()
        };
        // The sponsors hear what no answer did; an answer from one of them needs no mail.
        let letters = match (&by, deadline, policy) {
            (Decider::Default, Some(deadline), Some(policy)) => {
                default_letters(portal, &updated, policy, keep, deadline)
            }
            _ => Vec::new(),
        };
        match outbox::record(
            &portal.outbox,
            TableName::Guests,
            &guests::partition_of(user_id),
            vec![guests::replace_write(&updated, &etag)],
            letters,
            now,
        )
        .await
        {
            Ok((_, recorded)) => portal.outbox.send_soon(recorded),
            Err(StoreError::Changed) => continue,
            Err(e) => return Err(e),
        }
        let action = match (&by, keep) {
            (Decider::Default, true) => "review.kept_by_default",
            (Decider::Default, false) => "review.ended_by_default",
            (_, true) => "review.kept",
            (_, false) => "review.ended",
        };
        let who = match &by {
            Decider::Sponsor(key) => EmailAddress::parse(key)
                .map(|a| a.masked())
                .unwrap_or_default(),
            Decider::Operator(name) => name.clone(),
            Decider::Default => format!("policy default ({})", if keep { "keep" } else { "end" }),
        };
        let outcome = match answered.next_due {
            Some(due) => format!("kept; next review due {}", day(due)),
            None => "access ends; the cleanup disables the guest".to_string(),
        };
        audit::record(
            &portal.store,
            AuditEntry::new(answered_at(&answered), actor, action)
                .user(user_id)
                .detail(format!(
                    "review {} answered by {who}: {outcome}",
                    updated.reviews.round
                )),
        )
        .await?;
        return Ok(Answered::Recorded {
            kept: keep,
            guest: Box::new(updated),
            next_due: answered.next_due,
        });
    }
    Err(StoreError::Unavailable(
        "the guest's record kept changing".into(),
    ))
}

fn answered_at(a: &review::Answered) -> OffsetDateTime {
    a.reviews
        .last
        .as_ref()
        .map(|d| d.at)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The sponsors' mail about a review nobody answered by `deadline`.
fn default_letters(
    portal: &Portal,
    guest: &Guest,
    policy: &Policy,
    kept: bool,
    deadline: OffsetDateTime,
) -> Vec<Letter> {
    let brand = super::web::brand(portal);
    let lang = portal.settings.portal.default_language;
    let shown = Shown::of(guest);
    let summary = shown.summary(guest);
    let mail = views::review_default_mail(
        &brand,
        lang,
        &summary,
        kept,
        &day(deadline),
        policy.review_days,
    );
    to_each(
        MailKind::ReviewDefault,
        &sponsors_now(guest, Some(policy)),
        &mail,
    )
}

/// The same mail to each of `sponsors`.
fn to_each(kind: MailKind, sponsors: &[EmailAddress], mail: &views::Mail) -> Vec<Letter> {
    sponsors
        .iter()
        .map(|s| {
            Letter::new(
                kind,
                s.as_str(),
                mail.subject.clone(),
                mail.text.clone(),
                mail.html.clone(),
            )
        })
        .collect()
}

/// What one pass of the timer did with reviews, for its summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReviewPass {
    pub scheduled: u32,
    pub opened: u32,
    pub reminded: u32,
    pub kept_by_default: u32,
    pub ended_by_default: u32,
    pub closed: u32,
    /// Due, but nobody to ask (no sponsor recorded or named).
    pub unasked: u32,
    /// Left for the next pass (the per-pass limit, or a row that changed meanwhile).
    pub deferred: u32,
}

impl ReviewPass {
    pub fn summary(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would be " } else { "" };
        let mut s = format!(
            "reviews {verb}opened {}, {verb}reminded {}, {verb}kept by default {}, {verb}ended by default {}",
            self.opened, self.reminded, self.kept_by_default, self.ended_by_default
        );
        if self.unasked > 0 {
            s.push_str(&format!(", due without a sponsor to ask {}", self.unasked));
        }
        if self.deferred > 0 {
            s.push_str(&format!(", left for the next pass {}", self.deferred));
        }
        s
    }
}

/// The timer's pass over the guests' reviews (`records` as the run read them): schedules,
/// opens, reminds, applies defaults and closes what is due, each guest with a compare-and-swap
/// on the ETag it was read with (a row that changed meanwhile waits for the next pass). A dry
/// run tells what it would do and writes nothing. Returns what it did and a line for each
/// guest it acted on.
pub async fn sweep(
    portal: &Portal,
    records: &[(Guest, String)],
    now: OffsetDateTime,
    dry_run: bool,
    actor: &str,
) -> Result<(ReviewPass, Vec<String>), StoreError> {
    let policies = portal.policies().await?;
    let mut pass = ReviewPass::default();
    let mut lines = Vec::new();
    let mut tell = |line: String| lines.push(line);
    let mut schedules = Vec::new();
    for (guest, etag) in records {
        let policy = policy_of(&policies, guest);
        let schedule = policy.and_then(|p| schedule(portal, p));
        let standing = Standing {
            invited_at: guest.invited_at,
            since: guest.state_changed_at,
            access_ends_at: guest.access_ends_at,
            active: guest.state == GuestState::Active && guest.origin == GuestOrigin::Invited,
            gone: matches!(guest.state, GuestState::Disabled | GuestState::Deleted),
        };
        let id = &guest.user_id;
        match review::next_step(&guest.reviews, schedule.as_ref(), &standing, now) {
            Step::Nothing => {}
            Step::Schedule { due_at } => {
                pass.scheduled += 1;
                schedules.push((guest, etag, due_at));
            }
            Step::Open { deadline } => {
                let Some(policy) = policy else { continue };
                let sponsors = sponsors_now(guest, Some(policy));
                if sponsors.is_empty() {
                    pass.unasked += 1;
                    tell(format!(
                        "guest {id}: its review is due, but nobody sponsors it (name sponsors on policy {})",
                        policy.key()
                    ));
                    continue;
                }
                if pass.opened >= OPENED_PER_PASS {
                    pass.deferred += 1;
                    continue;
                }
                pass.opened += 1;
                if dry_run {
                    tell(format!(
                        "would ask {} sponsors of guest {id} to review its access by {}",
                        sponsors.len(),
                        day(deadline)
                    ));
                    continue;
                }
                let reviews = review::opened(&guest.reviews, deadline, now);
                let round = reviews.round;
                let letters =
                    review_letters(portal, guest, policy, &sponsors, round, deadline, false);
                let updated = Guest {
                    reviews,
                    ..guest.clone()
                };
                if write(portal, &updated, etag, letters, now).await? {
                    audit_step(
                        portal,
                        actor,
                        now,
                        "review.opened",
                        id,
                        format!(
                            "review {round}: {} sponsors asked, answer by {}",
                            sponsors.len(),
                            day(deadline)
                        ),
                    )
                    .await?;
                    tell(format!(
                        "asked {} sponsors of guest {id} to review its access by {}",
                        sponsors.len(),
                        day(deadline)
                    ));
                } else {
                    pass.opened -= 1;
                    pass.deferred += 1;
                }
            }
            Step::Remind => {
                let (Some(policy), Some(open)) = (policy, guest.reviews.open) else {
                    continue;
                };
                let sponsors = sponsors_now(guest, Some(policy));
                pass.reminded += 1;
                if dry_run {
                    tell(format!(
                        "would remind the sponsors of guest {id} of its review"
                    ));
                    continue;
                }
                let letters = review_letters(
                    portal,
                    guest,
                    policy,
                    &sponsors,
                    guest.reviews.round,
                    open.deadline,
                    true,
                );
                let mut updated = guest.clone();
                if let Some(o) = updated.reviews.open.as_mut() {
                    o.reminded = true;
                }
                if write(portal, &updated, etag, letters, now).await? {
                    audit_step(
                        portal,
                        actor,
                        now,
                        "review.reminded",
                        id,
                        format!(
                            "review {}: {} sponsors reminded",
                            guest.reviews.round,
                            sponsors.len()
                        ),
                    )
                    .await?;
                    tell(format!("reminded the sponsors of guest {id} of its review"));
                } else {
                    pass.reminded -= 1;
                    pass.deferred += 1;
                }
            }
            Step::Default(default) => {
                let keep = default == OnNoAnswer::Keep;
                if keep {
                    pass.kept_by_default += 1;
                } else {
                    pass.ended_by_default += 1;
                }
                let what = if keep {
                    "kept for another review interval"
                } else {
                    "ended"
                };
                if dry_run {
                    tell(format!(
                        "would apply the policy's default to guest {id}, whose review nobody answered: access {what}"
                    ));
                    continue;
                }
                let round = Some(Reviews::link_stage(guest.reviews.round));
                match answer(
                    portal,
                    id,
                    Decider::Default,
                    round,
                    keep,
                    None,
                    actor,
                    now,
                )
                .await?
                {
                    Answered::Recorded { .. } => tell(format!(
                        "nobody answered the review of guest {id}: access {what}, as its policy says"
                    )),
                    _ => {
                        if keep {
                            pass.kept_by_default -= 1;
                        } else {
                            pass.ended_by_default -= 1;
                        }
                    }
                }
            }
            Step::Close => {
                pass.closed += 1;
                if dry_run {
                    continue;
                }
                let mut updated = guest.clone();
                updated.reviews.open = None;
                if write(portal, &updated, etag, Vec::new(), now).await? {
                    audit_step(
                        portal,
                        actor,
                        now,
                        "review.closed",
                        id,
                        "closed unanswered: the guest is gone, or its policy no longer reviews"
                            .into(),
                    )
                    .await?;
                }
            }
        }
    }
    if !dry_run && !schedules.is_empty() {
        // Only the schedule property, merged: many guests at once, in transactions by
        // partition (a policy that starts reviewing schedules all its guests in one pass).
        let rows: Vec<_> = schedules
            .iter()
            .map(|(g, etag, due)| {
                let mut row =
                    crate::adapters::tables::Row::new(guests::partition_of(&g.user_id), &g.user_id);
                row.set_time("ReviewDueAt", Some(*due));
                (row, (*etag).clone())
            })
            .collect();
        for result in portal.store.merge_batch(TableName::Guests, &rows).await {
            match result {
                Ok(()) => {}
                Err(StoreError::Changed) => {
                    pass.scheduled -= 1;
                    pass.deferred += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((pass, lines))
}

/// A review's step and its mails, as one transaction; `false` when the row changed since it
/// was read (the next pass looks again).
async fn write(
    portal: &Portal,
    guest: &Guest,
    etag: &str,
    letters: Vec<Letter>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    match outbox::record(
        &portal.outbox,
        TableName::Guests,
        &guests::partition_of(&guest.user_id),
        vec![guests::replace_write(guest, etag)],
        letters,
        now,
    )
    .await
    {
        Ok((_, recorded)) => {
            portal.outbox.send_soon(recorded);
            Ok(true)
        }
        Err(StoreError::Changed) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn audit_step(
    portal: &Portal,
    actor: &str,
    now: OffsetDateTime,
    action: &str,
    user_id: &str,
    detail: String,
) -> Result<(), StoreError> {
    audit::record(
        &portal.store,
        AuditEntry::new(now, actor, action)
            .user(user_id)
            .detail(detail),
    )
    .await
}

/// The sponsors' notice before the cleanup disables a guest (its warning or its redeem
/// reminder is the guest's own): when and why.
pub fn notice_letters(
    portal: &Portal,
    guest: &Guest,
    policy: Option<&Policy>,
    remove_on: OffsetDateTime,
    reason: views::RemovalReason,
) -> Vec<Letter> {
    let sponsors = sponsors_now(guest, policy);
    if sponsors.is_empty() {
        return Vec::new();
    }
    let brand = super::web::brand(portal);
    let lang = portal.settings.portal.default_language;
    let shown = Shown::of(guest);
    let mail =
        views::sponsor_notice_mail(&brand, lang, &shown.summary(guest), &day(remove_on), reason);
    to_each(MailKind::SponsorNotice, &sponsors, &mail)
}

/// When a guest's next review is due, for `handler guests list`: the open review's deadline,
/// else the scheduled one.
pub fn next_review(r: &Reviews) -> Option<OffsetDateTime> {
    r.open.map(|o| o.deadline).or(r.due_at)
}

/// The last answer, for `handler guests list`: `kept 2026-11-02 by sponsor:...`.
pub fn last_answer(r: &Reviews) -> Option<String> {
    r.last.as_ref().map(|d| {
        format!(
            "{} {} by {}",
            if d.keep { "kept" } else { "ended" },
            day(d.at),
            d.by.encode()
        )
    })
}
