//! Cross-provider tool-call conformance: one table of cases run through every adapter
//! (OpenAI, OpenAI-compatible, Azure, Anthropic, Gemini), both ways, streamed and not.
//!
//! - Request direction: a unified request → the adapter's `build_request` → the wire body is
//!   read back by an independent decoder written here from each provider's documented
//!   format (`wire_facts`), and must say the same thing: the same calls with the same
//!   arguments, each tool result tied to the right call, the same tool choice.
//! - Response direction: a unified answer → rendered here in the provider's wire format
//!   (`render_json`, `render_sse`, again written from the docs, not from the adapters) → the
//!   adapter parses it back, non-streamed and streamed (with argument fragments where the
//!   provider streams them), to the same answer: text, calls, usage, finish reason.
//! - Provider pairs: an answer with tool calls parsed from provider A, plus the results of
//!   those calls, is sent to provider B; B's wire must tie every result to its call (by id,
//!   or for Gemini by name) with the arguments intact, for every ordered pair.
//!
//! Arguments are compared as JSON values, with `""` read as `{}`: the unified form keeps the
//! model's raw text, and Anthropic/Gemini carry arguments as objects on the wire.

use crate::common::support;

use std::sync::Arc;

use polyroute::provider::{build_provider, Provider, ProviderConfig, ProviderKind};
use polyroute::{ChatRequest, FinishReason, Message, Tool, ToolCall, ToolChoice, Usage};
use serde_json::{json, Value};
use support::decode;

const KINDS: [ProviderKind; 5] =
    [ProviderKind::Openai, ProviderKind::OpenaiCompatible, ProviderKind::Azure, ProviderKind::Anthropic, ProviderKind::Gemini];

fn provider(kind: ProviderKind) -> Arc<dyn Provider> {
    let base = match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => "http://127.0.0.1:9/v1",
        _ => "http://127.0.0.1:9",
    };
    build_provider(ProviderConfig::new(format!("{kind:?}"), kind, base).with_api_key("sk-test-not-a-real-key")).unwrap()
}

fn wire_body(p: &dyn Provider, req: &ChatRequest, stream: bool) -> Value {
    let w = p.build_request("model-x", req, stream).unwrap();
    serde_json::from_slice(&w.body).unwrap()
}

/// JSON value of arguments text, `""` meaning `{}`.
fn args_value(s: &str) -> Value {
    if s.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("arguments {s:?}: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// The case table

struct Case {
    name: &'static str,
    /// (name, arguments text as the model produced it, streamed fragments of it)
    calls: Vec<(&'static str, &'static str, Vec<&'static str>)>,
    text: &'static str,
    choice: Option<ToolChoice>,
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "single call", calls: vec![("get_weather", "{\"city\":\"Paris\"}", vec!["{\"city\":\"Paris\"}"])], text: "", choice: None },
        Case {
            name: "parallel calls with text",
            calls: vec![
                ("get_weather", "{\"city\":\"Paris\"}", vec!["{\"city\":", "\"Paris\"}"]),
                ("get_time", "{\"tz\":\"Europe/Rome\",\"fmt\":24}", vec!["{\"tz\":\"Eu", "rope/Rome\",", "\"fmt\":24}"]),
            ],
            text: "Let me check both.",
            choice: Some(ToolChoice::Auto),
        },
        Case { name: "empty object arguments", calls: vec![("ping", "{}", vec!["{}"])], text: "", choice: Some(ToolChoice::Required) },
        Case { name: "empty string arguments", calls: vec![("ping", "", vec![])], text: "", choice: Some(ToolChoice::Named("ping".into())) },
        Case {
            name: "streamed fragments, nested and unicode",
            calls: vec![(
                "search",
                "{\"q\":\"caf\u{e9} \u{2014} \\\"quoted\\\"\",\"filters\":{\"tags\":[\"a\",\"b\"],\"limit\":3}}",
                vec!["{\"q\":\"caf\u{e9} ", "\u{2014} \\\"quo", "ted\\\"\",\"filters\":{\"ta", "gs\":[\"a\",\"b\"],\"limit\":3}}"],
            )],
            text: "",
            choice: None,
        },
        Case { name: "tool_choice none", calls: vec![], text: "No tools needed.", choice: Some(ToolChoice::None) },
    ]
}

fn tools() -> Vec<Tool> {
    ["get_weather", "get_time", "ping", "search"]
        .iter()
        .map(|n| Tool {
            name: n.to_string(),
            description: Some(format!("{n} tool")),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}),
            strict: None,
        })
        .collect()
}

fn unified_calls(c: &Case, ids: &str) -> Vec<ToolCall> {
    c.calls.iter().enumerate().map(|(i, (n, a, _))| ToolCall { id: format!("{ids}{i}"), name: n.to_string(), arguments: a.to_string() }).collect()
}

/// A conversation that exercises the case: the call turn, then a result per call.
fn request_for(c: &Case, ids: &str) -> ChatRequest {
    let mut msgs = vec![Message::system("You are terse."), Message::user("Do the thing.")];
    if !c.calls.is_empty() {
        let mut a = Message::assistant_tool_calls(unified_calls(c, ids));
        if !c.text.is_empty() {
            a.content = Some(c.text.into());
        }
        msgs.push(a);
        for (i, (n, _, _)) in c.calls.iter().enumerate() {
            msgs.push(Message::tool_result(format!("{ids}{i}"), format!("result of {n}")));
        }
    }
    let mut r = ChatRequest::new(msgs);
    r.tools = tools();
    r.tool_choice = c.choice.clone();
    r
}

// ---------------------------------------------------------------------------------------
// Request direction: independent wire decoders

#[derive(Debug, PartialEq)]
struct WireFacts {
    /// (call id if the wire has one, name, arguments)
    calls: Vec<(Option<String>, String, Value)>,
    /// (the call a result answers: its id, or for Gemini its function name; result text)
    results: Vec<(String, String)>,
    choice: Option<String>,
    tools: Vec<String>,
}

fn choice_str(c: &ToolChoice) -> String {
    match c {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Named(n) => format!("named:{n}"),
    }
}

fn wire_facts(kind: ProviderKind, b: &Value) -> WireFacts {
    let mut f = WireFacts { calls: vec![], results: vec![], choice: None, tools: vec![] };
    match kind {
        ProviderKind::Anthropic => {
            for m in b["messages"].as_array().unwrap() {
                for blk in m["content"].as_array().unwrap() {
                    match blk["type"].as_str().unwrap() {
                        "tool_use" => {
                            let id = blk["id"].as_str().unwrap();
                            // Anthropic's documented id pattern.
                            assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'), "bad tool_use id {id}");
                            assert!(blk["input"].is_object(), "input must be an object");
                            f.calls.push((Some(id.into()), blk["name"].as_str().unwrap().into(), blk["input"].clone()));
                        }
                        "tool_result" => f.results.push((blk["tool_use_id"].as_str().unwrap().into(), blk["content"].as_str().unwrap().into())),
                        _ => {}
                    }
                }
            }
            f.choice = b.get("tool_choice").map(|c| match c["type"].as_str().unwrap() {
                "any" => "required".to_string(),
                "tool" => format!("named:{}", c["name"].as_str().unwrap()),
                t => t.to_string(),
            });
            f.tools = b["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
        }
        ProviderKind::Gemini => {
            for c in b["contents"].as_array().unwrap() {
                for p in c["parts"].as_array().unwrap() {
                    if let Some(fc) = p.get("functionCall") {
                        assert_eq!(c["role"], "model");
                        f.calls.push((None, fc["name"].as_str().unwrap().into(), fc["args"].clone()));
                    }
                    if let Some(fr) = p.get("functionResponse") {
                        assert_eq!(c["role"], "user");
                        let r = &fr["response"];
                        let text = match r.get("result") {
                            Some(Value::String(s)) => s.clone(),
                            Some(v) => v.to_string(),
                            None => r.to_string(),
                        };
                        f.results.push((fr["name"].as_str().unwrap().into(), text));
                    }
                }
            }
            f.choice = b.pointer("/toolConfig/functionCallingConfig").map(|c| {
                match (c["mode"].as_str().unwrap(), c.get("allowedFunctionNames").and_then(Value::as_array)) {
                    ("ANY", Some(n)) if n.len() == 1 => format!("named:{}", n[0].as_str().unwrap()),
                    ("ANY", _) => "required".into(),
                    (m, _) => m.to_ascii_lowercase(),
                }
            });
            f.tools = b["tools"][0]["functionDeclarations"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
            for t in b["tools"][0]["functionDeclarations"].as_array().unwrap() {
                assert!(t["parameters"].get("additionalProperties").is_none(), "gemini schema must be sanitised");
            }
        }
        _ => {
            for m in b["messages"].as_array().unwrap() {
                for tc in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let a = tc["function"]["arguments"].as_str().expect("openai arguments are a string");
                    f.calls.push((Some(tc["id"].as_str().unwrap().into()), tc["function"]["name"].as_str().unwrap().into(), args_value(a)));
                }
                if m["role"] == "tool" {
                    f.results.push((m["tool_call_id"].as_str().unwrap().into(), m["content"].as_str().unwrap().into()));
                }
            }
            f.choice = b.get("tool_choice").map(|c| match c {
                Value::String(s) => s.clone(),
                o => format!("named:{}", o["function"]["name"].as_str().unwrap()),
            });
            f.tools = b["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap().to_string()).collect();
        }
    }
    f
}

fn expected_facts(kind: ProviderKind, req: &ChatRequest) -> WireFacts {
    let gemini = kind == ProviderKind::Gemini;
    let mut f = WireFacts { calls: vec![], results: vec![], choice: req.tool_choice.as_ref().map(choice_str), tools: vec![] };
    for m in &req.messages {
        for tc in &m.tool_calls {
            f.calls.push(((!gemini).then(|| tc.id.clone()), tc.name.clone(), args_value(&tc.arguments)));
        }
        if let Some(id) = &m.tool_call_id {
            let name = req.messages.iter().flat_map(|m| &m.tool_calls).find(|tc| &tc.id == id).map(|tc| tc.name.clone()).unwrap();
            f.results.push((if gemini { name } else { id.clone() }, m.text()));
        }
    }
    f.tools = req.tools.iter().map(|t| t.name.clone()).collect();
    f
}

#[test]
fn request_direction_every_case_every_adapter() {
    let mut n = 0;
    for kind in KINDS {
        let p = provider(kind);
        for c in cases() {
            let req = request_for(&c, "call_");
            for stream in [false, true] {
                let b = wire_body(p.as_ref(), &req, stream);
                assert_eq!(wire_facts(kind, &b), expected_facts(kind, &req), "{kind:?} / {} / stream={stream}", c.name);
                n += 1;
            }
        }
    }
    assert_eq!(n, 5 * 6 * 2);
}

// ---------------------------------------------------------------------------------------
// Response direction: independent renderers

/// The usage each provider can express, for one underlying bill.
fn usage_for(kind: ProviderKind) -> Usage {
    match kind {
        ProviderKind::Anthropic => Usage { input_tokens: 100, output_tokens: 20, cache_read_tokens: 30, cache_write_tokens: 10, reasoning_tokens: 0 },
        ProviderKind::Gemini => Usage { input_tokens: 100, output_tokens: 20, cache_read_tokens: 30, cache_write_tokens: 0, reasoning_tokens: 5 },
        _ => Usage { input_tokens: 100, output_tokens: 20, cache_read_tokens: 30, cache_write_tokens: 0, reasoning_tokens: 5 },
    }
}

fn finish_native(kind: ProviderKind, c: &Case) -> &'static str {
    let tools = !c.calls.is_empty();
    match kind {
        ProviderKind::Anthropic if tools => "tool_use",
        ProviderKind::Anthropic => "end_turn",
        ProviderKind::Gemini => "STOP",
        _ if tools => "tool_calls",
        _ => "stop",
    }
}

fn render_json(kind: ProviderKind, c: &Case) -> Value {
    let u = usage_for(kind);
    match kind {
        ProviderKind::Anthropic => {
            let mut content = vec![];
            if !c.text.is_empty() {
                content.push(json!({"type": "text", "text": c.text}));
            }
            for (i, (n, a, _)) in c.calls.iter().enumerate() {
                content.push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": n, "input": args_value(a)}));
            }
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": content,
                   "stop_reason": finish_native(kind, c), "stop_sequence": null,
                   "usage": {"input_tokens": 60, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 10, "output_tokens": 20}})
        }
        ProviderKind::Gemini => {
            let mut parts = vec![];
            if !c.text.is_empty() {
                parts.push(json!({"text": c.text}));
            }
            for (n, a, _) in &c.calls {
                parts.push(json!({"functionCall": {"name": n, "args": args_value(a)}}));
            }
            json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": u.input_tokens, "candidatesTokenCount": 15, "thoughtsTokenCount": 5,
                                     "cachedContentTokenCount": 30, "totalTokenCount": 120},
                   "modelVersion": "gemini-x", "responseId": "resp_1"})
        }
        _ => {
            let calls: Vec<Value> = c
                .calls
                .iter()
                .enumerate()
                .map(|(i, (n, a, _))| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": n, "arguments": a}}))
                .collect();
            let mut msg = json!({"role": "assistant", "content": if c.text.is_empty() { Value::Null } else { json!(c.text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = json!(calls);
            }
            let mut choice = json!({"index": 0, "message": msg, "finish_reason": finish_native(kind, c), "logprobs": null});
            if kind == ProviderKind::Azure {
                choice["content_filter_results"] = json!({"hate": {"filtered": false, "severity": "safe"}});
            }
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x", "choices": [choice],
                   "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                             "prompt_tokens_details": {"cached_tokens": 30}, "completion_tokens_details": {"reasoning_tokens": 5}}})
        }
    }
}

fn sse(out: &mut String, event: Option<&str>, data: &Value) {
    if let Some(e) = event {
        out.push_str(&format!("event: {e}\n"));
    }
    out.push_str(&format!("data: {data}\n\n"));
}

fn render_sse(kind: ProviderKind, c: &Case) -> String {
    let mut s = String::new();
    match kind {
        ProviderKind::Anthropic => {
            let ev = |s: &mut String, d: Value| {
                let t = d["type"].as_str().unwrap().to_string();
                sse(s, Some(&t), &d)
            };
            ev(
                &mut s,
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
                "stop_reason": null, "usage": {"input_tokens": 60, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 10, "output_tokens": 1}}}),
            );
            ev(&mut s, json!({"type": "ping"}));
            let mut idx = 0;
            if !c.text.is_empty() {
                ev(&mut s, json!({"type": "content_block_start", "index": idx, "content_block": {"type": "text", "text": ""}}));
                let (a, b) = c.text.split_at(c.text.len() / 2);
                for part in [a, b] {
                    ev(&mut s, json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": part}}));
                }
                ev(&mut s, json!({"type": "content_block_stop", "index": idx}));
                idx += 1;
            }
            for (i, (n, _, frags)) in c.calls.iter().enumerate() {
                ev(
                    &mut s,
                    json!({"type": "content_block_start", "index": idx, "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": n, "input": {}}}),
                );
                ev(&mut s, json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": ""}}));
                for f in frags {
                    ev(&mut s, json!({"type": "content_block_delta", "index": idx, "delta": {"type": "input_json_delta", "partial_json": f}}));
                }
                ev(&mut s, json!({"type": "content_block_stop", "index": idx}));
                idx += 1;
            }
            ev(
                &mut s,
                json!({"type": "message_delta", "delta": {"stop_reason": finish_native(kind, c), "stop_sequence": null}, "usage": {"output_tokens": 20}}),
            );
            ev(&mut s, json!({"type": "message_stop"}));
        }
        ProviderKind::Gemini => {
            let chunk = |parts: Value, last: bool| {
                let mut v = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}], "modelVersion": "gemini-x", "responseId": "resp_1",
                    "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 3, "totalTokenCount": 103}});
                if last {
                    v["candidates"][0]["finishReason"] = json!("STOP");
                    v["usageMetadata"] = json!({"promptTokenCount": 100, "candidatesTokenCount": 15, "thoughtsTokenCount": 5, "cachedContentTokenCount": 30, "totalTokenCount": 120});
                }
                v
            };
            if !c.text.is_empty() {
                let (a, b) = c.text.split_at(c.text.len() / 2);
                sse(&mut s, None, &chunk(json!([{"text": a}]), false));
                sse(&mut s, None, &chunk(json!([{"text": b}]), false));
            }
            // Gemini sends each function call whole, one part per call.
            for (n, a, _) in &c.calls {
                sse(&mut s, None, &chunk(json!([{"functionCall": {"name": n, "args": args_value(a)}}]), false));
            }
            sse(&mut s, None, &chunk(json!([{"text": ""}]), true));
        }
        _ => {
            let chunk = |delta: Value, finish: Option<&str>| {
                let mut ch = json!({"index": 0, "delta": delta, "finish_reason": finish});
                if kind == ProviderKind::Azure {
                    ch["content_filter_results"] = json!({});
                }
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", "choices": [ch]})
            };
            if kind == ProviderKind::Azure {
                sse(
                    &mut s,
                    None,
                    &json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
                );
            }
            sse(&mut s, None, &chunk(json!({"role": "assistant", "content": ""}), None));
            if !c.text.is_empty() {
                let (a, b) = c.text.split_at(c.text.len() / 2);
                sse(&mut s, None, &chunk(json!({"content": a}), None));
                sse(&mut s, None, &chunk(json!({"content": b}), None));
            }
            for (i, (n, _, frags)) in c.calls.iter().enumerate() {
                sse(
                    &mut s,
                    None,
                    &chunk(
                        json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function", "function": {"name": n, "arguments": ""}}]}),
                        None,
                    ),
                );
                for f in frags {
                    sse(&mut s, None, &chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": f}}]}), None));
                }
            }
            sse(&mut s, None, &chunk(json!({}), Some(finish_native(kind, c))));
            sse(
                &mut s,
                None,
                &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", "choices": [],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                          "prompt_tokens_details": {"cached_tokens": 30}, "completion_tokens_details": {"reasoning_tokens": 5}}}),
            );
            s.push_str("data: [DONE]\n\n");
        }
    }
    s
}

/// What the adapter must report for a case: (id if predictable, name, arguments value).
fn expected_calls(kind: ProviderKind, c: &Case) -> Vec<(Option<String>, String, Value)> {
    c.calls
        .iter()
        .enumerate()
        .map(|(i, (n, a, _))| {
            let id = match kind {
                ProviderKind::Anthropic => Some(format!("toolu_{i}")),
                ProviderKind::Gemini => None,
                _ => Some(format!("call_{i}")),
            };
            (id, n.to_string(), args_value(a))
        })
        .collect()
}

fn got_calls(kind: ProviderKind, r: &polyroute::ChatResponse) -> Vec<(Option<String>, String, Value)> {
    r.tool_calls()
        .iter()
        .map(|tc| {
            assert!(!tc.id.is_empty(), "every call gets an id");
            ((kind != ProviderKind::Gemini).then(|| tc.id.clone()), tc.name.clone(), args_value(&tc.arguments))
        })
        .collect()
}

#[test]
fn response_direction_every_case_every_adapter_streamed_and_not() {
    let mut n = 0;
    for kind in KINDS {
        let p = provider(kind);
        for c in cases().iter().filter(|c| c.choice != Some(ToolChoice::None) || c.calls.is_empty()) {
            let ctx = format!("{kind:?} / {}", c.name);
            let body = serde_json::to_vec(&render_json(kind, c)).unwrap();
            let whole = p.parse_response("model-x", 200, &http::HeaderMap::new(), &body).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let sse_text = render_sse(kind, c);
            let d = decode(p.as_ref(), "model-x", sse_text.as_bytes(), &[]);
            assert_eq!(d.error, None, "{ctx}");
            let streamed = d.fold();
            let want_finish = if c.calls.is_empty() { FinishReason::Stop } else { FinishReason::ToolCalls };
            for (how, r) in [("json", &whole), ("sse", &streamed)] {
                assert_eq!(got_calls(kind, r), expected_calls(kind, c), "{ctx} ({how})");
                assert_eq!(r.content(), c.text, "{ctx} ({how})");
                assert_eq!(r.finish_reason(), Some(want_finish), "{ctx} ({how})");
                assert_eq!(r.usage, Some(usage_for(kind)), "{ctx} ({how})");
            }
            // Generated ids (Gemini) are the same whether the answer was streamed or not.
            let ids = |r: &polyroute::ChatResponse| r.tool_calls().iter().map(|t| t.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&whole), ids(&streamed), "{ctx}");
            // Streamed arguments concatenate to exactly what the model produced.
            if kind != ProviderKind::Gemini {
                for (tc, (_, a, _)) in streamed.tool_calls().iter().zip(&c.calls) {
                    let want = if a.is_empty() && kind == ProviderKind::Anthropic { "{}" } else { a };
                    assert_eq!(tc.arguments, want, "{ctx}");
                }
            }
            n += 1;
        }
    }
    assert_eq!(n, 5 * 6);
}

#[test]
fn every_provider_pair_keeps_calls_tied_to_results() {
    let mut pairs = 0;
    let c = &cases()[1]; // parallel calls with text
    for from in KINDS {
        let src = provider(from);
        let body = serde_json::to_vec(&render_json(from, c)).unwrap();
        let answer = src.parse_response("m", 200, &http::HeaderMap::new(), &body).unwrap();
        let mut req = ChatRequest::new(vec![Message::user("weather and time?"), answer.choices[0].message.clone()]);
        for tc in answer.tool_calls().iter().rev() {
            // Results deliberately in reverse order: the tie is by id/name, not position.
            req.messages.push(Message::tool_result(tc.id.clone(), format!("result of {}", tc.name)));
        }
        req.messages.push(Message::user("and tomorrow?"));
        req.tools = tools();
        for to in KINDS {
            let dst = provider(to);
            for stream in [false, true] {
                let b = wire_body(dst.as_ref(), &req, stream);
                let f = wire_facts(to, &b);
                assert_eq!(f, expected_facts(to, &req), "{from:?} -> {to:?}");
                for (call_ref, text) in &f.results {
                    let called = f.calls.iter().find(|(id, name, _)| id.as_deref().unwrap_or(name) == call_ref);
                    let (_, name, _) = called.unwrap_or_else(|| panic!("{from:?} -> {to:?}: result for unknown call {call_ref}"));
                    assert_eq!(text, &format!("result of {name}"), "{from:?} -> {to:?}");
                }
                assert_eq!(f.calls.len(), 2);
                assert_eq!(f.calls[1].2, json!({"tz": "Europe/Rome", "fmt": 24}), "{from:?} -> {to:?}");
            }
            pairs += 1;
        }
    }
    assert_eq!(pairs, 25);
}
