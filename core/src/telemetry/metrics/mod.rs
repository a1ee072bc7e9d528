//! A small Prometheus registry and text exposition (format 0.0.4), fed by router events.
//!
//! Hand-rolled rather than the `prometheus` crate: we need a dozen families with fixed label
//! sets, deterministic output for tests, and no global registry shared with the host
//! application (two routers in one process must not mix their numbers). Names follow
//! Prometheus conventions: `polyroute_` prefix, base units (seconds, USD), `_total` counters.
//! Labels never carry secrets or prompt content: only route, deployment, provider, model and
//! outcome names from the policy and from error kinds.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;

use super::event::RouterEvent;

mod pending;

const DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; DURATION_BUCKETS.len()];
        }
        for (i, b) in DURATION_BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        if self.counts.is_empty() {
            self.counts = vec![0; DURATION_BUCKETS.len()];
        }
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

type Labels = Vec<(&'static str, String)>;

/// Series of one family by label set. Hashed, not ordered: an observation is a lookup on the
/// request path (a `BTreeMap` compared label strings a dozen times per request, 6 % of a sync
/// call's instructions), while the sorted order the text format wants is needed only when
/// rendering. Hashed with [`LabelHasher`].
type Series<V> = HashMap<Labels, V, BuildHasherDefault<LabelHasher>>;

/// A fast hash for a few short strings, finished so that every bit of the result depends on
/// every input bit. SipHash (the standard one) cost ~1000 instructions per label set, most of
/// it per `write`; Fx hashing alone left the top bits, which the map compares first, alike for
/// sets differing in one value, so each lookup compared most of its family's series.
/// Not DoS-resistant, and need not be: label values are names from the policy and the models
/// providers report, and their number is what the router is configured to reach.
#[derive(Default)]
struct LabelHasher(u64);

impl Hasher for LabelHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            self.write_u64(rest.iter().rev().fold(0, |a, b| a << 8 | u64::from(*b)));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(26) ^ i).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
    fn finish(&self) -> u64 {
        // murmur3's 64-bit finaliser.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[derive(Debug, Default)]
struct Families {
    requests: Series<f64>,
    attempts: Series<f64>,
    request_duration: Series<Histogram>,
    ttft: Series<Histogram>,
    tokens: Series<f64>,
    cost: Series<f64>,
    fallbacks: Series<f64>,
    breaker_transitions: Series<f64>,
    guard_findings: Series<f64>,
    events_dropped: f64,
    /// route, result (`hit`, `miss`, `fallback`)
    cache_lookups: Series<f64>,
    /// on_error (`local`, `fail_open`, `fail_closed`, `dropped_settle`)
    state_fallbacks: Series<f64>,
    /// Shared state store up (1) or down (0); absent without a shared store.
    state_up: Option<bool>,
    /// route → (requests, successes, cost of every attempt)
    route_costs: BTreeMap<String, (u64, u64, f64)>,
    canary_withdrawals: Series<f64>,
    shadow_requests: Series<f64>,
    shadow_agreement: Series<f64>,
    shadow_dropped: Series<f64>,
    shadow_cost: Series<f64>,
    shadow_duration: Series<Histogram>,
    /// Attempt and request ends not yet added to the families above: [`Families::fold`]
    /// before reading any of them.
    pending: pending::Pending,
}

/// Cost per successful request of a route: everything spent (failed attempts, hedge losers
/// included) divided by the requests that succeeded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RouteCost {
    pub route: String,
    pub requests: u64,
    pub successes: u64,
    pub total_cost_usd: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_success_usd: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    f: Mutex<Families>,
}

/// Live gauges computed at render time from router state (not from events).
#[derive(Debug, Clone)]
pub struct DeploymentGauge {
    pub deployment: String,
    pub provider: String,
    pub model: String,
    /// `closed`, `open`, `half_open`, `forced_open`, `disabled`.
    pub breaker_state: &'static str,
}

/// The response cache's size, read at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheGauge {
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct BudgetGauge {
    pub budget: String,
    pub scope: String,
    pub limit: f64,
    pub remaining: f64,
    pub unit: &'static str,
}

/// Label pairs looked up without owning them: an observation on an existing series builds no
/// `String` (owned keys per observation were most of the metrics' cost per request). Hash and
/// equality must be `Labels`'s own (`Vec`'s: the length, then each name and value as `str`),
/// which `Hash for dyn LabelView` reproduces; `HashMap` relies on the two agreeing.
trait LabelView {
    fn len(&self) -> usize;
    fn pair(&self, i: usize) -> (&str, &str);
}

impl LabelView for Labels {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn pair(&self, i: usize) -> (&str, &str) {
        (self[i].0, &self[i].1)
    }
}

/// Borrowed label pairs (a slice cannot be a trait object itself).
struct Borrowed<'a, 'b>(&'a [(&'static str, &'b str)]);

impl LabelView for Borrowed<'_, '_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn pair(&self, i: usize) -> (&str, &str) {
        self.0[i]
    }
}

impl Hash for dyn LabelView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // What `<[T] as Hash>` does: the length first, then each element (a tuple hashes
        // its fields in order, `String` hashes as its `str`).
        state.write_usize(self.len());
        for i in 0..self.len() {
            self.pair(i).hash(state);
        }
    }
}
impl PartialEq for dyn LabelView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.pair(i) == other.pair(i))
    }
}
impl Eq for dyn LabelView + '_ {}

impl<'a> std::borrow::Borrow<dyn LabelView + 'a> for Labels {
    fn borrow(&self) -> &(dyn LabelView + 'a) {
        self
    }
}

/// Apply `f` to the series for `l`, created on first use. One lookup when the series exists
/// (nearly always); `f` takes the value rather than a reference being returned, because a
/// returned borrow from a missed `get_mut` cannot fall through to `insert`.
fn update<V: Default>(m: &mut Series<V>, l: &[(&'static str, &str)], f: impl FnOnce(&mut V)) {
    let b = Borrowed(l);
    let view: &dyn LabelView = &b;
    if let Some(v) = m.get_mut(view) {
        f(v);
        return;
    }
    let mut v = V::default();
    f(&mut v);
    m.insert(l.iter().map(|(k, v)| (*k, v.to_string())).collect(), v);
}

/// A family's series in label order, so the exposition is the same text for the same counts.
fn sorted<V>(m: &Series<V>) -> Vec<(&Labels, &V)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    v
}

fn inc(m: &mut Series<f64>, l: &[(&'static str, &str)], by: f64) {
    update(m, l, |v| *v += by);
}

/// What the metrics read from an `AttemptFinished` event, borrowed: the request path records
/// it without building the event unless a callback listens.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord<'a> {
    pub route: &'a str,
    pub deployment: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub outcome: &'a str,
    pub ttft_ms: Option<f64>,
    /// input, output, cache read, cache write, reasoning.
    pub tokens: [u64; 5],
    pub cost_usd: Option<f64>,
}

/// What the metrics read from a `RequestFinished` event, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    pub route: &'a str,
    pub outcome: &'a str,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub duration_ms: f64,
    pub cost_usd: Option<f64>,
}

const TOKEN_DIRECTIONS: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];

impl Families {
    fn attempt(&mut self, a: &AttemptRecord) {
        self.pending.attempt(a);
    }

    fn request(&mut self, r: &RequestRecord) {
        self.pending.request(r);
    }

    /// Bring the families up to date with the pending attempt and request ends.
    fn fold(&mut self) {
        let mut p = std::mem::take(&mut self.pending);
        p.fold_into(self);
        self.pending = p;
    }
}

impl Metrics {
    /// The metrics of an `AttemptFinished` event, recorded without the event.
    pub fn attempt_finished(&self, a: &AttemptRecord) {
        self.f.lock().unwrap_or_else(|p| p.into_inner()).attempt(a);
    }

    /// The metrics of a `RequestFinished` event, recorded without the event.
    pub fn request_finished(&self, r: &RequestRecord) {
        self.f.lock().unwrap_or_else(|p| p.into_inner()).request(r);
    }

    pub fn record(&self, ev: &RouterEvent) {
        let mut f = self.f.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            RouterEvent::AttemptFinished {
                route,
                deployment,
                provider,
                model,
                outcome,
                ttft_ms,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                cost_usd,
                ..
            } => f.attempt(&AttemptRecord {
                route,
                deployment,
                provider,
                model,
                outcome,
                ttft_ms: *ttft_ms,
                tokens: [*input_tokens, *output_tokens, *cache_read_tokens, *cache_write_tokens, *reasoning_tokens],
                cost_usd: *cost_usd,
            }),
            RouterEvent::RequestFinished { route, outcome, provider, model, duration_ms, cost_usd, .. } => f.request(&RequestRecord {
                route,
                outcome,
                provider: provider.as_deref(),
                model: model.as_deref(),
                duration_ms: *duration_ms,
                cost_usd: *cost_usd,
            }),
            RouterEvent::FallbackTaken { route, from, to, reason, .. } => {
                inc(&mut f.fallbacks, &[("route", route.as_str()), ("from", from.as_str()), ("to", to.as_str()), ("reason", reason.as_str())], 1.0);
            }
            RouterEvent::BreakerChanged { deployment, to, .. } => {
                inc(&mut f.breaker_transitions, &[("deployment", deployment.as_str()), ("to", to.as_str())], 1.0);
            }
            RouterEvent::GuardTriggered { guard, action, findings, .. } => {
                for (detector, n) in findings {
                    inc(&mut f.guard_findings, &[("guard", guard.as_str()), ("action", action.as_str()), ("detector", detector.as_str())], *n as f64);
                }
            }
            RouterEvent::CanaryWithdrawn { route, deployment, .. } => {
                inc(&mut f.canary_withdrawals, &[("route", route.as_str()), ("deployment", deployment.as_str())], 1.0);
            }
            RouterEvent::ShadowDropped { route, deployment, reason } => {
                inc(&mut f.shadow_dropped, &[("route", route.as_str()), ("deployment", deployment.as_str()), ("reason", reason.as_str())], 1.0);
            }
            RouterEvent::ShadowFinished { route, deployment, outcome, latency_ms, cost_usd, same_text, same_tool_calls, schema_valid, .. } => {
                let (r, d) = (route.as_str(), deployment.as_str());
                inc(&mut f.shadow_requests, &[("route", r), ("deployment", d), ("outcome", outcome)], 1.0);
                update(&mut f.shadow_duration, &[("route", r), ("deployment", d)], |h: &mut Histogram| h.observe(latency_ms / 1000.0));
                if let Some(c) = cost_usd {
                    inc(&mut f.shadow_cost, &[("route", r), ("deployment", d)], *c);
                }
                for (check, v) in [("text", same_text), ("tool_calls", same_tool_calls), ("schema", schema_valid)] {
                    if let Some(v) = v {
                        let result = if *v { "agree" } else { "disagree" };
                        inc(&mut f.shadow_agreement, &[("route", r), ("deployment", d), ("check", check), ("result", result)], 1.0);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn route_costs(&self) -> Vec<RouteCost> {
        let mut f = self.f.lock().unwrap_or_else(|p| p.into_inner());
        f.fold();
        f.route_costs
            .iter()
            .map(|(route, (requests, successes, cost))| RouteCost {
                route: route.clone(),
                requests: *requests,
                successes: *successes,
                total_cost_usd: *cost,
                cost_per_success_usd: (*successes > 0).then(|| cost / *successes as f64),
            })
            .collect()
    }

    /// A response-cache lookup on `route`: `hit`, `miss` or `fallback` (served as the
    /// degraded tier).
    pub fn cache_lookup(&self, route: &str, result: &str) {
        let mut f = self.f.lock().unwrap_or_else(|p| p.into_inner());
        inc(&mut f.cache_lookups, &[("route", route), ("result", result)], 1.0);
    }

    /// A reservation or settle served without the shared store, as `on_error` says.
    pub fn state_fallback(&self, on_error: &str) {
        let mut f = self.f.lock().unwrap_or_else(|p| p.into_inner());
        inc(&mut f.state_fallbacks, &[("on_error", on_error)], 1.0);
    }

    /// The shared state store answered (`true`) or failed (`false`).
    pub fn state_store(&self, up: bool) {
        self.f.lock().unwrap_or_else(|p| p.into_inner()).state_up = Some(up);
    }

    pub fn dropped_events(&self, n: usize) {
        self.f.lock().unwrap_or_else(|p| p.into_inner()).events_dropped += n as f64;
    }

    /// Render the text exposition format.
    pub fn render(&self, deployments: &[DeploymentGauge], budgets: &[BudgetGauge], cache: CacheGauge) -> String {
        let mut f = self.f.lock().unwrap_or_else(|p| p.into_inner());
        f.fold();
        let mut out = String::with_capacity(4096);
        counter(
            &mut out,
            "polyroute_requests_total",
            "Requests finished, by route, serving provider/model and outcome (ok, degraded or an error kind).",
            &f.requests,
        );
        counter(&mut out, "polyroute_attempts_total", "Attempts sent to deployments, by outcome (ok or an error kind).", &f.attempts);
        histogram(
            &mut out,
            "polyroute_request_duration_seconds",
            "Request duration from routing to the last byte, all attempts and backoff included.",
            &f.request_duration,
        );
        histogram(
            &mut out,
            "polyroute_time_to_first_token_seconds",
            "Time from sending an attempt to its first content (or complete response, when not streamed).",
            &f.ttft,
        );
        counter(
            &mut out,
            "polyroute_tokens_total",
            "Tokens reported by providers, by direction (input includes cache reads and writes; output includes reasoning).",
            &f.tokens,
        );
        counter(&mut out, "polyroute_cost_usd_total", "Spend in US dollars computed from reported usage and known prices.", &f.cost);
        counter(
            &mut out,
            "polyroute_fallbacks_total",
            "Times a request moved from one deployment to another, by the error kind that caused it.",
            &f.fallbacks,
        );
        counter(&mut out, "polyroute_breaker_transitions_total", "Circuit breaker state changes, by target state.", &f.breaker_transitions);
        counter(
            &mut out,
            "polyroute_guard_findings_total",
            "Values found by policy guards, by guard, action and detector (the values themselves are never recorded).",
            &f.guard_findings,
        );
        let _ = writeln!(out, "# HELP polyroute_deployment_up Whether the deployment is accepting traffic (breaker closed, half-open or disabled).");
        let _ = writeln!(out, "# TYPE polyroute_deployment_up gauge");
        for d in deployments {
            let up = matches!(d.breaker_state, "closed" | "half_open" | "disabled");
            let _ = writeln!(out, "polyroute_deployment_up{{{}}} {}", labels(&dep_labels(d)), u8::from(up));
        }
        let _ = writeln!(out, "# HELP polyroute_breaker_state Circuit breaker state per deployment (1 for the current state).");
        let _ = writeln!(out, "# TYPE polyroute_breaker_state gauge");
        for d in deployments {
            for s in ["closed", "open", "half_open", "forced_open", "disabled"] {
                let mut l = dep_labels(d);
                l.push(("state", s.into()));
                let _ = writeln!(out, "polyroute_breaker_state{{{}}} {}", labels(&l), u8::from(d.breaker_state == s));
            }
        }
        if !budgets.is_empty() {
            let _ = writeln!(out, "# HELP polyroute_budget_remaining Budget left in the current period, in the budget's unit.");
            let _ = writeln!(out, "# TYPE polyroute_budget_remaining gauge");
            for b in budgets {
                let l = vec![("budget", b.budget.clone()), ("scope", b.scope.clone()), ("unit", b.unit.to_string())];
                let _ = writeln!(out, "polyroute_budget_remaining{{{}}} {}", labels(&l), num(b.remaining));
            }
            let _ = writeln!(out, "# HELP polyroute_budget_limit Budget ceiling per period, in the budget's unit.");
            let _ = writeln!(out, "# TYPE polyroute_budget_limit gauge");
            for b in budgets {
                let l = vec![("budget", b.budget.clone()), ("scope", b.scope.clone()), ("unit", b.unit.to_string())];
                let _ = writeln!(out, "polyroute_budget_limit{{{}}} {}", labels(&l), num(b.limit));
            }
        }
        counter(
            &mut out,
            "polyroute_cache_lookups_total",
            "Response-cache lookups by route and result (hit, miss, or fallback: served as the degraded tier).",
            &f.cache_lookups,
        );
        for (name, help, v) in [
            ("polyroute_cache_entries", "Answers held by the response cache.", cache.entries),
            ("polyroute_cache_bytes", "Serialised bytes held by the response cache.", cache.bytes),
            ("polyroute_cache_max_bytes", "Bound of the response cache in bytes (policy `cache.max_bytes`).", cache.max_bytes),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
        if let Some(up) = f.state_up {
            let _ = writeln!(out, "# HELP polyroute_state_store_up Whether the shared state store (Redis/Valkey) answered its last call.");
            let _ = writeln!(out, "# TYPE polyroute_state_store_up gauge");
            let _ = writeln!(out, "polyroute_state_store_up {}", u8::from(up));
            counter(
                &mut out,
                "polyroute_state_store_fallbacks_total",
                "Reservations and settles served without the shared state store, by what `state.on_error` did.",
                &f.state_fallbacks,
            );
        }
        rollout(&mut out, &f);
        let _ = writeln!(out, "# HELP polyroute_events_dropped_total Events not delivered to a slow host callback (its queue was full).");
        let _ = writeln!(out, "# TYPE polyroute_events_dropped_total counter");
        let _ = writeln!(out, "polyroute_events_dropped_total {}", num(f.events_dropped));
        out
    }
}

/// Canary and shadow families (`routes[].canary`, `routes[].shadow`).
fn rollout(out: &mut String, f: &Families) {
    counter(
        out,
        "polyroute_canary_withdrawals_total",
        "Canaries withdrawn for doing worse than their route's own deployments.",
        &f.canary_withdrawals,
    );
    counter(
        out,
        "polyroute_shadow_requests_total",
        "Shadow copies sent, by route, deployment and outcome (ok or an error kind).",
        &f.shadow_requests,
    );
    counter(
        out,
        "polyroute_shadow_agreement_total",
        "Shadow answers compared with the served answer, by check (text, tool_calls; schema: valid against the request's schema) and result.",
        &f.shadow_agreement,
    );
    counter(out, "polyroute_shadow_dropped_total", "Shadow copies not sent, by reason (concurrency, budget, not_allowed).", &f.shadow_dropped);
    counter(out, "polyroute_shadow_cost_usd_total", "Spend of shadow copies in US dollars (outside every budget of the policy).", &f.shadow_cost);
    histogram(out, "polyroute_shadow_duration_seconds", "Duration of shadow copies.", &f.shadow_duration);
}

fn dep_labels(d: &DeploymentGauge) -> Labels {
    vec![("deployment", d.deployment.clone()), ("provider", d.provider.clone()), ("model", d.model.clone())]
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(l: &Labels) -> String {
    l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

fn num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn counter(out: &mut String, name: &str, help: &str, m: &Series<f64>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (l, v) in sorted(m) {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(l), num(*v));
    }
}

fn histogram(out: &mut String, name: &str, help: &str, m: &Series<Histogram>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (l, h) in sorted(m) {
        let base = labels(l);
        let sep = if base.is_empty() { "" } else { "," };
        for (i, b) in DURATION_BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{base}{sep}le=\"{b}\"}} {}", h.counts.get(i).copied().unwrap_or(0));
        }
        let _ = writeln!(out, "{name}_bucket{{{base}{sep}le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{base}}} {}", num(h.sum));
        let _ = writeln!(out, "{name}_count{{{base}}} {}", h.count);
    }
}

#[cfg(test)]
mod tests;
