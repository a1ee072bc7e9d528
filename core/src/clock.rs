//! Time and chance, injected.
//!
//! Everything in the router that depends on "now" or on a random draw goes through the
//! [`Clock`] and the [`Chance`] a router was built with, so a test can fix both and get the
//! same answer every run (a flaky least-latency test and calendar-budget edge cases were the
//! price of reading the globals directly).
//!
//! Monotonic time is tokio's `Instant`: under `tokio::time::pause()` it stands still and
//! `sleep` advances it, which is how the router's waits are tested without sleeping. A clock
//! therefore never invents its own monotonic time (sleeps would disagree with it); what it
//! may fix is the wall clock, which budgets (calendar periods) and retry hints given as HTTP
//! dates need. [`FixedClock`] starts the wall clock at a chosen Unix time and advances it with
//! tokio's (paused or not) monotonic clock.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// Monotonic and wall time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time (tokio's, so paused time applies).
    fn now(&self) -> Instant {
        Instant::now()
    }
    /// Wall time in Unix seconds.
    fn unix_now(&self) -> f64;
}

/// The real clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_now(&self) -> f64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    }
}

/// A wall clock that starts at `unix_start` when created and then follows tokio's monotonic
/// clock: with paused time, a test controls both with `tokio::time::advance`.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock {
    unix_start: f64,
    mono_start: Instant,
}

impl FixedClock {
    /// Must be created inside the runtime whose clock it follows (paused or not).
    pub fn starting_at(unix_start: f64) -> Self {
        FixedClock { unix_start, mono_start: Instant::now() }
    }
}

impl Clock for FixedClock {
    fn unix_now(&self) -> f64 {
        self.unix_start + Instant::now().saturating_duration_since(self.mono_start).as_secs_f64()
    }
}

/// The source of every random choice the router makes (backoff jitter, weighted order, the
/// two choices of least-latency, breaker open-time jitter). The default draws from the
/// thread-local generator (no lock on the request path); a seeded one is reproducible.
#[derive(Debug, Default)]
pub struct Chance {
    seeded: Option<Mutex<StdRng>>,
}

impl Chance {
    pub fn from_entropy() -> Self {
        Chance { seeded: None }
    }

    pub fn seeded(seed: u64) -> Self {
        Chance { seeded: Some(Mutex::new(StdRng::seed_from_u64(seed))) }
    }

    /// Uniform in [0, 1).
    pub fn unit(&self) -> f64 {
        match &self.seeded {
            None => rand::rng().random::<f64>(),
            Some(m) => m.lock().unwrap_or_else(|p| p.into_inner()).random::<f64>(),
        }
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_chance_repeats_and_stays_in_range() {
        let a: Vec<f64> = (0..50)
            .map({
                let c = Chance::seeded(7);
                move |_| c.unit()
            })
            .collect();
        let c = Chance::seeded(7);
        let b: Vec<f64> = (0..50).map(|_| c.unit()).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let c = Chance::seeded(1);
        assert!((0..1000).map(|_| c.below(3)).all(|i| i < 3));
        assert_eq!((0..1000).map(|_| c.below(3)).collect::<std::collections::BTreeSet<_>>().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_clock_follows_paused_time() {
        let c = FixedClock::starting_at(1_000.0);
        assert_eq!(c.unix_now(), 1_000.0);
        tokio::time::advance(std::time::Duration::from_millis(2500)).await;
        assert_eq!(c.unix_now(), 1_002.5);
    }
}
