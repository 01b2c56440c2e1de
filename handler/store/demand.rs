//! Demand: the email domains people tried to sign up from that no policy admits, so admins see
//! which partners want access (`handler demand`).
//!
//! One row per domain (PartitionKey the domain, RowKey `demand`) with counts and first/last
//! seen, and nothing about the people: no address, no name, no IP. The counter is incremented
//! with compare-and-swap; the ids of the last few submissions counted are kept on the row so a
//! submission processed again after a crash is not counted twice. Rows not seen for the
//! retention period are purged by the timer, so anonymous traffic cannot grow the table
//! without bound.

use time::OffsetDateTime;

use super::{Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_cmp};

const ROW: &str = "demand";
/// Submissions remembered per domain for de-duplication: a replay comes within minutes of the
/// original, long before this many more arrive for the same domain.
const RECENT: usize = 16;

/// Why the submission was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unadmitted {
    /// No policy names the domain.
    NoPolicy,
    /// A `deny` policy matched.
    Denied,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainDemand {
    pub domain: String,
    pub no_policy: u32,
    pub denied: u32,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

fn from_row(row: &Row) -> Result<DomainDemand, String> {
    Ok(DomainDemand {
        domain: row.partition_key.clone(),
        no_policy: row.u32("NoPolicy")?,
        denied: row.u32("Denied")?,
        first_seen: row
            .time("FirstSeen")?
            .ok_or("property FirstSeen is missing")?,
        last_seen: row
            .time("LastSeen")?
            .ok_or("property LastSeen is missing")?,
    })
}

/// Counts one unadmitted submission for `domain`.
pub async fn count(
    store: &TableStore,
    domain: &str,
    why: Unadmitted,
    submission_id: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for _ in 0..16 {
        let existing = store.get(TableName::Demand, domain, ROW).await?;
        let (mut demand, mut recent, etag) = match &existing {
            Some(row) => (
                store.decode(TableName::Demand, row, from_row)?,
                row.opt_str("Recent")
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
                row.etag.clone(),
            ),
            None => (
                DomainDemand {
                    domain: domain.to_string(),
                    no_policy: 0,
                    denied: 0,
                    first_seen: now,
                    last_seen: now,
                },
                Vec::new(),
                None,
            ),
        };
        if recent.iter().any(|r| r == submission_id) {
            return Ok(());
        }
        match why {
            Unadmitted::NoPolicy => demand.no_policy += 1,
            Unadmitted::Denied => demand.denied += 1,
        }
        demand.first_seen = demand.first_seen.min(now);
        demand.last_seen = demand.last_seen.max(now);
        recent.push(submission_id.to_string());
        if recent.len() > RECENT {
            recent.drain(..recent.len() - RECENT);
        }
        let mut row = Row::new(domain, ROW);
        row.set("NoPolicy", demand.no_policy)
            .set("Denied", demand.denied)
            .set("FirstSeen", format_time(demand.first_seen))
            .set("LastSeen", format_time(demand.last_seen))
            .set("Recent", recent.join(","));
        let written = match etag {
            Some(etag) => store.replace(TableName::Demand, &row, &etag).await,
            None => store.insert(TableName::Demand, &row).await,
        };
        match written {
            Ok(_) => return Ok(()),
            Err(StoreError::Changed | StoreError::AlreadyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    // A domain this busy is counted by the rate limits; losing one count is harmless.
    tracing::warn!(domain, "demand count lost to contention");
    Ok(())
}

/// Every domain with demand, most recent first.
pub async fn all(store: &TableStore) -> Result<Vec<DomainDemand>, StoreError> {
    let rows = store.query(TableName::Demand, None).await?;
    let mut all = rows
        .iter()
        .map(|r| store.decode(TableName::Demand, r, from_row))
        .collect::<Result<Vec<_>, _>>()?;
    all.sort_by_key(|d| std::cmp::Reverse(d.last_seen));
    Ok(all)
}

/// Deletes domains last seen before `before`; returns how many.
pub async fn purge(store: &TableStore, before: OffsetDateTime) -> Result<u32, StoreError> {
    let rows = store
        .query(
            TableName::Demand,
            Some(odata_cmp("LastSeen", "lt", &format_time(before))),
        )
        .await?;
    for row in &rows {
        store
            .delete(
                TableName::Demand,
                &row.partition_key,
                &row.row_key,
                row.etag.as_deref(),
            )
            .await
            .or_else(|e| match e {
                StoreError::Changed => Ok(()),
                e => Err(e),
            })?;
    }
    Ok(rows.len() as u32)
}
