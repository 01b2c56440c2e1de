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
//!
//! The checkpoint and the plan rows drive removals, and anyone who can write this table could
//! write them: each is signed with the portal's signing key (`PORTAL_SIGNING_KEYS`, see
//! `core::token`) over its whole content and its key, and a plan row also over the id of the
//! plan it belongs to (which only the signed checkpoint names). What does not verify is
//! returned as [`Untrusted`] with the reason, never acted on.

use serde_json::json;
use time::OffsetDateTime;

use super::{Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_cmp, odata_eq};
use crate::core::cleanup::{Action, Reason, RestoreWhy, SkipWhy};
use crate::core::token::SigningKeys;

const LEASE: &str = "lease";
const CHECKPOINT: &str = "checkpoint";
const PLAN_PREFIX: &str = "plan-";
/// The property holding a row's signature, and the kinds of signed record.
const SIGNATURE: &str = "Signature";
const CHECKPOINT_KIND: &str = "cleanup-checkpoint";
const PLAN_KIND: &str = "cleanup-plan";

/// A checkpoint or plan that is not to be trusted, and why (for the log and the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted(pub String);

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
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
    /// Warning mails and reminders planned (capped like removals).
    pub warnings: u32,
    /// Guests listed without `signInActivity` although it was asked for: the inactivity rule
    /// was not applied to them.
    pub sign_in_missing: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub phase: Phase,
    /// The host's UtcNow of the run that started this plan.
    pub planned_at: OffsetDateTime,
    /// A random id for this plan, which its rows are signed with: rows of another plan (an
    /// older one kept by someone, say) do not verify as this one's.
    pub plan_id: String,
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

impl Checkpoint {
    /// A new plan, listed from the first page.
    pub fn new(planned_at: OffsetDateTime, sign_in_read: bool) -> Checkpoint {
        Checkpoint {
            phase: Phase::Listing,
            planned_at,
            plan_id: uuid::Uuid::new_v4().simple().to_string(),
            next_link: None,
            pages: 0,
            sign_in_read,
            acted: 0,
            tally: Tally::default(),
        }
    }

    /// Everything the checkpoint says, in one unambiguous text: what its signature covers.
    fn signed_content(&self, job: &str) -> String {
        let t = &self.tally;
        json!([
            job,
            match self.phase {
                Phase::Listing => "listing",
                Phase::Acting => "acting",
            },
            format_time(self.planned_at),
            self.plan_id,
            self.next_link,
            self.pages,
            self.sign_in_read,
            self.acted,
            [
                t.listed,
                t.in_scope,
                t.out_of_scope,
                t.excluded,
                t.not_guest,
                t.planned,
                t.removals,
                t.warnings,
                t.sign_in_missing
            ],
        ])
        .to_string()
    }
}

fn checkpoint_of(r: &Row) -> Result<Checkpoint, String> {
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
        plan_id: r.str("PlanId")?.to_string(),
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
            warnings: r.u32("Warnings")?,
            sign_in_missing: r.u32("SignInMissing")?,
        },
    })
}

/// The job's checkpoint: `None` when there is none, [`Untrusted`] when there is one that
/// does not read or does not verify under `keys`.
pub async fn checkpoint(
    store: &TableStore,
    keys: &SigningKeys,
    job: &str,
) -> Result<Option<Result<Checkpoint, Untrusted>>, StoreError> {
    let Some(row) = store.get(TableName::Jobs, job, CHECKPOINT).await? else {
        return Ok(None);
    };
    let c = match checkpoint_of(&row) {
        Ok(c) => c,
        Err(why) => {
            return Ok(Some(Err(Untrusted(format!(
                "the checkpoint does not read: {why}"
            )))))
        }
    };
    let signature = row.opt_str(SIGNATURE).ok().flatten();
    Ok(Some(
        keys.verify_record(CHECKPOINT_KIND, &c.signed_content(job), signature)
            .map(|()| c)
            .map_err(|why| Untrusted(format!("the checkpoint is not trusted: {why}"))),
    ))
}

pub async fn save_checkpoint(
    store: &TableStore,
    keys: &SigningKeys,
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
    .set("PlanId", c.plan_id.clone())
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
    .set("Removals", c.tally.removals)
    .set("Warnings", c.tally.warnings)
    .set("SignInMissing", c.tally.sign_in_missing)
    .set(
        SIGNATURE,
        keys.sign_record(CHECKPOINT_KIND, &c.signed_content(job)),
    );
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
        Reason::Review => 'v',
    }
}

fn reason_of(c: char) -> Option<Reason> {
    match c {
        'u' => Some(Reason::Unredeemed),
        'a' => Some(Reason::AccessPeriod),
        'i' => Some(Reason::Inactive),
        'v' => Some(Reason::Review),
        _ => None,
    }
}

const RESTORES: [(RestoreWhy, char); 8] = [
    (RestoreWhy::Redeemed, 'r'),
    (RestoreWhy::SignedInAgain, 's'),
    (RestoreWhy::AccessExtended, 'e'),
    (RestoreWhy::RuleOff, 'o'),
    (RestoreWhy::ReEnabled, 'b'),
    (RestoreWhy::Undeleted, 'd'),
    (RestoreWhy::NoReason, 'n'),
    (RestoreWhy::ReviewKept, 'k'),
];

const SKIPS: [(SkipWhy, char); 4] = [
    (SkipWhy::NotGuest, 'g'),
    (SkipWhy::Excluded, 'x'),
    (SkipWhy::OutOfScope, 'o'),
    (SkipWhy::PreExisting, 'p'),
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

/// What a plan row's signature covers: the job, the row, the plan it belongs to, its lines.
fn chunk_content(job: &str, index: u32, plan_id: &str, lines: &[String]) -> String {
    json!([job, chunk_key(index), plan_id, lines]).to_string()
}

/// Saves the plan lines of one listing page (written again identically if a run stops
/// between this and its checkpoint), signed as part of plan `plan_id`.
pub async fn save_plan_chunk(
    store: &TableStore,
    keys: &SigningKeys,
    job: &str,
    plan_id: &str,
    index: u32,
    entries: &[PlannedAction],
) -> Result<(), StoreError> {
    let mut row = Row::new(job, chunk_key(index));
    let lines: Vec<String> = entries.iter().map(encode).collect();
    let mut property = 0;
    let mut text = String::new();
    for line in &lines {
        if !text.is_empty() && text.len() + line.len() + 1 > PROPERTY_CHARS {
            row.set(&format!("E{property}"), std::mem::take(&mut text));
            property += 1;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line);
    }
    if !text.is_empty() {
        row.set(&format!("E{property}"), text);
    }
    row.set("Count", entries.len() as u32).set(
        SIGNATURE,
        keys.sign_record(PLAN_KIND, &chunk_content(job, index, plan_id, &lines)),
    );
    store.upsert(TableName::Jobs, &row).await.map(|_| ())
}

/// The plan of `checkpoint` as its rows hold it (the pages it has listed, in listing order),
/// or why it is not to be trusted: a row that does not read or verify as this plan's, or
/// rows that hold a different number of entries than the checkpoint counted.
pub async fn load_plan(
    store: &TableStore,
    keys: &SigningKeys,
    job: &str,
    checkpoint: &Checkpoint,
) -> Result<Result<Vec<PlannedAction>, Untrusted>, StoreError> {
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
        let index = row
            .row_key
            .strip_prefix(PLAN_PREFIX)
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| chunk_key(*n) == row.row_key);
        let Some(index) = index else {
            return Ok(Err(Untrusted(format!(
                "row {} is not a plan row of this job",
                row.row_key
            ))));
        };
        // A page whose checkpoint was never saved (the run stopped in between) is listed
        // again by the next run and its row written anew: not part of the plan yet.
        if index >= checkpoint.pages {
            continue;
        }
        let mut lines = Vec::new();
        let mut i = 0;
        loop {
            match row.opt_str(&format!("E{i}")) {
                Ok(Some(text)) => {
                    lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string))
                }
                Ok(None) => break,
                Err(why) => {
                    return Ok(Err(Untrusted(format!(
                        "plan row {} does not read: {why}",
                        row.row_key
                    ))))
                }
            }
            i += 1;
        }
        let signature = row.opt_str(SIGNATURE).ok().flatten();
        let content = chunk_content(job, index, &checkpoint.plan_id, &lines);
        if let Err(why) = keys.verify_record(PLAN_KIND, &content, signature) {
            return Ok(Err(Untrusted(format!(
                "plan row {} is not trusted as this plan's: {why}",
                row.row_key
            ))));
        }
        for line in &lines {
            match decode(line) {
                Ok(p) => plan.push(p),
                Err(why) => return Ok(Err(Untrusted(why))),
            }
        }
    }
    if plan.len() != checkpoint.tally.planned as usize {
        return Ok(Err(Untrusted(format!(
            "the plan rows hold {} entries, the checkpoint counted {}",
            plan.len(),
            checkpoint.tally.planned
        ))));
    }
    Ok(Ok(plan))
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
        for r in [
            Reason::Unredeemed,
            Reason::AccessPeriod,
            Reason::Inactive,
            Reason::Review,
        ] {
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

    /// Every field the run acts on is under the signature: changing any one changes what is
    /// signed.
    #[test]
    fn a_checkpoint_signs_every_field() {
        let base = Checkpoint {
            phase: Phase::Acting,
            planned_at: datetime!(2026-11-28 10:00 UTC),
            plan_id: "p1".into(),
            next_link: Some("https://graph.microsoft.com/v1.0/users?$skiptoken=x".into()),
            pages: 3,
            sign_in_read: true,
            acted: 40,
            tally: Tally {
                listed: 1,
                in_scope: 2,
                out_of_scope: 3,
                excluded: 4,
                not_guest: 5,
                planned: 6,
                removals: 7,
                warnings: 8,
                sign_in_missing: 9,
            },
        };
        let signed = base.signed_content("cleanup");
        let mut variants: Vec<Checkpoint> = Vec::new();
        let mut push = |f: &dyn Fn(&mut Checkpoint)| {
            let mut c = base.clone();
            f(&mut c);
            variants.push(c);
        };
        push(&|c| c.phase = Phase::Listing);
        push(&|c| c.planned_at += time::Duration::seconds(1));
        push(&|c| c.plan_id = "p2".into());
        push(&|c| c.next_link = Some("https://evil.example/v1.0/users".into()));
        push(&|c| c.next_link = None);
        push(&|c| c.pages += 1);
        push(&|c| c.sign_in_read = false);
        push(&|c| c.acted = 0);
        push(&|c| c.tally.listed += 1);
        push(&|c| c.tally.in_scope += 1);
        push(&|c| c.tally.out_of_scope += 1);
        push(&|c| c.tally.excluded += 1);
        push(&|c| c.tally.not_guest += 1);
        push(&|c| c.tally.planned += 1);
        push(&|c| c.tally.removals += 1);
        push(&|c| c.tally.warnings += 1);
        push(&|c| c.tally.sign_in_missing += 1);
        for v in &variants {
            assert_ne!(v.signed_content("cleanup"), signed, "{v:?}");
        }
        assert_ne!(base.signed_content("other-job"), signed);
        // And a plan row is bound to its plan and its place.
        let lines = vec!["Xa|u1|e||".to_string()];
        let row = chunk_content("cleanup", 0, "p1", &lines);
        assert_ne!(chunk_content("cleanup", 1, "p1", &lines), row);
        assert_ne!(chunk_content("cleanup", 0, "p2", &lines), row);
        assert_ne!(chunk_content("cleanup", 0, "p1", &[]), row);
    }
}
