//! A time-bucketed sliding window of call outcomes, shared by the circuit breaker, route
//! health (success rate for the `cheapest` SLO) and the retry budget.
//!
//! Time is passed in (`now`), never read here, so every user is testable with a fake clock.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub failures: u64,
    pub slow: u64,
}

#[derive(Debug, Clone)]
pub struct Window {
    bucket: Duration,
    /// (bucket index since `origin`, counts), oldest first, at most `n` entries.
    buckets: std::collections::VecDeque<(u64, Counts)>,
    n: u64,
    origin: Instant,
}

impl Window {
    /// A window of `span`, kept in ten buckets (so it slides in tenths of its span).
    pub fn new(span: Duration, origin: Instant) -> Self {
        let n = 10u64;
        let bucket = (span / n as u32).max(Duration::from_millis(1));
        Window { bucket, buckets: Default::default(), n, origin }
    }

    fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / self.bucket.as_nanos()) as u64
    }

    fn evict(&mut self, idx: u64) {
        while let Some((i, _)) = self.buckets.front() {
            if *i + self.n <= idx {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn add(&mut self, now: Instant, failed: bool, slow: bool) {
        let idx = self.index(now);
        self.evict(idx);
        if self.buckets.back().map(|(i, _)| *i) != Some(idx) {
            self.buckets.push_back((idx, Counts::default()));
        }
        let c = &mut self.buckets.back_mut().expect("just pushed").1;
        c.calls += 1;
        c.failures += u64::from(failed);
        c.slow += u64::from(slow);
    }

    pub fn counts(&mut self, now: Instant) -> Counts {
        self.evict(self.index(now));
        self.buckets.iter().fold(Counts::default(), |a, (_, c)| Counts {
            calls: a.calls + c.calls,
            failures: a.failures + c.failures,
            slow: a.slow + c.slow,
        })
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}
