//! Cold start: exec of a release binary to the first answer on `GET /` (what the Functions
//! host waits for), for `handler` with valid settings and for `hello-floor` (and, when
//! comparing builds, another build of the handler), interleaved so all see the same machine.

use std::path::Path;
use std::time::Duration;

use crate::platform;

#[derive(Debug, Clone, Default)]
pub struct ColdStart {
    pub handler: Vec<Duration>,
    pub floor: Vec<Duration>,
    /// The baseline build of the handler (`--baseline-handler`), when one is compared.
    pub baseline: Vec<Duration>,
    /// Peak RSS of hello-floor right after its first answer, KiB (the memory floor).
    pub floor_rss_kib: u64,
    /// Peak RSS of the handler right after its first answer, KiB.
    pub handler_rss_kib: u64,
    /// `handler --version`, exec to exit: loading the binary (mapping, relocating, the page
    /// faults of its first pages) and printing a line, none of the portal's start-up.
    pub handler_load: Vec<Duration>,
}

pub fn run(
    handler: &Path,
    floor: &Path,
    baseline: Option<&Path>,
    env: &[(String, String)],
    starts: usize,
) -> Result<ColdStart, String> {
    #[derive(Clone, Copy)]
    enum Which {
        Handler,
        Floor,
        Baseline,
    }
    let mut bins = vec![(handler, Which::Handler), (floor, Which::Floor)];
    if let Some(baseline) = baseline {
        bins.push((baseline, Which::Baseline));
    }
    // Every order in turn, so each binary starts equally often first, last, and after each
    // of the others.
    let orders = orders(bins.len());
    let mut out = ColdStart::default();
    // One unmeasured start of each: the first exec pays for the page cache.
    for (bin, _) in &bins {
        platform::start_server(bin, env, None)?;
    }
    for i in 0..starts {
        let started = std::time::Instant::now();
        let status = std::process::Command::new(handler)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("{}: {e}", handler.display()))?;
        if !status.success() {
            return Err(format!("handler --version: {status}"));
        }
        out.handler_load.push(started.elapsed());
        let order = &orders[i % orders.len()];
        for (bin, which) in order.iter().map(|&k| bins[k]) {
            let (server, ready) = platform::start_server(bin, env, None)?;
            let hwm = platform::memory_kib(server.proc.pid())
                .map(|(h, _)| h)
                .unwrap_or(0);
            match which {
                Which::Handler => {
                    out.handler.push(ready);
                    out.handler_rss_kib = out.handler_rss_kib.max(hwm);
                }
                Which::Floor => {
                    out.floor.push(ready);
                    out.floor_rss_kib = out.floor_rss_kib.max(hwm);
                }
                Which::Baseline => out.baseline.push(ready),
            }
        }
    }
    Ok(out)
}

/// The orders of `0..n`, lexicographically (for two: `[0, 1]`, `[1, 0]`).
fn orders(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for first in 0..n {
        for rest in orders(n - 1) {
            let mut order = vec![first];
            order.extend(rest.into_iter().map(|k| if k >= first { k + 1 } else { k }));
            all.push(order);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_order_once() {
        assert_eq!(super::orders(2), [[0, 1], [1, 0]]);
        let three = super::orders(3);
        assert_eq!(three.len(), 6);
        assert_eq!(three[0], [0, 1, 2]);
        assert_eq!(three[5], [2, 1, 0]);
        let distinct: std::collections::HashSet<_> = three.iter().collect();
        assert_eq!(distinct.len(), 6);
    }
}
