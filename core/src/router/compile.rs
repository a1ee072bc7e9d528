//! Policy compilation: a validated [`Policy`] becomes live deployments (endpoints, catalog
//! data, health carried over from the previous policy) and routes of resolved tiers.
//!
//! Kept apart from `mod.rs` (the public face) because it is the one place that knows how
//! policy entries map to runtime objects; requests never see a half-compiled policy, since
//! the result is swapped in whole.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::time::Instant;

use super::{Capabilities, Compiled, Deployment, DeploymentHealth, Route, RouterInner, TierRt};
use crate::budget::Budgets;
use crate::catalog::{Catalog, ModelInfo, Pricing};
use crate::error::{Error, Result};
use crate::guard::Guards;
use crate::policy::{DeploymentSpec, Policy, PolicySpec, RouteSpec};
use crate::provider::{build_provider, Endpoint, ProviderConfig, ProviderKind};
use crate::resilience::retry::RetryBudget;

impl Compiled {
    pub(crate) fn placeholder() -> Compiled {
        Compiled {
            spec: PolicySpec::default(),
            deployments: HashMap::new(),
            routes: Vec::new(),
            default_route: None,
            retry_budget: Arc::new(RetryBudget::new(Default::default(), Instant::now())),
            budgets: Arc::new(Budgets::new(Vec::new(), Arc::new(crate::state::State::memory()))),
            guards: Arc::new(Guards::default()),
            caches: false,
        }
    }
}

fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
        ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
        ProviderKind::Mock => "http://mock.invalid",
        ProviderKind::OpenaiCompatible | ProviderKind::Azure => "",
    }
}

/// Endpoint, kind and base URL of one configured provider.
type Built = (Endpoint, ProviderKind, String);

impl RouterInner {
    pub(crate) fn compile(&self, policy: Policy) -> Result<Compiled> {
        let spec = policy.spec;
        let now = self.clock.now();
        let endpoints = self.endpoints(&spec)?;
        let catalog_owned;
        let catalog: &Catalog = match &spec.catalog {
            None => Catalog::builtin(),
            Some(over) => {
                catalog_owned = load_catalog(over)?;
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
                _ => DeploymentHealth::with_chance(identity, spec.breaker.clone(), now, self.chance.clone()),
            };
            next_health.insert(name.clone(), h.clone());
            // Each deployment's responses report its provider's limits to its own health.
            let endpoint = endpoint.with_limit_sink(h.clone(), self.clock.clone());
            // The catalog knows models by provider kind, or by host for compatible servers.
            let key = match kind {
                ProviderKind::OpenaiCompatible => base_url.clone(),
                k => serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            };
            let info = catalog.lookup(&key, &d.model);
            deployments.insert(name.clone(), Arc::new(deployment(name, d, kind, info, endpoint, h)));
        }
        *health = next_health;
        drop(health);
        let routes: Vec<Route> = spec.routes.iter().map(|r| route(r, &deployments)).collect();
        let default_route = spec.default_route.as_ref().and_then(|d| spec.routes.iter().position(|r| &r.name == d));
        let retry_budget = Arc::new(RetryBudget::new(spec.retry_budget.clone(), now));
        let budgets = Arc::new(Budgets::new(spec.budgets.clone(), self.store.clone()));
        let guards = Arc::new(Guards::compile(&spec.guards)?);
        let caches = routes.iter().any(|r| r.spec.cache.is_some());
        Ok(Compiled { spec, deployments, routes, default_route, retry_budget, budgets, guards, caches })
    }

    /// One endpoint per configured provider (keys resolved from the environment here, once;
    /// the host's key provider, if any, is asked per attempt).
    fn endpoints(&self, spec: &PolicySpec) -> Result<HashMap<String, Built>> {
        self.check_keys(spec)?;
        let mut endpoints = HashMap::new();
        for (name, p) in &spec.providers {
            let base_url = p.base_url.clone().unwrap_or_else(|| default_base_url(p.kind).to_string());
            let mut cfg = ProviderConfig::new(name.clone(), p.kind, base_url.clone());
            cfg.headers = p.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect();
            cfg.api_version = p.api_version.clone();
            cfg.api_key = match (&p.api_key_env, &p.api_key) {
                (Some(env), _) => Some(SecretString::from(
                    std::env::var(env).map_err(|_| Error::config(format!("providers.{name}.api_key_env: `{env}` is not set")))?,
                )),
                (None, Some(k)) => Some(SecretString::from(k.expose().to_string())),
                (None, None) => None,
            };
            if cfg.api_key.is_none() {
                cfg.host_keys = self.api_keys.clone();
            }
            let endpoint = if p.kind == ProviderKind::Mock {
                let script =
                    crate::policy::mock_script(p.script.as_ref()).map_err(|e| Error::config(format!("providers.{name}.script: {}", e.message)))?;
                crate::provider::mock::mock_endpoint(name, script)
            } else {
                Endpoint::new(build_provider(cfg)?, self.transport.clone())
            };
            endpoints.insert(name.clone(), (endpoint, p.kind, base_url));
        }
        Ok(endpoints)
    }
}

impl RouterInner {
    /// A hosted provider without a key would only collect 401s (and its breaker would ban it
    /// for an hour): refuse the policy now, unless the host supplies keys at request time.
    fn check_keys(&self, spec: &PolicySpec) -> Result<()> {
        if self.api_keys.is_some() {
            return Ok(());
        }
        let missing: Vec<String> = spec
            .providers
            .iter()
            .filter(|(_, p)| p.kind.needs_key() && p.api_key.is_none() && p.api_key_env.is_none())
            .map(|(name, p)| {
                format!("providers.{name}: kind `{}` needs `api_key_env` (or `api_key`, or an API key provider from the app)", p.kind.as_str())
            })
            .collect();
        match missing.len() {
            0 => Ok(()),
            n => Err(Error::config(format!("invalid policy ({n} problem{})\n- {}", if n == 1 { "" } else { "s" }, missing.join("\n- ")))),
        }
    }
}

/// The policy's `catalog:` override: a path, or the overrides inline.
fn load_catalog(over: &serde_json::Value) -> Result<Catalog> {
    let text = match over {
        serde_json::Value::String(path) => std::fs::read_to_string(path).map_err(|e| Error::config(format!("catalog: cannot read `{path}`: {e}")))?,
        v => v.to_string(),
    };
    Catalog::builtin_with_overrides(&text)
}

/// A deployment: the policy entry, completed from the catalog where the policy is silent.
fn deployment(
    name: &str,
    d: &DeploymentSpec,
    kind: ProviderKind,
    info: Option<&ModelInfo>,
    endpoint: Endpoint,
    health: Arc<DeploymentHealth>,
) -> Deployment {
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
    Deployment {
        name: name.to_string(),
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
        health,
    }
}

/// A route with its tiers resolved to deployments (validation guarantees the names exist).
fn route(r: &RouteSpec, deployments: &HashMap<String, Arc<Deployment>>) -> Route {
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
    let canary = r.canary.as_ref().and_then(|c| {
        let d = deployments.get(&c.deployment)?.clone();
        Some(Arc::new(super::canary::CanaryRt::new(&r.name, c.clone(), d)))
    });
    let shadow = r.shadow.as_ref().map(|s| {
        let total = r.timeouts.total.map(|t| t.0).unwrap_or(super::DEFAULT_TOTAL);
        Arc::new(super::shadow::ShadowRt::new(&r.name, s.clone(), resolve(&s.deployments), total))
    });
    Route { spec: Arc::new(r.clone()), tiers, canary, shadow }
}
