//! Gemini `generateContent` / `streamGenerateContent?alt=sse` as the real API spells it (see
//! the google cassettes in `tests/fixtures/gemini`): each SSE event is a whole
//! `GenerateContentResponse` (`candidates[].content.parts`, `usageMetadata`, `modelVersion`,
//! `responseId`) separated by CRLF CRLF; function calls arrive whole in one part; the last
//! event carries `finishReason` and the final usage; there is no terminator, the stream
//! ends by EOF. Errors are `google.rpc.Status` with `details` (`QuotaFailure`, `RetryInfo`,
//! `ErrorInfo`).
//!
//! Usage is converted from the unified meaning: `promptTokenCount` includes cached tokens
//! (`cachedContentTokenCount`), `candidatesTokenCount` excludes thoughts
//! (`thoughtsTokenCount`). Gemini has no cache-write count, so that field is not rendered.

use serde_json::{json, Value};

use super::contract::{sse_data, Answer, ErrorSpec, Renderer};

pub(crate) struct GeminiRenderer;

const EOL: &str = "\r\n";

fn native_finish(f: &str) -> String {
    match f {
        "stop" | "tool_calls" => "STOP",
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        other => other,
    }
    .to_string()
}

fn usage_full(a: &Answer) -> Value {
    let u = &a.usage;
    let mut v = json!({
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": u.output_tokens.saturating_sub(u.reasoning_tokens),
        "totalTokenCount": u.input_tokens + u.output_tokens,
    });
    if u.cache_read_tokens > 0 {
        v["cachedContentTokenCount"] = json!(u.cache_read_tokens);
    }
    if u.reasoning_tokens > 0 {
        v["thoughtsTokenCount"] = json!(u.reasoning_tokens);
    }
    v
}

/// What Gemini reports mid-stream: the prompt only.
fn usage_prompt_only(a: &Answer) -> Value {
    json!({"promptTokenCount": a.usage.input_tokens, "totalTokenCount": a.usage.input_tokens})
}

fn function_part(t: &super::contract::AnswerToolCall) -> Value {
    let mut fc = json!({"name": t.name, "args": t.arguments_object()});
    if let Some(id) = &t.id {
        fc["id"] = json!(id);
    }
    json!({"functionCall": fc})
}

fn response(a: &Answer, parts: Vec<Value>, finish: Option<&str>, usage: Value) -> Value {
    let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        cand["finishReason"] = json!(native_finish(f));
    }
    json!({
        "candidates": [cand],
        "usageMetadata": usage,
        "modelVersion": a.model,
        "responseId": format!("mock{}", a.seq),
    })
}

fn event(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    sse_data(&mut out, &v.to_string(), EOL);
    out
}

fn status_name(status: u16) -> &'static str {
    match status {
        400 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

fn default_message(status: &str) -> String {
    match status {
        "RESOURCE_EXHAUSTED" => "You exceeded your current quota, please check your plan and billing details. \
             For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
            .into(),
        "UNAVAILABLE" => "The model is overloaded. Please try again later.".into(),
        "INTERNAL" => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".into(),
        "UNAUTHENTICATED" | "INVALID_ARGUMENT" => "Request had invalid authentication credentials or arguments (mock).".into(),
        other => format!("Mock error ({other})."),
    }
}

/// Codes meaning "the daily / billing quota is gone", rendered as a per-day quota violation.
fn is_daily_quota(code: &str) -> bool {
    matches!(code, "insufficient_quota" | "quota_exceeded" | "billing_hard_limit_reached") || code.contains("PerDay")
}

/// `1500` ms → `"1.5s"`, protobuf-JSON duration style.
fn proto_duration(secs: f64) -> String {
    let s = format!("{secs:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}s")
}

fn status_body(e: &ErrorSpec, code: u16) -> Value {
    // `error_type` (or an upper-case `error_code`) is the google.rpc status name.
    let upper = |s: &String| !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let status = e.error_type.clone().or_else(|| e.code.clone().filter(upper)).unwrap_or_else(|| status_name(code).to_string());
    let mut details = Vec::new();
    let app_code = e.code.clone().filter(|c| !upper(c));
    if status == "RESOURCE_EXHAUSTED" {
        let daily = app_code.as_deref().is_some_and(is_daily_quota);
        let quota_id = match app_code.as_deref() {
            Some(c) if c.contains("Per") => c.to_string(),
            _ if daily => "GenerateRequestsPerDayPerProjectPerModel-FreeTier".into(),
            _ => "GenerateRequestsPerMinutePerProjectPerModel-FreeTier".into(),
        };
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": e.model},
                "quotaValue": if daily { "200" } else { "15" },
            }],
        }));
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
        }));
    } else if let Some(c) = &app_code {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": c,
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }));
    }
    if let Some(secs) = e.retry_secs() {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": proto_duration(secs)}));
    }
    let mut err = json!({"code": code, "message": e.message.clone().unwrap_or_else(|| default_message(&status)), "status": status});
    if !details.is_empty() {
        err["details"] = Value::Array(details);
    }
    json!({ "error": err })
}

impl Renderer for GeminiRenderer {
    fn request_id_header(&self) -> Option<&'static str> {
        None
    }

    fn stream_content_type(&self) -> &'static str {
        "text/event-stream"
    }

    fn json_reply(&self, a: &Answer) -> Value {
        let mut parts = Vec::new();
        if !a.text.is_empty() || a.tool_calls.is_empty() {
            parts.push(json!({"text": a.text}));
        }
        parts.extend(a.tool_calls.iter().map(function_part));
        response(a, parts, a.finish.as_deref(), usage_full(a))
    }

    fn error_reply(&self, e: &ErrorSpec) -> (u16, Value) {
        (e.status, status_body(e, e.status))
    }

    fn stream_preamble(&self, _a: &Answer) -> Vec<u8> {
        Vec::new()
    }

    fn stream_content(&self, a: &Answer) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = a.text_chunks.iter().map(|t| event(&response(a, vec![json!({"text": t})], None, usage_prompt_only(a)))).collect();
        for t in &a.tool_calls {
            out.push(event(&response(a, vec![function_part(t)], None, usage_prompt_only(a))));
        }
        out
    }

    fn stream_finish(&self, a: &Answer) -> Vec<u8> {
        event(&response(a, vec![json!({"text": ""})], a.finish.as_deref(), usage_full(a)))
    }

    /// Content, then EOF: no event ever carries a `finishReason`.
    fn stream_unfinished_tail(&self, _a: &Answer) -> Vec<u8> {
        Vec::new()
    }

    fn stream_terminator(&self) -> Vec<u8> {
        Vec::new()
    }

    fn stream_inband_error(&self, e: &ErrorSpec) -> Vec<u8> {
        let code = e.code.as_deref().and_then(|c| c.parse::<u16>().ok()).unwrap_or(503);
        let mut e = e.clone();
        if e.code.as_deref().is_some_and(|c| c.parse::<u16>().is_ok()) {
            e.code = None;
        }
        event(&status_body(&e, code))
    }

    fn stream_malformed(&self, _a: &Answer) -> Vec<u8> {
        let mut out = Vec::new();
        sse_data(&mut out, r#"{"candidates": [{"content": {"parts": [{"text": "tru"#, EOL);
        out
    }
}
