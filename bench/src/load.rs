//! A closed-loop load generator: `concurrency` workers take the next input index until the
//! request budget or the time budget is spent, each timing its own calls. Bounded in count
//! and time, loopback only.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub wall: Duration,
    pub latencies: Vec<Duration>,
}

impl RunResult {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Nearest-rank percentile (p in 0..=100) of unsorted samples.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut s = samples.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn median_f64(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `op(i)` for i = first, first+1, ... with `concurrency` calls in flight.
pub async fn run<F, Fut>(
    concurrency: usize,
    first: usize,
    total: usize,
    max_time: Duration,
    op: F,
) -> RunResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + max_time;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut part = RunResult::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match op(first + i).await {
                    Ok(()) => {
                        part.ok += 1;
                        part.latencies.push(t.elapsed());
                    }
                    Err(e) => {
                        part.errors += 1;
                        part.first_error.get_or_insert(e);
                    }
                }
            }
            part
        }));
    }
    let mut all = RunResult::default();
    for w in workers {
        let part = w.await.expect("a load worker does not panic");
        all.ok += part.ok;
        all.errors += part.errors;
        if all.first_error.is_none() {
            all.first_error = part.first_error;
        }
        all.latencies.extend(part.latencies);
    }
    all.wall = started.elapsed();
    all
}
