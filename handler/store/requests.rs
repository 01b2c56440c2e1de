//! Sign-up requests as rows, and the per-address index that keeps one open request per
//! address even when two instances take the same submission at the same moment.

use time::OffsetDateTime;

use super::{key_hash, Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_eq, Write};
use crate::core::email::EmailAddress;
use crate::core::policy::{Language, PolicyAction};
use crate::core::request::{Applicant, Decision, RequestStatus, SignInProof, SignupRequest};

const REQUEST_ROW: &str = "request";
const OPEN_ROW: &str = "open";
const SUBMISSION_PREFIX: &str = "submission-";

/// A request as read, with the ETag that a later write must match.
#[derive(Debug, Clone)]
pub struct Stored {
    pub request: SignupRequest,
    pub etag: String,
}

pub(super) fn set_applicant(row: &mut Row, a: &Applicant) {
    row.set("Email", a.email.as_str())
        .set("Domain", a.email.domain().as_str())
        .set("FirstName", a.first_name.clone())
        .set("LastName", a.last_name.clone())
        .set("Organisation", a.organisation.clone())
        .set_opt("Justification", a.justification.clone())
        .set("Language", a.language.as_str());
}

pub(super) fn applicant(row: &Row) -> Result<Applicant, String> {
    let email =
        EmailAddress::parse(row.str("Email")?).map_err(|e| format!("property Email: {e}"))?;
    let language: Language = row
        .str("Language")?
        .parse()
        .map_err(|_| "property Language should be en or sv".to_string())?;
    Ok(Applicant {
        email,
        first_name: row.str("FirstName")?.to_string(),
        last_name: row.str("LastName")?.to_string(),
        organisation: row.opt_str("Organisation")?.unwrap_or("").to_string(),
        justification: row.opt_str("Justification")?.map(str::to_string),
        language,
    })
}

pub fn to_row(r: &SignupRequest) -> Row {
    let mut row = Row::new(&r.id, REQUEST_ROW);
    row.set("Status", r.status.as_str());
    set_applicant(&mut row, &r.applicant);
    row.set("CreatedAt", format_time(r.created_at))
        .set("UpdatedAt", format_time(r.updated_at))
        .set_time("VerifiedAt", r.verified_at)
        .set_opt("PolicyKey", r.policy_key.clone())
        .set_opt("Action", r.action.map(|a| a.as_str()))
        .set("Stage", r.stage as u32)
        .set_time("StageStartedAt", r.stage_started_at)
        .set_opt("StageOneApprovedBy", r.stage_one_approved_by.clone())
        .set("RemindersSent", r.reminders_sent)
        .set("Escalated", r.escalated)
        .set_opt("InvitedUserId", r.invited_user_id.clone())
        .set_opt("RedeemUrl", r.redeem_url.clone())
        .set("GrantsDone", r.grants_done)
        .set("InvitationMailed", r.invitation_mailed)
        .set("OutcomeMailed", r.outcome_mailed)
        .set("Attempts", r.attempts)
        .set_opt("LastError", r.last_error.clone())
        .set_time("NextAttemptAt", r.next_attempt_at)
        .set_opt(
            "GrantProblems",
            (!r.grant_problems.is_empty()).then(|| r.grant_problems.join("\n")),
        )
        .set_opt("JobTitle", r.job_title.clone());
    if let Some(s) = &r.signed_in {
        row.set("SignInTenantId", s.tenant_id.to_string())
            .set("SignInObjectId", s.object_id.to_string())
            .set("SignInName", s.name.clone())
            .set("SignInAddress", s.address.as_str())
            .set("SignInMfa", s.mfa)
            .set("SignInAt", format_time(s.at));
    }
    if let Some(d) = &r.decision {
        row.set("Approved", d.approve)
            .set("DecidedBy", d.by.clone())
            .set("DecidedAt", format_time(d.at))
            .set_opt("DecisionReason", d.reason.clone())
            .set("ShareReason", d.share_reason);
    }
    row
}

pub fn from_row(row: &Row) -> Result<SignupRequest, String> {
    let status: RequestStatus = row.str("Status")?.parse()?;
    let action = match row.opt_str("Action")? {
        None => None,
        Some(a) => Some(a.parse::<PolicyAction>().map_err(|_| {
            format!("property Action should be auto, approve or deny, found {a:?}")
        })?),
    };
    let decision = match row.opt_str("DecidedBy")? {
        None => None,
        Some(by) => Some(Decision {
            approve: row.bool("Approved")?,
            by: by.to_string(),
            at: row
                .time("DecidedAt")?
                .ok_or("property DecidedAt is missing")?,
            reason: row.opt_str("DecisionReason")?.map(str::to_string),
            share_reason: row.bool("ShareReason")?,
        }),
    };
    let stage = row.u32("Stage")?;
    let signed_in = match row.opt_str("SignInTenantId")? {
        None => None,
        Some(tenant) => {
            let guid = |name: &str, text: &str| {
                uuid::Uuid::parse_str(text).map_err(|_| format!("property {name} should be a GUID"))
            };
            Some(SignInProof {
                tenant_id: guid("SignInTenantId", tenant)?,
                object_id: guid("SignInObjectId", row.str("SignInObjectId")?)?,
                name: row.opt_str("SignInName")?.unwrap_or("").to_string(),
                address: EmailAddress::parse(row.str("SignInAddress")?)
                    .map_err(|e| format!("property SignInAddress: {e}"))?,
                mfa: row.bool("SignInMfa")?,
                at: row
                    .time("SignInAt")?
                    .ok_or("property SignInAt is missing")?,
            })
        }
    };
    Ok(SignupRequest {
        id: row.partition_key.clone(),
        status,
        applicant: applicant(row)?,
        created_at: row
            .time("CreatedAt")?
            .ok_or("property CreatedAt is missing")?,
        updated_at: row
            .time("UpdatedAt")?
            .ok_or("property UpdatedAt is missing")?,
        verified_at: row.time("VerifiedAt")?,
        policy_key: row.opt_str("PolicyKey")?.map(str::to_string),
        action,
        stage: u8::try_from(stage).map_err(|_| "property Stage should be 0, 1 or 2".to_string())?,
        stage_started_at: row.time("StageStartedAt")?,
        stage_one_approved_by: row.opt_str("StageOneApprovedBy")?.map(str::to_string),
        decision,
        reminders_sent: row.u32("RemindersSent")?,
        escalated: row.bool("Escalated")?,
        invited_user_id: row.opt_str("InvitedUserId")?.map(str::to_string),
        redeem_url: row.opt_str("RedeemUrl")?.map(str::to_string),
        grants_done: row.bool("GrantsDone")?,
        invitation_mailed: row.bool("InvitationMailed")?,
        outcome_mailed: row.bool("OutcomeMailed")?,
        attempts: row.u32("Attempts")?,
        last_error: row.opt_str("LastError")?.map(str::to_string),
        next_attempt_at: row.time("NextAttemptAt")?,
        grant_problems: row
            .opt_str("GrantProblems")?
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        signed_in,
        job_title: row.opt_str("JobTitle")?.map(str::to_string),
    })
}

/// Request ids are random UUIDs in simple form: unguessable, and safe as table keys.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub async fn get(store: &TableStore, id: &str) -> Result<Option<Stored>, StoreError> {
    if !valid_id(id) {
        return Ok(None);
    }
    match store.get(TableName::Requests, id, REQUEST_ROW).await? {
        None => Ok(None),
        Some(row) => {
            let request = store.decode(TableName::Requests, &row, from_row)?;
            Ok(Some(Stored {
                request,
                etag: row.etag.unwrap_or_default(),
            }))
        }
    }
}

/// The insert of a new request, for a transaction with what it causes.
pub fn insert_write(request: &SignupRequest) -> Write {
    Write::Insert(to_row(request))
}

/// The compare-and-swap of a request, for a transaction with what it causes.
pub fn replace_write(request: &SignupRequest, etag: &str) -> Write {
    Write::Replace(to_row(request), etag.to_string())
}

// --- submissions -------------------------------------------------------------------------

/// The 16 random bytes behind a submission id, which the verification link carries as its
/// nonce: the link names the submission whose details it confirms.
pub fn submission_nonce(submission_id: &str) -> Option<[u8; 16]> {
    <[u8; 16]>::try_from(hex::decode(submission_id).ok()?).ok()
}

pub fn submission_id(nonce: &[u8; 16]) -> String {
    hex::encode(nonce)
}

/// A later submission for an address whose request still waits for its mailbox proof: kept
/// beside the request, so the link sent for it confirms these details and no others.
pub fn submission_write(
    request_id: &str,
    submission_id: &str,
    a: &Applicant,
    job_title: Option<&str>,
    now: OffsetDateTime,
) -> Write {
    let mut row = Row::new(request_id, format!("{SUBMISSION_PREFIX}{submission_id}"));
    set_applicant(&mut row, a);
    row.set("CreatedAt", format_time(now))
        .set_opt("JobTitle", job_title);
    Write::Insert(row)
}

/// What a submission's link confirms: the details typed, and the job title if the form
/// asked for one.
pub type Typed = (Applicant, Option<String>);

fn typed(row: &Row) -> Result<Typed, String> {
    Ok((
        applicant(row)?,
        row.opt_str("JobTitle")?.map(str::to_string),
    ))
}

/// The request and, when the link names a later submission, that submission's details (one
/// round trip: both are in the request's partition). `Ok(None)` when the request is gone;
/// `Some((stored, None))` when the named submission is not there.
pub async fn get_with_submission(
    store: &TableStore,
    id: &str,
    submission_id: &str,
) -> Result<Option<(Stored, Option<Typed>)>, StoreError> {
    if submission_id == id {
        return Ok(get(store, id).await?.map(|s| {
            let typed = (s.request.applicant.clone(), s.request.job_title.clone());
            (s, Some(typed))
        }));
    }
    if !valid_id(id) || !valid_id(submission_id) {
        return Ok(None);
    }
    let filter = format!(
        "{} and ({} or {})",
        odata_eq("PartitionKey", id),
        odata_eq("RowKey", REQUEST_ROW),
        odata_eq("RowKey", &format!("{SUBMISSION_PREFIX}{submission_id}"))
    );
    let rows = store.query(TableName::Requests, Some(filter)).await?;
    let Some(request_row) = rows.iter().find(|r| r.row_key == REQUEST_ROW) else {
        return Ok(None);
    };
    let request = store.decode(TableName::Requests, request_row, from_row)?;
    let submission = rows
        .iter()
        .find(|r| r.row_key != REQUEST_ROW)
        .map(|r| store.decode(TableName::Requests, r, typed))
        .transpose()?;
    Ok(Some((
        Stored {
            request,
            etag: request_row.etag.clone().unwrap_or_default(),
        },
        submission,
    )))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

pub async fn insert(store: &TableStore, request: &SignupRequest) -> Result<String, StoreError> {
    store.insert(TableName::Requests, &to_row(request)).await
}

/// Writes the request if nobody changed it since `etag` was read; returns the new ETag.
/// [`StoreError::Changed`] means another writer won: re-read and decide again.
pub async fn save(
    store: &TableStore,
    request: &SignupRequest,
    etag: &str,
) -> Result<String, StoreError> {
    store
        .replace(TableName::Requests, &to_row(request), etag)
        .await
}

/// Deletes a request with everything in its partition (later submissions, mails).
pub async fn delete(store: &TableStore, id: &str) -> Result<(), StoreError> {
    if !valid_id(id) {
        return Ok(());
    }
    for row in store.partition(TableName::Requests, id).await? {
        store
            .delete(TableName::Requests, id, &row.row_key, None)
            .await?;
    }
    Ok(())
}

/// The write that deletes a submission as read (inside a transaction with its mail).
pub fn discard_write(stored: &Stored) -> Write {
    Write::Delete {
        row_key: REQUEST_ROW.into(),
        etag: stored.etag.clone(),
    }
}

/// Deletes a submission nobody admitted, if it is still as it was read.
pub async fn discard(store: &TableStore, stored: &Stored) -> Result<(), StoreError> {
    store
        .delete(
            TableName::Requests,
            &stored.request.id,
            REQUEST_ROW,
            Some(&stored.etag),
        )
        .await
}

/// All requests, optionally of one status and/or domain (operator views and the timer).
pub async fn list(
    store: &TableStore,
    status: Option<RequestStatus>,
    domain: Option<&str>,
) -> Result<Vec<SignupRequest>, StoreError> {
    let mut filter = odata_eq("RowKey", REQUEST_ROW);
    if let Some(s) = status {
        filter = format!("{filter} and {}", odata_eq("Status", s.as_str()));
    }
    if let Some(d) = domain {
        filter = format!("{filter} and {}", odata_eq("Domain", d));
    }
    let rows = store.query(TableName::Requests, Some(filter)).await?;
    let mut requests = rows
        .iter()
        .map(|r| store.decode(TableName::Requests, r, from_row))
        .collect::<Result<Vec<_>, _>>()?;
    requests.sort_by_key(|r| r.created_at);
    Ok(requests)
}

/// Requests the timer has work on: not closed.
pub async fn open(store: &TableStore) -> Result<Vec<Stored>, StoreError> {
    let filter = format!(
        "RowKey eq '{REQUEST_ROW}' and ({})",
        [
            RequestStatus::Submitted,
            RequestStatus::PendingVerification,
            RequestStatus::PendingApproval,
            RequestStatus::Approved,
            RequestStatus::InviteFailed,
        ]
        .iter()
        .map(|s| odata_eq("Status", s.as_str()))
        .collect::<Vec<_>>()
        .join(" or ")
    );
    let rows = store.query(TableName::Requests, Some(filter)).await?;
    rows.into_iter()
        .map(|row| {
            let request = store.decode(TableName::Requests, &row, from_row)?;
            Ok(Stored {
                request,
                etag: row.etag.unwrap_or_default(),
            })
        })
        .collect()
}

/// Closed requests, for purging personal data.
pub async fn closed_before(
    store: &TableStore,
    before: OffsetDateTime,
) -> Result<Vec<SignupRequest>, StoreError> {
    let filter = format!(
        "RowKey eq '{REQUEST_ROW}' and UpdatedAt lt '{}'",
        format_time(before)
    );
    let rows = store.query(TableName::Requests, Some(filter)).await?;
    let mut out = Vec::new();
    for row in &rows {
        let r = store.decode(TableName::Requests, row, from_row)?;
        if r.status.is_closed() {
            out.push(r);
        }
    }
    Ok(out)
}

// --- one open request per address ------------------------------------------------------

fn open_key(email: &EmailAddress) -> String {
    format!("open-{}", key_hash(&email.identity_key()))
}

/// Who holds an address's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The request asking holds it (newly, or from an earlier attempt at the same request).
    Ours,
    /// Another request holds it; `etag` is the claim's, for a take-over by compare-and-swap.
    Held { request_id: String, etag: String },
}

async fn read_claim(
    store: &TableStore,
    email: &EmailAddress,
) -> Result<Option<(String, String)>, StoreError> {
    let Some(row) = store
        .get(TableName::Requests, &open_key(email), OPEN_ROW)
        .await?
    else {
        return Ok(None);
    };
    let holder = store.decode(TableName::Requests, &row, |r| {
        r.str("RequestId").map(str::to_string)
    })?;
    Ok(Some((holder, row.etag.unwrap_or_default())))
}

/// Claims the address for `request_id`: one open request per address, decided by insert.
pub async fn claim_address(
    store: &TableStore,
    email: &EmailAddress,
    request_id: &str,
) -> Result<Claim, StoreError> {
    let mut row = Row::new(open_key(email), OPEN_ROW);
    row.set("RequestId", request_id);
    for _ in 0..3 {
        match store.insert(TableName::Requests, &row).await {
            Ok(_) => return Ok(Claim::Ours),
            Err(StoreError::AlreadyExists) => match read_claim(store, email).await? {
                Some((holder, _)) if holder == request_id => return Ok(Claim::Ours),
                Some((holder, etag)) => {
                    return Ok(Claim::Held {
                        request_id: holder,
                        etag,
                    })
                }
                // Released in between: try again.
                None => continue,
            },
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(
        "the address's claim kept changing".into(),
    ))
}

/// Moves a stale claim (its request closed or missing) to `request_id`, only if it is still
/// the claim that was read: of two take-overs racing, one wins and the other sees `false`.
pub async fn take_over_claim(
    store: &TableStore,
    email: &EmailAddress,
    request_id: &str,
    etag: &str,
) -> Result<bool, StoreError> {
    let mut row = Row::new(open_key(email), OPEN_ROW);
    row.set("RequestId", request_id);
    match store.replace(TableName::Requests, &row, etag).await {
        Ok(_) => Ok(true),
        Err(StoreError::Changed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Frees the address once `request_id` is closed, so the partner can ask again later. A
/// claim that meanwhile belongs to a newer request is left alone.
pub async fn release_address(
    store: &TableStore,
    email: &EmailAddress,
    request_id: &str,
) -> Result<(), StoreError> {
    match read_claim(store, email).await? {
        Some((holder, etag)) if holder == request_id => {
            match store
                .delete(TableName::Requests, &open_key(email), OPEN_ROW, Some(&etag))
                .await
            {
                Ok(()) | Err(StoreError::Changed) => Ok(()),
                Err(e) => Err(e),
            }
        }
        _ => Ok(()),
    }
}
