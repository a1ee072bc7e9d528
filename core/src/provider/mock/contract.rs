//! The contract between the mock's planner (`plan.rs`) and its wire renderers (`render_*.rs`):
//! the [`Answer`] and [`ErrorSpec`] a renderer spells out, the [`Renderer`] trait it
//! implements, and the SSE framing helpers they share.
//!
//! Its own file so the dependency runs one way: `plan.rs` picks a renderer and imports them
//! all; a renderer imports only this file, never the planner or another renderer.

use serde_json::Value;

use crate::types::Usage;

/// The reply a renderer spells out. Built once per attempt, shared by all formats.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub seq: u64,
    pub model: String,
    pub created: u64,
    pub text: String,
    pub text_chunks: Vec<String>,
    pub tool_calls: Vec<AnswerToolCall>,
    /// Unified finish reason (`stop`, `length`, `tool_calls`, ...); `None` for `no_finish`.
    pub finish: Option<String>,
    pub usage: Usage,
    /// OpenAI streams carry usage only when asked.
    pub include_usage: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct AnswerToolCall {
    pub id: Option<String>,
    pub name: String,
    pub arguments: String,
    pub arg_chunks: Vec<String>,
}

impl AnswerToolCall {
    /// The arguments as a JSON object for formats that cannot carry raw text (Anthropic
    /// non-streamed `input`, Gemini `args`): invalid or non-object JSON is wrapped.
    pub fn arguments_object(&self) -> Value {
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(v @ Value::Object(_)) => v,
            _ => serde_json::json!({ "_mock_raw_arguments": self.arguments }),
        }
    }
}

/// What an error reply says, before a renderer fills in its format's defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorSpec {
    pub status: u16,
    /// The step set `status` itself (renderers may not "improve" it, e.g. to 529).
    pub explicit_status: bool,
    pub code: Option<String>,
    pub error_type: Option<String>,
    pub message: Option<String>,
    pub retry_after: Option<String>,
    pub retry_after_ms: Option<u64>,
    pub model: String,
    pub seq: u64,
}

impl ErrorSpec {
    /// The retry hint as seconds, from `retry_after_ms` or a numeric `retry_after`.
    pub fn retry_secs(&self) -> Option<f64> {
        if let Some(ms) = self.retry_after_ms {
            return Some(ms as f64 / 1000.0);
        }
        self.retry_after.as_deref().and_then(|v| v.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0)
    }
}

/// One wire format's vocabulary. Every method is pure: no timing, no faults.
pub(crate) trait Renderer {
    fn request_id_header(&self) -> Option<&'static str>;
    fn stream_content_type(&self) -> &'static str;
    /// Non-streamed success body.
    fn json_reply(&self, a: &Answer) -> Value;
    /// Status and body of an error reply.
    fn error_reply(&self, e: &ErrorSpec) -> (u16, Value);
    /// Events sent together with the headers, before any content.
    fn stream_preamble(&self, a: &Answer) -> Vec<u8>;
    /// One entry per content chunk (each may hold framing events before its delta).
    fn stream_content(&self, a: &Answer) -> Vec<Vec<u8>>;
    /// Finish reason and usage (everything after content except the terminator).
    fn stream_finish(&self, a: &Answer) -> Vec<u8>;
    /// Everything that follows content when the finish reason is withheld (`no_finish`),
    /// up to the clean end of the stream.
    fn stream_unfinished_tail(&self, a: &Answer) -> Vec<u8>;
    /// `[DONE]`, `message_stop`, or nothing (Gemini ends by EOF).
    fn stream_terminator(&self) -> Vec<u8>;
    fn stream_inband_error(&self, e: &ErrorSpec) -> Vec<u8>;
    /// An event whose data is not valid JSON.
    fn stream_malformed(&self, a: &Answer) -> Vec<u8>;
}

/// SSE event with an `event:` line (Anthropic style).
pub(crate) fn sse_named(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// SSE `data:` event with the given line ending (OpenAI `\n`, Gemini `\r\n`).
pub(crate) fn sse_data(out: &mut Vec<u8>, data: &str, eol: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(eol.as_bytes());
}
