//! [`RouterBuilder`]: everything a router is made of, given in one place.
//!
//! A router is a policy plus the things a test or a host may want to choose: transport
//! options, the state store budgets and rate limits live in (shared between routers, or
//! later between processes), the clock and the seed of every random choice. The
//! `Router::from_*`/`with_*` constructors are shorthands for the common cases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::{Compiled, Router, RouterInner};
use crate::budget::{MemoryStore, StateStore};
use crate::clock::{Chance, Clock, SystemClock};
use crate::error::Result;
use crate::policy::Policy;
use crate::provider::credentials::{ApiKeyProvider, HostKeys};
use crate::provider::{HttpTransport, Transport, TransportOptions};
use crate::state::redis::{RedisOptions, RedisStore};
use crate::state::State;
use crate::telemetry::{RouterEvent, Telemetry};

#[must_use = "call .build() to get a Router"]
pub struct RouterBuilder {
    policy: Policy,
    transport_options: TransportOptions,
    transport: Option<Arc<dyn Transport>>,
    store: Option<Arc<dyn StateStore>>,
    clock: Arc<dyn Clock>,
    chance: Option<Chance>,
    api_keys: Option<HostKeys>,
}

impl std::fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder").field("clock", &self.clock).field("api_keys", &self.api_keys).finish_non_exhaustive()
    }
}

impl RouterBuilder {
    pub fn new(policy: Policy) -> Self {
        RouterBuilder {
            policy,
            transport_options: TransportOptions::default(),
            transport: None,
            store: None,
            clock: Arc::new(SystemClock),
            chance: None,
            api_keys: None,
        }
    }

    /// Options of the HTTP transport the router creates (ignored when a transport is given).
    pub fn transport_options(mut self, opts: TransportOptions) -> Self {
        self.transport_options = opts;
        self
    }

    /// Send through this transport instead of a new HTTP client (e.g. one connection pool
    /// shared by several routers).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Keep budgets and rate-limit counters in `store` (default: the policy's `state:`, or a
    /// new in-memory store). A shared store given here uses the policy's `state.redis`
    /// timeout and `on_error` when it has them, else 50 ms and `local`.
    pub fn store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Read time from `clock` (default: the system's wall clock and tokio's monotonic one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Make every random choice (jitter, weighted order, least-latency's two choices)
    /// reproducible from `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.chance = Some(Chance::seeded(seed));
        self
    }

    /// Ask `keys` for the API key of every provider whose policy entry has neither `api_key`
    /// nor `api_key_env`, at each attempt (so a rotated key is used by the next request).
    /// Such providers are then valid in the policy; a `None` from `keys` fails that attempt
    /// with `auth` (nothing is sent) and the router falls over.
    pub fn api_keys(mut self, keys: Arc<dyn ApiKeyProvider>) -> Self {
        self.api_keys = Some(HostKeys(keys));
        self
    }

    pub fn build(self) -> Result<Router> {
        let transport = match self.transport {
            Some(t) => t,
            None => Arc::new(HttpTransport::new(&self.transport_options)?),
        };
        let telemetry = Arc::new(Telemetry::default());
        let inner = RouterInner {
            state: RwLock::new(Arc::new(Compiled::placeholder())),
            health: Mutex::new(HashMap::new()),
            transport,
            seq: std::sync::atomic::AtomicU64::new(0),
            id_prefix: super::lifecycle::id_prefix(std::process::id()),
            telemetry: telemetry.clone(),
            store: Arc::new(state(&self.policy, self.store, telemetry)?),
            fleet_sync: tokio::sync::OnceCell::new(),
            clock: self.clock,
            chance: Arc::new(self.chance.unwrap_or_default()),
            cache: crate::cache::ResponseCache::new(self.policy.spec.cache.max_bytes.0),
            api_keys: self.api_keys,
        };
        let otlp = self.policy.spec.telemetry.otlp.clone();
        let compiled = inner.compile(self.policy)?;
        *inner.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        if let Some(cfg) = otlp {
            // Spans are built from the event stream on its own thread, like any callback.
            let exporter = crate::telemetry::otlp::Exporter::new(cfg)?;
            inner.telemetry.subscribe(Arc::new(move |e: &RouterEvent| exporter.on_event(e)));
        }
        let router = Router { inner: Arc::new(inner) };
        // Built inside a runtime (the gateway, an async app): sync with the fleet now, so
        // `budgets()` and the metrics show the fleet's figures before the first request.
        // Elsewhere (a binding's constructor) the first request starts it.
        if router.inner.store.is_shared() {
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                let r = router.clone();
                h.spawn(async move { super::fleet_sync::ensure_started(&r).await });
            }
        }
        Ok(router)
    }
}

/// The store budgets, limits and health live in: the one given, else the policy's.
fn state(policy: &Policy, given: Option<Arc<dyn StateStore>>, telemetry: Arc<Telemetry>) -> Result<State> {
    let spec = policy.spec.state.redis.as_ref();
    let (on_error, timeout) =
        spec.map(|r| (r.on_error, r.timeout.0)).unwrap_or((crate::policy::OnStoreError::Local, std::time::Duration::from_millis(50)));
    let store: Arc<dyn StateStore> = match (given, spec) {
        (Some(s), _) => s,
        (None, None) => Arc::new(MemoryStore::new()),
        (None, Some(r)) => {
            let urls = r.urls().map_err(|e| crate::error::Error::new(crate::error::ErrorKind::Config, format!("state.redis: {e}")))?;
            let opts = RedisOptions { urls, cluster: r.cluster, key_prefix: r.key_prefix.clone(), timeout: r.timeout.0 };
            Arc::new(RedisStore::new(opts).map_err(|e| crate::error::Error::new(crate::error::ErrorKind::Config, format!("state.redis: {e}")))?)
        }
    };
    Ok(State::new(store, on_error, timeout, telemetry))
}
