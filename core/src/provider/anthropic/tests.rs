//! Unit tests for the Anthropic translation rules that fixtures do not exercise.

use serde_json::json;

use super::*;
use crate::provider::Provider;
use crate::sse::SseDecoder;
use crate::types::{Message, StreamEvent, Tool, ToolCall};

fn provider() -> AnthropicProvider {
    AnthropicProvider::new(
        ProviderConfig::new("anthropic", crate::provider::ProviderKind::Anthropic, "https://api.anthropic.com")
            .with_api_key("sk-test-not-a-real-key"),
    )
}

fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        description: Some("d".into()),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        strict: None,
    }
}

#[test]
fn system_hoisted_roles_merged_tool_results_first() {
    let mut req = ChatRequest::new(vec![
        Message::system("be brief"),
        Message::user("weather in Paris and Rome?"),
        Message::assistant_tool_calls(vec![
            ToolCall { id: "toolu_1".into(), name: "w".into(), arguments: "{\"city\":\"Paris\"}".into() },
            ToolCall { id: "toolu_2".into(), name: "w".into(), arguments: "".into() },
        ]),
        Message::tool_result("toolu_1", "20C"),
        Message::tool_result("toolu_2", "25C"),
        Message::developer_note(),
        Message::user("thanks"),
    ]);
    req.tools = vec![tool("w")];
    req.tool_choice = Some(crate::types::ToolChoice::Required);
    req.parallel_tool_calls = Some(false);
    req.temperature = Some(1.7);
    let b = provider().request_json("claude-x", &req, true).unwrap();
    assert_eq!(b["system"], json!([{"type": "text", "text": "be brief"}, {"type": "text", "text": "dev"}]));
    assert_eq!(b["max_tokens"], json!(DEFAULT_MAX_TOKENS));
    assert_eq!(b["temperature"], json!(1.0));
    assert_eq!(b["stream"], json!(true));
    assert_eq!(b["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(b["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{b:#}");
    assert_eq!(msgs[1]["content"][1]["input"], json!({}));
    assert_eq!(msgs[2]["role"], "user");
    let types: Vec<_> = msgs[2]["content"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["tool_result", "tool_result", "text"]);
    assert_eq!(msgs[2]["content"][1]["tool_use_id"], "toolu_2");
}

trait DevNote {
    fn developer_note() -> Message;
}
impl DevNote for Message {
    fn developer_note() -> Message {
        let mut m = Message::system("dev");
        m.role = crate::types::Role::Developer;
        m
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    let req = ChatRequest::new(vec![
        Message::user("hi"),
        Message::assistant_tool_calls(vec![ToolCall { id: "t".into(), name: "w".into(), arguments: "{not json".into() }]),
    ]);
    let e = provider().build_request("m", &req, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("messages[1]"), "{e}");
}

#[test]
fn foreign_reasoning_is_not_replayed() {
    let mut a = Message::assistant("ok");
    a.reasoning_content = Some("thought".into());
    a.reasoning_signature = Some("gemini:abc".into());
    let req = ChatRequest::new(vec![Message::user("q"), a.clone(), Message::user("again")]);
    let b = provider().request_json("m", &req, false).unwrap();
    assert_eq!(b["messages"][1]["content"], json!([{"type": "text", "text": "ok"}]));
    a.reasoning_signature = Some("EqQBCkgIAR".into());
    let req = ChatRequest::new(vec![Message::user("q"), a, Message::user("again")]);
    let b = provider().request_json("m", &req, false).unwrap();
    assert_eq!(b["messages"][1]["content"][0], json!({"type": "thinking", "thinking": "thought", "signature": "EqQBCkgIAR"}));
}

#[test]
fn headers_and_url() {
    let p = provider();
    let w = p.build_request("m", &ChatRequest::new(vec![Message::user("q")]), false).unwrap();
    assert_eq!(w.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(w.headers["anthropic-version"], "2023-06-01");
    assert!(w.headers["x-api-key"].is_sensitive());
    assert!(!format!("{w:?}").contains("sk-test-not-a-real-key"));
    let mut cfg = ProviderConfig::new("a", crate::provider::ProviderKind::Anthropic, "http://127.0.0.1:9/v1/");
    cfg.api_version = Some("2024-01-01".into());
    let w = AnthropicProvider::new(cfg).build_request("m", &ChatRequest::new(vec![Message::user("q")]), false).unwrap();
    assert_eq!(w.url, "http://127.0.0.1:9/v1/messages");
    assert_eq!(w.headers["anthropic-version"], "2024-01-01");
}

fn err(status: u16, body: serde_json::Value) -> Error {
    provider().parse_error("m", status, &HeaderMap::new(), body.to_string().as_bytes())
}

#[test]
fn error_classification() {
    let e = err(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}));
    assert_eq!((e.kind, e.provider_code.as_deref(), e.request_id.as_deref()), (ErrorKind::Overloaded, Some("overloaded_error"), Some("req_1")));
    assert_eq!(err(529, json!({})).kind, ErrorKind::Overloaded);
    assert_eq!(
        err(429, json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow", "details": null}})).kind,
        ErrorKind::RateLimited
    );
    let spend = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "limit", "details": {"type": "workspace_spend_limit"}}});
    assert_eq!(err(429, spend).kind, ErrorKind::QuotaExhausted);
    assert_eq!(
        err(
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 200005 tokens > 200000 maximum"}})
        )
        .kind,
        ErrorKind::ContextLengthExceeded
    );
    assert_eq!(
        err(
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "You have reached your specified API usage limits."}})
        )
        .kind,
        ErrorKind::QuotaExhausted
    );
    assert_eq!(err(401, json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}})).kind, ErrorKind::Auth);
    assert_eq!(err(404, json!({"type": "error", "error": {"type": "not_found_error", "message": "model: x"}})).kind, ErrorKind::NotFound);
    let mut h = HeaderMap::new();
    h.insert("retry-after", http::HeaderValue::from_static("7"));
    let e = provider().parse_error("m", 429, &h, b"not json");
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(std::time::Duration::from_secs(7))));
}

fn decode(sse: &str) -> (Vec<crate::types::StreamEvent>, Result<()>) {
    let mut d = response::AnthropicStreamDecoder::new("m");
    let mut out = Vec::new();
    for ev in SseDecoder::decode_all(sse.as_bytes()).unwrap() {
        if d.is_done() {
            break;
        }
        if let Err(e) = d.on_event(&ev, &mut out) {
            return (out, Err(e));
        }
    }
    let end = if d.is_done() { Ok(()) } else { d.on_end(&mut out) };
    (out, end)
}

#[test]
fn in_band_error_after_200_is_classified() {
    let sse =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n\
               event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let (out, r) = decode(sse);
    assert_eq!(out.len(), 1);
    let e = r.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::Overloaded, None));
}

#[test]
fn stream_with_stop_reason_but_without_message_stop_completes() {
    let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n\
               event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
               event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
               event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n";
    let (out, r) = decode(sse);
    r.unwrap();
    assert!(out.iter().any(|e| matches!(e, StreamEvent::Finish { .. })));
    // ...but one cut before the stop reason is interrupted.
    let cut = &sse[..sse.find("event: message_delta").unwrap()];
    let (_, r) = decode(cut);
    assert_eq!(r.unwrap_err().kind, ErrorKind::StreamInterrupted);
}
