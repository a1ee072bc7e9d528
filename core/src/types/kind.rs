//! The error kinds: stable snake_case codes, a public contract. Python maps each to an
//! exception class, Node to `error.code`, Swift to an enum case, metrics use it as a label.
//! Never rename a code; add new ones. Its own file because both the error and the trace
//! (an attempt's outcome is a kind) need it, and they must not import each other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stable, snake_case failure categories. The router decides retry / fallover / stop from
/// the kind alone, so two failures that need different handling must be different kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Per-minute style throttling (HTTP 429 `rate_limit_exceeded`); retryable after a wait.
    RateLimited,
    /// Billing / daily quota gone (`insufficient_quota`, spend limits). Waiting seconds won't help.
    QuotaExhausted,
    /// Provider-side capacity problem (Anthropic 529 / `overloaded_error`, OpenAI `server_overloaded`).
    Overloaded,
    /// 5xx that is not an overload.
    ServerError,
    /// Connect, first-token, idle or total deadline elapsed.
    Timeout,
    /// Connection refused/reset/closed before a response, DNS, TLS.
    Connection,
    /// 401: key missing, wrong or revoked.
    Auth,
    /// 403: the key is valid but may not do this. A provider's policy ban looks like this.
    PermissionDenied,
    /// The provider refused for content policy reasons (input or output).
    ContentFilter,
    /// The request does not fit the model's context window.
    ContextLengthExceeded,
    /// The provider rejected the request as malformed (400/422 that is none of the above).
    InvalidRequest,
    /// 404: model or endpoint does not exist for this key.
    NotFound,
    /// A stream ended, or went silent, after it had started and before it finished.
    StreamInterrupted,
    /// The provider answered with something we cannot parse.
    MalformedResponse,
    /// The answer parsed but does not satisfy the requested JSON schema.
    InvalidOutput,
    /// A spend or token budget would be exceeded.
    BudgetExceeded,
    /// Every candidate's circuit breaker is open.
    CircuitOpen,
    /// No route / deployment can serve this request.
    NoRoute,
    /// The caller cancelled.
    Cancelled,
    /// Invalid configuration or policy, detected before anything was sent.
    Config,
    /// A guard of the policy found data it must not send (action `reject`); nothing was sent.
    GuardRejected,
    /// The shared state store (Redis/Valkey) did not answer and `state.on_error` is
    /// `fail_closed`: nothing was sent.
    StateUnavailable,
}

impl ErrorKind {
    /// Every kind, in declaration order; bindings use it to build one class/case per kind.
    pub const ALL: [ErrorKind; 22] = [
        ErrorKind::RateLimited,
        ErrorKind::QuotaExhausted,
        ErrorKind::Overloaded,
        ErrorKind::ServerError,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Auth,
        ErrorKind::PermissionDenied,
        ErrorKind::ContentFilter,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::InvalidRequest,
        ErrorKind::NotFound,
        ErrorKind::StreamInterrupted,
        ErrorKind::MalformedResponse,
        ErrorKind::InvalidOutput,
        ErrorKind::BudgetExceeded,
        ErrorKind::CircuitOpen,
        ErrorKind::NoRoute,
        ErrorKind::Cancelled,
        ErrorKind::Config,
        ErrorKind::GuardRejected,
        ErrorKind::StateUnavailable,
    ];

    /// The stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExhausted => "quota_exhausted",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Auth => "auth",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ContentFilter => "content_filter",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::StreamInterrupted => "stream_interrupted",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Config => "config",
            ErrorKind::GuardRejected => "guard_rejected",
            ErrorKind::StateUnavailable => "state_unavailable",
        }
    }

    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.code() == code)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
