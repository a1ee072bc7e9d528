//! Azure OpenAI adapter: the OpenAI wire format behind Azure's deployment URLs.
//!
//! The body, response and stream code is `openai.rs`'s, reused rather than copied; only
//! what Azure does differently lives here:
//! - URL `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=V`, where
//!   the "model" the router passes is the deployment name, and `V` is
//!   `ProviderConfig::api_version` or [`DEFAULT_API_VERSION`];
//! - auth header `api-key` (marked sensitive) instead of `Authorization: Bearer`;
//! - content filtering: a prompt refused by Azure's filter is a 400 with code
//!   `content_filter` (inner code `ResponsibleAIPolicyViolation`) → `content_filter` error;
//!   an answer cut by the filter has `finish_reason: "content_filter"`, and a choice whose
//!   `content_filter_results` has any category `filtered: true` is reported with the
//!   `content_filter` finish reason even when Azure said `stop`;
//! - Azure streams open with a chunk that has no choices and only `prompt_filter_results`
//!   (empty `id` and `model`): it is skipped so the stream's `Start` carries the real id;
//! - retry hints come from `x-ms-retry-after-ms` or `retry-after` (shared header parser).

use http::HeaderMap;
use serde_json::Value;

use super::openai::{classify_error, parse_completion, OpenAiStreamDecoder};
use super::{ProviderConfig, StreamDecoder, WireRequest};
use crate::error::{Error, ErrorKind, Result};
use crate::sse::SseEvent;
use crate::types::{ChatRequest, ChatResponse, FinishReason, StreamEvent};

/// The latest generally-available Azure OpenAI data-plane API version we target.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Debug)]
pub struct AzureProvider {
    cfg: ProviderConfig,
}

impl AzureProvider {
    pub fn new(cfg: ProviderConfig) -> Self {
        AzureProvider { cfg }
    }

    fn url(&self, deployment: &str) -> Result<String> {
        if deployment.is_empty() || !deployment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
            return Err(Error::invalid_request(format!("`{deployment}` is not a valid azure deployment name")));
        }
        let version = self.cfg.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        if !version.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::config(format!("provider `{}`: invalid api-version `{version}`", self.cfg.name)));
        }
        let base = self.cfg.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/openai").unwrap_or(base);
        Ok(format!("{base}/openai/deployments/{deployment}/chat/completions?api-version={version}"))
    }
}

impl super::Provider for AzureProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> crate::provider::ProviderKind {
        use crate::provider::ProviderKind;
        ProviderKind::Azure
    }

    fn build_request(&self, model: &str, req: &ChatRequest, stream: bool) -> Result<WireRequest> {
        let url = self.url(model)?;
        // The deployment in the URL picks the model; Azure ignores or rejects `model`.
        let body = super::openai_body::body_bytes(None, req, stream, false);
        let mut headers = self.cfg.base_headers();
        if let Some(v) = self.cfg.secret_header("")? {
            headers.insert("api-key", v);
        }
        if stream {
            headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("text/event-stream"));
        }
        Ok(WireRequest { method: http::Method::POST, url, headers, body: body.into() })
    }

    fn parse_response(&self, model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse> {
        let v: Value = super::from_body(body).map_err(|e| Error::malformed(format!("azure response is not JSON: {e}")).with_status(status))?;
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return Err(self.parse_error(model, status, headers, body));
        }
        let filtered: Vec<bool> = v
            .get("choices")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| any_filtered(c.get("content_filter_results"))).collect())
            .unwrap_or_default();
        let mut r = parse_completion(v, model, false).map_err(|e| e.with_status(status).with_request_id(super::endpoint::request_id(headers)))?;
        for (c, f) in r.choices.iter_mut().zip(filtered) {
            if f {
                c.finish_reason = Some(FinishReason::ContentFilter);
            }
        }
        Ok(r)
    }

    fn parse_error(&self, _model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        let mut e = classify_error(status, headers, body);
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let inner = v.pointer("/error/innererror/code").and_then(Value::as_str);
        if inner == Some("ResponsibleAIPolicyViolation") || v.pointer("/error/innererror/content_filter_result").is_some() {
            e.kind = ErrorKind::ContentFilter;
            if e.provider_code.is_none() {
                e.provider_code = inner.map(str::to_string);
            }
        }
        e
    }

    fn rate_limits(&self, headers: &http::HeaderMap, _now_unix: f64) -> super::ratelimit::ProviderLimits {
        super::ratelimit::openai_style(headers)
    }

    fn stream_decoder(&self, model: &str) -> Box<dyn StreamDecoder> {
        Box::new(AzureStreamDecoder { inner: OpenAiStreamDecoder::new(model), filtered: false })
    }
}

/// Whether any category of an Azure `content_filter_results` object says `filtered: true`.
fn any_filtered(results: Option<&Value>) -> bool {
    results.and_then(Value::as_object).is_some_and(|o| o.values().any(|cat| cat.get("filtered").and_then(Value::as_bool) == Some(true)))
}

struct AzureStreamDecoder {
    inner: OpenAiStreamDecoder,
    filtered: bool,
}

impl StreamDecoder for AzureStreamDecoder {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<()> {
        if let Ok(v) = serde_json::from_str::<Value>(ev.data.trim()) {
            let choices = v.get("choices").and_then(Value::as_array);
            if choices.is_some_and(|c| c.is_empty()) && v.get("prompt_filter_results").is_some() && v.get("usage").is_none_or(Value::is_null) {
                return Ok(());
            }
            if choices.is_some_and(|cs| cs.iter().any(|c| any_filtered(c.get("content_filter_results")))) {
                self.filtered = true;
            }
        }
        let start = out.len();
        self.inner.on_event(ev, out)?;
        if self.filtered {
            for e in &mut out[start..] {
                if let StreamEvent::Finish { reason, .. } = e {
                    *reason = FinishReason::ContentFilter;
                }
            }
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<StreamEvent>) -> Result<()> {
        self.inner.on_end(out)
    }

    fn is_done(&self) -> bool {
        self.inner.is_done()
    }
}
