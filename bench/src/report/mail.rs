//! Sections 3 and 4 of the report: the answer's clock (the SMTP server's delay, the kinds of
//! submission, the time to the mail's acceptance) and the timer's sweep of a backlog; and
//! their rows of the summary.

use std::fmt::Write as _;
use std::time::Duration;

use super::{met, ms};
use crate::answers::{percentile_ns, Answers, Smtp};
use crate::load::percentile;
use crate::platform::SLOW_SMTP_MS;
use crate::signup::Submission;
use crate::sweep::{Sweep, SWEEP_CONCURRENCY};

/// At most this ratio between the answer with a slow SMTP server and an instant one, and
/// between the medians of the kinds of submission.
pub const CLOCK_TARGET: f64 = 1.1;

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn ms_ns(ns: i128) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

/// The medians of the four kinds with `smtp`: (kind, median), and max / min.
fn kind_medians(a: &Answers, smtp: Smtp) -> (Vec<(Submission, Duration)>, f64) {
    let medians: Vec<(Submission, Duration)> = Submission::ALL
        .iter()
        .map(|k| (*k, percentile(&a.latencies(smtp, Some(*k)), 50.0)))
        .collect();
    let max = medians.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let min = medians.iter().map(|(_, d)| *d).min().unwrap_or_default();
    (medians, ratio(max, min))
}

pub fn summary_rows(s: &mut String, a: &Answers, w: &Sweep) {
    let all = |smtp| a.latencies(smtp, None);
    let (instant, slow) = (all(Smtp::Instant), all(Smtp::Slow));
    for (p, name) in [(50.0, "p50"), (99.0, "p99")] {
        let (i, sl) = (percentile(&instant, p), percentile(&slow, p));
        let r = ratio(sl, i);
        let _ = writeln!(
            s,
            "| answer {name} with SMTP taking {SLOW_SMTP_MS} ms vs instant ([section 3](#3-the-answers-clock); {} sign-ups each) | {} | {} (instant SMTP) | {r:.2} | ≤ {CLOCK_TARGET} | {} |",
            slow.len(),
            ms(sl),
            ms(i),
            met(r <= CLOCK_TARGET)
        );
    }
    for smtp in Smtp::BOTH {
        let (medians, r) = kind_medians(a, smtp);
        let max = medians.iter().max_by_key(|(_, d)| *d);
        let min = medians.iter().min_by_key(|(_, d)| *d);
        if let (Some(max), Some(min)) = (max, min) {
            let _ = writeln!(
                s,
                "| answer medians of admitted, denied, unknown-domain and open-request submissions, {}: slowest / fastest | {} ({}) | {} ({}) | {r:.2} | ≤ {CLOCK_TARGET} | {} |",
                smtp.name(),
                ms(max.1),
                max.0.name(),
                ms(min.1),
                min.0.name(),
                met(r <= CLOCK_TARGET)
            );
        }
    }
    for smtp in Smtp::BOTH {
        let d = a.to_acceptance(smtp);
        let _ = writeln!(
            s,
            "| from the answer to the mail's acceptance, {}: p50 / p99 | {} / {} | {} | | (reported) | |",
            smtp.name(),
            ms_ns(percentile_ns(&d, 50.0)),
            ms_ns(percentile_ns(&d, 99.0)),
            match smtp {
                Smtp::Instant => String::new(),
                Smtp::Slow => format!("{SLOW_SMTP_MS} ms (the server's own delay)"),
            }
        );
    }
    let _ = writeln!(
        s,
        "| one timer tick with {} pending mails ([section 4](#4-the-sweep-of-pending-mail)): wall time | {:.2} s ({} delivered) | {:.2} s (the sweep's round trips and the mail, direct) | {:.2} | (reported) | |",
        w.mails,
        w.tick.as_secs_f64(),
        w.delivered,
        w.floor.as_secs_f64(),
        ratio(w.tick, w.floor)
    );
    let _ = writeln!(
        s,
        "| one timer tick with {} pending mails: Table Storage round trips | {} | {} (the due query's pages + 2 per mail) | {:.2} | (reported) | |",
        w.mails,
        w.trips_total(),
        w.floor_trips,
        w.trips_total() as f64 / w.floor_trips.max(1) as f64
    );
}

pub fn answers_section(s: &mut String, a: &Answers) {
    let _ = writeln!(s, "## 3. The answer's clock\n");
    let _ = writeln!(
        s,
        "What a partner with a stopwatch could learn from `POST /api/signup`. Two release \
         handlers run side by side on the same Azurite, each on tables of its own with the \
         same policies (one admitting `*.signup.bench.example`, one denying \
         `*.deny.bench.example`): one mails through aiosmtpd accepting at once, the other \
         through aiosmtpd taking {SLOW_SMTP_MS} ms to accept each message (`bench/smtp_sink.py`, \
         its handler waits before it answers 250; other connections are served meanwhile), as \
         cloud relays do. {} sign-ups of each kind went to each handler — admitted (a fresh \
         address on an admitted domain), denied, unknown domain (no policy), open request (an \
         address whose request, signed up and mailed before the timed run, waits for its \
         proof) — one at a time, all {} in one random order, so whatever the machine did \
         meanwhile fell on every kind and both servers alike ({:.1} s in all; other processes \
         took {:.0}% of the machine's CPU meanwhile). Every sign-up had its own client IP and, \
         but for the open requests, its own address; each kind's addresses are spread over \
         its own domains, so every rate-limit counter saw as many sign-ups whatever the kind \
         (the limits themselves are out of reach, as in section 2). Latency is the client's: \
         from sending the form to the end of the answer.\n",
        a.per_cell,
        a.samples.len(),
        a.wall.as_secs_f64(),
        a.foreign_share * 100.0
    );
    let _ = writeln!(
        s,
        "| submission | instant SMTP: p50 / p99 | SMTP taking {SLOW_SMTP_MS} ms: p50 / p99 | p50 slow / instant |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    let row = |s: &mut String, name: &str, kind: Option<Submission>| {
        let i = a.latencies(Smtp::Instant, kind);
        let sl = a.latencies(Smtp::Slow, kind);
        let _ = writeln!(
            s,
            "| {name} | {} / {} | {} / {} | {:.2} |",
            ms(percentile(&i, 50.0)),
            ms(percentile(&i, 99.0)),
            ms(percentile(&sl, 50.0)),
            ms(percentile(&sl, 99.0)),
            ratio(percentile(&sl, 50.0), percentile(&i, 50.0))
        );
    };
    for kind in Submission::ALL {
        row(s, kind.name(), Some(kind));
    }
    row(s, "**all four**", None);
    let (_, ri) = kind_medians(a, Smtp::Instant);
    let (_, rs) = kind_medians(a, Smtp::Slow);
    let all_i = a.latencies(Smtp::Instant, None);
    let all_s = a.latencies(Smtp::Slow, None);
    let _ = writeln!(
        s,
        "| slowest median / fastest median | {ri:.2} | {rs:.2} | |\n"
    );
    let _ = writeln!(
        s,
        "CPU per sign-up over the run and until its last mail was accepted: the handler \
         mailing through the instant server {:.2} ms (that server {:.2} ms), the one mailing \
         through the slow server {:.2} ms (that server {:.2} ms); Azurite {:.2} ms.\n",
        a.handler_cpu_ms[0],
        a.smtp_cpu_ms[0],
        a.handler_cpu_ms[1],
        a.smtp_cpu_ms[1],
        a.azurite_cpu_ms
    );
    let _ = writeln!(
        s,
        "With SMTP taking {SLOW_SMTP_MS} ms, the answer's p50 is {:.2}× and its p99 {:.2}× \
         the instant server's (target ≤ {CLOCK_TARGET}): the answer never waits for mail. The \
         four kinds' medians are within {ri:.2}× of each other with the instant server and \
         {rs:.2}× with the slow one (target ≤ {CLOCK_TARGET}).\n",
        ratio(percentile(&all_s, 50.0), percentile(&all_i, 50.0)),
        ratio(percentile(&all_s, 99.0), percentile(&all_i, 99.0)),
    );
    let _ = writeln!(s, "### From the answer to the mail\n");
    let _ = writeln!(
        s,
        "Each SMTP server records whom each message was for and when it accepted it (the wall \
         clock, in ns); the bench stamps each answer with the same clock when it has read it. \
         For every admitted and open-request sign-up above, the time from its answer to the \
         acceptance of its mail (negative if the mail was accepted before the client had read \
         the answer):\n"
    );
    let _ = writeln!(s, "| SMTP server | mails | p50 | p99 | max |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for smtp in Smtp::BOTH {
        let d = a.to_acceptance(smtp);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            smtp.name(),
            d.len(),
            ms_ns(percentile_ns(&d, 50.0)),
            ms_ns(percentile_ns(&d, 99.0)),
            ms_ns(d.iter().copied().max().unwrap_or(0))
        );
    }
    let _ = writeln!(
        s,
        "\nChecks: {} mailed sign-ups without an accepted mail (within two minutes); {} mails \
         accepted for denied or unknown-domain addresses (there must be none: no policy \
         admitted them).\n",
        a.missing_mails, a.stray_mails
    );
}

pub fn sweep_section(s: &mut String, w: &Sweep) {
    let _ = writeln!(s, "## 4. The sweep of pending mail\n");
    let _ = writeln!(
        s,
        "A backlog as an SMTP outage leaves one: {} admitted sign-ups (each its own address) \
         to a handler whose `SMTP_URL` names a port nobody listens on, so each first attempt \
         failed and left its verification mail pending (with its backoff); making it took \
         {:.1} s. A first tick before those sign-ups did the hourly directory pass, so the \
         measured tick is an ordinary one: the mail, then the requests. Then a handler with a \
         working SMTP server (aiosmtpd, accepting at once), warmed by a tick of its own \
         whose host time was ten minutes back (nothing due then), got one timer tick as the \
         host posts it, its `UtcNow` two minutes on (every mail due). The tick answers when its mail is sent. Its Table Storage calls were counted \
         on a second, identical backlog through the counting proxy (a hop that would slow \
         the timed one).\n",
        w.mails,
        w.seeding.as_secs_f64()
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| one tick, posted to answered | **{:.2} s** ({:.0} mails/s) |",
        w.tick.as_secs_f64(),
        w.mails as f64 / w.tick.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        s,
        "| mails the SMTP server accepted during it | {} of {} (counted tick: {}) |",
        w.delivered, w.mails, w.counted_delivered
    );
    let _ = writeln!(s, "| mails still pending after it | {} |", w.left_pending);
    let _ = writeln!(
        s,
        "| the tick's own summary | `{}` |",
        w.summary.replace('|', "\\|")
    );
    let _ = writeln!(
        s,
        "| Table Storage round trips (counted tick) | {} ({:.2} per mail): {} |",
        w.trips_total(),
        w.trips_total() as f64 / w.mails.max(1) as f64,
        w.trips
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "| floor: the sweep's round trips and the mail, direct, {SWEEP_CONCURRENCY} at a time | {:.2} s, {} round trips (the due query's pages, then per mail the compare-and-swap that takes it and the merge that records it delivered) |",
        w.floor.as_secs_f64(),
        w.floor_trips
    );
    let _ = writeln!(
        s,
        "| the mail floor alone: {} mails, {SWEEP_CONCURRENCY} at a time | {:.2} s |",
        w.mails,
        w.mail_floor.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "\nThe tick took {:.2}× the floor and {:.2}× the mail floor alone. Every mail is taken \
         by a compare-and-swap before it is sent (so two sweeping instances never both send \
         it) and its delivery recorded after: two writes per mail that the floor makes too; \
         the rest of the tick's calls are its lease, its cadence and the open requests' \
         checks.\n",
        ratio(w.tick, w.floor),
        ratio(w.tick, w.mail_floor)
    );
}

/// Lines for the answer's clock targets not met; whether there was any.
pub fn shortfalls(s: &mut String, a: &Answers) -> bool {
    let mut any = false;
    let (instant, slow) = (
        a.latencies(Smtp::Instant, None),
        a.latencies(Smtp::Slow, None),
    );
    for (p, name) in [(50.0, "p50"), (99.0, "p99")] {
        let (i, sl) = (percentile(&instant, p), percentile(&slow, p));
        if ratio(sl, i) > CLOCK_TARGET {
            any = true;
            let _ = writeln!(
                s,
                "- **The answer's {name} with SMTP taking {SLOW_SMTP_MS} ms is {:.2}× the \
                 instant server's (target ≤ {CLOCK_TARGET})**: {} against {}. The answer \
                 itself does not wait for mail (the round trips before it are the same, \
                 section 2); what differs is the work the slow server's handler has in flight \
                 meanwhile. Section 3 has both servers' figures by kind; other processes took \
                 {:.0}% of the machine's CPU during the run.",
                ratio(sl, i),
                ms(sl),
                ms(i),
                a.foreign_share * 100.0
            );
        }
    }
    for smtp in Smtp::BOTH {
        let (medians, r) = kind_medians(a, smtp);
        if r > CLOCK_TARGET {
            any = true;
            let _ = writeln!(
                s,
                "- **The medians of the four kinds of submission with {} differ by {r:.2}× \
                 (target ≤ {CLOCK_TARGET})**: {}.",
                smtp.name(),
                medians
                    .iter()
                    .map(|(k, d)| format!("{} {}", k.name(), ms(*d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    any
}
