//! `function-cleanup`: the timer. The host posts the invocation as JSON; the answer carries the
//! run's story in `Logs`, which the host writes to its log (Application Insights).
//!
//! The time the run acts on is the host's `Metadata.sys.UtcNow` (falling back to the clock):
//! one consistent "now" for the whole run. Leases and the time budget use the real clock,
//! since two overlapping invocations may carry the same UtcNow.
//!
//! One run, under a lease in the Jobs table so two overlapping runs never both act:
//! 1. Requests: expiry, approver reminders and escalation, retries of failed setups
//!    (`approvals::sweep`), then purging the personal data of requests closed longer than
//!    `CLEANUP_RETENTION_DAYS`.
//! 2. Guests, in two phases that survive the Functions time limit:
//!    - *listing*: every guest, 999 a page, decided one by one by `core::cleanup::decide`; each
//!      page's plan is saved as a row and the nextLink as a checkpoint;
//!    - *acting* ([`acting`]): once the whole plan is known and passed the per-run caps (on
//!      removals and on warnings), carried out in the guests' id order, in waves of `$batch`
//!      calls (20 writes each), the position checkpointed after each wave. Each guest a wave
//!      would mail or remove is first read again and decided again ([`recheck`]): a plan
//!      describes the past, and only what the rules still decide is done. A wave's rows and
//!      audit entries are written while the next wave is with Graph.
//!
//!    A run that reaches `CLEANUP_TIME_BUDGET_SECONDS` stops between two pages or two waves
//!    and the next run resumes there, after checking the plan's signatures (`store::jobs`)
//!    and the caps as they are set then. Each guest's row is updated with a compare-and-swap
//!    on the ETag it had when planned, so a wave repeated after a crash finds its work done.
//!
//! 3. Access reviews (`reviews::sweep`): after the guests, on the records the run read, the
//!    reviews that are due open (their sponsors mailed), unanswered ones are reminded, and those
//!    nobody answered by their deadline get the policy's default. An ended review only marks
//!    the record: the next pass warns the guest and disables it as above, with every safeguard.
//!
//! A dry run (`CLEANUP_DRY_RUN`, `handler cleanup run --dry-run`) reads and reports, and
//! writes nothing anywhere: no lease, no checkpoint, no Graph write, no mail. It follows a
//! stored plan too, re-checked as a real run would, so it tells what the next run would do.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use time::{Duration, OffsetDateTime};
use warp::http::StatusCode;

use super::Portal;
use crate::adapters::graph::{DirectoryUser, GraphClient, GraphError, BATCH_LIMIT};
use crate::adapters::tables::{format_time, StoreError};
use crate::core::cleanup::{
    check_cap, decide, graph_time, Action, Activity, Capped, Case, DirectoryFacts, Origin, Reason,
    Redemption, SkipWhy, Stage, Tracked,
};
use crate::core::token::SigningKeys;
use crate::host::invocation::{InvocationRequest, InvocationResponse};
use crate::host::request::{self, HttpRequest, Response};
use crate::store::audit::{self, AuditEntry};
use crate::store::guests::{self, Guest, GuestOrigin, GuestState};
use crate::store::jobs::{self, Checkpoint, Lease, LeaseOutcome, Phase, PlannedAction, Tally};
use crate::store::requests;

mod acting;
mod recheck;

use acting::{BoxedOutcomes, LeftAlone};
use recheck::Verdict;

/// The job's name: the PartitionKey of its lease, checkpoint and plan.
const JOB: &str = "cleanup";
/// Long enough to outlive a slow Graph call, short enough that a run that died frees the job
/// well before the next timer tick (every 15 minutes by default).
const LEASE_TTL: Duration = Duration::minutes(5);
const RENEW_EVERY: StdDuration = StdDuration::from_secs(60);
/// A plan older than this (host time) is thrown away and made again: the directory moved on.
const STALE_PLAN: Duration = Duration::days(1);
/// The timer waits out throttling; its time budget leaves room for one more call this long
/// under the host's 10-minute limit.
const GRAPH_PATIENCE: StdDuration = StdDuration::from_secs(60);
/// The host's log is not a bulk channel: past this many per-action lines in `Logs`, the rest
/// are counted (every one is in the audit trail and the handler's own log).
const MAX_ACTION_LINES: usize = 1000;

pub async fn invoke(portal: &Arc<Portal>, req: HttpRequest) -> Response {
    let invocation: InvocationRequest = match serde_json::from_slice(&req.body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "malformed timer invocation");
            return request::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": format!("the invocation is not the host's JSON: {e}")}),
            );
        }
    };
    let timer = match invocation.timer("timer") {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(%why, "malformed timer invocation");
            return request::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": why }),
            );
        }
    };
    let now = invocation.utc_now().unwrap_or_else(OffsetDateTime::now_utc);
    let mut logs = Vec::new();
    if timer.is_past_due {
        logs.push("the timer is past due; running now".to_string());
    }
    let result = run(portal, now, false, &mut logs).await;
    let status = match result {
        Ok(summary) => {
            logs.push(summary);
            StatusCode::OK
        }
        Err(e) => {
            logs.push(format!("cleanup stopped: {e}"));
            tracing::error!(error = %e, "cleanup stopped");
            // A non-2xx fails the invocation in the host, which is what an admin's alert
            // should see; everything done so far is recorded and the next run resumes.
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    for line in &logs {
        tracing::info!(target: "cleanup", "{line}");
    }
    let body = InvocationResponse {
        logs,
        ..Default::default()
    };
    request::json(
        status,
        &serde_json::to_value(body).expect("the invocation answer serializes"),
    )
}

/// Which jobs a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// The timer's tick (every few minutes): mail and requests every time; the directory
    /// cleanup and the purges when `CLEANUP_DIRECTORY_INTERVAL_MINUTES` have passed since the
    /// last whole pass, or when a pass stopped halfway.
    Tick,
    /// Everything now (an operator asked).
    Everything,
}

/// One tick of the timer. `dry_run` (or `CLEANUP_DRY_RUN`) only reports. Returns the summary
/// line.
pub async fn run(
    portal: &Portal,
    now: OffsetDateTime,
    dry_run: bool,
    logs: &mut Vec<String>,
) -> Result<String, String> {
    run_as(portal, now, dry_run, "timer", Cadence::Tick, logs).await
}

/// [`run`], with the audit trail naming `actor` (`operator` from the command line).
pub async fn run_as(
    portal: &Portal,
    now: OffsetDateTime,
    dry_run: bool,
    actor: &str,
    cadence: Cadence,
    logs: &mut Vec<String>,
) -> Result<String, String> {
    let dry_run = dry_run || portal.settings.cleanup.dry_run;
    let started = Instant::now();
    let graph = portal.graph.with_patience(GRAPH_PATIENCE);
    let title = if dry_run {
        "cleanup (dry run)"
    } else {
        "cleanup"
    };

    let directory = match cadence {
        Cadence::Everything => true,
        Cadence::Tick => {
            dry_run
                || directory_due(portal, now)
                    .await
                    .map_err(|e| format!("reading the job's cadence: {e}"))?
        }
    };
    // Mail first, and outside the lease: a long directory pass must not hold up a partner's
    // verification mail, and each mail is taken by compare-and-swap anyway. The guests' mails
    // (reminders, warnings) are the directory pass's own: they are swept with it, which spares
    // every tick a read of the whole Guests table.
    let tables: &[crate::adapters::tables::TableName] = if directory {
        &crate::store::outbox::MAIL_TABLES
    } else {
        &[crate::adapters::tables::TableName::Requests]
    };
    let mail = portal
        .outbox
        .sweep(tables, now, dry_run)
        .await
        .map_err(|e| format!("mail: {e}"))?;

    // A dry run writes nothing, so it cannot double-act and takes no lease.
    let lease = if dry_run {
        None
    } else {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        match jobs::take_lease(
            &portal.store,
            JOB,
            &owner,
            OffsetDateTime::now_utc(),
            LEASE_TTL,
        )
        .await
        .map_err(|e| format!("taking the cleanup lease: {e}"))?
        {
            LeaseOutcome::Taken(lease) => Some(lease),
            LeaseOutcome::Held { until, .. } => {
                logs.push(format!(
                    "another cleanup run holds the lease until {}; this run does nothing",
                    format_time(until)
                ));
                return Ok(format!("{title}: skipped, another run is in progress"));
            }
        }
    };

    let mut run = Run {
        portal,
        graph,
        now,
        dry_run,
        actor: actor.to_string(),
        started,
        units: 0,
        lease,
        renewed: Instant::now(),
        logs,
        action_lines: 0,
        last_records: None,
    };
    let result = run.all_jobs(directory).await;
    if let Some(lease) = run.lease.take() {
        if let Err(e) = jobs::release_lease(&portal.store, &lease).await {
            // It expires by itself within LEASE_TTL.
            tracing::warn!(error = %e, "could not release the cleanup lease");
        }
    }
    let (requests, directory) = result?;
    if run.action_lines > MAX_ACTION_LINES {
        run.logs.push(format!(
            "... and {} more actions (see the audit trail)",
            run.action_lines - MAX_ACTION_LINES
        ));
    }
    // What the run itself recorded (reminders, outcomes) is on its way before it answers.
    portal.outbox.idle().await;
    let directory = match directory {
        Some((purged, guests, reviews)) => format!(
            "purged {purged}; {}; {}",
            guests.summary(dry_run),
            match reviews {
                Some(r) => r.summary(dry_run),
                None => "reviews wait for the next pass (time budget)".to_string(),
            }
        ),
        None => format!(
            "guests and purges not due (every {} minutes)",
            portal.settings.cleanup.directory_interval.whole_minutes()
        ),
    };
    Ok(format!(
        "{title}: {}; submissions processed {}, requests expired {}, reminded {}, escalated {}, retried {} ({} completed, {} gave up); {directory}",
        mail.summary(dry_run),
        requests.submissions,
        requests.expired,
        requests.reminded,
        requests.escalated,
        requests.retried,
        requests.completed,
        requests.gave_up,
    ))
}

/// Whether the directory cleanup and the purges are due at this tick: a pass stopped halfway
/// resumes, otherwise one pass per `CLEANUP_DIRECTORY_INTERVAL_MINUTES`.
async fn directory_due(portal: &Portal, now: OffsetDateTime) -> Result<bool, StoreError> {
    let store = &portal.store;
    if jobs::in_progress(store, JOB).await? {
        return Ok(true);
    }
    Ok(match jobs::last_pass(store, JOB).await? {
        None => true,
        // A pass "in the future" is a clock that jumped (or a row someone wrote): never a
        // reason to stop cleaning up.
        Some(last) => last > now || now - last >= portal.settings.cleanup.directory_interval,
    })
}

/// What the guest job did in one run, for the summary line.
#[derive(Debug, Default, Clone)]
struct GuestReport {
    tally: Tally,
    reminded: u32,
    warned: u32,
    disabled: u32,
    deleted: u32,
    restored: u32,
    skipped: u32,
    gone: u32,
    already_done: u32,
    failed: u32,
    /// Left alone because the directory (or the portal's record) changed since listing.
    changed: u32,
    /// Why the job stopped early, if it did (cap, paused by the time budget).
    stopped: Option<String>,
    /// The inactivity rule is on but sign-in activity could not be read.
    inactivity_skipped: bool,
}

impl GuestReport {
    fn summary(&self, dry_run: bool) -> String {
        let t = &self.tally;
        let verb = if dry_run { "would be " } else { "" };
        let mut s = format!(
            "guests listed {} (in scope {}, outside the portal's scope {}, excluded and due {}, not guests {}); {verb}reminded {}, {verb}warned {}, {verb}disabled {}, {verb}deleted {}, {verb}restored {}, skipped {}",
            t.listed, t.in_scope, t.out_of_scope, t.excluded, t.not_guest,
            self.reminded, self.warned, self.disabled, self.deleted, self.restored, self.skipped,
        );
        if self.changed > 0 {
            s.push_str(&format!(
                ", {verb}skipped because the directory changed since listing {}",
                self.changed
            ));
        }
        if self.gone > 0 {
            s.push_str(&format!(", already gone {}", self.gone));
        }
        if self.already_done > 0 {
            s.push_str(&format!(", done by an earlier run {}", self.already_done));
        }
        if self.failed > 0 {
            s.push_str(&format!(", failed {} (retried next run)", self.failed));
        }
        if self.inactivity_skipped {
            s.push_str("; inactivity rule not applied (no sign-in activity)");
        } else if t.sign_in_missing > 0 {
            s.push_str(&format!(
                "; inactivity not judged for {} guests Graph gave no sign-in activity for",
                t.sign_in_missing
            ));
        }
        if let Some(why) = &self.stopped {
            s.push_str(&format!("; {why}"));
        }
        s
    }

    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Reminded => self.reminded += 1,
            Kind::Warned => self.warned += 1,
            Kind::Disabled => self.disabled += 1,
            Kind::Deleted => self.deleted += 1,
            Kind::Restored => self.restored += 1,
            Kind::Skipped => self.skipped += 1,
            Kind::Gone => self.gone += 1,
            Kind::AlreadyDone => self.already_done += 1,
            Kind::Failed => self.failed += 1,
            Kind::Changed => self.changed += 1,
        }
    }
}

/// The outcome of one plan entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reminded,
    Warned,
    Disabled,
    Deleted,
    Restored,
    Skipped,
    Gone,
    AlreadyDone,
    Failed,
    /// Left alone: the directory changed since listing.
    Changed,
}

struct Outcome {
    kind: Kind,
    line: String,
}

impl Outcome {
    fn new(kind: Kind, line: impl Into<String>) -> Self {
        Outcome {
            kind,
            line: line.into(),
        }
    }
}

/// The portal's records as a run read them: each guest's row with its ETag.
type Records = HashMap<String, (Guest, String)>;

/// Where the listing stands at the end of a run's share of it.
enum Listing {
    Complete(Vec<PlannedAction>, Checkpoint, Records),
    Paused,
}

struct Run<'a> {
    portal: &'a Portal,
    graph: GraphClient,
    now: OffsetDateTime,
    dry_run: bool,
    actor: String,
    started: Instant,
    /// Pages listed and waves acted in this run: at least one happens whatever the budget,
    /// so every run makes progress.
    units: u32,
    lease: Option<Lease>,
    renewed: Instant,
    logs: &'a mut Vec<String>,
    action_lines: usize,
    /// The guests' records the guest job read, for the reviews that follow it (one read of
    /// the Guests table per pass, not two).
    last_records: Option<Records>,
}

/// What the per-entry work needs, shared by the futures of one wave.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    portal: &'a Portal,
    now: OffsetDateTime,
    actor: &'a str,
}

impl<'a> Run<'a> {
    /// The requests every tick; the purges and the guests when `directory` is due.
    async fn all_jobs(
        &mut self,
        directory: bool,
    ) -> Result<
        (
            super::approvals::RequestSweep,
            Option<(u32, GuestReport, Option<super::reviews::ReviewPass>)>,
        ),
        String,
    > {
        let requests =
            super::approvals::sweep(self.portal, &self.graph, self.now, self.dry_run, self.logs)
                .await
                .map_err(|e| format!("requests: {e}"))?;
        if !directory {
            return Ok((requests, None));
        }
        let purged = self.purge().await.map_err(|e| format!("purging: {e}"))?;
        let guests = self.guests().await?;
        let reviews = if self.over_budget() {
            None
        } else {
            Some(self.reviews().await?)
        };
        // A pass paused by the time budget resumes at the next tick; one that finished (or
        // stopped at the cap, which only an admin can lift) waits for the interval.
        let store = &self.portal.store;
        let paused = jobs::in_progress(store, JOB)
            .await
            .map_err(|e| format!("reading the checkpoint: {e}"))?;
        if !self.dry_run && !paused {
            jobs::record_pass(store, JOB, self.now)
                .await
                .map_err(|e| format!("recording the pass: {e}"))?;
        }
        Ok((requests, Some((purged, guests, reviews))))
    }

    /// The access reviews that are due, on the records the guest job read (or read now).
    async fn reviews(&mut self) -> Result<super::reviews::ReviewPass, String> {
        let records: Vec<(guests::Guest, String)> = match self.last_records.take() {
            Some(records) => records.into_values().collect(),
            None => guests::all(&self.portal.store)
                .await
                .map_err(|e| format!("reading the guests table: {e}"))?,
        };
        let (pass, lines) =
            super::reviews::sweep(self.portal, &records, self.now, self.dry_run, &self.actor)
                .await
                .map_err(|e| format!("reviews: {e}"))?;
        for line in lines {
            self.tell(line);
        }
        Ok(pass)
    }

    /// Everything kept only for a while: closed requests' personal data, sent mail, demand
    /// of domains not seen for a long time, sign-ins nobody finished.
    async fn purge(&mut self) -> Result<u32, StoreError> {
        let mut purged = self.purge_requests().await?;
        if self.dry_run {
            return Ok(purged);
        }
        let settings = &self.portal.settings.cleanup;
        let mail_days = Duration::days(i64::from(settings.mail_retention_days));
        let mails = crate::store::outbox::purge(
            &self.portal.store,
            self.portal.outbox.keys(),
            self.now - mail_days,
            self.now - mail_days * 4,
        )
        .await?;
        if mails > 0 {
            self.tell(format!(
                "purged {mails} sent or long-dead mails from the outbox"
            ));
        }
        let demand = crate::store::demand::purge(
            &self.portal.store,
            self.now - Duration::days(i64::from(settings.demand_retention_days)),
        )
        .await?;
        let limits =
            crate::store::limits::purge(&self.portal.store, OffsetDateTime::now_utc()).await?;
        // Sign-ins nobody came back from hold what the form held: gone once they expire.
        let sign_ins =
            crate::store::sign_ins::purge(&self.portal.store, OffsetDateTime::now_utc()).await?;
        let audit = crate::store::audit::purge(
            &self.portal.store,
            self.now - Duration::days(i64::from(settings.audit_retention_days)),
        )
        .await?;
        if audit > 0 {
            self.tell(format!(
                "purged {audit} audit entries older than {} days",
                settings.audit_retention_days
            ));
        }
        purged += mails + demand + limits + sign_ins + audit;
        Ok(purged)
    }

    fn tell(&mut self, line: String) {
        self.action_lines += 1;
        if self.action_lines <= MAX_ACTION_LINES {
            self.logs.push(line);
        } else {
            // Past the cap on the host's log, the handler's own log still has every line.
            tracing::info!(target: "cleanup", "{line}");
        }
    }

    /// A line the host's log must have whatever the count: a guest left alone because the
    /// directory changed since listing (an admin's change won over the plan; there are few).
    fn tell_always(&mut self, line: String) {
        self.logs.push(line);
    }

    fn inactivity_skipped(&self, checkpoint: &Checkpoint) -> bool {
        self.portal.settings.cleanup.rules.inactive_days > 0 && !checkpoint.sign_in_read
    }

    fn over_budget(&self) -> bool {
        self.units > 0 && self.started.elapsed() >= self.portal.settings.cleanup.time_budget
    }

    /// Renews the lease once a minute; a lost lease stops the run before its next write.
    async fn keep_lease(&mut self) -> Result<(), String> {
        let Some(lease) = self.lease.as_mut() else {
            return Ok(());
        };
        if self.renewed.elapsed() < RENEW_EVERY {
            return Ok(());
        }
        match jobs::renew_lease(
            &self.portal.store,
            lease,
            OffsetDateTime::now_utc(),
            LEASE_TTL,
        )
        .await
        {
            Ok(true) => {
                self.renewed = Instant::now();
                Ok(())
            }
            Ok(false) => {
                self.lease = None;
                Err(
                    "the lease expired and another run took it; stopping before acting further"
                        .into(),
                )
            }
            Err(e) => Err(format!("renewing the cleanup lease: {e}")),
        }
    }

    // --- requests ------------------------------------------------------------------------

    /// Closed requests hold names and addresses; after the retention period their rows go.
    /// The audit trail keeps the ids (and masked addresses), not the personal data.
    async fn purge_requests(&mut self) -> Result<u32, StoreError> {
        let days = self.portal.settings.cleanup.retention_days;
        let retention = Duration::days(i64::from(days));
        let mut purged = 0;
        for r in requests::closed_before(&self.portal.store, self.now - retention).await? {
            if !r.is_purgeable(self.now, retention) {
                continue;
            }
            if self.dry_run {
                self.tell(format!(
                    "would purge request {} (closed {} days ago or more)",
                    r.id, days
                ));
                purged += 1;
                continue;
            }
            requests::delete(&self.portal.store, &r.id).await?;
            audit::record(
                &self.portal.store,
                AuditEntry::new(self.now, self.actor.as_str(), "request.purged")
                    .request(&r.id)
                    .detail(format!(
                        "{}, closed as {}; personal data removed after {days} days",
                        r.applicant.email.masked(),
                        r.status
                    )),
            )
            .await?;
            self.tell(format!("purged request {} ({})", r.id, r.status));
            purged += 1;
        }
        Ok(purged)
    }

    // --- guests --------------------------------------------------------------------------

    async fn guests(&mut self) -> Result<GuestReport, String> {
        let mut report = GuestReport::default();
        // A dry run follows a stored plan too (reading only): it reports what the next run
        // would do.
        let loading = Instant::now();
        let (plan, mut checkpoint, tracked) = match self.stored_plan().await? {
            Some((c, plan)) if c.phase == Phase::Acting => {
                let read = loading.elapsed();
                // The records as they are now: the re-check compares each with the one the
                // plan was made from.
                let tracked = self.read_records().await?;
                self.logs.push(format!(
                    "resuming the plan of {}: {} of {} actions already done (plan read and verified in {} ms, the guests' records in {} ms)",
                    format_time(c.planned_at),
                    c.acted,
                    plan.len(),
                    read.as_millis(),
                    (loading.elapsed() - read).as_millis()
                ));
                report.tally = c.tally;
                report.inactivity_skipped = self.inactivity_skipped(&c);
                // The cap again, with today's settings, on what is left to do.
                let rest = &plan[(c.acted as usize).min(plan.len())..];
                if let Err(cap) = self.check_caps(rest, c.tally.in_scope) {
                    return self.stop_at_cap(cap, rest, report).await;
                }
                (plan, c, tracked)
            }
            listing => match self.list_and_plan(listing, &mut report).await? {
                Listing::Paused => return Ok(report),
                Listing::Complete(plan, checkpoint, tracked) => {
                    report.tally = checkpoint.tally;
                    report.inactivity_skipped = self.inactivity_skipped(&checkpoint);
                    // The caps are checked on the whole plan, before the first warning or
                    // removal.
                    if let Err(cap) = self.check_caps(&plan, checkpoint.tally.in_scope) {
                        return self.stop_at_cap(cap, &plan, report).await;
                    }
                    let checkpoint = Checkpoint {
                        phase: Phase::Acting,
                        acted: 0,
                        next_link: None,
                        ..checkpoint
                    };
                    if !self.dry_run {
                        jobs::save_checkpoint(&self.portal.store, self.keys(), JOB, &checkpoint)
                            .await
                            .map_err(|e| format!("saving the checkpoint: {e}"))?;
                    }
                    (plan, checkpoint, tracked)
                }
            },
        };
        report.tally = checkpoint.tally;
        report.inactivity_skipped = self.inactivity_skipped(&checkpoint);
        // In the order of the guests' ids, whatever order Graph listed them in: neighbours
        // share a Guests partition, so a wave's row updates travel as a few transactions; and
        // every run that resumes the plan sees the same order.
        let mut plan = plan;
        plan.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        if self.dry_run {
            self.report_rechecked(&plan, &tracked, &checkpoint, &mut report)
                .await?;
        } else {
            self.act(&plan, &tracked, &mut checkpoint, &mut report)
                .await?;
        }
        self.last_records = Some(tracked);
        Ok(report)
    }

    fn keys(&self) -> &'a SigningKeys {
        &self.portal.settings.portal.signing_keys
    }

    /// The stored checkpoint and the plan it has so far, if both are there, verify, and may
    /// still be followed; anything else is discarded (by a real run) with the reason logged.
    async fn stored_plan(&mut self) -> Result<Option<(Checkpoint, Vec<PlannedAction>)>, String> {
        let store = &self.portal.store;
        let c = match jobs::checkpoint(store, self.keys(), JOB)
            .await
            .map_err(|e| format!("reading the checkpoint: {e}"))?
        {
            None => return Ok(None),
            Some(Err(untrusted)) => {
                self.discard(&untrusted.0).await?;
                return Ok(None);
            }
            Some(Ok(c)) => c,
        };
        if (self.now - c.planned_at).abs() > STALE_PLAN {
            self.logs.push(format!(
                "a checkpoint from {} is more than a day old; planning again",
                format_time(c.planned_at)
            ));
            if !self.dry_run {
                jobs::clear(store, JOB)
                    .await
                    .map_err(|e| format!("clearing the checkpoint: {e}"))?;
            }
            return Ok(None);
        }
        if let Some(link) = c.next_link.as_deref() {
            if !self.graph.is_own_link(link) {
                self.discard(
                    "its nextLink is not on the origin of GRAPH_BASE_URL, and is not followed",
                )
                .await?;
                return Ok(None);
            }
        }
        match jobs::load_plan(store, self.keys(), JOB, &c)
            .await
            .map_err(|e| format!("reading the plan: {e}"))?
        {
            Ok(plan) => Ok(Some((c, plan))),
            Err(untrusted) => {
                self.discard(&untrusted.0).await?;
                Ok(None)
            }
        }
    }

    /// A stored plan that cannot be trusted (or followed) is never acted on: the log and the
    /// audit trail say why, and the run plans again from the directory.
    async fn discard(&mut self, why: &str) -> Result<(), String> {
        let line = format!("the stored cleanup plan is discarded and made again: {why}");
        tracing::warn!(%line);
        if self.dry_run {
            self.logs.push(format!("a real run would say: {line}"));
            return Ok(());
        }
        self.logs.push(line);
        self.drop_plan("cleanup.plan_discarded", why.to_string())
            .await
    }

    /// Forgets the stored plan, with the audit entry that says why.
    async fn drop_plan(&self, audit_action: &str, why: String) -> Result<(), String> {
        audit::record(
            &self.portal.store,
            AuditEntry::new(self.now, self.actor.as_str(), audit_action).detail(why),
        )
        .await
        .map_err(|e| format!("recording {audit_action}: {e}"))?;
        jobs::clear(&self.portal.store, JOB)
            .await
            .map_err(|e| format!("clearing the plan: {e}"))
    }

    /// The caps on removals and on warnings, for `plan` (what is left of it).
    fn check_caps(
        &self,
        plan: &[PlannedAction],
        in_scope: u32,
    ) -> Result<(), crate::core::cleanup::CapExceeded> {
        let c = &self.portal.settings.cleanup;
        let count = |f: fn(Action) -> bool| plan.iter().filter(|p| f(p.action)).count();
        for (what, planned) in [
            (Capped::Removals, count(Action::is_removal)),
            (Capped::Warnings, count(Action::is_warning)),
        ] {
            check_cap(
                what,
                planned,
                in_scope as usize,
                c.max_removals,
                c.max_removal_percent,
            )?;
        }
        Ok(())
    }

    /// The portal's records, once per run.
    async fn read_records(&self) -> Result<Records, String> {
        let reading = Instant::now();
        let tracked: Records = guests::all(&self.portal.store)
            .await
            .map_err(|e| format!("reading the guests table: {e}"))?
            .into_iter()
            .map(|(g, etag)| (g.user_id.clone(), (g, etag)))
            .collect();
        tracing::info!(
            rows = tracked.len(),
            ms = reading.elapsed().as_millis() as u64,
            "cleanup read the guests table"
        );
        Ok(tracked)
    }

    /// Lists every guest (or the rest, after a checkpoint) and decides each. Saves each
    /// page's plan and the nextLink as it goes, unless this is a dry run.
    async fn list_and_plan(
        &mut self,
        saved: Option<(Checkpoint, Vec<PlannedAction>)>,
        report: &mut GuestReport,
    ) -> Result<Listing, String> {
        let settings = &self.portal.settings;
        let rules = settings.cleanup.rules;
        let want_sign_in = rules.inactive_days > 0 && settings.graph.sign_in_activity;
        if rules.inactive_days > 0 && !settings.graph.sign_in_activity {
            self.logs.push(
                "the inactivity rule is skipped: GRAPH_SIGN_IN_ACTIVITY=false (sign-in activity needs AuditLog.Read.All and Entra ID P1)".into(),
            );
        }
        let resumed = saved.is_some();
        let (mut checkpoint, mut plan) =
            saved.unwrap_or_else(|| (Checkpoint::new(self.now, want_sign_in), Vec::new()));
        if resumed {
            self.logs.push(format!(
                "resuming the listing of {} after {} pages",
                format_time(checkpoint.planned_at),
                checkpoint.pages
            ));
        } else if !self.dry_run {
            // Plan rows of an earlier plan whose clearing was cut short must never be read
            // as part of this one (they would not verify as this plan's either).
            jobs::clear(&self.portal.store, JOB)
                .await
                .map_err(|e| format!("clearing an old plan: {e}"))?;
        }

        // Once per run: the portal's records and the exclusion group.
        let reading = Instant::now();
        let tracked = self.read_records().await?;
        let excluded = match &settings.cleanup.exclusion_group_id {
            None => HashSet::new(),
            // Not knowing who is excluded means not acting at all.
            Some(group) => self
                .graph
                .group_member_ids(group)
                .await
                .map_err(|e| format!("listing the exclusion group {group}: {e}"))?,
        };

        let mut url = checkpoint
            .next_link
            .clone()
            .unwrap_or_else(|| GraphClient::guests_url(checkpoint.sign_in_read));
        loop {
            if self.over_budget() {
                return self.pause_listing(checkpoint, report).await;
            }
            self.keep_lease().await?;
            let page = match self.graph.users_page(&url).await {
                Err(GraphError::Refused { status: 403, .. })
                    if checkpoint.sign_in_read && checkpoint.pages == 0 =>
                {
                    self.logs.push(
                        "signInActivity is not readable (403: it needs AuditLog.Read.All and an Entra ID P1 tenant): the inactivity rule is skipped this run; the other rules still apply".into(),
                    );
                    checkpoint.sign_in_read = false;
                    url = GraphClient::guests_url(false);
                    continue;
                }
                Err(e) => return Err(format!("listing guests: {e}")),
                Ok(page) => page,
            };
            self.units += 1;
            let entries = self.plan_page(&page.users, &tracked, &excluded, &mut checkpoint);
            // A page with nothing to do leaves no row (most pages, on most days).
            if !self.dry_run && !entries.is_empty() {
                jobs::save_plan_chunk(
                    &self.portal.store,
                    self.keys(),
                    JOB,
                    &checkpoint.plan_id,
                    checkpoint.pages,
                    &entries,
                )
                .await
                .map_err(|e| format!("saving the plan: {e}"))?;
            }
            checkpoint.pages += 1;
            plan.extend(entries);
            match page.next_link {
                Some(next) => {
                    url = next.clone();
                    checkpoint.next_link = Some(next);
                    if !self.dry_run {
                        jobs::save_checkpoint(&self.portal.store, self.keys(), JOB, &checkpoint)
                            .await
                            .map_err(|e| format!("saving the checkpoint: {e}"))?;
                    }
                }
                None => break,
            }
        }
        tracing::info!(
            pages = checkpoint.pages,
            actions = plan.len(),
            ms = reading.elapsed().as_millis() as u64,
            "cleanup listed the directory and planned"
        );
        Ok(Listing::Complete(plan, checkpoint, tracked))
    }

    async fn pause_listing(
        &mut self,
        checkpoint: Checkpoint,
        report: &mut GuestReport,
    ) -> Result<Listing, String> {
        if !self.dry_run {
            jobs::save_checkpoint(&self.portal.store, self.keys(), JOB, &checkpoint)
                .await
                .map_err(|e| format!("saving the checkpoint: {e}"))?;
        }
        report.tally = checkpoint.tally;
        report.inactivity_skipped = self.inactivity_skipped(&checkpoint);
        report.stopped = Some(format!(
            "paused after {} listing pages (time budget of {} s); the next run resumes the listing",
            checkpoint.pages,
            self.portal.settings.cleanup.time_budget.as_secs()
        ));
        Ok(Listing::Paused)
    }

    fn plan_page(
        &self,
        users: &[DirectoryUser],
        tracked: &Records,
        excluded: &HashSet<String>,
        checkpoint: &mut Checkpoint,
    ) -> Vec<PlannedAction> {
        let cleanup = &self.portal.settings.cleanup;
        let mut entries = Vec::new();
        for u in users {
            let facts = facts_of(u, checkpoint.sign_in_read);
            let row = tracked.get(&u.id);
            let record = row.map(|(g, _)| tracked_of(g));
            let is_excluded = excluded.contains(&u.id);
            let action = decide(
                Case {
                    user: &facts,
                    tracked: record.as_ref(),
                    excluded: is_excluded,
                },
                cleanup.scope,
                &cleanup.rules,
                self.now,
            );
            let t = &mut checkpoint.tally;
            t.listed += 1;
            if checkpoint.sign_in_read && facts.is_guest && u.sign_in_activity.is_none() {
                t.sign_in_missing += 1;
            }
            match action {
                Action::Skip(SkipWhy::OutOfScope) => {
                    t.out_of_scope += 1;
                    continue;
                }
                // Outside the scope too, but planned once: the record learns it.
                Action::Skip(SkipWhy::PreExisting) => t.out_of_scope += 1,
                Action::Skip(SkipWhy::NotGuest) => t.not_guest += 1,
                Action::Skip(SkipWhy::Excluded) => t.excluded += 1,
                _ => {}
            }
            if facts.is_guest && !is_excluded && action != Action::Skip(SkipWhy::PreExisting) {
                t.in_scope += 1;
            }
            if action == Action::Nothing {
                continue;
            }
            t.planned += 1;
            if action.is_removal() {
                t.removals += 1;
            }
            if action.is_warning() {
                t.warnings += 1;
            }
            entries.push(PlannedAction {
                action,
                user_id: u.id.clone(),
                etag: row.map(|(_, etag)| etag.clone()),
                untracked: row.is_none().then(|| jobs::Untracked {
                    mail: u.mail.clone().filter(|m| !m.is_empty()),
                    created: graph_time(u.created_date_time.as_deref()),
                }),
            });
        }
        entries
    }

    /// The cap refused the plan: nothing is removed, warned or mailed this run, and the log
    /// says what to change. The plan is dropped; the next run plans again.
    async fn stop_at_cap(
        &mut self,
        cap: crate::core::cleanup::CapExceeded,
        plan: &[PlannedAction],
        mut report: GuestReport,
    ) -> Result<GuestReport, String> {
        let line = format!("cleanup stopped before any change to guests: {cap}");
        tracing::warn!(%line);
        if self.dry_run {
            self.logs
                .push(format!("a real run would stop here: {line}"));
            for p in plan {
                if let Some((kind, line)) = self.would(p) {
                    report.count(kind);
                    self.tell(line);
                }
            }
        } else {
            self.logs.push(line);
            self.drop_plan("cleanup.stopped", cap.to_string()).await?;
            report = GuestReport {
                tally: report.tally,
                inactivity_skipped: report.inactivity_skipped,
                ..GuestReport::default()
            };
        }
        report.stopped = Some(format!("stopped by the cap: {cap}"));
        Ok(report)
    }

    /// A dry run's line for one entry, as planned.
    fn would(&self, p: &PlannedAction) -> Option<(Kind, String)> {
        let cleanup = &self.portal.settings.cleanup;
        let id = &p.user_id;
        Some(match p.action {
            Action::Nothing => return None,
            Action::RedeemReminder => (
                Kind::Reminded,
                format!(
                    "would remind guest {id} to redeem the invitation (disabled {} days later unless redeemed)",
                    cleanup.rules.unredeemed_remove_days
                ),
            ),
            Action::Warn(Reason::Review) => (
                Kind::Warned,
                format!(
                    "would warn guest {id}: {} (disabled once the warning has reached it)",
                    Reason::Review.describe()
                ),
            ),
            Action::Warn(r) => (
                Kind::Warned,
                format!(
                    "would warn guest {id}: {} (disabled {} days later)",
                    r.describe(),
                    cleanup.rules.warning_days
                ),
            ),
            Action::Disable(r) => (
                Kind::Disabled,
                format!("would disable guest {id}: {}", r.describe()),
            ),
            Action::Delete(r) => (
                Kind::Deleted,
                format!("would delete guest {id} (soft delete): {}", r.describe()),
            ),
            Action::Restore(w) => (
                Kind::Restored,
                format!("would restore guest {id} to active: {}", w.describe()),
            ),
            Action::Skip(SkipWhy::PreExisting) => (
                Kind::Skipped,
                format!(
                    "would record guest {id} as pre-existing: it {}",
                    SkipWhy::PreExisting.describe()
                ),
            ),
            Action::Skip(w) => (
                Kind::Skipped,
                format!("would skip guest {id}: {}", w.describe()),
            ),
        })
    }

    /// What the re-check of this plan needs.
    fn rechecker<'t>(&self, tracked: &'t Records, checkpoint: &Checkpoint) -> recheck::Context<'t>
    where
        'a: 't,
    {
        recheck::Context {
            graph: self.graph.clone(),
            cleanup: &self.portal.settings.cleanup,
            tracked,
            sign_in_read: checkpoint.sign_in_read,
            now: self.now,
        }
    }

    /// A dry run's account of the plan: each entry re-checked against the directory as a real
    /// run would right before acting, and what would be done, or left alone and why.
    async fn report_rechecked(
        &mut self,
        plan: &[PlannedAction],
        tracked: &Records,
        checkpoint: &Checkpoint,
        report: &mut GuestReport,
    ) -> Result<(), String> {
        let cx = self.rechecker(tracked, checkpoint);
        let mut next = (checkpoint.acted as usize).min(plan.len());
        while next < plan.len() {
            let (until, verdicts) = recheck::recheck(&cx, plan, next)
                .await
                .map_err(|e| format!("re-checking guests against the directory: {e}"))?;
            for (i, verdict) in verdicts {
                let p = &plan[i];
                let id = &p.user_id;
                match verdict {
                    Verdict::Act => {
                        if let Some((kind, line)) = self.would(p) {
                            report.count(kind);
                            self.tell(line);
                        }
                    }
                    Verdict::Changed(why) => {
                        report.count(Kind::Changed);
                        self.tell_always(format!(
                            "would skip guest {id}: the directory changed since listing ({why})"
                        ));
                    }
                    Verdict::Gone => {
                        report.count(Kind::Gone);
                        self.tell(format!(
                            "guest {id} is no longer in the directory (would be recorded as gone)"
                        ));
                    }
                    Verdict::AlreadyDone => {
                        report.count(Kind::AlreadyDone);
                        self.tell(format!("guest {id}: already done by an earlier run"));
                    }
                    Verdict::Unread(e) => {
                        report.count(Kind::Failed);
                        self.tell(format!("could not re-check guest {id}: {e}"));
                    }
                }
            }
            next = until;
        }
        Ok(())
    }

    /// Carries out the plan from where the checkpoint says, a wave at a time. Each entry that
    /// reaches a person or the directory is re-checked first (`recheck`): the next wave's
    /// entries are re-read while this wave's removals are with Graph. While one wave's rows,
    /// audit entries and mails are being written, the next wave's removals are already with
    /// Graph: the two services' latencies overlap instead of adding up, so the run goes at the
    /// pace of Graph's write quota rather than of the sum of both.
    async fn act(
        &mut self,
        plan: &[PlannedAction],
        tracked: &Records,
        checkpoint: &mut Checkpoint,
        report: &mut GuestReport,
    ) -> Result<(), String> {
        let wave_size = self.portal.settings.cleanup.concurrency * BATCH_LIMIT;
        let actor = self.actor.clone();
        let ctx = Ctx {
            portal: self.portal,
            now: self.now,
            actor: &actor,
        };
        let cx = self.rechecker(tracked, checkpoint);
        let mut next = (checkpoint.acted as usize).min(plan.len());
        // Verdicts in hand, by plan index, for the entries before `checked`.
        let mut verdicts: HashMap<usize, Verdict> = HashMap::new();
        let mut checked = next;
        // The wave being recorded: its end in the plan (`None` if one of its $batch calls
        // failed as a whole, so the checkpoint must not pass it) and its recording.
        let mut recording: Option<(Option<usize>, BoxedOutcomes<'_>)> = None;
        let mut failure = None;
        while next < plan.len() {
            if self.over_budget() {
                report.stopped = Some(format!(
                    "paused after {next} of {} actions (time budget of {} s); the next run resumes",
                    plan.len(),
                    self.portal.settings.cleanup.time_budget.as_secs()
                ));
                break;
            }
            if let Err(e) = self.keep_lease().await {
                failure = Some(e);
                break;
            }
            let end = (next + wave_size).min(plan.len());
            // The wave's verdicts, unless the previous wave fetched them already.
            while checked < end && failure.is_none() {
                match recheck::recheck(&cx, plan, checked).await {
                    Ok((until, got)) => {
                        verdicts.extend(got);
                        checked = until;
                    }
                    Err(e) => {
                        failure = Some(format!("re-checking guests against the directory: {e}"))
                    }
                }
            }
            if failure.is_some() {
                break;
            }
            let mut removals = Vec::new();
            let mut others = Vec::new();
            let mut gone = Vec::new();
            let mut left = LeftAlone {
                changed: Vec::new(),
                unread: Vec::new(),
                done: Vec::new(),
            };
            for (i, p) in plan.iter().enumerate().take(end).skip(next) {
                let verdict = verdicts
                    .remove(&i)
                    .unwrap_or_else(|| Verdict::Unread("not re-checked".into()));
                match verdict {
                    Verdict::Act if p.action.is_removal() => removals.push(p),
                    Verdict::Act => others.push(p),
                    Verdict::Gone => gone.push(p),
                    Verdict::AlreadyDone => left.done.push(p),
                    Verdict::Changed(why) => left.changed.push((p, why)),
                    Verdict::Unread(e) => left.unread.push((p, e)),
                }
            }
            let previous = async {
                match recording.take() {
                    Some((done, outcomes)) => Some((done, outcomes.await)),
                    None => None,
                }
            };
            // The next wave's re-check, while this wave's removals are with Graph.
            let prefetch = async {
                if checked < plan.len() && checked < end + wave_size {
                    Some(recheck::recheck(&cx, plan, checked).await)
                } else {
                    None
                }
            };
            let (previous, (mut results, graph_failure), prefetched) =
                futures::join!(previous, acting::remove(&self.graph, &removals), prefetch);
            if let Some((done, outcomes)) = previous {
                self.finish_wave(done, outcomes, checkpoint, report).await?;
            }
            // A failed prefetch is tried again (and reported) when its wave comes.
            if let Some(Ok((until, got))) = prefetched {
                verdicts.extend(got);
                checked = until;
            }
            results.extend(
                gone.into_iter()
                    .map(|p| (p, Err(GraphError::NotFound("user".into())))),
            );
            let done = if graph_failure.is_none() {
                Some(end)
            } else {
                None
            };
            recording = Some((done, Box::pin(acting::record(ctx, others, results, left))));
            self.units += 1;
            next = end;
            if let Some(e) = graph_failure {
                // A whole $batch failed (Graph down, or refusing): stop. What this wave did is
                // recorded below; the checkpoint stays before it, so the next run acts on it
                // again and finds done what was done.
                failure = Some(format!("acting on guests: {e}"));
                break;
            }
        }
        if let Some((done, outcomes)) = recording.take() {
            let outcomes = outcomes.await;
            self.finish_wave(done, outcomes, checkpoint, report).await?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if report.stopped.is_some() {
            return Ok(());
        }
        jobs::clear(&self.portal.store, JOB)
            .await
            .map_err(|e| format!("clearing the finished plan: {e}"))
    }

    /// Counts and tells a recorded wave, and moves the checkpoint past it (`done`).
    async fn finish_wave(
        &mut self,
        done: Option<usize>,
        outcomes: Vec<Outcome>,
        checkpoint: &mut Checkpoint,
        report: &mut GuestReport,
    ) -> Result<(), String> {
        for o in outcomes {
            report.count(o.kind);
            if o.kind == Kind::Changed {
                self.tell_always(o.line);
            } else {
                self.tell(o.line);
            }
        }
        let Some(done) = done else {
            return Ok(());
        };
        checkpoint.acted = done as u32;
        jobs::save_checkpoint(&self.portal.store, self.keys(), JOB, checkpoint)
            .await
            .map_err(|e| format!("saving the checkpoint: {e}"))
    }
}

/// What the rules need from a listed (or re-read) user.
fn facts_of(u: &DirectoryUser, sign_in_read: bool) -> DirectoryFacts {
    let activity = if !sign_in_read {
        Activity::NotRead
    } else {
        match &u.sign_in_activity {
            // Graph gives no signInActivity for this user (it never signed in, or not since
            // April 2020, or the data is missing): not read for this user. Judging it "never
            // signed in" would age it from its creation and remove it on a missing value.
            None => Activity::NotRead,
            Some(s) => Activity::judged(
                s.last_successful_sign_in_date_time
                    .as_ref()
                    .map(|v| graph_time(v.as_deref())),
                &[
                    graph_time(s.last_sign_in_date_time.as_deref()),
                    graph_time(s.last_non_interactive_sign_in_date_time.as_deref()),
                ],
            ),
        }
    };
    DirectoryFacts {
        is_guest: u.user_type.as_deref() == Some("Guest"),
        // Absent means the property was not returned: assume enabled, the state in which
        // nothing is restored on a guess.
        account_enabled: u.account_enabled.unwrap_or(true),
        created: graph_time(u.created_date_time.as_deref()),
        redemption: Redemption::from_graph(u.external_user_state.as_deref()),
        redemption_changed: graph_time(u.external_user_state_change_date_time.as_deref()),
        activity,
    }
}

/// Records older than `InviteDecidedAt` know only when they were written, which is at or
/// after the invitation (after it when a later step was retried): a day's margin keeps a
/// guest whose setup was retried for hours the portal's own.
const LEGACY_DECISION_MARGIN: Duration = Duration::days(1);

/// What the rules need from the portal's record.
fn tracked_of(g: &Guest) -> Tracked {
    Tracked {
        origin: match g.origin {
            GuestOrigin::Invited => Origin::Invited {
                decided_at: g
                    .invite_decided_at
                    .unwrap_or(g.invited_at - LEGACY_DECISION_MARGIN),
            },
            GuestOrigin::PreExisting => Origin::PreExisting,
            GuestOrigin::Cleanup => Origin::Cleanup,
        },
        stage: match g.state {
            GuestState::Active => Stage::Active,
            GuestState::Warned => Stage::Warned,
            GuestState::Disabled => Stage::Disabled,
            GuestState::Deleted => Stage::Deleted,
        },
        since: g.state_changed_at,
        reason: g.removal_reason.as_deref().and_then(Reason::parse),
        invited_at: g.invited_at,
        access_ends_at: g.access_ends_at,
        reminder_sent_at: g.reminder_sent_at,
        notice: g.notice(),
        review_ended: g.reviews.ended_at(),
    }
}
