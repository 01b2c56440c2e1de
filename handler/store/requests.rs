//! Sign-up requests as rows, and the per-address index that keeps one open request per
//! address even when two instances take the same submission at the same moment.

use time::OffsetDateTime;

use super::{key_hash, Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_eq};
use crate::core::email::EmailAddress;
use crate::core::policy::{Language, PolicyAction};
use crate::core::request::{Applicant, Decision, RequestStatus, SignupRequest};

const REQUEST_ROW: &str = "request";
const OPEN_ROW: &str = "open";

/// A request as read, with the ETag that a later write must match.
#[derive(Debug, Clone)]
pub struct Stored {
    pub request: SignupRequest,
    pub etag: String,
}

pub fn to_row(r: &SignupRequest) -> Row {
    let a = &r.applicant;
    let mut row = Row::new(&r.id, REQUEST_ROW);
    row.set("Status", r.status.as_str())
        .set("Email", a.email.as_str())
        .set("Domain", a.email.domain().as_str())
        .set("FirstName", a.first_name.clone())
        .set("LastName", a.last_name.clone())
        .set("Organisation", a.organisation.clone())
        .set_opt("Justification", a.justification.clone())
        .set("Language", a.language.as_str())
        .set("CreatedAt", format_time(r.created_at))
        .set("UpdatedAt", format_time(r.updated_at))
        .set_time("VerifiedAt", r.verified_at)
        .set_opt("PolicyKey", r.policy_key.clone())
        .set_opt("Action", r.action.map(|a| a.as_str()))
        .set("Stage", r.stage as u32)
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
        );
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
    let email =
        EmailAddress::parse(row.str("Email")?).map_err(|e| format!("property Email: {e}"))?;
    let language: Language = row
        .str("Language")?
        .parse()
        .map_err(|_| "property Language should be en or sv".to_string())?;
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
    Ok(SignupRequest {
        id: row.partition_key.clone(),
        status,
        applicant: Applicant {
            email,
            first_name: row.str("FirstName")?.to_string(),
            last_name: row.str("LastName")?.to_string(),
            organisation: row.opt_str("Organisation")?.unwrap_or("").to_string(),
            justification: row.opt_str("Justification")?.map(str::to_string),
            language,
        },
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
    })
}

/// Request ids are random UUIDs in simple form: unguessable, and safe as table keys.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub async fn get(store: &TableStore, id: &str) -> Result<Option<Stored>, StoreError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
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

pub async fn delete(store: &TableStore, id: &str) -> Result<(), StoreError> {
    store
        .delete(TableName::Requests, id, REQUEST_ROW, None)
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

/// Claims the address for `request_id`. Returns `Ok(None)` when claimed, or the id of the
/// request that already holds it.
pub async fn claim_address(
    store: &TableStore,
    email: &EmailAddress,
    request_id: &str,
) -> Result<Option<String>, StoreError> {
    let mut row = Row::new(open_key(email), OPEN_ROW);
    row.set("RequestId", request_id);
    match store.insert(TableName::Requests, &row).await {
        Ok(_) => Ok(None),
        Err(StoreError::AlreadyExists) => {
            let existing = store
                .get(TableName::Requests, &open_key(email), OPEN_ROW)
                .await?;
            match existing {
                Some(r) => Ok(Some(store.decode(TableName::Requests, &r, |r| {
                    r.str("RequestId").map(str::to_string)
                })?)),
                // Released in between: try once more.
                None => match store.insert(TableName::Requests, &row).await {
                    Ok(_) => Ok(None),
                    Err(e) => Err(e),
                },
            }
        }
        Err(e) => Err(e),
    }
}

/// Moves a stale claim (its request closed or missing) to a new request.
pub async fn take_over_claim(
    store: &TableStore,
    email: &EmailAddress,
    request_id: &str,
) -> Result<(), StoreError> {
    let mut row = Row::new(open_key(email), OPEN_ROW);
    row.set("RequestId", request_id);
    store.upsert(TableName::Requests, &row).await.map(|_| ())
}

/// Frees the address once its request is closed, so the partner can ask again later.
pub async fn release_address(store: &TableStore, email: &EmailAddress) -> Result<(), StoreError> {
    store
        .delete(TableName::Requests, &open_key(email), OPEN_ROW, None)
        .await
}
