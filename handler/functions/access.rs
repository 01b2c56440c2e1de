//! Setting up a guest's access once a request is approved: invite through Graph, grant the
//! policy's groups and app roles, record the guest, mail our own localized invitation.
//!
//! One place, used by the sign-up (auto policies), the approval link, the operator's command
//! line and the timer's retries. Each step records its result on the request (compare-and-swap)
//! before the next begins, so a failure at any point resumes at that step: a guest is invited
//! once, granted once ("already a member" counts as done) and mailed once (the invitation mail
//! is recorded in the outbox with the request's completion).

use time::{Duration, OffsetDateTime};

use super::outbox;
use super::Portal;
use crate::adapters::graph::{GraphClient, InvitationRequest};
use crate::adapters::tables::{StoreError, TableName};
use crate::core::outbox::{Letter, MailKind};
use crate::core::policy::{admit_as, Admission, Policy};
use crate::core::request::SignupRequest;
use crate::store::audit::{self, AuditEntry};
use crate::store::guests::{self, Guest, GuestOrigin, GuestState};
use crate::store::requests::{self, Stored};
use crate::views;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupOutcome {
    /// Access is ready; the partner can redeem at this URL.
    Ready { redeem_url: String },
    /// A step failed in a way worth retrying; the timer will.
    WillRetry,
    /// Failed for good (or out of attempts); recorded for an operator.
    Failed,
    /// Another instance changed the request meanwhile; it carries on.
    TakenOver,
    /// The request is not approved (nothing to set up).
    NotApproved,
}

/// Runs every remaining step for an approved request.
pub async fn set_up(
    portal: &Portal,
    graph: &GraphClient,
    request_id: &str,
    now: OffsetDateTime,
) -> Result<SetupOutcome, StoreError> {
    match requests::get(&portal.store, request_id).await? {
        Some(stored) => set_up_stored(portal, graph, stored, now).await,
        None => Ok(SetupOutcome::NotApproved),
    }
}

/// [`set_up`] for a request its caller has just written (and so holds with its ETag): no
/// need to read it back.
pub async fn set_up_stored(
    portal: &Portal,
    graph: &GraphClient,
    stored: Stored,
    now: OffsetDateTime,
) -> Result<SetupOutcome, StoreError> {
    let Stored {
        mut request,
        mut etag,
    } = stored;
    if request.status == crate::core::request::RequestStatus::Invited {
        return Ok(SetupOutcome::Ready {
            redeem_url: request.redeem_url.clone().unwrap_or_default(),
        });
    }
    if !request.needs_setup() {
        return Ok(SetupOutcome::NotApproved);
    }
    let policies = portal.policies().await?;
    // The policy that admitted the request (its stored key), not whatever matches today: an
    // admin's new, stricter policy must not hand out its groups without its approvers. And
    // deny wins at every step: a deny policy added after the approval still stops the invite.
    let admitted_by = request
        .policy_key
        .as_deref()
        .and_then(|key| policies.iter().find(|p| p.key() == key));
    let denied_now = matches!(
        admit_as(
            &policies,
            &request.applicant.email,
            request.signed_in.as_ref().map(|s| &s.tenant_id)
        ),
        Admission::Denied(_)
    );
    // A request the policy let in by itself, whose policy now wants a person to decide,
    // waits for nobody's approval: it stops here.
    let decided_by_policy = request
        .decision
        .as_ref()
        .is_some_and(|d| d.approve && d.by == "policy");
    let now_needs_approval =
        admitted_by.is_some_and(|p| p.action == crate::core::policy::PolicyAction::Approve);
    if decided_by_policy && now_needs_approval {
        return fail(
            portal,
            request,
            &etag,
            "its policy now asks for approval, which nobody gave; the partner can sign up again"
                .into(),
            false,
            now,
        )
        .await;
    }
    let policy: Policy = match admitted_by {
        Some(p) if !denied_now && p.action != crate::core::policy::PolicyAction::Deny => p.clone(),
        Some(_) => {
            return fail(
                portal,
                request,
                &etag,
                "a policy denies the address now".into(),
                false,
                now,
            )
            .await;
        }
        None => {
            return fail(
                portal,
                request,
                &etag,
                "the policy that admitted the request is gone".into(),
                false,
                now,
            )
            .await;
        }
    };

    // 1. The invitation. Graph resolves an address that already has a guest to that guest,
    //    so even a repeat after a lost write cannot create a second identity.
    if request.invited_user_id.is_none() {
        let sponsors = sponsors(graph, &request).await;
        let invitation = InvitationRequest::new(
            request.applicant.email.as_str(),
            &request.applicant.display_name(),
            &policy.redirect_url,
            &sponsors,
        );
        match graph.invite(&invitation).await {
            Ok(inv) => {
                request.invited_user_id = Some(inv.user_id.clone());
                request.redeem_url = Some(inv.redeem_url);
                request.updated_at = now;
                etag = match requests::save(&portal.store, &request, &etag).await {
                    Ok(e) => e,
                    Err(StoreError::Changed) => return Ok(SetupOutcome::TakenOver),
                    Err(e) => return Err(e),
                };
                audit::record(
                    &portal.store,
                    AuditEntry::new(now, "portal", "guest.invited")
                        .request(&request.id)
                        .user(&inv.user_id)
                        .detail(format!(
                            "{} via policy {}",
                            request.applicant.email.masked(),
                            policy.key()
                        )),
                )
                .await?;
            }
            Err(e) => {
                return fail(
                    portal,
                    request,
                    &etag,
                    format!("invitation: {e}"),
                    e.is_retryable(),
                    now,
                )
                .await
            }
        }
    }
    let user_id = request.invited_user_id.clone().unwrap_or_default();

    // 2. Groups and app roles, in one $batch where possible.
    if !request.grants_done {
        let groups: Vec<String> = policy.groups.iter().map(|g| g.to_string()).collect();
        let roles: Vec<(String, String)> = policy
            .app_roles
            .iter()
            .map(|r| (r.resource_id.to_string(), r.app_role_id.to_string()))
            .collect();
        if !groups.is_empty() || !roles.is_empty() {
            match graph.grant(&user_id, &groups, &roles).await {
                Ok(outcomes) => {
                    let mut retry = None;
                    request.grant_problems.clear();
                    for o in outcomes {
                        match o.result {
                            Ok(()) => {}
                            Err(e) if e.is_retryable() => {
                                retry = Some(format!("{}: {e}", o.target))
                            }
                            // A group that refuses guests will refuse them tomorrow too:
                            // record and report, do not loop.
                            Err(e) => request.grant_problems.push(format!("{}: {e}", o.target)),
                        }
                    }
                    if let Some(why) = retry {
                        return fail(portal, request, &etag, format!("grants: {why}"), true, now)
                            .await;
                    }
                }
                Err(e) => {
                    return fail(
                        portal,
                        request,
                        &etag,
                        format!("grants: {e}"),
                        e.is_retryable(),
                        now,
                    )
                    .await
                }
            }
        }
        request.grants_done = true;
        request.updated_at = now;
        etag = match requests::save(&portal.store, &request, &etag).await {
            Ok(e) => e,
            Err(StoreError::Changed) => return Ok(SetupOutcome::TakenOver),
            Err(e) => return Err(e),
        };
        let detail = if request.grant_problems.is_empty() {
            format!(
                "{} groups, {} app roles",
                policy.groups.len(),
                policy.app_roles.len()
            )
        } else {
            format!("refused: {}", request.grant_problems.join("; "))
        };
        audit::record(
            &portal.store,
            AuditEntry::new(now, "portal", "guest.granted")
                .request(&request.id)
                .user(&user_id)
                .detail(detail),
        )
        .await?;
    }

    // 3. The guest record the cleanup works from, unless one is there already (a repeat
    //    after a lost write, or a guest invited before): keyed by user id.
    let language = policy.language.unwrap_or(request.applicant.language);
    let redeem_url = request.redeem_url.clone().unwrap_or_default();
    guests::record_new(
        &portal.store,
        &Guest {
            user_id: user_id.clone(),
            email: request.applicant.email.as_str().to_string(),
            request_id: Some(request.id.clone()),
            policy_key: Some(policy.key()),
            invited_at: now,
            access_ends_at: (policy.access_days > 0)
                .then(|| now + Duration::days(policy.access_days as i64)),
            redeem_url: Some(redeem_url.clone()),
            language: language.as_str().to_string(),
            first_name: request.applicant.first_name.clone(),
            state: GuestState::Active,
            state_changed_at: now,
            removal_reason: None,
            reminder_sent_at: None,
            origin: GuestOrigin::Invited,
            // Graph answers an invitation to an address it knows with that user: one created
            // before the approval existed already, and is not the cleanup's to remove.
            invite_decided_at: request.decision.as_ref().map(|d| d.at),
            notice_mail_id: None,
            last_mail_delivered: None,
        },
    )
    .await?;

    // 4. Our own invitation mail (Graph drops custom text for app-sent invitations), written
    //    with the request's completion in one transaction: completed means mailed.
    let mut letters = Vec::new();
    if !request.invitation_mailed {
        let mail = views::invitation_mail(
            &super::web::brand(portal),
            language,
            &request.applicant.first_name,
            &redeem_url,
        );
        letters.push(Letter::new(
            MailKind::Invitation,
            request.applicant.email.as_str(),
            mail.subject,
            mail.text,
            mail.html,
        ));
        request.invitation_mailed = true;
    }
    request.setup_complete(now);
    match outbox::record(
        &portal.outbox,
        TableName::Requests,
        &request.id,
        vec![requests::replace_write(&request, &etag)],
        letters,
        now,
    )
    .await
    {
        Ok((_, recorded)) => portal.outbox.send_soon(recorded),
        Err(StoreError::Changed) => return Ok(SetupOutcome::TakenOver),
        Err(e) => return Err(e),
    }
    requests::release_address(&portal.store, &request.applicant.email, &request.id).await?;
    audit::record(
        &portal.store,
        AuditEntry::new(now, "portal", "request.completed")
            .request(&request.id)
            .user(&user_id),
    )
    .await?;
    Ok(SetupOutcome::Ready { redeem_url })
}

/// The approver becomes the guest's sponsor (Graph's default sponsor would be the app).
async fn sponsors(graph: &GraphClient, request: &SignupRequest) -> Vec<String> {
    let mut ids = Vec::new();
    let deciders = [
        request.stage_one_approved_by.clone(),
        request.decision.as_ref().map(|d| d.by.clone()),
    ];
    for who in deciders.into_iter().flatten() {
        if !who.contains('@') {
            continue; // "policy", "operator": no person to sponsor
        }
        match graph.find_user_by_mail(&who).await {
            Ok(Some(id)) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            // A sponsor is a courtesy; failing to resolve one must not block the invitation.
            Err(e) => tracing::warn!(error = %e, "could not resolve the approver as sponsor"),
        }
    }
    ids
}

async fn fail(
    portal: &Portal,
    mut request: SignupRequest,
    etag: &str,
    error: String,
    retryable: bool,
    now: OffsetDateTime,
) -> Result<SetupOutcome, StoreError> {
    request.setup_failed(error.clone(), retryable, now);
    match requests::save(&portal.store, &request, etag).await {
        Ok(_) => {}
        Err(StoreError::Changed) => return Ok(SetupOutcome::TakenOver),
        Err(e) => return Err(e),
    }
    let gave_up = request.status == crate::core::request::RequestStatus::Failed;
    if gave_up {
        requests::release_address(&portal.store, &request.applicant.email, &request.id).await?;
    }
    audit::record(
        &portal.store,
        AuditEntry::new(
            now,
            "portal",
            if gave_up {
                "request.failed"
            } else {
                "request.setup_failed"
            },
        )
        .request(&request.id)
        .detail(format!("attempt {}: {error}", request.attempts)),
    )
    .await?;
    Ok(if gave_up {
        SetupOutcome::Failed
    } else {
        SetupOutcome::WillRetry
    })
}
