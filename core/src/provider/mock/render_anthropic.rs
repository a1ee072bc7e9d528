//! Anthropic Messages as the real API spells it (see `tests/fixtures/anthropic-sse`):
//! `message_start`, `content_block_start`, `ping`, `content_block_delta` (`text_delta`,
//! `input_json_delta` for tool use), `content_block_stop`, `message_delta` with
//! `stop_reason` and the final output count, `message_stop`. In-band errors are
//! `event: error`. Overload is HTTP 529.
//!
//! Usage is converted from the unified meaning: Anthropic's `input_tokens` excludes cache
//! reads and writes, which travel as `cache_read_input_tokens` / `cache_creation_input_tokens`.
//! Anthropic reports no reasoning breakdown: thinking tokens are only part of
//! `output_tokens`, so a `reasoning_tokens` override is not visible on this wire.

use serde_json::{json, Value};

use super::contract::{sse_named, Answer, ErrorSpec, Renderer};

pub(crate) struct AnthropicRenderer;

fn native_finish(f: &str) -> String {
    match f {
        "stop" => "end_turn",
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        "content_filter" => "refusal",
        other => other,
    }
    .to_string()
}

fn tool_id(a: &Answer, i: usize, given: &Option<String>) -> String {
    given.clone().unwrap_or_else(|| format!("toolu_mock{}_{i}", a.seq))
}

fn usage(a: &Answer, output_tokens: u64) -> Value {
    let u = &a.usage;
    json!({
        "input_tokens": u.input_tokens.saturating_sub(u.cache_read_tokens + u.cache_write_tokens),
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    })
}

/// Whether the reply opens with a text block (always, unless it is tool calls only).
fn has_text_block(a: &Answer) -> bool {
    !a.text.is_empty() || a.tool_calls.is_empty()
}

fn close_last_block(a: &Answer) -> Vec<u8> {
    let blocks = usize::from(has_text_block(a)) + a.tool_calls.len();
    let mut out = Vec::new();
    if blocks > 0 {
        sse_named(&mut out, "content_block_stop", &json!({"type": "content_block_stop", "index": blocks - 1}));
    }
    out
}

fn default_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn default_message(t: &str) -> &'static str {
    match t {
        "overloaded_error" => "Overloaded",
        "rate_limit_error" => "Number of requests has exceeded your rate limit (mock).",
        "authentication_error" => "invalid x-api-key",
        "api_error" => "Internal server error",
        "not_found_error" => "model not found (mock)",
        _ => "Mock error.",
    }
}

fn error_body(e: &ErrorSpec, status: u16) -> Value {
    let t = e.error_type.clone().or_else(|| e.code.clone()).unwrap_or_else(|| default_type(status).to_string());
    let msg = e.message.clone().unwrap_or_else(|| default_message(&t).to_string());
    json!({"type": "error", "error": {"type": t, "message": msg}, "request_id": format!("req_mock{}", e.seq)})
}

impl Renderer for AnthropicRenderer {
    fn request_id_header(&self) -> Option<&'static str> {
        Some("request-id")
    }

    fn stream_content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    fn json_reply(&self, a: &Answer) -> Value {
        let mut content = Vec::new();
        if has_text_block(a) {
            content.push(json!({"type": "text", "text": a.text}));
        }
        for (i, t) in a.tool_calls.iter().enumerate() {
            content.push(json!({"type": "tool_use", "id": tool_id(a, i, &t.id), "name": t.name, "input": t.arguments_object()}));
        }
        json!({
            "id": format!("msg_mock{}", a.seq),
            "type": "message",
            "role": "assistant",
            "model": a.model,
            "content": content,
            "stop_reason": a.finish.as_deref().map(native_finish),
            "stop_sequence": null,
            "usage": usage(a, a.usage.output_tokens),
        })
    }

    fn error_reply(&self, e: &ErrorSpec) -> (u16, Value) {
        let t = e.error_type.as_deref().or(e.code.as_deref());
        // Anthropic signals overload with 529; honour an explicit status though.
        let status = if !e.explicit_status && t == Some("overloaded_error") { 529 } else { e.status };
        (status, error_body(e, status))
    }

    fn stream_preamble(&self, a: &Answer) -> Vec<u8> {
        let mut out = Vec::new();
        let start = json!({"type": "message_start", "message": {
            "id": format!("msg_mock{}", a.seq), "type": "message", "role": "assistant", "model": a.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            // The real API reports 1 output token at start and the total in message_delta.
            "usage": usage(a, 1),
        }});
        sse_named(&mut out, "message_start", &start);
        if has_text_block(a) {
            let b = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
            sse_named(&mut out, "content_block_start", &b);
        }
        sse_named(&mut out, "ping", &json!({"type": "ping"}));
        out
    }

    fn stream_content(&self, a: &Answer) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        for t in &a.text_chunks {
            let mut c = Vec::new();
            let d = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}});
            sse_named(&mut c, "content_block_delta", &d);
            chunks.push(c);
        }
        let first_tool_block = usize::from(has_text_block(a));
        for (i, t) in a.tool_calls.iter().enumerate() {
            let index = first_tool_block + i;
            for (j, piece) in t.arg_chunks.iter().enumerate() {
                let mut c = Vec::new();
                if j == 0 {
                    // Block framing travels with the block's first delta.
                    if index > 0 {
                        sse_named(&mut c, "content_block_stop", &json!({"type": "content_block_stop", "index": index - 1}));
                    }
                    let b = json!({"type": "content_block_start", "index": index, "content_block":
                        {"type": "tool_use", "id": tool_id(a, i, &t.id), "name": t.name, "input": {}}});
                    sse_named(&mut c, "content_block_start", &b);
                }
                let d = json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}});
                sse_named(&mut c, "content_block_delta", &d);
                chunks.push(c);
            }
        }
        chunks
    }

    fn stream_finish(&self, a: &Answer) -> Vec<u8> {
        let mut out = close_last_block(a);
        let d = json!({"type": "message_delta",
            "delta": {"stop_reason": a.finish.as_deref().map(native_finish), "stop_sequence": null},
            "usage": {"output_tokens": a.usage.output_tokens}});
        sse_named(&mut out, "message_delta", &d);
        out
    }

    /// The last block closes, then the stream ends cleanly with neither `message_delta`
    /// (the stop reason) nor `message_stop`.
    fn stream_unfinished_tail(&self, a: &Answer) -> Vec<u8> {
        close_last_block(a)
    }

    fn stream_terminator(&self) -> Vec<u8> {
        let mut out = Vec::new();
        sse_named(&mut out, "message_stop", &json!({"type": "message_stop"}));
        out
    }

    fn stream_inband_error(&self, e: &ErrorSpec) -> Vec<u8> {
        let mut e = e.clone();
        if e.error_type.is_none() && e.code.is_none() {
            e.error_type = Some("overloaded_error".into());
        }
        let mut body = error_body(&e, 529);
        if let Some(o) = body.as_object_mut() {
            // The streamed error event carries no request id field.
            o.remove("request_id");
        }
        let mut out = Vec::new();
        sse_named(&mut out, "error", &body);
        out
    }

    fn stream_malformed(&self, _a: &Answer) -> Vec<u8> {
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tru\n\n"
            .to_vec()
    }
}
