//! `bench`: every figure the portal is judged by, next to its floor, from one run on one
//! machine, written to `BENCHMARKS.md`.
//!
//! ```sh
//! ./dev bench            # builds in release, runs everything (minutes), writes BENCHMARKS.md
//! ./dev bench --quick    # small sizes, a sanity check in a few minutes
//! ```
//!
//! 1. Cold start of the release `handler` vs `hello-floor` (a warp hello-world).
//! 2. Sign-up under load vs the minimum Table Storage round trips and the mail, done directly
//!    (see `floor.rs`), plus round trips per sign-up (before and after the answer, for each
//!    kind of submission), per verification and per approval, counted by a proxy in front of
//!    Azurite and by the Graph simulator.
//! 3. The answer's clock (`answers.rs`): its time with an SMTP server that takes 150 ms per
//!    message against one that accepts at once, for admitted, denied, unknown-domain and
//!    open-request submissions interleaved; and the time from the answer to the mail's
//!    acceptance.
//! 4. The timer's sweep of a backlog of pending mail (`sweep.rs`), against its floor.
//! 5. Peak RSS idle and under load.
//! 6. Cleanup at scale: the figures of the cleanup benchmark (`cargo bench --bench cleanup`).
//! 7. The release binary's size.
//!
//! `--signup-only` measures 2 to 4 alone and prints their sections (or writes them to
//! `--out`), leaving BENCHMARKS.md as it is.
//!
//! For comparing two versions or configurations with the same bench: `BENCH_HANDLER=path`
//! runs another build of the handler, `BENCH_HANDLER_ENV="NAME=value,..."` adds settings.
//! `--baseline-handler PATH` measures a second build (say, of the commit a change forked from)
//! alongside, interleaved, and adds a "Before and after" section (size, cold start, sign-ups/s,
//! each within 5% or not); with `--compare-only` only that is measured, and only that section
//! of the report is rewritten.
//!
//! Noisy machines are handled by medians of repeated runs and by ratios taken within one run
//! (the two sides alternate); CPU time of every process involved, and of everything else on
//! the machine, is recorded so a reader can tell a slow portal from a busy machine.

mod answers;
mod coldstart;
mod compare;
mod counts;
mod floor;
mod load;
mod machine;
mod mailfloor;
mod platform;
mod proxy;
mod report;
mod signup;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub struct Options {
    pub quick: bool,
    pub out: PathBuf,
    /// `--out` was given.
    pub out_given: bool,
    /// Only the sign-up parts (load, round trips, the answer's clock, the sweep), printed.
    pub signup_only: bool,
    pub skip_cleanup: bool,
    pub cleanup_args: Option<Vec<String>>,
    pub cleanup_timeout: Duration,
    /// Only the cold start, printed, no report: for comparing builds (with `BENCH_HANDLER`).
    pub cold_start_only: bool,
    /// Another build of the handler to compare this one with, in the same run.
    pub baseline: Option<PathBuf>,
    /// What the baseline is, for the report (a commit, a branch).
    pub baseline_label: Option<String>,
    /// Measure only the comparison with the baseline, and rewrite only its section.
    pub compare_only: bool,
    /// Sign-up rounds per concurrency instead of the plan's (more for a noisy machine).
    pub rounds: Option<usize>,
}

fn to_args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench [--quick] [--out FILE] [--skip-cleanup] [--cleanup-args \"ARGS\"] [--cleanup-timeout SECS]\n\
         \n  --quick          small sizes, a sanity check in under a minute\
         \n  --out FILE       where to write the report (default BENCHMARKS.md)\
         \n  --skip-cleanup   do not run the cleanup benchmark\
         \n  --cleanup-args   arguments for `cargo bench --bench cleanup --` instead of the defaults\
         \n  --cleanup-timeout SECS  stop the cleanup benchmark after this long (default 1200)\
         \n  --cold-start-only  measure the cold start only and print it (no report)\
         \n  --baseline-handler PATH  also measure this build of the handler (e.g. of the commit\
         \n                   a change forked from), interleaved, and report before and after\
         \n  --baseline-label TEXT  what the baseline is, for the report (e.g. a commit)\
         \n  --compare-only   with --baseline-handler: measure only size, cold start and sign-ups\
         \n                   of both builds, and rewrite only the report's \"Before and after\"\
         \n  --rounds N       sign-up rounds per concurrency (default 5, 1 with --quick)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut opts = Options {
        quick: false,
        out: PathBuf::from("BENCHMARKS.md"),
        out_given: false,
        signup_only: false,
        skip_cleanup: false,
        cleanup_args: None,
        cleanup_timeout: Duration::from_secs(20 * 60),
        cold_start_only: false,
        baseline: None,
        baseline_label: None,
        compare_only: false,
        rounds: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--skip-cleanup" => opts.skip_cleanup = true,
            "--cold-start-only" => opts.cold_start_only = true,
            "--compare-only" => opts.compare_only = true,
            "--signup-only" => opts.signup_only = true,
            "--baseline-handler" => match args.next() {
                Some(v) => opts.baseline = Some(PathBuf::from(v)),
                None => return usage(),
            },
            "--rounds" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => opts.rounds = Some(n),
                _ => return usage(),
            },
            "--baseline-label" => match args.next() {
                Some(v) => opts.baseline_label = Some(v),
                None => return usage(),
            },
            "--out" => match args.next() {
                Some(v) => {
                    opts.out = PathBuf::from(v);
                    opts.out_given = true;
                }
                None => return usage(),
            },
            "--cleanup-timeout" => match args.next().and_then(|v| v.parse().ok()) {
                Some(secs) => opts.cleanup_timeout = Duration::from_secs(secs),
                None => return usage(),
            },
            "--cleanup-args" => match args.next() {
                Some(v) => {
                    opts.cleanup_args = Some(v.split_whitespace().map(str::to_string).collect())
                }
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    if opts.compare_only && opts.baseline.is_none() {
        eprintln!("bench: --compare-only needs --baseline-handler");
        return usage();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(run(opts)) {
        Ok(path) => {
            if !path.as_os_str().is_empty() {
                eprintln!("bench: wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The sign-up parts of a run: round trips, load against the floor, the answer's clock and
/// the sweep.
pub struct SignupMeasures {
    pub counts: counts::Counts,
    pub load: signup::LoadOutcome,
    pub answers: answers::Answers,
    pub sweep: sweep::Sweep,
}

async fn signup_parts(
    stack: &platform::Stack,
    handler: &std::path::Path,
    baseline: Option<&std::path::Path>,
    plan: &Plan,
) -> Result<SignupMeasures, String> {
    eprintln!("bench: counting round trips");
    let counts = counts::run(stack, handler, plan.count_signups, plan.count_flows).await?;
    let builds = signup::Builds { handler, baseline };
    let load = signup::run(stack, builds, &plan.load).await?;
    let answers = answers::run(stack, handler, plan.answers_per_kind).await?;
    let sweep = sweep::run(stack, handler, plan.sweep_mails).await?;
    Ok(SignupMeasures {
        counts,
        load,
        answers,
        sweep,
    })
}

/// Sizes of one run.
pub struct Plan {
    pub cold_starts: usize,
    pub load: signup::LoadPlan,
    pub count_signups: usize,
    pub count_flows: usize,
    /// Sign-ups of each kind to each of the two handlers in the answer's clock.
    pub answers_per_kind: usize,
    /// Pending mails in the sweep's backlog.
    pub sweep_mails: usize,
}

fn plan(quick: bool) -> Plan {
    if quick {
        Plan {
            cold_starts: 10,
            load: signup::LoadPlan {
                concurrencies: vec![1, 8],
                rounds: 1,
                requests: |c| if c == 1 { 40 } else { 20 * c },
                max_time: Duration::from_secs(10),
            },
            count_signups: 10,
            count_flows: 3,
            answers_per_kind: 30,
            sweep_mails: 100,
        }
    } else {
        Plan {
            cold_starts: 100,
            load: signup::LoadPlan {
                concurrencies: vec![1, 8, 32],
                rounds: 5,
                requests: |c| match c {
                    1 => 400,
                    c if c <= 8 => 1200,
                    _ => 2000,
                },
                max_time: Duration::from_secs(60),
            },
            count_signups: 50,
            count_flows: 20,
            answers_per_kind: 250,
            sweep_mails: 1000,
        }
    }
}

async fn run(opts: Options) -> Result<PathBuf, String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the bench crate sits in the repository")?
        .to_path_buf();
    let bin_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .ok_or("the bench binary has a directory")?
        .to_path_buf();
    // BENCH_HANDLER: another build of the handler, for comparing two versions with one bench.
    let handler = std::env::var_os("BENCH_HANDLER")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir.join("handler"));
    let hello = bin_dir.join("hello-floor");
    if let Some(baseline) = &opts.baseline {
        if !baseline.exists() {
            return Err(format!(
                "{} is missing: build the baseline in release first (see README, Benchmarks)",
                baseline.display()
            ));
        }
    }
    for b in [&handler, &hello] {
        if !b.exists() {
            return Err(format!(
                "{} is missing: build with `cargo build --release -p b2b-signup -p bench` (./dev bench does)",
                b.display()
            ));
        }
    }
    let mut plan = plan(opts.quick);
    if let Some(rounds) = opts.rounds {
        plan.load.rounds = rounds;
    }
    let machine = machine::describe(&repo);
    eprintln!("bench: starting Azurite, aiosmtpd and the Graph simulator");
    let stack = platform::Stack::start(&repo)?;
    // Azurite (Node.js) and aiosmtpd keep a core busy for a while after their ports open
    // (compiling, loading); cold starts measured then would measure them.
    machine::settle(Duration::from_secs(15));

    if opts.signup_only {
        let measured = signup_parts(&stack, &handler, None, &plan).await?;
        let text = report::signup_sections(&report::SignupInputs {
            machine: &machine,
            load_after: machine::load_average(),
            plan: &plan,
            measured: &measured,
        });
        if opts.out_given {
            let out = if opts.out.is_absolute() {
                opts.out.clone()
            } else {
                repo.join(&opts.out)
            };
            std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
            return Ok(out);
        }
        println!("{text}");
        return Ok(PathBuf::new());
    }

    eprintln!("bench: cold start, {} starts each", plan.cold_starts);
    let env = stack.handler_env(stack.table_port, "coldstart");
    let cold = {
        let (h, f, b, e, n) = (
            handler.clone(),
            hello.clone(),
            opts.baseline.clone(),
            env.clone(),
            plan.cold_starts,
        );
        tokio::task::spawn_blocking(move || coldstart::run(&h, &f, b.as_deref(), &e, n))
            .await
            .map_err(|e| e.to_string())??
    };
    let out = if opts.out.is_absolute() {
        opts.out.clone()
    } else {
        repo.join(&opts.out)
    };
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let label = || {
        opts.baseline_label.clone().unwrap_or_else(|| {
            format!(
                "`{}`",
                opts.baseline.as_deref().unwrap_or(&handler).display()
            )
        })
    };

    if opts.cold_start_only {
        let median = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1000.0
        };
        let (h, f) = (median(&cold.handler), median(&cold.floor));
        println!(
            "cold start: handler {h:.2} ms, hello-floor {f:.2} ms, ratio {:.2}; handler --version {:.2} ms",
            h / f,
            median(&cold.handler_load)
        );
        if !cold.baseline.is_empty() {
            let b = median(&cold.baseline);
            println!(
                "cold start: baseline {b:.2} ms; handler / baseline {:.3}",
                h / b
            );
        }
        return Ok(PathBuf::new());
    }

    if let (true, Some(baseline)) = (opts.compare_only, &opts.baseline) {
        let pairs = signup::compare(&stack, &handler, baseline, &plan.load).await?;
        let before_after =
            compare::BeforeAfter::new(label(), (size(baseline), size(&handler)), &cold, &pairs);
        let origin = format!(
            "measured by `bench --compare-only` on {} at commit `{}` (load average {} when it \
             began); the other sections of this file come from the run named at its top",
            machine.date, machine.commit, machine.load_before
        );
        let report = std::fs::read_to_string(&out).unwrap_or_default();
        let text = compare::splice(&report, &compare::section(&before_after, &origin));
        std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
        return Ok(out);
    }

    let measured = signup_parts(&stack, &handler, opts.baseline.as_deref(), &plan).await?;
    let load = &measured.load;

    let artifact = report::Artifact::measure(&handler, &hello);
    let before_after = opts.baseline.as_deref().and_then(|baseline| {
        compare::BeforeAfter::from_rounds(
            label(),
            (size(baseline), size(&handler)),
            &cold,
            &load.rounds,
        )
    });
    let write = |cleanup: &[report::Cleanup]| -> Result<(), String> {
        let text = report::render(&report::Inputs {
            quick: opts.quick,
            machine: &machine,
            load_after: machine::load_average(),
            cold: &cold,
            measured: &measured,
            plan: &plan,
            cleanup,
            cleanup_timeout: opts.cleanup_timeout,
            artifact: &artifact,
            before_after: before_after.as_ref(),
            smtp_sink: "smtp_sink.Recorder",
        });
        std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))
    };
    // Written once before the cleanup (which takes minutes) so the figures above are kept
    // whatever happens to it, and again with its figures.
    write(&[report::Cleanup::Pending])?;
    // The cleanup brings its own Azurite and simulator: stop ours first (keeping the work
    // directory for the cleanup's output).
    let work = stack.work.clone();
    drop(stack);
    let _ = std::fs::create_dir_all(&work);
    let mut cleanups = Vec::new();
    if opts.skip_cleanup {
        cleanups.push(report::Cleanup::Skipped("--skip-cleanup".into()));
    } else {
        // A size that finishes, then the issue's scale (the benchmark's defaults) within the
        // time limit; `--cleanup-args` runs just the given one.
        let runs: Vec<Vec<String>> = match (&opts.cleanup_args, opts.quick) {
            (Some(a), _) => vec![a.clone()],
            (None, true) => vec![to_args(&["--guests", "2000", "--interrupt-after", "1"])],
            (None, false) => vec![to_args(&["--guests", "10000"]), Vec::new()],
        };
        for args in runs {
            let (repo, dir, timeout) = (repo.clone(), work.clone(), opts.cleanup_timeout);
            let run = tokio::task::spawn_blocking(move || {
                report::run_cleanup(&repo, &dir, &args, timeout)
            })
            .await
            .map_err(|e| e.to_string())?;
            cleanups.push(run);
            write(&cleanups)?;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    write(&cleanups)?;
    Ok(out)
}
