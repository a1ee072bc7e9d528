//! Provider adapters: pure translators between the unified contract and one wire format.
//!
//! The split is deliberate. A [`Provider`] only builds a [`WireRequest`] and parses bytes
//! back; it has no async, no clock and no socket, so it cannot retry, sleep or decide (the
//! router is the only retry loop). A [`Transport`] moves bytes (real HTTP, or the in-process
//! mock). An [`Endpoint`] joins the two for one attempt and turns a byte stream into unified
//! [`StreamEvent`]s, enforcing that a stream which stops without its provider's completion
//! signal is a `stream_interrupted` error, never a silent success.

pub mod anthropic;
pub mod azure;
pub mod compat;
pub mod credentials;
pub mod endpoint;
pub mod gemini;
pub mod inline;
pub mod mock;
pub mod openai;
mod openai_body;
mod openai_chunk;
#[cfg(test)]
mod openai_chunk_tests;
pub mod ratelimit;
pub mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sse::SseEvent;
use crate::types::{ChatRequest, ChatResponse, StreamEvent};

pub use endpoint::{Endpoint, EventStream};
pub use transport::{BodyStream, HttpTransport, Transport, TransportOptions, WireResponse};

/// An HTTP request an adapter wants sent. Header values holding credentials are marked
/// sensitive, so `Debug` prints `Sensitive` instead of the key.
#[derive(Clone)]
pub struct WireRequest {
    pub method: http::Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl fmt::Debug for WireRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Turns one provider's SSE events into unified events.
pub trait StreamDecoder: Send {
    /// One SSE event in, zero or more unified events out. An in-band error event (a 200
    /// stream that then says `error`) is returned as `Err`, classified like an HTTP error.
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<()>;
    /// The byte stream ended cleanly. Returns `Err(stream_interrupted)` when the provider's
    /// own completion signal (finish reason / terminator) never came.
    fn on_end(&mut self, out: &mut Vec<StreamEvent>) -> Result<()>;
    /// The provider said the stream is over (e.g. `[DONE]`): stop reading even if the
    /// connection stays open.
    fn is_done(&self) -> bool;
}

/// A translator for one wire format. Implementations are cheap to share (`Arc`).
pub trait Provider: Send + Sync + fmt::Debug {
    /// The configured provider name (e.g. `openai`, `groq-eu`), used in errors and traces.
    fn name(&self) -> &str;
    /// The adapter family.
    fn kind(&self) -> ProviderKind;
    fn build_request(&self, model: &str, req: &ChatRequest, stream: bool) -> Result<WireRequest>;
    fn parse_response(&self, model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse>;
    /// Classify a non-2xx answer (or a 2xx whose body is an error object).
    fn parse_error(&self, model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> crate::Error;
    fn stream_decoder(&self, model: &str) -> Box<dyn StreamDecoder>;
    /// What this provider's response headers say about the remaining allowance (its own
    /// convention; `now_unix` for providers that send reset times as dates). Default: none.
    fn rate_limits(&self, _headers: &HeaderMap, _now_unix: f64) -> ratelimit::ProviderLimits {
        ratelimit::ProviderLimits::default()
    }
}

/// Which adapter a configured provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Gemini,
    Azure,
    Mock,
}

impl ProviderKind {
    /// The policy's spelling (`openai_compatible`...), also used in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Azure => "azure",
            ProviderKind::Mock => "mock",
        }
    }

    /// Hosted APIs that answer nothing without a key. OpenAI-compatible servers are often
    /// local and keyless.
    pub fn needs_key(self) -> bool {
        matches!(self, ProviderKind::Openai | ProviderKind::Anthropic | ProviderKind::Gemini | ProviderKind::Azure)
    }
}

/// Connection settings for one provider. `api_key` is a secret: it is never printed by
/// `Debug`, never serialised, and only exposed when building the auth header.
#[derive(Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<SecretString>,
    /// Where the key comes from when `api_key` is `None`: the host's hook, asked per attempt.
    pub host_keys: Option<credentials::HostKeys>,
    /// Extra headers sent on every request (e.g. `OpenAI-Organization`, OpenRouter's `HTTP-Referer`).
    pub headers: BTreeMap<String, String>,
    /// Azure `api-version`, Anthropic `anthropic-version` override.
    pub api_version: Option<String>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("host_keys", &self.host_keys.is_some())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("api_version", &self.api_version)
            .finish()
    }
}

impl ProviderConfig {
    pub fn new(name: impl Into<String>, kind: ProviderKind, base_url: impl Into<String>) -> Self {
        ProviderConfig {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            api_key: None,
            host_keys: None,
            headers: BTreeMap::new(),
            api_version: None,
        }
    }
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(SecretString::from(key.into()));
        self
    }

    /// `base_url` joined with a path, tolerating a trailing slash on either side.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), path.trim_start_matches('/'))
    }

    /// Build a header value from the secret, marked sensitive so `Debug` hides it: the
    /// configured key, else the host's (asked now; `auth` error if it has none for a kind
    /// that needs one), else none.
    pub(crate) fn secret_header(&self, prefix: &str) -> Result<Option<http::HeaderValue>> {
        let Some(key) = self.api_key.as_ref() else {
            return match &self.host_keys {
                Some(keys) => credentials::host_header(keys, &self.name, prefix, self.kind.needs_key()),
                None => Ok(None),
            };
        };
        let Ok(mut v) = http::HeaderValue::from_str(&format!("{prefix}{}", key.expose_secret())) else { return Ok(None) };
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// Common headers: JSON content type plus the configured extras. Invalid extras are a
    /// config error caught at construction ([`build_provider`]), so they are skipped here.
    pub(crate) fn base_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
                h.insert(k, v);
            }
        }
        h
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.base_url.is_empty() {
            return Err(crate::Error::config(format!("provider `{}`: base_url is empty", self.name)));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://") || self.kind == ProviderKind::Mock) {
            return Err(crate::Error::config(format!(
                "provider `{}`: base_url must start with http:// or https://, got `{}`",
                self.name, self.base_url
            )));
        }
        for (k, v) in &self.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() || http::HeaderValue::from_str(v).is_err() {
                return Err(crate::Error::config(format!("provider `{}`: invalid header `{k}`", self.name)));
            }
        }
        if let Some(k) = &self.api_key {
            if http::HeaderValue::from_str(k.expose_secret()).is_err() {
                return Err(crate::Error::config(format!("provider `{}`: api key contains characters not allowed in an HTTP header", self.name)));
            }
        }
        Ok(())
    }
}

/// Parse a response body. Its UTF-8 is checked once for the whole body: `from_slice`
/// checked each string and key on its own, ~60 instructions a time, 2.7 k of a routed
/// call's ~63 k under callgrind (issue 18). Invalid UTF-8 still fails as `from_slice` does.
pub(crate) fn from_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// Construct the adapter for a config. Adapters for providers that land later return a
/// config error naming the missing kind rather than pretending.
pub fn build_provider(cfg: ProviderConfig) -> Result<Arc<dyn Provider>> {
    cfg.validate()?;
    match cfg.kind {
        ProviderKind::Openai | ProviderKind::Mock => Ok(Arc::new(openai::OpenAiProvider::new(cfg))),
        ProviderKind::OpenaiCompatible => Ok(Arc::new(compat::CompatProvider::new(cfg))),
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::AnthropicProvider::new(cfg))),
        ProviderKind::Gemini => Ok(Arc::new(gemini::GeminiProvider::new(cfg))),
        ProviderKind::Azure => Ok(Arc::new(azure::AzureProvider::new(cfg))),
    }
}

#[cfg(test)]
mod body_tests {
    use serde_json::Value;

    #[test]
    fn a_body_parses_as_from_slice_would_even_when_not_utf8() {
        let ok = b"{\"a\": [\"\\u00e9t\\u00e9\", \"caf\xc3\xa9\"]}";
        assert_eq!(super::from_body::<Value>(ok).unwrap(), serde_json::from_slice::<Value>(ok).unwrap());
        // Invalid UTF-8 inside a string: the same error, at the same place.
        let bad = b"{\"a\": \"caf\xff\"}";
        let (ours, theirs) = (super::from_body::<Value>(bad).unwrap_err(), serde_json::from_slice::<Value>(bad).unwrap_err());
        assert_eq!(ours.to_string(), theirs.to_string());
        // Not JSON at all: still an error.
        assert!(super::from_body::<Value>(b"<html>").is_err());
    }
}
