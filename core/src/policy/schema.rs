//! The policy file's shape: what an operator writes (YAML or JSON) to say which providers
//! exist, which deployments they serve, and how requests are routed among them.
//!
//! Kept as plain serde data with defaults, separate from validation (`validate.rs`) and from
//! the compiled runtime form (`router/`), so a policy can be parsed, checked and diffed
//! without building any client. Durations accept `"250ms"`, `"30s"`, `"5m"` or a number of
//! milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::provider::ProviderKind;

pub use super::values::{Dur, Period, SecretText, MAX_POLICY_DURATION};

/// Root of a policy file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSpec>,
    #[serde(default)]
    pub deployments: BTreeMap<String, DeploymentSpec>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Route used when no rule matches and the request names none.
    #[serde(default)]
    pub default_route: Option<String>,
    #[serde(default)]
    pub breaker: BreakerSpec,
    #[serde(default)]
    pub retry_budget: RetryBudgetSpec,
    /// Model catalog overrides: a path to a JSON file, or the overrides inline (same shape
    /// as the built-in catalog), merged over the built-in data.
    #[serde(default)]
    pub catalog: Option<serde_json::Value>,
    #[serde(default)]
    pub budgets: Vec<BudgetSpec>,
    #[serde(default)]
    pub telemetry: TelemetrySpec,
    /// Detectors and what to do with what they find, before anything is sent (in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<super::guards::GuardSpec>,
    /// The process-wide response cache store (routes opt in with `routes[].cache`).
    #[serde(default)]
    pub cache: super::CacheSpec,
    /// Where budgets, rate limits and deployment health live; absent: in this process.
    #[serde(default, skip_serializing_if = "is_default_state")]
    pub state: super::StateSpec,
    /// Virtual API keys for the gateway (`polyroute serve`); see `policy/keys.rs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<super::keys::KeySpec>,
}

fn is_default_state(s: &super::StateSpec) -> bool {
    s.redis.is_none()
}

/// Where telemetry goes besides `metrics_text()` and host callbacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySpec {
    /// Export OpenTelemetry spans (GenAI semantic conventions) over OTLP/HTTP JSON.
    #[serde(default)]
    pub otlp: Option<crate::telemetry::otlp::OtlpConfig>,
}

/// Which requests a budget counts. Every field given must match; `"*"` means "each value
/// separately" (a per-tenant budget: every tenant gets its own ceiling).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetScope {
    pub tenant: Option<String>,
    pub feature: Option<String>,
    pub route: Option<String>,
    pub deployment: Option<String>,
}

/// A spend or token ceiling over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    pub name: String,
    #[serde(default)]
    pub scope: BudgetScope,
    #[serde(default)]
    pub limit_usd: Option<f64>,
    #[serde(default)]
    pub limit_tokens: Option<u64>,
    pub period: Period,
    #[serde(default)]
    pub rolling: bool,
    /// `false`: shadow mode. Spend is counted, threshold events and metrics are emitted and
    /// the trace notes when the ceiling would have refused, but nothing is refused: how a
    /// new limit is rolled out safely.
    #[serde(default = "yes")]
    pub enforce: bool,
}

/// What a route does when a budget would be exceeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnBudgetExceeded {
    /// Fail with `budget_exceeded` (which budget, what is left, when it resets).
    #[default]
    Reject,
    /// Skip deployments that would break the budget and use the next ones that fit
    /// (typically a cheaper tier, or a free local model).
    Fallback,
}

/// Client-side limits per deployment, held in-process before the provider's 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    /// `false`: shadow mode (counted and reported, never refused), as for budgets.
    #[serde(default = "yes")]
    pub enforce: bool,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        RateLimitSpec { requests_per_minute: None, tokens_per_minute: None, enforce: true }
    }
}

fn one() -> u32 {
    1
}

/// A provider account: where to connect and with which credential.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    /// Defaults per kind (api.openai.com, api.anthropic.com, ...); required for
    /// `openai_compatible` and `azure`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the key (preferred).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A literal key. Allowed for local setups; never printed or logged, and serialised
    /// back only as `[redacted]` (so a policy read back still says a key is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretText>,
    /// Extra headers (often credentials for a gateway): redacted like keys when serialised.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretText>,
    #[serde(default)]
    pub api_version: Option<String>,
    /// Scripted behaviour, for `kind: mock` only (a `provider::mock::MockScript`; kept as
    /// JSON here so a bad script is reported by validation with its path, like any field).
    #[serde(default)]
    pub script: Option<serde_json::Value>,
}

/// Capability switches; `None` means "use the catalog's value".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySpec {
    pub tools: Option<bool>,
    pub vision: Option<bool>,
    pub json_schema: Option<bool>,
    pub streaming: Option<bool>,
    pub assistant_prefill: Option<bool>,
}

/// Prices in USD per million tokens, overriding the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
}

/// Per-attempt timeouts. Unset values inherit from the route, then the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSpec {
    /// TCP/TLS connect (set on the shared HTTP client; per-provider values are not honoured).
    pub connect: Option<Dur>,
    /// Request sent → first content (for non-streaming: → complete response headers+body).
    pub first_token: Option<Dur>,
    /// Longest silence between stream chunks once streaming.
    pub idle: Option<Dur>,
    /// Whole request, all attempts and backoff included.
    pub total: Option<Dur>,
}

/// A model served by a provider: the unit the router picks.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub provider: String,
    pub model: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_weight")]
    pub weight: f64,
    #[serde(default)]
    pub context_window: Option<u64>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub pricing: Option<PriceSpec>,
    #[serde(default)]
    pub capabilities: CapabilitySpec,
    #[serde(default)]
    pub timeouts: TimeoutSpec,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
}

fn default_weight() -> f64 {
    1.0
}

/// How a route orders its candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    Priority,
    Weighted,
    LeastLatency,
    Cheapest,
    Hedged,
}

/// Which requests a route takes. Every listed field must match (AND); a list matches if
/// the request's value is one of its entries (OR). An empty rule matches everything.
/// A request capability a route can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Tools,
    Vision,
    JsonSchema,
    Streaming,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Tools => "tools",
            Capability::Vision => "vision",
            Capability::JsonSchema => "json_schema",
            Capability::Streaming => "streaming",
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(default)]
    pub feature: Vec<String>,
    #[serde(default)]
    pub tenant: Vec<String>,
    #[serde(default)]
    pub tier: Vec<String>,
    /// Matches if the request carries any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub data_class: Vec<String>,
    /// Matches requests that use all of these capabilities (`tools`, `vision`, `json_schema`, `streaming`).
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// Where a data class may go. Fail closed: a deployment without a region never matches a
/// region restriction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataRuleSpec {
    #[serde(default)]
    pub providers: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
}

/// A fallback tier, entered only when the previous tiers failed with one of `on`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub deployments: Vec<String>,
    /// Error kinds that send traffic to this tier; empty means the defaults
    /// (every transient kind plus quota, permission, auth, circuit_open, content_filter when
    /// the route lets it cross providers, and context_length_exceeded).
    #[serde(default)]
    pub on: Vec<ErrorKind>,
    /// Degraded answer: serve this text instead of failing (a last tier, usually).
    #[serde(default)]
    pub static_response: Option<String>,
}

/// Retry behaviour on the same deployment, before falling over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts on one deployment (1 = no retry).
    #[serde(default = "d_attempts_per_deployment")]
    pub attempts_per_deployment: u32,
    /// Attempts for the whole request, retries and fallbacks together.
    #[serde(default = "d_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "d_base_delay")]
    pub base_delay: Dur,
    #[serde(default = "d_max_delay")]
    pub max_delay: Dur,
    /// A provider's retry hint longer than this makes us fall over instead of waiting.
    #[serde(default = "d_max_retry_after")]
    pub max_retry_after: Dur,
    /// Kinds retried on the same deployment (default: rate_limited, overloaded,
    /// server_error, timeout, connection, stream_interrupted, malformed_response).
    #[serde(default)]
    pub retry_on: Option<Vec<ErrorKind>>,
    /// Spend ceiling for one request across all attempts, in USD.
    #[serde(default)]
    pub max_request_cost_usd: Option<f64>,
    /// When every candidate's breaker is open, wait at most this long (and never past the
    /// deadline) for the earliest one to admit a probe instead of failing at once. `0s`
    /// fails at once with `circuit_open` and the retry hint.
    #[serde(default = "d_wait_for_reopen")]
    pub wait_for_reopen: Dur,
}

fn d_wait_for_reopen() -> Dur {
    Dur::secs(3)
}

fn d_attempts_per_deployment() -> u32 {
    2
}
fn d_max_attempts() -> u32 {
    5
}
fn d_base_delay() -> Dur {
    Dur::ms(200)
}
fn d_max_delay() -> Dur {
    Dur::secs(5)
}
fn d_max_retry_after() -> Dur {
    Dur::secs(10)
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            attempts_per_deployment: d_attempts_per_deployment(),
            max_attempts: d_max_attempts(),
            base_delay: d_base_delay(),
            max_delay: d_max_delay(),
            max_retry_after: d_max_retry_after(),
            retry_on: None,
            max_request_cost_usd: None,
            wait_for_reopen: d_wait_for_reopen(),
        }
    }
}

/// What happens when a stream breaks after content reached the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamRecovery {
    /// End with a typed `stream_interrupted` carrying the partial output.
    #[default]
    Error,
    /// Emit a `reset` event and stream the whole answer again from the next deployment.
    Restart,
}

/// Cheapest-strategy service level: candidates outside it are used only if none meets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    pub max_p95_ttft: Option<Dur>,
    pub min_success_rate: Option<f64>,
}

/// Hedged-strategy settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HedgeSpec {
    /// Fixed delay before the backup request; when unset the primary's observed p95 time to
    /// first token is used (bounded by `min_delay`).
    #[serde(default)]
    pub delay: Option<Dur>,
    #[serde(default = "d_hedge_min")]
    pub min_delay: Dur,
}

fn d_hedge_min() -> Dur {
    Dur::ms(50)
}

impl Default for HedgeSpec {
    fn default() -> Self {
        HedgeSpec { delay: None, min_delay: d_hedge_min() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: String,
    #[serde(default, rename = "match")]
    pub match_rule: Option<MatchSpec>,
    #[serde(default)]
    pub strategy: Strategy,
    /// The first tier.
    pub deployments: Vec<String>,
    #[serde(default)]
    pub fallbacks: Vec<FallbackSpec>,
    /// Data class → where it may go. A class with a rule may reach only what the rule allows.
    #[serde(default)]
    pub data_rules: BTreeMap<String, DataRuleSpec>,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub timeouts: TimeoutSpec,
    #[serde(default)]
    pub stream_recovery: StreamRecovery,
    /// Let a `content_filter` refusal fall over to another provider (off by default: a
    /// refusal is usually an answer, not an outage).
    #[serde(default)]
    pub content_filter_fallover: bool,
    #[serde(default)]
    pub slo: SloSpec,
    #[serde(default)]
    pub hedge: HedgeSpec,
    /// Validate answers against the request's JSON schema (`invalid_output` when they fail).
    #[serde(default = "yes")]
    pub validate_output: bool,
    #[serde(default)]
    pub on_budget_exceeded: OnBudgetExceeded,
    /// Exact-match response cache for this route (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<RouteCacheSpec>,
    /// A slice of traffic tries a new deployment first; withdrawn automatically when worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<super::CanarySpec>,
    /// Copies of requests to deployments whose answers are compared, never served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<super::ShadowSpec>,
}

fn yes() -> bool {
    true
}

/// A route's opt-in (`routes[].cache`). Successful answers are stored in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheSpec {
    #[serde(default)]
    pub mode: super::CacheMode,
    /// How long an answer may be served after it was stored.
    #[serde(default = "d_ttl")]
    pub ttl: Dur,
    /// Also cache requests that sample (`temperature` > 0 or `top_p` < 1). Off by default:
    /// only requests without sampling (temperature absent or 0, top_p absent or 1) are
    /// cached, since a sampled request asks for a fresh draw.
    #[serde(default)]
    pub sampled: bool,
}

fn d_ttl() -> Dur {
    Dur::secs(600)
}

/// Circuit breaker settings, shared by all deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    #[serde(default = "d_failure_rate")]
    pub failure_rate: f64,
    #[serde(default = "d_window")]
    pub window: Dur,
    #[serde(default = "d_min_calls")]
    pub min_calls: u32,
    #[serde(default = "d_consecutive")]
    pub consecutive_failures: u32,
    #[serde(default = "d_open")]
    pub open_for: Dur,
    #[serde(default = "d_open_max")]
    pub max_open_for: Dur,
    #[serde(default = "d_probes")]
    pub half_open_probes: u32,
    /// Calls slower than this to the first token count as slow.
    #[serde(default)]
    pub slow_call: Option<Dur>,
    #[serde(default = "d_slow_rate")]
    pub slow_call_rate: f64,
    /// Open time after `permission_denied`, `auth` or `quota_exhausted` (a ban or an empty
    /// wallet does not heal in seconds).
    #[serde(default = "d_ban")]
    pub ban_open_for: Dur,
}

fn d_failure_rate() -> f64 {
    0.5
}
fn d_window() -> Dur {
    Dur::secs(30)
}
fn d_min_calls() -> u32 {
    10
}
fn d_consecutive() -> u32 {
    5
}
fn d_open() -> Dur {
    Dur::secs(5)
}
fn d_open_max() -> Dur {
    Dur::secs(300)
}
fn d_probes() -> u32 {
    1
}
fn d_slow_rate() -> f64 {
    0.8
}
fn d_ban() -> Dur {
    Dur::secs(3600)
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            failure_rate: d_failure_rate(),
            window: d_window(),
            min_calls: d_min_calls(),
            consecutive_failures: d_consecutive(),
            open_for: d_open(),
            max_open_for: d_open_max(),
            half_open_probes: d_probes(),
            slow_call: None,
            slow_call_rate: d_slow_rate(),
            ban_open_for: d_ban(),
        }
    }
}

/// Process-wide limit on same-deployment retries: at most `ratio` of recent requests plus
/// `min_per_second`, so an outage cannot turn into a retry storm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetSpec {
    #[serde(default = "d_ratio")]
    pub ratio: f64,
    #[serde(default = "d_floor")]
    pub min_per_second: f64,
    #[serde(default = "d_budget_window")]
    pub window: Dur,
}

fn d_ratio() -> f64 {
    0.2
}
fn d_floor() -> f64 {
    10.0
}
fn d_budget_window() -> Dur {
    Dur::secs(10)
}

impl Default for RetryBudgetSpec {
    fn default() -> Self {
        RetryBudgetSpec { ratio: d_ratio(), min_per_second: d_floor(), window: d_budget_window() }
    }
}
