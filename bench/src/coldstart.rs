//! Cold start: exec of a release binary to the first answer on `GET /` (what the Functions
//! host waits for), for `handler` with valid settings and for `hello-floor`, interleaved so
//! both see the same machine.

use std::path::Path;
use std::time::Duration;

use crate::platform;

#[derive(Debug, Clone, Default)]
pub struct ColdStart {
    pub handler: Vec<Duration>,
    pub floor: Vec<Duration>,
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
    env: &[(String, String)],
    starts: usize,
) -> Result<ColdStart, String> {
    let mut out = ColdStart::default();
    // One unmeasured start of each: the first exec pays for the page cache.
    for bin in [handler, floor] {
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
        let order: [(&Path, bool); 2] = if i % 2 == 0 {
            [(handler, true), (floor, false)]
        } else {
            [(floor, false), (handler, true)]
        };
        for (bin, is_handler) in order {
            let (server, ready) = platform::start_server(bin, env, None)?;
            let hwm = platform::memory_kib(server.proc.pid())
                .map(|(h, _)| h)
                .unwrap_or(0);
            if is_handler {
                out.handler.push(ready);
                out.handler_rss_kib = out.handler_rss_kib.max(hwm);
            } else {
                out.floor.push(ready);
                out.floor_rss_kib = out.floor_rss_kib.max(hwm);
            }
        }
    }
    Ok(out)
}
