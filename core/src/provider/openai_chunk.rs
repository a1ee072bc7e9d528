//! The usual OpenAI stream chunk (a text delta, the role, a finish reason, usage) read
//! straight from the parser into events.
//!
//! Building a `Value` per chunk (a map per object, a string per key) was most of what the
//! router added per streamed chunk. Every key the `Value` path reads is a field here: the
//! ones this path does not handle (`error`, Groq's `x_groq`, reasoning, tool calls) send the
//! chunk to the `Value` path whenever they are anything but absent or null, as does any
//! value of another type than expected, a repeated key or a non-object. Keys neither path
//! reads (Azure's filter results, OpenRouter's `provider`...) are skipped by both. A test
//! feeds every recorded stream through both paths and compares what comes out.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::types::Usage;

#[derive(Deserialize)]
pub(super) struct Chunk<'a> {
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default)]
    x_groq: Option<IgnoredAny>,
}

#[derive(Deserialize)]
pub(super) struct Choice<'a> {
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(default)]
    reasoning_content: Option<IgnoredAny>,
    #[serde(default)]
    reasoning: Option<IgnoredAny>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
}

impl<'a> Chunk<'a> {
    /// The chunk, if it has the usual shape (see the module docs); `None`: use the `Value`
    /// path.
    pub fn parse(data: &'a str) -> Option<Chunk<'a>> {
        let c: Chunk = serde_json::from_str(data).ok()?;
        let unusual_delta = |d: &Delta| d.reasoning_content.is_some() || d.reasoning.is_some() || d.tool_calls.is_some();
        let unusual = c.error.is_some() || c.x_groq.is_some() || c.choices.iter().flatten().any(|ch| ch.delta.as_ref().is_some_and(unusual_delta));
        (!unusual).then_some(c)
    }
}
