//! Unified request → Anthropic Messages request body.
//!
//! The translation rules, and why:
//! - System and developer messages become the top-level `system` (Anthropic has no system
//!   role in `messages`); all of them are hoisted in order, wherever they appeared.
//! - Anthropic wants user/assistant turns to alternate, so consecutive messages of one role
//!   (including tool results, which are user-side `tool_result` blocks) are merged into one
//!   turn. Inside a merged user turn `tool_result` blocks go first, because Anthropic rejects
//!   a tool result that follows text in the same turn.
//! - Empty text blocks are dropped (Anthropic rejects them), and so are turns left empty.
//! - Assistant `reasoning_content` is replayed as a `thinking` block only with an Anthropic
//!   signature: a thinking block without a valid signature is a 400, and reasoning from
//!   another provider (no signature, or a signature tagged by that provider's adapter) cannot
//!   be verified by Anthropic, so it is left out rather than failing the request.
//! - Tool-call `arguments` are JSON text in the unified form and an object on the wire:
//!   `""` means `{}` (what some models send for a no-argument call); text that is not a JSON
//!   object is the caller's bug and a typed `invalid_request` error.
//! - `max_tokens` is required by Anthropic; when the caller gave none we send
//!   [`DEFAULT_MAX_TOKENS`], small enough that a non-streamed call never trips Anthropic's
//!   "use streaming for long requests" rejection.
//! - OpenAI temperatures go up to 2, Anthropic's to 1: values above 1 are clamped to 1.
//! - `seed` and unknown OpenAI fields have no Anthropic equivalent and are not sent;
//!   `top_k` and `thinking` placed in the request's extra fields are forwarded as is.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::types::{ChatRequest, Content, ContentPart, ImageSource, Message, ResponseFormat, Role, ToolChoice};

/// Output cap sent when the caller did not set one.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Signatures produced by another provider's adapter carry that provider's tag (Gemini's
/// adapter stores `gemini:<signature>`); only untagged ones are Anthropic's.
fn is_anthropic_signature(sig: &str) -> bool {
    !sig.is_empty() && !sig.starts_with("gemini:")
}

/// Anthropic content-block types a caller may pass through verbatim as an "other" part.
const NATIVE_BLOCK_TYPES: &[&str] = &["text", "image", "document", "search_result", "tool_result", "tool_use"];

pub(crate) fn request_body(model: &str, req: &ChatRequest, stream: bool) -> Result<Value> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();

    for (i, m) in req.messages.iter().enumerate() {
        let at = |e: Error| Error::invalid_request(format!("messages[{i}]: {}", e.message));
        match m.role {
            Role::System | Role::Developer => {
                if let Some(c) = &m.content {
                    system.extend(content_blocks(c, false).map_err(at)?);
                }
            }
            Role::User => {
                let blocks = match &m.content {
                    Some(c) => content_blocks(c, true).map_err(at)?,
                    None => Vec::new(),
                };
                push_turn(&mut turns, "user", blocks);
            }
            Role::Tool => {
                let id = m.tool_call_id.clone().unwrap_or_default();
                let content = match &m.content {
                    None => Value::String(String::new()),
                    Some(Content::Text(t)) => Value::String(t.clone()),
                    Some(c) => Value::Array(content_blocks(c, true).map_err(at)?),
                };
                push_turn(&mut turns, "user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})]);
            }
            Role::Assistant => push_turn(&mut turns, "assistant", assistant_blocks(m).map_err(at)?),
        }
    }

    let messages: Vec<Value> = turns
        .into_iter()
        .filter(|(_, blocks)| !blocks.is_empty())
        .map(|(role, mut blocks)| {
            if role == "user" {
                // Stable: tool results first, everything else after, each in original order.
                blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
            json!({"role": role, "content": blocks})
        })
        .collect();
    if messages.is_empty() {
        return Err(Error::invalid_request("anthropic needs at least one user or assistant message with content"));
    }

    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.to_string()));
    body.insert("max_tokens".into(), req.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS).into());
    if !system.is_empty() {
        // One plain text block is sent as a string, the shape most examples (and caches) use.
        let plain = system.len() == 1 && system[0].as_object().is_some_and(|o| o.len() == 2);
        let v = if plain { system[0]["text"].clone() } else { Value::Array(system) };
        body.insert("system".into(), v);
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t.min(1.0)));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    let stops = req.stop_sequences();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), json!(stops));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), Value::String(t.name.clone()));
                if let Some(d) = &t.description {
                    o.insert("description".into(), Value::String(d.clone()));
                }
                let schema = if t.parameters.is_object() { t.parameters.clone() } else { json!({"type": "object", "properties": {}}) };
                o.insert("input_schema".into(), schema);
                Value::Object(o)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let disable_parallel = req.parallel_tool_calls == Some(false);
        let mut choice = match &req.tool_choice {
            None | Some(ToolChoice::Auto) => json!({"type": "auto"}),
            Some(ToolChoice::Required) => json!({"type": "any"}),
            Some(ToolChoice::None) => json!({"type": "none"}),
            Some(ToolChoice::Named(n)) => json!({"type": "tool", "name": n}),
        };
        if disable_parallel && choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
        if req.tool_choice.is_some() || disable_parallel {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some(ResponseFormat::JsonSchema { schema, .. }) = &req.response_format {
        body.insert("output_config".into(), json!({"format": {"type": "json_schema", "schema": schema}}));
    }
    for key in ["top_k", "thinking"] {
        if let Some(v) = req.extra.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(body))
}

fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    match turns.last_mut() {
        Some((r, existing)) if *r == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

fn content_blocks(c: &Content, allow_media: bool) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    match c {
        Content::Text(t) => {
            if !t.is_empty() {
                out.push(json!({"type": "text", "text": t}));
            }
        }
        Content::Parts(parts) => {
            for p in parts {
                match p {
                    ContentPart::Text { text } => {
                        if !text.is_empty() {
                            out.push(json!({"type": "text", "text": text}));
                        }
                    }
                    ContentPart::Image { source, .. } => {
                        if !allow_media {
                            return Err(Error::invalid_request("anthropic system prompts take text only, not images"));
                        }
                        out.push(image_block(source));
                    }
                    ContentPart::Other(v) => {
                        let t = v.get("type").and_then(Value::as_str).unwrap_or("");
                        if !NATIVE_BLOCK_TYPES.contains(&t) || (!allow_media && t != "text") {
                            return Err(Error::invalid_request(format!("content part type `{t}` is not supported by anthropic")));
                        }
                        // An OpenAI text part carrying extra keys (typically `cache_control`)
                        // is already an Anthropic text block.
                        if t == "text" && v.get("text").and_then(Value::as_str).is_some_and(str::is_empty) {
                            continue;
                        }
                        out.push(v.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

fn image_block(source: &ImageSource) -> Value {
    match source {
        ImageSource::Url(u) => json!({"type": "image", "source": {"type": "url", "url": u}}),
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
    }
}

fn assistant_blocks(m: &Message) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    if let (Some(text), Some(sig)) = (&m.reasoning_content, &m.reasoning_signature) {
        if is_anthropic_signature(sig) {
            out.push(json!({"type": "thinking", "thinking": text, "signature": sig}));
        }
    }
    if let Some(c) = &m.content {
        out.extend(content_blocks(c, true)?);
    }
    for tc in &m.tool_calls {
        out.push(json!({"type": "tool_use", "id": tc.id, "name": tc.name, "input": arguments_object(&tc.arguments)?}));
    }
    Ok(out)
}

/// Unified arguments text → the JSON object Anthropic (and Gemini) want.
pub(crate) fn arguments_object(arguments: &str) -> Result<Value> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Error::invalid_request("tool call arguments must be a JSON object")),
        Err(e) => Err(Error::invalid_request(format!("tool call arguments are not valid JSON: {e}"))),
    }
}
