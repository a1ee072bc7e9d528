//! What the router knows about each deployment's recent behaviour: breaker, time-to-first-
//! token statistics and success rate. Kept per deployment and carried across policy reloads
//! when the deployment is unchanged, so a reload never forgets a ban.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Chance;
use crate::policy::BreakerSpec;
use crate::provider::ratelimit::{LimitSink, ProviderLimits};
use crate::resilience::breaker::Breaker;
use crate::resilience::window::Window;

/// Samples kept for percentile estimates: enough for a stable p95, small enough to sort.
const SAMPLES: usize = 128;
/// Weight of a new sample in the EWMA when it is lower than the average; higher samples
/// replace the average outright (peak-EWMA, as in Finagle/linkerd), so a deployment that
/// just got slow stops being preferred at once and recovers gradually.
const EWMA_ALPHA: f64 = 0.2;

#[derive(Debug)]
pub struct LatencyStats {
    ewma_ms: Option<f64>,
    samples: VecDeque<f64>,
    outcomes: Window,
    /// The fleet's figures (EWMA, p95) and when they were read; preferred while fresh.
    fleet: Option<(f64, Option<f64>, Instant)>,
}

/// Fleet figures older than this (the store went away) give way to this process's own.
const FLEET_FRESH: Duration = Duration::from_secs(5);

impl LatencyStats {
    fn new(now: Instant) -> Self {
        LatencyStats { ewma_ms: None, samples: VecDeque::with_capacity(SAMPLES), outcomes: Window::new(Duration::from_secs(300), now), fleet: None }
    }

    pub fn observe_ttft(&mut self, ttft: Duration) {
        let x = ttft.as_secs_f64() * 1000.0;
        self.ewma_ms = Some(match self.ewma_ms {
            Some(e) if x < e => e + EWMA_ALPHA * (x - e),
            _ => x,
        });
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(x);
    }

    pub fn observe_outcome(&mut self, now: Instant, ok: bool) {
        self.outcomes.add(now, !ok, false);
    }

    /// The fleet's EWMA while fresh, else this process's.
    pub fn ewma_ms(&self) -> Option<f64> {
        match self.fleet {
            Some((e, _, at)) if at.elapsed() < FLEET_FRESH => Some(e),
            _ => self.ewma_ms,
        }
    }

    pub fn local_ewma_ms(&self) -> Option<f64> {
        self.ewma_ms
    }

    /// What the fleet reported (`None` forgets it).
    pub fn set_fleet(&mut self, ewma_ms: Option<f64>, p95_ms: Option<f64>, now: Instant) {
        self.fleet = ewma_ms.map(|e| (e, p95_ms, now));
    }

    /// Calls over the last five minutes.
    pub fn calls(&mut self, now: Instant) -> u64 {
        self.outcomes.counts(now).calls
    }

    /// The fleet's p95 while fresh, else this process's.
    pub fn p95_ms(&self) -> Option<f64> {
        match self.fleet {
            Some((_, Some(p), at)) if at.elapsed() < FLEET_FRESH => Some(p),
            _ => self.local_p95_ms(),
        }
    }

    pub fn local_p95_ms(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let idx = ((v.len() as f64 * 0.95).ceil() as usize).saturating_sub(1).min(v.len() - 1);
        Some(v[idx])
    }

    /// Success rate over the last five minutes, with the number of calls it rests on.
    pub fn success_rate(&mut self, now: Instant) -> (f64, u64) {
        let c = self.outcomes.counts(now);
        if c.calls == 0 {
            (1.0, 0)
        } else {
            (1.0 - c.failures as f64 / c.calls as f64, c.calls)
        }
    }
}

#[derive(Debug)]
pub struct DeploymentHealth {
    pub breaker: Arc<Breaker>,
    pub latency: Mutex<LatencyStats>,
    /// Identity the health belongs to; a reload that changes it starts fresh.
    pub identity: String,
    /// The provider's last word on remaining requests/tokens, and when it was said.
    limits: Mutex<Option<(ProviderLimits, Instant)>>,
    /// Exhaustion another process of the fleet saw: what, and until when.
    fleet_exhausted: Mutex<Option<(String, Instant)>>,
    /// When the limits last published to the fleet were said (publish each word once).
    published: Mutex<Option<Instant>>,
}

impl LimitSink for DeploymentHealth {
    fn observe(&self, limits: ProviderLimits) {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = Some((limits, Instant::now()));
    }
}

impl DeploymentHealth {
    pub fn new(identity: String, breaker: BreakerSpec, now: Instant) -> Arc<Self> {
        DeploymentHealth::with_chance(identity, breaker, now, Arc::new(Chance::from_entropy()))
    }

    pub fn with_chance(identity: String, breaker: BreakerSpec, now: Instant, chance: Arc<Chance>) -> Arc<Self> {
        Arc::new(DeploymentHealth {
            breaker: Breaker::with_chance(breaker, now, chance),
            latency: Mutex::new(LatencyStats::new(now)),
            identity,
            limits: Mutex::new(None),
            fleet_exhausted: Mutex::new(None),
            published: Mutex::new(None),
        })
    }

    /// If the provider said this deployment cannot take a request needing `tokens` right
    /// now: why, and how long until its reset.
    pub fn exhausted(&self, now: Instant, tokens: u64) -> Option<(String, Duration)> {
        if let Some((why, until)) = &*self.fleet_exhausted.lock().unwrap_or_else(|p| p.into_inner()) {
            if *until > now {
                return Some((format!("{why} (seen by another process of the fleet)"), *until - now));
            }
        }
        self.own_exhausted(now, tokens)
    }

    fn own_exhausted(&self, now: Instant, tokens: u64) -> Option<(String, Duration)> {
        let g = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let (l, at) = g.as_ref()?;
        let left = |reset: Option<Duration>| reset.map(|r| (*at + r).saturating_duration_since(now)).filter(|d| !d.is_zero());
        if l.requests_remaining == Some(0) {
            if let Some(d) = left(l.requests_reset) {
                return Some(("provider reports 0 requests left".into(), d));
            }
        }
        if let Some(t) = l.tokens_remaining {
            if t < tokens {
                if let Some(d) = left(l.tokens_reset) {
                    return Some((format!("provider reports {t} tokens left, request may need {tokens}"), d));
                }
            }
        }
        None
    }

    /// What the fleet says about exhaustion (`None`: nothing).
    pub fn set_fleet_exhausted(&self, v: Option<(String, Instant)>) {
        *self.fleet_exhausted.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// This process's own exhaustion (no requests or no tokens left), once per provider word.
    pub fn unpublished_exhaustion(&self, now: Instant) -> Option<(String, Duration)> {
        let at = self.limits.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, at)| *at)?;
        let mut p = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if *p == Some(at) {
            return None;
        }
        let found = self.own_exhausted(now, 1)?;
        *p = Some(at);
        Some(found)
    }

    pub fn stats(&self) -> std::sync::MutexGuard<'_, LatencyStats> {
        self.latency.lock().unwrap_or_else(|p| p.into_inner())
    }
}
