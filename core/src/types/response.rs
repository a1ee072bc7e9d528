//! Responses, usage and finish reasons.
//!
//! `ChatResponse` serialises to the OpenAI `chat.completion` object, with Polyroute's own
//! additions (`provider`, `cost_usd`) as extra top-level keys an OpenAI client ignores.
//!
//! Usage has ONE meaning across providers, OpenAI's: `input_tokens` counts every prompt
//! token including cache reads and cache writes (Anthropic reports those separately and
//! excludes them from its `input_tokens`; its adapter adds them back), and `output_tokens`
//! includes reasoning tokens (Gemini reports thoughts separately; its adapter adds them).
//! The cache and reasoning fields are breakdowns of those totals, never additions to them.
//! Providers that count reasoning outside their completion count (xAI) are normalised on
//! parse ([`Usage::from_openai`]); the README's "Usage" section lists every convention.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::message::Message;

/// Normalised token counts; see the module docs for what each number includes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens, including `cache_read_tokens` and `cache_write_tokens`.
    pub input_tokens: u64,
    /// All generated tokens, including `reasoning_tokens`.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's prompt cache (billed at the cached rate).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the prompt cache (billed at the cache-write rate).
    pub cache_write_tokens: u64,
    /// Output tokens spent on hidden reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
    /// Prompt tokens billed at the plain input rate.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cache_read_tokens + self.cache_write_tokens)
    }
    /// Field-wise sum, for totals across attempts.
    pub fn add(&self, o: &Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + o.input_tokens,
            output_tokens: self.output_tokens + o.output_tokens,
            cache_read_tokens: self.cache_read_tokens + o.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens + o.cache_write_tokens,
            reasoning_tokens: self.reasoning_tokens + o.reasoning_tokens,
        }
    }
    /// Parse OpenAI's usage object (also what most compatible servers send).
    ///
    /// OpenAI counts reasoning inside `completion_tokens`; xAI (and servers that copy it)
    /// report `completion_tokens` WITHOUT reasoning, e.g. `prompt 12, completion 2,
    /// reasoning 320, total 334`. Taken literally that bills none of the reasoning, so the
    /// convention is read from the numbers: when `total == prompt + completion + reasoning`
    /// or reasoning exceeds completion (impossible if it were included), reasoning is added
    /// to the output, which also makes our total equal the provider's. The OpenAI shape
    /// (`total == prompt + completion`) is left as is, so a round trip through
    /// [`Usage::to_openai`] is the identity.
    pub fn from_openai(v: &Value) -> Usage {
        let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        let (prompt, completion) = (n("/prompt_tokens"), n("/completion_tokens"));
        let reasoning = n("/completion_tokens_details/reasoning_tokens");
        let total = v.get("total_tokens").and_then(Value::as_u64);
        let sum = prompt.checked_add(completion).and_then(|s| s.checked_add(reasoning));
        let reasoning_outside = reasoning > 0 && (reasoning > completion || (sum.is_some() && total == sum));
        Usage {
            input_tokens: prompt,
            output_tokens: if reasoning_outside { completion.saturating_add(reasoning) } else { completion },
            cache_read_tokens: n("/prompt_tokens_details/cached_tokens"),
            cache_write_tokens: n("/prompt_tokens_details/cache_write_tokens"),
            reasoning_tokens: reasoning,
        }
    }
    pub fn to_openai(&self) -> Value {
        let mut v = serde_json::json!({
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens(),
        });
        if self.cache_read_tokens > 0 || self.cache_write_tokens > 0 {
            let mut d = Map::new();
            d.insert("cached_tokens".into(), self.cache_read_tokens.into());
            if self.cache_write_tokens > 0 {
                d.insert("cache_write_tokens".into(), self.cache_write_tokens.into());
            }
            v["prompt_tokens_details"] = Value::Object(d);
        }
        if self.reasoning_tokens > 0 {
            v["completion_tokens_details"] = serde_json::json!({"reasoning_tokens": self.reasoning_tokens});
        }
        v
    }
}

impl Serialize for Usage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_openai().serialize(s)
    }
}
impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if !v.is_object() {
            return Err(D::Error::custom("usage must be an object"));
        }
        Ok(Usage::from_openai(&v))
    }
}

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

impl Serialize for Choice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Map::new();
        m.insert("index".into(), self.index.into());
        m.insert("message".into(), serde_json::to_value(&self.message).map_err(serde::ser::Error::custom)?);
        // Prefer the provider's own string when it is an OpenAI value, so an OpenAI response
        // round-trips exactly; otherwise the normalised one.
        let fr = match (&self.native_finish_reason, self.finish_reason) {
            (Some(n), Some(f)) if FinishReason::from_openai(n) == f && is_openai_finish(n) => Value::String(n.clone()),
            (_, Some(f)) => Value::String(f.as_str().into()),
            (Some(n), None) => Value::String(n.clone()),
            (None, None) => Value::Null,
        };
        m.insert("finish_reason".into(), fr);
        m.insert("logprobs".into(), self.logprobs.clone().unwrap_or(Value::Null));
        Value::Object(m).serialize(s)
    }
}

fn is_openai_finish(s: &str) -> bool {
    matches!(s, "stop" | "length" | "tool_calls" | "content_filter" | "function_call")
}

impl<'de> Deserialize<'de> for Choice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let message = v.get("message").cloned().ok_or_else(|| D::Error::custom("choice needs `message`"))?;
        let message: Message = serde_json::from_value(message).map_err(D::Error::custom)?;
        let native = v.get("finish_reason").and_then(Value::as_str).map(str::to_string);
        Ok(Choice {
            index: v.get("index").and_then(Value::as_u64).unwrap_or(0) as u32,
            message,
            finish_reason: native.as_deref().map(FinishReason::from_openai),
            native_finish_reason: native,
            logprobs: v.get("logprobs").filter(|l| !l.is_null()).cloned(),
        })
    }
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    #[serde(default = "chat_completion")]
    pub object: String,
    #[serde(default)]
    pub created: i64,
    /// The model that actually served the request, as the provider reported it.
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Which configured provider served it (Polyroute addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Cost of the whole request in USD, when prices are known (Polyroute addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// How the router chose who served this (Polyroute addition; absent on direct calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Box<super::RouteTrace>>,
    /// Top-level fields we do not model (`system_fingerprint`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
    pub fn from_openai_json(v: Value) -> crate::Result<ChatResponse> {
        serde_json::from_value(v).map_err(|e| crate::Error::malformed(format!("invalid chat completion: {e}")))
    }
}
