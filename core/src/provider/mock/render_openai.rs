//! OpenAI Chat Completions as the real API spells it (see the recorded streams in
//! `tests/fixtures/openai-sse`): a role chunk first, one delta per chunk, a separate
//! finish chunk with an empty delta, the usage chunk with `choices: []` only when
//! `stream_options.include_usage` was asked (and then `"usage": null` on every other
//! chunk), then `data: [DONE]`.
//!
//! Error defaults are chosen so that, absent an explicit code, classification falls back to
//! what the HTTP status means: a neutral `type` is used wherever OpenAI's own would say
//! something more specific than the status.

use serde_json::{json, Value};

use super::contract::{sse_data, Answer, ErrorSpec, Renderer};

pub(crate) struct OpenAiRenderer;

fn chunk_id(a: &Answer) -> String {
    format!("chatcmpl-mock{}", a.seq)
}

fn tool_id(a: &Answer, i: usize, given: &Option<String>) -> String {
    given.clone().unwrap_or_else(|| format!("call_mock{}_{i}", a.seq))
}

/// One `chat.completion.chunk` with a single choice.
fn chunk(a: &Answer, delta: Value, finish: Option<&str>) -> Vec<u8> {
    let mut v = json!({
        "id": chunk_id(a),
        "object": "chat.completion.chunk",
        "created": a.created,
        "model": a.model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    if a.include_usage {
        v["usage"] = Value::Null;
    }
    let mut out = Vec::new();
    sse_data(&mut out, &v.to_string(), "\n");
    out
}

fn usage_chunk(a: &Answer) -> Vec<u8> {
    let v = json!({
        "id": chunk_id(a),
        "object": "chat.completion.chunk",
        "created": a.created,
        "model": a.model,
        "system_fingerprint": "fp_mock",
        "choices": [],
        "usage": a.usage.to_openai(),
    });
    let mut out = Vec::new();
    sse_data(&mut out, &v.to_string(), "\n");
    out
}

/// Defaults per status: (type, code, message).
fn error_defaults(status: u16, code: Option<&str>, model: &str) -> (&'static str, Option<&'static str>, String) {
    if code == Some("insufficient_quota") {
        return ("insufficient_quota", None, "You exceeded your current quota, please check your plan and billing details.".into());
    }
    match status {
        400 | 422 => ("invalid_request_error", None, "Invalid request (mock).".into()),
        401 => ("invalid_request_error", Some("invalid_api_key"), "Incorrect API key provided (mock).".into()),
        403 => ("invalid_request_error", None, "You are not allowed to use this model (mock).".into()),
        404 => ("invalid_request_error", Some("model_not_found"), format!("The model `{model}` does not exist or you do not have access to it.")),
        429 => ("requests", Some("rate_limit_exceeded"), format!("Rate limit reached for {model} (mock).")),
        500 => ("server_error", None, "The server had an error while processing your request. Sorry about that!".into()),
        _ => ("mock_error", None, format!("Mock error (HTTP {status}).")),
    }
}

fn error_object(e: &ErrorSpec, status_for_defaults: u16) -> Value {
    let (dtype, dcode, dmsg) = error_defaults(status_for_defaults, e.code.as_deref(), &e.model);
    json!({
        "error": {
            "message": e.message.clone().unwrap_or(dmsg),
            "type": e.error_type.clone().unwrap_or_else(|| dtype.to_string()),
            "param": null,
            "code": e.code.clone().or(dcode.map(str::to_string)),
        }
    })
}

impl Renderer for OpenAiRenderer {
    fn request_id_header(&self) -> Option<&'static str> {
        Some("x-request-id")
    }

    fn stream_content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    fn json_reply(&self, a: &Answer) -> Value {
        let content = if a.text.is_empty() && !a.tool_calls.is_empty() { Value::Null } else { Value::String(a.text.clone()) };
        let mut message = json!({"role": "assistant", "content": content, "refusal": null, "annotations": []});
        if !a.tool_calls.is_empty() {
            message["tool_calls"] = a
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"id": tool_id(a, i, &t.id), "type": "function", "function": {"name": t.name, "arguments": t.arguments}}))
                .collect();
        }
        json!({
            "id": chunk_id(a),
            "object": "chat.completion",
            "created": a.created,
            "model": a.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": a.finish}],
            "usage": a.usage.to_openai(),
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
        })
    }

    fn error_reply(&self, e: &ErrorSpec) -> (u16, Value) {
        (e.status, error_object(e, e.status))
    }

    fn stream_preamble(&self, a: &Answer) -> Vec<u8> {
        let content = if a.text_chunks.is_empty() && !a.tool_calls.is_empty() { Value::Null } else { json!("") };
        chunk(a, json!({"role": "assistant", "content": content, "refusal": null}), None)
    }

    fn stream_content(&self, a: &Answer) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = a.text_chunks.iter().map(|t| chunk(a, json!({"content": t}), None)).collect();
        for (i, t) in a.tool_calls.iter().enumerate() {
            let head = json!({"tool_calls": [{"index": i, "id": tool_id(a, i, &t.id), "type": "function",
                "function": {"name": t.name, "arguments": ""}}]});
            out.push(chunk(a, head, None));
            for piece in t.arg_chunks.iter().filter(|p| !p.is_empty()) {
                out.push(chunk(a, json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}), None));
            }
        }
        out
    }

    fn stream_finish(&self, a: &Answer) -> Vec<u8> {
        let mut out = chunk(a, json!({}), a.finish.as_deref());
        if a.include_usage {
            out.extend(usage_chunk(a));
        }
        out
    }

    /// What some compatible servers do: usage (if asked) and `[DONE]`, but no finish reason.
    fn stream_unfinished_tail(&self, a: &Answer) -> Vec<u8> {
        let mut out = if a.include_usage { usage_chunk(a) } else { Vec::new() };
        out.extend(self.stream_terminator());
        out
    }

    fn stream_terminator(&self) -> Vec<u8> {
        b"data: [DONE]\n\n".to_vec()
    }

    fn stream_inband_error(&self, e: &ErrorSpec) -> Vec<u8> {
        // Mid-stream errors have no status of their own; OpenAI's are server errors.
        let mut out = Vec::new();
        sse_data(&mut out, &error_object(e, 500).to_string(), "\n");
        out
    }

    fn stream_malformed(&self, a: &Answer) -> Vec<u8> {
        let mut out = Vec::new();
        let s = format!(r#"{{"id":"{}","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"tru"#, chunk_id(a));
        sse_data(&mut out, &s, "\n");
        out
    }
}
