//! The answer's clock: what a partner with a stopwatch could learn from `POST /api/signup`.
//!
//! Two handlers run side by side on the same Azurite, each with its own tables and the same
//! policies (one admitting a domain and its subdomains, one denying another): one mails
//! through an SMTP server that accepts at once, the other through one that takes 150 ms per
//! message, as cloud relays do. Sign-ups of the four kinds ([`Submission`]: admitted, denied,
//! unknown domain, open request) go to both, one at a time, in one random order, so whatever
//! the machine does meanwhile falls on every kind and both servers alike. Every sign-up has
//! its own client IP and, but for the open requests, its own address, so no rate limit
//! counter is shared between kinds (the limits are set out of reach, see `platform`); the
//! open requests reuse addresses signed up (and mailed) before the timed run, on domains of
//! their own so the per-domain counters see as many sign-ups as every other kind's.
//!
//! The SMTP servers record whom each message was for and when they accepted it, so each
//! mailed sign-up's time from its answer to its mail's acceptance is measured too.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::floor::SignupInput;
use crate::load;
use crate::platform::{self, set_env, Sink, Stack};
use crate::signup::{self, unix_ns, Cpu, Submission};

/// The SMTP server a handler mails through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smtp {
    Instant,
    Slow,
}

impl Smtp {
    pub const BOTH: [Smtp; 2] = [Smtp::Instant, Smtp::Slow];

    pub fn name(self) -> String {
        match self {
            Smtp::Instant => "instant SMTP".into(),
            Smtp::Slow => format!("SMTP taking {} ms", platform::SLOW_SMTP_MS),
        }
    }

    fn sink(self, stack: &Stack) -> &Sink {
        match self {
            Smtp::Instant => &stack.smtp,
            Smtp::Slow => &stack.slow_smtp,
        }
    }

    fn letter(self) -> char {
        match self {
            Smtp::Instant => 'i',
            Smtp::Slow => 's',
        }
    }
}

/// One timed sign-up.
#[derive(Clone, Debug)]
pub struct Sample {
    pub smtp: Smtp,
    pub kind: Submission,
    pub latency: Duration,
    /// From the answer to the SMTP server's acceptance of the mail it caused (ns; a mail
    /// accepted before the answer reached the client is negative), for the kinds that mail.
    pub to_acceptance_ns: Option<i128>,
}

pub struct Answers {
    /// Sign-ups of each kind to each handler.
    pub per_cell: usize,
    pub samples: Vec<Sample>,
    /// Mailed sign-ups whose mail the SMTP server did not accept (within two minutes).
    pub missing_mails: usize,
    /// Mails accepted for denied or unknown-domain addresses (there must be none).
    pub stray_mails: usize,
    /// The share of the machine's CPU that other processes took during the timed run.
    pub foreign_share: f64,
    pub wall: Duration,
    /// CPU per sign-up during the timed run (ms), of each handler and of its SMTP server, in
    /// [`Smtp::BOTH`]'s order; and Azurite's, for both handlers' sign-ups together.
    pub handler_cpu_ms: [f64; 2],
    pub smtp_cpu_ms: [f64; 2],
    pub azurite_cpu_ms: f64,
}

impl Answers {
    pub fn latencies(&self, smtp: Smtp, kind: Option<Submission>) -> Vec<Duration> {
        self.samples
            .iter()
            .filter(|s| s.smtp == smtp && kind.is_none_or(|k| s.kind == k))
            .map(|s| s.latency)
            .collect()
    }

    /// Answer to acceptance, in ns, of the mailed sign-ups to the handler using `smtp`.
    pub fn to_acceptance(&self, smtp: Smtp) -> Vec<i128> {
        self.samples
            .iter()
            .filter(|s| s.smtp == smtp)
            .filter_map(|s| s.to_acceptance_ns)
            .collect()
    }
}

/// Nearest-rank percentile of signed nanoseconds.
pub fn percentile_ns(samples: &[i128], p: f64) -> i128 {
    if samples.is_empty() {
        return 0;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// A small random generator for the order of the sign-ups (xorshift, seeded at random).
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// The address of open request `i` of run `run`: on 128 subdomains of their own, so their
/// domains' counters see as many sign-ups (the first one and the timed one) as other kinds'.
fn open_request_input(run: &str, i: usize) -> SignupInput {
    let mut input = signup::input(run, i, signup::SIGNUP_POLICY_DOMAIN);
    input.email = format!(
        "p{i}.{run}@o{}.{}",
        i % (2 * signup::DOMAINS),
        signup::SIGNUP_POLICY_DOMAIN
    );
    input.client_ip = format!("10.9.{}.{}", (i >> 8) & 255, i & 255);
    input
}

/// Input `i` of `kind` for the handler mailing through `smtp`: its own address and client IP.
fn timed_input(tag: &str, smtp: Smtp, kind: Submission, i: usize) -> SignupInput {
    let k = Submission::ALL.iter().position(|x| *x == kind).unwrap_or(0);
    let mut input = match kind {
        Submission::OpenRequest => open_request_input(&format!("o{}{tag}", smtp.letter()), i),
        _ => signup::input(&format!("{k}{}{tag}", smtp.letter()), i, kind.domain()),
    };
    input.client_ip = format!("10.{}.{}.{}", 10 + k, (i >> 8) & 255, i & 255);
    input
}

struct Portal {
    smtp: Smtp,
    base: String,
    _server: platform::Server,
    pid: u32,
}

pub async fn run(stack: &Stack, handler: &Path, per_cell: usize) -> Result<Answers, String> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let http = signup::host_client();
    // Open requests for the timed run, then a few more for the warm-up.
    let warm = 5;
    let mut portals = Vec::new();
    for smtp in Smtp::BOTH {
        let prefix = format!("a{}{tag}", smtp.letter());
        let mut env = stack.handler_env(stack.table_port, &prefix);
        set_env(&mut env, "SMTP_URL", smtp.sink(stack).url());
        signup::add_signup_policy(stack, handler, &env)?;
        signup::add_deny_policy(stack, handler, &env)?;
        let log = stack.work.join(format!("handler-{prefix}.log"));
        let (server, _) = platform::start_server(handler, &env, Some(&log))?;
        portals.push(Portal {
            smtp,
            base: server.url(""),
            pid: server.proc.pid(),
            _server: server,
        });
    }

    eprintln!("bench: answers, preparing {per_cell} open requests per handler");
    for p in &portals {
        let sink = &p.smtp.sink(stack).accepted;
        let before = sink.count();
        let (http, base, run) = (
            http.clone(),
            p.base.clone(),
            format!("o{}{tag}", p.smtp.letter()),
        );
        let r = load::run(4, 0, per_cell + warm, Duration::from_secs(600), move |i| {
            let (http, base) = (http.clone(), base.clone());
            let input = open_request_input(&run, i);
            async move { signup::post_signup(&http, &base, &input).await }
        })
        .await;
        if r.errors > 0 {
            return Err(format!(
                "answers: preparing open requests failed: {}",
                r.first_error.unwrap_or_default()
            ));
        }
        if sink.wait_for(before + r.ok, Duration::from_secs(120)).await < before + r.ok {
            return Err("answers: the open requests' mails did not all arrive".into());
        }
    }

    // Warm-up on inputs of their own (and the last open requests): policies cached, tables
    // and pools ready, on both handlers, every kind.
    let before_warm: Vec<usize> = portals
        .iter()
        .map(|p| p.smtp.sink(stack).accepted.count())
        .collect();
    for p in &portals {
        for (k, kind) in Submission::ALL.into_iter().enumerate() {
            for i in 0..warm {
                let mut input = match kind {
                    Submission::OpenRequest => timed_input(&tag, p.smtp, kind, per_cell + i),
                    _ => timed_input(&format!("w{tag}"), p.smtp, kind, i),
                };
                input.client_ip = format!("10.20.{k}.{i}");
                signup::post_signup(&http, &p.base, &input).await?;
            }
        }
    }
    for (p, before) in portals.iter().zip(before_warm) {
        // The admitted and the open requests' mails.
        let want = before + 2 * warm;
        p.smtp
            .sink(stack)
            .accepted
            .wait_for(want, Duration::from_secs(60))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut order: Vec<(usize, Submission, usize)> = Vec::new();
    for p in 0..portals.len() {
        for kind in Submission::ALL {
            order.extend((0..per_cell).map(|i| (p, kind, i)));
        }
    }
    Shuffle(u64::from(crate::floor::rand_u32()) << 32 | 1).shuffle(&mut order);
    eprintln!(
        "bench: answers, {} sign-ups of 4 kinds to 2 handlers in random order",
        order.len()
    );
    let from: Vec<usize> = portals
        .iter()
        .map(|p| p.smtp.sink(stack).accepted.count())
        .collect();
    let pids: Vec<u32> = portals.iter().map(|p| p.pid).collect();
    let cpu_before = cpu(stack, &pids);
    let each_before = each_cpu(stack, &pids);
    let started = Instant::now();
    // (sample, address, sent at, answered at) in Unix ns
    let mut timed = Vec::with_capacity(order.len());
    for (p, kind, i) in order {
        let portal = &portals[p];
        let input = timed_input(&tag, portal.smtp, kind, i);
        let sent_ns = unix_ns();
        let t = Instant::now();
        signup::post_signup(&http, &portal.base, &input).await?;
        let latency = t.elapsed();
        let answered_ns = unix_ns();
        timed.push((
            Sample {
                smtp: portal.smtp,
                kind,
                latency,
                to_acceptance_ns: None,
            },
            input.email.to_ascii_lowercase(),
            sent_ns,
            answered_ns,
        ));
    }
    let wall = started.elapsed();
    // The mail and its record come after the last answers: let them finish before the CPU
    // is read.
    for (p, portal) in portals.iter().enumerate() {
        let want = timed
            .iter()
            .filter(|(s, ..)| s.smtp == portal.smtp && s.kind.mails())
            .count();
        portal
            .smtp
            .sink(stack)
            .accepted
            .wait_for(from[p] + want, Duration::from_secs(120))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let each_after = each_cpu(stack, &pids);
    let per = |i: usize| {
        let d = each_after[i].saturating_sub(each_before[i]);
        d.as_secs_f64() * 1000.0 / (4 * per_cell) as f64
    };

    // Whom each server accepted mail for, and when.
    let mut missing = 0;
    let mut stray = 0;
    for (p, portal) in portals.iter().enumerate() {
        let accepted = portal.smtp.sink(stack).accepted.since(from[p]);
        stray += accepted
            .iter()
            .filter(|a| {
                let to = a.to.to_ascii_lowercase();
                to.ends_with(signup::DENY_DOMAIN) || to.ends_with(signup::UNKNOWN_DOMAIN)
            })
            .count();
        for (sample, email, sent_ns, answered_ns) in timed.iter_mut() {
            if sample.smtp != portal.smtp || !sample.kind.mails() {
                continue;
            }
            let first = accepted
                .iter()
                .filter(|a| a.at_ns >= *sent_ns && a.to.eq_ignore_ascii_case(email))
                .map(|a| a.at_ns)
                .min();
            match first {
                Some(at) => sample.to_acceptance_ns = Some(at - *answered_ns),
                None => missing += 1,
            }
        }
    }
    let foreign_share = {
        let used = cpu(stack, &pids).since(&cpu_before);
        used.foreign().as_secs_f64() / used.machine_total.as_secs_f64().max(1e-9)
    };
    drop(portals);
    Ok(Answers {
        per_cell,
        samples: timed.into_iter().map(|(s, ..)| s).collect(),
        missing_mails: missing,
        stray_mails: stray,
        foreign_share,
        wall,
        handler_cpu_ms: [per(0), per(1)],
        smtp_cpu_ms: [per(2), per(3)],
        azurite_cpu_ms: per(4) / 2.0,
    })
}

/// CPU so far of: the two handlers, the two SMTP servers (in [`Smtp::BOTH`]'s order), Azurite.
fn each_cpu(stack: &Stack, handlers: &[u32]) -> Vec<Duration> {
    let of = |pid: u32| platform::cpu_time(pid).unwrap_or_default();
    let mut v: Vec<Duration> = handlers.iter().map(|p| of(*p)).collect();
    v.push(of(stack.smtp.proc.pid()));
    v.push(of(stack.slow_smtp.proc.pid()));
    v.push(of(stack.azurite.pid()));
    v
}

/// CPU of the stand-ins, both handlers (counted as "handler") and the machine.
fn cpu(stack: &Stack, handlers: &[u32]) -> Cpu {
    let mut cpu = Cpu::snapshot(stack, None);
    cpu.handler = handlers
        .iter()
        .map(|pid| platform::cpu_time(*pid).unwrap_or_default())
        .sum();
    cpu
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_order_is_a_permutation() {
        let mut v: Vec<usize> = (0..1000).collect();
        super::Shuffle(0x9e37_79b9_7f4a_7c15).shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>(), "shuffled");
        v.sort_unstable();
        assert_eq!(v, (0..1000).collect::<Vec<_>>(), "every one once");
    }

    #[test]
    fn percentiles_of_signed_times() {
        let v: Vec<i128> = vec![-5, 10, 20, 30, 40];
        assert_eq!(super::percentile_ns(&v, 50.0), 20);
        assert_eq!(super::percentile_ns(&v, 99.0), 40);
        assert_eq!(super::percentile_ns(&[], 50.0), 0);
    }
}
