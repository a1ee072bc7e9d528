//! Normalised token counts.
//!
//! Usage has ONE meaning across providers, OpenAI's: `input_tokens` counts every prompt
//! token including cache reads and cache writes (Anthropic reports those separately and
//! excludes them from its `input_tokens`; its adapter adds them back), and `output_tokens`
//! includes reasoning tokens (Gemini reports thoughts separately; its adapter adds them).
//! The cache and reasoning fields are breakdowns of those totals, never additions to them.
//! Providers that count reasoning outside their completion count (xAI) are normalised on
//! parse ([`Usage::from_openai`]); the README's "Usage" section lists every convention.
//!
//! Its own file (re-exported from `types`) because the error type carries it (partial
//! output) while `response.rs` depends on the error type: neither imports the other.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

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
