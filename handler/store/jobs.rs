//! The timer's own records in the Jobs table: a lease so two overlapping runs never act
//! twice, and a checkpoint with the run's plan so a run stopped by the time limit resumes
//! where it stopped instead of starting over.
//!
//! | RowKey         | what                                                                |
//! |----------------|---------------------------------------------------------------------|
//! | `lease`        | who holds the job, until when (the real clock, not the host's UtcNow) |
//! | `checkpoint`   | phase (listing / acting), the nextLink to follow, counters, position |
//! | `plan-NNNNNN`  | the planned actions of listing page NNNNNN, one compact line each    |
//!
//! All rows of a job share its PartitionKey (the job name), so a run reads its whole plan
//! with one partition query. Only the lease holder writes the other rows, so they are
//! written without ETags; the lease itself is taken by insert or by compare-and-swap.

use time::OffsetDateTime;

use super::{Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_cmp, odata_eq};
use crate::core::cleanup::{Action, Reason, RestoreWhy, SkipWhy};

const LEASE: &str = "lease";
const CHECKPOINT: &str = "checkpoint";
const PLAN_PREFIX: &str = "plan-";
/// Table Storage holds at most 64 KiB per string property (32K UTF-16 units): plan lines are
/// spread over properties `E0`, `E1`, ... of at most this many characters.
const PROPERTY_CHARS: usize = 30_000;

// --- the lease ---------------------------------------------------------------------------

/// A lease this run holds. Renew it as the run goes; release it at the end.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: String,
    pub owner: String,
    pub expires_at: OffsetDateTime,
    etag: String,
}

#[derive(Debug, Clone)]
pub enum LeaseOutcome {
    Taken(Lease),
    /// Someone else's, valid until then.
    Held {
        owner: String,
        until: OffsetDateTime,
    },
}

fn lease_row(job: &str, owner: &str, now: OffsetDateTime, ttl: time::Duration) -> Row {
    let mut row = Row::new(job, LEASE);
    row.set("Owner", owner)
        .set("TakenAt", format_time(now))
        .set("ExpiresAt", format_time(now + ttl));
    row
}

/// Takes the job's lease: by insert when there is none, by compare-and-swap when the one
/// there has expired (its holder died without releasing it). `now` is the real clock: the
/// host's UtcNow of two overlapping invocations may be the same instant.
pub async fn take_lease(
    store: &TableStore,
    job: &str,
    owner: &str,
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Result<LeaseOutcome, StoreError> {
    let row = lease_row(job, owner, now, ttl);
    let taken = |etag: String| {
        LeaseOutcome::Taken(Lease {
            job: job.to_string(),
            owner: owner.to_string(),
            expires_at: now + ttl,
            etag,
        })
    };
    // Twice at most: a lease released between our insert and our read is gone, try again.
    for _ in 0..2 {
        match store.insert(TableName::Jobs, &row).await {
            Ok(etag) => return Ok(taken(etag)),
            Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        let Some(current) = store.get(TableName::Jobs, job, LEASE).await? else {
            continue;
        };
        let (holder, until) = store.decode(TableName::Jobs, &current, |r| {
            Ok((
                r.opt_str("Owner")?.unwrap_or("").to_string(),
                r.time("ExpiresAt")?.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ))
        })?;
        if until > now {
            return Ok(LeaseOutcome::Held {
                owner: holder,
                until,
            });
        }
        let etag = current.etag.unwrap_or_default();
        return match store.replace(TableName::Jobs, &row, &etag).await {
            Ok(etag) => Ok(taken(etag)),
            // Another run took the expired lease first: it is theirs now.
            Err(StoreError::Changed) => match store.get(TableName::Jobs, job, LEASE).await? {
                Some(r) => {
                    let (owner, until) = store.decode(TableName::Jobs, &r, |r| {
                        Ok((
                            r.opt_str("Owner")?.unwrap_or("").to_string(),
                            r.time("ExpiresAt")?.unwrap_or(now),
                        ))
                    })?;
                    Ok(LeaseOutcome::Held { owner, until })
                }
                None => Ok(LeaseOutcome::Held {
                    owner: String::new(),
                    until: now,
                }),
            },
            Err(e) => Err(e),
        };
    }
    Ok(LeaseOutcome::Held {
        owner: String::new(),
        until: now,
    })
}

/// Extends the lease. `Ok(false)`: it was lost (it expired and another run took it), and the
/// caller must stop acting at once.
pub async fn renew_lease(
    store: &TableStore,
    lease: &mut Lease,
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Result<bool, StoreError> {
    let row = lease_row(&lease.job, &lease.owner, now, ttl);
    match store.replace(TableName::Jobs, &row, &lease.etag).await {
        Ok(etag) => {
            lease.etag = etag;
            lease.expires_at = now + ttl;
            Ok(true)
        }
        Err(StoreError::Changed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease back (only if still ours).
pub async fn release_lease(store: &TableStore, lease: &Lease) -> Result<(), StoreError> {
    match store
        .delete(TableName::Jobs, &lease.job, LEASE, Some(&lease.etag))
        .await
    {
        Ok(()) | Err(StoreError::Changed) => Ok(()),
        Err(e) => Err(e),
    }
}

// --- the checkpoint ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the directory page by page and planning.
    Listing,
    /// The plan is complete and passed the cap; carrying it out.
    Acting,
}

/// Counts gathered while listing, kept with the checkpoint so a resumed run reports (and
/// caps) the whole plan, not just its own part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub listed: u32,
    pub in_scope: u32,
    pub out_of_scope: u32,
    pub excluded: u32,
    pub not_guest: u32,
    pub planned: u32,
    pub removals: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub phase: Phase,
    /// The host's UtcNow of the run that started this plan.
    pub planned_at: OffsetDateTime,
    /// The `@odata.nextLink` to follow next while listing (`None` with phase Listing: the
    /// first page).
    pub next_link: Option<String>,
    /// Listing pages done (and so the next plan chunk's number).
    pub pages: u32,
    /// Whether signInActivity was read (the inactivity rule applied) for this plan.
    pub sign_in_read: bool,
    /// Plan entries carried out so far (acting phase).
    pub acted: u32,
    pub tally: Tally,
}

pub async fn checkpoint(store: &TableStore, job: &str) -> Result<Option<Checkpoint>, StoreError> {
    let Some(row) = store.get(TableName::Jobs, job, CHECKPOINT).await? else {
        return Ok(None);
    };
    store
        .decode(TableName::Jobs, &row, |r| {
            let phase = match r.str("Phase")? {
                "listing" => Phase::Listing,
                "acting" => Phase::Acting,
                other => {
                    return Err(format!(
                        "property Phase should be listing or acting, found {other:?}"
                    ))
                }
            };
            Ok(Checkpoint {
                phase,
                planned_at: r
                    .time("PlannedAt")?
                    .ok_or("property PlannedAt is missing")?,
                next_link: r.opt_str("NextLink")?.map(str::to_string),
                pages: r.u32("Pages")?,
                sign_in_read: r.bool("SignInRead")?,
                acted: r.u32("Acted")?,
                tally: Tally {
                    listed: r.u32("Listed")?,
                    in_scope: r.u32("InScope")?,
                    out_of_scope: r.u32("OutOfScope")?,
                    excluded: r.u32("Excluded")?,
                    not_guest: r.u32("NotGuest")?,
                    planned: r.u32("Planned")?,
                    removals: r.u32("Removals")?,
                },
            })
        })
        .map(Some)
}

pub async fn save_checkpoint(
    store: &TableStore,
    job: &str,
    c: &Checkpoint,
) -> Result<(), StoreError> {
    let mut row = Row::new(job, CHECKPOINT);
    row.set(
        "Phase",
        match c.phase {
            Phase::Listing => "listing",
            Phase::Acting => "acting",
        },
    )
    .set("PlannedAt", format_time(c.planned_at))
    .set_opt("NextLink", c.next_link.clone())
    .set("Pages", c.pages)
    .set("SignInRead", c.sign_in_read)
    .set("Acted", c.acted)
    .set("Listed", c.tally.listed)
    .set("InScope", c.tally.in_scope)
    .set("OutOfScope", c.tally.out_of_scope)
    .set("Excluded", c.tally.excluded)
    .set("NotGuest", c.tally.not_guest)
    .set("Planned", c.tally.planned)
    .set("Removals", c.tally.removals);
    store.upsert(TableName::Jobs, &row).await.map(|_| ())
}

// --- the plan ----------------------------------------------------------------------------

/// What a guest the portal has no record of looks like, for the record made when the cleanup
/// first acts on it (scope `all_guests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untracked {
    pub mail: Option<String>,
    pub created: Option<OffsetDateTime>,
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAction {
    pub action: Action,
    pub user_id: String,
    /// The ETag of the guest's row when planned: the update after acting is a
    /// compare-and-swap on it, so a resumed run sees what it already did.
    pub etag: Option<String>,
    /// Set for a guest without a row.
    pub untracked: Option<Untracked>,
}

fn reason_code(r: Reason) -> char {
    match r {
        Reason::Unredeemed => 'u',
        Reason::AccessPeriod => 'a',
        Reason::Inactive => 'i',
    }
}

fn reason_of(c: char) -> Option<Reason> {
    match c {
        'u' => Some(Reason::Unredeemed),
        'a' => Some(Reason::AccessPeriod),
        'i' => Some(Reason::Inactive),
        _ => None,
    }
}

const RESTORES: [(RestoreWhy, char); 7] = [
    (RestoreWhy::Redeemed, 'r'),
    (RestoreWhy::SignedInAgain, 's'),
    (RestoreWhy::AccessExtended, 'e'),
    (RestoreWhy::RuleOff, 'o'),
    (RestoreWhy::ReEnabled, 'b'),
    (RestoreWhy::Undeleted, 'd'),
    (RestoreWhy::NoReason, 'n'),
];

const SKIPS: [(SkipWhy, char); 3] = [
    (SkipWhy::NotGuest, 'g'),
    (SkipWhy::Excluded, 'x'),
    (SkipWhy::OutOfScope, 'o'),
];

/// Two characters: the action and its reason.
fn action_code(a: Action) -> String {
    let (kind, detail) = match a {
        Action::Nothing => ('N', '-'),
        Action::RedeemReminder => ('R', 'u'),
        Action::Warn(r) => ('W', reason_code(r)),
        Action::Disable(r) => ('D', reason_code(r)),
        Action::Delete(r) => ('X', reason_code(r)),
        Action::Restore(w) => (
            'A',
            RESTORES
                .iter()
                .find(|(x, _)| *x == w)
                .map_or('n', |(_, c)| *c),
        ),
        Action::Skip(w) => (
            'S',
            SKIPS.iter().find(|(x, _)| *x == w).map_or('o', |(_, c)| *c),
        ),
    };
    format!("{kind}{detail}")
}

fn action_of(code: &str) -> Option<Action> {
    let mut chars = code.chars();
    let (kind, detail) = (chars.next()?, chars.next()?);
    if chars.next().is_some() {
        return None;
    }
    Some(match kind {
        'N' => Action::Nothing,
        'R' => Action::RedeemReminder,
        'W' => Action::Warn(reason_of(detail)?),
        'D' => Action::Disable(reason_of(detail)?),
        'X' => Action::Delete(reason_of(detail)?),
        'A' => Action::Restore(RESTORES.iter().find(|(_, c)| *c == detail)?.0),
        'S' => Action::Skip(SKIPS.iter().find(|(_, c)| *c == detail)?.0),
        _ => return None,
    })
}

/// `code|user id|etag|untracked created|untracked mail`: ids and ETags never hold `|` or a
/// line break, and the mail (which may hold `|`) comes last.
pub fn encode(p: &PlannedAction) -> String {
    let (created, mail, flag) = match &p.untracked {
        Some(u) => (
            u.created.map(format_time).unwrap_or_default(),
            u.mail.clone().unwrap_or_default(),
            "+",
        ),
        None => (String::new(), String::new(), ""),
    };
    format!(
        "{}|{}|{}|{flag}{created}|{mail}",
        action_code(p.action),
        p.user_id,
        p.etag.as_deref().unwrap_or("")
    )
}

pub fn decode(line: &str) -> Result<PlannedAction, String> {
    let bad = || format!("unreadable plan line {line:?}");
    let mut parts = line.splitn(5, '|');
    let action = action_of(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
    let user_id = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
    let etag = parts.next().ok_or_else(bad)?;
    let created = parts.next().ok_or_else(bad)?;
    let mail = parts.next().ok_or_else(bad)?;
    let untracked = match created.strip_prefix('+') {
        None => None,
        Some(created) => Some(Untracked {
            mail: (!mail.is_empty()).then(|| mail.to_string()),
            created: if created.is_empty() {
                None
            } else {
                Some(
                    OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| bad())?,
                )
            },
        }),
    };
    Ok(PlannedAction {
        action,
        user_id: user_id.to_string(),
        etag: (!etag.is_empty()).then(|| etag.to_string()),
        untracked,
    })
}

fn chunk_key(index: u32) -> String {
    format!("{PLAN_PREFIX}{index:06}")
}

/// Saves the plan lines of one listing page (written again identically if a run stops
/// between this and its checkpoint).
pub async fn save_plan_chunk(
    store: &TableStore,
    job: &str,
    index: u32,
    entries: &[PlannedAction],
) -> Result<(), StoreError> {
    let mut row = Row::new(job, chunk_key(index));
    let mut property = 0;
    let mut text = String::new();
    for e in entries {
        let line = encode(e);
        if !text.is_empty() && text.len() + line.len() + 1 > PROPERTY_CHARS {
            row.set(&format!("E{property}"), std::mem::take(&mut text));
            property += 1;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&line);
    }
    if !text.is_empty() {
        row.set(&format!("E{property}"), text);
    }
    row.set("Count", entries.len() as u32);
    store.upsert(TableName::Jobs, &row).await.map(|_| ())
}

/// The whole plan, in listing order.
pub async fn load_plan(store: &TableStore, job: &str) -> Result<Vec<PlannedAction>, StoreError> {
    let mut rows = store
        .query(
            TableName::Jobs,
            Some(format!(
                "{} and {} and {}",
                odata_eq("PartitionKey", job),
                odata_cmp("RowKey", "ge", PLAN_PREFIX),
                odata_cmp("RowKey", "lt", "plan.")
            )),
        )
        .await?;
    rows.sort_by(|a, b| a.row_key.cmp(&b.row_key));
    let mut plan = Vec::new();
    for row in &rows {
        let entries = store.decode(TableName::Jobs, row, |r| {
            let mut out = Vec::new();
            let mut i = 0;
            while let Some(text) = r.opt_str(&format!("E{i}"))? {
                for line in text.lines().filter(|l| !l.is_empty()) {
                    out.push(decode(line)?);
                }
                i += 1;
            }
            Ok(out)
        })?;
        plan.extend(entries);
    }
    Ok(plan)
}

/// Forgets the checkpoint and the plan (done, stopped by the cap, or stale).
pub async fn clear(store: &TableStore, job: &str) -> Result<(), StoreError> {
    let rows = store
        .query(
            TableName::Jobs,
            Some(format!(
                "{} and RowKey ne '{LEASE}'",
                odata_eq("PartitionKey", job)
            )),
        )
        .await?;
    // The checkpoint goes first: a run that stops halfway leaves plan rows without a
    // checkpoint, which the next run ignores and overwrites.
    if let Some(c) = rows.iter().find(|r| r.row_key == CHECKPOINT) {
        store.delete(TableName::Jobs, job, &c.row_key, None).await?;
    }
    for r in rows.iter().filter(|r| r.row_key != CHECKPOINT) {
        store.delete(TableName::Jobs, job, &r.row_key, None).await?;
    }
    Ok(())
}

// --- cadence -------------------------------------------------------------------------------

/// When a job last finished a whole pass (host time), kept apart from its checkpoint so
/// clearing a finished plan keeps it.
pub async fn last_pass(
    store: &TableStore,
    job: &str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let Some(row) = store
        .get(TableName::Jobs, &format!("{job}-passes"), "last")
        .await?
    else {
        return Ok(None);
    };
    store.decode(TableName::Jobs, &row, |r| r.time("At"))
}

pub async fn record_pass(
    store: &TableStore,
    job: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut row = Row::new(format!("{job}-passes"), "last");
    row.set("At", format_time(at));
    store.upsert(TableName::Jobs, &row).await.map(|_| ())
}

/// Whether a run of `job` stopped halfway and left a checkpoint to resume.
pub async fn in_progress(store: &TableStore, job: &str) -> Result<bool, StoreError> {
    Ok(store.get(TableName::Jobs, job, CHECKPOINT).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_action_round_trips_as_two_characters() {
        let mut all = vec![Action::Nothing, Action::RedeemReminder];
        for r in [Reason::Unredeemed, Reason::AccessPeriod, Reason::Inactive] {
            all.extend([Action::Warn(r), Action::Disable(r), Action::Delete(r)]);
        }
        all.extend(RESTORES.iter().map(|(w, _)| Action::Restore(*w)));
        all.extend(SKIPS.iter().map(|(w, _)| Action::Skip(*w)));
        for a in all {
            let code = action_code(a);
            assert_eq!(code.len(), 2);
            assert_eq!(action_of(&code), Some(a), "{code}");
        }
        assert_eq!(action_of("Dz"), None);
        assert_eq!(action_of("D"), None);
    }

    #[test]
    fn plan_lines_round_trip() {
        let tracked = PlannedAction {
            action: Action::Delete(Reason::AccessPeriod),
            user_id: "0b1c2d3e-0000-4000-8000-000000000001".into(),
            etag: Some("W/\"datetime'2026-11-28T10%3A00%3A00.123Z'\"".into()),
            untracked: None,
        };
        assert_eq!(decode(&encode(&tracked)).unwrap(), tracked);
        let untracked = PlannedAction {
            action: Action::RedeemReminder,
            user_id: "u2".into(),
            etag: None,
            untracked: Some(Untracked {
                mail: Some("odd|local@partner.example".into()),
                created: Some(datetime!(2026-01-02 3:04:05 UTC)),
            }),
        };
        assert_eq!(decode(&encode(&untracked)).unwrap(), untracked);
        let bare = PlannedAction {
            untracked: Some(Untracked {
                mail: None,
                created: None,
            }),
            ..untracked
        };
        assert_eq!(decode(&encode(&bare)).unwrap(), bare);
        assert!(decode("Xa||").is_err());
        assert!(decode("garbage").is_err());
    }

    #[test]
    fn a_line_is_compact() {
        let p = PlannedAction {
            action: Action::Disable(Reason::Inactive),
            user_id: uuid::Uuid::new_v4().to_string(),
            etag: Some("W/\"datetime'2026-11-28T10%3A00%3A00.1234567Z'\"".into()),
            untracked: None,
        };
        // ~1,000 lines per listing page fit in one row (1 MiB) over a few properties.
        assert!(encode(&p).len() < 100, "{}", encode(&p));
    }
}
