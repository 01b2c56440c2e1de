//! Sign-up under load: the portal (release `handler` against Azurite and aiosmtpd) and the
//! floor (the minimum Table Storage round trips and the mail, straight to the same Azurite and
//! aiosmtpd, the part after the answer not waited for), with the same inputs, at the same
//! concurrency, alternating which goes first, each on fresh tables. When builds are compared,
//! the baseline build of the handler is one more side of each round.
//!
//! Throughput counts answers; each side then waits until every sign-up's mail has been
//! accepted, so the work after the answers is finished (and its CPU counted) before the next
//! side starts, and the time until the last mail tells how fast the sign-ups are *completed*.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::floor::{Floor, FloorTables, MailRecord, RawTables, SignupInput};
use crate::load::{self, RunResult};
use crate::mailfloor::MailFloor;
use crate::platform::{self, Stack};

/// How long a side may take to deliver its mails after its last answer.
const MAIL_PATIENCE: Duration = Duration::from_secs(120);

/// Now, as Unix time in ns: the clock the SMTP sink stamps acceptances with.
pub fn unix_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The domains sign-ups come from: subdomains of one policy, so the per-domain counter is
/// exercised on 64 keys instead of one hot row.
pub const SIGNUP_POLICY_DOMAIN: &str = "signup.bench.example";
pub const DOMAINS: usize = 64;
pub const APPROVER: &str = "approver@contoso.example";

/// A domain with a `deny` policy (and its subdomains).
pub const DENY_DOMAIN: &str = "deny.bench.example";
/// A domain no policy names.
pub const UNKNOWN_DOMAIN: &str = "unknown.bench.example";

/// What a valid submission is to the policies, which decides what happens after the answer
/// (and which the answer must not tell).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Submission {
    /// A policy admits the address and it has no open request: a verification mail.
    Admitted,
    /// A `deny` policy names the domain: counted as demand, no mail.
    Denied,
    /// No policy names the domain: counted as demand, no mail.
    Unknown,
    /// The address has a request waiting for its proof: another verification mail, for
    /// these details.
    OpenRequest,
}

impl Submission {
    pub const ALL: [Submission; 4] = [
        Submission::Admitted,
        Submission::Denied,
        Submission::Unknown,
        Submission::OpenRequest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Submission::Admitted => "admitted",
            Submission::Denied => "denied",
            Submission::Unknown => "unknown domain",
            Submission::OpenRequest => "open request",
        }
    }

    /// Whether the portal mails the address after the answer.
    pub fn mails(self) -> bool {
        matches!(self, Submission::Admitted | Submission::OpenRequest)
    }

    /// The domain its fresh addresses are on (an open request's address was admitted).
    pub fn domain(self) -> &'static str {
        match self {
            Submission::Admitted | Submission::OpenRequest => SIGNUP_POLICY_DOMAIN,
            Submission::Denied => DENY_DOMAIN,
            Submission::Unknown => UNKNOWN_DOMAIN,
        }
    }
}

/// Input `i` of run `run`: a unique address on one of 64 domains, a unique client IP.
pub fn input(run: &str, i: usize, domain: &str) -> SignupInput {
    SignupInput {
        email: format!("p{i}.{run}@d{}.{domain}", i % DOMAINS),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        organisation: "Partner AB".into(),
        client_ip: format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
    }
}

pub fn host_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
        .expect("the client builds")
}

/// Posts the sign-up form as the Functions host forwards it: the caller's request plus the
/// host's headers; the client IP in `X-Forwarded-For`.
pub async fn post_signup(
    http: &reqwest::Client,
    base: &str,
    input: &SignupInput,
) -> Result<(), String> {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", &input.email)
        .append_pair("first_name", &input.first_name)
        .append_pair("last_name", &input.last_name)
        .append_pair("organisation", &input.organisation)
        .finish();
    let resp = http
        .post(format!("{base}/api/signup"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "X-Azure-Functions-InvocationId",
            uuid::Uuid::new_v4().to_string(),
        )
        .header("X-Azure-Functions-HostVersion", "4.1040.300.25317")
        .header("User-Agent", "Azure-Functions-Host/4.1040.300.25317")
        .header("X-Forwarded-For", format!("{}:50000", input.client_ip))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("POST /api/signup answered {status}"))
    }
}

/// Adds the policy that admits the load's addresses.
pub fn add_signup_policy(
    stack: &Stack,
    handler: &Path,
    env: &[(String, String)],
) -> Result<(), String> {
    add_policy(
        stack,
        handler,
        env,
        SIGNUP_POLICY_DOMAIN,
        &["approve", "--approver", APPROVER],
    )
}

/// Adds a `deny` policy for [`DENY_DOMAIN`] and its subdomains.
pub fn add_deny_policy(
    stack: &Stack,
    handler: &Path,
    env: &[(String, String)],
) -> Result<(), String> {
    add_policy(stack, handler, env, DENY_DOMAIN, &["deny"])
}

/// `handler policy add --domain DOMAIN --include-subdomains --action ACTION...`.
fn add_policy(
    stack: &Stack,
    handler: &Path,
    env: &[(String, String)],
    domain: &str,
    action: &[&str],
) -> Result<(), String> {
    let mut args = vec![
        "policy",
        "add",
        "--domain",
        domain,
        "--include-subdomains",
        "--action",
    ];
    args.extend_from_slice(action);
    stack.cli(handler, env, &args).map(|_| ())
}

/// CPU used by each process during a run, and by the whole machine.
#[derive(Debug, Clone, Default)]
pub struct Cpu {
    pub handler: Duration,
    pub azurite: Duration,
    pub smtp: Duration,
    pub bench: Duration,
    pub machine_busy: Duration,
    pub machine_total: Duration,
}

impl Cpu {
    pub fn snapshot(stack: &Stack, handler_pid: Option<u32>) -> Cpu {
        let cpu = |pid: u32| platform::cpu_time(pid).unwrap_or_default();
        let (busy, total) = platform::machine_cpu().unwrap_or_default();
        Cpu {
            handler: handler_pid.map(cpu).unwrap_or_default(),
            azurite: cpu(stack.azurite.pid()),
            smtp: cpu(stack.smtp.proc.pid()) + cpu(stack.slow_smtp.proc.pid()),
            bench: cpu(std::process::id()),
            machine_busy: busy,
            machine_total: total,
        }
    }

    pub fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            handler: self.handler.saturating_sub(before.handler),
            azurite: self.azurite.saturating_sub(before.azurite),
            smtp: self.smtp.saturating_sub(before.smtp),
            bench: self.bench.saturating_sub(before.bench),
            machine_busy: self.machine_busy.saturating_sub(before.machine_busy),
            machine_total: self.machine_total.saturating_sub(before.machine_total),
        }
    }

    /// CPU of processes that are not part of this benchmark (other builds and tests).
    pub fn foreign(&self) -> Duration {
        self.machine_busy
            .saturating_sub(self.handler + self.azurite + self.smtp + self.bench)
    }
}

/// One timed run of one side.
#[derive(Debug, Clone)]
pub struct SideRun {
    pub result: RunResult,
    pub cpu: Cpu,
    /// Request rows found in the table afterwards, and how many were expected.
    pub rows: (usize, usize),
    /// Mails delivered during warm-up and run, and how many were expected (portal only).
    pub mails: Option<(usize, usize)>,
    /// Peak RSS of the handler after the run, KiB (portal only).
    pub peak_rss_kib: Option<u64>,
    /// From the start of the timed run to the acceptance of its last mail.
    pub completed: Option<Duration>,
}

impl SideRun {
    /// Sign-ups completed (answered and their mail accepted) per second.
    pub fn completed_throughput(&self) -> f64 {
        self.completed
            .map_or(0.0, |d| self.result.ok as f64 / d.as_secs_f64().max(1e-9))
    }
}

#[derive(Debug, Clone)]
pub struct Round {
    pub concurrency: usize,
    pub portal: SideRun,
    /// The floor: the minimum Table Storage round trips and the mail's SMTP transaction.
    pub floor: SideRun,
    /// The baseline build of the handler (`--baseline-handler`), when one is compared.
    pub baseline: Option<SideRun>,
}

/// One round of the comparison alone (`--compare-only`): this build and the baseline build,
/// the same sign-ups on fresh tables, alternating which goes first.
#[derive(Debug, Clone)]
pub struct Pair {
    pub concurrency: usize,
    pub after: SideRun,
    pub before: SideRun,
}

pub struct LoadPlan {
    pub concurrencies: Vec<usize>,
    pub rounds: usize,
    pub requests: fn(usize) -> usize,
    pub max_time: Duration,
}

impl LoadPlan {
    /// Each round as (concurrency, round number), in the order they run.
    fn each_round(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.concurrencies
            .iter()
            .flat_map(|&c| (0..self.rounds).map(move |r| (c, r)))
    }
}

pub struct LoadOutcome {
    pub rounds: Vec<Round>,
    pub idle_rss_kib: u64,
    /// Bytes of the verification mail on the wire (the mail floor's message).
    pub mail_bytes: usize,
}

/// The handler builds a run puts under load: this build, and the one it is compared with.
#[derive(Clone, Copy)]
pub struct Builds<'a> {
    pub handler: &'a Path,
    pub baseline: Option<&'a Path>,
}

pub async fn run(
    stack: &Stack,
    builds: Builds<'_>,
    plan: &LoadPlan,
) -> Result<LoadOutcome, String> {
    let http = host_client();
    let raw = RawTables::new(
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| e.to_string())?,
        stack.table_port,
    );
    let mail = MailFloor::new(
        stack.smtp_port,
        &stack.handler_env(stack.table_port, "mailfloor"),
    )?;
    let record = Arc::new(MailRecord::new(
        &stack.handler_env(stack.table_port, "mailrecord"),
    )?);
    let sides = 2 + usize::from(builds.baseline.is_some());
    let mut rounds = Vec::new();
    let mut idle_rss_kib = 0;
    for (c, r) in plan.each_round() {
        let round = Side::new(stack, &raw, &http, plan, c, r);
        let (mut portal, mut floor, mut baseline) = (None, None, None);
        // The sides take turns going first.
        for side in 0..sides {
            match (side + r) % sides {
                0 => portal = Some(round.portal("p", builds.handler, &mut idle_rss_kib).await?),
                1 => floor = Some(round.floor(&mail, &record).await?),
                _ => {
                    if let Some(bin) = builds.baseline {
                        baseline = Some(round.portal("b", bin, &mut 0).await?);
                    }
                }
            }
        }
        rounds.push(Round {
            concurrency: c,
            portal: portal.expect("each side ran"),
            floor: floor.expect("each side ran"),
            baseline,
        });
    }
    Ok(LoadOutcome {
        rounds,
        idle_rss_kib,
        mail_bytes: mail.message_bytes(),
    })
}

/// The comparison alone: per round, this build and the baseline, alternating which goes first.
pub async fn compare(
    stack: &Stack,
    handler: &Path,
    baseline: &Path,
    plan: &LoadPlan,
) -> Result<Vec<Pair>, String> {
    let http = host_client();
    let raw = RawTables::new(reqwest::Client::new(), stack.table_port);
    let mut pairs = Vec::new();
    for (c, r) in plan.each_round() {
        let round = Side::new(stack, &raw, &http, plan, c, r);
        let (after, before) = if r % 2 == 0 {
            let after = round.portal("p", handler, &mut 0).await?;
            (after, round.portal("b", baseline, &mut 0).await?)
        } else {
            let before = round.portal("b", baseline, &mut 0).await?;
            (round.portal("p", handler, &mut 0).await?, before)
        };
        pairs.push(Pair {
            concurrency: c,
            after,
            before,
        });
    }
    Ok(pairs)
}

/// The load's operation on the portal side: the i-th sign-up of run `run_id`, posted to the
/// handler at `base`.
fn signups(
    http: &reqwest::Client,
    base: &str,
    run_id: String,
) -> impl Fn(usize) -> futures::future::BoxFuture<'static, Result<(), String>> + Clone + Send + Sync
{
    let (http, base) = (http.clone(), base.to_string());
    move |i| {
        let (http, base) = (http.clone(), base.clone());
        let input = input(&run_id, i, SIGNUP_POLICY_DOMAIN);
        Box::pin(async move { post_signup(&http, &base, &input).await })
    }
}

impl Side<'_> {
    /// A portal side: `handler_bin` on tables named with `letter`, the round's sign-ups posted
    /// to it. The handler's peak RSS when idle goes to `idle_rss_kib` if that is still 0.
    async fn portal(
        &self,
        letter: &str,
        handler_bin: &Path,
        idle_rss_kib: &mut u64,
    ) -> Result<SideRun, String> {
        let Side {
            stack,
            http,
            ref tag,
            c,
            warmup,
            total,
            max_time,
            ..
        } = *self;
        let prefix = format!("{letter}{tag}");
        let env = stack.handler_env(stack.table_port, &prefix);
        add_signup_policy(stack, handler_bin, &env)?;
        let log = stack.work.join(format!("handler-{prefix}.log"));
        let (server, _) = platform::start_server(handler_bin, &env, Some(&log))?;
        let pid = server.proc.pid();
        if *idle_rss_kib == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            *idle_rss_kib = platform::memory_kib(pid).map(|(hwm, _)| hwm).unwrap_or(0);
        }
        let base = server.url("");
        let mails_before = stack.mails_delivered();
        // Warm-up on other inputs: creates the tables, loads the policy cache, fills the pools.
        let run_id = format!("w{tag}");
        let w = load::run(c, 0, warmup, max_time, signups(http, &base, run_id)).await;
        if w.errors > 0 {
            return Err(format!(
                "portal warm-up failed: {}",
                w.first_error.unwrap_or_default()
            ));
        }
        let run_from = stack
            .smtp
            .accepted
            .wait_for(mails_before + w.ok, MAIL_PATIENCE)
            .await;
        let before = Cpu::snapshot(stack, Some(pid));
        let run_id = tag.to_string();
        let started = unix_ns();
        let result = load::run(c, 0, total, max_time, signups(http, &base, run_id)).await;
        let completed = completion(stack, run_from, result.ok, started).await;
        // The delivery records follow each mail's acceptance.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cpu = Cpu::snapshot(stack, Some(pid)).since(&before);
        let peak = platform::memory_kib(pid).map(|(hwm, _)| hwm);
        drop(server);
        let mails = stack.mails_delivered() - mails_before;
        let raw = RawTables::new(reqwest::Client::new(), stack.table_port);
        let rows = raw
            .count(&format!("{prefix}Requests"), "RowKey eq 'request'")
            .await?;
        let expected = w.ok + result.ok;
        Ok(SideRun {
            result,
            cpu,
            rows: (rows, expected),
            mails: Some((mails, expected)),
            peak_rss_kib: peak,
            completed,
        })
    }
}

/// What a side of a round needs to run: the stack, the round's tag (naming its tables and
/// inputs), its concurrency and sizes.
struct Side<'a> {
    stack: &'a Stack,
    raw: &'a RawTables,
    http: &'a reqwest::Client,
    tag: String,
    c: usize,
    warmup: usize,
    total: usize,
    max_time: Duration,
}

impl<'a> Side<'a> {
    /// Round `r` at concurrency `c`, with a fresh tag.
    fn new(
        stack: &'a Stack,
        raw: &'a RawTables,
        http: &'a reqwest::Client,
        plan: &LoadPlan,
        c: usize,
        r: usize,
    ) -> Self {
        let tag = format!(
            "c{c}r{r}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        eprintln!(
            "bench: sign-up load, concurrency {c}, round {} of {}",
            r + 1,
            plan.rounds
        );
        Side {
            stack,
            raw,
            http,
            tag,
            c,
            warmup: (2 * c).max(10),
            total: (plan.requests)(c),
            max_time: plan.max_time,
        }
    }

    /// The floor: each sign-up's answer part, then its part after the answer spawned and not
    /// waited for.
    async fn floor(&self, mail: &MailFloor, record: &Arc<MailRecord>) -> Result<SideRun, String> {
        let (stack, raw, c) = (self.stack, self.raw, self.c);
        let prefix = format!("f{}", self.tag);
        let floor = Floor {
            raw: raw.clone(),
            tables: FloorTables::create(raw, &prefix).await?,
            record: record.clone(),
            mail: mail.clone(),
        };
        let after = Arc::new(Background::default());
        let op = |run_id: String| {
            let floor = floor.clone();
            let after = after.clone();
            move |i| {
                let floor = floor.clone();
                let after = after.clone();
                let input = input(&run_id, i, SIGNUP_POLICY_DOMAIN);
                async move {
                    let (submitted, _) = floor.answer(&input).await?;
                    after.spawn(async move { floor.after_answer(submitted).await.map(|_| ()) });
                    Ok(())
                }
            }
        };
        let mails_before = stack.mails_delivered();
        let w = load::run(
            c,
            0,
            self.warmup,
            self.max_time,
            op(format!("w{}", self.tag)),
        )
        .await;
        if w.errors > 0 {
            return Err(format!(
                "floor warm-up failed: {}",
                w.first_error.unwrap_or_default()
            ));
        }
        after.idle().await;
        let run_from = stack.mails_delivered();
        let before = Cpu::snapshot(stack, None);
        let started = unix_ns();
        let mut result = load::run(c, 0, self.total, self.max_time, op(self.tag.to_string())).await;
        let completed = completion(stack, run_from, result.ok, started).await;
        after.idle().await;
        let cpu = Cpu::snapshot(stack, None).since(&before);
        if let Some(e) = after.first_error() {
            result.errors += 1;
            result
                .first_error
                .get_or_insert(format!("after the answer: {e}"));
        }
        let rows = raw
            .count(&floor.tables.requests, "RowKey eq 'request'")
            .await?;
        let expected = w.ok + result.ok;
        Ok(SideRun {
            rows: (rows, expected),
            mails: Some((stack.mails_delivered() - mails_before, expected)),
            result,
            cpu,
            peak_rss_kib: None,
            completed,
        })
    }
}

/// Waits for the `n` mails of a run that began at `started` (Unix ns), the sink's count being
/// `from` then; the time from the start to the last one's acceptance, if all arrived.
pub async fn completion(stack: &Stack, from: usize, n: usize, started: i128) -> Option<Duration> {
    let log = &stack.smtp.accepted;
    if log.wait_for(from + n, MAIL_PATIENCE).await < from + n {
        return None;
    }
    let last = log.since(from).iter().map(|a| a.at_ns).max()?;
    Some(Duration::from_nanos((last - started).max(0) as u64))
}

/// The floor's work after its answers: spawned, not waited for by the answer, but counted so
/// a side can finish it before the next one starts.
#[derive(Default)]
pub struct Background {
    in_flight: AtomicUsize,
    first_error: Mutex<Option<String>>,
    idle: tokio::sync::Notify,
}

impl Background {
    pub fn spawn(
        self: &Arc<Self>,
        work: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = work.await {
                me.first_error
                    .lock()
                    .expect("the error lock")
                    .get_or_insert(e);
            }
            if me.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().expect("the error lock").clone()
    }
}
