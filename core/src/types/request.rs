//! The request contract: what a caller asks for, in the OpenAI chat-completions shape plus
//! routing metadata.
//!
//! `ChatRequest` deserialises from exactly the body the openai SDK sends and serialises back
//! to it (unknown top-level fields ride along in `extra`). The router reads `metadata`; the
//! provider adapters read everything else and translate it to their wire format.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::error::{Error, Result};
use super::message::{json_type, Content, Message, Role};

/// A function the model may call. `parameters` is a JSON Schema object.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Value,
    pub strict: Option<bool>,
}

impl Serialize for Tool {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut f = Map::new();
        f.insert("name".into(), Value::String(self.name.clone()));
        if let Some(d) = &self.description {
            f.insert("description".into(), Value::String(d.clone()));
        }
        if !self.parameters.is_null() {
            f.insert("parameters".into(), self.parameters.clone());
        }
        if let Some(st) = self.strict {
            f.insert("strict".into(), Value::Bool(st));
        }
        serde_json::json!({"type": "function", "function": f}).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if let Some(t) = v.get("type").and_then(Value::as_str) {
            if t != "function" {
                return Err(D::Error::custom(format!("unsupported tool type `{t}` (only `function` tools are routable)")));
            }
        }
        let f = v.get("function").ok_or_else(|| D::Error::custom("tool needs `function`"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| D::Error::custom("tool needs `function.name`"))?;
        Ok(Tool {
            name: name.to_string(),
            description: f.get("description").and_then(Value::as_str).map(str::to_string),
            parameters: f.get("parameters").cloned().unwrap_or(Value::Null),
            strict: f.get("strict").and_then(Value::as_bool),
        })
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Named(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Named(n) => serde_json::json!({"type": "function", "function": {"name": n}}).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => match s.as_str() {
                "auto" => Ok(ToolChoice::Auto),
                "none" => Ok(ToolChoice::None),
                "required" | "any" => Ok(ToolChoice::Required),
                other => Err(D::Error::custom(format!("unknown tool_choice `{other}`"))),
            },
            v @ Value::Object(_) => v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .map(|n| ToolChoice::Named(n.to_string()))
                .ok_or_else(|| D::Error::custom("named tool_choice needs `function.name`")),
            _ => Err(D::Error::custom("tool_choice must be a string or an object")),
        }
    }
}

/// Structured-output request.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { name: String, schema: Value, strict: Option<bool>, description: Option<String> },
}

impl Serialize for ResponseFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ResponseFormat::Text => serde_json::json!({"type": "text"}).serialize(s),
            ResponseFormat::JsonObject => serde_json::json!({"type": "json_object"}).serialize(s),
            ResponseFormat::JsonSchema { name, schema, strict, description } => {
                let mut js = Map::new();
                js.insert("name".into(), Value::String(name.clone()));
                if let Some(d) = description {
                    js.insert("description".into(), Value::String(d.clone()));
                }
                js.insert("schema".into(), schema.clone());
                if let Some(st) = strict {
                    js.insert("strict".into(), Value::Bool(*st));
                }
                serde_json::json!({"type": "json_schema", "json_schema": js}).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ResponseFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v.get("type").and_then(Value::as_str) {
            Some("text") => Ok(ResponseFormat::Text),
            Some("json_object") => Ok(ResponseFormat::JsonObject),
            Some("json_schema") => {
                let js = v.get("json_schema").ok_or_else(|| D::Error::custom("json_schema format needs `json_schema`"))?;
                Ok(ResponseFormat::JsonSchema {
                    name: js.get("name").and_then(Value::as_str).unwrap_or("response").to_string(),
                    schema: js.get("schema").cloned().unwrap_or_else(|| serde_json::json!({})),
                    strict: js.get("strict").and_then(Value::as_bool),
                    description: js.get("description").and_then(Value::as_str).map(str::to_string),
                })
            }
            Some(other) => Err(D::Error::custom(format!("unknown response_format type `{other}`"))),
            None => Err(D::Error::custom("response_format needs a `type`")),
        }
    }
}

/// OpenAI accepts one stop string or a list; the shape is kept for a faithful round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

// Hand-written for a clear error instead of serde's "did not match any variant".
impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Stop::One(s)),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!("`stop` entries must be strings, got {}", json_type(&other)))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Stop::Many),
            other => Err(D::Error::custom(format!("`stop` must be a string or an array of strings, got {}", json_type(&other)))),
        }
    }
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// What the router reads to pick a route: the body's `polyroute` object (what the openai SDKs
/// send as `extra_body={"polyroute": {...}}`). Never forwarded to a provider. OpenAI's own
/// `metadata` is a different thing: it rides in [`ChatRequest::extra`] to the providers that
/// take it, and the router does not read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestMetadata {
    /// Ask for a route by name (bypasses match rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// Service tier of the tenant (e.g. `free`, `pro`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Sensitivity class of the data in the request (e.g. `public`, `internal`, `pii`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_class: Option<String>,
    /// Deployments of the route to try first, in this order (trusted callers only: it
    /// overrides the route's strategy). The route's other deployments remain fallbacks;
    /// a name that is not one of the route's deployments is an `invalid_request`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// The caller's total deadline for this request in seconds, all attempts included (the
    /// `timeout=` of the SDKs). The route's `timeouts.total` still applies: the shorter wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Anything else the caller attached (kept for callbacks and traces, never sent).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl RequestMetadata {
    pub fn is_empty(&self) -> bool {
        *self == RequestMetadata::default()
    }
}

/// A chat request in the unified contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// What the caller asked for by name: a route, a deployment, or a provider model id that
    /// deployments of the policy serve (in that order of precedence; see the router's
    /// `select`). An unknown name is a `no_route` error unless a route was asked for
    /// explicitly in [`ChatRequest::routing`]. A direct provider call sends it as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<super::Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Kept apart from `max_completion_tokens` so the caller's shape survives; use
    /// [`ChatRequest::max_output_tokens`] for the effective value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Whether the caller asked for a stream in the OpenAI body. The API used (chat vs
    /// stream) decides what is actually sent; this is kept for the round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Routing metadata, the body's `polyroute` object.
    #[serde(default, rename = "polyroute", skip_serializing_if = "RequestMetadata::is_empty")]
    pub routing: RequestMetadata,
    /// Top-level fields we do not model (`n`, `logprobs`, `user`, `metadata`, ...),
    /// forwarded verbatim to OpenAI-shaped providers.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest { messages, ..Default::default() }
    }

    /// Parse an OpenAI-shaped request body, with a clear error for anything malformed: the
    /// message names the offending field (`messages[2].content: ...`).
    pub fn from_openai_json(v: Value) -> Result<ChatRequest> {
        let r = match ChatRequest::deserialize(&v) {
            Ok(r) => r,
            Err(e) => {
                let detail = locate_error(&v).unwrap_or_else(|| e.to_string());
                return Err(Error::invalid_request(format!("invalid chat request: {detail}")));
            }
        };
        r.validate()?;
        Ok(r)
    }

    pub fn to_openai_json(&self) -> Value {
        serde_json::to_value(self).expect("ChatRequest always serialises")
    }

    /// Checks that need no provider: the things every provider would reject anyway.
    pub fn validate(&self) -> Result<()> {
        if self.messages.is_empty() {
            return Err(Error::invalid_request("`messages` must not be empty"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role == Role::Tool && m.tool_call_id.as_deref().is_none_or(str::is_empty) {
                return Err(Error::invalid_request(format!("messages[{i}]: a tool message needs `tool_call_id`")));
            }
            if m.role != Role::Assistant && m.content.is_none() {
                return Err(Error::invalid_request(format!("messages[{i}]: `content` is required for role {:?}", m.role)));
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(Error::invalid_request(format!("`temperature` must be between 0 and 2, got {t}")));
            }
        }
        if let Some(p) = self.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid_request(format!("`top_p` must be between 0 and 1, got {p}")));
            }
        }
        if self.max_output_tokens() == Some(0) {
            return Err(Error::invalid_request("`max_tokens` must be at least 1"));
        }
        if let Some(t) = self.routing.timeout {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::invalid_request(format!("`timeout` must be a positive number of seconds, got {t}")));
            }
        }
        if let Some(ToolChoice::Named(n)) = &self.tool_choice {
            if !self.tools.iter().any(|t| &t.name == n) {
                return Err(Error::invalid_request(format!("`tool_choice` names `{n}`, which is not in `tools`")));
            }
        }
        Ok(())
    }

    /// The effective output cap, whichever field the caller used.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn stop_sequences(&self) -> Vec<String> {
        self.stop.as_ref().map(Stop::to_vec).unwrap_or_default()
    }

    pub fn uses_tools(&self) -> bool {
        !self.tools.is_empty() && self.tool_choice != Some(ToolChoice::None)
            || self.messages.iter().any(|m| !m.tool_calls.is_empty() || m.role == Role::Tool)
    }

    pub fn uses_vision(&self) -> bool {
        self.messages.iter().any(|m| m.content.as_ref().is_some_and(Content::has_image))
    }

    pub fn uses_json_schema(&self) -> bool {
        matches!(self.response_format, Some(ResponseFormat::JsonSchema { .. }))
    }

    /// Rough token estimate for context-window checks and budget reservations: about four
    /// characters a token plus per-message overhead, rounded up. Deliberately pessimistic.
    pub fn estimate_input_tokens(&self) -> u64 {
        let mut chars = 0usize;
        let mut images = 0u64;
        for m in &self.messages {
            chars += 16;
            if let Some(c) = &m.content {
                match c {
                    Content::Text(t) => chars += t.len(),
                    Content::Parts(ps) => {
                        for p in ps {
                            match p {
                                super::ContentPart::Text { text } => chars += text.len(),
                                super::ContentPart::Image { .. } => images += 1,
                                super::ContentPart::Other(v) => chars += v.to_string().len(),
                            }
                        }
                    }
                }
            }
            for tc in &m.tool_calls {
                chars += tc.name.len() + tc.arguments.len() + 16;
            }
        }
        for t in &self.tools {
            chars += t.name.len() + t.description.as_deref().map_or(0, str::len) + t.parameters.to_string().len();
        }
        (chars as u64).div_ceil(4) + images * 1_000
    }
}

/// serde loses the field path inside `#[serde(flatten)]` structs (both `ChatRequest` and
/// `Message` have one), so its bare message ("expected u32") does not say where. Only on the
/// error path, re-check one field at a time against an otherwise valid body to find it.
fn locate_error(v: &Value) -> Option<String> {
    let Some(obj) = v.as_object() else {
        return Some(format!("the body must be a JSON object, got {}", json_type(v)));
    };
    for (k, val) in obj {
        if k == "messages" {
            let Some(items) = val.as_array() else {
                return Some(format!("`messages` must be an array of messages, got {}", json_type(val)));
            };
            for (i, m) in items.iter().enumerate() {
                if let Err(e) = Message::deserialize(m) {
                    return Some(format!("messages[{i}]{}: {e}", locate_message_field(m)));
                }
            }
        } else {
            let mut probe = Map::new();
            probe.insert("messages".into(), Value::Array(Vec::new()));
            probe.insert(k.clone(), val.clone());
            if let Err(e) = ChatRequest::deserialize(&Value::Object(probe)) {
                return Some(format!("`{k}`: {e}"));
            }
        }
    }
    None
}

/// `.field` of a message that fails on its own next to a valid role, or "" when the role
/// itself (or the message's shape) is what is wrong; serde's message already says so then.
fn locate_message_field(m: &Value) -> String {
    let Some(obj) = m.as_object() else { return String::new() };
    let Some(role) = obj.get("role").filter(|r| Role::deserialize(*r).is_ok()) else { return String::new() };
    for (k, val) in obj.iter().filter(|(k, _)| k.as_str() != "role") {
        let mut probe = Map::new();
        probe.insert("role".into(), role.clone());
        probe.insert(k.clone(), val.clone());
        if Message::deserialize(&Value::Object(probe)).is_err() {
            return format!(".{k}");
        }
    }
    String::new()
}
