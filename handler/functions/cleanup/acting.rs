//! The acting phase of the guest job: a wave's removals as `$batch` calls, then what records
//! them (the guest's row by compare-and-swap, the audit entries of the wave together), the
//! actions that need no Graph write (reminder and warning mails, restores, skips), and the
//! guests left alone because the directory changed since listing (see `recheck`).

use futures::stream::{self, StreamExt};
use time::{Duration, OffsetDateTime};

use super::{Ctx, Kind, Outcome};
use crate::adapters::graph::{GraphClient, GraphError, Removal, BATCH_LIMIT};
use crate::adapters::tables::{format_time, Row, StoreError, TableName, Write};
use crate::core::cleanup::{Action, Reason, SkipWhy};
use crate::core::email::EmailAddress;
use crate::core::outbox::{Letter, MailKind};
use crate::core::policy::Language;
use crate::functions::outbox;
use crate::store::audit::{self, AuditEntry};
use crate::store::guests::{self, Guest, GuestOrigin, GuestState};
use crate::store::jobs::PlannedAction;
use crate::views::{self, RemovalReason};

/// Guest-row updates and audit entries in flight at once.
const TABLE_CONCURRENCY: usize = 16;
/// Mails in flight at once: a large warning wave must not look like a spam burst.
const MAIL_CONCURRENCY: usize = 4;
/// Where an unredeemed guest without a recorded redeem link (one the portal did not invite)
/// is sent: My Apps redeems a pending invitation on sign-in.
const FALLBACK_REDEEM_URL: &str = "https://myapps.microsoft.com";

type BoxedOutcome<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;
pub(super) type BoxedOutcomes<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Outcome>> + Send + 'a>>;
type BoxedRemoval<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (Outcome, Option<AuditEntry>)> + Send + 'a>>;

/// What Graph answered for each removal of a wave.
type Removed<'p> = Vec<(&'p PlannedAction, Result<(), GraphError>)>;

/// A wave's removals (those still due when re-checked) as concurrent `$batch` calls of 20. A
/// batch that failed as a whole is returned beside the answers of the others.
pub(super) async fn remove<'p>(
    graph: &GraphClient,
    removals: &[&'p PlannedAction],
) -> (Removed<'p>, Option<GraphError>) {
    let batches = removals.chunks(BATCH_LIMIT).map(|chunk| {
        let items: Vec<(String, Removal)> = chunk
            .iter()
            .map(|p| {
                let removal = match p.action {
                    Action::Delete(_) => Removal::Delete,
                    _ => Removal::Disable,
                };
                (p.user_id.clone(), removal)
            })
            .collect();
        async move { graph.remove(&items).await }
    });
    let answers = futures::future::join_all(batches).await;
    let mut results = Vec::with_capacity(removals.len());
    let mut failure = None;
    for (chunk, answer) in removals.chunks(BATCH_LIMIT).zip(answers) {
        match answer {
            Ok(answer) => results.extend(chunk.iter().copied().zip(answer)),
            Err(e) => failure = Some(e),
        }
    }
    (results, failure)
}

/// What the re-check found for planned entries that are not carried out as planned.
pub(super) struct LeftAlone<'a> {
    /// The directory (or the portal's record) changed since listing: why.
    pub changed: Vec<(&'a PlannedAction, &'static str)>,
    /// Could not be re-read: not acted on.
    pub unread: Vec<(&'a PlannedAction, String)>,
    /// An earlier, interrupted run did it and recorded it.
    pub done: Vec<&'a PlannedAction>,
}

/// A wave's records: every removal Graph answered (rows, then audit entries together), then
/// the actions without a Graph write (mails and rows), with bounded concurrency, and the
/// guests the re-check left alone.
pub(super) async fn record<'a>(
    ctx: Ctx<'a>,
    others: Vec<&'a PlannedAction>,
    results: Removed<'a>,
    left_alone: LeftAlone<'a>,
) -> Vec<Outcome> {
    // Graph first, then the row: a row that says "disabled" while the account is enabled
    // would read as "an admin enabled it again" and restore the guest.
    let mut failed = Vec::new();
    let mut done = Vec::new();
    for (p, result) in results {
        match confirmed(p, result) {
            Ok(c) => done.push(c),
            Err(outcome) => failed.push(outcome),
        }
    }
    let mut recorded = record_removals(ctx, done).await;
    recorded.extend(left_alone_outcomes(ctx, left_alone));
    let mut outcomes = audit_wave(ctx, recorded).await;
    outcomes.extend(failed);
    let others: Vec<BoxedOutcome<'_>> = others
        .into_iter()
        .map(|p| Box::pin(act_without_graph(ctx, p)) as BoxedOutcome<'_>)
        .collect();
    let others: Vec<Outcome> = stream::iter(others)
        .buffer_unordered(MAIL_CONCURRENCY)
        .collect()
        .await;
    outcomes.extend(others);
    outcomes
}

/// The outcomes of the guests the re-check left alone, with the audit entries of those whose
/// directory entry changed (every one is named in the log and the audit trail: an admin's
/// change just won over the plan).
fn left_alone_outcomes(ctx: Ctx<'_>, left: LeftAlone<'_>) -> Vec<(Outcome, Option<AuditEntry>)> {
    let mut out = Vec::new();
    for (p, why) in left.changed {
        let id = &p.user_id;
        out.push((
            Outcome::new(
                Kind::Changed,
                format!(
                    "skipped guest {id}: the directory changed since listing ({why}); the next run decides again"
                ),
            ),
            Some(
                AuditEntry::new(ctx.now, ctx.actor, "guest.skipped")
                    .user(id)
                    .detail(format!("the directory changed since listing: {why}")),
            ),
        ));
    }
    for (p, e) in left.unread {
        out.push((
            Outcome::new(
                Kind::Failed,
                format!(
                    "could not re-check guest {} against the directory ({e}); not acted on, the next run tries again",
                    p.user_id
                ),
            ),
            None,
        ));
    }
    for p in left.done {
        out.push((
            Outcome::new(
                Kind::AlreadyDone,
                format!(
                    "guest {}: {} was already recorded by an earlier run",
                    p.user_id,
                    describe_step(p.action)
                ),
            ),
            None,
        ));
    }
    out
}

fn describe_step(a: Action) -> &'static str {
    match a {
        Action::Disable(_) => "disable",
        Action::Delete(_) => "delete",
        Action::Warn(_) => "the warning",
        Action::RedeemReminder => "the reminder",
        _ => "this step",
    }
}

fn masked(email: &str) -> String {
    EmailAddress::parse(email)
        .map(|e| e.masked())
        .unwrap_or_else(|_| "(no address)".into())
}

fn day(t: OffsetDateTime) -> String {
    format_time(t)[..10].to_string()
}

/// How a row write went.
enum Written {
    Done,
    /// The row already shows this step: an earlier, interrupted run did it.
    AlreadyDone,
    /// Someone changed the row since the plan: the next run decides again.
    Changed,
}

/// Moves a guest's row to `state` (compare-and-swap on the planned ETag), or makes the row of
/// a guest the portal had none for.
async fn advance(
    ctx: Ctx<'_>,
    p: &PlannedAction,
    state: GuestState,
    reason: Reason,
    reminder: Option<OffsetDateTime>,
) -> Result<Written, StoreError> {
    write_step(ctx, p, state, reason, reminder, None, Vec::new()).await
}

/// [`advance`], with the mail that tells the guest (and those to its sponsors) recorded in the
/// same transaction.
async fn advance_with_mail(
    ctx: Ctx<'_>,
    p: &PlannedAction,
    state: GuestState,
    reason: Reason,
    reminder: Option<OffsetDateTime>,
    letter: Letter,
    sponsors: Vec<Letter>,
) -> Result<Written, StoreError> {
    write_step(ctx, p, state, reason, reminder, Some(letter), sponsors).await
}

async fn write_step(
    ctx: Ctx<'_>,
    p: &PlannedAction,
    state: GuestState,
    reason: Reason,
    reminder: Option<OffsetDateTime>,
    letter: Option<Letter>,
    sponsors: Vec<Letter>,
) -> Result<Written, StoreError> {
    let write = match &p.untracked {
        Some(u) => {
            let guest = Guest {
                user_id: p.user_id.clone(),
                email: u.mail.clone().unwrap_or_default(),
                request_id: None,
                policy_key: None,
                invited_at: u.created.unwrap_or(ctx.now),
                access_ends_at: None,
                redeem_url: None,
                language: ctx
                    .portal
                    .settings
                    .portal
                    .default_language
                    .as_str()
                    .to_string(),
                first_name: String::new(),
                last_name: String::new(),
                organisation: String::new(),
                state,
                state_changed_at: ctx.now,
                removal_reason: Some(reason.as_str().to_string()),
                reminder_sent_at: reminder,
                // This record does not make the guest the portal's: with the scope back at
                // `portal`, it is left alone.
                origin: GuestOrigin::Cleanup,
                invite_decided_at: None,
                notice_mail_id: letter.as_ref().map(|l| l.id.clone()),
                last_mail_delivered: None,
                sponsors: Vec::new(),
                reviews: Default::default(),
            };
            Write::Insert(guests::to_row(&guest))
        }
        None => {
            let mut row =
                guests::advance_row(&p.user_id, state, ctx.now, reason.as_str(), reminder);
            if let Some(l) = &letter {
                row.set("NoticeMailId", l.id.clone());
            }
            Write::Merge(row, p.etag.clone().unwrap_or_else(|| "*".into()))
        }
    };
    // The outbox writes the guest's row when the mail is delivered: the clock of the stage
    // starts then.
    let letters = letter
        .map(|l| l.with_receipt(&p.user_id))
        .into_iter()
        .chain(sponsors)
        .collect();
    let recorded = outbox::record(
        &ctx.portal.outbox,
        TableName::Guests,
        &guests::partition_of(&p.user_id),
        vec![write],
        letters,
        ctx.now,
    )
    .await;
    match recorded {
        Ok((_, mail)) => {
            ctx.portal.outbox.send_soon(mail);
            Ok(Written::Done)
        }
        Err(StoreError::Changed | StoreError::AlreadyExists) => {
            already_or_changed(ctx, p, state).await
        }
        Err(e) => Err(e),
    }
}

async fn already_or_changed(
    ctx: Ctx<'_>,
    p: &PlannedAction,
    state: GuestState,
) -> Result<Written, StoreError> {
    Ok(match guests::get(&ctx.portal.store, &p.user_id).await? {
        Some((g, _)) if g.state == state => Written::AlreadyDone,
        _ => Written::Changed,
    })
}

async fn audit_guest(
    ctx: Ctx<'_>,
    action: &str,
    user_id: &str,
    detail: String,
) -> Result<(), StoreError> {
    audit::record(
        &ctx.portal.store,
        AuditEntry::new(ctx.now, ctx.actor, action)
            .user(user_id)
            .detail(detail),
    )
    .await
}

/// Writes the audit entries of a wave's removals in one go (a wave is at most a few hundred
/// guests: a handful of transactions instead of a round trip each). The rows already say what
/// was done; if the entries cannot be written, each of those guests is reported as failed.
async fn audit_wave(ctx: Ctx<'_>, recorded: Vec<(Outcome, Option<AuditEntry>)>) -> Vec<Outcome> {
    let (outcomes, entries): (Vec<Outcome>, Vec<Option<AuditEntry>>) = recorded.into_iter().unzip();
    let audited: Vec<bool> = entries.iter().map(Option::is_some).collect();
    match audit::record_all(&ctx.portal.store, entries.into_iter().flatten().collect()).await {
        Ok(()) => outcomes,
        Err(e) => outcomes
            .into_iter()
            .zip(audited)
            .map(|(o, audited)| {
                if audited {
                    Outcome::new(
                        Kind::Failed,
                        format!("{}, but its audit entry could not be written: {e}", o.line),
                    )
                } else {
                    o
                }
            })
            .collect(),
    }
}

/// A removal Graph carried out (or found already done), to be recorded.
struct Confirmed<'a> {
    p: &'a PlannedAction,
    reason: Reason,
    verb: &'static str,
    state: GuestState,
    kind: Kind,
    audit_action: &'static str,
    detail: String,
    line: String,
}

/// What Graph's answer to one removal means for the records: a [`Confirmed`] removal, or the
/// outcome of one that failed (nothing to record; the next run tries again).
fn confirmed(p: &PlannedAction, result: Result<(), GraphError>) -> Result<Confirmed<'_>, Outcome> {
    let id = &p.user_id;
    let (reason, disable) = match p.action {
        Action::Disable(r) => (r, true),
        Action::Delete(r) => (r, false),
        _ => unreachable!("only removals are sent to Graph"),
    };
    let verb = if disable { "disable" } else { "delete" };
    let (state, kind, audit_action, detail, line) = match result {
        Ok(()) if disable => (
            GuestState::Disabled,
            Kind::Disabled,
            "guest.disabled",
            format!("{}; deleted after the grace period", reason.describe()),
            format!("disabled guest {id}: {}", reason.describe()),
        ),
        Ok(()) => (
            GuestState::Deleted,
            Kind::Deleted,
            "guest.deleted",
            format!("{}; soft delete, restorable for 30 days", reason.describe()),
            format!(
                "deleted guest {id} (soft delete, restorable for 30 days): {}",
                reason.describe()
            ),
        ),
        Err(GraphError::NotFound(_)) => (
            GuestState::Deleted,
            Kind::Gone,
            "guest.gone",
            "no longer in the directory".to_string(),
            format!("guest {id} is no longer in the directory"),
        ),
        Err(e) => {
            let line = format!("could not {verb} guest {id}: {e}; the next run tries again");
            return Err(Outcome::new(Kind::Failed, line));
        }
    };
    Ok(Confirmed {
        p,
        reason,
        verb,
        state,
        kind,
        audit_action,
        detail,
        line,
    })
}

/// Records the removals Graph confirmed: the rows the portal tracks as compare-and-swap merges
/// in transactions by partition, then, one by one, the rows whose transaction found a change
/// (to tell which) and the rows of guests the portal had none for. Returns each outcome with
/// the audit entry to write for it.
async fn record_removals(
    ctx: Ctx<'_>,
    confirmed: Vec<Confirmed<'_>>,
) -> Vec<(Outcome, Option<AuditEntry>)> {
    let batched: Vec<&Confirmed<'_>> = confirmed
        .iter()
        .filter(|c| c.p.untracked.is_none())
        .collect();
    let rows: Vec<(Row, String)> = batched
        .iter()
        .map(|c| {
            let row = guests::advance_row(&c.p.user_id, c.state, ctx.now, c.reason.as_str(), None);
            (row, c.p.etag.clone().unwrap_or_else(|| "*".into()))
        })
        .collect();
    let written = ctx.portal.store.merge_batch(TableName::Guests, &rows).await;
    let mut recorded = Vec::with_capacity(confirmed.len());
    let mut one_by_one: Vec<&Confirmed<'_>> = confirmed
        .iter()
        .filter(|c| c.p.untracked.is_some())
        .collect();
    for (c, result) in batched.into_iter().zip(written) {
        match result {
            Ok(()) => recorded.push(recorded_as(ctx, c, Ok(Written::Done))),
            Err(StoreError::Changed) => one_by_one.push(c),
            Err(e) => recorded.push(recorded_as(ctx, c, Err(e))),
        }
    }
    // (Boxed before they are streamed: rustc cannot yet prove a stream of borrowing async
    // futures `Send` for every lifetime, which warp's server requires.)
    let singles: Vec<BoxedRemoval<'_>> = one_by_one
        .into_iter()
        .map(|c| {
            Box::pin(async move {
                let written = advance(ctx, c.p, c.state, c.reason, None).await;
                recorded_as(ctx, c, written)
            }) as BoxedRemoval<'_>
        })
        .collect();
    let singles: Vec<(Outcome, Option<AuditEntry>)> = stream::iter(singles)
        .buffer_unordered(TABLE_CONCURRENCY)
        .collect()
        .await;
    recorded.extend(singles);
    recorded
}

/// The outcome of recording one confirmed removal, and its audit entry if this run wrote it.
fn recorded_as(
    ctx: Ctx<'_>,
    c: &Confirmed<'_>,
    written: Result<Written, StoreError>,
) -> (Outcome, Option<AuditEntry>) {
    let id = &c.p.user_id;
    match written {
        Ok(Written::Done) => {
            let entry = AuditEntry::new(ctx.now, ctx.actor, c.audit_action)
                .user(id)
                .detail(c.detail.clone());
            (Outcome::new(c.kind, c.line.clone()), Some(entry))
        }
        Ok(Written::AlreadyDone) => (
            Outcome::new(
                Kind::AlreadyDone,
                format!(
                    "guest {id}: {} was already recorded by an earlier run",
                    c.verb
                ),
            ),
            None,
        ),
        Ok(Written::Changed) => (
            Outcome::new(
                c.kind,
                format!(
                    "{} (its record changed meanwhile; the next run looks again)",
                    c.line
                ),
            ),
            None,
        ),
        Err(e) => (
            Outcome::new(
                Kind::Failed,
                format!(
                    "{}, but recording it failed: {e}; the next run records it",
                    c.line
                ),
            ),
            None,
        ),
    }
}

/// Reminders, warnings, restores and skips: mail and records, no Graph write.
async fn act_without_graph(ctx: Ctx<'_>, p: &PlannedAction) -> Outcome {
    let result = match p.action {
        Action::RedeemReminder => mail_and_advance(ctx, p, None).await,
        Action::Warn(reason) => mail_and_advance(ctx, p, Some(reason)).await,
        Action::Restore(why) => restore(ctx, p, why).await,
        Action::Skip(SkipWhy::PreExisting) => record_pre_existing(ctx, p).await,
        Action::Skip(why) => audit_guest(ctx, "guest.skipped", &p.user_id, why.describe().into())
            .await
            .map(|()| {
                Outcome::new(
                    Kind::Skipped,
                    format!("skipped guest {}: {}", p.user_id, why.describe()),
                )
            }),
        // Removals go through `$batch` in `wave`; `Nothing` is never planned.
        _ => Ok(Outcome::new(
            Kind::Skipped,
            format!("guest {}: nothing to do", p.user_id),
        )),
    };
    result.unwrap_or_else(|e| {
        Outcome::new(
            Kind::Failed,
            format!("guest {}: {e}; the next run tries again", p.user_id),
        )
    })
}

/// The portal's invitation was answered with a guest that existed before: the record says so
/// from now on, and the guest is outside the portal's scope for good.
async fn record_pre_existing(ctx: Ctx<'_>, p: &PlannedAction) -> Result<Outcome, StoreError> {
    let id = &p.user_id;
    let etag = p.etag.as_deref().unwrap_or("*");
    match guests::record_pre_existing(&ctx.portal.store, id, etag).await {
        Ok(_) => {}
        Err(StoreError::Changed | StoreError::NotFound) => {
            return Ok(Outcome::new(
                Kind::Skipped,
                format!("guest {id}: its record changed meanwhile; the next run looks again"),
            ))
        }
        Err(e) => return Err(e),
    }
    audit_guest(
        ctx,
        "guest.pre_existing",
        id,
        SkipWhy::PreExisting.describe().into(),
    )
    .await?;
    Ok(Outcome::new(
        Kind::Skipped,
        format!(
            "recorded guest {id} as pre-existing: it {}",
            SkipWhy::PreExisting.describe()
        ),
    ))
}

/// What a mail needs to know about the guest: the row (tracked) or the listing (untracked).
struct Recipient {
    email: String,
    first_name: String,
    language: Language,
    redeem_url: Option<String>,
    etag: Option<String>,
    /// The portal's record, whose sponsors hear too.
    record: Option<Guest>,
}

/// The reminder (`reason` None) or a removal warning. The row moves on only once the mail
/// is sent: a failed mail is retried by the next run, and no one is removed unwarned.
async fn mail_and_advance(
    ctx: Ctx<'_>,
    p: &PlannedAction,
    reason: Option<Reason>,
) -> Result<Outcome, StoreError> {
    let id = &p.user_id;
    let settings = &ctx.portal.settings;
    let target = GuestState::Warned;
    let recipient = match &p.untracked {
        Some(u) => Recipient {
            email: u.mail.clone().unwrap_or_default(),
            first_name: String::new(),
            language: settings.portal.default_language,
            redeem_url: None,
            etag: None,
            record: None,
        },
        None => match guests::get(&ctx.portal.store, id).await? {
            None => {
                return Ok(Outcome::new(
                    Kind::Skipped,
                    format!("guest {id}: its record is gone; the next run decides again"),
                ))
            }
            Some((g, etag)) => {
                if p.etag.as_deref().is_some_and(|planned| planned != etag) {
                    let kind = if g.state == target {
                        Kind::AlreadyDone
                    } else {
                        Kind::Skipped
                    };
                    return Ok(Outcome::new(
                        kind,
                        format!("guest {id}: its record changed since the plan (now {}); not mailed again", g.state.as_str()),
                    ));
                }
                Recipient {
                    language: g
                        .language
                        .parse()
                        .unwrap_or(settings.portal.default_language),
                    email: g.email.clone(),
                    first_name: g.first_name.clone(),
                    redeem_url: g.redeem_url.clone(),
                    etag: Some(etag),
                    record: Some(g),
                }
            }
        },
    };
    if recipient.email.is_empty() {
        audit_guest(ctx, "guest.skipped", id, "no mail address to warn".into()).await?;
        return Ok(Outcome::new(
            Kind::Skipped,
            format!("skipped guest {id}: no mail address to warn, so it is not removed"),
        ));
    }
    let brand = super::super::web::brand(ctx.portal);
    let rules = &settings.cleanup.rules;
    let (mail, disable_on, audit_action, kind, what, notice) = match reason {
        None => {
            let on = ctx.now + Duration::days(i64::from(rules.unredeemed_remove_days));
            let url = recipient
                .redeem_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .unwrap_or(FALLBACK_REDEEM_URL);
            (
                views::redeem_reminder_mail(
                    &brand,
                    recipient.language,
                    &recipient.first_name,
                    url,
                    &day(on),
                ),
                on,
                "guest.reminded",
                Kind::Reminded,
                "reminded to redeem the invitation".to_string(),
                RemovalReason::Unredeemed,
            )
        }
        Some(r) => {
            // An access ended by its review is disabled as soon as the guest has been told.
            let wait = match r {
                Reason::Review => 0,
                _ => rules.warning_days,
            };
            let on = ctx.now + Duration::days(i64::from(wait));
            let why = match r {
                Reason::Inactive => RemovalReason::Inactive,
                Reason::Review => RemovalReason::Review,
                _ => RemovalReason::AccessPeriodOver,
            };
            (
                views::removal_warning_mail(
                    &brand,
                    recipient.language,
                    &recipient.first_name,
                    &day(on),
                    why,
                ),
                on,
                "guest.warned",
                Kind::Warned,
                format!("warned: {}", r.describe()),
                why,
            )
        }
    };
    let address = masked(&recipient.email);
    let letter = Letter::new(
        match reason {
            None => MailKind::RedeemReminder,
            Some(_) => MailKind::RemovalWarning,
        },
        &recipient.email,
        mail.subject,
        mail.text,
        mail.html,
    );
    let step = PlannedAction {
        etag: recipient.etag.or_else(|| p.etag.clone()),
        ..p.clone()
    };
    let reason = reason.unwrap_or(Reason::Unredeemed);
    let reminder = (reason == Reason::Unredeemed).then_some(ctx.now);
    // The sponsors hear it too, before anything is taken from the guest they vouch for.
    let sponsors = match &recipient.record {
        Some(g) => {
            let policies = ctx.portal.policies().await?;
            let policy = g
                .policy_key
                .as_deref()
                .and_then(|key| policies.iter().find(|p| p.key() == key));
            crate::functions::reviews::notice_letters(ctx.portal, g, policy, disable_on, notice)
        }
        None => Vec::new(),
    };
    let told = sponsors.len();
    // The guest's new state and the mails that tell them and their sponsors are one
    // transaction in the guest's partition: a warning is recorded as sent exactly when its
    // mail is in the outbox.
    let written = advance_with_mail(ctx, &step, target, reason, reminder, letter, sponsors).await?;
    let detail = format!(
        "{address}; {what}; disabled on {} unless resolved; {told} sponsors told",
        day(disable_on)
    );
    let line = format!(
        "guest {id} ({address}) {what}; disabled on {} unless resolved",
        day(disable_on)
    );
    Ok(match written {
        Written::Done => {
            audit_guest(ctx, audit_action, id, detail).await?;
            Outcome::new(kind, line)
        }
        Written::AlreadyDone => Outcome::new(Kind::AlreadyDone, line),
        Written::Changed => Outcome::new(
            kind,
            format!("{line} (its record changed meanwhile; the next run looks again)"),
        ),
    })
}

/// Back to active: the reason for removal went away (or an admin decided). Only the record
/// changes; the clocks of the rules start again from now.
async fn restore(
    ctx: Ctx<'_>,
    p: &PlannedAction,
    why: crate::core::cleanup::RestoreWhy,
) -> Result<Outcome, StoreError> {
    let id = &p.user_id;
    let Some((mut g, etag)) = guests::get(&ctx.portal.store, id).await? else {
        return Ok(Outcome::new(
            Kind::Skipped,
            format!("guest {id}: its record is gone; nothing to restore"),
        ));
    };
    if p.etag.as_deref().is_some_and(|planned| planned != etag) {
        let kind = if g.state == GuestState::Active {
            Kind::AlreadyDone
        } else {
            Kind::Skipped
        };
        return Ok(Outcome::new(
            kind,
            format!("guest {id}: its record changed since the plan; the next run decides again"),
        ));
    }
    let was = g.state;
    g.state = GuestState::Active;
    g.state_changed_at = ctx.now;
    g.removal_reason = None;
    g.reminder_sent_at = None;
    match guests::save(&ctx.portal.store, &g, &etag).await {
        Ok(_) => {}
        Err(StoreError::Changed) => {
            return Ok(Outcome::new(
                Kind::Skipped,
                format!("guest {id}: its record changed meanwhile; the next run decides again"),
            ))
        }
        Err(e) => return Err(e),
    }
    audit_guest(
        ctx,
        "guest.restored",
        id,
        format!("{} -> active: {}", was.as_str(), why.describe()),
    )
    .await?;
    Ok(Outcome::new(
        Kind::Restored,
        format!(
            "guest {id} back to active (was {}): {}",
            was.as_str(),
            why.describe()
        ),
    ))
}
