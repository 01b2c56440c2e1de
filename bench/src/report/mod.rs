//! BENCHMARKS.md: the figures of one run, each next to its floor, with the ratio and whether
//! the target is met, and enough detail (CPU per process, checks on the work done) to tell
//! why.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::coldstart::ColdStart;
use crate::load;
use crate::machine::{self, Machine};
use crate::{Plan, SignupMeasures};

mod mail;
mod signup;

pub enum Cleanup {
    Ran {
        command: String,
        status: String,
        wall: Duration,
        output: String,
    },
    Missing(String),
    Skipped(String),
    /// Still to run when the report is first written (after the load, before the cleanup).
    Pending,
}

/// Runs the cleanup benchmark (`benches/cleanup.rs`, issue 5), built by `cargo bench
/// --no-run` as its documentation's `cargo bench --bench cleanup` would, with its own Azurite
/// and simulator (a fresh Azurite: the load above leaves hundreds of thousands of rows in this
/// run's). Its defaults are the issue's scale (100,000 guests, 50 ms per Graph call, the write
/// throttle on). Stopped after `timeout`, keeping what it printed by then.
pub fn run_cleanup(repo: &Path, work: &Path, args: &[String], timeout: Duration) -> Cleanup {
    if !repo.join("benches/cleanup.rs").exists() {
        return Cleanup::Missing(
            "`benches/cleanup.rs` is not in this tree (the cleanup benchmark of issue 5)".into(),
        );
    }
    let command = format!("cargo bench --bench cleanup -- {}", args.join(" "))
        .trim_end_matches(" -- ")
        .trim()
        .to_string();
    let exe = match cleanup_executable(repo) {
        Ok(exe) => exe,
        Err(e) => return Cleanup::Missing(e),
    };
    eprintln!(
        "bench: cleanup at scale ({command}; at most {} s)",
        timeout.as_secs()
    );
    let log = work.join("cleanup.log");
    let file = match std::fs::File::create(&log) {
        Ok(f) => f,
        Err(e) => return Cleanup::Missing(format!("{}: {e}", log.display())),
    };
    let started = Instant::now();
    let mut cmd = Command::new(&exe);
    cmd.args(args)
        .env_remove("B2B_TEST_TABLE_PORT")
        .current_dir(repo)
        .stdin(std::process::Stdio::null())
        .stderr(
            file.try_clone()
                .map_or_else(|_| std::process::Stdio::null(), Into::into),
        )
        .stdout(file);
    crate::platform::die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Cleanup::Missing(format!("{}: {e}", exe.display())),
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break format!(
                    "stopped by this command after {} s, unfinished",
                    timeout.as_secs()
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => break format!("lost: {e}"),
        }
    };
    Cleanup::Ran {
        command,
        status,
        wall: started.elapsed(),
        output: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// The cleanup benchmark's executable, building it if needed.
fn cleanup_executable(repo: &Path) -> Result<std::path::PathBuf, String> {
    let out = Command::new("cargo")
        .args([
            "bench",
            "--bench",
            "cleanup",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(repo)
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cargo bench --bench cleanup --no-run: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "cleanup")
        .find_map(|v| v["executable"].as_str().map(std::path::PathBuf::from))
        .ok_or_else(|| "cargo bench --bench cleanup --no-run built no executable".into())
}

pub struct Artifact {
    pub handler_bytes: u64,
    pub handler_symbols: Option<bool>,
    pub floor_bytes: u64,
}

impl Artifact {
    pub fn measure(handler: &Path, floor: &Path) -> Artifact {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        Artifact {
            handler_bytes: size(handler),
            handler_symbols: machine::has_symbols(handler),
            floor_bytes: size(floor),
        }
    }
}

pub struct Inputs<'a> {
    pub quick: bool,
    pub machine: &'a Machine,
    pub load_after: String,
    pub cold: &'a ColdStart,
    pub measured: &'a SignupMeasures,
    pub plan: &'a Plan,
    pub cleanup: &'a [Cleanup],
    pub cleanup_timeout: Duration,
    pub artifact: &'a Artifact,
    /// This build against a baseline build, when one was given.
    pub before_after: Option<&'a crate::compare::BeforeAfter>,
    pub smtp_sink: &'a str,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// What `--signup-only` reports.
pub struct SignupInputs<'a> {
    pub machine: &'a Machine,
    pub load_after: String,
    pub plan: &'a Plan,
    pub measured: &'a SignupMeasures,
}

/// The sign-up parts alone (`--signup-only`): their rows of the summary, sections 2 to 4, and
/// what stands in the way of their targets.
pub fn signup_sections(i: &SignupInputs) -> String {
    let m = i.machine;
    let mut s = String::new();
    let lv = signup::levels(&i.measured.load);
    let _ = writeln!(
        s,
        "# Sign-up benchmarks (`bench --signup-only`)\n\nOn {} at commit `{}`, {} CPUs; load \
         average {} before, {} after; other processes took up to {:.0}% of the machine's CPU \
         during the load runs.\n",
        m.date,
        m.commit,
        m.nproc,
        m.load_before,
        i.load_after,
        lv.iter().map(|l| l.foreign_share).fold(0.0, f64::max) * 100.0
    );
    let _ = writeln!(s, "| measure | portal | floor | ratio | target | |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    signup::summary_rows(&mut s, &lv, &i.measured.counts);
    mail::summary_rows(&mut s, &i.measured.answers, &i.measured.sweep);
    let _ = writeln!(s);
    signup_body(&mut s, i.measured, i.plan, &lv);
    let _ = writeln!(s, "## What stands in the way of the targets not met\n");
    if !signup_shortfalls(&mut s, &lv, m.nproc, i.measured) {
        let _ = writeln!(s, "None: every target above is met in this run.");
    }
    s
}

/// Sections 2 to 4.
fn signup_body(s: &mut String, m: &SignupMeasures, plan: &Plan, lv: &[signup::Level]) {
    signup::section(s, lv, &m.counts, &m.load, plan);
    mail::answers_section(s, &m.answers);
    mail::sweep_section(s, &m.sweep);
}

/// Lines for the sign-up targets not met; whether there was any.
fn signup_shortfalls(
    s: &mut String,
    lv: &[signup::Level],
    nproc: usize,
    m: &SignupMeasures,
) -> bool {
    let mut any = false;
    for l in lv.iter().filter(|l| l.ratio < signup::SIGNUP_TARGET) {
        any = true;
        signup::shortfall(s, l, nproc);
    }
    any |= mail::shortfalls(s, &m.answers);
    any
}

pub fn render(i: &Inputs) -> String {
    let m = i.machine;
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by the benchmark command (`bench/`) on {}, from commit `{}`{}. Every figure \
         comes from this one run on this one machine; ratios compare the two sides measured \
         alternately in the same run.\n",
        m.date,
        m.commit,
        if i.quick {
            " — **a `--quick` run: small sizes, a sanity check, not the figures to quote**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "Reproduce: `./dev bench` (builds `handler`, `hello-floor`, `bench` and the cleanup \
         benchmark in release, then runs `target/release/bench`, which writes this file; \
         `./dev bench --quick` for a sanity check with small sizes in a few minutes).\n"
    );

    // --- machine -------------------------------------------------------------------------
    let lv = signup::levels(&i.measured.load);
    let foreign_max = lv.iter().map(|l| l.foreign_share).fold(0.0, f64::max);
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| CPUs (nproc) | {} |", m.nproc);
    let _ = writeln!(s, "| CPU model | {} |", m.cpu_model);
    let _ = writeln!(s, "| memory | {} |", m.memory);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| rustc | {} |", m.rustc);
    let _ = writeln!(s, "| Azurite | {} (table service, in memory) |", m.azurite);
    let _ = writeln!(s, "| aiosmtpd | {} (`{}`) |", m.aiosmtpd, i.smtp_sink);
    let _ = writeln!(
        s,
        "| load average (1/5/15 min) | {} before, {} after |",
        m.load_before, i.load_after
    );
    let _ = writeln!(
        s,
        "| CPU used by other processes during the load runs | up to {:.0}% of the machine |\n",
        foreign_max * 100.0
    );
    let _ = writeln!(
        s,
        "The machine is shared: other engineers' builds and tests run on its {} cores (load \
         average {} when this run began). During the timed load runs they took up to {:.0}% of \
         its CPU (the row above: `/proc/stat` minus the processes of this benchmark); the \
         cold-start, counting and cleanup phases are not covered by that figure. Both sides of \
         every ratio were measured alternately under the same conditions, which is why the \
         ratios, not the absolute figures, are the results.\n",
        m.nproc,
        m.load_before,
        foreign_max * 100.0
    );

    // --- summary -------------------------------------------------------------------------
    let cold = i.cold;
    let ch = load::percentile(&cold.handler, 50.0);
    let cf = load::percentile(&cold.floor, 50.0);
    let cold_ratio = ch.as_secs_f64() / cf.as_secs_f64().max(1e-9);
    let c = &i.measured.counts;
    let _ = writeln!(s, "## Summary\n");
    let _ = writeln!(s, "| measure | portal | floor | ratio | target | |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| cold start to first `GET /` answer (median of {}) | {} | {} (hello-floor) | {:.2} | ≤ 1.5 and < 20 ms | {} |",
        cold.handler.len(),
        ms(ch),
        ms(cf),
        cold_ratio,
        met(cold_ratio <= 1.5 && ch < Duration::from_millis(20))
    );
    signup::summary_rows(&mut s, &lv, c);
    mail::summary_rows(&mut s, &i.measured.answers, &i.measured.sweep);
    let idle = i.measured.load.idle_rss_kib;
    let loaded = lv.iter().map(|l| l.peak_rss_kib).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "| peak RSS, idle | {} | {} (hello-floor) | {:.2} | < 30 MB | {} |",
        mib(idle),
        mib(cold.floor_rss_kib),
        idle as f64 / cold.floor_rss_kib.max(1) as f64,
        met(idle > 0 && idle * 1024 < 30_000_000)
    );
    let _ = writeln!(
        s,
        "| peak RSS, under the load below | {} | | | < 30 MB | {} |",
        mib(loaded),
        met(loaded > 0 && loaded * 1024 < 30_000_000)
    );
    let _ = writeln!(
        s,
        "| release binary, stripped | {:.1} MiB | {:.1} MiB (hello-floor) | {:.2} | (reported) | {} |",
        i.artifact.handler_bytes as f64 / 1048576.0,
        i.artifact.floor_bytes as f64 / 1048576.0,
        i.artifact.handler_bytes as f64 / i.artifact.floor_bytes.max(1) as f64,
        match i.artifact.handler_symbols {
            Some(false) => "stripped",
            Some(true) => "**has symbols**",
            None => "?",
        }
    );
    let mut cleanup_rows = 0;
    for c in i.cleanup {
        let Cleanup::Ran { output, .. } = c else {
            continue;
        };
        let Some(calls) = cleanup_calls(output) else {
            continue;
        };
        cleanup_rows += 1;
        let ratio = calls.made as f64 / calls.floor.max(1) as f64;
        let _ = writeln!(
            s,
            "| cleanup of {} guests: Graph calls ([section 6](#6-cleanup-at-scale)) | {} | {} ({}) | {ratio:.3} | ≤ 1.05 | {} |",
            calls.guests,
            calls.made,
            calls.floor,
            calls.floor_terms,
            if ratio <= 1.05 { "met" } else { "**not met**" }
        );
        let guests = calls.guests;
        if let Some((rate, quota)) = cleanup_rates(output) {
            let _ = writeln!(
                s,
                "| cleanup of {guests} guests: deletions/s while acting | {rate:.0} | {quota:.0} (the write quota) | {:.2} | bounded by the quota (≥ 0.9) | {} |",
                rate / quota.max(1e-9),
                if rate >= 0.9 * quota { "met" } else { "**not met**" }
            );
        }
    }
    if cleanup_rows == 0 {
        let _ = writeln!(
            s,
            "| cleanup at scale | see [section 6](#6-cleanup-at-scale) | | | calls ≤ 1.05 × floor | not measured |"
        );
    }
    let _ = writeln!(s);

    // --- before and after ----------------------------------------------------------------
    if let Some(before_after) = i.before_after {
        s.push_str(&crate::compare::section(
            before_after,
            "measured in the same run as the rest of this report",
        ));
    }

    // --- 1. cold start -------------------------------------------------------------------
    let _ = writeln!(s, "## 1. Cold start\n");
    let _ = writeln!(
        s,
        "From `exec` of the release binary to the first byte of the answer to `GET /` — what the \
         Functions host waits for — polling with a connect attempt every 100 µs. `handler` gets \
         the same valid settings the tests give it (Azurite, aiosmtpd, the Graph simulator); \
         `hello-floor` is a warp hello-world with the same warp (0.4, `server`), tokio runtime \
         and release profile. {} starts of each, interleaved (one unmeasured start of each \
         first), once the stand-ins have settled after their start (the machine under 10% \
         busy for half a second, waiting at most 15 s).\n",
        cold.handler.len()
    );
    let _ = writeln!(s, "| | median | p90 | min | max |\n|---|---|---|---|---|");
    for (name, v) in [("handler", &cold.handler), ("hello-floor", &cold.floor)] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} |",
            ms(load::percentile(v, 50.0)),
            ms(load::percentile(v, 90.0)),
            ms(v.iter().min().copied().unwrap_or_default()),
            ms(v.iter().max().copied().unwrap_or_default())
        );
    }
    let load_median = load::percentile(&cold.handler_load, 50.0);
    let _ = writeln!(
        s,
        "| `handler --version` (exec to exit) | {} | {} | {} | {} |",
        ms(load_median),
        ms(load::percentile(&cold.handler_load, 90.0)),
        ms(cold.handler_load.iter().min().copied().unwrap_or_default()),
        ms(cold.handler_load.iter().max().copied().unwrap_or_default())
    );
    let _ = writeln!(
        s,
        "\nThe last row is the cost of loading the handler's {:.1} MiB binary at all — exec, \
         mapping, the dynamic loader's relocations, the page faults of the first pages it \
         touches — with none of the portal's start-up (no runtime, no settings, no socket). Of \
         the handler's median {}, {} is that load (hello-floor's binary is {:.1} MiB) and the \
         remaining {} is what the portal does before its first answer: the tokio runtime, \
         logging, reading and checking the settings, binding the port (the adapters are built \
         once the first probe has its answer, by a task on the same runtime; the command-line \
         parser is not built when the host starts the handler without arguments).\n",
        i.artifact.handler_bytes as f64 / 1048576.0,
        ms(ch),
        ms(load_median),
        i.artifact.floor_bytes as f64 / 1048576.0,
        ms(ch.saturating_sub(load_median))
    );
    let _ = writeln!(
        s,
        "Ratio of medians: **{:.2}** (p90: {:.2}). Before its first answer the handler made \
         {} Table Storage calls and {} Graph calls (counted by the proxy and the simulator in \
         section 2): settings are parsed and the adapters built without I/O.\n",
        cold_ratio,
        load::percentile(&cold.handler, 90.0).as_secs_f64()
            / load::percentile(&cold.floor, 90.0).as_secs_f64().max(1e-9),
        c.before_ready_storage,
        c.before_ready_graph
    );

    // --- 2 to 4. sign-ups, the answer's clock, the sweep -------------------------------
    signup_body(&mut s, i.measured, i.plan, &lv);

    // --- 5. memory -----------------------------------------------------------------------
    let _ = writeln!(s, "## 5. Memory\n");
    let _ = writeln!(
        s,
        "Peak resident set (`VmHWM` from `/proc/PID/status`) of the handler: idle (0.5 s after \
         its first answer, before any sign-up) **{}**; after each timed run at the given \
         concurrency (the peak of the process's life so far):\n",
        mib(idle)
    );
    let _ = writeln!(s, "| concurrency | peak RSS |\n|---|---|");
    for l in &lv {
        let _ = writeln!(s, "| {} | {} |", l.c, mib(l.peak_rss_kib));
    }
    let _ = writeln!(
        s,
        "\nFloor: hello-floor's peak RSS right after its first answer, {}; the handler's at the \
         same moment in the cold-start runs, {}.\n",
        mib(cold.floor_rss_kib),
        mib(cold.handler_rss_kib)
    );

    // --- 6. cleanup ----------------------------------------------------------------------
    let _ = writeln!(s, "## 6. Cleanup at scale\n");
    let _ = writeln!(
        s,
        "The cleanup benchmark of issue 5 (`benches/cleanup.rs`, `cargo bench --bench cleanup`), \
         run by this command with its own Azurite and Graph simulator after the stand-ins \
         above were stopped: first at a size that finishes, then at the issue's scale (its \
         defaults: 100,000 guests, 50 ms per Graph call, the write throttle on) for at most {} \
         s. Its reports, verbatim — the Graph calls against their floor (ceil(N/999) list \
         pages, ceil(N/300) re-check batches: every guest is read again right before it is \
         removed, 15 to an `id in` query and 20 queries to a `$batch`; and ceil(N/20) batches \
         of removals), the wall time against the write quota, and the resume:\n",
        i.cleanup_timeout.as_secs()
    );
    for c in i.cleanup {
        match c {
            Cleanup::Ran {
                command,
                status,
                wall,
                output,
            } => {
                let status = if status.contains("exit status: 0") {
                    status.clone()
                } else {
                    format!("**{status}**")
                };
                let _ = writeln!(
                    s,
                    "`{command}` ({status}, {:.1} s wall including its own seeding):\n",
                    wall.as_secs_f64()
                );
                let _ = writeln!(s, "```\n{}\n```\n", output.trim_end());
            }
            Cleanup::Missing(why) | Cleanup::Skipped(why) => {
                let _ = writeln!(s, "Not measured in this run: {why}.\n");
            }
            Cleanup::Pending => {
                let _ = writeln!(
                    s,
                    "Not measured yet: the cleanup benchmark was still running when this was \
                     written (the command rewrites this file when it ends).\n"
                );
            }
        }
    }

    // --- 7. artifact ---------------------------------------------------------------------
    let _ = writeln!(s, "## 7. Artifact\n");
    let _ = writeln!(
        s,
        "`target/release/handler`: {} bytes ({:.1} MiB), {} (the workspace's `[profile.release]` \
         has `strip = true`, `lto = \"thin\"`, `codegen-units = 4`). `hello-floor` in the same \
         profile: {} bytes.\n",
        i.artifact.handler_bytes,
        i.artifact.handler_bytes as f64 / 1048576.0,
        match i.artifact.handler_symbols {
            Some(false) => "stripped (no `.symtab`, no `.debug_*` sections)",
            Some(true) => "NOT stripped",
            None => "strip state unknown",
        },
        i.artifact.floor_bytes
    );

    // --- what stands in the way ------------------------------------------------------------
    let _ = writeln!(s, "## What stands in the way of the targets not met\n");
    let mut any = false;
    if !(cold_ratio <= 1.5 && ch < Duration::from_millis(20)) {
        any = true;
        let _ =
            writeln!(
            s,
            "- **Cold start ratio {cold_ratio:.2} (target ≤ 1.5)**; the absolute target (< 20 ms) \
             is {}. Loading the {:.1} MiB binary alone (`handler --version`, exec to exit) takes \
             {}, {:.2} × hello-floor's whole cold start. The portal's own start-up before its \
             answer is the remaining {} and does no I/O (0 storage and 0 Graph calls before the \
             answer). Most of the load is the dynamic loader's relocation of the binary's 0.7 MiB of \
             `.data.rel.ro` (vtables and tables of pointers, one copy-on-write page fault per \
             4 KiB): a non-PIE link of the same code started about 0.6 ms sooner when tried, but \
             gives up address-space randomisation of the executable, which this portal keeps. \
             Packing the relocations (`-z pack-relative-relocs`) shrank the file by 1.2 MiB and \
             changed nothing measurable. A smaller binary would help: it links two TLS stacks, \
             two generations of the Azure SDK core and two reqwest versions, which the SDKs \
             pin.",
            if ch < Duration::from_millis(20) { "met" } else { "**not met**" },
            i.artifact.handler_bytes as f64 / 1048576.0,
            ms(load_median),
            load_median.as_secs_f64() / cf.as_secs_f64().max(1e-9),
            ms(ch.saturating_sub(load_median)),
        );
    }
    any |= signup_shortfalls(&mut s, &lv, i.machine.nproc, i.measured);
    for c in i.cleanup {
        let Cleanup::Ran {
            command,
            status,
            output,
            ..
        } = c
        else {
            continue;
        };
        if let Some((rate, quota)) = cleanup_rates(output) {
            if rate < 0.9 * quota {
                any = true;
                let _ = writeln!(
                    s,
                    "- **Cleanup (`{command}`): {rate:.0} deletions/s while acting, against the \
                     {quota:.0}/s its write quota allows**, so that part of its wall time is not \
                     bounded by Graph's quota. Section 6 shows where it went: the deletions per \
                     30 s, and Azurite's CPU time during the runs (Azurite answers from one \
                     Node.js thread, and its in-memory tables update their indexes in time \
                     linear in the table's size, so each write costs more as the tables grow)."
                );
            }
        } else if !status.contains("exit status: 0") {
            any = true;
            let _ = writeln!(
                s,
                "- **Cleanup (`{command}`) did not finish ({status})**: what it printed by \
                 then is in section 6."
            );
        }
    }
    if !any {
        let _ = writeln!(s, "None: every target above is met in this run.");
    }
    let _ = writeln!(
        s,
        "\n## What these benchmarks changed\n\n\
         Found by this command and fixed in the portal (ratios from `--quick` runs during the \
         work, before → after):\n\n\
         - **Every mail waited ~40 ms for a delayed ACK.** lettre writes a message and its \
         `\\r\\n.\\r\\n` terminator as two writes without `TCP_NODELAY`, so the terminator waited \
         for the server's delayed ACK; a sign-up at concurrency 1 took ~60 ms instead of ~12 \
         (ratio to the floor 0.15 → 0.58 at concurrency 1, 0.23 → 0.42 at 8). Fixed by carrying \
         lettre's own merged-but-unreleased fix (PR #1159) in `third_party/lettre`; see \
         `third_party/README.md`.\n\
         - **The Azure SDK's HTTP client loaded every system CA certificate before the first \
         answer** (one file read per certificate, in `Portal::new`, when the Graph credential was \
         built). The credential now gets a transport that builds the SDK's client on the first \
         token request (`adapters/identity.rs`). Cold start ratio 3.1 → 2.0.\n\
         - **The rest of the adapters and the command-line parser were built before the first \
         answer.** The server now builds the adapters once the first readiness probe is \
         answered (`functions::LazyPortal::warm`), and skips the parser when started without \
         arguments, as the host starts it. Cold start ratio about 1.45 → 1.25 \
         (`bench --cold-start-only`, interleaved, several runs).\n\
         - **The cleanup did not finish 100,000 guests in 20 minutes**; 10,000 took 80 s (125 \
         deletions/s against the quota's 600). All guests were one Table Storage partition \
         (every update of every instance on one partition server; in Azurite every point write \
         scanned the partition), the audit trail of a day another, each deletion cost two \
         round trips after its `$batch`, and the table writes of a wave waited for its Graph \
         calls and the next wave for them. Now the guests are spread over 256 partitions by \
         id (read as 16 key ranges at once) and the plan is carried out in id order, so a \
         wave's row updates go as one compare-and-swap transaction per partition (one by one \
         only when a row changed); a day's audit entries are spread over 16 partitions and a \
         wave's written as one transaction; and a wave's records are written while the next \
         wave is with Graph. Section 4 has the figures.\n\n\
         - **Verification and approval read what they had just written.** Setting up access read \
         back the request its caller had just saved, looked the guest row up before writing it, \
         and the approval page read the request again to show its summary: 14 Table Storage \
         round trips per `auto` verification and 15 per approval before. Now the caller hands \
         over the request with its new ETag (`access::set_up_stored`), the guest row is \
         inserted (\"already there\" counts as done) and the decision returns the request it \
         wrote; section 2 has the counts now.\n\
         - **The sign-up's answer waited for the mail server, and its clock told the policy.** \
         An admitted address's answer took 13.5 ms and an unadmitted one's 7.5 ms (209 ms \
         against 32 ms with a relay taking 150 ms per message), and sign-ups at concurrency 1 \
         were 0.60 of the storage floor, the answer waiting for SMTP's 250. Now every valid \
         submission gets the same answer after the same work (the limits and the submission \
         recorded), the policies decide after it, and every mail goes through an outbox \
         written with the change that causes it; sections 2 to 4 have the figures.\n\n\
         Looked at and found already at the floor: Table Storage round trips per sign-up (7 \
         before the answer and 4 after it, policies cached), Graph calls per verification and approval (one invitation, one \
         `$batch`), connection reuse (one pooled connection per service under sequential \
         load; no client built per request). Tried and dropped for want of a measurable \
         effect: asking Table Storage for minimal instead of full metadata."
    );
    s
}

/// From the cleanup benchmark's report: the deletions per second while it was acting and the
/// rate its write quota allows (`acting: N deletions recorded over S s (R/s; the write quota
/// allows Q/s)`).
fn cleanup_rates(output: &str) -> Option<(f64, f64)> {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("acting:"))?;
    let inside = line.split_once('(')?.1;
    let rate: f64 = inside.split('/').next()?.trim().parse().ok()?;
    let quota: f64 = inside
        .rsplit_once("allows ")?
        .1
        .split('/')
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some((rate, quota))
}

/// What the cleanup benchmark's report says of its Graph calls.
#[derive(Debug, PartialEq, Eq)]
struct CleanupCalls {
    guests: u64,
    made: u64,
    floor: u64,
    /// How the floor is made up, as the report states it (`ceil(N/999) + ...`).
    floor_terms: String,
}

/// From the cleanup benchmark's report: its size, the Graph calls it made and their floor
/// (`bench-cleanup: N guests, ...`, `Graph calls: ... = M (floor TERMS = ... = F); ratio R`).
fn cleanup_calls(output: &str) -> Option<CleanupCalls> {
    let guests = output
        .lines()
        .find_map(|l| l.strip_prefix("bench-cleanup: "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("Graph calls:"))?;
    let (made, rest) = line.split_once(" = ")?.1.split_once(" (floor ")?;
    // rest: "ceil(N/999) + ceil(N/300) + ceil(N/20) = 11 + 34 + 500 = 545); ratio 1.018"
    let (terms, sums) = rest.split_once(" = ")?;
    let floor = sums.split_once(");")?.0.rsplit(" = ").next()?;
    Some(CleanupCalls {
        guests,
        made: made.trim().parse().ok()?,
        floor: floor.trim().parse().ok()?,
        floor_terms: terms.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_calls_and_their_floor() {
        let out = "bench-cleanup: 10000 guests, Graph latency 50 ms per call\n\
                   Graph calls:           11 list pages + 34 re-check batches + 509 removal batches = 554 (floor ceil(N/999) + ceil(N/300) + ceil(N/20) = 11 + 34 + 500 = 545); ratio 1.017\n";
        assert_eq!(
            super::cleanup_calls(out),
            Some(super::CleanupCalls {
                guests: 10000,
                made: 554,
                floor: 545,
                floor_terms: "ceil(N/999) + ceil(N/300) + ceil(N/20)".into()
            })
        );
        assert_eq!(super::cleanup_calls("bench-cleanup: 5 guests"), None);
    }

    #[test]
    fn reads_the_acting_rate_and_the_quota() {
        let out = "wall time:             18.5 s over 2 runs (539 deletes/s)\n\
                   acting:                10000 deletions recorded over 17.2 s (580/s; the write quota allows 600/s)\n";
        assert_eq!(super::cleanup_rates(out), Some((580.0, 600.0)));
        assert_eq!(super::cleanup_rates("wall time: 1 s (5 deletes/s)"), None);
    }
}
