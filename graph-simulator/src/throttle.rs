//! Sliding-window limiters for the documented Graph quotas.
//!
//! A sliding window (not a fixed one) so that a burst straddling a window edge
//! is still refused, which is the stricter and therefore safer model for a
//! client to be tested against.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct SlidingWindow {
    limit: u32,
    window: Duration,
    hits: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        SlidingWindow {
            limit,
            window,
            hits: VecDeque::new(),
        }
    }

    /// Admits one request, or says how many whole seconds until one would be
    /// admitted. Refused requests do not use up quota, so the `Retry-After`
    /// given is exactly when a retry will succeed (absent other traffic).
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), u32> {
        while let Some(first) = self.hits.front() {
            if now.duration_since(*first) >= self.window {
                self.hits.pop_front();
            } else {
                break;
            }
        }
        if (self.hits.len() as u64) < u64::from(self.limit) {
            self.hits.push_back(now);
            return Ok(());
        }
        let wait = match self.hits.front() {
            Some(oldest) => self.window.saturating_sub(now.duration_since(*oldest)),
            None => self.window,
        };
        // Round up: a client sleeping Retry-After seconds must then get through.
        let secs = wait.as_millis().div_ceil(1000).max(1);
        Err(u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_reopens() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(3, Duration::from_secs(5));
        for _ in 0..3 {
            assert!(w.try_acquire(t0).is_ok());
        }
        assert_eq!(w.try_acquire(t0 + Duration::from_millis(1500)), Err(4));
        assert!(w.try_acquire(t0 + Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn zero_limit_always_refuses() {
        let mut w = SlidingWindow::new(0, Duration::from_secs(1));
        assert!(w.try_acquire(Instant::now()).is_err());
    }
}
