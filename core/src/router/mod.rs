//! The router: turns a validated policy into live deployments and serves requests through
//! them, choosing per request where it goes and what to do when that fails.
//!
//! Layout of the module:
//! - `mod.rs` (this file): the public [`Router`] API, policy compilation and hot reload;
//! - `select.rs`: route matching, candidate filtering (with skip reasons), strategy order;
//! - `attempt.rs`: the one attempt loop (retries, fallbacks, hedging, deadlines, breakers);
//! - `stream.rs`: streaming on top of the attempt loop (commit point, post-commit failures);
//! - `explain.rs`: the one-sentence trace explanation;
//! - `health.rs`: per-deployment breaker and latency statistics, kept across reloads.
//!
//! The router never looks at wire formats (that is the provider adapters' job) and is the
//! only place that retries or sleeps.

mod attempt;
mod explain;
pub mod health;
mod select;
mod stream;
mod validate_output;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::catalog::{Catalog, Pricing};
use crate::policy::{Policy, PolicySpec, RouteSpec, TimeoutSpec};
use crate::provider::{build_provider, Endpoint, HttpTransport, ProviderConfig, ProviderKind, Transport, TransportOptions};
use crate::resilience::breaker::{BreakerSnapshot, BreakerState};
use crate::resilience::ratelimit::ObservingTransport;
use crate::resilience::retry::RetryBudget;
use crate::budget::{BudgetStatus, Budgets, MemoryStore, StateStore};
use crate::telemetry::{BudgetGauge, DeploymentGauge, RouterEvent, Telemetry};
use crate::types::{ChatRequest, ChatResponse, Usage};

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
    pub spec: RouteSpec,
    /// Tier 0 is the route's own deployments, then one per fallback.
    pub tiers: Vec<TierRt>,
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
}

pub(crate) struct RouterInner {
    pub state: RwLock<Arc<Compiled>>,
    /// Health by deployment name; reused on reload when the identity is unchanged.
    health: Mutex<HashMap<String, Arc<DeploymentHealth>>>,
    transport: Arc<dyn Transport>,
    pub seq: std::sync::atomic::AtomicU64,
    pub telemetry: Arc<Telemetry>,
    /// Budgets and rate-limit counters; shared with other routers when given one store.
    store: Arc<dyn StateStore>,
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
        Router::with_options(policy, TransportOptions::default())
    }

    pub fn with_options(policy: Policy, opts: TransportOptions) -> Result<Router> {
        Router::build(policy, opts, Arc::new(MemoryStore::new()))
    }

    /// A router whose budgets and rate limits live in `store`, which other routers (or, with
    /// a shared implementation, other processes) may use too: they then hold one ceiling.
    pub fn with_store(policy: Policy, store: Arc<dyn StateStore>) -> Result<Router> {
        Router::build(policy, TransportOptions::default(), store)
    }

    fn build(policy: Policy, opts: TransportOptions, store: Arc<dyn StateStore>) -> Result<Router> {
        let transport: Arc<dyn Transport> = Arc::new(HttpTransport::new(&opts)?);
        let inner = RouterInner {
            state: RwLock::new(Arc::new(Compiled::placeholder())),
            health: Mutex::new(HashMap::new()),
            transport,
            seq: std::sync::atomic::AtomicU64::new(0),
            telemetry: Arc::new(Telemetry::default()),
            store,
        };
        let otlp = policy.spec.telemetry.otlp.clone();
        let compiled = inner.compile(policy)?;
        *inner.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        if let Some(cfg) = otlp {
            // Spans are built from the event stream on its own thread, like any callback.
            let exporter = crate::telemetry::otlp::Exporter::new(cfg)?;
            inner.telemetry.subscribe(Arc::new(move |e: &RouterEvent| exporter.on_event(e)));
        }
        Ok(Router { inner: Arc::new(inner) })
    }

    /// Swap in a new policy atomically. An invalid policy is rejected and the current one
    /// keeps serving; breaker and latency state survive for unchanged deployments.
    pub fn reload(&self, policy: Policy) -> Result<()> {
        let result = self.inner.compile(policy).map(|compiled| {
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
        let now = Instant::now();
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
            .map(|b| BudgetGauge { unit: if b.unit == "usd" { "usd" } else { "tokens" }, budget: b.budget, scope: b.scope, limit: b.limit, remaining: b.remaining })
            .collect();
        self.inner.telemetry.metrics.render(&deps, &budgets)
    }

    /// Serve `metrics_text()` on `GET /metrics` at `addr` from a background thread (for
    /// processes without an HTTP server). Dropping the handle stops it.
    pub fn serve_metrics(&self, addr: &str) -> Result<crate::telemetry::http::MetricsServer> {
        let me = self.clone();
        crate::telemetry::http::MetricsServer::start(addr, move || me.metrics_text())
    }

    /// Spent, reserved and remaining per budget in its current period.
    pub fn budgets(&self) -> Vec<BudgetStatus> {
        self.snapshot().budgets.status(unix_now())
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

    pub fn unsubscribe(&self, id: u64) -> bool {
        self.inner.telemetry.unsubscribe(id)
    }

    pub(crate) fn snapshot(&self) -> Arc<Compiled> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Send a request and return the complete answer (with its trace).
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse> {
        attempt::chat(self, req).await
    }

    /// Send a request and stream the answer. See [`ChatStream`] for the guarantees.
    pub async fn stream(&self, req: ChatRequest) -> Result<ChatStream> {
        stream::open(self, req).await
    }

    /// The policy currently serving (secrets are not part of it: literal keys are never
    /// serialised).
    pub fn policy(&self) -> PolicySpec {
        self.snapshot().spec.clone()
    }

    /// Where would this request go, and why, without sending anything.
    pub fn plan(&self, req: &ChatRequest) -> Result<RoutePlan> {
        select::plan(&self.snapshot(), req, false, Instant::now())
    }

    /// Health of every deployment of the current policy.
    pub fn deployments(&self) -> Vec<DeploymentStatus> {
        let c = self.snapshot();
        let now = Instant::now();
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
        if let Some(tr) = d.health.breaker.set(state, Instant::now()) {
            self.inner.telemetry.emit(RouterEvent::BreakerChanged { deployment: deployment.to_string(), from: tr.from, to: tr.to, reason: tr.reason });
        }
        Ok(())
    }

    pub fn reset_breaker(&self, deployment: &str) -> Result<()> {
        self.set_breaker(deployment, BreakerState::Closed)
    }
}

impl Compiled {
    fn placeholder() -> Compiled {
        Compiled {
            spec: PolicySpec::default(),
            deployments: HashMap::new(),
            routes: Vec::new(),
            default_route: None,
            retry_budget: Arc::new(RetryBudget::new(Default::default(), Instant::now())),
            budgets: Arc::new(Budgets::new(Vec::new(), Arc::new(MemoryStore::new()))),
        }
    }
}

pub(crate) use crate::budget::unix_now;

fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
        ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
        ProviderKind::Mock => "http://mock.invalid",
        ProviderKind::OpenaiCompatible | ProviderKind::Azure => "",
    }
}

impl RouterInner {
    fn compile(&self, policy: Policy) -> Result<Compiled> {
        let spec = policy.spec;
        let now = Instant::now();
        let mut endpoints: HashMap<String, (Endpoint, ProviderKind, String)> = HashMap::new();
        for (name, p) in &spec.providers {
            let base_url = p.base_url.clone().unwrap_or_else(|| default_base_url(p.kind).to_string());
            let mut cfg = ProviderConfig::new(name.clone(), p.kind, base_url.clone());
            cfg.headers = p.headers.clone();
            cfg.api_version = p.api_version.clone();
            cfg.api_key = match (&p.api_key_env, &p.api_key) {
                (Some(env), _) => Some(SecretString::from(
                    std::env::var(env).map_err(|_| Error::config(format!("providers.{name}.api_key_env: `{env}` is not set")))?,
                )),
                (None, Some(k)) => Some(SecretString::from(k.expose().to_string())),
                (None, None) => None,
            };
            let endpoint = if p.kind == ProviderKind::Mock {
                let script = crate::policy::mock_script(p.script.as_ref())
                    .map_err(|e| Error::config(format!("providers.{name}.script: {}", e.message)))?;
                crate::provider::mock::mock_endpoint(name, script)
            } else {
                Endpoint::new(build_provider(cfg)?, self.transport.clone())
            };
            endpoints.insert(name.clone(), (endpoint, p.kind, base_url));
        }
        let catalog_owned;
        let catalog: &Catalog = match &spec.catalog {
            None => Catalog::builtin(),
            Some(over) => {
                let text = match over {
                    serde_json::Value::String(path) => std::fs::read_to_string(path)
                        .map_err(|e| Error::config(format!("catalog: cannot read `{path}`: {e}")))?,
                    v => v.to_string(),
                };
                catalog_owned = Catalog::builtin_with_overrides(&text)?;
                &catalog_owned
            }
        };
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let mut next_health = HashMap::new();
        let mut deployments = HashMap::new();
        for (name, d) in &spec.deployments {
            let (endpoint, kind, base_url) = endpoints
                .get(&d.provider)
                .cloned()
                .ok_or_else(|| Error::config(format!("deployments.{name}.provider: unknown provider `{}`", d.provider)))?;
            // Health survives a reload only if the deployment still means the same thing.
            let identity = format!("{:?}|{}|{}|{}", kind, base_url, d.provider, d.model);
            let h = match health.get(name) {
                Some(h) if h.identity == identity => h.clone(),
                _ => DeploymentHealth::new(identity, spec.breaker.clone(), now),
            };
            next_health.insert(name.clone(), h.clone());
            // Each deployment reads its own provider's rate-limit headers.
            let endpoint = Endpoint::new(
                endpoint.provider.clone(),
                Arc::new(ObservingTransport { inner: endpoint.transport.clone(), sink: h.clone() }),
            );
            // The catalog knows models by provider kind, or by host for compatible servers.
            let key = match kind {
                ProviderKind::OpenaiCompatible => base_url.clone(),
                k => serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            };
            let info = catalog.lookup(&key, &d.model);
            // Unknown model: assume it can do what is asked (the provider will say if not).
            let base = info.map(|i| i.capabilities).unwrap_or(Capabilities {
                tools: true,
                parallel_tools: true,
                vision: true,
                json_schema: true,
                streaming: true,
                assistant_prefill: false,
            });
            let caps = &d.capabilities;
            let dep = Deployment {
                name: name.clone(),
                provider: d.provider.clone(),
                provider_kind: kind,
                model: d.model.clone(),
                region: d.region.clone(),
                tags: d.tags.clone(),
                weight: d.weight,
                context_window: d.context_window.or(info.and_then(|i| i.context_window)),
                max_output_tokens: d.max_output_tokens.or(info.and_then(|i| i.max_output_tokens)),
                capabilities: Capabilities {
                    tools: caps.tools.unwrap_or(base.tools),
                    parallel_tools: base.parallel_tools,
                    vision: caps.vision.unwrap_or(base.vision),
                    json_schema: caps.json_schema.unwrap_or(base.json_schema),
                    streaming: caps.streaming.unwrap_or(base.streaming),
                    assistant_prefill: caps.assistant_prefill.unwrap_or(base.assistant_prefill),
                },
                pricing: match d.pricing {
                    Some(p) => Some(Pricing {
                        input_per_mtok: p.input_per_mtok,
                        output_per_mtok: p.output_per_mtok,
                        cache_read_per_mtok: p.cache_read_per_mtok,
                        cache_write_per_mtok: p.cache_write_per_mtok,
                        long_context: None,
                    }),
                    None => info.and_then(|i| i.pricing.clone()),
                },
                timeouts: d.timeouts,
                rate_limit: d.rate_limit,
                endpoint,
                health: h,
            };
            deployments.insert(name.clone(), Arc::new(dep));
        }
        *health = next_health;
        drop(health);
        let mut routes = Vec::new();
        for r in &spec.routes {
            let resolve = |names: &[String]| -> Vec<Arc<Deployment>> { names.iter().filter_map(|n| deployments.get(n).cloned()).collect() };
            let mut tiers = vec![TierRt { name: "primary".into(), deployments: resolve(&r.deployments), on: Vec::new(), static_response: None }];
            for (i, fb) in r.fallbacks.iter().enumerate() {
                tiers.push(TierRt {
                    name: fb.name.clone().unwrap_or_else(|| format!("fallback {}", i + 1)),
                    deployments: resolve(&fb.deployments),
                    on: fb.on.clone(),
                    static_response: fb.static_response.clone(),
                });
            }
            routes.push(Route { spec: r.clone(), tiers });
        }
        let default_route = spec.default_route.as_ref().and_then(|d| spec.routes.iter().position(|r| &r.name == d));
        let retry_budget = Arc::new(RetryBudget::new(spec.retry_budget.clone(), now));
        let budgets = Arc::new(Budgets::new(spec.budgets.clone(), self.store.clone()));
        Ok(Compiled { spec, deployments, routes, default_route, retry_budget, budgets })
    }
}
