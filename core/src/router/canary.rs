//! A route's canary at run time: which requests try it first, and the comparison that
//! withdraws it.
//!
//! Judged per route on attempts, not requests: every attempt on the canary and every attempt
//! on the route's other deployments inside the window, counting only outcomes the breaker
//! counts (a caller's bad request or a cancelled hedge says nothing about a deployment). A
//! withdrawal lasts until the policy is reloaded: a canary that came back by itself after a
//! bad minute would make every bad minute a canary's minute again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Deployment;
use crate::clock::Chance;
use crate::policy::{CanarySpec, Sticky};
use crate::types::ChatRequest;

/// Samples kept per side at most, so a busy route's window costs bounded memory.
const MAX_SAMPLES: usize = 4096;

#[derive(Default)]
struct Side {
    /// (when, ok, latency in ms) of recent attempts, oldest first.
    samples: VecDeque<(Instant, bool, f64)>,
}

impl Side {
    fn push(&mut self, at: Instant, ok: bool, latency_ms: f64) {
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at, ok, latency_ms));
    }

    fn prune(&mut self, since: Instant) {
        while self.samples.front().is_some_and(|s| s.0 < since) {
            self.samples.pop_front();
        }
    }

    fn error_rate(&self) -> f64 {
        let n = self.samples.len();
        if n == 0 {
            return 0.0;
        }
        self.samples.iter().filter(|s| !s.1).count() as f64 / n as f64
    }

    fn median_ok_latency(&self) -> Option<f64> {
        let mut l: Vec<f64> = self.samples.iter().filter(|s| s.1).map(|s| s.2).collect();
        if l.is_empty() {
            return None;
        }
        l.sort_by(f64::total_cmp);
        Some(l[l.len() / 2])
    }
}

pub(crate) struct CanaryRt {
    pub spec: CanarySpec,
    pub deployment: Arc<Deployment>,
    route: String,
    withdrawn: AtomicBool,
    why: Mutex<Option<String>>,
    sides: Mutex<(Side, Side)>,
}

impl std::fmt::Debug for CanaryRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryRt")
            .field("route", &self.route)
            .field("deployment", &self.deployment.name)
            .field("withdrawn", &self.is_withdrawn())
            .finish_non_exhaustive()
    }
}

impl CanaryRt {
    pub(crate) fn new(route: &str, spec: CanarySpec, deployment: Arc<Deployment>) -> CanaryRt {
        CanaryRt {
            spec,
            deployment,
            route: route.to_string(),
            withdrawn: AtomicBool::new(false),
            why: Mutex::new(None),
            sides: Mutex::new((Side::default(), Side::default())),
        }
    }

    pub(crate) fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Acquire)
    }

    /// Why it was withdrawn, once it was.
    pub(crate) fn withdrawn_because(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether this request tries the canary first.
    pub(crate) fn picks(&self, req: &ChatRequest, chance: &Chance) -> bool {
        if self.is_withdrawn() || self.spec.percent <= 0.0 {
            return false;
        }
        let key = match self.spec.sticky {
            Sticky::None => None,
            Sticky::Tenant => req.routing.tenant.as_deref(),
            Sticky::Feature => req.routing.feature.as_deref(),
        };
        let draw = match key {
            // Stable across processes and releases (not std's randomly keyed hasher), so a
            // fleet puts a tenant on the same side everywhere.
            Some(k) => (fnv1a(self.route.as_bytes(), k.as_bytes()) % 10_000) as f64 / 100.0,
            None => chance.unit() * 100.0,
        };
        draw < self.spec.percent
    }

    /// Record an attempt on one of the route's deployments: `ok` is `None` for outcomes that
    /// say nothing about the deployment. Returns why the canary was withdrawn, when this
    /// attempt is the one that withdrew it.
    pub(crate) fn record(&self, deployment: &str, ok: Option<bool>, latency_ms: f64, now: Instant) -> Option<String> {
        let ok = ok?;
        if self.is_withdrawn() {
            return None;
        }
        let canary = deployment == self.deployment.name;
        let mut sides = self.sides.lock().unwrap_or_else(|p| p.into_inner());
        let since = now.checked_sub(self.spec.window.0).unwrap_or(now - Duration::ZERO);
        let (c, p) = &mut *sides;
        if canary {
            c.push(now, ok, latency_ms);
        } else {
            p.push(now, ok, latency_ms);
        }
        c.prune(since);
        p.prune(since);
        // Judged only when the canary's own attempts change the picture.
        if !canary {
            return None;
        }
        let why = self.verdict(c, p)?;
        drop(sides);
        if self.withdrawn.swap(true, Ordering::AcqRel) {
            return None;
        }
        *self.why.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        Some(why)
    }

    fn verdict(&self, c: &Side, p: &Side) -> Option<String> {
        let min = self.spec.min_requests as usize;
        if c.samples.len() < min {
            return None;
        }
        let (cr, pr) = (c.error_rate(), if p.samples.len() >= min { p.error_rate() } else { 0.0 });
        if cr > pr + self.spec.max_error_rate_increase {
            return Some(format!(
                "error rate {:.0} % over {} attempts against {:.0} % for the route's own deployments (allowed: +{:.0} points)",
                cr * 100.0,
                c.samples.len(),
                pr * 100.0,
                self.spec.max_error_rate_increase * 100.0
            ));
        }
        if p.samples.len() >= min {
            if let (Some(cl), Some(pl)) = (c.median_ok_latency(), p.median_ok_latency()) {
                if pl > 0.0 && cl > pl * self.spec.max_latency_ratio {
                    return Some(format!(
                        "median latency {cl:.0} ms against {pl:.0} ms for the route's own deployments (allowed: {}x)",
                        self.spec.max_latency_ratio
                    ));
                }
            }
        }
        None
    }
}

fn fnv1a(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.iter().chain([0u8].iter()).chain(b) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(percent: f64, sticky: Sticky) -> CanarySpec {
        CanarySpec {
            deployment: "x".into(),
            percent,
            sticky,
            window: crate::policy::Dur::secs(60),
            min_requests: 3,
            max_error_rate_increase: 0.1,
            max_latency_ratio: 2.0,
        }
    }

    #[test]
    fn sticky_tenants_stay_on_one_side_and_the_share_is_about_right() {
        let mut on = 0;
        for i in 0..10_000 {
            let k = format!("tenant-{i}");
            let draw = (fnv1a(b"chat", k.as_bytes()) % 10_000) as f64 / 100.0;
            if draw < 5.0 {
                on += 1;
            }
            assert_eq!(draw, (fnv1a(b"chat", k.as_bytes()) % 10_000) as f64 / 100.0);
        }
        assert!((350..=650).contains(&on), "{on} of 10000 tenants at 5 %");
        let _ = spec(5.0, Sticky::Tenant);
    }
}
