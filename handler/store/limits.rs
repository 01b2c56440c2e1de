//! Rate limits that hold across scaled-out instances: counter rows per key and hour,
//! incremented with compare-and-swap, so two instances can never both take the last slot.
//!
//! A per-address or per-IP counter sees little concurrency, so it is one row and exact. A
//! per-domain counter is hot under a burst (every partner of one company shares it): it is
//! spread over a few shard rows, read together in one query and incremented one at a time, so
//! concurrent sign-ups rarely collide. Under heavy concurrency the domain limit may be overshot
//! by about the number of requests in flight; it is a flood guard, not an exact quota.

use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

use super::{key_hash, Row, StoreError, TableName, TableStore};
use crate::adapters::tables::odata_cmp;

/// What is being limited. The key is hashed: the table holds no IPs or addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    ClientIp,
    Address,
    Domain,
}

impl LimitKind {
    fn prefix(self) -> &'static str {
        match self {
            LimitKind::ClientIp => "ip",
            LimitKind::Address => "addr",
            LimitKind::Domain => "dom",
        }
    }

    fn shards(self) -> u32 {
        match self {
            LimitKind::Domain => 32,
            _ => 1,
        }
    }
}

pub const WINDOW_SECONDS: i64 = 3600;

/// Counts one hit. `Ok(None)` means allowed; `Ok(Some(wait))` means the limit is reached and
/// the window frees up after `wait`.
pub async fn hit(
    store: &TableStore,
    kind: LimitKind,
    key: &str,
    limit: u32,
    now: OffsetDateTime,
) -> Result<Option<Duration>, StoreError> {
    let window = now.unix_timestamp().div_euclid(WINDOW_SECONDS);
    let wait =
        Duration::from_secs(((window + 1) * WINDOW_SECONDS - now.unix_timestamp()).max(1) as u64);
    if limit == 0 {
        return Ok(Some(wait));
    }
    let pk = format!("{}-{}", kind.prefix(), key_hash(key));
    // A lost race means someone else counted: read again and count again, with a little
    // jitter so the racers spread out.
    for attempt in 0..16u32 {
        if attempt > 0 {
            let ms = rand::thread_rng().gen_range(1..=(5 * attempt as u64).min(50));
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let shards = read_window(store, kind, &pk, window).await?;
        let total: u32 = shards.iter().map(|(_, count, _)| count).sum();
        if total >= limit {
            return Ok(Some(wait));
        }
        let shard = rand::thread_rng().gen_range(0..kind.shards());
        let rk = shard_key(window, shard);
        let outcome = match shards.iter().find(|(k, _, _)| *k == rk) {
            None => {
                let mut row = Row::new(&pk, &rk);
                row.set("Count", 1u32);
                store.insert(TableName::Limits, &row).await.map(|_| ())
            }
            Some((_, count, etag)) => {
                let mut row = Row::new(&pk, &rk);
                row.set("Count", count + 1);
                store
                    .replace(TableName::Limits, &row, etag)
                    .await
                    .map(|_| ())
            }
        };
        match outcome {
            Ok(()) => return Ok(None),
            Err(StoreError::AlreadyExists | StoreError::Changed) => continue,
            Err(e) => return Err(e),
        }
    }
    // Contention this heavy on one key is itself a sign of a flood: refuse rather than spin.
    Ok(Some(wait))
}

fn shard_key(window: i64, shard: u32) -> String {
    format!("{window}-{shard}")
}

/// The window's shard rows: (row key, count, etag). One point read for a single-shard
/// counter, one partition range query for a sharded one.
async fn read_window(
    store: &TableStore,
    kind: LimitKind,
    pk: &str,
    window: i64,
) -> Result<Vec<(String, u32, String)>, StoreError> {
    let rows = if kind.shards() == 1 {
        store
            .get(TableName::Limits, pk, &shard_key(window, 0))
            .await?
            .into_iter()
            .collect()
    } else {
        let filter = format!(
            "{} and {} and {}",
            crate::adapters::tables::odata_eq("PartitionKey", pk),
            odata_cmp("RowKey", "ge", &format!("{window}-")),
            odata_cmp("RowKey", "lt", &format!("{window}.")),
        );
        store.query(TableName::Limits, Some(filter)).await?
    };
    rows.iter()
        .map(|r| {
            let count = store.decode(TableName::Limits, r, |r| r.u32("Count"))?;
            Ok((r.row_key.clone(), count, r.etag.clone().unwrap_or_default()))
        })
        .collect()
}

/// Deletes the counters of windows that are over: they decide nothing any more, and without
/// this every client address ever seen would stay a row. Returns how many went.
pub async fn purge(store: &TableStore, now: OffsetDateTime) -> Result<u32, StoreError> {
    let window = now.unix_timestamp().div_euclid(WINDOW_SECONDS);
    // Row keys are `<window>-<shard>`; window numbers have the same number of digits for
    // centuries, so text order is time order.
    let rows = store
        .query(
            TableName::Limits,
            Some(odata_cmp("RowKey", "lt", &format!("{window}-"))),
        )
        .await?;
    store.delete_rows(TableName::Limits, &rows).await
}
