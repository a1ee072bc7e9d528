//! Conversation messages, content parts and tool calls.
//!
//! The serde shape of these types IS the OpenAI chat-completions shape, so a user can hand
//! us the exact dict they give the openai SDK and get it back unchanged (shape-preserving:
//! string content stays a string, an array stays an array, unknown part types and fields
//! survive). Concepts OpenAI lacks (Anthropic thinking blocks, base64 images with a media
//! type) are represented so that every adapter can read them without string parsing.

use std::fmt;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::fields::{once, required, Field, Fields};

/// Who wrote a message. `developer` is OpenAI's newer name for system-level instructions;
/// adapters for other providers treat it as `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// An image, either by URL or inline. Inline images keep their media type so providers that
/// need it (Anthropic, Gemini) get it without sniffing bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    Url(String),
    Base64 { media_type: String, data: String },
}

impl ImageSource {
    /// OpenAI carries inline images as `data:` URLs.
    pub fn from_url(url: &str) -> ImageSource {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((media_type, data)) = rest.split_once(";base64,") {
                return ImageSource::Base64 { media_type: media_type.to_string(), data: data.to_string() };
            }
        }
        ImageSource::Url(url.to_string())
    }
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url(u) => u.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

/// One part of a multi-part message.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
        detail: Option<String>,
    },
    /// A part type we do not model (audio, file, ...), kept verbatim so nothing is lost on
    /// the way to a provider that understands it.
    Other(Value),
}

impl ContentPart {
    pub fn text(t: impl Into<String>) -> Self {
        ContentPart::Text { text: t.into() }
    }
}

impl Serialize for ContentPart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentPart::Text { text } => serde_json::json!({"type": "text", "text": text}).serialize(s),
            ContentPart::Image { source, detail } => {
                let mut iu = Map::new();
                iu.insert("url".into(), Value::String(source.to_url()));
                if let Some(d) = detail {
                    iu.insert("detail".into(), Value::String(d.clone()));
                }
                serde_json::json!({"type": "image_url", "image_url": iu}).serialize(s)
            }
            ContentPart::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let obj = v.as_object().ok_or_else(|| D::Error::custom("content part must be an object"))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = obj.get("text").and_then(Value::as_str).ok_or_else(|| D::Error::custom("text part needs a string `text`"))?;
                // Extra keys (e.g. Anthropic-style cache_control) must survive the trip.
                if obj.len() == 2 {
                    Ok(ContentPart::Text { text: text.to_string() })
                } else {
                    Ok(ContentPart::Other(v))
                }
            }
            Some("image_url") => {
                let iu = obj.get("image_url").ok_or_else(|| D::Error::custom("image_url part needs `image_url`"))?;
                let (url, detail) = match iu {
                    Value::String(u) => (u.as_str(), None),
                    Value::Object(o) => (
                        o.get("url").and_then(Value::as_str).ok_or_else(|| D::Error::custom("image_url needs a string `url`"))?,
                        o.get("detail").and_then(Value::as_str).map(str::to_string),
                    ),
                    _ => return Err(D::Error::custom("image_url must be an object or string")),
                };
                let known_keys = iu.as_object().is_none_or(|o| o.keys().all(|k| k == "url" || k == "detail"));
                if obj.len() == 2 && known_keys && iu.is_object() {
                    Ok(ContentPart::Image { source: ImageSource::from_url(url), detail })
                } else {
                    Ok(ContentPart::Other(v))
                }
            }
            Some(_) => Ok(ContentPart::Other(v)),
            None => Err(D::Error::custom("content part needs a string `type`")),
        }
    }
}

/// Message content: OpenAI allows a plain string or an array of parts. Both shapes are kept
/// as given so that a round trip is byte-for-byte faithful.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

// Hand-written rather than `untagged`: serde's untagged error ("data did not match any
// variant") hides which part is wrong and why, and callers need that to fix their request.
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Content::Text(s)),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, p)| serde_json::from_value(p).map_err(|e| D::Error::custom(format!("content part {i}: {e}"))))
                .collect::<Result<Vec<_>, _>>()
                .map(Content::Parts),
            other => Err(D::Error::custom(format!("`content` must be a string or an array of content parts, got {}", json_type(&other)))),
        }
    }
}

/// The JSON type of a value, for error messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Content {
    /// All text parts concatenated; images and unknown parts are skipped.
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(ps) => ps
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }
    pub fn parts(&self) -> Vec<ContentPart> {
        match self {
            Content::Text(t) => vec![ContentPart::text(t.clone())],
            Content::Parts(ps) => ps.clone(),
        }
    }
    pub fn has_image(&self) -> bool {
        matches!(self, Content::Parts(ps) if ps.iter().any(|p| matches!(p, ContentPart::Image { .. })))
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_string())
    }
}
impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

/// A function call the model asked for. `arguments` is the raw JSON text exactly as the
/// model produced it (possibly `""` or invalid JSON): normalising it here would hide model
/// bugs from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl Serialize for ToolCall {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        })
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ToolCall {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let f = v.get("function").ok_or_else(|| D::Error::custom("tool call needs `function`"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| D::Error::custom("tool call needs `function.name`"))?;
        let arguments = match f.get("arguments") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            // Some OpenAI-compatible servers send arguments as an object; keep it as JSON text.
            Some(other) => other.to_string(),
        };
        Ok(ToolCall { id: v.get("id").and_then(Value::as_str).unwrap_or_default().to_string(), name: name.to_string(), arguments })
    }
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: Role,
    /// `None` is OpenAI's `content: null`, used by assistant turns that only call tools.
    pub content: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Mistral sends `"tool_calls": null` on every plain answer; null means none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On `tool` messages: which call this is the result of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// OpenAI's refusal text on assistant messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Model reasoning (Anthropic thinking, DeepSeek `reasoning_content`, Gemini thoughts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Provider signature that must accompany reasoning when it is sent back (Anthropic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_signature: Option<String>,
    /// Fields we do not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// By hand rather than derived with `#[serde(flatten)]` for `extra` (see `fields.rs`): a
/// message is read from every completion and every request. Reads what the derive read: every
/// field but `role` optional, `null` as absent (for `tool_calls` too), a repeated known field
/// an error, unknown keys kept (the last of repeated ones wins).
impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

const MESSAGE_FIELDS: &[&str] = &["role", "content", "name", "tool_calls", "tool_call_id", "refusal", "reasoning_content", "reasoning_signature"];

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct Message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Message, A::Error> {
        let (mut role, mut content, mut tool_calls) = (None, None, None::<Option<Vec<ToolCall>>>);
        let mut strings: [Option<Option<String>>; 5] = Default::default();
        let mut extra = Map::new();
        while let Some(f) = m.next_key_seed(Fields(MESSAGE_FIELDS))? {
            match f {
                Field::Known(0) => once(&mut m, &mut role, "role")?,
                Field::Known(1) => once::<Option<Content>, _>(&mut m, &mut content, "content")?,
                Field::Known(3) => once(&mut m, &mut tool_calls, "tool_calls")?,
                Field::Known(i) => once(&mut m, &mut strings[string_slot(i)], MESSAGE_FIELDS[i])?,
                Field::Other(k) => {
                    extra.insert(k, m.next_value()?);
                }
            }
        }
        let [name, tool_call_id, refusal, reasoning_content, reasoning_signature] = strings.map(Option::flatten);
        Ok(Message {
            role: required(role, "role")?,
            content: content.flatten(),
            name,
            tool_calls: tool_calls.flatten().unwrap_or_default(),
            tool_call_id,
            refusal,
            reasoning_content,
            reasoning_signature,
            extra,
        })
    }
}

/// Where a string field of [`MESSAGE_FIELDS`] goes in the visitor's array (`name` is 2, the
/// four after `tool_calls` are 4 to 7).
fn string_slot(field: usize) -> usize {
    if field == 2 {
        0
    } else {
        field - 3
    }
}

impl Message {
    fn with(role: Role, content: Option<Content>) -> Self {
        Message {
            role,
            content,
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            refusal: None,
            reasoning_content: None,
            reasoning_signature: None,
            extra: Map::new(),
        }
    }
    pub fn system(text: impl Into<String>) -> Self {
        Self::with(Role::System, Some(Content::Text(text.into())))
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self::with(Role::User, Some(Content::Text(text.into())))
    }
    pub fn user_parts(parts: Vec<ContentPart>) -> Self {
        Self::with(Role::User, Some(Content::Parts(parts)))
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::with(Role::Assistant, Some(Content::Text(text.into())))
    }
    pub fn assistant_tool_calls(calls: Vec<ToolCall>) -> Self {
        let mut m = Self::with(Role::Assistant, None);
        m.tool_calls = calls;
        m
    }
    pub fn tool_result(call_id: impl Into<String>, text: impl Into<String>) -> Self {
        let mut m = Self::with(Role::Tool, Some(Content::Text(text.into())));
        m.tool_call_id = Some(call_id.into());
        m
    }
    /// The text of the message (empty when it has none).
    pub fn text(&self) -> String {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }
}
