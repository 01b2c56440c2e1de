//! The re-check: a plan is what was true when the directory was listed, which may be up to a
//! day ago (a run paused by its time budget resumes from the stored plan). Right before a
//! planned step reaches a person (a warning or reminder mail) or the directory (a disable or
//! delete), the guest is read again from Graph, with the exclusion group's members, and
//! decided again by the same rules on the portal's record as it is now. Only a step that the
//! rules still decide is carried out; any other is left alone and named, with what changed.
//!
//! One Graph call re-reads up to [`recheck_capacity`] guests (a `$batch` of `id in (...)`
//! queries, 15 ids each, and the exclusion group's members), so the re-check adds
//! ceil(N/300) calls to the N/20 `$batch` calls that remove N guests. Restores and skips
//! touch only the portal's own records and are not re-read.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use super::{facts_of, tracked_of};
use crate::adapters::graph::{recheck_capacity, GraphClient, GraphError};
use crate::core::cleanup::{decide, what_changed, Action, Case};
use crate::settings::CleanupSettings;
use crate::store::guests::{Guest, GuestState};
use crate::store::jobs::PlannedAction;

/// What to do with one planned entry, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The rules still decide the planned step: carry it out.
    Act,
    /// A planned removal of a guest no longer in the directory: record it as gone.
    Gone,
    /// An earlier, interrupted run carried out this step and recorded it.
    AlreadyDone,
    /// The directory or the portal's record changed since listing: left alone, and why.
    Changed(&'static str),
    /// The guest could not be read again: not acted on.
    Unread(String),
}

/// What the re-check needs besides the plan.
pub(super) struct Context<'a> {
    pub graph: GraphClient,
    pub cleanup: &'a CleanupSettings,
    /// The portal's records as this run read them (rows with their ETags).
    pub tracked: &'a HashMap<String, (Guest, String)>,
    pub sign_in_read: bool,
    pub now: OffsetDateTime,
}

/// Re-reads the planned entries from `from` on, as many as one Graph call holds, and returns
/// where that stopped and a verdict for each entry up to there (by its index in `plan`).
pub(super) async fn recheck(
    cx: &Context<'_>,
    plan: &[PlannedAction],
    from: usize,
) -> Result<(usize, Vec<(usize, Verdict)>), GraphError> {
    let group = cx.cleanup.exclusion_group_id.as_deref();
    let capacity = recheck_capacity(group.is_some());
    let mut until = from;
    let mut ids = Vec::new();
    while until < plan.len() {
        if plan[until].action.touches_a_person() {
            if ids.len() == capacity {
                break;
            }
            ids.push(plan[until].user_id.clone());
        }
        until += 1;
    }
    let mut verdicts = Vec::with_capacity(until - from);
    if ids.is_empty() {
        verdicts.extend((from..until).map(|i| (i, Verdict::Act)));
        return Ok((until, verdicts));
    }
    let read = cx.graph.recheck(&ids, cx.sign_in_read, group).await?;
    let excluded: Result<HashSet<String>, String> = match read.excluded {
        None => Ok(HashSet::new()),
        Some(Ok(members)) => Ok(members),
        Some(Err(e)) => Err(format!("the exclusion group could not be read: {e}")),
    };
    for (i, p) in plan.iter().enumerate().take(until).skip(from) {
        let v = if !p.action.touches_a_person() {
            Verdict::Act
        } else if let Some(e) = read.unread.get(&p.user_id) {
            Verdict::Unread(e.to_string())
        } else {
            match &excluded {
                Err(why) => Verdict::Unread(why.clone()),
                Ok(members) => verdict(
                    cx,
                    p,
                    read.users.get(&p.user_id),
                    members.contains(&p.user_id),
                ),
            }
        };
        verdicts.push((i, v));
    }
    Ok((until, verdicts))
}

/// The guest's state a step leaves its record in.
fn state_after(a: Action) -> Option<GuestState> {
    match a {
        Action::Disable(_) => Some(GuestState::Disabled),
        Action::Delete(_) => Some(GuestState::Deleted),
        Action::Warn(_) | Action::RedeemReminder => Some(GuestState::Warned),
        _ => None,
    }
}

/// Decides one planned entry again on the directory (`user`, `None`: not in it any more) and
/// the portal's record as they are now.
fn verdict(
    cx: &Context<'_>,
    p: &PlannedAction,
    user: Option<&crate::adapters::graph::DirectoryUser>,
    excluded: bool,
) -> Verdict {
    let row = cx.tracked.get(&p.user_id);
    // The record must be the one the plan was made from: a record that moved on was changed
    // by someone (or by an earlier run, which may have done this very step).
    match (&p.untracked, p.etag.as_deref(), row) {
        (Some(_), _, Some(_)) => return Verdict::Changed("the portal has a record of it now"),
        (None, _, None) => return Verdict::Changed("its record in the portal is gone"),
        (None, Some(planned), Some((g, etag))) if planned != etag => {
            return if state_after(p.action) == Some(g.state) {
                Verdict::AlreadyDone
            } else {
                Verdict::Changed("its record in the portal changed since listing")
            };
        }
        _ => {}
    }
    let Some(user) = user else {
        return if p.action.is_removal() {
            Verdict::Gone
        } else {
            Verdict::Changed("it is no longer in the directory")
        };
    };
    let facts = facts_of(user, cx.sign_in_read);
    let record = row.map(|(g, _)| tracked_of(g));
    let now = decide(
        Case {
            user: &facts,
            tracked: record.as_ref(),
            excluded,
        },
        cx.cleanup.scope,
        &cx.cleanup.rules,
        cx.now,
    );
    match what_changed(p.action, now) {
        None => Verdict::Act,
        Some(why) => Verdict::Changed(why),
    }
}
