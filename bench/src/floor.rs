//! The sign-up floor: the Table Storage round trips one sign-up cannot do without, sent
//! straight to Azurite with a bare HTTP client (no SDK, no pipeline, no retries), so the floor
//! is as cheap as those round trips can be made from Rust; and the same for the timer's sweep
//! of pending mail.
//!
//! A sign-up of the portal's design is two parts, and so is the floor ([`Floor::answer`],
//! [`Floor::after_answer`]). Before the answer, the same for every valid submission:
//! - three rate-limit counters (client IP, address, domain), each one read and one
//!   conditional write (insert when the hour's row is absent, replace with `If-Match`
//!   otherwise). The IP and address counters are one row each (a point read); the domain
//!   counter is spread over 32 shard rows read together in one partition range query (the
//!   design's answer to a hot row), then one shard is written. Table Storage has no atomic
//!   increment: a limit that holds across scaled-out instances needs the read (to compare
//!   with the limit) and the compare-and-swap write;
//! - the submission recorded as typed (one insert): the answer promises it is not lost, and
//!   the timer's sweep finishes it if the instance dies.
//!
//! Seven round trips, and none says whether the address is admitted. After the answer, for an
//! admitted address with no open request, issued without being waited for as the portal
//! does:
//! - the claim insert that keeps one open request per address (its own partition, so no
//!   entity-group transaction can merge it with the request);
//! - one entity-group transaction: the request, now waiting for its proof, and its
//!   verification mail's outbox row (the mail is recorded with the change that causes it);
//! - the audit insert (another table);
//! - the mail itself (the mail floor, [`MailFloor`]), then the merge that records it
//!   delivered (without it the sweep would send it again).
//!
//! Four more. Policies are cached (one query per `PORTAL_POLICY_CACHE_SECONDS`), so they cost
//! nothing per sign-up in steady state. The rows are built with the portal's own row
//! builders (the request, the sealed mail row), so both sides write the same entities.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use time::OffsetDateTime;

use b2b_signup::adapters::tables::format_time;
use b2b_signup::core::email::EmailAddress;
use b2b_signup::core::outbox::{sending_lease, Attempt, Delivery, Letter, LinkRecipe, MailKind};
use b2b_signup::core::policy::Language;
use b2b_signup::core::request::{Applicant, SignupRequest};
use b2b_signup::core::token::{new_nonce, SigningKeys, TokenClaims, TokenPurpose};
use b2b_signup::settings::{Environment, MailSettings, PortalSettings};
use b2b_signup::store::{key_hash, requests, Row, TableName};

use crate::mailfloor::MailFloor;

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

pub enum Outcome {
    /// Written; the row's new ETag.
    Done(String),
    /// 409 on insert or 412 on replace: someone else wrote first.
    Conflict,
}

/// One write of an entity-group transaction.
pub enum TxWrite {
    Insert(Row),
    Replace(Row, String),
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
                let etag = etag_of(&resp);
                let body: Map<String, Value> = resp.json().await.map_err(|e| e.to_string())?;
                Ok(Some((body, etag)))
            }
            404 => Ok(None),
            s => Err(format!("get {table}: {s}")),
        }
    }

    pub async fn insert(&self, table: &str, row: &Row) -> Result<Outcome, String> {
        let resp = self
            .request(reqwest::Method::POST, table, NO_METADATA)
            .header("Content-Type", "application/json")
            .header("Prefer", "return-no-content")
            .body(entity(row).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            201 | 204 => Ok(Outcome::Done(etag_of(&resp))),
            409 => Ok(Outcome::Conflict),
            s => Err(format!(
                "insert {table}: {s} {}",
                resp.text().await.unwrap_or_default()
            )),
        }
    }

    pub async fn replace(&self, table: &str, row: &Row, etag: &str) -> Result<Outcome, String> {
        self.update(reqwest::Method::PUT, table, row, etag).await
    }

    /// Merges `row`'s properties into the stored row, if its ETag is still `etag`.
    pub async fn merge(&self, table: &str, row: &Row, etag: &str) -> Result<Outcome, String> {
        let merge = reqwest::Method::from_bytes(b"MERGE").expect("MERGE is a method name");
        self.update(merge, table, row, etag).await
    }

    async fn update(
        &self,
        method: reqwest::Method,
        table: &str,
        row: &Row,
        etag: &str,
    ) -> Result<Outcome, String> {
        let resp = self
            .request(
                method.clone(),
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
            204 => Ok(Outcome::Done(etag_of(&resp))),
            412 | 404 => Ok(Outcome::Conflict),
            s => Err(format!(
                "{method} {table}: {s} {}",
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

    /// An entity-group transaction on one partition of `table`, in the wire format the
    /// portal's SDK sends (`$batch`, one changeset). The new ETag of each write, in order, or
    /// `Conflict` if any write was refused (then nothing was written).
    pub async fn transact(
        &self,
        table: &str,
        writes: &[TxWrite],
    ) -> Result<Option<Vec<String>>, String> {
        let batch = uuid::Uuid::new_v4().hyphenated().to_string();
        let changeset = uuid::Uuid::new_v4().hyphenated().to_string();
        let mut body = format!(
            "--batch_{batch}\nContent-Type: multipart/mixed; boundary=changeset_{changeset}\n\n"
        );
        for w in writes {
            body.push_str(&format!(
                "--changeset_{changeset}\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
            ));
            let (line, row, etag) = match w {
                TxWrite::Insert(row) => (format!("POST {}/{table} HTTP/1.1", self.base), row, None),
                TxWrite::Replace(row, etag) => (
                    format!(
                        "PUT {}/{} HTTP/1.1",
                        self.base,
                        Self::entity_path(table, &row.partition_key, &row.row_key)
                    ),
                    row,
                    Some(etag),
                ),
            };
            body.push_str(&line);
            body.push_str(
                "\nAccept: application/json;odata=nometadata\nContent-Type: application/json\n",
            );
            if let Some(etag) = etag {
                body.push_str(&format!("If-Match: {etag}\n"));
            }
            body.push('\n');
            body.push_str(&entity(row).to_string());
            body.push('\n');
        }
        body.push_str(&format!("--changeset_{changeset}--\n--batch_{batch}\n"));
        let resp = self
            .request(reqwest::Method::POST, "$batch", NO_METADATA)
            .header(
                "Content-Type",
                format!("multipart/mixed; boundary=batch_{batch}"),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if status != 202 {
            return Err(format!("$batch {table}: {status} {text}"));
        }
        // Each operation's answer: its status line, then its headers (the ETag among them).
        let mut results: Vec<(u16, String)> = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
                let code = rest.split_whitespace().next().and_then(|c| c.parse().ok());
                results.push((code.unwrap_or(0), String::new()));
            } else if let (Some(etag), Some(last)) = (
                line.strip_prefix("ETag:")
                    .or_else(|| line.strip_prefix("etag:")),
                results.last_mut(),
            ) {
                last.1 = etag.trim().to_string();
            }
        }
        if results
            .iter()
            .any(|(code, _)| matches!(code, 404 | 409 | 412))
        {
            return Ok(None);
        }
        if results.len() != writes.len()
            || results.iter().any(|(code, _)| !(200..300).contains(code))
        {
            return Err(format!("$batch {table}: unexpected answer {text}"));
        }
        Ok(Some(results.into_iter().map(|(_, etag)| etag).collect()))
    }

    /// Every entity matching an OData filter, following continuations, each with its
    /// `odata.etag`: the query the sweep makes. Also how many pages (round trips) it took.
    pub async fn query_all(
        &self,
        table: &str,
        filter: &str,
    ) -> Result<(Vec<Map<String, Value>>, u64), String> {
        let mut all = Vec::new();
        let pages = self
            .pages(table, filter, "", MINIMAL, |page| all.extend(page))
            .await?;
        Ok((all, pages))
    }

    /// Counts the rows of a table matching an OData filter (follows continuations).
    pub async fn count(&self, table: &str, filter: &str) -> Result<usize, String> {
        let mut n = 0;
        self.pages(
            table,
            filter,
            "&$select=PartitionKey",
            NO_METADATA,
            |page| n += page.len(),
        )
        .await?;
        Ok(n)
    }

    /// Hands each page of a query's entities to `each`, following continuations; returns how
    /// many pages there were.
    async fn pages(
        &self,
        table: &str,
        filter: &str,
        select: &str,
        accept: &str,
        mut each: impl FnMut(Vec<Map<String, Value>>),
    ) -> Result<u64, String> {
        let mut pages = 0;
        let mut next: Option<(String, String)> = None;
        loop {
            let mut resource = format!(
                "{table}()?$filter={}{select}",
                url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
            );
            if let Some((pk, rk)) = &next {
                resource.push_str(&format!("&NextPartitionKey={pk}&NextRowKey={rk}"));
            }
            pages += 1;
            let resp = self
                .request(reqwest::Method::GET, &resource, accept)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("query {table}: {}", resp.status()));
            }
            next = continuation(&resp);
            let mut body: Value = resp.json().await.map_err(|e| e.to_string())?;
            if let Value::Array(v) = body["value"].take() {
                each(
                    v.into_iter()
                        .filter_map(|e| match e {
                            Value::Object(m) => Some(m),
                            _ => None,
                        })
                        .collect(),
                );
            }
            if next.is_none() {
                return Ok(pages);
            }
        }
    }
}

fn etag_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Where the next page of a query starts, if there is one.
fn continuation(resp: &reqwest::Response) -> Option<(String, String)> {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match (
        header("x-ms-continuation-NextPartitionKey"),
        header("x-ms-continuation-NextRowKey"),
    ) {
        (Some(pk), Some(rk)) => Some((pk, rk)),
        _ => None,
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

/// The verification mail as the portal records it: rendered once by the portal's own view
/// with its settings; each sign-up's row gets its own id, recipient and link recipe, and is
/// sealed with the portal's key as the portal seals it.
pub struct MailRecord {
    template: Letter,
    keys: SigningKeys,
    hours: u32,
    /// How long a sender owns a mail it sends: the portal's, from its SMTP timeout.
    lease: time::Duration,
}

impl MailRecord {
    pub fn new(env: &[(String, String)]) -> Result<MailRecord, String> {
        let env = Environment::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let settings = PortalSettings::from_env(&env).map_err(|e| e.to_string())?;
        let mail_settings = MailSettings::from_env(&env).map_err(|e| e.to_string())?;
        let brand = b2b_signup::views::Brand {
            branding: &settings.branding,
            has_logo: false,
        };
        let recipe = LinkRecipe::new(
            &TokenClaims {
                purpose: TokenPurpose::Verify,
                request_id: "template".into(),
                subject: "template".into(),
                stage: 0,
                expires_at: 0,
                nonce: new_nonce(),
            },
            true,
        );
        let mail = b2b_signup::views::verification_mail(
            &brand,
            Language::En,
            "Ada",
            &recipe.placeholder,
            settings.verification_hours,
        );
        let template = Letter::new(
            MailKind::Verification,
            "template@bench.example",
            mail.subject,
            mail.text,
            mail.html,
        )
        .with_link(recipe);
        Ok(MailRecord {
            template,
            keys: settings.signing_keys.clone(),
            hours: settings.verification_hours,
            lease: sending_lease(mail_settings.timeout),
        })
    }

    /// The letter for request `id` to `email`, as `functions::signup` builds it.
    fn letter(&self, id: &str, email: &EmailAddress, now: OffsetDateTime) -> Letter {
        let mut letter = self.template.clone().with_id(id);
        letter.to = email.as_str().to_string();
        if let Some(recipe) = &mut letter.link {
            recipe.request_id = id.to_string();
            recipe.subject = email.identity_key();
            recipe.expires_at = (now + time::Duration::hours(self.hours as i64)).unix_timestamp();
            recipe.nonce = requests::submission_nonce(id);
        }
        letter
    }
}

/// The mail row's delivery properties as `store::outbox` writes them.
pub fn delivery_row(pk: &str, rk: &str, d: &Delivery) -> Row {
    let mut row = Row::new(pk, rk);
    row.set("State", d.state.as_str())
        .set("Attempts", d.attempts)
        .set("CreatedAt", format_time(d.created_at))
        .set("DueAt", format_time(d.due_at))
        .set("LeaseUntil", format_time(d.lease_until))
        .set_opt("DeliveredAt", d.delivered_at.map(format_time))
        .set("LastError", d.last_error.clone().unwrap_or_default());
    row
}

/// A submission recorded by the floor's answer, for the work after it.
pub struct Submitted {
    request: SignupRequest,
    etag: String,
    now: OffsetDateTime,
}

/// One side of the floor: its tables, the mail it records and the mail floor it sends with.
#[derive(Clone)]
pub struct Floor {
    pub raw: RawTables,
    pub tables: FloorTables,
    pub record: std::sync::Arc<MailRecord>,
    pub mail: MailFloor,
}

impl Floor {
    /// Everything up to the answer: the three counters and the submission (7 round trips).
    pub async fn answer(&self, input: &SignupInput) -> Result<(Submitted, Trips), String> {
        let (raw, tables) = (&self.raw, &self.tables);
        let now = OffsetDateTime::now_utc();
        let email = EmailAddress::parse(&input.email).map_err(|e| format!("{e:?}"))?;
        let mut trips = Trips::default();
        let window = now.unix_timestamp().div_euclid(3600);
        for (kind, key, shards) in [
            ("ip", input.client_ip.clone(), 1),
            ("addr", email.mailbox_key(), 1),
            ("dom", email.domain().as_str().to_string(), 32),
        ] {
            let pk = format!("{kind}-{}", key_hash(&key));
            counter_hit(raw, &tables.limits, &pk, window, shards, &mut trips).await?;
        }
        let request = SignupRequest::submitted(
            requests::new_id(),
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
        let etag = match raw
            .insert(&tables.requests, &requests::to_row(&request))
            .await?
        {
            Outcome::Done(etag) => etag,
            Outcome::Conflict => return Err("the request id was taken".into()),
        };
        Ok((Submitted { request, etag, now }, trips))
    }

    /// What follows the answer for an admitted address with no open request: the claim, the
    /// request with its mail in one transaction, the audit entry, the mail and its delivery
    /// (4 round trips and one SMTP transaction).
    pub async fn after_answer(&self, submitted: Submitted) -> Result<Trips, String> {
        let (raw, tables) = (&self.raw, &self.tables);
        let Submitted {
            mut request,
            etag,
            now,
        } = submitted;
        let mut trips = Trips::default();
        let id = request.id.clone();
        let email = request.applicant.email.clone();

        let mut claim = Row::new(format!("open-{}", key_hash(&email.identity_key())), "open");
        claim.set("RequestId", id.clone());
        trips.round_trips += 1;
        if let Outcome::Conflict = raw.insert(&tables.requests, &claim).await? {
            return Err("the address was already claimed (inputs must be unique)".into());
        }

        request
            .await_verification(now)
            .map_err(|e| format!("{e:?}"))?;
        let letter = self.record.letter(&id, &email, now);
        let mut delivery = Delivery::new(now, OffsetDateTime::now_utc(), self.record.lease);
        let mail_row = match b2b_signup::store::outbox::insert(
            TableName::Requests,
            &id,
            &letter,
            &delivery,
            &self.record.keys,
        ) {
            b2b_signup::adapters::tables::Write::Insert(row) => row,
            _ => return Err("the outbox records a mail by an insert".into()),
        };
        let mail_key = mail_row.row_key.clone();
        trips.round_trips += 1;
        let etags = raw
            .transact(
                &tables.requests,
                &[
                    TxWrite::Replace(requests::to_row(&request), etag),
                    TxWrite::Insert(mail_row),
                ],
            )
            .await?
            .ok_or("the request changed under the floor")?;

        // The audit row as `store::audit::record` writes it.
        let ts = now.unix_timestamp_nanos();
        let suffix: u32 = rand_u32();
        let mut audit = Row::new(
            format!("{}-{:x}", &format_time(now)[..10], suffix & 0xf),
            format!("{ts:020}-{suffix:08x}"),
        );
        audit
            .set("At", format_time(now))
            .set("Actor", "requester")
            .set("Action", "request.submitted")
            .set("RequestId", id.clone())
            .set("Detail", email.masked());
        trips.round_trips += 1;
        raw.insert(&tables.audit, &audit).await?;

        self.mail.send(email.as_str()).await?;
        delivery.record(Attempt::Accepted, now);
        trips.round_trips += 1;
        match raw
            .merge(
                &tables.requests,
                &delivery_row(&id, &mail_key, &delivery),
                &etags[1],
            )
            .await?
        {
            Outcome::Done(_) => Ok(trips),
            Outcome::Conflict => Err("the mail row changed under the floor".into()),
        }
    }
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
            Outcome::Done(_) => return Ok(()),
            Outcome::Conflict => trips.conflicts += 1,
        }
    }
    Err("a counter stayed contended for 16 tries".into())
}

fn count_of(entity: &Map<String, Value>) -> u64 {
    entity.get("Count").and_then(Value::as_u64).unwrap_or(0)
}

pub fn rand_u32() -> u32 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
