//! The timer's sweep with a backlog: N pending mails, as an SMTP outage leaves them, sent by
//! one tick of a handler whose SMTP server works again.
//!
//! The backlog is made as an outage makes it: sign-ups (admitted, each its own address) to a
//! handler whose `SMTP_URL` names a port nobody listens on, so every first attempt fails and
//! each verification mail is left pending with its backoff. A first tick before the sign-ups
//! has done the hourly directory pass, so the timed tick does what most ticks do: the mail,
//! then the requests. The tick is posted as the host posts it, with the host's time two
//! minutes on (every mail due). Three backlogs: one for the tick timed against Azurite
//! directly, one for the same tick counted through the proxy, and one for the floor.
//!
//! The floor: the sweep's own round trips straight to Azurite (the query for due mail, then
//! per mail the compare-and-swap that takes it, the mail floor's SMTP transaction and the
//! merge that records it delivered), 8 mails at a time as the portal sends them; and the mail
//! floor alone, the same mails without the storage.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use b2b_signup::adapters::tables::format_time;
use b2b_signup::core::outbox::{sending_lease, Attempt, Delivery};
use b2b_signup::store::Row;

use crate::floor::{delivery_row, Outcome, RawTables};
use crate::load;
use crate::mailfloor::MailFloor;
use crate::platform::{self, free_port, set_env, Stack};
use crate::proxy::{CountingProxy, Tally};
use crate::signup;

/// How many mails the portal's sweep sends at once (`functions::outbox`).
pub const SWEEP_CONCURRENCY: usize = 8;

pub struct Sweep {
    pub mails: usize,
    /// Making one backlog: the sign-ups and their failed first attempts.
    pub seeding: Duration,
    /// The timed tick: from posting it to its answer (which waits for its mail).
    pub tick: Duration,
    /// Mails the SMTP server accepted during the timed tick.
    pub delivered: usize,
    /// The tick's summary line (from the `Logs` of its answer).
    pub summary: String,
    /// The counted tick's Table Storage calls.
    pub trips: Tally,
    pub counted_delivered: usize,
    /// Rows still pending after the timed tick (there must be none).
    pub left_pending: usize,
    /// The floor: the sweep's round trips and the mail, straight.
    pub floor: Duration,
    pub floor_trips: u64,
    /// The mail floor alone: the same number of mails, 8 at a time.
    pub mail_floor: Duration,
}

impl Sweep {
    pub fn trips_total(&self) -> u64 {
        crate::proxy::calls_in(&self.trips)
    }
}

const MAIL_ROWS: &str = "RowKey ge 'mail-' and RowKey lt 'mail.'";

fn pending_filter() -> String {
    format!("{MAIL_ROWS} and State eq 'pending'")
}

/// The timer's invocation as the host posts it (chunked JSON), with the host's time `at`.
pub async fn tick(
    http: &reqwest::Client,
    base: &str,
    at: OffsetDateTime,
) -> Result<Vec<String>, String> {
    let body = serde_json::json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "function-cleanup", "UtcNow": format_time(at), "RandGuid": uuid::Uuid::new_v4().to_string()}}
    })
    .to_string();
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(body.into_bytes())]);
    let resp = http
        .post(format!("{base}/function-cleanup"))
        .header("Content-Type", "application/json")
        .header(
            "X-Azure-Functions-InvocationId",
            uuid::Uuid::new_v4().to_string(),
        )
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
    let logs: Vec<String> = answer["Logs"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if status != 200 {
        return Err(format!("the timer answered {status}: {}", logs.join("; ")));
    }
    Ok(logs)
}

/// A backlog of `n` pending mails in tables `prefix`; returns how long it took.
async fn seed(stack: &Stack, handler: &Path, prefix: &str, n: usize) -> Result<Duration, String> {
    let mut env = stack.handler_env(stack.table_port, prefix);
    // Nobody listens there: every first attempt fails and leaves its mail pending.
    set_env(
        &mut env,
        "SMTP_URL",
        format!("smtp://127.0.0.1:{}", free_port()),
    );
    signup::add_signup_policy(stack, handler, &env)?;
    let log = stack.work.join(format!("handler-{prefix}-seed.log"));
    let (server, _) = platform::start_server(handler, &env, Some(&log))?;
    let http = signup::host_client();
    let base = server.url("");
    // The hourly directory pass, done now so the timed tick is an ordinary one.
    tick(&http, &base, OffsetDateTime::now_utc()).await?;
    let started = Instant::now();
    let run = prefix.to_string();
    let r = load::run(8, 0, n, Duration::from_secs(600), move |i| {
        let (http, base) = (http.clone(), base.clone());
        let input = signup::input(&run, i, signup::SIGNUP_POLICY_DOMAIN);
        async move { signup::post_signup(&http, &base, &input).await }
    })
    .await;
    if r.errors > 0 {
        return Err(format!(
            "sweep: seeding failed: {}",
            r.first_error.unwrap_or_default()
        ));
    }
    let raw = RawTables::new(reqwest::Client::new(), stack.table_port);
    let table = format!("{prefix}Requests");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = raw.count(&table, &pending_filter()).await?;
        if pending >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "sweep: {pending} of {n} mails pending after two minutes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    Ok(started.elapsed())
}

/// A handler with a working SMTP server on tables `prefix`, against `table_port`, warmed by
/// a tick of its own whose host time is ten minutes back, when none of the backlog was due
/// yet (adapters built, tables known; the directory pass it does instead is recorded at that
/// time, so the timed tick twelve minutes later does not do another).
async fn sweeper(
    stack: &Stack,
    handler: &Path,
    prefix: &str,
    table_port: u16,
) -> Result<platform::Server, String> {
    let env = stack.handler_env(table_port, prefix);
    let log = stack.work.join(format!("handler-{prefix}-sweep.log"));
    let (server, _) = platform::start_server(handler, &env, Some(&log))?;
    let before = stack.mails_delivered();
    let earlier = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    tick(&signup::host_client(), &server.url(""), earlier).await?;
    if stack.mails_delivered() != before {
        return Err("sweep: the warm-up tick sent mail; the backlog was due too early".into());
    }
    Ok(server)
}

pub async fn run(stack: &Stack, handler: &Path, n: usize) -> Result<Sweep, String> {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let (timed, counted, floor) = (format!("st{tag}"), format!("sc{tag}"), format!("sf{tag}"));
    eprintln!("bench: sweep, three backlogs of {n} pending mails");
    let seeding = seed(stack, handler, &timed, n).await?;
    seed(stack, handler, &counted, n).await?;
    seed(stack, handler, &floor, n).await?;
    let host_time = || OffsetDateTime::now_utc() + time::Duration::minutes(2);
    let http = signup::host_client();

    eprintln!("bench: sweep, the timed tick");
    let server = sweeper(stack, handler, &timed, stack.table_port).await?;
    let before = stack.mails_delivered();
    let started = Instant::now();
    let logs = tick(&http, &server.url(""), host_time()).await?;
    let tick_wall = started.elapsed();
    let delivered = stack.mails_delivered() - before;
    drop(server);
    let raw = RawTables::new(reqwest::Client::new(), stack.table_port);
    let left_pending = raw
        .count(&format!("{timed}Requests"), &pending_filter())
        .await?;
    let summary = logs
        .iter()
        .find(|l| l.starts_with("cleanup"))
        .cloned()
        .unwrap_or_else(|| logs.join("; "));

    eprintln!("bench: sweep, the counted tick");
    let proxy = CountingProxy::start(stack.table_port).await?;
    let server = sweeper(stack, handler, &counted, proxy.port).await?;
    let before = stack.mails_delivered();
    proxy.take();
    tick(&http, &server.url(""), host_time()).await?;
    let trips = proxy.take();
    let counted_delivered = stack.mails_delivered() - before;
    drop(server);

    eprintln!("bench: sweep, the floor");
    let mail = MailFloor::new(
        stack.smtp_port,
        &stack.handler_env(stack.table_port, "mailfloor"),
    )?;
    let (floor_wall, floor_trips) = sweep_floor(stack, &raw, &mail, &floor).await?;
    let recipients: Vec<String> = (0..n)
        .map(|i| signup::input(&floor, i, signup::SIGNUP_POLICY_DOMAIN).email)
        .collect();
    let started = Instant::now();
    let sent: Vec<Result<(), String>> = futures::stream::iter(recipients)
        .map(|to| {
            let mail = mail.clone();
            async move { mail.send(&to).await }
        })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    let mail_floor = started.elapsed();
    sent.into_iter().collect::<Result<Vec<()>, String>>()?;

    Ok(Sweep {
        mails: n,
        seeding,
        tick: tick_wall,
        delivered,
        summary,
        trips,
        counted_delivered,
        left_pending,
        floor: floor_wall,
        floor_trips,
        mail_floor,
    })
}

/// The sweep's own work, straight: the query for due mail, then for each mail (8 at a time)
/// the compare-and-swap that takes it, the mail, and the merge that records it delivered.
async fn sweep_floor(
    stack: &Stack,
    raw: &RawTables,
    mail: &MailFloor,
    prefix: &str,
) -> Result<(Duration, u64), String> {
    let table = format!("{prefix}Requests");
    let lease = sending_lease(Duration::from_secs(15));
    let started = Instant::now();
    let now = OffsetDateTime::now_utc() + time::Duration::minutes(2);
    let filter = format!(
        "{MAIL_ROWS} and ((State eq 'pending' and DueAt le '{now}') or (State eq 'sending' and LeaseUntil le '{real}'))",
        now = format_time(now),
        real = format_time(OffsetDateTime::now_utc()),
    );
    let (due, pages) = raw.query_all(&table, &filter).await?;
    let before = stack.mails_delivered();
    let table = Arc::new(table);
    let sent: Vec<Result<(), String>> = futures::stream::iter(due)
        .map(|entity| {
            let (raw, mail, table) = (raw.clone(), mail.clone(), table.clone());
            async move { deliver(&raw, &mail, &table, entity, now, lease).await }
        })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    let wall = started.elapsed();
    let n = sent.len() as u64;
    sent.into_iter().collect::<Result<Vec<()>, String>>()?;
    if stack.mails_delivered() - before != n as usize {
        return Err("sweep floor: not every mail was accepted".into());
    }
    Ok((wall, pages + 2 * n))
}

async fn deliver(
    raw: &RawTables,
    mail: &MailFloor,
    table: &str,
    entity: Map<String, Value>,
    now: OffsetDateTime,
    lease: time::Duration,
) -> Result<(), String> {
    let text = |name: &str| {
        entity
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let etag = text("odata.etag");
    let mut props = entity.clone();
    props.retain(|k, _| {
        !k.starts_with("odata.") && k != "PartitionKey" && k != "RowKey" && k != "Timestamp"
    });
    let row = Row {
        partition_key: text("PartitionKey"),
        row_key: text("RowKey"),
        etag: None,
        props,
    };
    let time = |name: &str| row.time(name).ok().flatten().unwrap_or(now);
    let mut delivery = Delivery {
        state: text("State").parse()?,
        attempts: row.u32("Attempts")?,
        created_at: time("CreatedAt"),
        due_at: time("DueAt"),
        lease_until: time("LeaseUntil"),
        delivered_at: None,
        last_error: Some(text("LastError")).filter(|e| !e.is_empty()),
    };
    delivery.take(OffsetDateTime::now_utc(), lease);
    let taken = delivery_row(&row.partition_key, &row.row_key, &delivery);
    let etag = match raw.merge(table, &taken, &etag).await? {
        Outcome::Done(etag) => etag,
        Outcome::Conflict => return Err("sweep floor: a mail changed under it".into()),
    };
    mail.send(&text("To")).await?;
    delivery.record(Attempt::Accepted, now);
    let done = delivery_row(&row.partition_key, &row.row_key, &delivery);
    match raw.merge(table, &done, &etag).await? {
        Outcome::Done(_) => Ok(()),
        Outcome::Conflict => Err("sweep floor: a mail changed under it".into()),
    }
}
