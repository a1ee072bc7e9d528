//! An OpenAI-shaped request body written straight from the request.
//!
//! [`request_body`] builds a `serde_json::Value` of the request, edits it and
//! is then serialised: 5.4 k of a routed call's ~60 k instructions under callgrind (issue 18),
//! most of it the tree. When the request carries no fields we do not model (nearly always),
//! [`body_bytes`] writes the same object directly; otherwise, where an unmodelled field may
//! shadow or be edited like a modelled one, it takes the `Value` path. Keys come in field
//! order rather than sorted; the objects are equal (tested below against `request_body`).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::types::{ChatRequest, Message};

/// The body's bytes: `model` as the deployment's (`None`: no `model` key, as Azure wants),
/// `stream` for a streaming call, `compat` for a generic OpenAI-compatible server.
pub(crate) fn body_bytes(model: Option<&str>, req: &ChatRequest, stream: bool, compat: bool) -> Vec<u8> {
    if req.extra.is_empty() && req.messages.iter().all(|m| m.extra.is_empty()) {
        // Written by `json_out` (serde_json's text, strings a word at a time): serde_json's
        // own writer was the largest single item of a routed call's profile in a Swift host.
        return crate::json_out::to_vec(&Direct { model, req, stream, compat }, 256).expect("a request serialises");
    }
    let mut body = request_body(model.unwrap_or_default(), req, stream, compat);
    if model.is_none() {
        if let Some(o) = body.as_object_mut() {
            o.remove("model");
        }
    }
    crate::json_out::to_vec(&body, 512).expect("a request serialises")
}

/// The JSON body for an OpenAI-shaped endpoint.
fn request_body(model: &str, req: &ChatRequest, stream: bool, compat: bool) -> Value {
    let mut body = req.to_openai_json();
    let obj = body.as_object_mut().expect("request serialises to an object");
    obj.remove("polyroute");
    obj.insert("model".into(), Value::String(model.to_string()));
    if compat {
        // Many compatible servers predate `max_completion_tokens`; all know `max_tokens`.
        if let Some(v) = obj.remove("max_completion_tokens") {
            obj.insert("max_tokens".into(), v);
        }
    } else if let Some(v) = obj.remove("max_tokens") {
        // OpenAI deprecated `max_tokens` and reasoning models reject it.
        obj.entry("max_completion_tokens").or_insert(v);
    }
    if let Some(Value::Array(msgs)) = obj.get_mut("messages") {
        for m in msgs.iter_mut().filter_map(Value::as_object_mut) {
            // Reasoning text is ours to keep; OpenAI rejects it and DeepSeek forbids echoing it.
            m.remove("reasoning_content");
            m.remove("reasoning_signature");
        }
    }
    if stream {
        obj.insert("stream".into(), Value::Bool(true));
        let so = obj.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
        if let Some(so) = so.as_object_mut() {
            so.insert("include_usage".into(), Value::Bool(true));
        }
    } else {
        obj.remove("stream");
        obj.remove("stream_options");
    }
    body
}

struct Direct<'a> {
    model: Option<&'a str>,
    req: &'a ChatRequest,
    stream: bool,
    compat: bool,
}

/// What `request_body` leaves of the request, in the same order of precedence: the
/// deployment's model, no `polyroute`, one output cap under the name the server knows
/// (`max_completion_tokens` first), messages without our reasoning fields, and `stream`
/// with usage reporting only when streaming.
impl Serialize for Direct<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.req;
        let mut m = s.serialize_map(None)?;
        if let Some(model) = self.model {
            m.serialize_entry("model", model)?;
        }
        m.serialize_entry("messages", &Messages(&r.messages))?;
        if !r.tools.is_empty() {
            m.serialize_entry("tools", &r.tools)?;
        }
        entry(&mut m, "tool_choice", &r.tool_choice)?;
        entry(&mut m, "parallel_tool_calls", &r.parallel_tool_calls)?;
        entry(&mut m, "response_format", &r.response_format)?;
        entry(&mut m, "temperature", &r.temperature)?;
        entry(&mut m, "top_p", &r.top_p)?;
        let cap = if self.compat { "max_tokens" } else { "max_completion_tokens" };
        entry(&mut m, cap, &r.max_completion_tokens.or(r.max_tokens))?;
        entry(&mut m, "stop", &r.stop)?;
        entry(&mut m, "seed", &r.seed)?;
        if self.stream {
            m.serialize_entry("stream", &true)?;
            m.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        m.end()
    }
}

fn entry<M: SerializeMap, T: Serialize>(m: &mut M, key: &str, v: &Option<T>) -> Result<(), M::Error> {
    match v {
        Some(v) => m.serialize_entry(key, v),
        None => Ok(()),
    }
}

struct Messages<'a>(&'a [Message]);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Turn))
    }
}

/// A message as its derived `Serialize` writes it, without `reasoning_content` and
/// `reasoning_signature` (ours to keep: OpenAI rejects them, DeepSeek forbids echoing them).
struct Turn<'a>(&'a Message);

impl Serialize for Turn<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("role", &t.role)?;
        m.serialize_entry("content", &t.content)?;
        entry(&mut m, "name", &t.name)?;
        if !t.tool_calls.is_empty() {
            m.serialize_entry("tool_calls", &t.tool_calls)?;
        }
        entry(&mut m, "tool_call_id", &t.tool_call_id)?;
        entry(&mut m, "refusal", &t.refusal)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, ToolCall};

    fn requests() -> Vec<ChatRequest> {
        // Text that needs escapes, and multi-byte characters, at word boundaries and inside words.
        let tricky = "a \"quote\", a \\ backslash,\nnew line\ttab \u{1} control, é, 😀, \u{7f}";
        let mut plain = ChatRequest::new(vec![Message::system("be brief"), Message::user("hi"), Message::user(tricky)]);
        plain.model = Some("caller-model".into());
        let mut full = plain.clone();
        full.temperature = Some(0.3);
        full.top_p = Some(f64::NAN);
        full.max_tokens = Some(50);
        full.max_completion_tokens = Some(70);
        full.seed = Some(-4);
        full.stream = Some(false);
        full.parallel_tool_calls = Some(true);
        full.routing.tenant = Some("acme".into());
        let mut said = Message::assistant_tool_calls(vec![ToolCall { id: "c1".into(), name: "f".into(), arguments: "{}".into() }]);
        said.reasoning_content = Some("thought".into());
        said.reasoning_signature = Some("sig".into());
        said.refusal = Some("no".into());
        full.messages.push(said);
        let mut only_max_tokens = plain.clone();
        only_max_tokens.max_tokens = Some(9);
        // Unmodelled fields, top level and in a message: the `Value` path.
        let mut extra = full.clone();
        extra.extra.insert("stream_options".into(), json!({"x": 1}));
        extra.extra.insert("max_tokens".into(), json!(3));
        extra.messages[0].extra.insert("reasoning_content".into(), json!("theirs"));
        vec![plain, full, only_max_tokens, extra]
    }

    #[test]
    fn the_direct_body_is_the_object_request_body_builds() {
        for (i, req) in requests().iter().enumerate() {
            for (stream, compat) in [(false, false), (true, false), (false, true), (true, true)] {
                let want = request_body("dep-model", req, stream, compat);
                let bytes = body_bytes(Some("dep-model"), req, stream, compat);
                let got: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(got, want, "request {i}, stream {stream}, compat {compat}");
                // Byte for byte what serde_json writes (`json_out` writes it).
                let theirs = if req.extra.is_empty() && req.messages.iter().all(|m| m.extra.is_empty()) {
                    serde_json::to_vec(&Direct { model: Some("dep-model"), req, stream, compat }).unwrap()
                } else {
                    serde_json::to_vec(&want).unwrap()
                };
                assert_eq!(String::from_utf8(bytes).unwrap(), String::from_utf8(theirs).unwrap(), "request {i} as text");
                let mut no_model = want.clone();
                no_model.as_object_mut().unwrap().remove("model");
                let got: Value = serde_json::from_slice(&body_bytes(None, req, stream, compat)).unwrap();
                assert_eq!(got, no_model, "request {i} without a model, stream {stream}, compat {compat}");
            }
        }
    }
}
