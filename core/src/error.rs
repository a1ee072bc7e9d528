//! The one error type of Polyroute and its stable kinds.
//!
//! Every failure, whether it came from a provider's HTTP status, a provider error code, an
//! in-band stream error event, a transport fault or our own validation, ends up as one
//! [`Error`] with one [`ErrorKind`]. The kind's snake_case code is a public contract: Python
//! maps it to an exception class, Node to `error.code`, Swift to an enum case, and metrics use
//! it as a label. Never rename a code; add new ones.
//!
//! Classification reads status codes and provider error codes/types, never free text alone:
//! provider messages change wording without notice, codes do not.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::types::{ToolCall, Usage};

/// Stable, snake_case failure categories. The router decides retry / fallover / stop from
/// the kind alone, so two failures that need different handling must be different kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
}

impl ErrorKind {
    /// Every kind, in declaration order; bindings use it to build one class/case per kind.
    pub const ALL: [ErrorKind; 20] = [
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

/// What a stream had delivered when it was interrupted: the caller may show it, but it is
/// never presented as a complete answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialOutput {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One error for everything. Fields are public plain data so bindings can mirror them; the
/// message never contains credentials (adapters build it from status, codes and the
/// provider's own message, never from request headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's machine-readable code or type (`insufficient_quota`, `overloaded_error`,
    /// `RESOURCE_EXHAUSTED`...), as it sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// How long the provider asked us to wait, from headers or body.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration_secs")]
    pub retry_after: Option<Duration>,
    /// For `stream_interrupted`: what had already been received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Box<PartialOutput>>,
    /// For `budget_exceeded` (and local rate limits): which ceiling, what is left, when it resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Box<crate::budget::BudgetInfo>>,
    /// Set by the router: every attempt that led to this error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Box<crate::types::RouteTrace>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            provider: None,
            model: None,
            status: None,
            provider_code: None,
            request_id: None,
            retry_after: None,
            partial: None,
            budget: None,
            trace: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidRequest, message)
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::MalformedResponse, message)
    }

    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    pub fn with_provider_code(mut self, code: impl Into<String>) -> Self {
        self.provider_code = Some(code.into());
        self
    }
    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        if id.is_some() {
            self.request_id = id;
        }
        self
    }
    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        if d.is_some() {
            self.retry_after = d;
        }
        self
    }
    pub fn with_partial(mut self, p: PartialOutput) -> Self {
        self.partial = Some(Box::new(p));
        self
    }

    /// Fill provider/model only where the adapter did not already set them.
    pub fn at(mut self, provider: &str, model: &str) -> Self {
        if self.provider.is_none() {
            self.provider = Some(provider.to_string());
        }
        if self.model.is_none() {
            self.model = Some(model.to_string());
        }
        self
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.code())?;
        match (&self.provider, &self.model) {
            (Some(p), Some(m)) => write!(f, " from {p}/{m}")?,
            (Some(p), None) => write!(f, " from {p}")?,
            (None, Some(m)) => write!(f, " from {m}")?,
            (None, None) => {}
        }
        if let Some(s) = self.status {
            write!(f, " (HTTP {s}")?;
            if let Some(c) = &self.provider_code {
                write!(f, ", {c}")?;
            }
            write!(f, ")")?;
        } else if let Some(c) = &self.provider_code {
            write!(f, " ({c})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(r) = self.retry_after {
            write!(f, " [retry after {:.3}s]", r.as_secs_f64())?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Generic HTTP status classification, used when a provider sent no code we recognise.
/// Provider adapters refine it with their codes before falling back to this.
pub fn kind_from_status(status: u16) -> ErrorKind {
    match status {
        400 | 422 => ErrorKind::InvalidRequest,
        401 => ErrorKind::Auth,
        402 => ErrorKind::QuotaExhausted,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::ContextLengthExceeded,
        409 | 425 => ErrorKind::ServerError,
        429 => ErrorKind::RateLimited,
        503 | 529 => ErrorKind::Overloaded,
        504 => ErrorKind::Timeout,
        500..=599 => ErrorKind::ServerError,
        // 2xx/3xx carrying an error body, or something exotic: the body decides, and absent
        // that it is a response we do not understand.
        _ => ErrorKind::MalformedResponse,
    }
}

/// Longest hint we accept. A provider asking for more than a day is broken or hostile;
/// clamping keeps `Duration` arithmetic from overflowing downstream.
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(86_400);

fn secs_f64(v: f64) -> Option<Duration> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(v).unwrap_or(MAX_RETRY_HINT).min(MAX_RETRY_HINT))
}

/// Parse the retry hint a provider sent in headers: `retry-after-ms` (OpenAI, float ms),
/// `x-ms-retry-after-ms` (Azure), then `retry-after` (seconds, possibly fractional, or an
/// HTTP date relative to `now`). Garbage yields `None`, never a panic; a date in the past
/// yields zero.
pub fn retry_hint_from_headers(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(v) = get(name) {
            if let Some(d) = v.parse::<f64>().ok().and_then(|ms| secs_f64(ms / 1000.0)) {
                return Some(d);
            }
        }
    }
    let v = get("retry-after")?;
    parse_retry_after_value(v, now)
}

/// `Retry-After` value: delta-seconds (we also accept fractions, as some providers send them)
/// or an IMF-fixdate.
pub fn parse_retry_after_value(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<f64>() {
        return secs_f64(secs);
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_HINT))
}

/// Parse a protobuf-JSON duration such as `"13s"` or `"0.5s"` (Gemini's `RetryInfo.retryDelay`)
/// and Go-style durations such as `"1m30s"`, `"250ms"`, `"6m0s"` (OpenAI's
/// `x-ratelimit-reset-*`).
pub fn parse_duration_str(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * mult;
        any = true;
    }
    if !any {
        return None;
    }
    secs_f64(total)
}

mod opt_duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        Ok(v.and_then(|v| Duration::try_from_secs_f64(v).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn codes_are_stable_and_unique() {
        let codes: Vec<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        let mut dedup = codes.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(codes.len(), dedup.len());
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.code()));
        }
        assert_eq!(ErrorKind::ContextLengthExceeded.code(), "context_length_exceeded");
    }

    #[test]
    fn retry_hint_variants() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", "2")]), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", "1.5")]), now), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_hint_from_headers(&hm(&[("retry-after-ms", "250"), ("retry-after", "9")]), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_hint_from_headers(&hm(&[("x-ms-retry-after-ms", "1200")]), now), Some(Duration::from_millis(1200)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", &date)]), now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", &past)]), now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_hint_garbage_never_panics() {
        let now = SystemTime::now();
        for g in ["", "  ", "-1", "NaN", "inf", "1e400", "abc", "Wed, 99 Foo", "1e30", "0x10", "💥"] {
            let h = hm(&[("retry-after", g), ("retry-after-ms", g)]);
            let d = retry_hint_from_headers(&h, now);
            assert!(d.map_or(true, |d| d <= MAX_RETRY_HINT), "{g:?} -> {d:?}");
        }
        // a bad ms header falls through to a good retry-after
        assert_eq!(
            retry_hint_from_headers(&hm(&[("retry-after-ms", "soon"), ("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        // non-UTF-8 bytes
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(retry_hint_from_headers(&h, now), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_str("13s"), Some(Duration::from_secs(13)));
        assert_eq!(parse_duration_str("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration_str("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration_str("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_duration_str("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration_str("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "10", "10x", "1..2s", "m5"] {
            assert_eq!(parse_duration_str(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_fallback() {
        assert_eq!(kind_from_status(429), ErrorKind::RateLimited);
        assert_eq!(kind_from_status(403), ErrorKind::PermissionDenied);
        assert_eq!(kind_from_status(529), ErrorKind::Overloaded);
        assert_eq!(kind_from_status(502), ErrorKind::ServerError);
        assert_eq!(kind_from_status(401), ErrorKind::Auth);
    }

    #[test]
    fn display_is_informative() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_provider("openai")
            .with_model("gpt-4o")
            .with_status(429)
            .with_provider_code("rate_limit_exceeded")
            .with_retry_after(Some(Duration::from_secs(2)))
            .with_request_id(Some("req_1".into()));
        assert_eq!(
            e.to_string(),
            "rate_limited from openai/gpt-4o (HTTP 429, rate_limit_exceeded): slow down [retry after 2.000s] [request id req_1]"
        );
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["kind"], "rate_limited");
        assert_eq!(j["retry_after"], 2.0);
        let back: Error = serde_json::from_value(j).unwrap();
        assert_eq!(back, e);
    }
}
