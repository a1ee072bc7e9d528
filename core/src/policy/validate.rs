//! Policy validation: structural parsing entry by entry, then semantic checks across
//! entries (references, reachability, timing). Returns every issue found, never just the first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::cache_spec::{CacheSpec, MAX_CACHE_MAX_BYTES};
use super::schema::*;
use super::PolicyIssue;
use crate::meaning::Fallover;
use crate::provider::ProviderKind;

struct Issues(Vec<PolicyIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(PolicyIssue { path: path.into(), message: message.into() });
    }
}

/// Deserialize one entry, reporting a failure with the full path of the offending field.
fn parse_entry<T: DeserializeOwned>(v: &Value, base: &str, issues: &mut Issues) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                base.to_string()
            } else if inner.starts_with('[') {
                format!("{base}{inner}")
            } else {
                format!("{base}.{inner}")
            };
            issues.push(path, e.into_inner().to_string());
            None
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "version",
    "providers",
    "deployments",
    "routes",
    "default_route",
    "breaker",
    "retry_budget",
    "catalog",
    "budgets",
    "telemetry",
    "guards",
    "cache",
    "state",
    "keys",
];

pub(super) fn parse_and_validate(v: &Value) -> (Option<PolicySpec>, Vec<PolicyIssue>) {
    let mut issues = Issues(Vec::new());
    let Some(root) = v.as_object() else {
        issues.push("", "policy must be a mapping");
        return (None, issues.0);
    };
    for k in root.keys() {
        if !TOP_KEYS.contains(&k.as_str()) {
            issues.push(k.clone(), format!("unknown top-level key (expected one of {})", TOP_KEYS.join(", ")));
        }
    }
    let mut spec = PolicySpec { version: 1, ..Default::default() };
    let mut complete = true;
    if let Some(ver) = root.get("version") {
        if ver.as_u64() != Some(1) {
            issues.push("version", format!("unsupported policy version {ver} (this build reads version 1)"));
        }
    }
    let mut map_section = |name: &str, issues: &mut Issues| -> Vec<(String, Value)> {
        match root.get(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(_) => {
                issues.push(name, "must be a mapping of name → settings");
                complete = false;
                Vec::new()
            }
        }
    };
    let providers = map_section("providers", &mut issues);
    let deployments = map_section("deployments", &mut issues);
    for (name, pv) in providers {
        match parse_entry::<ProviderSpec>(&pv, &format!("providers.{name}"), &mut issues) {
            Some(p) => {
                spec.providers.insert(name, p);
            }
            None => complete = false,
        }
    }
    for (name, dv) in deployments {
        match parse_entry::<DeploymentSpec>(&dv, &format!("deployments.{name}"), &mut issues) {
            Some(d) => {
                spec.deployments.insert(name, d);
            }
            None => complete = false,
        }
    }
    spec.routes = list_section(root.get("routes"), "routes", "routes", &mut issues, &mut complete);
    if let Some(d) = root.get("default_route") {
        match d {
            Value::String(s) => spec.default_route = Some(s.clone()),
            Value::Null => {}
            _ => issues.push("default_route", "must be a route name"),
        }
    }
    if let Some(b) = root.get("breaker") {
        match parse_entry::<BreakerSpec>(b, "breaker", &mut issues) {
            Some(b) => spec.breaker = b,
            None => complete = false,
        }
    }
    if let Some(b) = root.get("retry_budget") {
        match parse_entry::<RetryBudgetSpec>(b, "retry_budget", &mut issues) {
            Some(b) => spec.retry_budget = b,
            None => complete = false,
        }
    }
    spec.budgets = list_section(root.get("budgets"), "budgets", "budgets", &mut issues, &mut complete);
    spec.guards = list_section(root.get("guards"), "guards", "guards", &mut issues, &mut complete);
    if let Some(t) = root.get("telemetry") {
        match parse_entry::<TelemetrySpec>(t, "telemetry", &mut issues) {
            Some(t) => {
                if let Some(o) = &t.otlp {
                    if let Err(e) = crate::telemetry::otlp::Exporter::new(o.clone()) {
                        issues.push("telemetry.otlp.endpoint", e.message);
                    }
                }
                spec.telemetry = t;
            }
            None => complete = false,
        }
    }
    if let Some(c) = root.get("cache") {
        match parse_entry::<CacheSpec>(c, "cache", &mut issues) {
            Some(c) => spec.cache = c,
            None => complete = false,
        }
    }
    if let Some(c) = root.get("state") {
        match parse_entry::<super::StateSpec>(c, "state", &mut issues) {
            Some(c) => spec.state = c,
            None => complete = false,
        }
    }
    if let Some(c) = root.get("catalog") {
        match c {
            Value::String(_) | Value::Object(_) => spec.catalog = Some(c.clone()),
            Value::Null => {}
            _ => issues.push("catalog", "must be a path to a catalog file or an inline catalog object"),
        }
        if let Value::Object(_) = c {
            if let Err(e) = crate::catalog::Catalog::builtin_with_overrides(&c.to_string()) {
                issues.push("catalog", e.message);
            }
        }
    }
    spec.keys = list_section(root.get("keys"), "keys", "keys", &mut issues, &mut complete);
    semantic(&spec, &mut issues);
    let route_names: BTreeSet<String> = spec.routes.iter().map(|r| r.name.clone()).collect();
    for (path, message) in super::keys::check(&mut spec.keys, &route_names) {
        issues.push(path, message);
    }
    (complete.then_some(spec), issues.0)
}

/// A list section (`routes`, `budgets`): every entry parsed on its own, so one bad entry
/// reports its path and the others are still checked.
fn list_section<T: DeserializeOwned>(v: Option<&Value>, name: &str, what: &str, issues: &mut Issues, complete: &mut bool) -> Vec<T> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let parsed = parse_entry::<T>(item, &format!("{name}[{i}]"), issues);
                *complete &= parsed.is_some();
                parsed
            })
            .collect(),
        Some(_) => {
            issues.push(name, format!("must be a list of {what}"));
            *complete = false;
            Vec::new()
        }
    }
}

fn semantic(spec: &PolicySpec, issues: &mut Issues) {
    check_providers(spec, issues);
    check_deployments(spec, issues);
    let route_names = check_routes(spec, issues);
    check_budgets(spec, &route_names, issues);
    for (path, message) in super::guards::check(&spec.guards, &route_names) {
        issues.push(path, message);
    }
    check_breaker_and_retry_budget(spec, issues);
    check_cache(spec, issues);
    check_state(spec, issues);
}

/// A shared store must be reachable by name now (its URL set), even if it is down.
fn check_state(spec: &PolicySpec, issues: &mut Issues) {
    let Some(r) = &spec.state.redis else { return };
    if let Err(e) = r.urls() {
        issues.push("state.redis", e);
    }
    if r.timeout.0.is_zero() {
        issues.push("state.redis.timeout", "must be positive");
    }
    if r.sync_interval.0 < std::time::Duration::from_millis(10) {
        issues.push("state.redis.sync_interval", "must be at least 10ms");
    }
    // A brace would change which part of a key Redis Cluster hashes.
    if r.key_prefix.contains(['{', '}']) {
        issues.push("state.redis.key_prefix", "must not contain `{` or `}`");
    }
}

/// The store's bound and each route's TTL (durations are already bounded when parsed).
fn check_cache(spec: &PolicySpec, issues: &mut Issues) {
    let max = spec.cache.max_bytes.0;
    if max == 0 || max > MAX_CACHE_MAX_BYTES {
        issues.push("cache.max_bytes", format!("must be between 1 byte and {} GiB, got {max}", MAX_CACHE_MAX_BYTES >> 30));
    }
    for (i, r) in spec.routes.iter().enumerate() {
        if r.cache.is_some_and(|c| c.ttl.0.is_zero()) {
            issues.push(format!("routes[{i}].cache.ttl"), "must be positive");
        }
    }
}

fn check_providers(spec: &PolicySpec, issues: &mut Issues) {
    for (name, p) in &spec.providers {
        let at = format!("providers.{name}");
        if name.is_empty() {
            issues.push(&at, "provider name must not be empty");
        }
        if p.api_key.is_some() && p.api_key_env.is_some() {
            issues.push(&at, "set either `api_key_env` or `api_key`, not both");
        }
        if let Some(env) = &p.api_key_env {
            if std::env::var_os(env).is_none_or(|v| v.is_empty()) {
                issues.push(format!("{at}.api_key_env"), format!("environment variable `{env}` is not set"));
            }
        }
        // A hosted provider with neither `api_key` nor `api_key_env` is checked when a router
        // is built (`RouterInner::compile`): only the router knows whether the host gives keys
        // (`RouterBuilder::api_keys`).
        let needs_url = matches!(p.kind, ProviderKind::OpenaiCompatible | ProviderKind::Azure);
        match &p.base_url {
            None if needs_url => issues.push(format!("{at}.base_url"), format!("required for kind `{}`", kind_name(p.kind))),
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                issues.push(format!("{at}.base_url"), format!("must start with http:// or https://, got `{u}`"))
            }
            _ => {}
        }
        for (h, v) in &p.headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() || http::HeaderValue::from_str(v.expose()).is_err() {
                issues.push(format!("{at}.headers.{h}"), "not a valid HTTP header");
            }
        }
        if p.script.is_some() && p.kind != ProviderKind::Mock {
            issues.push(format!("{at}.script"), "only `kind: mock` providers take a script");
        }
        if let Err(e) = super::mock_script(p.script.as_ref()) {
            issues.push(format!("{at}.script"), e.message);
        }
    }
}

fn check_deployments(spec: &PolicySpec, issues: &mut Issues) {
    for (name, d) in &spec.deployments {
        let at = format!("deployments.{name}");
        if !spec.providers.contains_key(&d.provider) {
            issues.push(format!("{at}.provider"), format!("unknown provider `{}`{}", d.provider, suggest(&d.provider, spec.providers.keys())));
        }
        if d.model.trim().is_empty() {
            issues.push(format!("{at}.model"), "must not be empty");
        }
        if !(d.weight.is_finite() && d.weight > 0.0) {
            issues.push(format!("{at}.weight"), format!("must be a positive number, got {}", d.weight));
        }
        if let Some(p) = &d.pricing {
            for (f, v) in [
                ("input_per_mtok", Some(p.input_per_mtok)),
                ("output_per_mtok", Some(p.output_per_mtok)),
                ("cache_read_per_mtok", p.cache_read_per_mtok),
                ("cache_write_per_mtok", p.cache_write_per_mtok),
            ] {
                if let Some(v) = v {
                    if !(v.is_finite() && v >= 0.0) {
                        issues.push(format!("{at}.pricing.{f}"), format!("must be a non-negative number, got {v}"));
                    }
                }
            }
        }
        if d.context_window == Some(0) {
            issues.push(format!("{at}.context_window"), "must be positive");
        }
    }

    for (name, d) in &spec.deployments {
        if let Some(rl) = &d.rate_limit {
            if rl.requests_per_minute == Some(0) || rl.tokens_per_minute == Some(0) {
                issues.push(format!("deployments.{name}.rate_limit"), "limits must be positive (remove the field for no limit)");
            }
        }
    }
}

/// Routes one by one, then the default route; returns the route names.
fn check_routes(spec: &PolicySpec, issues: &mut Issues) -> BTreeSet<String> {
    let mut route_names = BTreeSet::new();
    for (i, r) in spec.routes.iter().enumerate() {
        check_route(spec, i, r, &mut route_names, issues);
    }
    if let Some(d) = &spec.default_route {
        if !route_names.contains(d) {
            issues.push("default_route", format!("unknown route `{d}`{}", suggest(d, route_names.iter())));
        }
    }
    route_names
}

fn check_route(spec: &PolicySpec, i: usize, r: &RouteSpec, route_names: &mut BTreeSet<String>, issues: &mut Issues) {
    let at = format!("routes[{i}]");
    if r.name.trim().is_empty() {
        issues.push(format!("{at}.name"), "must not be empty");
    } else if !route_names.insert(r.name.clone()) {
        issues.push(format!("{at}.name"), format!("duplicate route name `{}`", r.name));
    }
    if r.deployments.is_empty() {
        issues.push(format!("{at}.deployments"), "a route needs at least one deployment");
    }
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    check_deployment_list(spec, &r.deployments, &format!("{at}.deployments"), &mut seen, issues);
    check_fallbacks(spec, r, &at, &mut seen, issues);
    for (class, rule) in &r.data_rules {
        for (k, p) in rule.providers.iter().enumerate() {
            if !spec.providers.contains_key(p) {
                issues.push(format!("{at}.data_rules.{class}.providers[{k}]"), format!("unknown provider `{p}`"));
            }
        }
        if rule.providers.is_empty() && rule.regions.is_empty() {
            issues.push(format!("{at}.data_rules.{class}"), "an empty rule would block the class everywhere; list providers or regions");
        }
    }
    check_retry(&r.retry, &r.timeouts, &at.to_string(), issues);
    for (path, message) in check_rollout(spec, &at, r) {
        issues.push(path, message);
    }
    if let Some(sr) = r.slo.min_success_rate {
        if !(0.0..=1.0).contains(&sr) {
            issues.push(format!("{at}.slo.min_success_rate"), format!("must be between 0 and 1, got {sr}"));
        }
    }
}

/// Fallback tiers: reachable, well-formed, and triggered only by kinds that can fall over.
fn check_fallbacks<'a>(spec: &PolicySpec, r: &'a RouteSpec, at: &str, seen: &mut BTreeMap<&'a str, String>, issues: &mut Issues) {
    let mut after_static: Option<usize> = None;
    for (j, fb) in r.fallbacks.iter().enumerate() {
        let fat = format!("{at}.fallbacks[{j}]");
        if let Some(k) = after_static {
            issues.push(&fat, format!("unreachable: fallbacks[{k}] serves a static response, which always succeeds"));
        }
        if fb.deployments.is_empty() && fb.static_response.is_none() {
            issues.push(&fat, "a fallback tier needs `deployments` or a `static_response`");
        }
        if fb.static_response.is_some() && !fb.deployments.is_empty() {
            issues.push(&fat, "a tier is either deployments or a static response, not both");
        }
        let before = seen.len();
        check_deployment_list(spec, &fb.deployments, &format!("{fat}.deployments"), seen, issues);
        if !fb.deployments.is_empty() && seen.len() == before {
            issues.push(&fat, "unreachable: every deployment of this tier already appears in an earlier tier");
        }
        for (k, kind) in fb.on.iter().enumerate() {
            let fallover = crate::meaning::meaning(*kind).fallover;
            if fallover == Fallover::Never {
                issues.push(
                    format!("{fat}.on[{k}]"),
                    format!("`{kind}` stops a request (the same request fails anywhere), so this trigger can never fire"),
                );
            }
            if fallover == Fallover::OtherProviderIfOptedIn && !r.content_filter_fallover {
                issues.push(format!("{fat}.on[{k}]"), format!("`{kind}` crosses tiers only with `content_filter_fallover: true` on the route"));
            }
        }
        if fb.static_response.is_some() {
            after_static = Some(j);
        }
    }
}

fn check_budgets(spec: &PolicySpec, route_names: &BTreeSet<String>, issues: &mut Issues) {
    let mut budget_names = BTreeSet::new();
    for (i, b) in spec.budgets.iter().enumerate() {
        let at = format!("budgets[{i}]");
        if b.name.trim().is_empty() {
            issues.push(format!("{at}.name"), "must not be empty");
        } else if !budget_names.insert(b.name.clone()) {
            issues.push(format!("{at}.name"), format!("duplicate budget name `{}`", b.name));
        }
        match (b.limit_usd, b.limit_tokens) {
            (None, None) => issues.push(&at, "set `limit_usd` or `limit_tokens`"),
            (Some(_), Some(_)) => issues.push(&at, "set one of `limit_usd` and `limit_tokens`, not both (use two budgets)"),
            (Some(u), None) if !(u.is_finite() && u >= 0.0) => {
                issues.push(format!("{at}.limit_usd"), format!("must be a non-negative amount, got {u}"))
            }
            _ => {}
        }
        let sc = &b.scope;
        if let Some(r) = sc.route.as_deref().filter(|r| *r != "*") {
            if !route_names.contains(r) {
                issues.push(format!("{at}.scope.route"), format!("unknown route `{r}`"));
            }
        }
        if let Some(d) = sc.deployment.as_deref().filter(|d| *d != "*") {
            if !spec.deployments.contains_key(d) {
                issues.push(format!("{at}.scope.deployment"), format!("unknown deployment `{d}`"));
            }
        }
    }
}

fn check_breaker_and_retry_budget(spec: &PolicySpec, issues: &mut Issues) {
    let b = &spec.breaker;
    if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
        issues.push("breaker.failure_rate", format!("must be in (0, 1], got {}", b.failure_rate));
    }
    if !(b.slow_call_rate > 0.0 && b.slow_call_rate <= 1.0) {
        issues.push("breaker.slow_call_rate", format!("must be in (0, 1], got {}", b.slow_call_rate));
    }
    if b.min_calls == 0 {
        issues.push("breaker.min_calls", "must be at least 1");
    }
    if b.half_open_probes == 0 {
        issues.push("breaker.half_open_probes", "must be at least 1");
    }
    if b.open_for > b.max_open_for {
        issues.push("breaker.open_for", "must not exceed `max_open_for`");
    }
    if b.window.0.is_zero() {
        issues.push("breaker.window", "must be positive");
    }
    let rb = &spec.retry_budget;
    if !(rb.ratio.is_finite() && rb.ratio >= 0.0) {
        issues.push("retry_budget.ratio", "must be a non-negative number");
    }
    if !(rb.min_per_second.is_finite() && rb.min_per_second >= 0.0) {
        issues.push("retry_budget.min_per_second", "must be a non-negative number");
    }
    if rb.window.0 < Duration::from_secs(1) {
        issues.push("retry_budget.window", "must be at least 1s");
    }
}

fn check_deployment_list<'a>(spec: &PolicySpec, list: &'a [String], at: &str, seen: &mut BTreeMap<&'a str, String>, issues: &mut Issues) {
    for (k, d) in list.iter().enumerate() {
        let p = format!("{at}[{k}]");
        if !spec.deployments.contains_key(d) {
            issues.push(&p, format!("unknown deployment `{d}`{}", suggest(d, spec.deployments.keys())));
        } else if let Some(first) = seen.get(d.as_str()) {
            issues.push(&p, format!("deployment `{d}` is already listed at {first}"));
        } else {
            seen.insert(d.as_str(), p);
        }
    }
}

fn check_retry(r: &RetrySpec, t: &TimeoutSpec, at: &str, issues: &mut Issues) {
    if r.attempts_per_deployment == 0 {
        issues.push(format!("{at}.retry.attempts_per_deployment"), "must be at least 1");
    }
    if r.max_attempts == 0 {
        issues.push(format!("{at}.retry.max_attempts"), "must be at least 1");
    }
    if r.base_delay > r.max_delay {
        issues.push(format!("{at}.retry.base_delay"), "must not exceed `max_delay`");
    }
    if let Some(c) = r.max_request_cost_usd {
        if !(c.is_finite() && c >= 0.0) {
            issues.push(format!("{at}.retry.max_request_cost_usd"), "must be a non-negative number");
        }
    }
    if let Some(total) = t.total {
        // The smallest backoff schedule (no jitter) for one deployment's retries must fit.
        // Bounded loop and saturating sums: a huge attempt count or delay must be reported,
        // not hang or overflow (past ~64 doublings the delay is capped anyway).
        let mut min_backoff = Duration::ZERO;
        let mut d = r.base_delay.0;
        for _ in 1..r.attempts_per_deployment.clamp(1, 64) {
            min_backoff = min_backoff.saturating_add(d.min(r.max_delay.0));
            d = d.saturating_mul(2);
        }
        if min_backoff >= total.0 {
            issues.push(
                format!("{at}.retry"),
                format!(
                    "retry delays ({} ms minimum for {} attempts) cannot fit in the total deadline of {} ms",
                    min_backoff.as_millis(),
                    r.attempts_per_deployment,
                    total.0.as_millis()
                ),
            );
        }
        if r.max_retry_after.0 >= total.0 {
            issues.push(
                format!("{at}.retry.max_retry_after"),
                format!(
                    "a wait of {} ms can never fit in the total deadline of {} ms; lower it",
                    r.max_retry_after.0.as_millis(),
                    total.0.as_millis()
                ),
            );
        }
        for (name, v) in [("first_token", t.first_token), ("idle", t.idle)] {
            if let Some(v) = v {
                if v > total {
                    issues.push(format!("{at}.timeouts.{name}"), "exceeds `timeouts.total`");
                }
            }
        }
    }
}

fn kind_name(k: ProviderKind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// "did you mean" for a near-miss name (edit distance ≤ 2).
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a String>) -> String {
    let best = candidates.map(|c| (levenshtein(name, c), c)).filter(|(d, _)| *d <= 2).min();
    best.map(|(_, c)| format!(" (did you mean `{c}`?)")).unwrap_or_default()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Problems of one route's `canary` and `shadow`, as (path, message).
fn check_rollout(spec: &PolicySpec, at: &str, r: &RouteSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let percent = |p: f64, path: String, out: &mut Vec<(String, String)>| {
        if !(0.0..=100.0).contains(&p) {
            out.push((path, format!("must be between 0 and 100, got {p}")));
        }
    };
    if let Some(c) = &r.canary {
        let at = format!("{at}.canary");
        if !spec.deployments.contains_key(&c.deployment) {
            out.push((format!("{at}.deployment"), format!("unknown deployment `{}`", c.deployment)));
        }
        percent(c.percent, format!("{at}.percent"), &mut out);
        if c.window.0.is_zero() {
            out.push((format!("{at}.window"), "must be longer than 0".into()));
        }
        if c.min_requests == 0 {
            out.push((format!("{at}.min_requests"), "must be at least 1 (a canary judged on nothing would be withdrawn at random)".into()));
        }
        if !(0.0..=1.0).contains(&c.max_error_rate_increase) {
            out.push((format!("{at}.max_error_rate_increase"), format!("must be between 0 and 1, got {}", c.max_error_rate_increase)));
        }
        if !(c.max_latency_ratio.is_finite() && c.max_latency_ratio >= 1.0) {
            out.push((format!("{at}.max_latency_ratio"), format!("must be at least 1, got {}", c.max_latency_ratio)));
        }
    }
    if let Some(s) = &r.shadow {
        let at = format!("{at}.shadow");
        if s.deployments.is_empty() {
            out.push((format!("{at}.deployments"), "list at least one deployment".into()));
        }
        for (i, d) in s.deployments.iter().enumerate() {
            if !spec.deployments.contains_key(d) {
                out.push((format!("{at}.deployments[{i}]"), format!("unknown deployment `{d}`")));
            }
        }
        percent(s.percent, format!("{at}.percent"), &mut out);
        if s.max_concurrent == 0 {
            out.push((format!("{at}.max_concurrent"), "must be at least 1".into()));
        }
        if let Some(b) = s.budget_usd {
            if !(b.is_finite() && b >= 0.0) {
                out.push((format!("{at}.budget_usd"), format!("must be 0 or more, got {b}")));
            }
        }
    }
    out
}
