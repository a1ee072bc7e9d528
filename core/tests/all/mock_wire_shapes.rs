//! The mock's wire renderings against recorded real traffic (the project's copies in
//! `tests/fixtures`, see the READMEs there for sources and licences).
//!
//! For every kind of event or body, the JSON key paths the mock emits must be a subset of
//! the paths the real provider was recorded emitting for that kind: the mock may omit
//! fields, never invent them. (The unit tests in `provider/mock/tests.rs` check the values.)
//! Where the mock follows the provider's documentation rather than these older
//! recordings, the extra path is allowed explicitly below, with the reason.

use crate::common::support;

use std::collections::{BTreeMap, BTreeSet};

use polyroute::provider::mock::{render, MockRequest, MockStep, ResponsePlan, WireFormat};
use polyroute::sse::{SseDecoder, SseEvent};
use serde_json::{json, Value};
use support::{cassette, fixtures};

type Shapes = BTreeMap<String, BTreeSet<String>>;

fn paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{prefix}/{k}");
                out.insert(p.clone());
                // Tool arguments are the model's free-form JSON, not the provider's shape.
                if k != "args" && k != "input" {
                    paths(v, &p, out);
                }
            }
        }
        Value::Array(a) => {
            for v in a {
                paths(v, &format!("{prefix}/[]"), out);
            }
        }
        _ => {}
    }
}

fn add(shapes: &mut Shapes, kind: &str, v: &Value) {
    paths(v, "", shapes.entry(kind.to_string()).or_default());
}

fn sse_events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    d.feed(bytes, &mut out).unwrap();
    d.finish(&mut out).unwrap();
    out
}

fn plan_body(p: &ResponsePlan) -> Vec<u8> {
    p.chunks.iter().flat_map(|c| c.data.to_vec()).collect()
}

fn mreq(format: WireFormat, stream: bool) -> MockRequest {
    MockRequest { format, model: "m".into(), stream, include_usage: true, prompt_tokens: 3, last_user_text: "hi".into() }
}

fn steps() -> Vec<MockStep> {
    vec![
        MockStep::text("Hello there friend"),
        MockStep::text("Let me check.").with_tool_call("get_weather", json!({"city": "Paris"})),
        MockStep::text("").with_tool_call("a", json!({})).with_tool_call("b", json!({"x": 1})),
        MockStep::text("cut short").with_finish_reason("length"),
    ]
}

fn assert_subset(mock: &Shapes, real: &Shapes, allowed_extra: &[&str]) {
    for (kind, ps) in mock {
        let r = real.get(kind).unwrap_or_else(|| panic!("no recorded `{kind}` to compare with; recorded kinds: {:?}", real.keys()));
        let extra: Vec<_> = ps.iter().filter(|p| !r.contains(*p) && !allowed_extra.contains(&p.as_str())).collect();
        assert!(extra.is_empty(), "`{kind}`: mock emits paths never recorded: {extra:?}\nrecorded: {r:?}");
    }
}

// ---- OpenAI ------------------------------------------------------------------------------

fn openai_chunk_kind(v: &Value) -> &'static str {
    let c = &v["choices"][0];
    if v["choices"].as_array().is_some_and(|a| a.is_empty()) {
        "usage"
    } else if !c["finish_reason"].is_null() {
        "finish"
    } else if c["delta"].get("role").is_some() {
        "role"
    } else if c["delta"].get("tool_calls").is_some() {
        "tool"
    } else {
        "content"
    }
}

#[test]
fn openai_stream_chunks() {
    let mut real = Shapes::new();
    for f in std::fs::read_dir(fixtures().join("openai-sse")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "sse") {
            for ev in sse_events(&std::fs::read(&f).unwrap()) {
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    add(&mut real, openai_chunk_kind(&v), &v);
                }
            }
        }
    }
    let mut mock = Shapes::new();
    for s in steps() {
        for ev in sse_events(&plan_body(&render(&s, &mreq(WireFormat::OpenAi, true), 1))) {
            if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                add(&mut mock, openai_chunk_kind(&v), &v);
            }
        }
    }
    // OpenAI documents that with include_usage every other chunk carries `"usage": null`;
    // the 2024 recordings predate that.
    assert_subset(&mock, &real, &["/usage"]);
}

#[test]
fn openai_json_reply() {
    let mut real = Shapes::new();
    for f in std::fs::read_dir(fixtures().join("cassettes-openai/openai")).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        for it in cassette("cassettes-openai/openai", &name) {
            let b = &it["response"]["parsed_body"];
            if b["object"] == "chat.completion" && b["model"].as_str().is_some_and(|m| m.starts_with("gpt")) {
                add(&mut real, "completion", b);
            }
        }
    }
    let mut mock = Shapes::new();
    for s in steps() {
        let v: Value = serde_json::from_slice(&plan_body(&render(&s, &mreq(WireFormat::OpenAi, false), 1))).unwrap();
        add(&mut mock, "completion", &v);
    }
    assert_subset(&mock, &real, &[]);
}

// ---- Anthropic ---------------------------------------------------------------------------

fn anthropic_kind(ev: &SseEvent, v: &Value) -> String {
    let t = ev.event.clone().unwrap_or_default();
    match t.as_str() {
        "content_block_start" => format!("{t}:{}", v["content_block"]["type"].as_str().unwrap_or("")),
        "content_block_delta" => format!("{t}:{}", v["delta"]["type"].as_str().unwrap_or("")),
        _ => t,
    }
}

#[test]
fn anthropic_stream_events() {
    let mut real = Shapes::new();
    for f in std::fs::read_dir(fixtures().join("anthropic-sse")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "txt" || e == "sse") {
            for ev in sse_events(&std::fs::read(&f).unwrap()) {
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    add(&mut real, &anthropic_kind(&ev, &v), &v);
                }
            }
        }
    }
    let mut mock = Shapes::new();
    for s in steps() {
        for ev in sse_events(&plan_body(&render(&s, &mreq(WireFormat::Anthropic, true), 1))) {
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            add(&mut mock, &anthropic_kind(&ev, &v), &v);
        }
    }
    assert_subset(&mock, &real, &[]);
}

#[test]
fn anthropic_json_reply() {
    let mut real = Shapes::new();
    for f in std::fs::read_dir(fixtures().join("anthropic")).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".yaml") {
            continue;
        }
        for it in cassette("anthropic", &name) {
            let b = &it["response"]["parsed_body"];
            if b["type"] == "message" {
                // Content blocks are compared per block type, the envelope without them.
                let mut env = b.clone();
                if let Some(blocks) = env.as_object_mut().and_then(|o| o.remove("content")) {
                    for blk in blocks.as_array().into_iter().flatten() {
                        add(&mut real, &format!("block:{}", blk["type"].as_str().unwrap_or("")), blk);
                    }
                }
                add(&mut real, "message", &env);
            }
        }
    }
    let mut mock = Shapes::new();
    for s in steps() {
        let mut v: Value = serde_json::from_slice(&plan_body(&render(&s, &mreq(WireFormat::Anthropic, false), 1))).unwrap();
        for blk in v.as_object_mut().unwrap().remove("content").unwrap().as_array().unwrap() {
            add(&mut mock, &format!("block:{}", blk["type"].as_str().unwrap()), blk);
        }
        add(&mut mock, "message", &v);
    }
    assert_subset(&mock, &real, &[]);
}

// ---- Gemini ------------------------------------------------------------------------------

fn gemini_kind(v: &Value) -> &'static str {
    if v.pointer("/candidates/0/finishReason").is_some() {
        "final"
    } else {
        "partial"
    }
}

#[test]
fn gemini_stream_and_json() {
    let mut real_stream = Shapes::new();
    let mut real_json = Shapes::new();
    for f in std::fs::read_dir(fixtures().join("google")).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".yaml") {
            continue;
        }
        for it in cassette("google", &name) {
            let uri = it["request"]["uri"].as_str().unwrap_or("");
            if !uri.contains("generativelanguage.googleapis.com") || it["response"]["status"]["code"] != 200 {
                continue;
            }
            if let Some(body) = it["response"]["body"]["string"].as_str().filter(|_| uri.contains("alt=sse")) {
                for ev in sse_events(body.as_bytes()) {
                    if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                        add(&mut real_stream, gemini_kind(&v), &v);
                    }
                }
            } else if it["response"]["parsed_body"]["candidates"].is_array() {
                add(&mut real_json, "response", &it["response"]["parsed_body"]);
            }
        }
    }
    let mut mock_stream = Shapes::new();
    let mut mock_json = Shapes::new();
    for s in steps() {
        for ev in sse_events(&plan_body(&render(&s, &mreq(WireFormat::Gemini, true), 1))) {
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            add(&mut mock_stream, gemini_kind(&v), &v);
        }
        let v: Value = serde_json::from_slice(&plan_body(&render(&s, &mreq(WireFormat::Gemini, false), 1))).unwrap();
        add(&mut mock_json, "response", &v);
    }
    assert_subset(&mock_stream, &real_stream, &[]);
    assert_subset(&mock_json, &real_json, &[]);
}
