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
    let shard: u32 = rand::thread_rng().gen();
    let row = to_row(entry, shard);
    store.insert(TableName::Audit, &row).await.map(|_| ())
}

/// Appends many entries at once (the cleanup's entries of one wave): all in one of the day's
/// partitions, so they travel as entity-group transactions of up to 100 rather than one round
/// trip each. Either a transaction's entries are all written or none are.
pub async fn record_all(store: &TableStore, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let shard: u32 = rand::thread_rng().gen();
    let rows: Vec<Row> = entries.into_iter().map(|e| to_row(e, shard)).collect();
    store.upsert_batch(TableName::Audit, &rows).await
}

/// The entry's row, logged on the way. The day is spread over 16 partitions by `shard`'s
/// last hex digit: an audit trail appended to one partition is Table Storage's "append-only"
/// hot spot (one partition server takes every write of every instance); `since` sorts anyway.
fn to_row(entry: AuditEntry, shard: u32) -> Row {
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
    // Time first so a partition reads in order; a random suffix so two entries in the same
    // instant never collide (their keys are unique, so a transaction's "insert or replace"
    // only ever inserts).
    let suffix: u32 = rand::thread_rng().gen();
    let ts = entry.at.unix_timestamp_nanos();
    let partition = format!("{}-{:x}", day(entry.at), shard & 0xf);
    let mut row = Row::new(partition, format!("{ts:020}-{suffix:08x}"));
    row.set("At", format_time(entry.at))
        .set("Actor", entry.actor)
        .set("Action", entry.action)
        .set_opt("RequestId", entry.request_id)
        .set_opt("UserId", entry.user_id)
        .set("Detail", entry.detail);
    row
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
    // `YYYY-MM-DD-x` sorts after `YYYY-MM-DD`: this takes every partition of the day.
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

/// Deletes the entries of days before `before` (`AUDIT_RETENTION_DAYS`). Returns how many.
pub async fn purge(store: &TableStore, before: OffsetDateTime) -> Result<u32, StoreError> {
    let rows = store
        .query(
            TableName::Audit,
            Some(odata_cmp("PartitionKey", "lt", &day(before))),
        )
        .await?;
    store.delete_rows(TableName::Audit, &rows).await
}
