//! The fleet sync: with a shared store, one background task per router pushes this
//! process's latency figures and provider-exhaustion sightings and pulls the fleet's view of
//! every deployment (breaker trips, the probe, exhaustion, latency) once per
//! `state.redis.sync_interval`, in one pipelined round trip. Requests never wait on it:
//! between syncs they read what the last one brought. It also refreshes the budget figures
//! that `budgets()` and the metrics show (fleet-wide), reports budget thresholds from them,
//! and, while the store is down, probes it and replays what was settled meanwhile.
//!
//! Trips and probe results are not left to the next sync: `publish` sends them the moment
//! they happen (in the background), so another process stops sending to a tripped
//! deployment within one sync interval.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Router, RouterInner};
use crate::health_types::BreakerState;
use crate::resilience::breaker::Transition;
use crate::state::fleet::LatencyReport;
use crate::state::State;
use crate::telemetry::RouterEvent;

const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);

/// Start the sync with the first request (a runtime exists by then). That request waits
/// for the first sync (bounded by the store timeout), so a process that just started does
/// not send to a deployment the fleet already knows is open.
pub(crate) async fn ensure_started(router: &Router) {
    let inner = &router.inner;
    if !inner.store.is_shared() || inner.fleet_sync.initialized() {
        return;
    }
    inner
        .fleet_sync
        .get_or_init(|| async {
            // Who this process is in the fleet's latency reports.
            let me = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
            tick(inner, &me).await;
            tokio::spawn(run(Arc::downgrade(&router.inner), me));
        })
        .await;
}

async fn run(weak: Weak<RouterInner>, me: String) {
    loop {
        let Some(interval) = weak.upgrade().map(|i| i.snapshot_interval()) else { return };
        tokio::time::sleep(interval).await;
        let Some(inner) = weak.upgrade() else { return };
        tick(&inner, &me).await;
        drop(inner); // a router dropped between ticks ends the task
    }
}

impl RouterInner {
    fn snapshot_interval(&self) -> Duration {
        let c = self.state.read().unwrap_or_else(|p| p.into_inner()).clone();
        c.spec.state.redis.as_ref().map(|r| r.sync_interval.0).unwrap_or(DEFAULT_INTERVAL)
    }
}

async fn tick(inner: &RouterInner, me: &str) {
    let state = inner.store.clone();
    if !state.heal().await {
        return;
    }
    let Some(fleet) = state.store().fleet() else { return };
    let compiled = inner.state.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut deps: Vec<(String, Arc<super::DeploymentHealth>)> =
        inner.health.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(n, h)| (n.clone(), h.clone())).collect();
    deps.sort_by(|a, b| a.0.cmp(&b.0));
    let now = inner.clock.now();
    for (name, h) in &deps {
        if let Some((why, for_)) = h.unpublished_exhaustion(now) {
            state.fleet_call("publish exhaustion", fleet.publish_exhausted(name, for_, &why)).await;
        }
    }
    let reports: Vec<(String, LatencyReport)> = deps
        .iter()
        .filter_map(|(n, h)| {
            let mut s = h.stats();
            let ewma = s.local_ewma_ms()?;
            Some((n.clone(), LatencyReport { ewma_ms: ewma, p95_ms: s.local_p95_ms(), calls: s.calls(now) }))
        })
        .collect();
    let names: Vec<String> = deps.iter().map(|(n, _)| n.clone()).collect();
    if let Some(views) = state.fleet_call("sync", fleet.sync(me, &reports, &names)).await {
        for ((name, h), v) in deps.iter().zip(views) {
            let tr = match &v.open {
                Some((for_, why)) => h.breaker.adopt_open(now, *for_, why),
                None if v.closed => h.breaker.adopt_closed(),
                None => None,
            };
            if let Some(tr) = tr {
                inner.telemetry.emit(RouterEvent::BreakerChanged { deployment: name.clone(), from: tr.from, to: tr.to, reason: tr.reason });
            }
            h.set_fleet_exhausted(v.exhausted.map(|(for_, why)| (why, now + for_)));
            h.stats().set_fleet(v.ewma_ms, v.p95_ms, now);
        }
    }
    let unix = inner.clock.unix_now();
    if !compiled.budgets.is_empty() && state.refresh(&compiled.budgets.status_keys(unix)).await.is_ok() {
        for (st, threshold) in compiled.budgets.crossed(unix) {
            inner.telemetry.emit(RouterEvent::BudgetThreshold { budget: st.budget, scope: st.scope, threshold, spent: st.spent, limit: st.limit });
        }
    }
}

/// Tell the fleet about a trip (open for how long) or a successful probe, in the background.
pub(crate) fn publish(state: &Arc<State>, deployment: &str, tr: &Transition) {
    if !state.is_shared() {
        return;
    }
    let open_for = match (tr.to, tr.open_for_ms) {
        // Adopted trips carry "open in the fleet" and are not sent back.
        (BreakerState::Open, Some(ms)) if !tr.reason.starts_with("open in the fleet") => Some(Duration::from_millis(ms)),
        (BreakerState::Closed, _) if tr.from == BreakerState::HalfOpen => None,
        _ => return,
    };
    let (state, dep, reason) = (state.clone(), deployment.to_string(), tr.reason.clone());
    crate::state::detach(async move {
        let Some(fleet) = state.store().fleet() else { return };
        match open_for {
            Some(d) => state.fleet_call("publish trip", fleet.publish_open(&dep, d, &reason)).await,
            None => state.fleet_call("publish close", fleet.publish_closed(&dep)).await,
        };
    });
}

/// Take the fleet's one half-open probe of `dep`. A store that cannot say leaves the
/// decision to this process's breaker.
pub(crate) async fn claim_probe(state: &Arc<State>, dep: &str, ttl: Duration) -> bool {
    let Some(fleet) = state.store().fleet() else { return true };
    state.fleet_call("claim probe", fleet.claim_probe(dep, ttl.max(Duration::from_millis(100)))).await.unwrap_or(true)
}
