//! Azure Table Storage: the portal's only database.
//!
//! Everything the portal keeps (policies, requests, guests, audit, rate-limit windows, cleanup
//! checkpoints) is a row in one of a few tables. This module is the only code that knows the
//! SDK (the unofficial `azure_data_tables`, whose last release is 0.21: keeping it behind this
//! one module lets the portal move to an official crate when one ships). It speaks in
//! [`Row`]s, loosely typed property bags; the domain types convert themselves to and from rows
//! (see `crate::records`), so a hand-edited entity that no longer parses becomes
//! [`StoreError::Invalid`] naming the table and key, never a panic.
//!
//! Every update that could race (two instances, two approvers, two timer runs) is a
//! compare-and-swap on the row's ETag: [`TableStore::replace`] fails with
//! [`StoreError::Changed`] when someone else wrote first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core_legacy::error::ErrorKind;
use azure_core_legacy::{Etag, FixedRetryOptions, RetryOptions, TransportOptions};
use azure_data_tables::clients::{TableClient, TableServiceClient, TableServiceClientBuilder};
use azure_data_tables::IfMatchCondition;
use azure_storage::{CloudLocation, StorageCredentials};
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::settings::{StorageAuth, StorageSettings};

/// The portal's tables. The enum keeps names in one place; the physical name is the
/// configured prefix plus this suffix (e.g. `portalRequests`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableName {
    Policies,
    Requests,
    Guests,
    Audit,
    Limits,
    Jobs,
    Demand,
    SignIns,
}

impl TableName {
    pub const ALL: [TableName; 8] = [
        TableName::Policies,
        TableName::Requests,
        TableName::Guests,
        TableName::Audit,
        TableName::Limits,
        TableName::Jobs,
        TableName::Demand,
        TableName::SignIns,
    ];

    fn suffix(self) -> &'static str {
        match self {
            TableName::Policies => "Policies",
            TableName::Requests => "Requests",
            TableName::Guests => "Guests",
            TableName::Audit => "Audit",
            TableName::Limits => "Limits",
            TableName::Jobs => "Jobs",
            TableName::Demand => "Demand",
            TableName::SignIns => "SignIns",
        }
    }
}

/// One entity: its keys, its ETag when read back, and its properties.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    pub partition_key: String,
    pub row_key: String,
    pub etag: Option<String>,
    pub props: Map<String, Value>,
}

impl Row {
    pub fn new(partition_key: impl Into<String>, row_key: impl Into<String>) -> Self {
        Row {
            partition_key: partition_key.into(),
            row_key: row_key.into(),
            etag: None,
            props: Map::new(),
        }
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.props.insert(name.to_string(), value.into());
        self
    }

    /// Sets the property only when there is a value: Table Storage has no null, an absent
    /// property is how "none" is stored.
    pub fn set_opt<V: Into<Value>>(&mut self, name: &str, value: Option<V>) -> &mut Self {
        match value {
            Some(v) => self.set(name, v),
            None => {
                self.props.remove(name);
                self
            }
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, String> {
        self.opt_str(name)?
            .ok_or_else(|| format!("property {name} is missing"))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, String> {
        match self.props.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("property {name} should be text, found {other}")),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.props.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!(
                "property {name} should be true or false, found {other}"
            )),
        }
    }

    pub fn u32(&self, name: &str) -> Result<u32, String> {
        match self.props.get(name) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("property {name} should be a whole number, found {n}")),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| format!("property {name} should be a whole number, found {s:?}")),
            Some(other) => Err(format!(
                "property {name} should be a whole number, found {other}"
            )),
        }
    }

    /// Timestamps are stored as RFC 3339 UTC text: readable in Storage Explorer and sortable.
    pub fn time(&self, name: &str) -> Result<Option<time::OffsetDateTime>, String> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) => {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(Some)
                    .map_err(|_| {
                        format!(
                    "property {name} should be a UTC time like 2026-01-31T12:00:00Z, found {s:?}"
                )
                    })
            }
        }
    }

    pub fn set_time(&mut self, name: &str, value: Option<time::OffsetDateTime>) -> &mut Self {
        self.set_opt(name, value.map(format_time))
    }

    fn to_entity(&self) -> Value {
        let mut body = self.props.clone();
        body.insert(
            "PartitionKey".into(),
            Value::String(self.partition_key.clone()),
        );
        body.insert("RowKey".into(), Value::String(self.row_key.clone()));
        Value::Object(body)
    }

    fn from_entity(mut entity: Map<String, Value>, etag: Option<String>) -> Result<Row, String> {
        let pk = match entity.remove("PartitionKey") {
            Some(Value::String(s)) => s,
            _ => return Err("the entity has no PartitionKey".into()),
        };
        let rk = match entity.remove("RowKey") {
            Some(Value::String(s)) => s,
            _ => return Err("the entity has no RowKey".into()),
        };
        let etag = etag.or_else(|| {
            entity
                .get("odata.etag")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        // Drop the service's own annotations and the system timestamp; keep the data.
        entity
            .retain(|k, _| !k.starts_with("odata.") && !k.contains("@odata.") && k != "Timestamp");
        Ok(Row {
            partition_key: pk,
            row_key: rk,
            etag,
            props: entity,
        })
    }
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What can go wrong with storage, in the words the functions decide by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An insert found the key taken.
    AlreadyExists,
    /// The ETag no longer matches: another writer came first.
    Changed,
    NotFound,
    /// The service could not be reached or failed: retry later, nothing was decided.
    Unavailable(String),
    /// A row that does not parse as what its table holds (hand-edited, or from a newer version).
    Invalid {
        table: String,
        partition_key: String,
        row_key: String,
        problem: String,
    },
    /// Refused for a reason retrying will not fix (bad key, permissions).
    Rejected(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::AlreadyExists => f.write_str("the entity already exists"),
            StoreError::Changed => f.write_str("the entity was changed by someone else"),
            StoreError::NotFound => f.write_str("the entity does not exist"),
            StoreError::Unavailable(why) => write!(f, "table storage is unavailable: {why}"),
            StoreError::Invalid {
                table,
                partition_key,
                row_key,
                problem,
            } => write!(
                f,
                "invalid entity in table {table} (PartitionKey {partition_key:?}, RowKey {row_key:?}): {problem}"
            ),
            StoreError::Rejected(why) => write!(f, "table storage refused the request: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

fn classify(err: azure_core_legacy::Error) -> StoreError {
    match err.kind() {
        ErrorKind::HttpResponse { status, error_code } => {
            let code = error_code.clone().unwrap_or_default();
            match u16::from(*status) {
                404 => StoreError::NotFound,
                409 => StoreError::AlreadyExists,
                412 => StoreError::Changed,
                408 | 429 | 500..=599 => {
                    StoreError::Unavailable(format!("{} {code}", u16::from(*status)))
                }
                s => StoreError::Rejected(format!("{s} {code}")),
            }
        }
        ErrorKind::Io | ErrorKind::Credential => StoreError::Unavailable(err.to_string()),
        _ => {
            // The SDK reports connection failures as generic errors wrapping reqwest's.
            let text = err.to_string();
            StoreError::Unavailable(text)
        }
    }
}

/// One write of an entity-group transaction (see [`TableStore::transact`]).
#[derive(Clone, Debug)]
pub enum Write {
    /// Fails the transaction with [`StoreError::AlreadyExists`] when the key is taken.
    Insert(Row),
    /// Only if the row's ETag is still the one given; else [`StoreError::Changed`].
    Replace(Row, String),
    /// Properties merged in, only if the row's ETag is still the one given.
    Merge(Row, String),
    /// Only if the row's ETag is still the one given.
    Delete { row_key: String, etag: String },
}

impl Write {
    fn row_key(&self) -> &str {
        match self {
            Write::Insert(r) | Write::Replace(r, _) | Write::Merge(r, _) => &r.row_key,
            Write::Delete { row_key, .. } => row_key,
        }
    }
}

/// A handle on the portal's tables. Cheap to clone; tables are created on first use.
/// The transport under the SDK: reqwest, with one change to reads. The SDK asks for
/// `odata=fullmetadata` on every read, so the service annotates each entity with its type, id
/// and edit link and each property with its type, all of which the portal drops
/// ([`Row::from_entity`]); `minimalmetadata` still carries what the portal and the SDK use (the
/// `odata.metadata` link the SDK's parser expects, each queried entity's `odata.etag`, the
/// type of every property whose JSON does not show it). Fewer bytes for the service to write
/// and the portal to parse on every point read and query. `Accept` is not part of the
/// shared-key signature, so the request stays signed.
#[derive(Debug)]
struct MinimalMetadata(reqwest::Client);

const FULL_METADATA: &str = "application/json;odata=fullmetadata";
const MINIMAL_METADATA: &str = "application/json;odata=minimalmetadata";

#[async_trait::async_trait]
impl azure_core_legacy::HttpClient for MinimalMetadata {
    async fn execute_request(
        &self,
        request: &azure_core_legacy::Request,
    ) -> azure_core_legacy::Result<azure_core_legacy::Response> {
        use azure_core_legacy::headers::ACCEPT;
        let read = *request.method() == azure_core_legacy::Method::Get
            && request.headers().get_optional_str(&ACCEPT) == Some(FULL_METADATA);
        if read {
            let mut lean = request.clone();
            lean.insert_header(ACCEPT, MINIMAL_METADATA);
            return self.0.execute_request(&lean).await;
        }
        self.0.execute_request(request).await
    }
}

#[derive(Clone)]
pub struct TableStore {
    service: TableServiceClient,
    prefix: String,
    created: Arc<HashMap<TableName, OnceCell<()>>>,
}

impl TableStore {
    pub fn new(
        settings: &StorageSettings,
        http: reqwest::Client,
        token: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
    ) -> Result<Self, String> {
        let credentials = match &settings.auth {
            StorageAuth::SharedKey(key) => {
                StorageCredentials::access_key(settings.account.clone(), key.clone())
            }
            StorageAuth::ManagedIdentity => {
                let token = token.ok_or("keyless table access needs a credential")?;
                StorageCredentials::token_credential(Arc::new(
                    super::identity::LegacyTokenCredential(token),
                ))
            }
        };
        let location = CloudLocation::Custom {
            account: settings.account.clone(),
            uri: settings
                .table_endpoint
                .as_str()
                .trim_end_matches('/')
                .to_string(),
        };
        // A short, fixed retry: the SDK's default (8 tries over a minute) would hold a form
        // submission for 80 s on a dead endpoint; the portal prefers to answer 503 and let
        // the timer or the partner try again.
        let retry = RetryOptions::fixed(
            FixedRetryOptions::default()
                .max_retries(2u32)
                .delay(Duration::from_millis(150))
                .max_total_elapsed(Duration::from_secs(6)),
        );
        let service = TableServiceClientBuilder::with_location(location, credentials)
            .retry(retry)
            .transport(TransportOptions::new(Arc::new(MinimalMetadata(http))))
            .build();
        let created = TableName::ALL
            .iter()
            .map(|t| (*t, OnceCell::new()))
            .collect();
        Ok(TableStore {
            service,
            prefix: settings.table_prefix.clone(),
            created: Arc::new(created),
        })
    }

    pub fn physical_name(&self, table: TableName) -> String {
        format!("{}{}", self.prefix, table.suffix())
    }

    async fn client(&self, table: TableName) -> Result<TableClient, StoreError> {
        let client = self.service.table_client(self.physical_name(table));
        self.created[&table]
            .get_or_try_init(|| async {
                match client.create().await {
                    Ok(_) => Ok(()),
                    Err(e) => match classify(e) {
                        // TableAlreadyExists: another instance (or an earlier run) made it.
                        StoreError::AlreadyExists => Ok(()),
                        other => Err(other),
                    },
                }
            })
            .await?;
        Ok(client)
    }

    fn invalid(&self, table: TableName, pk: &str, rk: &str, problem: String) -> StoreError {
        StoreError::Invalid {
            table: self.physical_name(table),
            partition_key: pk.to_string(),
            row_key: rk.to_string(),
            problem,
        }
    }

    /// Decodes a row into a domain value, naming the row when it does not fit.
    pub fn decode<T>(
        &self,
        table: TableName,
        row: &Row,
        f: impl FnOnce(&Row) -> Result<T, String>,
    ) -> Result<T, StoreError> {
        f(row).map_err(|p| self.invalid(table, &row.partition_key, &row.row_key, p))
    }

    pub async fn get(
        &self,
        table: TableName,
        pk: &str,
        rk: &str,
    ) -> Result<Option<Row>, StoreError> {
        check_key(pk)?;
        check_key(rk)?;
        let client = self.client(table).await?;
        let entity = client.partition_key_client(pk).entity_client(rk);
        match entity.get::<Map<String, Value>>().await {
            Ok(resp) => Row::from_entity(resp.entity, Some(resp.etag.to_string()))
                .map(Some)
                .map_err(|p| self.invalid(table, pk, rk, p)),
            Err(e) => match classify(e) {
                StoreError::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Inserts a new row; [`StoreError::AlreadyExists`] when the key is taken. This is the
    /// portal's "claim once" primitive (dedupe, leases).
    pub async fn insert(&self, table: TableName, row: &Row) -> Result<String, StoreError> {
        check_key(&row.partition_key)?;
        check_key(&row.row_key)?;
        let client = self.client(table).await?;
        let resp = client
            .insert::<Value, Map<String, Value>>(row.to_entity())
            .map_err(classify)?
            .await
            .map_err(classify)?;
        Ok(resp.etag.to_string())
    }

    /// Replaces a row only if its ETag is still `etag`.
    pub async fn replace(
        &self,
        table: TableName,
        row: &Row,
        etag: &str,
    ) -> Result<String, StoreError> {
        self.update(
            table,
            row,
            IfMatchCondition::Etag(Etag::from(etag.to_string())),
            false,
        )
        .await
    }

    /// Merges properties into a row only if its ETag is still `etag`.
    pub async fn merge(
        &self,
        table: TableName,
        row: &Row,
        etag: &str,
    ) -> Result<String, StoreError> {
        self.update(
            table,
            row,
            IfMatchCondition::Etag(Etag::from(etag.to_string())),
            true,
        )
        .await
    }

    async fn update(
        &self,
        table: TableName,
        row: &Row,
        cond: IfMatchCondition,
        merge: bool,
    ) -> Result<String, StoreError> {
        check_key(&row.partition_key)?;
        check_key(&row.row_key)?;
        let client = self.client(table).await?;
        let entity = client
            .partition_key_client(&row.partition_key)
            .entity_client(&row.row_key);
        let builder = if merge {
            entity.merge(row.to_entity(), cond)
        } else {
            entity.update(row.to_entity(), cond)
        };
        let resp = builder
            .map_err(classify)?
            .await
            .map_err(|e| match classify(e) {
                // Updating a row that is gone is a lost race too.
                StoreError::NotFound => StoreError::Changed,
                other => other,
            })?;
        Ok(resp.etag.to_string())
    }

    /// Writes the row whatever is there (last writer wins): for rows no one races on.
    pub async fn upsert(&self, table: TableName, row: &Row) -> Result<String, StoreError> {
        check_key(&row.partition_key)?;
        check_key(&row.row_key)?;
        let client = self.client(table).await?;
        let entity = client
            .partition_key_client(&row.partition_key)
            .entity_client(&row.row_key);
        let resp = entity
            .insert_or_replace(row.to_entity())
            .map_err(classify)?
            .await
            .map_err(classify)?;
        Ok(resp.etag.to_string())
    }

    /// Writes many rows whatever is there (last writer wins), as entity-group transactions of
    /// at most 100 rows of one partition each (the service's limit): for bulk writes no one
    /// races on, such as seeding.
    pub async fn upsert_batch(&self, table: TableName, rows: &[Row]) -> Result<(), StoreError> {
        for row in rows {
            check_key(&row.partition_key)?;
            check_key(&row.row_key)?;
        }
        let client = self.client(table).await?;
        for (pk, chunk) in transactions(rows.iter().enumerate()) {
            let mut transaction = client.partition_key_client(pk).transaction();
            for &i in &chunk {
                let row = &rows[i];
                transaction = transaction
                    .insert_or_replace(row.row_key.clone(), row.to_entity())
                    .map_err(classify)?;
            }
            let response = transaction.await.map_err(classify)?;
            if let Some(status) = failed_status(
                response
                    .operation_responses
                    .iter()
                    .map(|o| u16::from(o.status_code)),
            ) {
                return Err(StoreError::Rejected(format!(
                    "a batch write failed with {status}"
                )));
            }
        }
        Ok(())
    }

    /// Merges properties into many rows, each only if its ETag is still the one given: the
    /// rows of one partition as entity-group transactions of up to 100 (one round trip each).
    /// A transaction is all or nothing, so when one of its rows changed, none of them was
    /// written and each row of that transaction gets [`StoreError::Changed`]; the caller
    /// retries those one by one to find which. Results are in the order of `rows`.
    pub async fn merge_batch(
        &self,
        table: TableName,
        rows: &[(Row, String)],
    ) -> Vec<Result<(), StoreError>> {
        let mut results: Vec<Result<(), StoreError>> = rows
            .iter()
            .map(|(row, _)| check_key(&row.partition_key).and_then(|()| check_key(&row.row_key)))
            .collect();
        let client = match self.client(table).await {
            Ok(c) => c,
            Err(e) => return rows.iter().map(|_| Err(e.clone())).collect(),
        };
        let groups = transactions(
            rows.iter()
                .enumerate()
                .filter(|(i, _)| results[*i].is_ok())
                .map(|(i, (row, _))| (i, row)),
        );
        let outcomes = futures::future::join_all(
            groups
                .iter()
                .map(|(pk, chunk)| merge_transaction(&client, pk, rows, chunk)),
        )
        .await;
        for ((_, chunk), outcome) in groups.iter().zip(outcomes) {
            for &i in chunk {
                results[i] = outcome.clone();
            }
        }
        results
    }

    /// Writes to rows of one partition as one entity-group transaction: all of them or none.
    /// This is how a state change and the mail it causes are recorded together. Returns the
    /// new ETag of each write (empty for a delete), in order. A transaction that fails because
    /// a row changed or is gone answers [`StoreError::Changed`]; one whose insert found its key
    /// taken answers [`StoreError::AlreadyExists`]; either way nothing was written.
    pub async fn transact(
        &self,
        table: TableName,
        partition_key: &str,
        writes: Vec<Write>,
    ) -> Result<Vec<String>, StoreError> {
        check_key(partition_key)?;
        for w in &writes {
            check_key(w.row_key())?;
            if let Write::Insert(r) | Write::Replace(r, _) | Write::Merge(r, _) = w {
                if r.partition_key != partition_key {
                    return Err(StoreError::Rejected(format!(
                        "a transaction on partition {partition_key:?} cannot write to {:?}",
                        r.partition_key
                    )));
                }
            }
        }
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        if writes.len() > TRANSACTION_LIMIT {
            return Err(StoreError::Rejected(format!(
                "{} writes in one transaction (at most {TRANSACTION_LIMIT})",
                writes.len()
            )));
        }
        let client = self.client(table).await?;
        let mut transaction = client.partition_key_client(partition_key).transaction();
        for w in &writes {
            let cas = |etag: &str| Some(IfMatchCondition::Etag(Etag::from(etag.to_string())));
            transaction = match w {
                Write::Insert(row) => transaction.insert(row.to_entity()),
                Write::Replace(row, etag) => {
                    transaction.update(row.row_key.clone(), row.to_entity(), cas(etag))
                }
                Write::Merge(row, etag) => {
                    transaction.merge(row.row_key.clone(), row.to_entity(), cas(etag))
                }
                Write::Delete { row_key, etag } => transaction.delete(row_key.clone(), cas(etag)),
            }
            .map_err(classify)?;
        }
        let response = transaction.await.map_err(classify)?;
        let statuses = response
            .operation_responses
            .iter()
            .map(|o| u16::from(o.status_code));
        match failed_status(statuses) {
            None => {}
            Some(409) => return Err(StoreError::AlreadyExists),
            Some(404 | 412) => return Err(StoreError::Changed),
            Some(status) => {
                return Err(StoreError::Rejected(format!(
                    "a transaction failed with {status}"
                )))
            }
        }
        if response.operation_responses.len() != writes.len() {
            return Err(StoreError::Unavailable(format!(
                "a transaction of {} writes answered {} results",
                writes.len(),
                response.operation_responses.len()
            )));
        }
        Ok(response
            .operation_responses
            .iter()
            .map(|o| o.etag.as_ref().map(|e| e.to_string()).unwrap_or_default())
            .collect())
    }

    /// Deletes rows as read (each only if unchanged since), as entity-group transactions per
    /// partition: for purges. A transaction that meets a changed or vanished row is skipped
    /// (someone else is at work on those rows). Returns how many rows were deleted.
    pub async fn delete_rows(&self, table: TableName, rows: &[Row]) -> Result<u32, StoreError> {
        let mut deleted = 0;
        for (pk, chunk) in transactions(rows.iter().enumerate()) {
            let writes = chunk
                .iter()
                .map(|&i| Write::Delete {
                    row_key: rows[i].row_key.clone(),
                    etag: rows[i].etag.clone().unwrap_or_else(|| "*".into()),
                })
                .collect();
            match self.transact(table, pk, writes).await {
                Ok(_) => deleted += chunk.len() as u32,
                Err(StoreError::Changed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Deletes a row; with an ETag only if unchanged. A row already gone is not an error.
    pub async fn delete(
        &self,
        table: TableName,
        pk: &str,
        rk: &str,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        check_key(pk)?;
        check_key(rk)?;
        let client = self.client(table).await?;
        let entity = client.partition_key_client(pk).entity_client(rk);
        let mut builder = entity.delete();
        if let Some(etag) = etag {
            builder = builder.if_match(IfMatchCondition::Etag(Etag::from(etag.to_string())));
        }
        match builder.await {
            Ok(_) => Ok(()),
            Err(e) => match classify(e) {
                StoreError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }

    /// All rows matching an OData filter (build it with [`odata_eq`] and friends), following
    /// continuation tokens. For partition scans and the timer's sweeps.
    pub async fn query(
        &self,
        table: TableName,
        filter: Option<String>,
    ) -> Result<Vec<Row>, StoreError> {
        self.query_limited(table, filter, usize::MAX).await
    }

    pub async fn query_limited(
        &self,
        table: TableName,
        filter: Option<String>,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client(table).await?;
        let mut builder = client.query();
        if let Some(filter) = filter {
            builder = builder.filter(filter);
        }
        let mut pages = builder.into_stream::<Map<String, Value>>();
        let mut rows = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for entity in page.entities {
                let pk = entity
                    .get("PartitionKey")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let rk = entity
                    .get("RowKey")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                rows.push(
                    Row::from_entity(entity, None).map_err(|p| self.invalid(table, &pk, &rk, p))?,
                );
                if rows.len() >= limit {
                    return Ok(rows);
                }
            }
        }
        Ok(rows)
    }

    /// Every row of one partition.
    pub async fn partition(&self, table: TableName, pk: &str) -> Result<Vec<Row>, StoreError> {
        self.query(table, Some(odata_eq("PartitionKey", pk))).await
    }

    /// Whether the table service answers at all (for `handler doctor`-style checks and tests).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client(TableName::Policies).await.map(|_| ())
    }

    /// Creates every table the portal uses that does not exist yet; the first that fails is
    /// named with its error.
    pub async fn create_tables(&self) -> Result<(), (String, StoreError)> {
        for table in TableName::ALL {
            self.client(table)
                .await
                .map_err(|e| (self.physical_name(table), e))?;
        }
        Ok(())
    }
}

/// Keys may not contain `/ \ # ?` or control characters (Table Storage rejects them, and
/// the SDK puts keys into the URL); the portal's keys are ids, hashes and domains, so this is
/// a guard against a bug, not a user-facing check.
fn check_key(key: &str) -> Result<(), StoreError> {
    if key.len() > 512
        || key
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '#' | '?' | '\'') || c.is_control())
    {
        return Err(StoreError::Rejected(format!("unusable key {key:?}")));
    }
    Ok(())
}

/// `name eq 'value'` with the value quoted as OData requires (a `'` doubled), so a value from
/// outside can never change the filter's meaning.
/// Table Storage's limit on the operations of one entity-group transaction.
const TRANSACTION_LIMIT: usize = 100;

/// Rows (by their index) grouped into entity-group transactions: one partition each, at most
/// [`TRANSACTION_LIMIT`] rows.
fn transactions<'a>(rows: impl Iterator<Item = (usize, &'a Row)>) -> Vec<(&'a str, Vec<usize>)> {
    let mut by_partition: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, row) in rows {
        by_partition
            .entry(row.partition_key.as_str())
            .or_default()
            .push(i);
    }
    by_partition
        .into_iter()
        .flat_map(|(pk, indexes)| {
            indexes
                .chunks(TRANSACTION_LIMIT)
                .map(|chunk| (pk, chunk.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The status of the operation that failed a transaction, if one did: a refused transaction
/// answers with that one operation.
fn failed_status(mut statuses: impl Iterator<Item = u16>) -> Option<u16> {
    statuses.find(|s| !(200..300).contains(s))
}

/// One entity-group transaction of compare-and-swap merges (see [`TableStore::merge_batch`]).
async fn merge_transaction(
    client: &TableClient,
    pk: &str,
    rows: &[(Row, String)],
    chunk: &[usize],
) -> Result<(), StoreError> {
    let mut transaction = client.partition_key_client(pk).transaction();
    for &i in chunk {
        let (row, etag) = &rows[i];
        transaction = transaction
            .merge(
                row.row_key.clone(),
                row.to_entity(),
                Some(IfMatchCondition::Etag(Etag::from(etag.clone()))),
            )
            .map_err(classify)?;
    }
    let response = transaction.await.map_err(classify)?;
    match failed_status(
        response
            .operation_responses
            .iter()
            .map(|o| u16::from(o.status_code)),
    ) {
        None => Ok(()),
        Some(404 | 409 | 412) => Err(StoreError::Changed),
        Some(status) => Err(StoreError::Rejected(format!(
            "a transaction of merges failed with {status}"
        ))),
    }
}

pub fn odata_eq(name: &str, value: &str) -> String {
    format!("{name} eq '{}'", value.replace('\'', "''"))
}

pub fn odata_cmp(name: &str, op: &str, value: &str) -> String {
    debug_assert!(matches!(op, "eq" | "ne" | "lt" | "le" | "gt" | "ge"));
    format!("{name} {op} '{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_cannot_escape_their_quotes() {
        assert_eq!(
            odata_eq("Domain", "x' or 'a' eq 'a"),
            "Domain eq 'x'' or ''a'' eq ''a'"
        );
    }

    #[test]
    fn rows_drop_service_annotations() {
        let mut entity = Map::new();
        entity.insert("PartitionKey".into(), "p".into());
        entity.insert("RowKey".into(), "r".into());
        entity.insert("odata.etag".into(), "W/\"1\"".into());
        entity.insert("Timestamp".into(), "2026-01-01T00:00:00Z".into());
        entity.insert("Timestamp@odata.type".into(), "Edm.DateTime".into());
        entity.insert("Status".into(), "invited".into());
        let row = Row::from_entity(entity, None).unwrap();
        assert_eq!(row.etag.as_deref(), Some("W/\"1\""));
        assert_eq!(row.props.len(), 1);
        assert_eq!(row.str("Status").unwrap(), "invited");
    }

    #[test]
    fn typed_reads_name_the_property() {
        let mut row = Row::new("p", "r");
        row.set("Attempts", "many");
        assert_eq!(
            row.u32("Attempts").unwrap_err(),
            "property Attempts should be a whole number, found \"many\""
        );
        row.set("When", "yesterday");
        assert!(row.time("When").unwrap_err().contains("When"));
        assert_eq!(row.u32("Missing").unwrap(), 0);
    }

    #[test]
    fn keys_with_url_characters_are_refused() {
        assert!(check_key("a/b").is_err());
        assert!(check_key("contoso.com").is_ok());
    }
}
