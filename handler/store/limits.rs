//! Rate limits that hold across scaled-out instances: one counter row per key and hour,
//! incremented with compare-and-swap, so two instances can never both take the last slot.

use std::time::Duration;

use time::OffsetDateTime;

use super::{key_hash, Row, StoreError, TableName, TableStore};

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
    let rk = window.to_string();
    // A handful of tries: a lost race means someone else counted, so re-read and count again.
    for _ in 0..8 {
        match store.get(TableName::Limits, &pk, &rk).await? {
            None => {
                let mut row = Row::new(&pk, &rk);
                row.set("Count", 1u32);
                match store.insert(TableName::Limits, &row).await {
                    Ok(_) => return Ok(None),
                    Err(StoreError::AlreadyExists) => continue,
                    Err(e) => return Err(e),
                }
            }
            Some(mut row) => {
                let count = store.decode(TableName::Limits, &row, |r| r.u32("Count"))?;
                if count >= limit {
                    return Ok(Some(wait));
                }
                let etag = row.etag.clone().unwrap_or_default();
                row.set("Count", count + 1);
                match store.replace(TableName::Limits, &row, &etag).await {
                    Ok(_) => return Ok(None),
                    Err(StoreError::Changed) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Heavy contention on one key is itself a sign of abuse: refuse rather than spin.
    Ok(Some(wait))
}
