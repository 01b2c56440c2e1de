//! Everything around a human decision, in one place that the approval links, the operator's
//! command line and the timer all use: asking the approvers, recording a decision (the first
//! one wins), telling the requester, and the clock-driven reminders, escalation and expiry.

use time::{Duration, OffsetDateTime};

use super::access::{self, SetupOutcome};
use super::Portal;
use crate::adapters::graph::GraphClient;
use crate::adapters::mail::OutgoingMail;
use crate::adapters::tables::StoreError;
use crate::core::email::EmailAddress;
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
/// approvers once the request was escalated.
pub fn approvers_for(policy: &Policy, request: &SignupRequest) -> Vec<EmailAddress> {
    let mut list = if request.stage >= 2 {
        policy.second_stage_approvers.clone()
    } else {
        policy.approvers.clone()
    };
    if request.escalated {
        for a in &policy.fallback_approvers {
            if !list.contains(a) {
                list.push(a.clone());
            }
        }
    }
    list
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

/// Mails each approver of the current stage a personal link.
async fn mail_approvers(
    portal: &Portal,
    request: &SignupRequest,
    policy: &Policy,
    to: &[EmailAddress],
    kind: ApproverMailKind,
) -> usize {
    let expires = deadline(policy, request).unix_timestamp();
    let key = policy.key();
    let submitted = format_date(request.created_at);
    let summary = summary(request, &key, &submitted, stages(policy));
    let brand = super::web::brand(portal);
    let lang = portal.settings.portal.default_language;
    let mut sent = 0;
    for approver in to {
        // Personal, stage-bound links: a forwarded link still names who may use it.
        let token = portal.settings.portal.signing_keys.sign(&TokenClaims {
            purpose: TokenPurpose::Decide,
            request_id: request.id.clone(),
            subject: approver.identity_key(),
            stage: request.stage,
            expires_at: expires,
            nonce: new_nonce(),
        });
        let link = super::web::public_link(portal, "/api/approve", &token);
        let mail = views::approver_mail(&brand, lang, &summary, &link, kind);
        match portal
            .mailer
            .send(&OutgoingMail {
                to: approver.as_str().to_string(),
                subject: mail.subject,
                text: mail.text,
                html: mail.html,
            })
            .await
        {
            Ok(()) => sent += 1,
            Err(e) => {
                tracing::warn!(request_id = %request.id, approver = %approver.masked(), error = %e, "approver mail failed")
            }
        }
    }
    sent
}

/// A verified request (or one that passed stage 1) needs its approvers asked.
pub async fn ask(portal: &Portal, request_id: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    let Some(Stored { request, .. }) = requests::get(&portal.store, request_id).await? else {
        return Ok(());
    };
    if request.status != RequestStatus::PendingApproval {
        return Ok(());
    }
    let Some(policy) = policy_of(portal, &request).await? else {
        tracing::warn!(
            request_id,
            "the request's policy is gone; the timer will expire it"
        );
        return Ok(());
    };
    let approvers = approvers_for(&policy, &request);
    let sent = mail_approvers(
        portal,
        &request,
        &policy,
        &approvers,
        ApproverMailKind::Request,
    )
    .await;
    audit::record(
        &portal.store,
        AuditEntry::new(now, "portal", "approval.requested")
            .request(&request.id)
            .detail(format!(
                "stage {}: {sent} of {} approvers mailed",
                request.stage,
                approvers.len()
            )),
    )
    .await
}

/// Tells the requester the request was denied (once), and frees the address.
pub async fn tell_denied(
    portal: &Portal,
    request_id: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    tell_outcome(portal, request_id, now, false).await
}

async fn tell_outcome(
    portal: &Portal,
    request_id: &str,
    now: OffsetDateTime,
    expired: bool,
) -> Result<(), StoreError> {
    let Some(Stored { mut request, etag }) = requests::get(&portal.store, request_id).await? else {
        return Ok(());
    };
    requests::release_address(&portal.store, &request.applicant.email).await?;
    if request.outcome_mailed
        || !matches!(
            request.status,
            RequestStatus::Denied | RequestStatus::Expired
        )
    {
        return Ok(());
    }
    let brand = super::web::brand(portal);
    let lang = request.applicant.language;
    let mail = if expired {
        views::expired_mail(&brand, lang, &request.applicant.first_name)
    } else {
        let reason = request
            .decision
            .as_ref()
            .filter(|d| d.share_reason)
            .and_then(|d| d.reason.as_deref());
        views::denied_mail(&brand, lang, &request.applicant.first_name, reason)
    };
    let sent = portal
        .mailer
        .send(&OutgoingMail {
            to: request.applicant.email.as_str().to_string(),
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
        })
        .await;
    match sent {
        Ok(()) => {
            request.outcome_mailed = true;
            request.updated_at = now;
            match requests::save(&portal.store, &request, &etag).await {
                Ok(_) | Err(StoreError::Changed) => {}
                Err(e) => return Err(e),
            }
        }
        // The timer retries outcome mails of closed requests that were not sent.
        Err(e) => {
            tracing::warn!(request_id, error = %e, "outcome mail failed; the timer will retry")
        }
    }
    Ok(())
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
    let Some(Stored { mut request, etag }) = requests::get(&portal.store, request_id).await? else {
        return Ok(DecideOutcome::NotFound);
    };
    if request.status != RequestStatus::PendingApproval {
        return Ok(already(&request));
    }
    if stage.is_some_and(|s| s != request.stage) {
        return Ok(DecideOutcome::StageMoved(Box::new(request)));
    }
    let Some(policy) = policy_of(portal, &request).await? else {
        return Ok(DecideOutcome::NotAnApprover);
    };
    if !approvers_for(&policy, &request).contains(approver) {
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
        Err(TransitionError::WrongState(_)) => return Ok(already(&request)),
    };
    // First decision wins: a concurrent decision makes this write fail, and the loser is
    // shown the winner's decision.
    let etag = match requests::save(&portal.store, &request, &etag).await {
        Ok(etag) => etag,
        Err(StoreError::Changed) => {
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
        Err(e) => return Err(e),
    };
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
    let setup = if !final_decision {
        ask(portal, request_id, now).await?;
        None
    } else if approve {
        let stored = requests::Stored {
            request: request.clone(),
            etag,
        };
        Some(access::set_up_stored(portal, graph, stored, now).await?)
    } else {
        tell_denied(portal, request_id, now).await?;
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
    pub expired: u32,
    pub reminded: u32,
    pub escalated: u32,
    pub retried: u32,
    pub completed: u32,
    pub gave_up: u32,
    pub mails_resent: u32,
}

/// The timer's work on open requests: expiry, reminders, escalation, and retrying setups.
pub async fn sweep(
    portal: &Portal,
    graph: &GraphClient,
    now: OffsetDateTime,
    dry_run: bool,
    log: &mut Vec<String>,
) -> Result<RequestSweep, StoreError> {
    let mut out = RequestSweep::default();
    let verification = Duration::hours(portal.settings.portal.verification_hours as i64);
    for Stored { mut request, etag } in requests::open(&portal.store).await? {
        match request.status {
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
                let age = now - request.verified_at.unwrap_or(request.created_at);
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
                    if save_or_skip(portal, &request, &etag).await? {
                        mail_approvers(
                            portal,
                            &request,
                            &policy,
                            &policy.fallback_approvers,
                            ApproverMailKind::Escalation,
                        )
                        .await;
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
                    if save_or_skip(portal, &request, &etag).await? {
                        let approvers = approvers_for(&policy, &request);
                        mail_approvers(
                            portal,
                            &request,
                            &policy,
                            &approvers,
                            ApproverMailKind::Reminder,
                        )
                        .await;
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
    // Outcome mails that failed when the request closed.
    for status in [RequestStatus::Denied, RequestStatus::Expired] {
        for r in requests::list(&portal.store, Some(status), None).await? {
            if !r.outcome_mailed
                && r.verified_at.is_some()
                && now - r.updated_at < Duration::days(7)
            {
                if dry_run {
                    log.push(format!("re-send outcome mail of request {}", r.id));
                    continue;
                }
                tell_outcome(portal, &r.id, now, status == RequestStatus::Expired).await?;
                out.mails_resent += 1;
            }
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
    if request.expire(now).is_err() || !save_or_skip(portal, &request, etag).await? {
        return Ok(false);
    }
    audit::record(
        &portal.store,
        AuditEntry::new(now, "timer", "request.expired")
            .request(&request.id)
            .detail(why),
    )
    .await?;
    // An unverified address gets no mail: nobody proved it wanted one.
    if request.verified_at.is_some() {
        tell_outcome(portal, &request.id, now, true).await?;
    } else {
        requests::release_address(&portal.store, &request.applicant.email).await?;
    }
    Ok(true)
}

async fn save_or_skip(
    portal: &Portal,
    request: &SignupRequest,
    etag: &str,
) -> Result<bool, StoreError> {
    match requests::save(&portal.store, request, etag).await {
        Ok(_) => Ok(true),
        // Someone (a decision, another run) changed it meanwhile: theirs stands.
        Err(StoreError::Changed) => Ok(false),
        Err(e) => Err(e),
    }
}
