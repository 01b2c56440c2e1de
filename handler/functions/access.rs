//! Setting up a guest's access once a request is approved: invite through Graph, tell the
//! directory who the guest is and grant the policy's groups and app roles (one `$batch`),
//! record the guest, mail our own localized invitation.
//!
//! A returning guest keeps its identity: one the cleanup soft-deleted is restored from deleted
//! items before the invitation (which then resolves to it), one it disabled is enabled again,
//! and its record starts a new life under the new request (its sponsors, its access period,
//! its reviews).
//!
//! One place, used by the sign-up (auto policies), the approval link, the operator's command
//! line and the timer's retries. Each step records its result on the request (compare-and-swap)
//! before the next begins, so a failure at any point resumes at that step: a guest is invited
//! once, granted once ("already a member" counts as done) and mailed once (the invitation mail
//! is recorded in the outbox with the request's completion).

use time::{Duration, OffsetDateTime};

use super::outbox;
use super::Portal;
use crate::adapters::graph::{
    GraphClient, GraphError, GuestProfile, GuestSetup, InvitationRequest,
};
use crate::adapters::tables::{StoreError, TableName};
use crate::core::email::{same_person, EmailAddress};
use crate::core::outbox::{Letter, MailKind};
use crate::core::policy::{admit_as, Admission, Policy};
use crate::core::request::SignupRequest;
use crate::core::review::{self, Reviews};
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

    let sponsors = sponsors_of(&policy, &request);
    // 0. A guest the cleanup soft-deleted signs up again: restored from deleted items, so the
    //    invitation below resolves to it (its object id, its memberships) instead of making a
    //    new user. Idempotent: once restored it is not in deleted items any more. The sponsors'
    //    object ids are looked up meanwhile: both before the invitation, neither waits for
    //    the other.
    // 1. The invitation. Graph resolves an address that already has a guest to that guest,
    //    so even a repeat after a lost write cannot create a second identity.
    if request.invited_user_id.is_none() {
        let (restored, sponsors) = futures::join!(
            restore_returning(portal, graph, &request, now),
            sponsor_ids(graph, &sponsors)
        );
        if let Err(e) = restored? {
            return fail(
                portal,
                request,
                &etag,
                format!("restoring the returning guest: {e}"),
                e.is_retryable(),
                now,
            )
            .await;
        }
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

    // What the portal knew of this guest before this request (a returning guest).
    let before = guests::get(&portal.store, &user_id).await?;

    // 2. Who the guest is (the directory's profile: name, organisation, job title, and for a
    //    guest the cleanup disabled, enabled again), its sponsors if it is a returning guest
    //    (a new one got them with the invitation), groups and app roles: one $batch.
    if !request.grants_done {
        let groups: Vec<String> = policy.groups.iter().map(|g| g.to_string()).collect();
        let roles: Vec<(String, String)> = policy
            .app_roles
            .iter()
            .map(|r| (r.resource_id.to_string(), r.app_role_id.to_string()))
            .collect();
        let disabled_by_cleanup = before.as_ref().is_some_and(|(g, _)| {
            matches!(g.state, GuestState::Disabled | GuestState::Deleted)
                && g.origin == GuestOrigin::Invited
        });
        let new_sponsors = match &before {
            Some(_) => sponsor_ids(graph, &sponsors).await,
            None => Vec::new(),
        };
        let a = &request.applicant;
        let setup = GuestSetup {
            profile: Some(GuestProfile {
                display_name: a.display_name(),
                given_name: a.first_name.clone(),
                surname: a.last_name.clone(),
                company_name: a.organisation.clone(),
                job_title: request.job_title.clone(),
                account_enabled: disabled_by_cleanup.then_some(true),
            }),
            sponsors: &new_sponsors,
            groups: &groups,
            app_roles: &roles,
        };
        match graph.set_up_guest(&user_id, &setup).await {
            Ok(outcomes) => {
                let mut retry = None;
                request.grant_problems.clear();
                for o in outcomes {
                    match o.result {
                        Ok(()) => {}
                        Err(e) if e.is_retryable() => retry = Some(format!("{}: {e}", o.target)),
                        // A group that refuses guests will refuse them tomorrow too:
                        // record and report, do not loop.
                        Err(e) => request.grant_problems.push(format!("{}: {e}", o.target)),
                    }
                }
                if let Some(why) = retry {
                    return fail(portal, request, &etag, format!("grants: {why}"), true, now).await;
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
        request.grants_done = true;
        request.updated_at = now;
        etag = match requests::save(&portal.store, &request, &etag).await {
            Ok(e) => e,
            Err(StoreError::Changed) => return Ok(SetupOutcome::TakenOver),
            Err(e) => return Err(e),
        };
        let detail = if request.grant_problems.is_empty() {
            format!(
                "profile{}, {} groups, {} app roles",
                if disabled_by_cleanup {
                    " and the account enabled again"
                } else {
                    ""
                },
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

    // 3. The guest record the cleanup and the reviews work from, keyed by user id: a new one,
    //    or a returning guest's, which starts a new life under this request.
    let language = policy.language.unwrap_or(request.applicant.language);
    let redeem_url = request.redeem_url.clone().unwrap_or_default();
    let access_ends_at =
        (policy.access_days > 0).then(|| now + Duration::days(policy.access_days as i64));
    let fresh = Guest {
        user_id: user_id.clone(),
        email: request.applicant.email.as_str().to_string(),
        request_id: Some(request.id.clone()),
        policy_key: Some(policy.key()),
        invited_at: now,
        access_ends_at,
        redeem_url: Some(redeem_url.clone()),
        language: language.as_str().to_string(),
        first_name: request.applicant.first_name.clone(),
        last_name: request.applicant.last_name.clone(),
        organisation: request.applicant.organisation.clone(),
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
        sponsors: sponsors.iter().map(|s| s.as_str().to_string()).collect(),
        reviews: Reviews {
            due_at: super::reviews::schedule(portal, &policy)
                .map(|s| review::first_due(now, access_ends_at, &s, now)),
            ..Reviews::default()
        },
    };
    record_guest(portal, &request, fresh, before, now).await?;
    guests::remember_address(&portal.store, &request.applicant.email, &user_id).await?;

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

/// Who vouches for the guest: the approvers who admitted it (as the policy names them) and the
/// policy's named sponsors, each person once, never the guest.
pub fn sponsors_of(policy: &Policy, request: &SignupRequest) -> Vec<EmailAddress> {
    let deciders = [
        request.stage_one_approved_by.as_deref(),
        request.decision.as_ref().map(|d| d.by.as_str()),
    ];
    let named: Vec<&EmailAddress> = policy
        .approvers
        .iter()
        .chain(&policy.second_stage_approvers)
        .chain(&policy.fallback_approvers)
        .collect();
    let mut people: Vec<EmailAddress> = Vec::new();
    // "policy", "operator": no person. An approver is recorded by identity key; the policy's
    // spelling of the address is the one mailed.
    for who in deciders.into_iter().flatten() {
        let Ok(key) = EmailAddress::parse(who) else {
            continue;
        };
        let address = named
            .iter()
            .find(|a| a.identity_key() == key.identity_key())
            .map_or(key, |a| (*a).clone());
        people.push(address);
    }
    people.extend(policy.sponsors.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    people.retain(|p| {
        seen.insert(p.identity_key()) && !same_person(p.as_str(), request.applicant.email.as_str())
    });
    people
}

/// The sponsors' object ids, for Graph's record of who sponsors the guest (its default
/// sponsor would be the app). A sponsor is a courtesy there: one that cannot be resolved does
/// not block the invitation.
async fn sponsor_ids(graph: &GraphClient, sponsors: &[EmailAddress]) -> Vec<String> {
    let found = futures::future::join_all(
        sponsors
            .iter()
            .map(|who| graph.find_user_by_mail(who.as_str())),
    )
    .await;
    let mut ids = Vec::new();
    for result in found {
        match result {
            Ok(Some(id)) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not resolve a sponsor in the directory"),
        }
    }
    ids
}

/// Restores the guest of this address that the cleanup soft-deleted, if there is one. The
/// portal remembers which user each address became (one point read; no directory search on
/// every invitation), and only a user its own record says the cleanup deleted is restored: a
/// user someone else deleted stays deleted, and the invitation makes a new one as before.
/// `Ok(Err(_))`: Graph failed in a way worth retrying.
async fn restore_returning(
    portal: &Portal,
    graph: &GraphClient,
    request: &SignupRequest,
    now: OffsetDateTime,
) -> Result<Result<(), GraphError>, StoreError> {
    let Some(user_id) = guests::user_of_address(&portal.store, &request.applicant.email).await?
    else {
        return Ok(Ok(()));
    };
    let Some((g, _)) = guests::get(&portal.store, &user_id).await? else {
        return Ok(Ok(()));
    };
    if g.state != GuestState::Deleted || g.origin != GuestOrigin::Invited {
        return Ok(Ok(()));
    }
    match graph.restore_deleted(&user_id).await {
        Ok(()) => {
            audit::record(
                &portal.store,
                AuditEntry::new(now, "portal", "guest.restored")
                    .request(&request.id)
                    .user(&user_id)
                    .detail(format!(
                        "{} signed up again: restored from deleted items",
                        request.applicant.email.masked()
                    )),
            )
            .await?;
            Ok(Ok(()))
        }
        // Gone for good (past the 30 days of deleted items, or restored already): the
        // invitation resolves or makes the user as it does for anyone.
        Err(GraphError::NotFound(_)) => Ok(Ok(())),
        Err(e) if e.is_retryable() => Ok(Err(e)),
        Err(e) => {
            // Another object took its name meanwhile, say: it stays deleted.
            tracing::warn!(error = %e, "a returning guest could not be restored; a new user is invited");
            audit::record(
                &portal.store,
                AuditEntry::new(now, "portal", "guest.not_restored")
                    .request(&request.id)
                    .user(&user_id)
                    .detail(e.to_string()),
            )
            .await?;
            Ok(Ok(()))
        }
    }
}

/// Records the guest: a new record, or a returning guest's record renewed for this request
/// (compare-and-swap). A record this request already wrote (a repeat after a lost write) is
/// kept as it is.
async fn record_guest(
    portal: &Portal,
    request: &SignupRequest,
    fresh: Guest,
    mut before: Option<(Guest, String)>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for _ in 0..3 {
        let Some((old, etag)) = before.take() else {
            if guests::record_new(&portal.store, &fresh).await? {
                return Ok(());
            }
            before = guests::get(&portal.store, &fresh.user_id).await?;
            continue;
        };
        if old.request_id.as_deref() == Some(request.id.as_str()) {
            return Ok(());
        }
        let renewed = Guest {
            // Who first made it and when: the cleanup's rule of whose guest it is stays.
            invited_at: old.invited_at,
            origin: old.origin,
            invite_decided_at: old.invite_decided_at,
            last_mail_delivered: old.last_mail_delivered.clone(),
            reviews: Reviews {
                // Links of its earlier reviews stay links of an earlier round.
                round: old.reviews.round,
                ..fresh.reviews.clone()
            },
            ..fresh.clone()
        };
        match guests::save(&portal.store, &renewed, &etag).await {
            Ok(_) => {
                audit::record(
                    &portal.store,
                    AuditEntry::new(now, "portal", "guest.returned")
                        .request(&request.id)
                        .user(&fresh.user_id)
                        .detail(format!(
                            "admitted again (was {}); its record starts over under this request",
                            old.state.as_str()
                        )),
                )
                .await?;
                return Ok(());
            }
            Err(StoreError::Changed) => {
                before = guests::get(&portal.store, &fresh.user_id).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(
        "the guest's record kept changing".into(),
    ))
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
