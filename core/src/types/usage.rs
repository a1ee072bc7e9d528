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

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

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
        let n = |p: &str| v.pointer(p).and_then(Value::as_u64);
        Usage::from_counts(Counts {
            prompt: n("/prompt_tokens"),
            completion: n("/completion_tokens"),
            total: n("/total_tokens"),
            reasoning: n("/completion_tokens_details/reasoning_tokens"),
            cached: n("/prompt_tokens_details/cached_tokens"),
            cache_write: n("/prompt_tokens_details/cache_write_tokens"),
        })
    }

    fn from_counts(c: Counts) -> Usage {
        let (prompt, completion, reasoning) = (c.prompt.unwrap_or(0), c.completion.unwrap_or(0), c.reasoning.unwrap_or(0));
        let sum = prompt.checked_add(completion).and_then(|s| s.checked_add(reasoning));
        let reasoning_outside = reasoning > 0 && (reasoning > completion || (sum.is_some() && c.total == sum));
        Usage {
            input_tokens: prompt,
            output_tokens: if reasoning_outside { completion.saturating_add(reasoning) } else { completion },
            cache_read_tokens: c.cached.unwrap_or(0),
            cache_write_tokens: c.cache_write.unwrap_or(0),
            reasoning_tokens: reasoning,
        }
    }
    /// The OpenAI usage object, as a `Value`: what [`Usage`]'s `Serialize` writes (one
    /// mapping, there).
    pub fn to_openai(&self) -> Value {
        serde_json::to_value(self).expect("a usage object has only string keys and integers")
    }
}

/// The OpenAI usage object, written directly (every answer and every attempt of a trace
/// carries one, and the bindings convert them all, so no `Value` is built on the way): keys
/// sorted, as a `serde_json::Map` writes them, so the text equals what the `Value` path wrote.
impl Serialize for Usage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Details<'a>(&'a [(&'static str, u64)]);
        impl Serialize for Details<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let cached = [("cache_write_tokens", self.cache_write_tokens), ("cached_tokens", self.cache_read_tokens)];
        // `cache_write_tokens` only when there are some; the details only when either is.
        let prompt_details = match (self.cache_read_tokens, self.cache_write_tokens) {
            (0, 0) => None,
            (_, 0) => Some(&cached[1..]),
            _ => Some(&cached[..]),
        };
        let reasoning = [("reasoning_tokens", self.reasoning_tokens)];
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("completion_tokens", &self.output_tokens)?;
        if self.reasoning_tokens > 0 {
            m.serialize_entry("completion_tokens_details", &Details(&reasoning))?;
        }
        m.serialize_entry("prompt_tokens", &self.input_tokens)?;
        if let Some(d) = prompt_details {
            m.serialize_entry("prompt_tokens_details", &Details(d))?;
        }
        m.serialize_entry("total_tokens", &self.total_tokens())?;
        m.end()
    }
}
/// The numbers of an OpenAI usage object, each as `Value::as_u64` would read it.
#[derive(Default)]
struct Counts {
    prompt: Option<u64>,
    completion: Option<u64>,
    total: Option<u64>,
    reasoning: Option<u64>,
    cached: Option<u64>,
    cache_write: Option<u64>,
}

/// Read straight from the parser: going through a `Value` (a map per object, a string per
/// key) was a fifth of a completion's parse time. Reads exactly what [`Usage::from_openai`]
/// reads from a `Value`: a count that is not a non-negative integer is absent, unknown keys
/// and a details field that is not an object are ignored, the last of repeated keys wins.
impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UsageVisitor).map(Usage::from_counts)
    }
}

struct UsageVisitor;

impl<'de> Visitor<'de> for UsageVisitor {
    type Value = Counts;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("usage must be an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Counts, A::Error> {
        let mut c = Counts::default();
        while let Some(k) = m.next_key::<Key>()? {
            match k {
                Key::Prompt => c.prompt = m.next_value::<Count>()?.0,
                Key::Completion => c.completion = m.next_value::<Count>()?.0,
                Key::Total => c.total = m.next_value::<Count>()?.0,
                Key::PromptDetails => {
                    let d = m.next_value::<Details>()?;
                    (c.cached, c.cache_write) = (d.cached, d.cache_write);
                }
                Key::CompletionDetails => c.reasoning = m.next_value::<Details>()?.reasoning,
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(c)
    }
}

/// The keys read, in the usage object and in its two details objects.
enum Key {
    Prompt,
    Completion,
    Total,
    PromptDetails,
    CompletionDetails,
    Cached,
    CacheWrite,
    Reasoning,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "prompt_tokens" => Key::Prompt,
                    "completion_tokens" => Key::Completion,
                    "total_tokens" => Key::Total,
                    "prompt_tokens_details" => Key::PromptDetails,
                    "completion_tokens_details" => Key::CompletionDetails,
                    "cached_tokens" => Key::Cached,
                    "cache_write_tokens" => Key::CacheWrite,
                    "reasoning_tokens" => Key::Reasoning,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A details object's counts; anything but an object reads as none of them.
#[derive(Default)]
struct Details {
    cached: Option<u64>,
    cache_write: Option<u64>,
    reasoning: Option<u64>,
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Details;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a usage details object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Details, A::Error> {
                let mut d = Details::default();
                while let Some(k) = m.next_key::<Key>()? {
                    match k {
                        Key::Cached => d.cached = m.next_value::<Count>()?.0,
                        Key::CacheWrite => d.cache_write = m.next_value::<Count>()?.0,
                        Key::Reasoning => d.reasoning = m.next_value::<Count>()?.0,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Details, A::Error> {
                IgnoredAny.visit_seq(s).map(|_| Details::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Details, D::Error> {
                Details::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Details, E> {
                Ok(Details::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Details, E> {
                Ok(Details::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Details, E> {
                Ok(Details::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Details, E> {
                Ok(Details::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Details, E> {
                Ok(Details::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Details, E> {
                Ok(Details::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Details, E> {
                Ok(Details::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A token count as `Value::as_u64` reads it: a non-negative integer, anything else none.
struct Count(Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
                Count::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Count, A::Error> {
                IgnoredAny.visit_seq(s).map(|_| Count(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Count, A::Error> {
                IgnoredAny.visit_map(m).map(|_| Count(None))
            }
        }
        d.deserialize_any(V)
    }
}
