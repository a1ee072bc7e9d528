//! Anthropic Messages responses and streams → unified responses and events.
//!
//! Usage is normalised to the crate's one meaning (see `types/response.rs`): Anthropic's
//! `input_tokens` EXCLUDES cached tokens, so the unified `input_tokens` is
//! `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`; the cache fields
//! are the breakdown. `output_tokens` already includes thinking; when Anthropic reports
//! `output_tokens_details.thinking_tokens` it becomes `reasoning_tokens`.
//!
//! Only client tools become tool calls. Server-side tool blocks (`server_tool_use`,
//! `web_search_tool_result`, `mcp_tool_use`, ...) were executed by Anthropic and need nothing
//! from the caller, so they are not reported as calls; their text answer is.
//!
//! Streams: `message_delta` usage is cumulative (it may repeat `input_tokens`), so fields
//! present there replace those from `message_start`. `Finish` and the final `Usage` are
//! emitted with the `message_delta` that carries the stop reason (as OpenAI's finish reason
//! completes a stream without `[DONE]`); a stream that ends before any stop reason is
//! `stream_interrupted`. A tool call
//! whose input arrived with no JSON fragments is given `"{}"` when its block stops, so a
//! streamed no-argument call reads exactly like the non-streamed one.
//!
//! `message_start.message` may already carry content blocks and a stop reason (follow-up
//! turns of programmatic tool calling: a whole `tool_use` block in `message_start`,
//! `stop_reason: "tool_use"`, then directly `message_stop`). They are read like the
//! non-streamed message they are; ignoring them would turn a tool call into an empty
//! `stop`. Events out of protocol order (a second `message_start`, content before
//! `message_start`, a block started twice or continued after its stop) are
//! `malformed_response`: splicing two messages into one answer is never a success.

use std::collections::HashMap;

use serde_json::Value;

use super::classify_error_value;
use crate::error::{Error, ErrorKind, Result};
use crate::provider::StreamDecoder;
use crate::sse::SseEvent;
use crate::types::{ChatResponse, FinishReason, StreamAccumulator, StreamEvent, ToolCall, Usage};

pub(crate) fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other, // pause_turn and anything new
    }
}

/// Anthropic usage object → unified usage. Missing fields count as zero.
pub fn usage_from_anthropic(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let cache_read = n("/cache_read_input_tokens");
    let cache_write = n("/cache_creation_input_tokens");
    Usage {
        input_tokens: n("/input_tokens") + cache_read + cache_write,
        output_tokens: n("/output_tokens"),
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: n("/output_tokens_details/thinking_tokens"),
    }
}

/// A non-streamed `message` object → unified response.
pub(crate) fn parse_message(v: &Value, model: &str) -> Result<ChatResponse> {
    let content = v.get("content").and_then(Value::as_array).ok_or_else(|| Error::malformed("anthropic response has no `content` array"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut signature = None;
    let mut tool_calls = Vec::new();
    for b in content {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or_default());
                if let Some(s) = b.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    signature = Some(s.to_string());
                }
            }
            Some("tool_use") => {
                let id = b.get("id").and_then(Value::as_str).ok_or_else(|| Error::malformed("tool_use block without `id`"))?;
                let name = b.get("name").and_then(Value::as_str).ok_or_else(|| Error::malformed("tool_use block without `name`"))?;
                let input = b.get("input").cloned().unwrap_or_else(|| Value::Object(Default::default()));
                tool_calls.push(ToolCall { id: id.to_string(), name: name.to_string(), arguments: input.to_string() });
            }
            Some(_) => {} // server tool blocks, redacted thinking, compaction...: see module docs
            None => return Err(Error::malformed("anthropic content block without `type`")),
        }
    }
    let native = v.get("stop_reason").and_then(Value::as_str).map(str::to_string);
    // Built through the accumulator so the response has exactly the shape a stream of the
    // same answer produces (and picks up new ChatResponse fields' defaults).
    let mut acc = StreamAccumulator::new();
    acc.id = v.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    acc.model = v.get("model").and_then(Value::as_str).unwrap_or(model).to_string();
    acc.text = text;
    acc.reasoning = reasoning;
    acc.reasoning_signature = signature;
    acc.tool_calls = tool_calls;
    acc.usage = v.get("usage").filter(|u| u.is_object()).map(usage_from_anthropic);
    acc.finish = native.map(|n| (finish_reason(&n), Some(n)));
    Ok(acc.into_response())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Text,
    Thinking,
    /// A client tool call: its unified index, and whether any argument text was sent yet.
    Tool {
        index: u32,
        sent_args: bool,
    },
    Ignored,
    /// Stopped (`content_block_stop` seen): further deltas for it are out of order.
    Closed,
}

/// Anthropic SSE events → unified events.
pub(crate) struct AnthropicStreamDecoder {
    model: String,
    blocks: HashMap<u64, Block>,
    next_tool: u32,
    usage: Option<Value>,
    stop_reason: Option<String>,
    started: bool,
    done: bool,
}

impl AnthropicStreamDecoder {
    pub(crate) fn new(model: &str) -> Self {
        AnthropicStreamDecoder {
            model: model.to_string(),
            blocks: HashMap::new(),
            next_tool: 0,
            usage: None,
            stop_reason: None,
            started: false,
            done: false,
        }
    }

    /// Content blocks carried whole by `message_start` (see the module docs).
    fn start_content(&mut self, content: &[Value], out: &mut Vec<StreamEvent>) -> Result<()> {
        for b in content {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let t = b.get("text").and_then(Value::as_str).unwrap_or_default();
                    if !t.is_empty() {
                        out.push(StreamEvent::ContentDelta { text: t.to_string() });
                    }
                }
                Some("thinking") => {
                    let t = b.get("thinking").and_then(Value::as_str).unwrap_or_default().to_string();
                    let signature = b.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
                    if !t.is_empty() || signature.is_some() {
                        out.push(StreamEvent::ReasoningDelta { text: t, signature });
                    }
                }
                Some("tool_use") => {
                    let id = b.get("id").and_then(Value::as_str).ok_or_else(|| Error::malformed("tool_use block without `id`"))?;
                    let name = b.get("name").and_then(Value::as_str).ok_or_else(|| Error::malformed("tool_use block without `name`"))?;
                    let input = b.get("input").cloned().unwrap_or_else(|| Value::Object(Default::default()));
                    let index = self.next_tool;
                    self.next_tool += 1;
                    out.push(StreamEvent::ToolCallDelta { index, id: Some(id.into()), name: Some(name.into()), arguments: input.to_string() });
                }
                Some(_) => {} // server tool blocks and results: see module docs
                None => return Err(Error::malformed("anthropic content block without `type`")),
            }
        }
        Ok(())
    }

    /// The stop reason is the finish: report it with the usage known so far.
    fn finish(&mut self, r: &str, out: &mut Vec<StreamEvent>) {
        if self.stop_reason.is_none() {
            out.push(StreamEvent::Finish { reason: finish_reason(r), native: Some(r.to_string()) });
            if let Some(u) = &self.usage {
                out.push(StreamEvent::Usage { usage: usage_from_anthropic(u) });
            }
        }
        self.stop_reason = Some(r.to_string());
    }

    fn merge_usage(&mut self, u: &Value) {
        let Some(new) = u.as_object() else { return };
        let cur = self.usage.get_or_insert_with(|| Value::Object(Default::default()));
        if let Some(cur) = cur.as_object_mut() {
            for (k, v) in new {
                if !v.is_null() {
                    cur.insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// `message_start`: the stream's identity, and (in some follow-up responses) content
    /// blocks and a stop reason that are already the answer.
    fn message_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.started {
            return Err(Error::malformed("second message_start in one stream (two messages spliced together)"));
        }
        self.started = true;
        let m = v.get("message").ok_or_else(|| Error::malformed("message_start without `message`"))?;
        out.push(StreamEvent::Start {
            id: m.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
            model: m.get("model").and_then(Value::as_str).unwrap_or(&self.model).to_string(),
        });
        if let Some(u) = m.get("usage") {
            self.merge_usage(u);
        }
        match m.get("content") {
            Some(Value::Array(blocks)) => self.start_content(blocks, out)?,
            None | Some(Value::Null) => {}
            Some(_) => return Err(Error::malformed("message_start `content` is not an array")),
        }
        if let Some(r) = m.get("stop_reason").and_then(Value::as_str) {
            self.finish(r, out);
        }
        Ok(())
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        let index = v.get("index").and_then(Value::as_u64).ok_or_else(|| Error::malformed("content_block_start without `index`"))?;
        if self.blocks.contains_key(&index) {
            return Err(Error::malformed(format!("content_block_start for block {index}, which already started")));
        }
        let cb = v.get("content_block").ok_or_else(|| Error::malformed("content_block_start without `content_block`"))?;
        let block = match cb.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = cb.get("text").and_then(Value::as_str).unwrap_or_default();
                if !t.is_empty() {
                    out.push(StreamEvent::ContentDelta { text: t.to_string() });
                }
                Block::Text
            }
            Some("thinking") => {
                let t = cb.get("thinking").and_then(Value::as_str).unwrap_or_default();
                if !t.is_empty() {
                    out.push(StreamEvent::ReasoningDelta { text: t.to_string(), signature: None });
                }
                Block::Thinking
            }
            Some("tool_use") => {
                let i = self.next_tool;
                self.next_tool += 1;
                let id = cb.get("id").and_then(Value::as_str).ok_or_else(|| Error::malformed("tool_use block without `id`"))?;
                let name = cb.get("name").and_then(Value::as_str).ok_or_else(|| Error::malformed("tool_use block without `name`"))?;
                // The start block normally carries `input: {}` and the real input
                // follows as fragments; a non-empty start input is sent whole.
                let initial = cb.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty()));
                let arguments = initial.map(Value::to_string).unwrap_or_default();
                let sent_args = !arguments.is_empty();
                out.push(StreamEvent::ToolCallDelta { index: i, id: Some(id.into()), name: Some(name.into()), arguments });
                Block::Tool { index: i, sent_args }
            }
            _ => Block::Ignored,
        };
        self.blocks.insert(index, block);
        Ok(())
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        let index = v.get("index").and_then(Value::as_u64).ok_or_else(|| Error::malformed("content_block_delta without `index`"))?;
        let d = v.get("delta").ok_or_else(|| Error::malformed("content_block_delta without `delta`"))?;
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        match (self.blocks.get_mut(&index), d.get("type").and_then(Value::as_str)) {
            (Some(Block::Text), Some("text_delta")) => {
                let t = s("text");
                if !t.is_empty() {
                    out.push(StreamEvent::ContentDelta { text: t });
                }
            }
            (Some(Block::Thinking), Some("thinking_delta")) => {
                let t = s("thinking");
                if !t.is_empty() {
                    out.push(StreamEvent::ReasoningDelta { text: t, signature: None });
                }
            }
            (Some(Block::Thinking), Some("signature_delta")) => {
                out.push(StreamEvent::ReasoningDelta { text: String::new(), signature: Some(s("signature")) });
            }
            (Some(Block::Tool { index, sent_args }), Some("input_json_delta")) => {
                let frag = s("partial_json");
                if !frag.is_empty() {
                    *sent_args = true;
                    out.push(StreamEvent::ToolCallDelta { index: *index, id: None, name: None, arguments: frag });
                }
            }
            (None, _) => return Err(Error::malformed(format!("content_block_delta for unknown block {index}"))),
            (Some(Block::Closed), _) => return Err(Error::malformed(format!("content_block_delta for block {index} after its stop"))),
            _ => {} // citations, deltas of ignored blocks
        }
        Ok(())
    }

    fn block_stop(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        let index = v.get("index").and_then(Value::as_u64).ok_or_else(|| Error::malformed("content_block_stop without `index`"))?;
        match self.blocks.insert(index, Block::Closed) {
            Some(Block::Tool { index, sent_args: false }) => {
                out.push(StreamEvent::ToolCallDelta { index, id: None, name: None, arguments: "{}".into() });
            }
            None => return Err(Error::malformed(format!("content_block_stop for unknown block {index}"))),
            Some(Block::Closed) => return Err(Error::malformed(format!("content_block_stop for block {index} twice"))),
            Some(_) => {}
        }
        Ok(())
    }

    fn on_json(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
        match ty {
            "message_start" => self.message_start(v, out)?,
            "content_block_start" | "content_block_delta" | "content_block_stop" | "message_delta" if !self.started => {
                return Err(Error::malformed(format!("{ty} before message_start")));
            }
            "content_block_start" => self.block_start(v, out)?,
            "content_block_delta" => self.block_delta(v, out)?,
            "content_block_stop" => self.block_stop(v, out)?,
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.merge_usage(u);
                }
                // The stop reason is the finish: report it now, with the (cumulative, final)
                // usage, so a stream whose `message_stop` never comes still completes
                // (the router gives a finished stream a short grace for its terminator).
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish(r, out);
                }
            }
            "message_stop" => {
                self.done = true;
                if self.stop_reason.is_none() {
                    // No message_delta carried a stop reason: message_stop is the finish.
                    out.push(StreamEvent::Finish { reason: FinishReason::Stop, native: Some("end_turn".into()) });
                    if let Some(u) = &self.usage {
                        out.push(StreamEvent::Usage { usage: usage_from_anthropic(u) });
                    }
                }
            }
            "error" => {
                let mut e = classify_error_value(None, v);
                e.status = None;
                return Err(e);
            }
            _ => {} // ping and future event types
        }
        Ok(())
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<()> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            // An `error` event whose body is not JSON is still an error, not a parse failure.
            Err(_) if ev.event.as_deref() == Some("error") => {
                return Err(Error::new(ErrorKind::ServerError, format!("in-stream error: {}", snippet(data, 200))));
            }
            Err(e) => return Err(Error::malformed(format!("anthropic stream event is not JSON ({e}): {}", snippet(data, 120)))),
        };
        if !v.is_object() {
            return Err(Error::malformed("anthropic stream event is not a JSON object"));
        }
        if ev.event.as_deref() == Some("error") && v.get("type").and_then(Value::as_str) != Some("error") {
            let wrapped = serde_json::json!({"type": "error", "error": v});
            return self.on_json(&wrapped, out);
        }
        self.on_json(&v, out)
    }

    fn on_end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.stop_reason.is_some() {
            // The stop reason arrived; only the terminator is missing: complete.
            self.done = true;
            return Ok(());
        }
        Err(Error::new(ErrorKind::StreamInterrupted, "anthropic stream ended before its stop reason"))
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// At most `max` bytes of `s`, cut on a character boundary (for error messages).
fn snippet(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
