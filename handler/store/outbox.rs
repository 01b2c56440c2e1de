//! Outbox mails as rows, beside what caused them.
//!
//! A mail lives in the table and partition of the record whose change caused it — a request's
//! mails in the request's partition of `Requests` — under RowKey `mail-<id>`, so the change and
//! the mail are written by one entity-group transaction. The sweep finds the mails still to
//! send with one filtered query per table (`mail-` keys in state pending or sending).
//!
//! Every row carries a signature: an HMAC with the portal's signing key over where the row is
//! and everything that decides what is sent to whom (see [`Letter::signed_content`]). Anyone who can
//! write the table can write a row, but without the key it does not verify, and a mail that
//! does not verify is never sent: it is marked dead with the reason, for an admin to see.

use time::OffsetDateTime;

use super::{Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_eq, Write};
use crate::core::outbox::{Delivery, Letter, LinkRecipe, MailState};
use crate::core::token::SigningKeys;

/// The tables that hold mails: requests (the partner's and approvers' mail) and guests (the
/// cleanup's reminders and warnings).
pub const MAIL_TABLES: [TableName; 2] = [TableName::Requests, TableName::Guests];

const PREFIX: &str = "mail-";
/// What the outbox writes on a mail's receipt row (see `Letter::receipt`) when it delivers it.
pub const RECEIPT_ID: &str = "LastMailDeliveredId";
pub const RECEIPT_AT: &str = "LastMailDeliveredAt";
/// The kind of signed record: a signature over anything else never passes for a mail's.
const RECORD_KIND: &str = "outbox-mail";

fn place(table: TableName, partition_key: &str) -> String {
    format!("{table:?}/{partition_key}")
}

/// A mail as read back, with what is needed to write its delivery with compare-and-swap.
#[derive(Clone, Debug)]
pub struct StoredMail {
    pub table: TableName,
    pub partition_key: String,
    pub letter: Letter,
    pub delivery: Delivery,
    pub etag: String,
    /// Whether the signature verified: the portal wrote this mail.
    pub sealed: bool,
    /// Why it did not, for the dead letter and the log.
    pub seal_problem: Option<String>,
}

impl StoredMail {
    /// How an admin names it: unique across the portal.
    pub fn id(&self) -> &str {
        &self.letter.id
    }
}

/// The insert that records `letter` in `partition_key` of `table`, for a transaction.
pub fn insert(
    table: TableName,
    partition_key: &str,
    letter: &Letter,
    delivery: &Delivery,
    keys: &SigningKeys,
) -> Write {
    let content = letter.signed_content(&place(table, partition_key));
    let mut row = Row::new(partition_key, format!("{PREFIX}{}", letter.id));
    row.set("Kind", letter.kind.as_str())
        .set("To", letter.to.clone())
        .set("Subject", letter.subject.clone())
        .set("Text", letter.text.clone())
        .set("Html", letter.html.clone())
        .set_opt("Link", letter.link.as_ref().map(LinkRecipe::encode))
        .set_opt("Receipt", letter.receipt.clone())
        .set("Seal", keys.sign_record(RECORD_KIND, &content));
    set_delivery(&mut row, delivery);
    Write::Insert(row)
}

fn set_delivery(row: &mut Row, d: &Delivery) {
    row.set("State", d.state.as_str())
        .set("Attempts", d.attempts)
        .set("CreatedAt", format_time(d.created_at))
        .set("DueAt", format_time(d.due_at))
        .set("LeaseUntil", format_time(d.lease_until))
        .set_time("DeliveredAt", d.delivered_at)
        .set_opt("LastError", d.last_error.clone());
}

fn from_row(table: TableName, row: &Row, keys: &SigningKeys) -> Result<StoredMail, String> {
    let id = row
        .row_key
        .strip_prefix(PREFIX)
        .ok_or("not a mail row")?
        .to_string();
    let link = match row.opt_str("Link")? {
        None => None,
        Some(text) => Some(LinkRecipe::decode(text).map_err(|e| format!("property Link: {e}"))?),
    };
    let letter = Letter {
        id,
        kind: row.str("Kind")?.parse()?,
        to: row.str("To")?.to_string(),
        subject: row.str("Subject")?.to_string(),
        text: row.str("Text")?.to_string(),
        html: row.str("Html")?.to_string(),
        link,
        receipt: row.opt_str("Receipt")?.map(str::to_string),
    };
    let due_at = row.time("DueAt")?.ok_or("property DueAt is missing")?;
    let delivery = Delivery {
        state: row.str("State")?.parse()?,
        attempts: row.u32("Attempts")?,
        created_at: row
            .time("CreatedAt")?
            .ok_or("property CreatedAt is missing")?,
        due_at,
        lease_until: row.time("LeaseUntil")?.unwrap_or(due_at),
        delivered_at: row.time("DeliveredAt")?,
        last_error: row
            .opt_str("LastError")?
            .filter(|e| !e.is_empty())
            .map(str::to_string),
    };
    let content = letter.signed_content(&place(table, &row.partition_key));
    let seal_problem = keys
        .verify_record(RECORD_KIND, &content, row.opt_str("Seal")?)
        .err()
        .map(|e| e.to_string());
    Ok(StoredMail {
        table,
        partition_key: row.partition_key.clone(),
        letter,
        delivery,
        etag: row.etag.clone().unwrap_or_default(),
        sealed: seal_problem.is_none(),
        seal_problem,
    })
}

/// A mail row that could not be read as one: reported, and marked dead so it stops coming
/// back, but never sent.
#[derive(Clone, Debug)]
pub struct Unreadable {
    pub table: TableName,
    pub partition_key: String,
    pub row_key: String,
    pub etag: String,
    pub problem: String,
}

fn mail_filter(extra: Option<String>) -> String {
    let keys = format!("RowKey ge '{PREFIX}' and RowKey lt 'mail.'");
    match extra {
        Some(e) => format!("{keys} and ({e})"),
        None => keys,
    }
}

async fn query(
    store: &TableStore,
    keys: &SigningKeys,
    filter: Option<String>,
) -> Result<(Vec<StoredMail>, Vec<Unreadable>), StoreError> {
    query_in(store, keys, &MAIL_TABLES, filter).await
}

async fn query_in(
    store: &TableStore,
    keys: &SigningKeys,
    tables: &[TableName],
    filter: Option<String>,
) -> Result<(Vec<StoredMail>, Vec<Unreadable>), StoreError> {
    let mut mails = Vec::new();
    let mut unreadable = Vec::new();
    let filter = mail_filter(filter);
    let reads = tables
        .iter()
        .map(|t| async { (*t, store.query(*t, Some(filter.clone())).await) });
    for (table, rows) in futures::future::join_all(reads).await {
        for row in rows? {
            match from_row(table, &row, keys) {
                Ok(m) => mails.push(m),
                Err(problem) => unreadable.push(Unreadable {
                    table,
                    partition_key: row.partition_key.clone(),
                    row_key: row.row_key.clone(),
                    etag: row.etag.clone().unwrap_or_default(),
                    problem,
                }),
            }
        }
    }
    mails.sort_by_key(|m| m.delivery.created_at);
    Ok((mails, unreadable))
}

/// Mails in `tables` a sweep should send: pending and due at the run's `now`, or sending with
/// a lease that is over by the real clock (`real_now`).
pub async fn due(
    store: &TableStore,
    keys: &SigningKeys,
    tables: &[TableName],
    now: OffsetDateTime,
    real_now: OffsetDateTime,
) -> Result<(Vec<StoredMail>, Vec<Unreadable>), StoreError> {
    // RFC 3339 UTC text with whole seconds sorts as time does.
    let filter = format!(
        "({} and DueAt le '{}') or ({} and LeaseUntil le '{}')",
        odata_eq("State", MailState::Pending.as_str()),
        format_time(now),
        odata_eq("State", MailState::Sending.as_str()),
        format_time(real_now),
    );
    let (mut mails, unreadable) = query_in(store, keys, tables, Some(filter)).await?;
    mails.retain(|m| m.delivery.is_due(now, real_now));
    Ok((mails, unreadable))
}

/// Every mail (the admin's list), or those in one state.
pub async fn list(
    store: &TableStore,
    keys: &SigningKeys,
    state: Option<MailState>,
) -> Result<Vec<StoredMail>, StoreError> {
    let filter = state.map(|s| odata_eq("State", s.as_str()));
    Ok(query(store, keys, filter).await?.0)
}

/// One mail by its id.
pub async fn find(
    store: &TableStore,
    keys: &SigningKeys,
    id: &str,
) -> Result<Option<StoredMail>, StoreError> {
    let filter = odata_eq("RowKey", &format!("{PREFIX}{id}"));
    Ok(query(store, keys, Some(filter)).await?.0.into_iter().next())
}

/// Writes the mail's delivery if nobody changed it since it was read; returns the new ETag.
/// [`StoreError::Changed`] means another sender took it.
pub async fn save_delivery(store: &TableStore, mail: &StoredMail) -> Result<String, StoreError> {
    let mut row = Row::new(&mail.partition_key, format!("{PREFIX}{}", mail.letter.id));
    set_delivery(&mut row, &mail.delivery);
    if mail.delivery.last_error.is_none() {
        // A merge keeps properties it is not given: clear the old error explicitly.
        row.set("LastError", "");
    }
    store.merge(mail.table, &row, &mail.etag).await
}

/// Marks a row that is not a readable mail as dead, so the sweep stops meeting it.
pub async fn bury(
    store: &TableStore,
    u: &Unreadable,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut row = Row::new(&u.partition_key, &u.row_key);
    row.set("State", MailState::Dead.as_str())
        .set("DueAt", format_time(now))
        .set("LastError", format!("not a readable mail: {}", u.problem));
    store.merge(u.table, &row, &u.etag).await.map(|_| ())
}

/// Deletes delivered mails older than `before` (they hold addresses and names), and dead
/// ones older than `dead_before`. Returns how many went.
pub async fn purge(
    store: &TableStore,
    keys: &SigningKeys,
    before: OffsetDateTime,
    dead_before: OffsetDateTime,
) -> Result<u32, StoreError> {
    let filter = format!(
        "({} and DueAt lt '{}') or ({} and DueAt lt '{}')",
        odata_eq("State", MailState::Delivered.as_str()),
        format_time(before),
        odata_eq("State", MailState::Dead.as_str()),
        format_time(dead_before),
    );
    let (mails, _) = query(store, keys, Some(filter)).await?;
    let mut purged = 0;
    for m in mails {
        let rk = format!("{PREFIX}{}", m.letter.id);
        store
            .delete(m.table, &m.partition_key, &rk, Some(&m.etag))
            .await
            .or_else(|e| match e {
                // Retried by an admin meanwhile: it stays.
                StoreError::Changed => Ok(()),
                e => Err(e),
            })?;
        purged += 1;
    }
    Ok(purged)
}

/// All mail rows of one partition (deleting a request takes its mails with it).
pub async fn in_partition(
    store: &TableStore,
    table: TableName,
    partition_key: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let filter = format!(
        "{} and {}",
        odata_eq("PartitionKey", partition_key),
        mail_filter(None)
    );
    Ok(store
        .query(table, Some(filter))
        .await?
        .into_iter()
        .map(|r| (r.row_key, r.etag.unwrap_or_default()))
        .collect())
}
