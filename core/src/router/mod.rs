//! The router: turns a validated policy into live deployments and serves requests through
//! them, choosing per request where it goes and what to do when that fails.
//!
//! Layout of the module:
//! - `mod.rs` (this file): the public [`Router`] API, policy compilation and hot reload;
//! - `select.rs`: route matching, candidate filtering (with skip reasons), strategy order;
//! - `attempt.rs`: the one attempt loop (retries, fallbacks, hedging, deadlines, breakers);
//! - `stream.rs`: streaming on top of the attempt loop (commit point, post-commit failures);
//! - `cached.rs`: the response cache's hooks around chat and stream (lookup, store, replay);
//! - `explain.rs`: the one-sentence trace explanation;
//! - `health.rs`: per-deployment breaker and latency statistics, kept across reloads;
//! - `canary.rs`, `shadow.rs`: a route's canary (draw, comparison, withdrawal) and shadow
//!   copies (sent in the background, compared with the served answer).
//!
//! The router never looks at wire formats (that is the provider adapters' job) and is the
//! only place that retries or sleeps.

mod attempt;
mod builder;
mod cached;
mod canary;
mod compile;
mod explain;
mod fleet_sync;
pub mod health;
mod lifecycle;
mod select;
mod shadow;
mod stream;
#[cfg(test)]
mod tests;
mod validate_output;
pub use validate_output::schema_errors;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::budget::{BudgetStatus, Budgets, StateStore};
use crate::catalog::Pricing;
use crate::clock::{Chance, Clock};
use crate::error::{Error, Result};
use crate::policy::{Policy, PolicySpec, RouteSpec, TimeoutSpec};
use crate::provider::{Endpoint, ProviderKind, Transport, TransportOptions};
use crate::resilience::breaker::{BreakerSnapshot, BreakerState};
use crate::resilience::retry::RetryBudget;
use crate::telemetry::{BudgetGauge, CacheGauge, DeploymentGauge, RouterEvent, Telemetry};
use crate::types::{ChatRequest, ChatResponse, Usage};

pub use builder::RouterBuilder;

pub use health::DeploymentHealth;
pub use select::RoutePlan;
pub use stream::ChatStream;

/// Defaults applied when neither the deployment nor the route sets a timeout.
pub const DEFAULT_FIRST_TOKEN: Duration = Duration::from_secs(30);
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);
pub const DEFAULT_TOTAL: Duration = Duration::from_secs(120);

pub use crate::catalog::Capabilities;

/// A deployment, compiled: endpoint plus everything selection needs to know.
#[derive(Debug)]
pub struct Deployment {
    pub name: String,
    pub provider: String,
    pub provider_kind: ProviderKind,
    pub model: String,
    pub region: Option<String>,
    pub tags: Vec<String>,
    pub weight: f64,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub capabilities: Capabilities,
    /// Prices: the policy's override, else the catalog's; `None` = unknown (cost reported as
    /// unknown, never as zero).
    pub pricing: Option<Pricing>,
    pub timeouts: TimeoutSpec,
    pub rate_limit: Option<crate::policy::RateLimitSpec>,
    pub endpoint: Endpoint,
    pub health: Arc<DeploymentHealth>,
}

impl Deployment {
    /// USD for this usage at this deployment's prices; `None` when prices are unknown.
    pub fn cost(&self, u: &Usage) -> Option<f64> {
        self.pricing.as_ref().map(|p| crate::catalog::cost_usd(p, u))
    }

    /// Expected cost of a request before sending it (for `cheapest` and budgets).
    pub fn expected_cost(&self, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        self.cost(&Usage { input_tokens, output_tokens, ..Default::default() })
    }
}

/// Route, compiled: resolved deployments per tier.
#[derive(Debug)]
pub(crate) struct Route {
    /// Shared with every request on the route (`RequestCtx::route`): a request holds it
    /// for its whole life, and copying a whole route spec per request showed in profiles.
    pub spec: Arc<RouteSpec>,
    /// Tier 0 is the route's own deployments, then one per fallback.
    pub tiers: Vec<TierRt>,
    pub canary: Option<Arc<canary::CanaryRt>>,
    pub shadow: Option<Arc<shadow::ShadowRt>>,
}

#[derive(Debug)]
pub(crate) struct TierRt {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
    pub on: Vec<crate::ErrorKind>,
    pub static_response: Option<String>,
}

/// One immutable compiled policy. Requests hold an `Arc` to the one they started with, so a
/// reload never changes the rules under a request in flight.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub spec: PolicySpec,
    pub deployments: HashMap<String, Arc<Deployment>>,
    pub routes: Vec<Route>,
    pub default_route: Option<usize>,
    pub retry_budget: Arc<RetryBudget>,
    pub budgets: Arc<Budgets>,
    pub guards: Arc<crate::guard::Guards>,
    /// Some route has `cache:` (when none has, a request skips the cache's route matching).
    pub caches: bool,
}

pub(crate) struct RouterInner {
    pub state: RwLock<Arc<Compiled>>,
    /// Health by deployment name; reused on reload when the identity is unchanged.
    pub health: Mutex<HashMap<String, Arc<DeploymentHealth>>>,
    pub transport: Arc<dyn Transport>,
    pub seq: std::sync::atomic::AtomicU64,
    /// Request ids' prefix, `pr-<process id in hex>-`: the process id asked of the kernel
    /// once per router (a syscall per request showed in profiles; a forked child's bindings
    /// build their own router), its text written once (hex digits per request did too).
    pub id_prefix: String,
    pub telemetry: Arc<Telemetry>,
    /// Budgets, rate-limit counters and (shared) fleet health; shared with other routers
    /// when given one store, with other processes through Redis.
    pub store: Arc<crate::state::State>,
    /// The fleet sync task, started by the first request when the store is shared.
    pub fleet_sync: tokio::sync::OnceCell<()>,
    pub clock: Arc<dyn Clock>,
    pub chance: Arc<Chance>,
    /// The response cache: one store for the router's life, emptied only when a reload
    /// changes `cache.max_bytes`.
    pub cache: crate::cache::ResponseCache,
    /// The host's key provider (`RouterBuilder::api_keys`), handed to every compiled provider
    /// without a key of its own, on build and on reload.
    pub api_keys: Option<crate::provider::credentials::HostKeys>,
}

/// The public entry point. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<RouterInner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

/// Breaker and health of one deployment, for `breakers()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    pub deployment: String,
    pub provider: String,
    pub model: String,
    pub breaker: BreakerSnapshot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ewma_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p95_ms: Option<f64>,
    pub success_rate: f64,
}

impl Router {
    /// Build from policy text (YAML or JSON).
    pub fn from_policy_str(text: &str) -> Result<Router> {
        Router::new(Policy::from_str(text)?)
    }

    pub fn from_policy_file(path: impl AsRef<std::path::Path>) -> Result<Router> {
        Router::new(Policy::from_file(path)?)
    }

    pub fn new(policy: Policy) -> Result<Router> {
        Router::builder(policy).build()
    }

    pub fn with_options(policy: Policy, opts: TransportOptions) -> Result<Router> {
        Router::builder(policy).transport_options(opts).build()
    }

    /// A router whose budgets and rate limits live in `store`, which other routers (or, with
    /// a shared implementation, other processes) may use too: they then hold one ceiling.
    pub fn with_store(policy: Policy, store: Arc<dyn StateStore>) -> Result<Router> {
        Router::builder(policy).store(store).build()
    }

    /// Everything a router can be given: policy, transport options, state store, clock and
    /// the seed of its random choices. See [`RouterBuilder`].
    pub fn builder(policy: Policy) -> RouterBuilder {
        RouterBuilder::new(policy)
    }

    /// Swap in a new policy atomically. An invalid policy is rejected and the current one
    /// keeps serving; breaker and latency state survive for unchanged deployments.
    pub fn reload(&self, policy: Policy) -> Result<()> {
        let result = self.inner.compile(policy).map(|compiled| {
            self.inner.cache.configure(compiled.spec.cache.max_bytes.0);
            *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        });
        self.inner.telemetry.emit(RouterEvent::PolicyReloaded { ok: result.is_ok(), error: result.as_ref().err().map(|e| e.message.clone()) });
        result
    }

    pub fn reload_str(&self, text: &str) -> Result<()> {
        match Policy::from_str(text) {
            Ok(p) => self.reload(p),
            Err(e) => {
                self.inner.telemetry.emit(RouterEvent::PolicyReloaded { ok: false, error: Some(e.message.clone()) });
                Err(e)
            }
        }
    }

    /// Prometheus text exposition of this router's metrics (validated by `promtool`).
    pub fn metrics_text(&self) -> String {
        let now = self.inner.clock.now();
        let c = self.snapshot();
        let mut deps: Vec<DeploymentGauge> = c
            .deployments
            .values()
            .map(|d| DeploymentGauge {
                deployment: d.name.clone(),
                provider: d.provider.clone(),
                model: d.model.clone(),
                breaker_state: d.health.breaker.state(now).as_str(),
            })
            .collect();
        deps.sort_by(|a, b| a.deployment.cmp(&b.deployment));
        let budgets: Vec<BudgetGauge> = self
            .budgets()
            .into_iter()
            .map(|b| BudgetGauge { unit: b.unit.as_str(), budget: b.budget, scope: b.scope, limit: b.limit, remaining: b.remaining })
            .collect();
        let u = self.inner.cache.usage();
        let cache = CacheGauge { entries: u.entries, bytes: u.bytes, max_bytes: u.max_bytes };
        self.inner.telemetry.metrics.render(&deps, &budgets, cache)
    }

    /// Serve `metrics_text()` on `GET /metrics` at `addr` from a background thread (for
    /// processes without an HTTP server). Dropping the handle stops it.
    pub fn serve_metrics(&self, addr: &str) -> Result<crate::telemetry::http::MetricsServer> {
        let me = self.clone();
        crate::telemetry::http::MetricsServer::start(addr, move || me.metrics_text())
    }

    /// Admit one request of a caller-side limit `name` (e.g. "key `alice`") allowed
    /// `per_minute` requests over any minute, counted in the router's state store (shared by
    /// a fleet with `state.redis`). `rate_limited` with the wait when over.
    pub async fn admit(&self, name: &str, per_minute: u64) -> Result<()> {
        let budgets = self.snapshot().budgets.clone();
        let now = self.inner.clock.unix_now();
        match budgets.admit(&format!("caller_rate_limit:{name}"), per_minute, now).await {
            Ok(()) => Ok(()),
            Err(crate::budget::Denied::Store(e)) => Err(e),
            Err(crate::budget::Denied::Budget(info)) => {
                let wait = (info.resets_at - now).max(1.0);
                let mut e = Error::new(crate::ErrorKind::RateLimited, format!("{name} is over its rate limit of {per_minute} requests per minute"));
                e.retry_after = std::time::Duration::try_from_secs_f64(wait).ok();
                e.budget = Some(Box::new(info));
                Err(e)
            }
        }
    }

    /// Spent, reserved and remaining per budget in its current period.
    pub fn budgets(&self) -> Vec<BudgetStatus> {
        self.snapshot().budgets.status(self.inner.clock.unix_now())
    }

    /// Per route: requests, successes, and the cost of all attempts divided by successes.
    pub fn route_costs(&self) -> Vec<crate::telemetry::metrics::RouteCost> {
        self.inner.telemetry.metrics.route_costs()
    }

    /// Call `callback` with every router event (JSON-serialisable [`RouterEvent`]s), on a
    /// dedicated thread. A slow callback loses events rather than slowing requests; a
    /// panicking one is contained. Returns an id for [`Router::unsubscribe`].
    pub fn subscribe(&self, callback: impl Fn(&RouterEvent) + Send + Sync + 'static) -> u64 {
        self.inner.telemetry.subscribe(Arc::new(callback))
    }

    /// Block until every event emitted before this call has reached every callback (at most
    /// 5 s; `false` if that was not enough). For tests and for a clean shutdown that must
    /// not lose the last events; blocking, so call it where blocking is allowed.
    pub fn flush_events(&self) -> bool {
        self.inner.telemetry.flush()
    }

    pub fn unsubscribe(&self, id: u64) -> bool {
        self.inner.telemetry.unsubscribe(id)
    }

    pub(crate) fn snapshot(&self) -> Arc<Compiled> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Send a request and return the complete answer (with its trace).
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse> {
        // Not boxed here: `attempt::chat` boxes the path it takes, so what callers hold, move
        // and spawn is ~1 KB (it was 15 KB, moved whole by every executor, `block_on` and
        // binding: memmove was 14 % of the router's own time in a sync profile).
        attempt::chat(self, req).await
    }

    /// Send a request and stream the answer. See [`ChatStream`] for the guarantees.
    pub async fn stream(&self, req: ChatRequest) -> Result<ChatStream> {
        // Boxed like `chat`'s.
        Box::pin(stream::open(self, req)).await
    }

    /// The policy currently serving (secrets are not part of it: literal keys are never
    /// serialised).
    pub fn policy(&self) -> PolicySpec {
        self.snapshot().spec.clone()
    }

    /// Where would this request go, and why, without sending anything.
    pub fn plan(&self, req: &ChatRequest) -> Result<RoutePlan> {
        select::plan(&self.snapshot(), req, false, self.inner.clock.now(), &self.inner.chance)
    }

    /// The route `chat` (`stream == false`) or `stream` would take for this request under the
    /// current policy, guards' `set_data_class` included, without sending or recording
    /// anything. For access checks: the gateway asks here, then names the route it allowed.
    /// Names of the current policy's routes, in order: what `policy()` would give for this,
    /// without copying the rest of the policy (the gateway asks on every request).
    pub fn route_names(&self) -> Vec<String> {
        self.snapshot().routes.iter().map(|r| r.spec.name.clone()).collect()
    }

    /// The current policy's gateway keys (digests only), without copying the rest of it.
    pub fn keys(&self) -> Vec<crate::policy::KeySpec> {
        self.snapshot().spec.keys.clone()
    }

    pub fn route_for(&self, req: &ChatRequest, stream: bool) -> Result<String> {
        let compiled = self.snapshot();
        let route_of = |r: &ChatRequest| select::match_route(&compiled, r, stream).map(|(route, _)| route.spec.name.clone());
        if compiled.guards.is_empty() {
            return route_of(req);
        }
        let mut guarded = req.clone();
        compiled.guards.apply(&mut guarded, |r| route_of(r).ok());
        route_of(&guarded)
    }

    /// Health of every deployment of the current policy.
    pub fn deployments(&self) -> Vec<DeploymentStatus> {
        let c = self.snapshot();
        let now = self.inner.clock.now();
        let mut v: Vec<_> = c
            .deployments
            .values()
            .map(|d| {
                let mut s = d.health.stats();
                DeploymentStatus {
                    deployment: d.name.clone(),
                    provider: d.provider.clone(),
                    model: d.model.clone(),
                    breaker: d.health.breaker.snapshot(now),
                    ttft_ewma_ms: s.ewma_ms(),
                    ttft_p95_ms: s.p95_ms(),
                    success_rate: s.success_rate(now).0,
                }
            })
            .collect();
        v.sort_by(|a, b| a.deployment.cmp(&b.deployment));
        v
    }

    /// Operator control of a deployment's breaker (`closed` resets it).
    pub fn set_breaker(&self, deployment: &str, state: BreakerState) -> Result<()> {
        let c = self.snapshot();
        let d = c.deployments.get(deployment).ok_or_else(|| Error::config(format!("unknown deployment `{deployment}`")))?;
        if let Some(tr) = d.health.breaker.set(state, self.inner.clock.now()) {
            self.inner.telemetry.emit(RouterEvent::BreakerChanged {
                deployment: deployment.to_string(),
                from: tr.from,
                to: tr.to,
                reason: tr.reason,
            });
        }
        Ok(())
    }

    pub fn reset_breaker(&self, deployment: &str) -> Result<()> {
        self.set_breaker(deployment, BreakerState::Closed)
    }
}
