//! Native Anthropic Messages adapter (`POST /v1/messages`), streaming and not.
//!
//! Split by direction: `request.rs` builds the wire body, `response.rs` parses messages and
//! SSE streams. This file holds the [`Provider`](crate::provider::Provider) impl, the URL and
//! header rules and error classification.
//!
//! Auth is `x-api-key` (marked sensitive) plus `anthropic-version` (default `2023-06-01`,
//! overridable with `ProviderConfig::api_version`). `base_url` may be given with or without
//! the `/v1` segment (`https://api.anthropic.com` and `https://api.anthropic.com/v1` both
//! work), because the SDKs disagree on which one is the "base".
//!
//! Errors are classified by the `error.type` Anthropic sends, then by status:
//! `overloaded_error`/529 is `overloaded`; `rate_limit_error`/429 is `rate_limited` unless the
//! error's structured `details` name a spend or billing limit, which is `quota_exhausted`
//! (waiting will not help); `billing_error` is `quota_exhausted`. Anthropic reports two
//! non-retryable conditions only in the message of an `invalid_request_error`: an over-long
//! prompt ("prompt is too long") and exhausted credit/usage limits; those are recognised from
//! the message because both kinds stop retries, never start them.

mod request;
mod response;

use http::HeaderMap;
use serde_json::Value;

use super::{ProviderConfig, StreamDecoder, WireRequest};
use crate::error::{kind_from_status, Error, ErrorKind, Result};
use crate::time::retry_hint_from_headers;
use crate::types::{ChatRequest, ChatResponse};

pub(crate) use request::arguments_object;
pub use request::DEFAULT_MAX_TOKENS;
pub use response::usage_from_anthropic;

/// API version sent when the config names none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug)]
pub struct AnthropicProvider {
    cfg: ProviderConfig,
}

impl AnthropicProvider {
    pub fn new(cfg: ProviderConfig) -> Self {
        AnthropicProvider { cfg }
    }

    /// The request body this adapter would send (exposed for tests and debugging tools).
    pub fn request_json(&self, model: &str, req: &ChatRequest, stream: bool) -> Result<Value> {
        request::request_body(model, req, stream)
    }

    fn url(&self) -> String {
        let base = self.cfg.base_url.trim_end_matches('/');
        if base.ends_with("/v1") {
            format!("{base}/messages")
        } else {
            format!("{base}/v1/messages")
        }
    }
}

impl super::Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> crate::provider::ProviderKind {
        use crate::provider::ProviderKind;
        ProviderKind::Anthropic
    }

    fn build_request(&self, model: &str, req: &ChatRequest, stream: bool) -> Result<WireRequest> {
        let body = request::request_body(model, req, stream)?;
        let mut headers = self.cfg.base_headers();
        if let Some(v) = self.cfg.secret_header("")? {
            headers.insert("x-api-key", v);
        }
        let version = self.cfg.api_version.as_deref().unwrap_or(DEFAULT_ANTHROPIC_VERSION);
        let version = http::HeaderValue::from_str(version)
            .map_err(|_| Error::config(format!("provider `{}`: invalid anthropic-version `{version}`", self.cfg.name)))?;
        headers.insert("anthropic-version", version);
        if stream {
            headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("text/event-stream"));
        }
        let body = serde_json::to_vec(&body).map_err(|e| Error::invalid_request(format!("cannot serialise request: {e}")))?;
        Ok(WireRequest { method: http::Method::POST, url: self.url(), headers, body: body.into() })
    }

    fn parse_response(&self, model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse> {
        let v: Value =
            crate::provider::from_body(body).map_err(|e| Error::malformed(format!("anthropic response is not JSON: {e}")).with_status(status))?;
        if v.get("type").and_then(Value::as_str) == Some("error") || v.get("error").is_some_and(|e| e.is_object()) {
            return Err(self.parse_error(model, status, headers, body));
        }
        response::parse_message(&v, model).map_err(|e| e.with_status(status).with_request_id(super::endpoint::request_id(headers)))
    }

    fn parse_error(&self, _model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut e = classify_error_value(Some(status), &v);
        if v.is_null() {
            e.message = if body.is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))
            };
        }
        e.with_retry_after(retry_hint_from_headers(headers, std::time::SystemTime::now())).with_request_id(super::endpoint::request_id(headers))
    }

    fn rate_limits(&self, headers: &http::HeaderMap, now_unix: f64) -> super::ratelimit::ProviderLimits {
        super::ratelimit::anthropic_style(headers, now_unix)
    }

    fn stream_decoder(&self, model: &str) -> Box<dyn StreamDecoder> {
        Box::new(response::AnthropicStreamDecoder::new(model))
    }
}

/// Classify an Anthropic error object (`{"type":"error","error":{"type","message","details"},
/// "request_id"}`), from an HTTP body or an in-band stream event.
pub(crate) fn classify_error_value(status: Option<u16>, v: &Value) -> Error {
    let err = v.get("error").unwrap_or(v);
    let etype = err.get("type").and_then(Value::as_str);
    let message = err.get("message").and_then(Value::as_str).unwrap_or("anthropic error").to_string();
    let kind = match etype {
        Some("overloaded_error") => ErrorKind::Overloaded,
        Some("rate_limit_error") if details_name_spend_limit(err.get("details")) => ErrorKind::QuotaExhausted,
        Some("rate_limit_error") => ErrorKind::RateLimited,
        Some("billing_error") => ErrorKind::QuotaExhausted,
        Some("authentication_error") => ErrorKind::Auth,
        Some("permission_error") => ErrorKind::PermissionDenied,
        Some("not_found_error") => ErrorKind::NotFound,
        Some("request_too_large") => ErrorKind::ContextLengthExceeded,
        Some("timeout_error") => ErrorKind::Timeout,
        Some("api_error") => ErrorKind::ServerError,
        Some("invalid_request_error") => {
            let m = message.to_ascii_lowercase();
            if m.contains("prompt is too long") || m.contains("context window") {
                ErrorKind::ContextLengthExceeded
            } else if m.contains("credit balance is too low") || m.contains("usage limits") {
                ErrorKind::QuotaExhausted
            } else {
                ErrorKind::InvalidRequest
            }
        }
        _ => match status {
            Some(s) => kind_from_status(s),
            None => ErrorKind::ServerError,
        },
    };
    // A 429 with no recognisable type is still a rate limit, and 529 always means overloaded,
    // whatever the body says.
    let kind = match (status, kind) {
        (Some(529), _) => ErrorKind::Overloaded,
        (_, k) => k,
    };
    let mut e = Error::new(kind, message);
    if let Some(s) = status {
        e = e.with_status(s);
    }
    if let Some(t) = etype {
        e = e.with_provider_code(t);
    }
    e.with_request_id(v.get("request_id").and_then(Value::as_str).map(str::to_string))
}

/// Whether a 429's structured `details` says a spend/billing limit (not a rate) was hit.
/// Anthropic's `details` has no published schema yet, so any string value under it naming
/// a spend, billing or credit limit counts.
fn details_name_spend_limit(details: Option<&Value>) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::String(s) => {
                let s = s.to_ascii_lowercase();
                ["spend", "billing", "credit", "usage_limit", "quota"].iter().any(|k| s.contains(k))
            }
            Value::Object(o) => o.iter().any(|(k, v)| {
                let k = k.to_ascii_lowercase();
                k.contains("spend") || k.contains("billing") || walk(v)
            }),
            Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    details.is_some_and(walk)
}

#[cfg(test)]
mod tests;
