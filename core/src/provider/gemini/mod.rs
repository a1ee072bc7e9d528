//! Native Gemini adapter: `models/{m}:generateContent` and
//! `models/{m}:streamGenerateContent?alt=sse` on the Gemini Developer API.
//!
//! `request.rs` builds bodies, `schema.rs` turns JSON Schema into Gemini's subset,
//! `response.rs` parses responses and streams. This file holds the provider, URL and
//! header rules and error classification.
//!
//! The API key goes in the `x-goog-api-key` header (marked sensitive), never in the `?key=`
//! query, so it cannot leak through a logged URL. `base_url` may be given with or without the
//! version segment (`https://generativelanguage.googleapis.com` or `.../v1beta`); a `models/`
//! prefix on the model name is accepted and stripped. Model names are restricted to
//! `[A-Za-z0-9._-]` because they are spliced into the URL path.
//!
//! Errors are `google.rpc.Status` objects (`{"error": {"code", "message", "status",
//! "details"}}`). Classification uses the canonical `status` and the typed `details`:
//! `RESOURCE_EXHAUSTED` is `rate_limited`, except when a `QuotaFailure` violation names a
//! per-day quota (waiting seconds will not help: `quota_exhausted`); `RetryInfo.retryDelay`
//! ("13s") is the retry hint, ahead of any header; `ErrorInfo.reason == API_KEY_INVALID`
//! (sent as a 400) is `auth`.

mod partial_args;
mod request;
mod response;
pub mod schema;

use http::HeaderMap;
use serde_json::Value;

use super::{ProviderConfig, StreamDecoder, WireRequest};
use crate::error::{kind_from_status, Error, ErrorKind, Result};
use crate::time::{parse_duration_str, retry_hint_from_headers};
use crate::types::{ChatRequest, ChatResponse};

pub use request::SKIP_SIGNATURE;
pub use response::usage_from_gemini;

#[derive(Debug)]
pub struct GeminiProvider {
    cfg: ProviderConfig,
}

impl GeminiProvider {
    pub fn new(cfg: ProviderConfig) -> Self {
        GeminiProvider { cfg }
    }

    /// The request body this adapter would send (exposed for tests and debugging tools).
    pub fn request_json(&self, req: &ChatRequest) -> Result<Value> {
        request::request_body(req)
    }

    fn url(&self, model: &str, stream: bool) -> Result<String> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        if model.is_empty() || !model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err(Error::invalid_request(format!("`{model}` is not a valid gemini model name")));
        }
        let base = self.cfg.base_url.trim_end_matches('/');
        let versioned = base.ends_with("/v1beta") || base.ends_with("/v1") || base.ends_with("/v1alpha");
        let prefix = if versioned { base.to_string() } else { format!("{base}/v1beta") };
        Ok(if stream { format!("{prefix}/models/{model}:streamGenerateContent?alt=sse") } else { format!("{prefix}/models/{model}:generateContent") })
    }
}

impl super::Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> crate::provider::ProviderKind {
        use crate::provider::ProviderKind;
        ProviderKind::Gemini
    }

    fn build_request(&self, model: &str, req: &ChatRequest, stream: bool) -> Result<WireRequest> {
        let url = self.url(model, stream)?;
        let body = request::request_body(req)?;
        let mut headers = self.cfg.base_headers();
        if let Some(v) = self.cfg.secret_header("")? {
            headers.insert("x-goog-api-key", v);
        }
        if stream {
            headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("text/event-stream"));
        }
        let body = serde_json::to_vec(&body).map_err(|e| Error::invalid_request(format!("cannot serialise request: {e}")))?;
        Ok(WireRequest { method: http::Method::POST, url, headers, body: body.into() })
    }

    fn parse_response(&self, model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse> {
        let v: Value =
            crate::provider::from_body(body).map_err(|e| Error::malformed(format!("gemini response is not JSON: {e}")).with_status(status))?;
        if v.get("error").is_some_and(|e| e.is_object()) {
            return Err(self.parse_error(model, status, headers, body));
        }
        response::parse_generate(&v, model).map_err(|e| e.with_status(status).with_request_id(super::endpoint::request_id(headers)))
    }

    fn parse_error(&self, _model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let v = match v {
            Value::Array(mut a) if a.len() == 1 => a.remove(0),
            other => other,
        };
        let mut e = classify_error_value(Some(status), &v);
        if !v.get("error").is_some_and(Value::is_object) {
            e.message = if body.is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))
            };
        }
        if e.retry_after.is_none() {
            e.retry_after = retry_hint_from_headers(headers, std::time::SystemTime::now());
        }
        e.with_request_id(super::endpoint::request_id(headers))
    }

    fn stream_decoder(&self, model: &str) -> Box<dyn StreamDecoder> {
        Box::new(response::GeminiStreamDecoder::new(model))
    }
}

/// Classify a `google.rpc.Status` error (`{"error": {...}}`), from an HTTP body or a stream.
pub(crate) fn classify_error_value(http_status: Option<u16>, v: &Value) -> Error {
    let err = v.get("error").unwrap_or(v);
    let code = err.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok());
    let status = err.get("status").and_then(Value::as_str);
    let message = err.get("message").and_then(Value::as_str).unwrap_or("gemini error").to_string();
    let details: &[Value] = err.get("details").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    fn of_type<'a>(details: &'a [Value], suffix: &'static str) -> impl Iterator<Item = &'a Value> {
        details.iter().filter(move |d| d.get("@type").and_then(Value::as_str).is_some_and(|t| t.ends_with(suffix)))
    }
    let reason = of_type(details, "google.rpc.ErrorInfo").find_map(|d| d.get("reason").and_then(Value::as_str));
    let retry = of_type(details, "google.rpc.RetryInfo").find_map(|d| d.get("retryDelay").and_then(Value::as_str)).and_then(parse_duration_str);
    let per_day = of_type(details, "google.rpc.QuotaFailure").any(|d| {
        d.get("violations").and_then(Value::as_array).is_some_and(|vs| {
            vs.iter().any(|q| {
                ["quotaId", "quotaMetric", "subject"]
                    .iter()
                    .filter_map(|k| q.get(*k).and_then(Value::as_str))
                    .any(|s| s.contains("PerDay") || s.contains("per_day"))
            })
        })
    });
    let effective_status = http_status.filter(|s| !(200..300).contains(s)).or(code);
    let lower = message.to_ascii_lowercase();
    let kind = match (reason, status) {
        (Some("API_KEY_INVALID" | "API_KEY_EXPIRED"), _) => ErrorKind::Auth,
        (Some("BILLING_DISABLED"), _) => ErrorKind::QuotaExhausted,
        (Some("SERVICE_DISABLED" | "CONSUMER_SUSPENDED" | "ACCESS_TOKEN_SCOPE_INSUFFICIENT"), _) => ErrorKind::PermissionDenied,
        (_, Some("RESOURCE_EXHAUSTED")) if per_day => ErrorKind::QuotaExhausted,
        (_, Some("RESOURCE_EXHAUSTED")) => ErrorKind::RateLimited,
        // Gemini states an over-long prompt only in the message; the kind is not retryable.
        (_, Some("INVALID_ARGUMENT")) if lower.contains("exceeds the maximum number of tokens") => ErrorKind::ContextLengthExceeded,
        (_, Some("INVALID_ARGUMENT" | "OUT_OF_RANGE")) => ErrorKind::InvalidRequest,
        // e.g. "User location is not supported", free tier unavailable in a region.
        (_, Some("FAILED_PRECONDITION" | "PERMISSION_DENIED")) => ErrorKind::PermissionDenied,
        (_, Some("UNAUTHENTICATED")) => ErrorKind::Auth,
        (_, Some("NOT_FOUND" | "UNIMPLEMENTED")) => ErrorKind::NotFound,
        (_, Some("UNAVAILABLE")) => ErrorKind::Overloaded,
        (_, Some("DEADLINE_EXCEEDED")) => ErrorKind::Timeout,
        (_, Some("INTERNAL" | "UNKNOWN" | "ABORTED" | "CANCELLED" | "DATA_LOSS")) => ErrorKind::ServerError,
        _ => match effective_status {
            Some(s) => kind_from_status(s),
            None => ErrorKind::ServerError,
        },
    };
    let mut e = Error::new(kind, message).with_retry_after(retry);
    if let Some(s) = effective_status {
        e = e.with_status(s);
    }
    if let Some(c) = reason.or(status) {
        e = e.with_provider_code(c);
    }
    e
}

#[cfg(test)]
mod tests;
