//! Guests this portal created: the cleanup's scope by default, and the operator's view of
//! who came in through which policy and until when.

use time::OffsetDateTime;

use super::{Row, StoreError, TableName, TableStore};
use crate::adapters::tables::format_time;

const PARTITION: &str = "guest";

/// Where a guest is in its life after the invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestState {
    /// Invited; the invitation may or may not have been redeemed.
    Active,
    /// Told it will be removed (unredeemed reminder or removal warning).
    Warned,
    /// `accountEnabled=false`, waiting out the grace period.
    Disabled,
    /// Soft-deleted in the directory (restorable for 30 days).
    Deleted,
}

impl GuestState {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestState::Active => "active",
            GuestState::Warned => "warned",
            GuestState::Disabled => "disabled",
            GuestState::Deleted => "deleted",
        }
    }
}

impl std::str::FromStr for GuestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(GuestState::Active),
            "warned" => Ok(GuestState::Warned),
            "disabled" => Ok(GuestState::Disabled),
            "deleted" => Ok(GuestState::Deleted),
            other => Err(format!("unknown guest state {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub user_id: String,
    pub email: String,
    pub request_id: Option<String>,
    pub policy_key: Option<String>,
    pub invited_at: OffsetDateTime,
    pub access_ends_at: Option<OffsetDateTime>,
    pub redeem_url: Option<String>,
    pub language: String,
    pub first_name: String,
    pub state: GuestState,
    pub state_changed_at: OffsetDateTime,
    /// Why the cleanup warned or disabled it (`unredeemed`, `access_period`, `inactive`).
    pub removal_reason: Option<String>,
    pub reminder_sent_at: Option<OffsetDateTime>,
}

pub fn to_row(g: &Guest) -> Row {
    let mut row = Row::new(PARTITION, &g.user_id);
    row.set("Email", g.email.clone())
        .set_opt("RequestId", g.request_id.clone())
        .set_opt("PolicyKey", g.policy_key.clone())
        .set("InvitedAt", format_time(g.invited_at))
        .set_time("AccessEndsAt", g.access_ends_at)
        .set_opt("RedeemUrl", g.redeem_url.clone())
        .set("Language", g.language.clone())
        .set("FirstName", g.first_name.clone())
        .set("State", g.state.as_str())
        .set("StateChangedAt", format_time(g.state_changed_at))
        .set_opt("RemovalReason", g.removal_reason.clone())
        .set_time("ReminderSentAt", g.reminder_sent_at);
    row
}

pub fn from_row(row: &Row) -> Result<Guest, String> {
    Ok(Guest {
        user_id: row.row_key.clone(),
        email: row.str("Email")?.to_string(),
        request_id: row.opt_str("RequestId")?.map(str::to_string),
        policy_key: row.opt_str("PolicyKey")?.map(str::to_string),
        invited_at: row
            .time("InvitedAt")?
            .ok_or("property InvitedAt is missing")?,
        access_ends_at: row.time("AccessEndsAt")?,
        redeem_url: row.opt_str("RedeemUrl")?.map(str::to_string),
        language: row.opt_str("Language")?.unwrap_or("en").to_string(),
        first_name: row.opt_str("FirstName")?.unwrap_or("").to_string(),
        state: row.str("State")?.parse()?,
        state_changed_at: row
            .time("StateChangedAt")?
            .ok_or("property StateChangedAt is missing")?,
        removal_reason: row.opt_str("RemovalReason")?.map(str::to_string),
        reminder_sent_at: row.time("ReminderSentAt")?,
    })
}

/// Records (or refreshes) a guest: idempotent, keyed by the directory's user id.
pub async fn record(store: &TableStore, guest: &Guest) -> Result<(), StoreError> {
    store
        .upsert(TableName::Guests, &to_row(guest))
        .await
        .map(|_| ())
}

pub async fn get(store: &TableStore, user_id: &str) -> Result<Option<(Guest, String)>, StoreError> {
    match store.get(TableName::Guests, PARTITION, user_id).await? {
        None => Ok(None),
        Some(row) => Ok(Some((
            store.decode(TableName::Guests, &row, from_row)?,
            row.etag.unwrap_or_default(),
        ))),
    }
}

pub async fn save(store: &TableStore, guest: &Guest, etag: &str) -> Result<String, StoreError> {
    store.replace(TableName::Guests, &to_row(guest), etag).await
}

/// The cleanup's step forward for one guest: merges only the lifecycle properties, and only
/// if the row is unchanged since `etag` was read (so a resumed run sees what it already did,
/// and the rest of the row is never rewritten from a stale copy). Returns the new ETag.
pub async fn advance(
    store: &TableStore,
    user_id: &str,
    etag: &str,
    state: GuestState,
    at: OffsetDateTime,
    reason: &str,
    reminder_sent_at: Option<OffsetDateTime>,
) -> Result<String, StoreError> {
    let mut row = Row::new(PARTITION, user_id);
    row.set("State", state.as_str())
        .set("StateChangedAt", format_time(at))
        .set("RemovalReason", reason)
        .set_time("ReminderSentAt", reminder_sent_at);
    store.merge(TableName::Guests, &row, etag).await
}

pub async fn all(store: &TableStore) -> Result<Vec<(Guest, String)>, StoreError> {
    let rows = store.partition(TableName::Guests, PARTITION).await?;
    rows.into_iter()
        .map(|row| {
            let g = store.decode(TableName::Guests, &row, from_row)?;
            Ok((g, row.etag.unwrap_or_default()))
        })
        .collect()
}
