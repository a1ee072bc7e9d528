//! OpenAI Chat Completions adapter, also the base of every OpenAI-compatible server.
//!
//! Requests are our own serde shape (which is OpenAI's) minus routing metadata (`polyroute`;
//! OpenAI's own `metadata` is sent, as every unmodelled field is). Errors are classified
//! from the `error.code` / `error.type` pair first and the HTTP status second, because OpenAI uses 429 for both "slow down" and "out of money" and only the code tells
//! them apart. Streams are complete only with a finish reason: `[DONE]` alone (or EOF) after
//! a cut is `stream_interrupted`.

use http::HeaderMap;
use serde_json::Value;

use super::{ProviderConfig, ProviderKind, StreamDecoder, WireRequest};
use crate::error::{kind_from_status, Error, ErrorKind, Result};
use crate::sse::SseEvent;
use crate::time::retry_hint_from_headers;
use crate::types::{ChatRequest, ChatResponse, FinishReason, StreamEvent, Usage};

#[derive(Debug)]
pub struct OpenAiProvider {
    pub(crate) cfg: ProviderConfig,
    /// Generic OpenAI-compatible server: more lenient parsing, conservative request fields.
    pub(crate) compat: bool,
    /// What every request repeats, made once: the URL, the content type and configured extra
    /// headers, and the configured key's `authorization` (a host's keys are asked per request).
    /// Formatting and validating them per request was ~3 % of a call's instructions.
    chat_url: String,
    headers: HeaderMap,
}

impl OpenAiProvider {
    pub fn new(cfg: ProviderConfig) -> Self {
        let compat = cfg.kind == ProviderKind::OpenaiCompatible;
        let mut headers = cfg.base_headers();
        if cfg.api_key.is_some() {
            if let Ok(Some(v)) = cfg.secret_header("Bearer ") {
                headers.insert(http::header::AUTHORIZATION, v);
            }
        }
        OpenAiProvider { chat_url: cfg.url("chat/completions"), headers, cfg, compat }
    }
}

impl super::Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn kind(&self) -> crate::provider::ProviderKind {
        use crate::provider::ProviderKind;
        if self.compat {
            ProviderKind::OpenaiCompatible
        } else {
            ProviderKind::Openai
        }
    }

    fn build_request(&self, model: &str, req: &ChatRequest, stream: bool) -> Result<WireRequest> {
        let body = super::openai_body::body_bytes(Some(model), req, stream, self.compat);
        let mut headers = self.headers.clone();
        if self.cfg.api_key.is_none() {
            if let Some(v) = self.cfg.secret_header("Bearer ")? {
                headers.insert(http::header::AUTHORIZATION, v);
            }
        }
        if stream {
            headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("text/event-stream"));
        }
        Ok(WireRequest { method: http::Method::POST, url: self.chat_url.clone(), headers, body: body.into() })
    }

    fn parse_response(&self, model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Result<ChatResponse> {
        // A complete, well-typed completion (nearly every one) goes straight from bytes into
        // the response; anything irregular takes the lenient path through a `Value` below.
        if let Ok(r) = super::from_body::<ChatResponse>(body) {
            if r.extra.get("error").is_none_or(|e| e.is_null()) {
                return Ok(normalise(r, self.compat));
            }
        }
        let v: Value = super::from_body(body).map_err(|e| Error::malformed(format!("response is not JSON: {e}")).with_status(status))?;
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return Err(self.parse_error(model, status, headers, body));
        }
        parse_completion(v, model, self.compat).map_err(|e| e.with_status(status).with_request_id(super::endpoint::request_id(headers)))
    }

    fn parse_error(&self, _model: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        classify_error(status, headers, body)
    }

    fn rate_limits(&self, headers: &http::HeaderMap, _now_unix: f64) -> super::ratelimit::ProviderLimits {
        super::ratelimit::openai_style(headers)
    }

    fn stream_decoder(&self, model: &str) -> Box<dyn StreamDecoder> {
        let mut d = OpenAiStreamDecoder::new(model);
        d.compat = self.compat;
        Box::new(d)
    }
}

/// Parse a `chat.completion` object, tolerating what compatible servers omit.
pub(crate) fn parse_completion(mut v: Value, model: &str, compat: bool) -> Result<ChatResponse> {
    let obj = v.as_object_mut().ok_or_else(|| Error::malformed("response is not a JSON object"))?;
    if !obj.get("choices").is_some_and(Value::is_array) {
        return Err(Error::malformed("response has no `choices` array"));
    }
    if !obj.get("id").is_some_and(Value::is_string) {
        obj.insert("id".into(), Value::String(String::new()));
    }
    if !obj.get("model").is_some_and(Value::is_string) {
        obj.insert("model".into(), Value::String(model.to_string()));
    }
    if obj.get("usage").is_some_and(Value::is_null) {
        obj.remove("usage");
    }
    let r: ChatResponse = serde_json::from_value(v).map_err(|e| Error::malformed(format!("unexpected completion shape: {e}")))?;
    Ok(normalise(r, compat))
}

fn normalise(mut r: ChatResponse, compat: bool) -> ChatResponse {
    for c in &mut r.choices {
        if compat && !c.message.tool_calls.is_empty() && c.finish_reason == Some(FinishReason::Stop) {
            // Some servers say `stop` while returning tool calls; the calls are what matters.
            c.finish_reason = Some(FinishReason::ToolCalls);
        }
        lift_reasoning(&mut c.message);
    }
    r
}

/// Put reasoning where the unified contract (and the stream path) puts it:
/// `reasoning_content`. OpenRouter, Groq and Cerebras send `message.reasoning` (moved, so it
/// is not sent back twice); Mistral sends `thinking` content parts (kept in `content`,
/// because Mistral wants them back verbatim in the history, and copied).
fn lift_reasoning(m: &mut crate::types::Message) {
    if m.reasoning_content.is_some() {
        return;
    }
    if let Some(Value::String(r)) = m.extra.get("reasoning") {
        let r = r.clone();
        m.extra.remove("reasoning");
        m.reasoning_content = (!r.is_empty()).then_some(r);
        return;
    }
    if let Some(crate::types::Content::Parts(parts)) = &m.content {
        let thinking: String = parts
            .iter()
            .filter_map(|p| match p {
                crate::types::ContentPart::Other(v) if v.get("type").and_then(Value::as_str) == Some("thinking") => Some(thinking_text(v)),
                _ => None,
            })
            .collect();
        if !thinking.is_empty() {
            m.reasoning_content = Some(thinking);
        }
    }
}

/// Text of a Mistral `{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}`
/// part (`thinking` may also be a plain string).
fn thinking_text(part: &Value) -> String {
    match part.get("thinking") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(|i| i.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// The error object, wherever a server put it: `{"error": {...}}` (OpenAI, Groq,
/// OpenRouter), `{"error": "text"}` (Ollama), or top-level `{"message", "type", "code"}`
/// (vLLM, Mistral).
fn error_fields(v: &Value) -> (Option<String>, Option<String>, Option<String>, Option<u16>) {
    let e = match v.get("error") {
        Some(Value::String(s)) => return (None, None, Some(s.clone()), None),
        Some(e @ Value::Object(_)) => e,
        _ => v,
    };
    let s = |k: &str| e.get(k).and_then(|x| x.as_str()).map(str::to_string);
    // OpenRouter (and vLLM) send a numeric `code` that is an HTTP status.
    let numeric = e.get("code").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok());
    (s("code"), s("type"), s("message").or_else(|| s("detail")), numeric)
}

/// Classify an OpenAI-shaped error. Codes first (they are stable), then the status.
pub(crate) fn classify_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (code, etype, message, numeric) = error_fields(&v);
    let effective_status = if (200..300).contains(&status) { numeric.unwrap_or(status) } else { status };
    let kind = classify_codes(code.as_deref(), etype.as_deref(), message.as_deref()).unwrap_or_else(|| kind_from_status(effective_status));
    let message = message.unwrap_or_else(|| {
        if body.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))
        }
    });
    let mut err = Error::new(kind, message)
        .with_status(status)
        .with_retry_after(retry_hint_from_headers(headers, std::time::SystemTime::now()))
        .with_request_id(super::endpoint::request_id(headers));
    if let Some(c) = code.or(etype) {
        err = err.with_provider_code(c);
    }
    err
}

/// Map OpenAI(-compatible) error codes and types to kinds. `message` is consulted only to
/// split the one code that OpenAI overloads (`invalid_request_error` for context length on
/// older deployments), never as the sole evidence for a retryable kind.
pub(crate) fn classify_codes(code: Option<&str>, etype: Option<&str>, message: Option<&str>) -> Option<ErrorKind> {
    let by_code = |c: &str| -> Option<ErrorKind> {
        Some(match c {
            "insufficient_quota" | "billing_hard_limit_reached" | "billing_not_active" | "quota_exceeded" => ErrorKind::QuotaExhausted,
            "rate_limit_exceeded" | "rate_limit_error" | "tokens_exceeded" | "requests_exceeded" => ErrorKind::RateLimited,
            "context_length_exceeded" | "string_above_max_length" | "context_window_exceeded" => ErrorKind::ContextLengthExceeded,
            "content_filter" | "content_policy_violation" | "ResponsibleAIPolicyViolation" | "content_filtered" => ErrorKind::ContentFilter,
            "invalid_api_key" | "invalid_authentication" | "authentication_error" | "incorrect_api_key" => ErrorKind::Auth,
            "model_not_found" | "not_found_error" | "DeploymentNotFound" => ErrorKind::NotFound,
            "unsupported_country_region_territory" | "permission_error" | "permission_denied" | "organization_banned" | "account_deactivated" => {
                ErrorKind::PermissionDenied
            }
            "server_overloaded" | "overloaded_error" | "engine_overloaded" => ErrorKind::Overloaded,
            "server_error" | "internal_error" | "api_error" => ErrorKind::ServerError,
            _ => return None,
        })
    };
    if let Some(k) = code.and_then(by_code) {
        return Some(k);
    }
    if let Some(k) = etype.and_then(by_code) {
        return Some(k);
    }
    if etype == Some("invalid_request_error")
        && message.is_some_and(|m| m.contains("maximum context length") || m.contains("context_length_exceeded"))
    {
        return Some(ErrorKind::ContextLengthExceeded);
    }
    None
}

/// OpenAI stream chunks → unified events.
pub(crate) struct OpenAiStreamDecoder {
    model: String,
    started: bool,
    finished: bool,
    usage_seen: bool,
    done: bool,
    /// Generic compatible server: `stop` after tool calls means `tool_calls`, as in
    /// `parse_completion`, so streamed and non-streamed answers agree.
    pub(crate) compat: bool,
    saw_tool_calls: bool,
    /// Wire tool-call index → unified index, in order of first appearance. The wire index
    /// is not a position: Anthropic's OpenAI-compatible endpoint numbers the only call `1`
    /// because a text block came first. Unified indices are dense per stream (as the
    /// Anthropic and Gemini decoders make them), so no empty phantom call precedes it.
    tool_index: Vec<u64>,
}

impl OpenAiStreamDecoder {
    pub(crate) fn new(model: &str) -> Self {
        OpenAiStreamDecoder {
            model: model.to_string(),
            started: false,
            finished: false,
            usage_seen: false,
            done: false,
            compat: false,
            saw_tool_calls: false,
            tool_index: Vec::new(),
        }
    }

    /// Whether a chunk can say who is answering. Azure (and gateways in front of it) open
    /// with `{"choices": [], "id": "", "model": "", "prompt_filter_results": [...]}`: taking
    /// the stream's identity from that chunk would report model `""`.
    fn has_identity(v: &Value) -> bool {
        let non_empty = |k: &str| v.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        let has_choices = v.get("choices").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
        non_empty("id") || non_empty("model") || has_choices
    }

    /// Any chunk, through a `Value`: what `on_usual_chunk` does for the usual shape, and
    /// everything else.
    pub(super) fn on_value_data(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        let v: Value = serde_json::from_str(data).map_err(|e| Error::malformed(format!("stream chunk is not JSON ({e}): {}", snippet(data, 120))))?;
        self.on_chunk(&v, out)
    }

    /// `on_chunk` for a chunk of the usual shape (`openai_chunk`): the same events in the
    /// same order, without the `Value`.
    fn on_usual_chunk(&mut self, c: super::openai_chunk::Chunk<'_>, out: &mut Vec<StreamEvent>) {
        let non_empty = |s: &Option<std::borrow::Cow<str>>| s.as_deref().is_some_and(|s| !s.is_empty());
        let has_choices = c.choices.as_ref().is_some_and(|ch| !ch.is_empty());
        if !self.started && (non_empty(&c.id) || non_empty(&c.model) || has_choices) {
            self.started = true;
            let model = c.model.as_deref().filter(|m| !m.is_empty()).unwrap_or(&self.model).to_string();
            out.push(StreamEvent::Start { id: c.id.as_deref().unwrap_or_default().to_string(), model });
        }
        for ch in c.choices.into_iter().flatten() {
            if ch.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(d) = ch.delta {
                if let Some(text) = d.content.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::ContentDelta { text: text.into_owned() });
                }
                if let Some(text) = d.refusal.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::RefusalDelta { text: text.into_owned() });
                }
            }
            if let Some(fr) = ch.finish_reason {
                self.finished = true;
                let mut reason = FinishReason::from_openai(&fr);
                if self.compat && self.saw_tool_calls && reason == FinishReason::Stop {
                    reason = FinishReason::ToolCalls;
                }
                out.push(StreamEvent::Finish { reason, native: Some(fr.into_owned()) });
            }
        }
        if let Some(usage) = c.usage {
            self.usage_seen = true;
            out.push(StreamEvent::Usage { usage });
        }
        if self.finished && self.usage_seen {
            self.done = true;
        }
    }

    fn on_chunk(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        if v.get("error").is_some_and(|e| !e.is_null()) {
            // In-band error after a 200: classify like the HTTP error it stands for.
            // The HTTP status it stands for: OpenRouter puts it in a numeric `code`, Groq in
            // `status_code` (next to a string `code` such as `tool_use_failed`).
            let body = serde_json::to_vec(v).unwrap_or_default();
            let status = ["/error/code", "/error/status_code"]
                .iter()
                .find_map(|p| v.pointer(p).and_then(Value::as_u64))
                .and_then(|n| u16::try_from(n).ok())
                .filter(|s| (400..600).contains(s));
            // Without one, classify as a server error but report no status we made up.
            let mut e = classify_error(status.unwrap_or(500), &HeaderMap::new(), &body);
            e.status = status;
            return Err(e);
        }
        if !v.is_object() {
            return Err(Error::malformed("stream chunk is not a JSON object"));
        }
        if !self.started && Self::has_identity(v) {
            self.started = true;
            out.push(StreamEvent::Start {
                id: v.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                model: v.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).unwrap_or(&self.model).to_string(),
            });
        }
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for c in choices {
                // `n` > 1 streams interleave choices; the unified stream carries choice 0.
                if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                    continue;
                }
                if let Some(d) = c.get("delta") {
                    let before = out.len();
                    decode_delta(d, &mut self.tool_index, out)?;
                    self.saw_tool_calls |= out[before..].iter().any(|e| matches!(e, StreamEvent::ToolCallDelta { .. }));
                }
                if let Some(fr) = c.get("finish_reason").and_then(Value::as_str) {
                    self.finished = true;
                    let mut reason = FinishReason::from_openai(fr);
                    if self.compat && self.saw_tool_calls && reason == FinishReason::Stop {
                        reason = FinishReason::ToolCalls;
                    }
                    out.push(StreamEvent::Finish { reason, native: Some(fr.to_string()) });
                }
            }
        } else if v.get("choices").is_some_and(|c| !c.is_null()) {
            return Err(Error::malformed("stream chunk `choices` is not an array"));
        }
        // Groq reports usage under `x_groq`; everyone else at top level.
        let usage = v.get("usage").filter(|u| u.is_object()).or_else(|| v.pointer("/x_groq/usage").filter(|u| u.is_object()));
        if let Some(u) = usage {
            self.usage_seen = true;
            out.push(StreamEvent::Usage { usage: Usage::from_openai(u) });
        }
        // Finish plus usage is everything OpenAI sends before `[DONE]`: no need to wait for
        // a terminator a compatible server may never send.
        if self.finished && self.usage_seen {
            self.done = true;
        }
        Ok(())
    }
}

fn decode_delta(d: &Value, tool_index: &mut Vec<u64>, out: &mut Vec<StreamEvent>) -> Result<()> {
    match d.get("content") {
        Some(Value::String(t)) if !t.is_empty() => out.push(StreamEvent::ContentDelta { text: t.clone() }),
        // Mistral streams reasoning models' content as parts: `thinking` and `text`.
        Some(Value::Array(parts)) => {
            for p in parts {
                let text = match p.get("type").and_then(Value::as_str) {
                    Some("text") => p.get("text").and_then(Value::as_str).unwrap_or_default().to_string(),
                    Some("thinking") => thinking_text(p),
                    _ => continue,
                };
                if text.is_empty() {
                    continue;
                }
                if p.get("type").and_then(Value::as_str) == Some("thinking") {
                    out.push(StreamEvent::ReasoningDelta { text, signature: None });
                } else {
                    out.push(StreamEvent::ContentDelta { text });
                }
            }
        }
        _ => {}
    }
    if let Some(t) = d.get("refusal").and_then(Value::as_str) {
        if !t.is_empty() {
            out.push(StreamEvent::RefusalDelta { text: t.to_string() });
        }
    }
    for key in ["reasoning_content", "reasoning"] {
        if let Some(t) = d.get(key).and_then(Value::as_str) {
            if !t.is_empty() {
                out.push(StreamEvent::ReasoningDelta { text: t.to_string(), signature: None });
            }
            break;
        }
    }
    if let Some(tcs) = d.get("tool_calls") {
        let tcs = match tcs {
            Value::Array(a) => a,
            Value::Null => return Ok(()),
            _ => return Err(Error::malformed("delta `tool_calls` is not an array")),
        };
        for (pos, tc) in tcs.iter().enumerate() {
            let wire = tc.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let index = match tool_index.iter().position(|w| *w == wire) {
                Some(i) => i,
                None => {
                    tool_index.push(wire);
                    tool_index.len() - 1
                }
            } as u32;
            let f = tc.get("function");
            let arguments = match f.and_then(|f| f.get("arguments")) {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            out.push(StreamEvent::ToolCallDelta {
                index,
                id: tc.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
                name: f.and_then(|f| f.get("name")).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
                arguments,
            });
        }
    }
    Ok(())
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<()> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            if !self.finished {
                return Err(Error::new(ErrorKind::StreamInterrupted, "stream ended with [DONE] before any finish reason"));
            }
            return Ok(());
        }
        if ev.event.as_deref() == Some("error") {
            let v: Value = serde_json::from_str(data).unwrap_or_else(|_| serde_json::json!({"error": {"message": data}}));
            let v = if v.get("error").is_some() { v } else { serde_json::json!({ "error": v }) };
            return self.on_chunk(&v, out);
        }
        if let Some(c) = super::openai_chunk::Chunk::parse(data) {
            self.on_usual_chunk(c, out);
            return Ok(());
        }
        self.on_value_data(data, out)
    }

    fn on_end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.finished {
            // A finish reason without `[DONE]` (Ollama, some vLLM versions) is complete.
            self.done = true;
            Ok(())
        } else {
            Err(Error::new(ErrorKind::StreamInterrupted, "stream ended before a finish reason"))
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// At most `max` bytes of `s`, cut on a character boundary (for error messages; stays
/// within the crate's MSRV, unlike `str::floor_char_boundary`).
fn snippet(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
