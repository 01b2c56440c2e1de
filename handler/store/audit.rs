//! The audit trail: who did what to which request or guest, and when. Entries are appended,
//! never changed. They hold ids and masked addresses, not names, so they can outlive the
//! personal data of closed requests.

use rand::Rng;
use time::OffsetDateTime;

use super::{Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_cmp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: OffsetDateTime,
    /// `requester`, `policy`, `timer`, `operator`, or an approver's address.
    pub actor: String,
    /// What happened, e.g. `request.submitted`, `request.verified`, `guest.invited`.
    pub action: String,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    /// A masked address or a short detail; never a name or a token.
    pub detail: String,
}

impl AuditEntry {
    pub fn new(at: OffsetDateTime, actor: impl Into<String>, action: impl Into<String>) -> Self {
        AuditEntry {
            at,
            actor: actor.into(),
            action: action.into(),
            request_id: None,
            user_id: None,
            detail: String::new(),
        }
    }

    pub fn request(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_string());
        self
    }

    pub fn user(mut self, id: &str) -> Self {
        self.user_id = Some(id.to_string());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

fn day(at: OffsetDateTime) -> String {
    format_time(at)[..10].to_string()
}

/// Appends an entry. Also logged, so the invocation's log tells the same story.
pub async fn record(store: &TableStore, entry: AuditEntry) -> Result<(), StoreError> {
    // Approvers act under their address; the log gets the masked form like every address.
    let actor =
        match crate::core::email::EmailAddress::parse(entry.actor.rsplit(' ').next().unwrap_or(""))
        {
            Ok(address) => entry.actor.replace(address.as_str(), &address.masked()),
            Err(_) => entry.actor.clone(),
        };
    tracing::info!(
        audit = %entry.action,
        actor = %actor,
        request_id = entry.request_id.as_deref().unwrap_or(""),
        user_id = entry.user_id.as_deref().unwrap_or(""),
        detail = %entry.detail,
        "audit"
    );
    // Time first so a day reads in order; a random suffix so two entries in the same
    // instant never collide.
    let suffix: u32 = rand::thread_rng().gen();
    let ts = entry.at.unix_timestamp_nanos();
    let mut row = Row::new(day(entry.at), format!("{ts:020}-{suffix:08x}"));
    row.set("At", format_time(entry.at))
        .set("Actor", entry.actor)
        .set("Action", entry.action)
        .set_opt("RequestId", entry.request_id)
        .set_opt("UserId", entry.user_id)
        .set("Detail", entry.detail);
    store.insert(TableName::Audit, &row).await.map(|_| ())
}

fn from_row(row: &Row) -> Result<AuditEntry, String> {
    Ok(AuditEntry {
        at: row.time("At")?.ok_or("property At is missing")?,
        actor: row.str("Actor")?.to_string(),
        action: row.str("Action")?.to_string(),
        request_id: row.opt_str("RequestId")?.map(str::to_string),
        user_id: row.opt_str("UserId")?.map(str::to_string),
        detail: row.opt_str("Detail")?.unwrap_or("").to_string(),
    })
}

/// Entries since a moment, oldest first.
pub async fn since(
    store: &TableStore,
    since: OffsetDateTime,
) -> Result<Vec<AuditEntry>, StoreError> {
    let filter = odata_cmp("PartitionKey", "ge", &day(since));
    let rows = store.query(TableName::Audit, Some(filter)).await?;
    let mut entries = rows
        .iter()
        .map(|r| store.decode(TableName::Audit, r, from_row))
        .collect::<Result<Vec<_>, _>>()?;
    entries.retain(|e| e.at >= since);
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}

/// Every entry about one request.
pub async fn for_request(
    store: &TableStore,
    request_id: &str,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = store
        .query(
            TableName::Audit,
            Some(crate::adapters::tables::odata_eq("RequestId", request_id)),
        )
        .await?;
    let mut entries = rows
        .iter()
        .map(|r| store.decode(TableName::Audit, r, from_row))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}
