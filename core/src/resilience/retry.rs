//! Backoff schedule and the process-wide retry budget.
//!
//! Backoff is exponential with "full jitter" on the upper half (AWS architecture blog's
//! recommendation): delay = base·2^n capped, then uniformly in [delay/2, delay]. A provider's
//! retry hint replaces the computed delay when larger, up to `max_retry_after`; a longer hint
//! means "fall over instead of waiting" (decided by the router, which knows the alternatives).
//!
//! The retry budget (after `tower::retry::budget`) caps same-deployment retries at
//! `ratio` × recent requests + `min_per_second` × window, so when a provider goes down the
//! extra load we add is bounded no matter how many requests arrive.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::window::Window;
use crate::policy::{RetryBudgetSpec, RetrySpec};

/// Delay before retry number `retry` (1 = first retry) on the same deployment.
pub fn backoff(spec: &RetrySpec, retry: u32, unit_random: f64) -> Duration {
    let exp = spec.base_delay.0.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let capped = exp.min(spec.max_delay.0);
    capped.mul_f64(0.5 + 0.5 * unit_random.clamp(0.0, 1.0))
}

/// What to wait given the computed backoff and a provider hint. `None` means the hint is
/// longer than we are willing to wait: fall over.
pub fn wait_for(spec: &RetrySpec, computed: Duration, hint: Option<Duration>) -> Option<Duration> {
    match hint {
        Some(h) if h > spec.max_retry_after.0 => None,
        Some(h) => Some(h.max(computed)),
        None => Some(computed),
    }
}

#[derive(Debug)]
pub struct RetryBudget {
    spec: RetryBudgetSpec,
    /// Requests are counted as "calls", retries as "failures" of the same window: one
    /// structure, two counters that age together.
    window: Mutex<Window>,
}

impl RetryBudget {
    pub fn new(spec: RetryBudgetSpec, now: Instant) -> Self {
        let window = Mutex::new(Window::new(spec.window.0, now));
        RetryBudget { spec, window }
    }

    pub fn on_request(&self, now: Instant) {
        self.window.lock().unwrap_or_else(|p| p.into_inner()).add(now, false, false);
    }

    /// Take one retry from the budget if there is one.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let c = w.counts(now);
        let requests = c.calls - c.failures;
        let retries = c.failures;
        let allowed = self.spec.ratio * requests as f64 + self.spec.min_per_second * self.spec.window.0.as_secs_f64();
        if (retries as f64) < allowed {
            // A retry is recorded as a failed "call" so it ages out with the window.
            w.add(now, true, false);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Dur;

    #[test]
    fn backoff_grows_caps_and_jitters_in_upper_half() {
        let s = RetrySpec { base_delay: Dur::ms(100), max_delay: Dur::ms(1000), ..Default::default() };
        assert_eq!(backoff(&s, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&s, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(&s, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(&s, 10, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff(&s, 40, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn hint_wins_up_to_cap_then_means_fall_over() {
        let s = RetrySpec { max_retry_after: Dur::secs(10), ..Default::default() };
        let c = Duration::from_millis(300);
        assert_eq!(wait_for(&s, c, None), Some(c));
        assert_eq!(wait_for(&s, c, Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
        assert_eq!(wait_for(&s, c, Some(Duration::from_millis(10))), Some(c));
        assert_eq!(wait_for(&s, c, Some(Duration::from_secs(11))), None);
    }

    #[test]
    fn budget_limits_retries_to_ratio_plus_floor() {
        let t0 = Instant::now();
        let b = RetryBudget::new(RetryBudgetSpec { ratio: 0.2, min_per_second: 1.0, window: Dur::secs(10) }, t0);
        for _ in 0..100 {
            b.on_request(t0);
        }
        // 0.2 × 100 + 1/s × 10 s = 30 retries
        let granted = (0..1000).filter(|_| b.try_withdraw(t0)).count();
        assert_eq!(granted, 30);
        // After the window, the budget refills.
        let later = t0 + Duration::from_secs(11);
        assert!(b.try_withdraw(later));
    }
}
