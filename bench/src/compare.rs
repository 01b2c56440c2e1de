//! Before and after: this build of the handler against a baseline build (`--baseline-handler`,
//! typically the commit a change forked from), both measured in the same run and interleaved,
//! so the machine's noise falls on both alike.
//!
//! Three figures, each as after / before and whether it is within 5%: the release binary's
//! size and its cold start may grow by at most 5%, sign-ups per second (at each concurrency)
//! may drop by at most 5%. Cold starts rotate through every order of the two builds and
//! hello-floor; each sign-up round runs both builds, on fresh tables, with the same sign-ups,
//! and the throughput ratio is the median of the per-round ratios. The handler's CPU time per
//! sign-up is shown too: on a shared machine other processes move the throughput of a round
//! far more than they move the CPU the handler spends on it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::coldstart::ColdStart;
use crate::load::{median_f64, percentile};
use crate::signup::{Pair, Round, SideRun};

/// How much worse a figure may get: 5%.
pub const TOLERANCE: f64 = 0.05;

/// The heading the section goes under; `--compare-only` replaces what follows it.
const HEADING: &str = "## Before and after";

pub struct BeforeAfter {
    /// What the baseline is (`--baseline-label`, else its path).
    pub label: String,
    /// Release binary sizes in bytes, before and after.
    pub bytes: (u64, u64),
    /// Cold starts, before and after.
    pub cold: (Vec<Duration>, Vec<Duration>),
    /// Sign-ups per second of each round, per concurrency.
    pub signups: Vec<Level>,
    /// The largest share of the machine's CPU that other processes took during a compared run.
    pub foreign_share: f64,
}

/// One concurrency: sign-ups per second of each round, before and after, in round order; and
/// the CPU time the handler used per sign-up, in ms, which other processes on a busy machine
/// disturb far less than the throughput.
pub struct Level {
    pub concurrency: usize,
    pub before: Vec<f64>,
    pub after: Vec<f64>,
    pub before_cpu: Vec<f64>,
    pub after_cpu: Vec<f64>,
}

impl Level {
    /// The median of the per-round ratios after / before.
    fn ratio(&self) -> f64 {
        let ratios: Vec<f64> = self
            .after
            .iter()
            .zip(&self.before)
            .map(|(a, b)| if *b > 0.0 { a / b } else { 0.0 })
            .collect();
        median_f64(&ratios)
    }
}

impl BeforeAfter {
    /// From the pairs of a `--compare-only` run.
    pub fn new(label: String, bytes: (u64, u64), cold: &ColdStart, pairs: &[Pair]) -> Self {
        let mut signups: Vec<Level> = Vec::new();
        for pair in pairs {
            let level = match signups
                .iter_mut()
                .find(|l| l.concurrency == pair.concurrency)
            {
                Some(level) => level,
                None => {
                    signups.push(Level {
                        concurrency: pair.concurrency,
                        before: Vec::new(),
                        after: Vec::new(),
                        before_cpu: Vec::new(),
                        after_cpu: Vec::new(),
                    });
                    signups.last_mut().expect("just pushed")
                }
            };
            level.before.push(pair.before.result.throughput());
            level.after.push(pair.after.result.throughput());
            level.before_cpu.push(handler_cpu_ms(&pair.before));
            level.after_cpu.push(handler_cpu_ms(&pair.after));
        }
        let foreign_share = pairs
            .iter()
            .flat_map(|p| [&p.before, &p.after])
            .map(foreign_share)
            .fold(0.0, f64::max);
        BeforeAfter {
            label,
            bytes,
            cold: (cold.baseline.clone(), cold.handler.clone()),
            signups,
            foreign_share,
        }
    }

    /// From the rounds of a full run that had a baseline side; `None` without one.
    pub fn from_rounds(
        label: String,
        bytes: (u64, u64),
        cold: &ColdStart,
        rounds: &[Round],
    ) -> Option<Self> {
        let pairs: Vec<Pair> = rounds
            .iter()
            .map(|r| {
                Some(Pair {
                    concurrency: r.concurrency,
                    after: r.portal.clone(),
                    before: r.baseline.clone()?,
                })
            })
            .collect::<Option<_>>()?;
        (!pairs.is_empty()).then(|| Self::new(label, bytes, cold, &pairs))
    }
}

/// The handler's CPU time per sign-up of a run, in ms.
fn handler_cpu_ms(side: &SideRun) -> f64 {
    side.cpu.handler.as_secs_f64() * 1000.0 / side.result.ok.max(1) as f64
}

fn foreign_share(side: &SideRun) -> f64 {
    side.cpu.foreign().as_secs_f64() / side.cpu.machine_total.as_secs_f64().max(1e-9)
}

fn within(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The section, under its heading; `origin` says which run the figures come from.
pub fn section(b: &BeforeAfter, origin: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADING}\n");
    let rounds = b.signups.first().map_or(0, |l| l.after.len());
    let _ = writeln!(
        s,
        "This build of the handler (after) against {} (before), {origin}. Sizes are the files'; \
         cold starts were interleaved with hello-floor, every order of the three in turn, {} \
         starts of each; sign-ups ran in {rounds} round(s) per concurrency, each round running \
         both builds on fresh tables with the same sign-ups, alternating which went first. \
         Within 5% means at most 5% bigger or slower to start, and at least 95% of the sign-ups \
         per second (the median of the per-round ratios).\n",
        b.label,
        b.cold.1.len(),
    );
    let _ = writeln!(
        s,
        "| measure | before | after | after / before | within 5% |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let (before, after) = b.bytes;
    let size_ratio = after as f64 / before.max(1) as f64;
    let _ = writeln!(
        s,
        "| release binary | {before} bytes ({:.1} MiB) | {after} bytes ({:.1} MiB) | {size_ratio:.3} | {} |",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        within(size_ratio <= 1.0 + TOLERANCE)
    );
    let (cold_before, cold_after) = (percentile(&b.cold.0, 50.0), percentile(&b.cold.1, 50.0));
    let cold_ratio = cold_after.as_secs_f64() / cold_before.as_secs_f64().max(1e-9);
    let _ = writeln!(
        s,
        "| cold start to first `GET /` answer (median of {}) | {} | {} | {cold_ratio:.3} | {} |",
        b.cold.1.len(),
        ms(cold_before),
        ms(cold_after),
        within(cold_ratio <= 1.0 + TOLERANCE)
    );
    for level in &b.signups {
        let ratio = level.ratio();
        let _ = writeln!(
            s,
            "| sign-ups/s at concurrency {} (median of {}) | {:.1} | {:.1} | {ratio:.3} | {} |",
            level.concurrency,
            level.after.len(),
            median_f64(&level.before),
            median_f64(&level.after),
            within(ratio >= 1.0 - TOLERANCE)
        );
    }
    for level in &b.signups {
        let (before, after) = (median_f64(&level.before_cpu), median_f64(&level.after_cpu));
        let ratio = after / before.max(1e-9);
        let _ = writeln!(
            s,
            "| handler CPU per sign-up at concurrency {} (median of {}) | {before:.2} ms | {after:.2} ms | {ratio:.3} | {} |",
            level.concurrency,
            level.after_cpu.len(),
            within(ratio <= 1.0 + TOLERANCE)
        );
    }
    let _ = writeln!(s);
    let per_round: Vec<String> = b
        .signups
        .iter()
        .map(|l| {
            let rounds: Vec<String> = l
                .before
                .iter()
                .zip(&l.after)
                .map(|(before, after)| format!("{before:.0} → {after:.0}"))
                .collect();
            format!("concurrency {}: {}", l.concurrency, rounds.join(", "))
        })
        .collect();
    let _ = writeln!(
        s,
        "Sign-ups/s per round, before → after: {}. Other processes took up to {:.0}% of the \
         machine's CPU during these load runs.\n",
        per_round.join("; "),
        b.foreign_share * 100.0
    );
    s
}

/// `report` with its "Before and after" section replaced by `section`, or, without one, with
/// `section` inserted before its first numbered section (after the summary).
pub fn splice(report: &str, section: &str) -> String {
    let starts: Vec<usize> = line_starts(report)
        .filter(|&at| report[at..].starts_with("## "))
        .collect();
    let own = starts
        .iter()
        .position(|&at| report[at..].starts_with(HEADING));
    let (from, to) = match own {
        Some(i) => (
            starts[i],
            starts.get(i + 1).copied().unwrap_or(report.len()),
        ),
        None => {
            let at = starts
                .iter()
                .copied()
                .find(|&at| report[at + 3..].starts_with(|c: char| c.is_ascii_digit()))
                .unwrap_or(report.len());
            (at, at)
        }
    };
    let mut out = String::with_capacity(report.len() + section.len());
    let before = &report[..from];
    out.push_str(before);
    if !before.is_empty() && !before.ends_with("\n\n") {
        out.push_str(if before.ends_with('\n') { "\n" } else { "\n\n" });
    }
    out.push_str(section);
    out.push_str(&report[to..]);
    out
}

fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(at, _)| at + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "# Benchmarks\n\nintro\n\n## Summary\n\n| a |\n\n## 1. Cold start\n\ntext\n\n## 2. Load\n\nmore\n";

    #[test]
    fn the_section_goes_after_the_summary_and_then_replaces_itself() {
        let first = splice(REPORT, "## Before and after\n\nfirst\n\n");
        assert_eq!(
            first,
            "# Benchmarks\n\nintro\n\n## Summary\n\n| a |\n\n## Before and after\n\nfirst\n\n## 1. Cold start\n\ntext\n\n## 2. Load\n\nmore\n"
        );
        let second = splice(&first, "## Before and after\n\nsecond\n\n");
        assert_eq!(second, first.replace("first", "second"));
        assert_eq!(splice(&second, "## Before and after\n\nsecond\n\n"), second);
    }

    #[test]
    fn a_report_without_numbered_sections_gets_it_at_the_end() {
        assert_eq!(
            splice("# Benchmarks\n\nintro", "## Before and after\n\nx\n"),
            "# Benchmarks\n\nintro\n\n## Before and after\n\nx\n"
        );
        assert_eq!(
            splice("", "## Before and after\n\nx\n"),
            "## Before and after\n\nx\n"
        );
    }

    #[test]
    fn throughput_ratios_are_taken_per_round() {
        let level = Level {
            concurrency: 8,
            before: vec![100.0, 200.0, 300.0],
            after: vec![110.0, 180.0, 300.0],
            before_cpu: Vec::new(),
            after_cpu: Vec::new(),
        };
        // Per round 1.1, 0.9, 1.0: the median is 1.0, while the ratio of medians would be 0.9.
        assert!((level.ratio() - 1.0).abs() < 1e-9);
    }
}
