//! What a fleet shares about each deployment besides budgets: breaker trips (and the one
//! half-open probe), provider-announced exhaustion, and latency statistics.
//!
//! Trips and exhaustion are published the moment a process sees them (off the request
//! path); every process pulls the fleet's view in one pipelined round trip per sync interval
//! (`router/fleet_sync.rs`), never per request. Durations live in Redis as key expiries
//! (PTTL), so the fleet agrees on "open for 30 s more" whatever each machine's clock says.

use std::collections::HashMap;
use std::time::Duration;

use super::StoreFuture;

/// One process's latency figures for one deployment, as pushed to the fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyReport {
    pub ewma_ms: f64,
    pub p95_ms: Option<f64>,
    /// Calls behind it (weights the fleet average).
    pub calls: u64,
}

/// The fleet's view of one deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentView {
    /// Open fleet-wide for this long, and why.
    pub open: Option<(Duration, String)>,
    /// A probe closed it recently somewhere in the fleet.
    pub closed: bool,
    /// A provider said it is exhausted for this long, and what it said.
    pub exhausted: Option<(Duration, String)>,
    /// Latency EWMA over every process that reported recently, weighted by calls.
    pub ewma_ms: Option<f64>,
    /// p95 over the processes that have one, weighted the same way (an approximation: the
    /// fleet's true p95 would need every sample).
    pub p95_ms: Option<f64>,
    pub calls: u64,
}

pub trait FleetStore: Send + Sync {
    /// A breaker tripped: open fleet-wide for `open_for` (never shortening a longer open).
    fn publish_open<'a>(&'a self, dep: &'a str, open_for: Duration, reason: &'a str) -> StoreFuture<'a, ()>;
    /// A probe succeeded: the deployment is closed for everyone.
    fn publish_closed<'a>(&'a self, dep: &'a str) -> StoreFuture<'a, ()>;
    /// Take the fleet's single half-open probe of `dep` for `ttl`; false if another has it.
    fn claim_probe<'a>(&'a self, dep: &'a str, ttl: Duration) -> StoreFuture<'a, bool>;
    fn publish_exhausted<'a>(&'a self, dep: &'a str, for_: Duration, why: &'a str) -> StoreFuture<'a, ()>;
    /// Push this process's latency reports and read the fleet's view of `deps`.
    fn sync<'a>(&'a self, me: &'a str, reports: &'a [(String, LatencyReport)], deps: &'a [String]) -> StoreFuture<'a, Vec<DeploymentView>>;
}

/// Reports older than this are a process that stopped (or lost the store): not averaged.
pub(crate) const REPORT_TTL_MS: u64 = 60_000;
/// How long "closed by a probe" is visible to processes that still hold it open.
pub(crate) const CLOSED_MARK_MS: u64 = 10_000;

pub(crate) fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

pub(crate) fn view(
    (open_ttl, open_why, closed, ex_ttl, ex_why, lat): (i64, Option<String>, bool, i64, Option<String>, HashMap<String, String>),
    now_ms: u64,
) -> DeploymentView {
    let (mut weighted, mut calls, mut p95w, mut p95n) = (0.0, 0u64, 0.0, 0u64);
    for v in lat.values() {
        let mut it = v.split(':');
        let (Some(e), Some(c), Some(t)) = (it.next(), it.next(), it.next()) else { continue };
        let (Ok(e), Ok(c), Ok(t)) = (e.parse::<f64>(), c.parse::<u64>(), t.parse::<u64>()) else { continue };
        if now_ms.saturating_sub(t) > REPORT_TTL_MS || !e.is_finite() {
            continue;
        }
        // A process that reported an average with no calls still counts once.
        let w = c.max(1);
        weighted += e * w as f64;
        calls += w;
        if let Some(p) = it.next().and_then(|p| p.parse::<f64>().ok()).filter(|p| p.is_finite()) {
            p95w += p * w as f64;
            p95n += w;
        }
    }
    DeploymentView {
        open: (open_ttl > 0).then(|| (Duration::from_millis(open_ttl as u64), open_why.unwrap_or_default())),
        closed,
        exhausted: (ex_ttl > 0).then(|| (Duration::from_millis(ex_ttl as u64), ex_why.unwrap_or_default())),
        ewma_ms: (calls > 0).then(|| weighted / calls as f64),
        p95_ms: (p95n > 0).then(|| p95w / p95n as f64),
        calls,
    }
}
