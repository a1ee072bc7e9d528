//! Helpers shared by the adapter test modules (`anthropic_*`, `gemini_*`, `azure_*`,
//! `conformance`): decode a byte stream through a provider's `StreamDecoder` exactly the way
//! `Endpoint::stream` does (stop at the adapter's "done", `on_end` at EOF), chunked at
//! arbitrary offsets, and load VCR cassettes. Each test module uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use polyroute::provider::Provider;
use polyroute::sse::SseDecoder;
use polyroute::{ChatResponse, Error, StreamAccumulator, StreamEvent};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    super::core_dir().join("tests/fixtures")
}

/// What a stream decoded to: the unified events in order, then the error that ended it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub events: Vec<StreamEvent>,
    pub error: Option<Error>,
}

impl Decoded {
    pub fn fold(&self) -> ChatResponse {
        let mut acc = StreamAccumulator::new();
        for ev in &self.events {
            acc.push(ev);
        }
        acc.into_response()
    }
}

/// Decode `bytes` split at `cuts` (offsets, any order) through `p`'s stream decoder.
pub fn decode(p: &dyn Provider, model: &str, bytes: &[u8], cuts: &[usize]) -> Decoded {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(bytes.len());
    let mut sse = SseDecoder::new();
    let mut dec = p.stream_decoder(model);
    let mut events = Vec::new();
    let mut prev = 0;
    let mut sse_events = Vec::new();
    for (n, &c) in cuts.iter().enumerate() {
        if let Err(e) = sse.feed(&bytes[prev..c], &mut sse_events) {
            return Decoded { events, error: Some(e) };
        }
        prev = c;
        if n + 1 == cuts.len() {
            if let Err(e) = sse.finish(&mut sse_events) {
                return Decoded { events, error: Some(e) };
            }
        }
        for ev in sse_events.drain(..) {
            if dec.is_done() {
                break;
            }
            if let Err(e) = dec.on_event(&ev, &mut events) {
                return Decoded { events, error: Some(e) };
            }
        }
        if dec.is_done() {
            return Decoded { events, error: None };
        }
    }
    let error = dec.on_end(&mut events).err();
    Decoded { events, error }
}

/// A cassette's interactions as JSON values.
pub fn cassette(folder: &str, file: &str) -> Vec<Value> {
    let path = fixtures().join(folder).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    v["interactions"].as_array().cloned().unwrap_or_default()
}

/// The unified facts a fixture is checked on, in the oracle's JSON shape.
pub fn facts(r: &ChatResponse, parse_args: bool) -> Value {
    let calls: Vec<Value> = r
        .tool_calls()
        .iter()
        .map(|tc| {
            let args = if parse_args {
                serde_json::from_str::<Value>(&tc.arguments).unwrap_or(Value::String(tc.arguments.clone()))
            } else {
                Value::String(tc.arguments.clone())
            };
            serde_json::json!({"id": tc.id, "name": tc.name, "arguments": args})
        })
        .collect();
    let c = &r.choices[0];
    serde_json::json!({
        "text": r.content(),
        "reasoning": c.message.reasoning_content.clone().unwrap_or_default(),
        "tool_calls": calls,
        "usage": r.usage.map(|u| serde_json::json!({
            "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_write_tokens,
            "reasoning_tokens": u.reasoning_tokens})),
        "finish": c.finish_reason.map(|f| f.as_str()),
        "native_finish": c.native_finish_reason,
    })
}
