//! The one error type of Polyroute and its stable kinds.
//!
//! Every failure, whether it came from a provider's HTTP status, a provider error code, an
//! in-band stream error event, a transport fault or our own validation, ends up as one
//! [`Error`] with one [`ErrorKind`]. The kind's snake_case code is a public contract: Python
//! maps it to an exception class, Node to `error.code`, Swift to an enum case, and metrics use
//! it as a label. Never rename a code; add new ones.
//!
//! It lives in `types/` (and is re-exported as `polyroute::error::Error`) because it is part
//! of the contract: it carries contract data (the route trace, a partial output with usage and
//! tool calls, the budget that refused) and the contract's own constructors
//! (`ChatRequest::from_openai_json`...) return it. Kept here, `types` and `error` no longer
//! import each other. Classification (`kind_from_status`) stays in `crate::error`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::kind::ErrorKind;
use super::message::ToolCall;
use super::trace::RouteTrace;
use super::usage::Usage;

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

/// What a budget or limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetUnit {
    Usd,
    Tokens,
    Requests,
}

impl BudgetUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetUnit::Usd => "usd",
            BudgetUnit::Tokens => "tokens",
            BudgetUnit::Requests => "requests",
        }
    }
}

impl std::fmt::Display for BudgetUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for BudgetUnit {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A refused reservation, with what an operator (and the caller) needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetInfo {
    /// Budget name, or `rate_limit:<deployment>:requests|tokens`.
    pub budget: String,
    pub unit: BudgetUnit,
    pub limit: f64,
    pub remaining: f64,
    /// Unix seconds when the period resets (calendar) or the oldest usage leaves the window
    /// (rolling).
    pub resets_at: f64,
    /// What the attempt needed.
    pub needed: f64,
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
    pub budget: Option<Box<BudgetInfo>>,
    /// Set by the router: every attempt that led to this error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Box<RouteTrace>>,
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
