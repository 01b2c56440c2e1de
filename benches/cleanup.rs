//! The cleanup at tenant scale: not a test, a measurement.
//!
//! ```text
//! cargo bench --bench cleanup -- [--guests 100000] [--latency-ms 50] [--write-quota 3000/5]
//!                                [--interrupt-after 10] [--concurrency 4]
//! ```
//!
//! Seeds the Graph simulator (in-process, with its per-call latency and write throttle on)
//! with N guests that the portal recorded and disabled long ago, so one run deletes each with
//! one write; runs the timer's own code (`functions::cleanup::run`) against Table Storage
//! (Azurite: `B2B_TEST_TABLE_PORT`, or one started from tests/platform), first with a time
//! budget of `--interrupt-after` seconds so the run checkpoints and stops, then again until
//! done; and prints the Graph calls made next to their floor, the wall time, and how long the
//! resumed run took to pick up its plan. It checks the work was done: the simulator's deleted
//! count must be N.
//!
//! The floor of Graph calls for removing N guests: ceil(N/999) list pages, ceil(N/300)
//! re-check batches (each guest is read again right before it is removed, 15 to an `id in`
//! query and 20 queries to a `$batch`), and ceil(N/20) `$batch` calls of removals.
//!
//! The write quota is scaled (Graph's is 3,000 writes per 150 s per app and tenant, which
//! makes 100,000 deletions take 83 minutes whatever the client does): the point is that the
//! quota, not the cleanup, bounds the rate.

use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use b2b_signup::adapters::tables::TableName;
use b2b_signup::functions::Portal;
use b2b_signup::settings::{Environment, Settings};
use b2b_signup::store::guests::{self, Guest, GuestOrigin, GuestState};
use futures::stream::{self, StreamExt};
use graph_simulator::{SeedGuest, Simulator, SimulatorConfig};
use time::{Duration, OffsetDateTime};

struct Options {
    guests: usize,
    latency_ms: u64,
    write_quota: (u32, u64),
    interrupt_after: u64,
    concurrency: usize,
}

fn options() -> Options {
    let mut o = Options {
        guests: 100_000,
        latency_ms: 50,
        write_quota: (3000, 5),
        interrupt_after: 10,
        concurrency: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            "--guests" => o.guests = value("--guests").parse().expect("--guests N"),
            "--latency-ms" => o.latency_ms = value("--latency-ms").parse().expect("--latency-ms N"),
            "--interrupt-after" => {
                o.interrupt_after = value("--interrupt-after")
                    .parse()
                    .expect("--interrupt-after SECONDS")
            }
            "--concurrency" => {
                o.concurrency = value("--concurrency").parse().expect("--concurrency N")
            }
            "--write-quota" => {
                let v = value("--write-quota");
                let (n, s) = v.split_once('/').expect("--write-quota WRITES/SECONDS");
                o.write_quota = (n.parse().expect("writes"), s.parse().expect("seconds"));
            }
            other => panic!(
                "unknown argument {other}; use --guests N --latency-ms N --write-quota W/S --interrupt-after S --concurrency N"
            ),
        }
    }
    o
}

/// Azurite, unless the caller runs one (`B2B_TEST_TABLE_PORT`, as `./dev test` does).
fn table_port() -> (u16, Option<Child>) {
    if let Ok(p) = std::env::var("B2B_TEST_TABLE_PORT") {
        return (p.parse().expect("B2B_TEST_TABLE_PORT is a port"), None);
    }
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("tests/platform/node_modules/.bin/azurite-table");
    assert!(
        bin.exists(),
        "Azurite is not installed: npm ci --prefix tests/platform"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("bench-cleanup-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(bin);
    // Azurite dies with the bench, however the bench ends.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .args(["--tableHost", "127.0.0.1", "--tablePort", &port.to_string()])
        .args([
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--inMemoryPersistence",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Azurite starts");
    let deadline = Instant::now() + StdDuration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "Azurite did not listen");
        std::thread::sleep(StdDuration::from_millis(50));
    }
    (port, Some(child))
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let o = options();
    // The portal's own log lines (seconds since start) go to a file the report reads its
    // phases from: the guests table read, the listing, and the deletions over time.
    let log = tempfile::NamedTempFile::new().expect("a temporary file for the log");
    tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(
            log.reopen().expect("the log reopens"),
        ))
        .with_ansi(false)
        .with_timer(tracing_subscriber::fmt::time::Uptime::default())
        .init();
    let (port, azurite) = table_port();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let azurite_pid = azurite.as_ref().map(Child::id);
    let outcome = runtime.block_on(bench(&o, port, azurite_pid));
    if outcome.is_ok() {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        print_phases(&text, &o);
    }
    if let Some(mut child) = azurite {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Err(e) = outcome {
        eprintln!("bench-cleanup: {e}");
        std::process::exit(1);
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_second.max(1.0))
}

async fn bench(o: &Options, table_port: u16, azurite_pid: Option<u32>) -> Result<(), String> {
    let n = o.guests;
    let (quota, window) = o.write_quota;
    let sim = Simulator::start(SimulatorConfig {
        latency: StdDuration::from_millis(o.latency_ms),
        write_throttle: Some((quota, StdDuration::from_secs(window))),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("the simulator: {e}"))?;
    let now = OffsetDateTime::now_utc();
    let long_ago = now - Duration::days(200);

    // The managed identity credential reads these from the process, as in App Service.
    std::env::set_var("IDENTITY_ENDPOINT", sim.identity_endpoint());
    std::env::set_var("IDENTITY_HEADER", sim.identity_header());
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let storage = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{table_port}/devstoreaccount1",
        b2b_signup::settings::DEV_ACCOUNT_KEY
    );
    let base = sim.base_url();
    let max = n.to_string();
    let concurrency = o.concurrency.to_string();
    let settings_with_budget = |budget: u64| {
        let budget = budget.to_string();
        let env = Environment::from_pairs([
            ("PORTAL_STORAGE", storage.as_str()),
            ("PORTAL_TABLE_PREFIX", prefix.as_str()),
            ("GRAPH_BASE_URL", base.as_str()),
            ("GRAPH_CREDENTIAL", "managed_identity"),
            ("SMTP_URL", "smtp://127.0.0.1:9"),
            ("MAIL_FROM", "Bench <no-reply@bench.example>"),
            ("PORTAL_PUBLIC_URL", "http://localhost:7071"),
            (
                "PORTAL_SIGNING_KEYS",
                "k1:YmVuY2gtc2lnbmluZy1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3",
            ),
            ("CLEANUP_MAX_REMOVALS", max.as_str()),
            ("CLEANUP_MAX_REMOVAL_PERCENT", "100"),
            ("CLEANUP_CONCURRENCY", concurrency.as_str()),
            ("CLEANUP_TIME_BUDGET_SECONDS", budget.as_str()),
        ]);
        Settings::from_env(&env).map_err(|e| e.to_string())
    };

    println!(
        "bench-cleanup: {n} guests, Graph latency {} ms per call, write quota {quota} per {window} s, {} $batch calls in flight",
        o.latency_ms, o.concurrency
    );
    let seeding = Instant::now();
    let mut rows = Vec::with_capacity(n);
    for k in 0..n {
        let mail = format!("bench-{k}@bench.example");
        let id = sim.add_guest(
            SeedGuest::new(&mail)
                .created(long_ago)
                .accepted(long_ago)
                .disabled(),
        );
        // Past the grace period: the run's only step for each is the soft delete.
        rows.push(Guest {
            user_id: id,
            email: mail,
            request_id: None,
            policy_key: None,
            invited_at: long_ago,
            access_ends_at: Some(now - Duration::days(60)),
            redeem_url: None,
            language: "en".into(),
            first_name: String::new(),
            state: GuestState::Disabled,
            state_changed_at: now - Duration::days(30),
            removal_reason: Some("access_period".into()),
            reminder_sent_at: None,
            origin: GuestOrigin::Invited,
            invite_decided_at: Some(long_ago),
            notice_mail_id: None,
            last_mail_delivered: None,
            last_name: String::new(),
            organisation: String::new(),
            sponsors: Vec::new(),
            reviews: Default::default(),
        });
    }
    let portal = Portal::new(settings_with_budget(o.interrupt_after)?)?;
    // Seeding is set-up, not the measured work: many rows in flight (each guest is its own
    // partition, so entity-group transactions cannot carry them).
    let table_rows: Vec<_> = rows.iter().map(guests::to_row).collect();
    let failures = stream::iter(table_rows.iter())
        .map(|row| portal.store.upsert(TableName::Guests, row))
        .buffer_unordered(32)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    if failures > 0 {
        return Err(format!(
            "{failures} batches of guest rows could not be written"
        ));
    }
    println!(
        "seeded {n} guests in the simulator and the Guests table in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    sim.reset_calls();
    let azurite_pid = azurite_pid.map(|p| p.to_string());
    let cpu_before = (
        azurite_pid.as_deref().and_then(cpu_seconds),
        cpu_seconds("self"),
    );

    // Run 1: stopped by the time budget, as the Functions time limit would.
    let mut logs = Vec::new();
    let started = Instant::now();
    let summary = b2b_signup::functions::cleanup::run(&portal, now, false, &mut logs).await?;
    let first = started.elapsed();
    println!(
        "run 1 (budget {} s): {:.1} s: {summary}",
        o.interrupt_after,
        first.as_secs_f64()
    );
    let mut runs = 1;
    let mut resume_ms = None;
    let mut wall = first;
    let mut paused = summary.contains("paused");
    // Then with the production budget until done.
    let portal = Portal::new(settings_with_budget(480)?)?;
    while paused {
        runs += 1;
        let mut logs = Vec::new();
        let started = Instant::now();
        let summary = b2b_signup::functions::cleanup::run(&portal, now, false, &mut logs).await?;
        let took = started.elapsed();
        wall += took;
        if resume_ms.is_none() {
            resume_ms = logs
                .iter()
                .find(|l| l.starts_with("resuming"))
                .map(|l| l.to_string());
        }
        println!("run {runs}: {:.1} s: {summary}", took.as_secs_f64());
        paused = summary.contains("paused");
        if runs > 50 {
            return Err("more than 50 runs: the cleanup is not making progress".into());
        }
    }

    let deleted = sim.deleted_users().len();
    let calls = sim.calls();
    let per_recheck = b2b_signup::adapters::graph::recheck_capacity(false);
    let floors = [
        n.div_ceil(b2b_signup::adapters::graph::PAGE_LIMIT),
        n.div_ceil(per_recheck),
        n.div_ceil(b2b_signup::adapters::graph::BATCH_LIMIT),
    ];
    let floor: usize = floors.iter().sum();
    // Listing pages are the direct `GET /users` calls (the re-check's queries travel inside
    // its `$batch` calls, which only read).
    let pages = calls.list_users_pages - calls.list_users_in_batch;
    let rechecks = calls.batch_reads_only;
    let removals = calls.batch - calls.batch_reads_only;
    let made = (pages + rechecks + removals) as usize;
    println!();
    println!("guests deleted:        {deleted} of {n}");
    println!(
        "Graph calls:           {pages} list pages + {rechecks} re-check batches + {removals} removal batches = {made} (floor ceil(N/999) + ceil(N/{per_recheck}) + ceil(N/20) = {} + {} + {} = {floor}); ratio {:.3}",
        floors[0],
        floors[1],
        floors[2],
        made as f64 / floor as f64
    );
    println!(
        "                       all outer HTTP calls incl. tokens and the rest: {}; throttled sub-requests (429): {}; writes: {} deletes, {} patches",
        calls.total, calls.throttled_429, calls.delete_user, calls.patch_user
    );
    // What the write quota alone allows: N writes at its steady rate, `quota` per `window`.
    let quota_floor = n as f64 * window as f64 / quota as f64;
    println!(
        "wall time:             {:.1} s over {runs} runs ({:.0} deletes/s); the write quota alone needs {quota_floor:.1} s ({} deletes/s): ratio {:.2}",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        quota as u64 / window,
        wall.as_secs_f64() / quota_floor.max(f64::EPSILON)
    );
    let cpu = |before: Option<f64>, pid: Option<&str>| Some(cpu_seconds(pid?)? - before?);
    match (
        cpu(cpu_before.0, azurite_pid.as_deref()),
        cpu(cpu_before.1, Some("self")),
    ) {
        (Some(azurite), Some(own)) => println!(
            "CPU during the runs:   Azurite {azurite:.1} s ({:.0}% of the wall time; it serves from one Node.js thread), this process (the portal's cleanup code and the Graph simulator) {own:.1} s",
            100.0 * azurite / wall.as_secs_f64()
        ),
        (None, Some(own)) => println!(
            "CPU during the runs:   this process (the portal's cleanup code and the Graph simulator) {own:.1} s; Azurite's not measured (B2B_TEST_TABLE_PORT's)"
        ),
        _ => {}
    }
    match resume_ms {
        Some(line) => println!("resume:                {line}"),
        None => println!("resume:                run 1 finished within its budget; nothing to resume (lower --interrupt-after)"),
    }
    println!(
        "write quota used:      {quota} writes per {window} s (Graph's: 3,000 per 150 s per app, at which {n} deletes take at least {:.0} min)",
        (n as f64 / 3000.0 * 150.0 / 60.0).ceil()
    );
    if deleted != n {
        return Err(format!("only {deleted} of {n} guests were deleted"));
    }
    Ok(())
}

/// Where the time went, from the portal's log: each run's read of the Guests table, its
/// listing and planning, and the deletions per 30 s against what the write quota allows.
fn print_phases(log: &str, o: &Options) {
    let seconds = |line: &str| -> Option<f64> {
        line.split_whitespace()
            .next()?
            .trim_end_matches('s')
            .parse()
            .ok()
    };
    let field_ms = |line: &str| -> Option<f64> {
        let v = line.split("ms=").nth(1)?.split_whitespace().next()?;
        v.parse::<f64>().ok().map(|ms| ms / 1000.0)
    };
    let reads: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("cleanup read the guests table"))
        .filter_map(field_ms)
        .collect();
    let listings: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("cleanup listed the directory"))
        .filter_map(field_ms)
        .collect();
    let deletions: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("audit=guest.deleted"))
        .filter_map(seconds)
        .collect();
    let list = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.1} s"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    println!(
        "phases:                reading the Guests table {} (once per run); reading it, listing and planning {} in all",
        list(&reads),
        list(&listings)
    );
    let (Some(first), Some(last)) = (deletions.first(), deletions.last()) else {
        return;
    };
    let acting = last - first;
    println!(
        "acting:                {} deletions recorded over {acting:.1} s ({:.0}/s; the write quota allows {}/s)",
        deletions.len(),
        deletions.len() as f64 / acting.max(f64::EPSILON),
        o.write_quota.0 as u64 / o.write_quota.1
    );
    let mut per_window = vec![0usize; (acting / 30.0) as usize + 1];
    for t in &deletions {
        per_window[((t - first) / 30.0) as usize] += 1;
    }
    let allowed = o.write_quota.0 as u64 * 30 / o.write_quota.1;
    println!(
        "deletions per 30 s:    {} (the quota allows {allowed}; the last window is partial)",
        per_window
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
