//! Everything around a human decision, in one place that the approval links, the operator's
//! command line and the timer all use: asking the approvers, recording a decision (the first
//! one wins), telling the requester, and the clock-driven reminders, escalation and expiry.

use time::{Duration, OffsetDateTime};

use super::access::{self, SetupOutcome};
use super::outbox;
use super::Portal;
use crate::adapters::graph::GraphClient;
use crate::adapters::tables::{StoreError, TableName};
use crate::core::email::{same_person, EmailAddress};
use crate::core::outbox::{Letter, LinkRecipe, MailKind};
use crate::core::policy::Policy;
use crate::core::request::{Decision, RequestStatus, SignupRequest, TransitionError};
use crate::core::token::{new_nonce, TokenClaims, TokenPurpose};
use crate::store::audit::{self, AuditEntry};
use crate::store::requests::{self, Stored};
use crate::views::{self, ApproverMailKind, RequestSummary};

/// The policy a request was admitted under, if it still exists.
async fn policy_of(portal: &Portal, request: &SignupRequest) -> Result<Option<Policy>, StoreError> {
    let Some(key) = &request.policy_key else {
        return Ok(None);
    };
    let policies = portal.policies().await?;
    Ok(policies.iter().find(|p| &p.key() == key).cloned())
}

/// Who may decide the request's current stage: the stage's approvers, plus the fallback
/// approvers once the request was escalated; never the requester, and at the second stage
/// never whoever approved the first (one person is one mailbox, aliases included).
pub fn approvers_for(policy: &Policy, request: &SignupRequest) -> Vec<EmailAddress> {
    approvers_of_stage(policy, request, request.stage, request.escalated)
}

fn approvers_of_stage(
    policy: &Policy,
    request: &SignupRequest,
    stage: u8,
    with_fallback: bool,
) -> Vec<EmailAddress> {
    let mut list = if stage >= 2 {
        policy.second_stage_approvers.clone()
    } else {
        policy.approvers.clone()
    };
    if with_fallback {
        for a in &policy.fallback_approvers {
            if !list.iter().any(|l| l.identity_key() == a.identity_key()) {
                list.push(a.clone());
            }
        }
    }
    let approved_first = (stage >= 2)
        .then_some(request.stage_one_approved_by.as_deref())
        .flatten();
    list.retain(|a| {
        let is_requester = same_person(a.as_str(), request.applicant.email.as_str());
        let approved_first = approved_first.is_some_and(|first| same_person(first, a.as_str()));
        !is_requester && !approved_first
    });
    list
}

/// The fallback approvers an escalation of the current stage mails: never the requester, and
/// at the second stage never whoever approved the first.
pub fn fallback_for(policy: &Policy, request: &SignupRequest) -> Vec<EmailAddress> {
    let mut stage_only = policy.clone();
    stage_only.approvers.clear();
    stage_only.second_stage_approvers.clear();
    approvers_of_stage(&stage_only, request, request.stage, true)
}

/// Whether the person a link names (its subject, an identity key) may still use it: one of
/// the approvers the policy names *now* for the link's stage (fallback approvers included).
/// A removed approver's link shows nothing of the request any more.
pub fn may_use_link(policy: &Policy, request: &SignupRequest, subject: &str, stage: u8) -> bool {
    approvers_of_stage(policy, request, stage, true)
        .iter()
        .any(|a| a.identity_key() == subject)
}

pub fn stages(policy: &Policy) -> u8 {
    if policy.second_stage_approvers.is_empty() {
        1
    } else {
        2
    }
}

/// When the request's approval window closes: counted from the mailbox proof.
pub fn deadline(policy: &Policy, request: &SignupRequest) -> OffsetDateTime {
    request.verified_at.unwrap_or(request.created_at)
        + Duration::days(policy.approval_window_days as i64)
}

pub fn summary<'a>(
    request: &'a SignupRequest,
    policy_key: &'a str,
    submitted: &'a str,
    stages: u8,
) -> RequestSummary<'a> {
    RequestSummary {
        request_id: &request.id,
        email: request.applicant.email.as_str(),
        first_name: &request.applicant.first_name,
        last_name: &request.applicant.last_name,
        organisation: &request.applicant.organisation,
        job_title: request.job_title.as_deref(),
        justification: request.applicant.justification.as_deref(),
        policy: policy_key,
        submitted,
        stage: request.stage,
        stages,
        stage_one_approved_by: request.stage_one_approved_by.as_deref(),
    }
}

pub fn format_date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_default()
}

/// A personal mail for each of `to`, with a link bound to the approver and the request's
/// current stage (a forwarded link still names who may use it).
pub fn approver_letters(
    portal: &Portal,
    request: &SignupRequest,
    policy: &Policy,
    to: &[EmailAddress],
    kind: ApproverMailKind,
) -> Vec<Letter> {
    let expires = deadline(policy, request).unix_timestamp();
    let key = policy.key();
    let submitted = format_date(request.created_at);
    let summary = summary(request, &key, &submitted, stages(policy));
    let brand = super::web::brand(portal);
    let lang = portal.settings.portal.default_language;
    let mail_kind = match kind {
        ApproverMailKind::Request => MailKind::ApproverRequest,
        ApproverMailKind::Reminder => MailKind::ApproverReminder,
        ApproverMailKind::Escalation => MailKind::ApproverEscalation,
    };
    to.iter()
        .map(|approver| {
            let recipe = LinkRecipe::new(
                &TokenClaims {
                    purpose: TokenPurpose::Decide,
                    request_id: request.id.clone(),
                    subject: approver.identity_key(),
                    stage: request.stage,
                    expires_at: expires,
                    nonce: new_nonce(),
                },
                false,
            );
            let mail = views::approver_mail(&brand, lang, &summary, &recipe.placeholder, kind);
            Letter::new(
                mail_kind,
                approver.as_str(),
                mail.subject,
                mail.text,
                mail.html,
            )
            .with_link(recipe)
        })
        .collect()
}

/// The requester's mail about a closed request: denied (with the reason if shared) or expired.
pub fn outcome_letter(portal: &Portal, request: &SignupRequest) -> Letter {
    let brand = super::web::brand(portal);
    let lang = request.applicant.language;
    let (kind, mail) = if request.status == RequestStatus::Expired {
        (
            MailKind::Expired,
            views::expired_mail(&brand, lang, &request.applicant.first_name),
        )
    } else {
        let reason = request
            .decision
            .as_ref()
            .filter(|d| d.share_reason)
            .and_then(|d| d.reason.as_deref());
        (
            MailKind::Denied,
            views::denied_mail(&brand, lang, &request.applicant.first_name, reason),
        )
    };
    Letter::new(
        kind,
        request.applicant.email.as_str(),
        mail.subject,
        mail.text,
        mail.html,
    )
}

/// Writes a request whose change asks the approvers of its (new) stage, with their mails.
/// `false` when someone else changed the request first (nothing written, nothing sent).
pub async fn save_and_ask(
    portal: &Portal,
    request: &SignupRequest,
    etag: &str,
    policy: &Policy,
    kind: ApproverMailKind,
    to: &[EmailAddress],
    now: OffsetDateTime,
) -> Result<Option<String>, StoreError> {
    let letters = approver_letters(portal, request, policy, to, kind);
    let mailed = letters.len();
    match outbox::record(
        &portal.outbox,
        TableName::Requests,
        &request.id,
        vec![requests::replace_write(request, etag)],
        letters,
        now,
    )
    .await
    {
        Ok((etags, recorded)) => {
            portal.outbox.send_soon(recorded);
            if kind == ApproverMailKind::Request {
                audit::record(
                    &portal.store,
                    AuditEntry::new(now, "portal", "approval.requested")
                        .request(&request.id)
                        .detail(format!(
                            "stage {}: {mailed} approvers mailed",
                            request.stage
                        )),
                )
                .await?;
            }
            Ok(etags.into_iter().next())
        }
        Err(StoreError::Changed) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a request that has just closed (denied or expired) with the requester's mail when
/// they had proved the mailbox (an unproved address gets nothing: nobody asked for mail), and
/// frees the address. `false` when someone else changed the request first.
pub async fn save_closed(
    portal: &Portal,
    request: &mut SignupRequest,
    etag: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let letters = if request.verified_at.is_some() {
        request.outcome_mailed = true;
        vec![outcome_letter(portal, request)]
    } else {
        Vec::new()
    };
    match outbox::record(
        &portal.outbox,
        TableName::Requests,
        &request.id,
        vec![requests::replace_write(request, etag)],
        letters,
        now,
    )
    .await
    {
        Ok((_, recorded)) => {
            portal.outbox.send_soon(recorded);
            requests::release_address(&portal.store, &request.applicant.email, &request.id).await?;
            Ok(true)
        }
        Err(StoreError::Changed) => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    /// Recorded. `final_decision` is false when a stage-1 approval moved the request on to
    /// stage 2. `setup` tells how setting up access went after a final approval.
    /// `request` is as this decision left it (before any setup), for the page that confirms it.
    Recorded {
        approved: bool,
        final_decision: bool,
        setup: Option<SetupOutcome>,
        request: Box<SignupRequest>,
    },
    /// Someone decided first (or the request closed); here is what happened.
    AlreadyDecided {
        approved: bool,
        by: String,
        at: OffsetDateTime,
    },
    OwnRequest,
    NotAnApprover,
    /// The link's stage is not the request's current stage (`request` as it stands).
    StageMoved(Box<SignupRequest>),
    NotFound,
}

/// Records one approver's decision. Used by the approval page and `handler requests
/// approve|deny`; both go through the same checks and the same audit.
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    portal: &Portal,
    graph: &GraphClient,
    request_id: &str,
    approver: &EmailAddress,
    stage: Option<u8>,
    approve: bool,
    reason: Option<String>,
    share_reason: bool,
    actor: &str,
    now: OffsetDateTime,
) -> Result<DecideOutcome, StoreError> {
    let Some(Stored {
        mut request,
        mut etag,
    }) = requests::get(&portal.store, request_id).await?
    else {
        return Ok(DecideOutcome::NotFound);
    };
    if same_person(approver.as_str(), request.applicant.email.as_str()) {
        return Ok(DecideOutcome::OwnRequest);
    }
    // Who asks comes first: someone the policy no longer names learns nothing of the request,
    // not even that it was decided.
    let Some(policy) = policy_of(portal, &request).await? else {
        return Ok(DecideOutcome::NotAnApprover);
    };
    if !may_use_link(
        &policy,
        &request,
        &approver.identity_key(),
        stage.unwrap_or(request.stage),
    ) {
        return Ok(DecideOutcome::NotAnApprover);
    }
    if request.status != RequestStatus::PendingApproval {
        return Ok(already(&request));
    }
    if stage.is_some_and(|s| s != request.stage) {
        return Ok(DecideOutcome::StageMoved(Box::new(request)));
    }
    if !approvers_for(&policy, &request)
        .iter()
        .any(|a| a.identity_key() == approver.identity_key())
    {
        return Ok(DecideOutcome::NotAnApprover);
    }
    let decision = Decision {
        approve,
        by: approver.identity_key(),
        at: now,
        reason: reason.filter(|r| !r.trim().is_empty()),
        share_reason,
    };
    let stage_decided = request.stage;
    let final_decision = match request.decide(decision, stages(&policy) == 2) {
        Ok(f) => f,
        Err(TransitionError::SelfApproval) => return Ok(DecideOutcome::OwnRequest),
        Err(TransitionError::SamePersonTwice) => return Ok(DecideOutcome::NotAnApprover),
        Err(TransitionError::WrongState(_)) => return Ok(already(&request)),
    };
    // First decision wins: a concurrent decision makes this write fail, and the loser is
    // shown the winner's decision. The write carries what the decision causes: the next
    // stage's mails, or the requester's refusal.
    let written = if !final_decision {
        let approvers = approvers_for(&policy, &request);
        save_and_ask(
            portal,
            &request,
            &etag,
            &policy,
            ApproverMailKind::Request,
            &approvers,
            now,
        )
        .await?
        .is_some()
    } else if approve {
        match requests::save(&portal.store, &request, &etag).await {
            Ok(new_etag) => {
                etag = new_etag;
                true
            }
            Err(StoreError::Changed) => false,
            Err(e) => return Err(e),
        }
    } else {
        save_closed(portal, &mut request, &etag, now).await?
    };
    if !written {
        let current = requests::get(&portal.store, request_id).await?;
        return Ok(match current {
            Some(s)
                if s.request.stage != stage_decided
                    && s.request.status == RequestStatus::PendingApproval =>
            {
                DecideOutcome::StageMoved(Box::new(s.request))
            }
            Some(s) => already(&s.request),
            None => DecideOutcome::NotFound,
        });
    }
    audit::record(
        &portal.store,
        AuditEntry::new(
            now,
            actor,
            if approve {
                "request.approved"
            } else {
                "request.denied"
            },
        )
        .request(request_id)
        .detail(format!(
            "stage {stage_decided} by {}{}",
            approver.masked(),
            if final_decision {
                ""
            } else {
                "; on to stage 2"
            }
        )),
    )
    .await?;
    let setup = if final_decision && approve {
        let stored = requests::Stored {
            request: request.clone(),
            etag,
        };
        Some(access::set_up_stored(portal, graph, stored, now).await?)
    } else {
        None
    };
    Ok(DecideOutcome::Recorded {
        approved: approve,
        final_decision,
        setup,
        request: Box::new(request),
    })
}

fn already(request: &SignupRequest) -> DecideOutcome {
    match &request.decision {
        Some(d) => DecideOutcome::AlreadyDecided {
            approved: d.approve,
            by: d.by.clone(),
            at: d.at,
        },
        None => DecideOutcome::AlreadyDecided {
            approved: false,
            by: request.status.as_str().to_string(),
            at: request.updated_at,
        },
    }
}

/// What one pass of the timer did with requests, for its summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestSweep {
    /// Submissions whose instance died before the policies looked at them.
    pub submissions: u32,
    pub expired: u32,
    pub reminded: u32,
    pub escalated: u32,
    pub retried: u32,
    pub completed: u32,
    pub gave_up: u32,
}

/// A submission younger than this is still being processed by the instance that took it.
const SUBMISSION_GRACE: Duration = Duration::minutes(1);

/// The timer's work on open requests: submissions left behind, expiry, reminders,
/// escalation, and retrying setups.
pub async fn sweep(
    portal: &Portal,
    graph: &GraphClient,
    now: OffsetDateTime,
    dry_run: bool,
    log: &mut Vec<String>,
) -> Result<RequestSweep, StoreError> {
    let mut out = RequestSweep::default();
    let verification = Duration::hours(portal.settings.portal.verification_hours as i64);
    for stored in requests::open(&portal.store).await? {
        let Stored { mut request, etag } = stored.clone();
        match request.status {
            RequestStatus::Submitted if now - request.created_at >= SUBMISSION_GRACE => {
                log.push(format!("process submission {}", request.id));
                if dry_run {
                    continue;
                }
                super::signup::process(portal, stored, now).await?;
                out.submissions += 1;
            }
            RequestStatus::PendingVerification if now - request.created_at >= verification => {
                log.push(format!("expire unverified request {}", request.id));
                if dry_run {
                    continue;
                }
                if expire(portal, request, &etag, now, "not verified in time").await? {
                    out.expired += 1;
                }
            }
            RequestStatus::PendingApproval => {
                let Some(policy) = policy_of(portal, &request).await? else {
                    // The policy was removed: nobody can approve any more.
                    log.push(format!(
                        "expire request {} (its policy is gone)",
                        request.id
                    ));
                    if !dry_run && expire(portal, request, &etag, now, "policy removed").await? {
                        out.expired += 1;
                    }
                    continue;
                };
                // Reminders and escalation count from the start of the current stage.
                let age = now
                    - request
                        .stage_started_at
                        .or(request.verified_at)
                        .unwrap_or(request.created_at);
                if now >= deadline(&policy, &request) {
                    log.push(format!(
                        "expire request {} (approval window of {} days over)",
                        request.id, policy.approval_window_days
                    ));
                    if dry_run {
                        continue;
                    }
                    if expire(portal, request, &etag, now, "approval window over").await? {
                        out.expired += 1;
                    }
                } else if let Some(days) = policy
                    .escalate_after_days
                    .filter(|d| !request.escalated && age >= Duration::days(*d as i64))
                {
                    log.push(format!("escalate request {} after {days} days", request.id));
                    if dry_run {
                        continue;
                    }
                    request.escalated = true;
                    request.updated_at = now;
                    let asked = save_and_ask(
                        portal,
                        &request,
                        &etag,
                        &policy,
                        ApproverMailKind::Escalation,
                        &fallback_for(&policy, &request),
                        now,
                    )
                    .await?;
                    if asked.is_some() {
                        audit::record(
                            &portal.store,
                            AuditEntry::new(now, "timer", "approval.escalated")
                                .request(&request.id),
                        )
                        .await?;
                        out.escalated += 1;
                    }
                } else if let Some(days) = policy
                    .reminder_after_days
                    .filter(|d| request.reminders_sent == 0 && age >= Duration::days(*d as i64))
                {
                    log.push(format!(
                        "remind approvers of request {} after {days} days",
                        request.id
                    ));
                    if dry_run {
                        continue;
                    }
                    request.reminders_sent += 1;
                    request.updated_at = now;
                    let approvers = approvers_for(&policy, &request);
                    let asked = save_and_ask(
                        portal,
                        &request,
                        &etag,
                        &policy,
                        ApproverMailKind::Reminder,
                        &approvers,
                        now,
                    )
                    .await?;
                    if asked.is_some() {
                        audit::record(
                            &portal.store,
                            AuditEntry::new(now, "timer", "approval.reminded").request(&request.id),
                        )
                        .await?;
                        out.reminded += 1;
                    }
                }
            }
            RequestStatus::Approved | RequestStatus::InviteFailed if request.retry_due(now) => {
                log.push(format!(
                    "retry setting up access for request {} (attempt {})",
                    request.id,
                    request.attempts + 1
                ));
                if dry_run {
                    continue;
                }
                out.retried += 1;
                match access::set_up(portal, graph, &request.id, now).await? {
                    SetupOutcome::Ready { .. } => out.completed += 1,
                    SetupOutcome::Failed => out.gave_up += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Closes an open request the timer found too old: recorded, the address freed, and a
/// requester who had proved the mailbox told. False when someone else changed it first.
async fn expire(
    portal: &Portal,
    mut request: SignupRequest,
    etag: &str,
    now: OffsetDateTime,
    why: &str,
) -> Result<bool, StoreError> {
    if request.expire(now).is_err() || !save_closed(portal, &mut request, etag, now).await? {
        return Ok(false);
    }
    audit::record(
        &portal.store,
        AuditEntry::new(now, "timer", "request.expired")
            .request(&request.id)
            .detail(why),
    )
    .await?;
    Ok(true)
}
