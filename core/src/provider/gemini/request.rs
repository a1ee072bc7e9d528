//! Unified request → Gemini `generateContent` body.
//!
//! - System/developer messages become `systemInstruction` (Gemini has no system role).
//! - `assistant` is `model`; tool results are `functionResponse` parts in a `user` turn;
//!   consecutive turns of one role are merged, so parallel calls' results travel together
//!   as Gemini expects.
//! - Gemini has no tool-call ids: a `functionResponse` is matched to its call by function
//!   name. We find that name by looking up the tool message's `tool_call_id` among the
//!   earlier assistant tool calls (ids that our response parser generated, or another
//!   provider's), falling back to the message's `name`. An id that matches nothing is the
//!   caller's error, reported as `invalid_request` rather than sent as a guess.
//! - `functionResponse.response` must be an object: a tool result that is a JSON object is
//!   sent as is, anything else as `{"result": <JSON value or text>}`.
//! - Thought signatures: Gemini 3 rejects a replayed function call that lacks the signature
//!   it issued. Our parser keeps it as `reasoning_signature = "gemini:<sig>"` on the message;
//!   here it goes back on the first function call part (or the first part). History from
//!   another provider has no Gemini signature, so its first call carries Google's documented
//!   placeholder [`SKIP_SIGNATURE`], which tells Gemini not to validate it.
//! - Schemas (`parameters`, `responseSchema`) are translated by [`super::schema::sanitize`].

use serde_json::{json, Map, Value};

use super::schema::sanitize;
use crate::error::{Error, Result};
use crate::provider::anthropic::arguments_object;
use crate::types::{ChatRequest, Content, ContentPart, ImageSource, Message, ResponseFormat, Role, ToolChoice};

/// Google's documented placeholder for function calls whose real signature is unknown.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

pub(crate) fn request_body(req: &ChatRequest) -> Result<Value> {
    let mut system_parts: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();

    for (i, m) in req.messages.iter().enumerate() {
        let at = |e: Error| Error::invalid_request(format!("messages[{i}]: {}", e.message));
        match m.role {
            Role::System | Role::Developer => {
                if let Some(c) = &m.content {
                    for p in parts(c).map_err(at)? {
                        if p.get("text").is_none() {
                            return Err(at(Error::invalid_request("gemini system instructions take text only")));
                        }
                        system_parts.push(p);
                    }
                }
            }
            Role::User => push(&mut contents, "user", m.content.as_ref().map(parts).transpose().map_err(at)?.unwrap_or_default()),
            Role::Assistant => push(&mut contents, "model", model_parts(m).map_err(at)?),
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = call_name(&req.messages[..i], id)
                    .or_else(|| m.name.clone())
                    .ok_or_else(|| at(Error::invalid_request(format!("tool result `{id}` matches no earlier tool call"))))?;
                let text = m.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(v) => json!({"result": v}),
                    Err(_) => json!({"result": text}),
                };
                push(&mut contents, "user", vec![json!({"functionResponse": {"name": name, "response": response}})]);
            }
        }
    }

    let contents: Vec<Value> =
        contents.into_iter().filter(|(_, p)| !p.is_empty()).map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
    if contents.is_empty() {
        return Err(Error::invalid_request("gemini needs at least one user or assistant message with content"));
    }

    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system_parts.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system_parts}));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = Map::new();
                d.insert("name".into(), Value::String(t.name.clone()));
                if let Some(desc) = &t.description {
                    d.insert("description".into(), Value::String(desc.clone()));
                }
                if t.parameters.is_object() {
                    d.insert("parameters".into(), sanitize(&t.parameters));
                }
                Value::Object(d)
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let cfg = match &req.tool_choice {
            None => None,
            Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
            Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
            Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
            Some(ToolChoice::Named(n)) => Some(json!({"mode": "ANY", "allowedFunctionNames": [n]})),
        };
        if let Some(cfg) = cfg {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
        }
    }

    let mut gen = Map::new();
    if let Some(t) = req.temperature {
        gen.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        gen.insert("topP".into(), json!(p));
    }
    if let Some(k) = req.extra.get("top_k") {
        gen.insert("topK".into(), k.clone());
    }
    if let Some(n) = req.max_output_tokens() {
        gen.insert("maxOutputTokens".into(), n.into());
    }
    let stops = req.stop_sequences();
    if !stops.is_empty() {
        gen.insert("stopSequences".into(), json!(stops));
    }
    if let Some(s) = req.seed {
        gen.insert("seed".into(), s.into());
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            gen.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            gen.insert("responseMimeType".into(), "application/json".into());
            gen.insert("responseSchema".into(), sanitize(schema));
        }
        _ => {}
    }
    if !gen.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gen));
    }
    Ok(Value::Object(body))
}

fn push(contents: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, parts: Vec<Value>) {
    match contents.last_mut() {
        Some((r, existing)) if *r == role => existing.extend(parts),
        _ => contents.push((role, parts)),
    }
}

/// The function name of the call `id` among earlier assistant messages.
fn call_name(history: &[Message], id: &str) -> Option<String> {
    history.iter().rev().flat_map(|m| m.tool_calls.iter()).find(|tc| tc.id == id).map(|tc| tc.name.clone())
}

fn parts(c: &Content) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    match c {
        Content::Text(t) => {
            if !t.is_empty() {
                out.push(json!({"text": t}));
            }
        }
        Content::Parts(ps) => {
            for p in ps {
                match p {
                    ContentPart::Text { text } => {
                        if !text.is_empty() {
                            out.push(json!({"text": text}));
                        }
                    }
                    ContentPart::Image { source, .. } => out.push(media_part(source, None)),
                    ContentPart::Other(v) => out.push(other_part(v)?),
                }
            }
        }
    }
    Ok(out)
}

fn media_part(source: &ImageSource, mime_hint: Option<&str>) -> Value {
    match source {
        ImageSource::Base64 { media_type, data } => json!({"inlineData": {"mimeType": media_type, "data": data}}),
        ImageSource::Url(u) => {
            let mime = mime_hint.map(str::to_string).unwrap_or_else(|| guess_mime(u).to_string());
            json!({"fileData": {"mimeType": mime, "fileUri": u}})
        }
    }
}

/// Gemini's `fileData` needs a MIME type; URLs rarely say, so the extension decides.
fn guess_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    match path.rsplit('.').next().unwrap_or_default() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => "image/jpeg",
    }
}

/// OpenAI part types with a Gemini equivalent; anything else is refused by name.
fn other_part(v: &Value) -> Result<Value> {
    match v.get("type").and_then(Value::as_str).unwrap_or_default() {
        // A text part with extra keys (e.g. cache_control): Gemini only wants the text.
        "text" => Ok(json!({"text": v.get("text").and_then(Value::as_str).unwrap_or_default()})),
        "input_audio" => {
            let data = v.pointer("/input_audio/data").and_then(Value::as_str).unwrap_or_default();
            let format = v.pointer("/input_audio/format").and_then(Value::as_str).unwrap_or("wav");
            Ok(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}))
        }
        "file" => {
            let fd = v.pointer("/file/file_data").and_then(Value::as_str).unwrap_or_default();
            match ImageSource::from_url(fd) {
                s @ ImageSource::Base64 { .. } => Ok(media_part(&s, None)),
                ImageSource::Url(_) => Err(Error::invalid_request("gemini file parts need inline `file_data` (a data: URL)")),
            }
        }
        "image_url" => {
            let url = v.pointer("/image_url/url").and_then(Value::as_str).unwrap_or_default();
            Ok(media_part(&ImageSource::from_url(url), None))
        }
        t => Err(Error::invalid_request(format!("content part type `{t}` is not supported by gemini"))),
    }
}

fn model_parts(m: &Message) -> Result<Vec<Value>> {
    let mut out = match &m.content {
        Some(c) => parts(c)?,
        None => Vec::new(),
    };
    for tc in &m.tool_calls {
        out.push(json!({"functionCall": {"name": tc.name, "args": arguments_object(&tc.arguments)?}}));
    }
    let own_sig = m.reasoning_signature.as_deref().and_then(|s| s.strip_prefix("gemini:"));
    let first_call = out.iter().position(|p| p.get("functionCall").is_some());
    match (own_sig, first_call) {
        (Some(sig), Some(i)) => out[i]["thoughtSignature"] = Value::String(sig.to_string()),
        (Some(sig), None) if !out.is_empty() => out[0]["thoughtSignature"] = Value::String(sig.to_string()),
        (None, Some(i)) => out[i]["thoughtSignature"] = Value::String(SKIP_SIGNATURE.to_string()),
        _ => {}
    }
    Ok(out)
}
