//! The sign-up floor: the Table Storage round trips one sign-up cannot do without, sent
//! straight to Azurite with a bare HTTP client (no SDK, no pipeline, no retries), so the floor
//! is as cheap as those round trips can be made from Rust.
//!
//! Which round trips, and why they are the minimum the design allows:
//! - three rate-limit counters (client IP, address, domain), each one read and one
//!   conditional write (insert when the hour's row is absent, replace with `If-Match`
//!   otherwise). The IP and address counters are one row each (a point read); the domain
//!   counter is spread over 32 shard rows read together in one partition range query (the
//!   design's answer to a hot row), then one shard is written. Table Storage has no atomic
//!   increment: a limit that holds across scaled-out instances needs the read (to compare
//!   with the limit) and the compare-and-swap write;
//! - the claim insert that keeps one open request per address (a different partition from
//!   the request, so no entity-group transaction can merge the two);
//! - the request insert;
//! - the audit insert (another table).
//!
//! Policies are cached (one query per `PORTAL_POLICY_CACHE_SECONDS`), so they cost nothing
//! per sign-up in steady state. Nine round trips in all. The rows are built with the portal's
//! own row builders, so both sides write the same entities.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use time::OffsetDateTime;

use b2b_signup::core::email::EmailAddress;
use b2b_signup::core::policy::Language;
use b2b_signup::core::request::{Applicant, SignupRequest};
use b2b_signup::store::{key_hash, Row};

const ACCOUNT: &str = "devstoreaccount1";
const NO_METADATA: &str = "application/json;odata=nometadata";
const MINIMAL: &str = "application/json;odata=minimalmetadata";

/// One sign-up's input, identical for the portal and the floor.
#[derive(Clone, Debug)]
pub struct SignupInput {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub organisation: String,
    pub client_ip: String,
}

/// A minimal Table Storage client: shared-key-lite signing, JSON without metadata.
#[derive(Clone)]
pub struct RawTables {
    http: reqwest::Client,
    base: String,
    key: Vec<u8>,
}

pub enum Write {
    Done,
    /// 409 on insert or 412 on replace: someone else wrote first.
    Conflict,
}

impl RawTables {
    pub fn new(http: reqwest::Client, table_port: u16) -> RawTables {
        RawTables {
            http,
            base: format!("http://127.0.0.1:{table_port}/{ACCOUNT}"),
            key: base64::engine::general_purpose::STANDARD
                .decode(b2b_signup::settings::DEV_ACCOUNT_KEY)
                .expect("the development key is base64"),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        resource: &str,
        accept: &str,
    ) -> reqwest::RequestBuilder {
        let date = http_date(OffsetDateTime::now_utc());
        // Path-style URL: the canonical resource names the account, then the URL's path.
        let canonical = format!(
            "/{ACCOUNT}/{ACCOUNT}/{}",
            resource.split('?').next().unwrap_or("")
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(format!("{date}\n{canonical}").as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        self.http
            .request(method, format!("{}/{resource}", self.base))
            .header("x-ms-date", date)
            .header("x-ms-version", "2019-02-02")
            .header("DataServiceVersion", "3.0;NetFx")
            .header("Accept", accept)
            .header(
                "Authorization",
                format!("SharedKeyLite {ACCOUNT}:{signature}"),
            )
    }

    pub async fn create_table(&self, name: &str) -> Result<(), String> {
        let resp = self
            .request(reqwest::Method::POST, "Tables", NO_METADATA)
            .header("Content-Type", "application/json")
            .header("Prefer", "return-no-content")
            .body(serde_json::json!({ "TableName": name }).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            201 | 204 | 409 => Ok(()),
            s => Err(format!(
                "create table {name}: {s} {}",
                resp.text().await.unwrap_or_default()
            )),
        }
    }

    fn entity_path(table: &str, pk: &str, rk: &str) -> String {
        format!("{table}(PartitionKey='{pk}',RowKey='{rk}')")
    }

    /// A point read: the entity's properties and its ETag.
    pub async fn get(
        &self,
        table: &str,
        pk: &str,
        rk: &str,
    ) -> Result<Option<(Map<String, Value>, String)>, String> {
        let resp = self
            .request(
                reqwest::Method::GET,
                &Self::entity_path(table, pk, rk),
                NO_METADATA,
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            200 => {
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body: Map<String, Value> = resp.json().await.map_err(|e| e.to_string())?;
                Ok(Some((body, etag)))
            }
            404 => Ok(None),
            s => Err(format!("get {table}: {s}")),
        }
    }

    pub async fn insert(&self, table: &str, row: &Row) -> Result<Write, String> {
        let resp = self
            .request(reqwest::Method::POST, table, NO_METADATA)
            .header("Content-Type", "application/json")
            .header("Prefer", "return-no-content")
            .body(entity(row).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            201 | 204 => Ok(Write::Done),
            409 => Ok(Write::Conflict),
            s => Err(format!(
                "insert {table}: {s} {}",
                resp.text().await.unwrap_or_default()
            )),
        }
    }

    pub async fn replace(&self, table: &str, row: &Row, etag: &str) -> Result<Write, String> {
        let resp = self
            .request(
                reqwest::Method::PUT,
                &Self::entity_path(table, &row.partition_key, &row.row_key),
                NO_METADATA,
            )
            .header("Content-Type", "application/json")
            .header("If-Match", etag)
            .body(entity(row).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            204 => Ok(Write::Done),
            412 | 404 => Ok(Write::Conflict),
            s => Err(format!(
                "replace {table}: {s} {}",
                resp.text().await.unwrap_or_default()
            )),
        }
    }

    /// The entities matching an OData filter (one page: enough for a counter's shards), each
    /// with its `odata.etag`.
    pub async fn query(
        &self,
        table: &str,
        filter: &str,
    ) -> Result<Vec<Map<String, Value>>, String> {
        let resource = format!(
            "{table}()?$filter={}",
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let resp = self
            .request(reqwest::Method::GET, &resource, MINIMAL)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("query {table}: {}", resp.status()));
        }
        let mut body: Value = resp.json().await.map_err(|e| e.to_string())?;
        Ok(match body["value"].take() {
            Value::Array(v) => v
                .into_iter()
                .filter_map(|e| match e {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Counts the rows of a table matching an OData filter (follows continuations).
    pub async fn count(&self, table: &str, filter: &str) -> Result<usize, String> {
        let mut n = 0;
        let mut next: Option<(String, String)> = None;
        loop {
            let mut query = format!(
                "{table}()?$filter={}&$select=PartitionKey",
                url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
            );
            if let Some((pk, rk)) = &next {
                query.push_str(&format!("&NextPartitionKey={pk}&NextRowKey={rk}"));
            }
            let resp = self
                .request(reqwest::Method::GET, &query, NO_METADATA)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("query {table}: {}", resp.status()));
            }
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            next = match (
                header("x-ms-continuation-NextPartitionKey"),
                header("x-ms-continuation-NextRowKey"),
            ) {
                (Some(pk), Some(rk)) => Some((pk, rk)),
                _ => None,
            };
            let body: Value = resp.json().await.map_err(|e| e.to_string())?;
            n += body["value"].as_array().map_or(0, Vec::len);
            if next.is_none() {
                return Ok(n);
            }
        }
    }
}

fn entity(row: &Row) -> Value {
    let mut body = row.props.clone();
    body.insert("PartitionKey".into(), row.partition_key.clone().into());
    body.insert("RowKey".into(), row.row_key.clone().into());
    Value::Object(body)
}

fn http_date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap_or_default()
}

/// The physical table names of one prefix, as the portal names them.
#[derive(Clone)]
pub struct FloorTables {
    pub limits: String,
    pub requests: String,
    pub audit: String,
}

impl FloorTables {
    pub async fn create(raw: &RawTables, prefix: &str) -> Result<FloorTables, String> {
        let t = FloorTables {
            limits: format!("{prefix}Limits"),
            requests: format!("{prefix}Requests"),
            audit: format!("{prefix}Audit"),
        };
        for name in [&t.limits, &t.requests, &t.audit] {
            raw.create_table(name).await?;
        }
        Ok(t)
    }
}

/// What one floor sign-up did, for the round-trip count.
#[derive(Default, Clone, Copy)]
pub struct Trips {
    pub round_trips: u64,
    pub conflicts: u64,
}

/// One sign-up's storage work, the minimum: see the module docs.
pub async fn sign_up(
    raw: &RawTables,
    tables: &FloorTables,
    input: &SignupInput,
) -> Result<Trips, String> {
    let now = OffsetDateTime::now_utc();
    let email = EmailAddress::parse(&input.email).map_err(|e| format!("{e:?}"))?;
    let mut trips = Trips::default();
    let window = now.unix_timestamp().div_euclid(3600);
    for (kind, key, shards) in [
        ("ip", input.client_ip.clone(), 1),
        ("addr", email.identity_key(), 1),
        ("dom", email.domain().as_str().to_string(), 32),
    ] {
        let pk = format!("{kind}-{}", key_hash(&key));
        counter_hit(raw, &tables.limits, &pk, window, shards, &mut trips).await?;
    }

    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut claim = Row::new(format!("open-{}", key_hash(&email.identity_key())), "open");
    claim.set("RequestId", id.clone());
    trips.round_trips += 1;
    if let Write::Conflict = raw.insert(&tables.requests, &claim).await? {
        return Err("the address was already claimed (inputs must be unique)".into());
    }

    let masked = email.masked();
    let request = SignupRequest::new(
        id.clone(),
        Applicant {
            email,
            first_name: input.first_name.clone(),
            last_name: input.last_name.clone(),
            organisation: input.organisation.clone(),
            justification: None,
            language: Language::En,
        },
        now,
    );
    trips.round_trips += 1;
    raw.insert(
        &tables.requests,
        &b2b_signup::store::requests::to_row(&request),
    )
    .await?;

    // The audit row as `store::audit::record` writes it.
    let ts = now.unix_timestamp_nanos();
    let suffix: u32 = rand_u32();
    let mut audit = Row::new(
        format!(
            "{}-{:x}",
            &b2b_signup::adapters::tables::format_time(now)[..10],
            suffix & 0xf
        ),
        format!("{ts:020}-{suffix:08x}"),
    );
    audit
        .set("At", b2b_signup::adapters::tables::format_time(now))
        .set("Actor", "requester")
        .set("Action", "request.submitted")
        .set("RequestId", id)
        .set("Detail", masked);
    trips.round_trips += 1;
    raw.insert(&tables.audit, &audit).await?;
    Ok(trips)
}

/// A rate-limit hit as `store::limits::hit` does it: read the window's rows, then insert or
/// compare-and-swap one of them; on a lost race, the same jittered retry.
async fn counter_hit(
    raw: &RawTables,
    table: &str,
    pk: &str,
    window: i64,
    shards: u32,
    trips: &mut Trips,
) -> Result<(), String> {
    for attempt in 0..16u32 {
        if attempt > 0 {
            let ms = 1 + rand_u32() as u64 % (5 * attempt as u64).min(50);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        trips.round_trips += 1;
        let rows: Vec<(String, u64, String)> = if shards == 1 {
            raw.get(table, pk, &format!("{window}-0"))
                .await?
                .map(|(props, etag)| (format!("{window}-0"), count_of(&props), etag))
                .into_iter()
                .collect()
        } else {
            let filter = format!(
                "PartitionKey eq '{pk}' and RowKey ge '{window}-' and RowKey lt '{window}.'"
            );
            raw.query(table, &filter)
                .await?
                .into_iter()
                .map(|e| {
                    let rk = e
                        .get("RowKey")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let etag = e
                        .get("odata.etag")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    (rk, count_of(&e), etag)
                })
                .collect()
        };
        let rk = format!("{window}-{}", rand_u32() % shards);
        let mut row = Row::new(pk, &rk);
        trips.round_trips += 1;
        let written = match rows.iter().find(|(k, _, _)| *k == rk) {
            None => {
                row.set("Count", 1u32);
                raw.insert(table, &row).await?
            }
            Some((_, count, etag)) => {
                row.set("Count", count + 1);
                raw.replace(table, &row, etag).await?
            }
        };
        match written {
            Write::Done => return Ok(()),
            Write::Conflict => trips.conflicts += 1,
        }
    }
    Err("a counter stayed contended for 16 tries".into())
}

fn count_of(entity: &Map<String, Value>) -> u64 {
    entity.get("Count").and_then(Value::as_u64).unwrap_or(0)
}

fn rand_u32() -> u32 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
