//! Gemini `GenerateContentResponse` (whole or as SSE chunks) → unified response and events.
//!
//! - Usage is normalised to the crate's one meaning: `input_tokens = promptTokenCount +
//!   toolUsePromptTokenCount` (the prompt count already includes `cachedContentTokenCount`,
//!   which becomes `cache_read_tokens`); `output_tokens = candidatesTokenCount +
//!   thoughtsTokenCount` (Gemini bills thoughts as output but reports them apart), with the
//!   thoughts as `reasoning_tokens`.
//! - Gemini gives function calls no id (newer models sometimes do, and then it is kept). We
//!   generate `call_<16 hex>` from the response id, the call's position and its name: the
//!   same response parsed twice, or streamed instead of fetched, yields the same ids, and
//!   the request builder maps ids back to names.
//! - `finishReason`: STOP is `stop` (or `tool_calls` when the candidate called functions,
//!   since Gemini says STOP there too); MAX_TOKENS is `length`; SAFETY, RECITATION,
//!   BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY, MODEL_ARMOR are `content_filter`;
//!   the rest `other`. A prompt blocked before generation (`promptFeedback.blockReason`, no
//!   candidates) is a `content_filter` ERROR: nothing was generated, the input was refused,
//!   just like an Azure or OpenAI prompt-filter 400.
//! - The first thought signature of a candidate is kept as `reasoning_signature =
//!   "gemini:<sig>"`, tagged so other adapters never mistake it for theirs.
//! - Streamed function-call arguments (`partialArgs` / `willContinue`, closed by an empty
//!   `functionCall: {}`) are assembled by `partial_args.rs`; the call's id and name go out
//!   when it opens, its whole arguments when it closes.
//! - Streams are complete when a candidate carries a `finishReason`; `Finish` and the usage
//!   snapshot of that chunk are emitted then. A later usage-only chunk re-emits `Usage`
//!   (last one wins, as in [`crate::types::StreamAccumulator`]).

use serde_json::Value;

use super::classify_error_value;
use super::partial_args::{any_continues, PartialArgs};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::StreamDecoder;
use crate::sse::SseEvent;
use crate::types::{ChatResponse, FinishReason, StreamAccumulator, StreamEvent, ToolCall, Usage};

pub fn usage_from_gemini(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input_tokens: n("promptTokenCount") + n("toolUsePromptTokenCount"),
        output_tokens: n("candidatesTokenCount") + thoughts,
        cache_read_tokens: n("cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

pub(crate) fn finish_reason(native: &str, called_tools: bool) -> FinishReason {
    match native {
        "STOP" if called_tools => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" | "IMAGE_PROHIBITED_CONTENT" | "MODEL_ARMOR" => {
            FinishReason::ContentFilter
        }
        _ => FinishReason::Other,
    }
}

/// Stable id for the `ordinal`-th function call of a response (FNV-1a, 64 bit).
pub(crate) fn call_id(response_id: &str, ordinal: usize, name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in response_id.bytes().chain([0]).chain(ordinal.to_le_bytes()).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("call_{h:016x}")
}

/// A prompt refused before generation: `promptFeedback.blockReason` with no candidates.
fn prompt_block(v: &Value) -> Option<Error> {
    let no_candidates = v.get("candidates").and_then(Value::as_array).is_none_or(|c| c.is_empty());
    let reason = v.pointer("/promptFeedback/blockReason").and_then(Value::as_str)?;
    if !no_candidates {
        return None;
    }
    let msg = v
        .pointer("/promptFeedback/blockReasonMessage")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("gemini blocked the prompt ({reason})"));
    Some(Error::new(ErrorKind::ContentFilter, msg).with_provider_code(reason))
}

/// What one candidate's parts say.
#[derive(Default)]
struct Parts {
    text: String,
    reasoning: String,
    /// The `functionCall` objects, in order (whole calls, or pieces of a streamed one).
    calls: Vec<Value>,
    signature: Option<String>,
}

fn read_parts(cand: &Value) -> Result<Parts> {
    let mut p = Parts::default();
    let Some(parts) = cand.pointer("/content/parts") else { return Ok(p) };
    let parts = parts.as_array().ok_or_else(|| Error::malformed("gemini `content.parts` is not an array"))?;
    for part in parts {
        if p.signature.is_none() {
            if let Some(s) = part.get("thoughtSignature").and_then(Value::as_str) {
                p.signature = Some(format!("gemini:{s}"));
            }
        }
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                p.reasoning.push_str(t);
            } else {
                p.text.push_str(t);
            }
        } else if let Some(fc) = part.get("functionCall") {
            if !fc.is_object() {
                return Err(Error::malformed("gemini `functionCall` is not an object"));
            }
            p.calls.push(fc.clone());
        }
        // inlineData, executableCode, codeExecutionResult...: not part of the unified answer.
    }
    Ok(p)
}

/// A whole `functionCall` (`{name, args, id?}`) → (id, name, arguments).
fn complete_call(fc: &Value) -> Result<(Option<String>, String, String)> {
    let name = fc.get("name").and_then(Value::as_str).ok_or_else(|| Error::malformed("gemini functionCall without `name`"))?;
    let args = match fc.get("args") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(a) => a.to_string(),
    };
    let id = fc.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    Ok((id, name.to_string(), args))
}

pub(crate) fn parse_generate(v: &Value, model: &str) -> Result<ChatResponse> {
    if let Some(e) = prompt_block(v) {
        return Err(e);
    }
    if !v.is_object() {
        return Err(Error::malformed("gemini response is not a JSON object"));
    }
    let response_id = v.get("responseId").and_then(Value::as_str).unwrap_or_default();
    let cand = v.get("candidates").and_then(Value::as_array).and_then(|c| c.first());
    let parts = match cand {
        Some(c) => read_parts(c)?,
        None => Parts::default(),
    };
    let tool_calls: Vec<ToolCall> = parts
        .calls
        .iter()
        .map(complete_call)
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .enumerate()
        .map(|(i, (id, name, arguments))| ToolCall { id: id.unwrap_or_else(|| call_id(response_id, i, &name)), name, arguments })
        .collect();
    let native = cand.and_then(|c| c.get("finishReason")).and_then(Value::as_str).map(str::to_string);
    let called = !tool_calls.is_empty();
    // Built through the accumulator so the response has exactly the shape a stream of the
    // same answer produces (and picks up new ChatResponse fields' defaults).
    let mut acc = StreamAccumulator::new();
    acc.id = response_id.to_string();
    acc.model = v.get("modelVersion").and_then(Value::as_str).unwrap_or(model).to_string();
    acc.text = parts.text;
    acc.reasoning = parts.reasoning;
    acc.reasoning_signature = parts.signature;
    acc.tool_calls = tool_calls;
    acc.usage = v.get("usageMetadata").filter(|u| u.is_object()).map(usage_from_gemini);
    acc.finish = native.map(|n| (finish_reason(&n, called), Some(n)));
    Ok(acc.into_response())
}

/// Gemini SSE chunks → unified events.
pub(crate) struct GeminiStreamDecoder {
    model: String,
    started: bool,
    calls: usize,
    /// A call whose arguments are still streaming: its unified index and what arrived.
    open_call: Option<(u32, PartialArgs)>,
    signature_sent: bool,
    finished: bool,
    last_usage: Option<Usage>,
}

impl GeminiStreamDecoder {
    pub(crate) fn new(model: &str) -> Self {
        GeminiStreamDecoder {
            model: model.to_string(),
            started: false,
            calls: 0,
            open_call: None,
            signature_sent: false,
            finished: false,
            last_usage: None,
        }
    }

    fn on_chunk(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        if v.get("error").is_some_and(|e| e.is_object()) {
            let mut e = classify_error_value(None, v);
            e.status = None;
            return Err(e);
        }
        if let Some(e) = prompt_block(v) {
            return Err(e);
        }
        let response_id = v.get("responseId").and_then(Value::as_str).unwrap_or_default();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: response_id.to_string(),
                model: v.get("modelVersion").and_then(Value::as_str).unwrap_or(&self.model).to_string(),
            });
        }
        let cand = v.get("candidates").and_then(Value::as_array).and_then(|c| c.first());
        if let Some(c) = cand {
            let parts = read_parts(c)?;
            if !parts.reasoning.is_empty() {
                out.push(StreamEvent::ReasoningDelta { text: parts.reasoning, signature: None });
            }
            if let (Some(sig), false) = (parts.signature, self.signature_sent) {
                self.signature_sent = true;
                out.push(StreamEvent::ReasoningDelta { text: String::new(), signature: Some(sig) });
            }
            if !parts.text.is_empty() {
                out.push(StreamEvent::ContentDelta { text: parts.text });
            }
            for fc in &parts.calls {
                self.on_function_call(fc, response_id, out)?;
            }
        }
        let usage = v.get("usageMetadata").filter(|u| u.is_object()).map(usage_from_gemini);
        if let Some(native) = cand.and_then(|c| c.get("finishReason")).and_then(Value::as_str) {
            if !self.finished {
                // The finish closes a streamed call whose closing `functionCall: {}` is missing.
                self.close_call(out);
                self.finished = true;
                out.push(StreamEvent::Finish { reason: finish_reason(native, self.calls > 0), native: Some(native.to_string()) });
                if let Some(u) = usage.or(self.last_usage) {
                    self.last_usage = Some(u);
                    out.push(StreamEvent::Usage { usage: u });
                }
                return Ok(());
            }
        }
        if let Some(u) = usage {
            if self.finished && self.last_usage != Some(u) {
                out.push(StreamEvent::Usage { usage: u });
            }
            self.last_usage = Some(u);
        }
        Ok(())
    }
}

impl GeminiStreamDecoder {
    /// One `functionCall` part: a whole call, or a piece of a streamed one (module docs).
    fn on_function_call(&mut self, fc: &Value, response_id: &str, out: &mut Vec<StreamEvent>) -> Result<()> {
        let name = fc.get("name").and_then(Value::as_str);
        let partial = match fc.get("partialArgs") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a.as_slice()),
            Some(_) => return Err(Error::malformed("gemini `functionCall.partialArgs` is not an array")),
        };
        let will_continue = fc.get("willContinue").and_then(Value::as_bool) == Some(true);
        let has_args = fc.get("args").is_some_and(|a| !a.is_null());
        if let (Some(name), true) = (name, will_continue || partial.is_some()) {
            // A streamed call opens: id and name now, the arguments when it closes.
            self.close_call(out);
            let index = self.open(fc, name, response_id, out);
            self.open_call = Some((index, PartialArgs::default()));
        } else if name.is_some() {
            self.close_call(out);
            let (id, name, arguments) = complete_call(fc)?;
            let index = self.calls as u32;
            self.calls += 1;
            let id = id.unwrap_or_else(|| call_id(response_id, index as usize, &name));
            out.push(StreamEvent::ToolCallDelta { index, id: Some(id), name: Some(name), arguments });
            return Ok(());
        } else if has_args || (partial.is_some() && self.open_call.is_none()) {
            return Err(Error::malformed("gemini functionCall without `name`"));
        } else if partial.is_none() && !will_continue {
            // `functionCall: {}`: the streamed call is complete.
            self.close_call(out);
            return Ok(());
        }
        if let (Some(partial), Some((_, args))) = (partial, self.open_call.as_mut()) {
            args.apply(partial)?;
            if !will_continue && !any_continues(partial) {
                self.close_call(out);
            }
        }
        Ok(())
    }

    fn open(&mut self, fc: &Value, name: &str, response_id: &str, out: &mut Vec<StreamEvent>) -> u32 {
        let index = self.calls as u32;
        self.calls += 1;
        let id = fc
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| call_id(response_id, index as usize, name));
        out.push(StreamEvent::ToolCallDelta { index, id: Some(id), name: Some(name.to_string()), arguments: String::new() });
        index
    }

    fn close_call(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((index, args)) = self.open_call.take() {
            out.push(StreamEvent::ToolCallDelta { index, id: None, name: None, arguments: args.finish() });
        }
    }
}

impl StreamDecoder for GeminiStreamDecoder {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<()> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| Error::malformed(format!("gemini stream chunk is not JSON ({e}): {}", snippet(data, 120))))?;
        // Some error paths send the error wrapped in a one-element array.
        let v = match v {
            Value::Array(mut a) if a.len() == 1 => a.remove(0),
            other => other,
        };
        if !v.is_object() {
            return Err(Error::malformed("gemini stream chunk is not a JSON object"));
        }
        self.on_chunk(&v, out)
    }

    fn on_end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.finished {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::StreamInterrupted, "gemini stream ended before a finishReason"))
        }
    }

    fn is_done(&self) -> bool {
        // Gemini has no terminator after the finishing chunk; EOF ends the stream.
        false
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
