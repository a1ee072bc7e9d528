//! Responses and finish reasons.
//!
//! `ChatResponse` serialises to the OpenAI `chat.completion` object, with Polyroute's own
//! additions (`provider`, `cost_usd`) as extra top-level keys an OpenAI client ignores.
//! `Usage` (and what its numbers mean) is in `usage.rs`.

use std::fmt;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::{Error, Result};
use super::fields::{once, required, Field, Fields};
use super::message::Message;
use super::usage::Usage;

/// Why generation stopped, normalised across providers. The provider's own value is kept
/// next to it (`Choice::native_finish_reason`) for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Output token cap reached: the answer is cut short by request, not by failure.
    Length,
    ToolCalls,
    ContentFilter,
    /// Anything else a provider reports (e.g. `error`, `pause_turn`, `MALFORMED_FUNCTION_CALL`).
    Other,
}

impl FinishReason {
    pub fn from_openai(s: &str) -> FinishReason {
        match s {
            "stop" | "end_turn" | "stop_sequence" | "eos" => FinishReason::Stop,
            "length" | "max_tokens" | "model_length" => FinishReason::Length,
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "content_filter" | "refusal" | "safety" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other => "other",
        }
    }
}

/// One generated alternative. Nearly always exactly one (`n` > 1 is OpenAI-only).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    pub finish_reason: Option<FinishReason>,
    /// The provider's finish reason string, verbatim.
    pub native_finish_reason: Option<String>,
    pub logprobs: Option<Value>,
}

// Both directions go field by field, not through a `Value` of the whole choice: a
// `Value` in between cost a second pass (and a deep copy of the message) per response.
impl Serialize for Choice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // Prefer the provider's own string when it is an OpenAI value, so an OpenAI response
        // round-trips exactly; otherwise the normalised one.
        let fr = match (&self.native_finish_reason, self.finish_reason) {
            (Some(n), Some(f)) if FinishReason::from_openai(n) == f && is_openai_finish(n) => Some(n.as_str()),
            (_, Some(f)) => Some(f.as_str()),
            (Some(n), None) => Some(n.as_str()),
            (None, None) => None,
        };
        // Keys in sorted order, as the `Map` this used to build wrote them.
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("finish_reason", &fr)?;
        m.serialize_entry("index", &self.index)?;
        m.serialize_entry("logprobs", &self.logprobs)?;
        m.serialize_entry("message", &self.message)?;
        m.end()
    }
}

fn is_openai_finish(s: &str) -> bool {
    matches!(s, "stop" | "length" | "tool_calls" | "content_filter" | "function_call")
}

impl<'de> Deserialize<'de> for Choice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Lenient where providers are: an index or finish reason of another type reads as
        // absent; unknown keys are ignored.
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            index: Value,
            message: Option<Message>,
            #[serde(default)]
            finish_reason: Value,
            #[serde(default)]
            logprobs: Value,
        }
        let r = Raw::deserialize(d)?;
        let message = r.message.ok_or_else(|| D::Error::custom("choice needs `message`"))?;
        let native = match r.finish_reason {
            Value::String(s) => Some(s),
            _ => None,
        };
        Ok(Choice {
            index: r.index.as_u64().unwrap_or(0) as u32,
            message,
            finish_reason: native.as_deref().map(FinishReason::from_openai),
            native_finish_reason: native,
            logprobs: (!r.logprobs.is_null()).then_some(r.logprobs),
        })
    }
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: i64,
    /// The model that actually served the request, as the provider reported it.
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Which configured provider served it (Polyroute addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Cost of the whole request in USD, when prices are known (Polyroute addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// How the router chose who served this (Polyroute addition; absent on direct calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Box<super::RouteTrace>>,
    /// Top-level fields we do not model (`system_fingerprint`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// By hand rather than derived with `#[serde(flatten)]` for `extra` (see `fields.rs`): every
/// completion is read into it. Reads what the derive read: `id`, `model` and `choices`
/// required, `object` `chat.completion` and `created` 0 when absent, the rest optional with
/// `null` as absent, a repeated known field an error, unknown keys kept (the last of repeated
/// ones wins).
impl<'de> Deserialize<'de> for ChatResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ResponseVisitor)
    }
}

const RESPONSE_FIELDS: &[&str] = &["id", "object", "created", "model", "choices", "usage", "provider", "cost_usd", "trace"];

struct ResponseVisitor;

impl<'de> Visitor<'de> for ResponseVisitor {
    type Value = ChatResponse;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct ChatResponse")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ChatResponse, A::Error> {
        let (mut id, mut object, mut created, mut model, mut choices) = (None, None, None, None, None);
        let (mut usage, mut provider, mut cost_usd, mut trace) = (None, None, None, None);
        let mut extra = Map::new();
        while let Some(f) = m.next_key_seed(Fields(RESPONSE_FIELDS))? {
            // By index into `RESPONSE_FIELDS`: the key reader already compared the names.
            let i = match f {
                Field::Known(i) => i,
                Field::Other(k) => {
                    extra.insert(k, m.next_value()?);
                    continue;
                }
            };
            let name = RESPONSE_FIELDS[i];
            match i {
                0 => once(&mut m, &mut id, name)?,
                1 => once(&mut m, &mut object, name)?,
                2 => once(&mut m, &mut created, name)?,
                3 => once(&mut m, &mut model, name)?,
                4 => once(&mut m, &mut choices, name)?,
                5 => once::<Option<Usage>, _>(&mut m, &mut usage, name)?,
                6 => once::<Option<String>, _>(&mut m, &mut provider, name)?,
                7 => once::<Option<f64>, _>(&mut m, &mut cost_usd, name)?,
                _ => once::<Option<Box<super::RouteTrace>>, _>(&mut m, &mut trace, name)?,
            }
        }
        Ok(ChatResponse {
            id: required(id, "id")?,
            object: object.unwrap_or_else(chat_completion),
            created: created.unwrap_or(0),
            model: required(model, "model")?,
            choices: required(choices, "choices")?,
            usage: usage.flatten(),
            provider: provider.flatten(),
            cost_usd: cost_usd.flatten(),
            trace: trace.flatten(),
            extra,
        })
    }
}

fn chat_completion() -> String {
    "chat.completion".into()
}

impl ChatResponse {
    /// The first choice's text (what almost every caller wants).
    pub fn content(&self) -> String {
        self.choices.first().map(|c| c.message.text()).unwrap_or_default()
    }
    pub fn tool_calls(&self) -> &[super::ToolCall] {
        self.choices.first().map(|c| c.message.tool_calls.as_slice()).unwrap_or(&[])
    }
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.choices.first().and_then(|c| c.finish_reason)
    }
    pub fn to_openai_json(&self) -> Value {
        serde_json::to_value(self).expect("ChatResponse always serialises")
    }
    pub fn from_openai_json(v: Value) -> Result<ChatResponse> {
        serde_json::from_value(v).map_err(|e| Error::malformed(format!("invalid chat completion: {e}")))
    }
}
