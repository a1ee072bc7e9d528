//! The events the router emits, as plain serde data so every binding hands the same JSON to
//! its host callbacks. Events never carry prompt or completion content.

use serde::{Deserialize, Serialize};

use crate::health_types::BreakerState;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RouterEvent {
    RequestStarted {
        request_id: String,
        route: String,
        stream: bool,
    },
    AttemptStarted {
        request_id: String,
        route: String,
        deployment: String,
        provider: String,
        model: String,
        attempt: u32,
    },
    AttemptFinished {
        request_id: String,
        route: String,
        deployment: String,
        provider: String,
        provider_kind: String,
        model: String,
        /// `ok` or an error kind code.
        outcome: String,
        latency_ms: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttft_ms: Option<f64>,
        input_tokens: u64,
        output_tokens: u64,
        cache_read_tokens: u64,
        cache_write_tokens: u64,
        reasoning_tokens: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_model: Option<String>,
    },
    FallbackTaken {
        request_id: String,
        route: String,
        from: String,
        to: String,
        /// The error kind that caused it.
        reason: String,
    },
    BreakerChanged {
        deployment: String,
        from: BreakerState,
        to: BreakerState,
        reason: String,
    },
    RequestFinished {
        request_id: String,
        route: String,
        /// `ok`, `degraded` (static answer) or an error kind code.
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deployment: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        duration_ms: f64,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        explanation: String,
    },
    BudgetThreshold {
        budget: String,
        scope: String,
        /// Fraction of the ceiling spent when the threshold was crossed (0.8, 0.9, 1.0).
        threshold: f64,
        spent: f64,
        limit: f64,
    },
    /// A guard found something in a request (action `redact`, `mask`, `reject` or `audit`).
    /// Carries the detector names and counts only, never the values found.
    GuardTriggered {
        request_id: String,
        route: String,
        guard: String,
        action: String,
        findings: std::collections::BTreeMap<String, u64>,
    },
    /// The shared state store went down (`up: false`, with the error) or came back.
    StateStoreChanged {
        up: bool,
        /// What requests do meanwhile: `local`, `fail_closed` or `fail_open`.
        on_error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A route's canary did worse than the route's own deployments and takes no more traffic
    /// (until the policy is reloaded).
    CanaryWithdrawn {
        route: String,
        deployment: String,
        reason: String,
    },
    /// A shadow copy of a request finished. The comparisons are with the answer the caller was
    /// served (`None`: not applicable, e.g. the caller's request failed or was streamed, or no
    /// side called a tool); `schema_valid` when the request asked for a JSON schema.
    ShadowFinished {
        request_id: String,
        route: String,
        deployment: String,
        /// `ok` or an error kind code.
        outcome: String,
        latency_ms: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        same_text: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        same_tool_calls: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema_valid: Option<bool>,
    },
    /// A shadow copy was not sent: `concurrency` (max_concurrent copies in flight), `budget`
    /// (the shadow budget is spent) or `not_allowed` (the request's data class may not reach it).
    ShadowDropped {
        route: String,
        deployment: String,
        reason: String,
    },
    PolicyReloaded {
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}
