//! Section 2 of the report: sign-up under load against the floor, and the round trips per
//! operation; and their rows of the summary.

use std::fmt::Write as _;
use std::time::Duration;

use super::{met, ms};
use crate::counts::{self, Counts, PerOp, SignupCount};
use crate::load::{self, median_f64};
use crate::signup::{LoadOutcome, Round, Submission};
use crate::Plan;

/// The sign-up throughput target: at least this share of the floor's.
pub const SIGNUP_TARGET: f64 = 0.9;
/// Table Storage round trips of an admitted sign-up before the answer (see `floor.rs`).
pub const MIN_ANSWER_TRIPS: u64 = 7;
/// ... and after it (the claim, the transaction, the audit entry, the delivery record).
pub const MIN_AFTER_TRIPS: u64 = 4;
/// Graph calls a verification under an `auto` policy with groups or app roles needs:
/// the invitation and one `$batch` with the grants (the token is cached for its lifetime).
pub const MIN_GRAPH_VERIFY_INVITE: u64 = 2;
/// Graph calls an approval needs: the approver looked up as sponsor, the invitation, one
/// `$batch` with the grants.
pub const MIN_GRAPH_APPROVAL: u64 = 3;

/// Aggregates of one concurrency level over its rounds.
pub struct Level {
    pub c: usize,
    pub rounds: usize,
    pub portal_tput: f64,
    pub floor_tput: f64,
    pub ratio: f64,
    pub ratios: Vec<f64>,
    /// Sign-ups completed (answer and mail) per second, medians over rounds.
    pub portal_completed: f64,
    pub floor_completed: f64,
    pub portal_p50: Duration,
    pub portal_p99: Duration,
    pub floor_p50: Duration,
    pub floor_p99: Duration,
    pub portal_ok: usize,
    pub floor_ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// CPU ms per sign-up: handler, Azurite, aiosmtpd, bench (client), other processes.
    pub portal_cpu: [f64; 5],
    /// CPU ms per sign-up: Azurite, aiosmtpd, bench (the floor's client), other processes.
    pub floor_cpu: [f64; 4],
    pub foreign_share: f64,
    pub peak_rss_kib: u64,
    pub rows_ok: bool,
    pub mails_ok: bool,
}

fn level(c: usize, rounds: &[&Round]) -> Level {
    let pt: Vec<f64> = rounds
        .iter()
        .map(|r| r.portal.result.throughput())
        .collect();
    let ft: Vec<f64> = rounds.iter().map(|r| r.floor.result.throughput()).collect();
    let ratios: Vec<f64> = pt
        .iter()
        .zip(&ft)
        .map(|(p, f)| if *f > 0.0 { p / f } else { 0.0 })
        .collect();
    let pool = |f: &dyn Fn(&Round) -> &Vec<Duration>| -> Vec<Duration> {
        rounds.iter().flat_map(|r| f(r).iter().copied()).collect()
    };
    let pl = pool(&|r| &r.portal.result.latencies);
    let fl = pool(&|r| &r.floor.result.latencies);
    let portal_ok: usize = rounds.iter().map(|r| r.portal.result.ok).sum();
    let floor_ok: usize = rounds.iter().map(|r| r.floor.result.ok).sum();
    let per = |total: Duration, n: usize| total.as_secs_f64() * 1000.0 / n.max(1) as f64;
    let sum = |f: &dyn Fn(&Round) -> Duration| -> Duration { rounds.iter().map(|r| f(r)).sum() };
    let portal_cpu = [
        per(sum(&|r| r.portal.cpu.handler), portal_ok),
        per(sum(&|r| r.portal.cpu.azurite), portal_ok),
        per(sum(&|r| r.portal.cpu.smtp), portal_ok),
        per(sum(&|r| r.portal.cpu.bench), portal_ok),
        per(sum(&|r| r.portal.cpu.foreign()), portal_ok),
    ];
    let floor_cpu = [
        per(sum(&|r| r.floor.cpu.azurite), floor_ok),
        per(sum(&|r| r.floor.cpu.smtp), floor_ok),
        per(sum(&|r| r.floor.cpu.bench), floor_ok),
        per(sum(&|r| r.floor.cpu.foreign()), floor_ok),
    ];
    let foreign: Duration = sum(&|r| r.portal.cpu.foreign() + r.floor.cpu.foreign());
    let total: Duration = sum(&|r| r.portal.cpu.machine_total + r.floor.cpu.machine_total);
    let completed = |f: &dyn Fn(&Round) -> f64| -> f64 {
        median_f64(&rounds.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    Level {
        c,
        rounds: rounds.len(),
        portal_tput: median_f64(&pt),
        floor_tput: median_f64(&ft),
        ratio: median_f64(&ratios),
        ratios,
        portal_completed: completed(&|r| r.portal.completed_throughput()),
        floor_completed: completed(&|r| r.floor.completed_throughput()),
        portal_p50: load::percentile(&pl, 50.0),
        portal_p99: load::percentile(&pl, 99.0),
        floor_p50: load::percentile(&fl, 50.0),
        floor_p99: load::percentile(&fl, 99.0),
        portal_ok,
        floor_ok,
        errors: rounds
            .iter()
            .map(|r| r.portal.result.errors + r.floor.result.errors)
            .sum(),
        first_error: rounds.iter().find_map(|r| {
            r.portal
                .result
                .first_error
                .clone()
                .or_else(|| r.floor.result.first_error.clone())
        }),
        portal_cpu,
        floor_cpu,
        foreign_share: foreign.as_secs_f64() / total.as_secs_f64().max(1e-9),
        peak_rss_kib: rounds
            .iter()
            .filter_map(|r| r.portal.peak_rss_kib)
            .max()
            .unwrap_or(0),
        rows_ok: rounds.iter().all(|r| {
            [&r.portal, &r.floor]
                .iter()
                .all(|side| side.rows.0 == side.rows.1)
        }),
        mails_ok: rounds.iter().all(|r| {
            [&r.portal, &r.floor]
                .iter()
                .all(|side| side.mails.is_none_or(|(got, want)| got == want))
                && r.portal.completed.is_some()
                && r.floor.completed.is_some()
        }),
    }
}

pub fn levels(load: &LoadOutcome) -> Vec<Level> {
    let mut cs: Vec<usize> = load.rounds.iter().map(|r| r.concurrency).collect();
    cs.dedup();
    cs.into_iter()
        .map(|c| {
            let rounds: Vec<&Round> = load.rounds.iter().filter(|r| r.concurrency == c).collect();
            level(c, &rounds)
        })
        .collect()
}

fn graph_summary(op: &PerOp) -> String {
    let n = op.n.max(1) as f64;
    let g = &op.graph;
    let mut parts = Vec::new();
    for (name, v) in [
        ("invitations", g.invitations),
        ("$batch", g.batch),
        ("list users", g.list_users_pages),
        ("get user", g.get_user),
        ("add member", g.add_member),
        ("app role", g.app_role),
        ("token", g.token),
        ("other", g.other),
    ] {
        if v > 0 {
            parts.push(format!("{name} {:.2}", v as f64 / n));
        }
    }
    if g.batch_subrequests > 0 {
        parts.push(format!(
            "($batch sub-requests {:.2})",
            g.batch_subrequests as f64 / n
        ));
    }
    if g.throttled_429 > 0 {
        parts.push(format!("429s {:.2}", g.throttled_429 as f64 / n));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn breakdown(tally: &crate::proxy::Tally, n: usize) -> String {
    let parts: Vec<String> = counts::per_op(tally, n)
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

pub fn graph_total(op: &PerOp) -> f64 {
    // Outer HTTP calls to Graph, not the token endpoint.
    (op.graph.total - op.graph.token) as f64 / op.n.max(1) as f64
}

fn admitted(c: &Counts) -> Option<&SignupCount> {
    c.signups.iter().find(|s| s.kind == Submission::Admitted)
}

/// The sign-up rows of the summary table.
pub fn summary_rows(s: &mut String, lv: &[Level], c: &Counts) {
    for l in lv {
        let _ = writeln!(
            s,
            "| sign-ups/s at concurrency {} (median of {}) | {:.1} | {:.1} ({MIN_ANSWER_TRIPS} round trips before the answer; {MIN_AFTER_TRIPS} and the mail after it, not waited for) | {:.2} | ≥ {SIGNUP_TARGET} | {} |",
            l.c,
            l.rounds,
            l.portal_tput,
            l.floor_tput,
            l.ratio,
            met(l.ratio >= SIGNUP_TARGET)
        );
    }
    if let Some(a) = admitted(c) {
        let (before, after) = a.medians();
        let (mean_before, mean_after) = a.means();
        let _ = writeln!(
            s,
            "| Table Storage round trips per admitted sign-up, before the answer (median; mean) | {before}; {mean_before:.2} | {MIN_ANSWER_TRIPS} (design minimum) | {:.2} | = minimum | {} |",
            before as f64 / MIN_ANSWER_TRIPS as f64,
            met(before == MIN_ANSWER_TRIPS)
        );
        let _ = writeln!(
            s,
            "| ... after the answer (median; mean) | {after}; {mean_after:.2} | {MIN_AFTER_TRIPS} (design minimum) | {:.2} | = minimum | {} |",
            after as f64 / MIN_AFTER_TRIPS as f64,
            met(after == MIN_AFTER_TRIPS)
        );
    }
    let same: Vec<u64> = c.signups.iter().map(|k| k.medians().0).collect();
    if !same.is_empty() {
        let all_same = same.iter().all(|n| *n == same[0]);
        let _ = writeln!(
            s,
            "| round trips before the answer, admitted / denied / unknown domain / open request (medians) | {} | the same for all | | equal | {} |",
            same.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            met(all_same)
        );
    }
    let gv = graph_total(&c.verify_invite);
    let ga = graph_total(&c.approval);
    let _ = writeln!(
        s,
        "| Graph calls per verification under `auto` (invite + grants) | {:.2} | {} | {:.2} | = minimum | {} |",
        gv,
        MIN_GRAPH_VERIFY_INVITE,
        gv / MIN_GRAPH_VERIFY_INVITE as f64,
        met(gv <= MIN_GRAPH_VERIFY_INVITE as f64 + 0.01)
    );
    let _ = writeln!(
        s,
        "| Graph calls per approval (sponsor + invite + grants) | {:.2} | {} | {:.2} | = minimum | {} |",
        ga,
        MIN_GRAPH_APPROVAL,
        ga / MIN_GRAPH_APPROVAL as f64,
        met(ga <= MIN_GRAPH_APPROVAL as f64 + 0.01)
    );
}

/// Section 2: sign-up under load, and round trips per operation.
pub fn section(s: &mut String, lv: &[Level], c: &Counts, load: &LoadOutcome, plan: &Plan) {
    let _ = writeln!(s, "## 2. Sign-up under load\n");
    let _ = writeln!(
        s,
        "**Portal:** the release `handler` started as the host starts it, against Azurite and \
         aiosmtpd; a Rust load client (tokio + reqwest, loopback, closed loop) posts the form \
         (`application/x-www-form-urlencoded`: email, first_name, last_name, organisation) \
         with the host's headers, every sign-up from its own address (64 domains admitted by \
         one policy with subdomains) and its own client IP in `X-Forwarded-For`. Before it \
         answers, each sign-up reads and writes the three rate-limit counters and records the \
         submission; after the answer, in a task of its own, the policies decide: the address \
         is claimed, the request and its verification mail are written in one transaction, \
         the audit entry follows, then the mail goes out and its delivery is recorded. The \
         SMTP server is aiosmtpd speaking the whole protocol, with a handler that records each \
         accepted message (`bench/smtp_sink.py`: its recipient and the time) instead of the \
         tests' `Mailbox`, which parses every message with Python's `email` package and \
         writes a file: that is the sink's work, and on a shared two-core machine it would be \
         charged to the portal. Rate limits are set to {} per hour (`PORTAL_RATE_LIMIT_IP`, \
         `_ADDRESS`, `_DOMAIN`) so none refuses a benchmark sign-up — the counters are still \
         read and written on every one. Policy cache: the default 30 s. Logs: JSON lines to a \
         file, as in production.\n",
        crate::platform::RATE_LIMIT
    );
    let _ = writeln!(
        s,
        "**Floor:** the round trips of one admitted sign-up that the design cannot do \
         without, sent directly to the same Azurite by a bare HTTP client (no SDK, \
         shared-key-lite signing), at the same concurrency, with the same inputs and the same \
         rows (built with the portal's own row builders: the request, the sealed outbox row), \
         on fresh tables, in the portal's order. Before the answer, timed: three counters × \
         (one read + insert-or-replace with `If-Match`) = 6 — the IP and address counters are \
         single rows (point reads), the domain counter is 32 shard rows read in one partition \
         range query, exactly as `store::limits` does it, with the same jittered retry on a \
         lost race — then the submission's insert: **{MIN_ANSWER_TRIPS}**. After the answer, \
         spawned and not waited for, as the portal does: the claim insert, one entity-group \
         transaction (the request now waiting for its proof, and its mail's outbox row), the \
         audit insert, the mail (the mail floor: MAIL, RCPT, DATA, then the portal's own \
         verification mail, {} bytes, and its terminator in one write, on pooled connections \
         with `TCP_NODELAY`), then the merge that records it delivered: \
         **{MIN_AFTER_TRIPS}** and the mail.\n",
        load.mail_bytes
    );
    let _ = writeln!(
        s,
        "Why none can go: Table Storage has no atomic increment, so a limit that holds across \
         instances needs the read and the compare-and-swap, for each of the three; the \
         submission is recorded before the answer because the answer promises it is taken \
         (if the instance dies, the timer finishes it), and it is the same write whatever the \
         policies make of it. The claim (one open request per address) is a partition of its \
         own, keyed by the address, so no transaction can merge it with the request; the \
         request's change and its mail are already one transaction; the audit entry is \
         another table; without the delivery record the timer's sweep would send the mail \
         again. Policies are cached, so they cost nothing per sign-up in steady state.\n"
    );
    let p = &plan.load;
    let _ = writeln!(
        s,
        "Each concurrency level ran {} round(s); each round started a fresh handler on fresh \
         tables, warmed it with max(2 × concurrency, 10) sign-ups on other inputs (and waited \
         for their mail), then timed {} sign-ups (at most {} s) on the portal and the same \
         inputs on the floor, alternating which side went first. Sign-ups/s counts answers; \
         each side then waited until every mail had been accepted before the next began, and \
         \"completed/s\" counts sign-ups over the time to the last mail's acceptance. \
         Throughputs are medians over rounds, the ratio is the median of the per-round \
         ratios, latencies (of the answers) are pooled over rounds.\n",
        p.rounds,
        lv.iter()
            .map(|l| format!("{} (c={})", (p.requests)(l.c), l.c))
            .collect::<Vec<_>>()
            .join(", "),
        p.max_time.as_secs()
    );
    let _ = writeln!(
        s,
        "| concurrency | portal sign-ups/s | floor sign-ups/s | ratio (per round) | portal completed/s | floor completed/s | portal p50 / p99 | floor p50 / p99 | errors |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for l in lv {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | **{:.2}** ({}) | {:.1} | {:.1} | {} / {} | {} / {} | {} |",
            l.c,
            l.portal_tput,
            l.floor_tput,
            l.ratio,
            l.ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            l.portal_completed,
            l.floor_completed,
            ms(l.portal_p50),
            ms(l.portal_p99),
            ms(l.floor_p50),
            ms(l.floor_p99),
            l.errors
        );
    }
    if let Some(e) = lv.iter().find_map(|l| l.first_error.clone()) {
        let _ = writeln!(s, "\nFirst error: `{e}`");
    }
    let _ = writeln!(
        s,
        "\nWhere the CPU went, in ms of CPU per sign-up, from the start of the timed run until \
         its last mail was accepted (user + system, from `/proc/PID/stat`; \"other\" is \
         everything else on the machine in the same interval):\n"
    );
    let _ = writeln!(
        s,
        "| concurrency | side | handler | Azurite | aiosmtpd | bench (client) | total of these | other processes |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for l in lv {
        let p = l.portal_cpu;
        let f = l.floor_cpu;
        let _ = writeln!(
            s,
            "| {} | portal | {:.2} | {:.2} | {:.2} | {:.2} | **{:.2}** | {:.2} |",
            l.c,
            p[0],
            p[1],
            p[2],
            p[3],
            p[0] + p[1] + p[2] + p[3],
            p[4]
        );
        let _ = writeln!(
            s,
            "| {} | floor | | {:.2} | {:.2} | {:.2} | **{:.2}** | {:.2} |",
            l.c,
            f[0],
            f[1],
            f[2],
            f[0] + f[1] + f[2],
            f[3]
        );
    }
    let _ = writeln!(s, "\nChecks on the work done:\n");
    for l in lv {
        let _ = writeln!(
            s,
            "- concurrency {}: {} portal and {} floor sign-ups answered; request rows in each \
             side's table afterwards {} the sign-ups answered (warm-up included); mails \
             accepted by aiosmtpd {} the sign-ups of each side.",
            l.c,
            l.portal_ok,
            l.floor_ok,
            if l.rows_ok {
                "equal"
            } else {
                "**differ from**"
            },
            if l.mails_ok {
                "equal"
            } else {
                "**differ from**"
            }
        );
    }
    for check in &c.checks {
        let _ = writeln!(s, "- {check}");
    }

    let _ = writeln!(s, "\n### Round trips per operation\n");
    let _ = writeln!(
        s,
        "Counted with the handler pointed at a counting proxy in front of Azurite (every Table \
         Storage call, by operation and table; an entity-group transaction is one call) and by \
         the Graph simulator (`calls()`), one operation at a time after a warm-up. Refused \
         writes (409 on insert, 412 on replace) and 404 reads are counted both in the total \
         and on their own line.\n"
    );
    let _ = writeln!(
        s,
        "Sign-ups, {} of each kind (the open requests are the admitted sign-ups' addresses \
         again, from other clients). The answer goes out when the submission's insert \
         returns, and the work after it starts at once, so its first calls can reach the \
         proxy before the answer reaches the client: a call is *before the answer* if it came \
         up to the submission's insert (the first insert of a `request` row; it reached the \
         proxy before the answer reached the client in {} of {} sign-ups, the others were \
         split by time), and *after* if it came \
         later, until the sign-up's work was done (its mail's delivery recorded, or the \
         unadmitted submission deleted, and then no call for 30 ms). Per sign-up, the median \
         and the mean; the breakdowns are means:\n",
        c.signups.first().map_or(0, |k| k.n),
        c.signups
            .iter()
            .map(|k| k.n - k.split_by_time)
            .sum::<usize>(),
        c.signups.iter().map(|k| k.n).sum::<usize>()
    );
    let _ = writeln!(
        s,
        "| submission | before the answer (median; mean) | breakdown | after the answer (median; mean) | breakdown | mails per sign-up | answer p50 |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for k in &c.signups {
        let (b, a) = k.medians();
        let (mb, ma) = k.means();
        let _ = writeln!(
            s,
            "| {} | {b}; {mb:.2} | {} | {a}; {ma:.2} | {} | {:.2} | {} |",
            k.kind.name(),
            breakdown(&k.answer, k.n),
            breakdown(&k.after, k.n),
            k.mails as f64 / k.n.max(1) as f64,
            ms(load::percentile(&k.latencies, 50.0))
        );
    }
    let _ = writeln!(
        s,
        "\nThe answer does the same {MIN_ANSWER_TRIPS} round trips for every kind; what \
         follows it differs (an unadmitted domain's demand counted and the submission deleted; \
         an open request's claim found, the request read, the new submission and its mail \
         written beside it, the recorded submission deleted) and is nobody's wait.\n"
    );
    let _ = writeln!(
        s,
        "| operation | Table Storage per op | breakdown | Graph per op | breakdown | mails per op | p50 latency |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for (name, op) in [
        (
            "verification, `auto` policy (invite + grants + mail)",
            &c.verify_invite,
        ),
        (
            "verification, `approve` policy (asks the approver)",
            &c.verify_ask,
        ),
        ("approval (decision, invite + grants + mail)", &c.approval),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {:.2} | {} | {:.2} | {} | {:.2} | {} |",
            op.storage_total() as f64 / op.n.max(1) as f64,
            breakdown(&op.storage, op.n),
            graph_total(op),
            graph_summary(op),
            op.mails as f64 / op.n.max(1) as f64,
            ms(counts::p50(op))
        );
    }
    let _ = writeln!(
        s,
        "\nMinimum the design allows: sign-up **{MIN_ANSWER_TRIPS}** Table Storage round trips \
         before the answer and **{MIN_AFTER_TRIPS}** after it for an admitted address, no \
         Graph call (see the floor above; plus one policy query per instance every \
         `PORTAL_POLICY_CACHE_SECONDS`). Verification under `auto`: \
         **{MIN_GRAPH_VERIFY_INVITE}** Graph calls (the invitation, then one `$batch` with \
         every group and app role; the token is fetched once per lifetime). Approval: \
         **{MIN_GRAPH_APPROVAL}** Graph calls (the approver looked up to become the guest's \
         sponsor, the invitation, one `$batch`). The Table Storage calls of verification and \
         approval follow the design's rule that each step is recorded (compare-and-swap on the \
         request) before the next begins, so a failure resumes at that step and nothing is \
         done twice; the breakdown shows each.\n"
    );
}

/// The line for "what stands in the way" of a sign-up throughput target not met.
pub fn shortfall(s: &mut String, l: &Level, nproc: usize) {
    let p = l.portal_cpu;
    let f = l.floor_cpu;
    let _ = writeln!(
        s,
        "- **Sign-ups at concurrency {}: {:.2} of the floor (target ≥ {SIGNUP_TARGET})**. Per \
         sign-up, answer and mail, the portal's processes used {:.2} ms of CPU against the \
         floor's {:.2} ms: Azurite {:.2} ms against {:.2} ms for the same round trips (the \
         portal's through the SDK), aiosmtpd {:.2} ms against {:.2} ms, the handler {:.2} ms \
         against the floor client's {:.2} ms. Answer latency (p50) {} against {}. On {nproc} \
         shared cores the handler, Azurite, aiosmtpd and the load client compete for the same \
         CPU, so the work after one answer (the claim, the transaction, the audit, the mail, \
         its record) slows the next answers, on both sides alike.",
        l.c,
        l.ratio,
        p[0] + p[1] + p[2] + p[3],
        f[0] + f[1] + f[2],
        p[1],
        f[0],
        p[2],
        f[1],
        p[0],
        f[2],
        ms(l.portal_p50),
        ms(l.floor_p50),
    );
}
