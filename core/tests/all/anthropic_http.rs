//! The Anthropic adapter over real HTTP (reqwest → 127.0.0.1), through `Endpoint`: what it
//! sends (path, auth and version headers, body) and how recorded answers, HTTP errors,
//! in-band stream errors and cut connections come back.
//!
//! The server replays recorded bytes (`common/loopback.rs`); the shared scripted mock
//! server is exercised by the router suites.

use crate::common::loopback;
use crate::common::support;

use std::time::Duration;

use crate::common::{http_endpoint, KEY};
use futures::StreamExt;
use loopback::{Canned, Loopback};
use polyroute::provider::{Endpoint, ProviderConfig, ProviderKind};
use polyroute::{ChatRequest, ErrorKind, FinishReason, Message, StreamAccumulator, StreamEvent, Tool, ToolChoice};
use serde_json::json;
use support::{cassette, fixtures};

fn endpoint(url: &str) -> Endpoint {
    http_endpoint(ProviderConfig::new("anthropic", ProviderKind::Anthropic, url).with_api_key(KEY))
}

fn request() -> ChatRequest {
    let mut r = ChatRequest::new(vec![Message::system("Use tools."), Message::user("Who is the youngest?")]);
    r.tools = vec![Tool {
        name: "retrieve_entity_info".into(),
        description: Some("Get the knowledge about the given entity.".into()),
        parameters: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        strict: None,
    }];
    r.tool_choice = Some(ToolChoice::Auto);
    r
}

#[tokio::test]
async fn chat_sends_native_request_and_parses_recorded_answer() {
    let it = &cassette("anthropic", "test_multiple_parallel_tool_calls.yaml")[0];
    let srv = Loopback::start(vec![Canned::json(200, &it["response"]["parsed_body"]).header("request-id", "req_abc")]).await;
    let r = endpoint(&srv.url).chat("claude-haiku-4-5", &request()).await.unwrap();
    let seen = &srv.seen()[0];
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/v1/messages"));
    assert_eq!(seen.header("x-api-key"), Some(KEY));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("authorization"), None);
    let b = seen.json();
    assert_eq!(b["model"], "claude-haiku-4-5");
    assert_eq!(b["system"], "Use tools.");
    assert_eq!(b["max_tokens"], 4096);
    assert_eq!(b["tool_choice"], json!({"type": "auto"}));
    assert_eq!(b["tools"][0]["input_schema"]["required"], json!(["name"]));
    assert!(b.get("stream").is_none());

    let names: Vec<_> = r.tool_calls().iter().map(|c| serde_json::from_str::<serde_json::Value>(&c.arguments).unwrap()["name"].clone()).collect();
    assert_eq!(names, [json!("Alice"), json!("Bob"), json!("Charlie"), json!("Daisy")]);
    assert_eq!(r.tool_calls()[0].id, "toolu_0167cfEnoQaPviGdVXA95zcu");
    assert_eq!(r.finish_reason(), Some(FinishReason::ToolCalls));
    assert_eq!(r.usage.unwrap().input_tokens, 423);
    assert_eq!(r.provider.as_deref(), Some("anthropic"));
}

#[tokio::test]
async fn stream_of_recorded_bytes_in_small_pieces() {
    let bytes = std::fs::read(fixtures().join("anthropic-sse/tool_use_response.txt")).unwrap();
    let srv = Loopback::start(vec![Canned::sse(&bytes, 7)]).await;
    let mut s = endpoint(&srv.url).stream("claude-sonnet-4", &request()).await.unwrap();
    let mut acc = StreamAccumulator::new();
    let mut n = 0;
    while let Some(ev) = s.next().await {
        acc.push(&ev.unwrap());
        n += 1;
    }
    assert!(n > 5);
    let seen = &srv.seen()[0];
    assert_eq!(seen.json()["stream"], true);
    assert_eq!(seen.header("accept"), Some("text/event-stream"));
    let r = acc.into_response();
    assert_eq!(r.content(), "I'll check the current weather in Paris for you.");
    assert_eq!(r.tool_calls()[0].arguments, "{\"location\": \"Paris\"}");
    assert_eq!(r.finish_reason(), Some(FinishReason::ToolCalls));
    assert_eq!(r.usage.unwrap().output_tokens, 65);
}

#[tokio::test]
async fn http_errors_are_classified_with_hints() {
    let overloaded = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let spend =
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "limit reached", "details": {"type": "spend_limit_exceeded"}}});
    let rate = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down", "details": null}});
    let srv = Loopback::start(vec![
        Canned::json(529, &overloaded).header("retry-after", "3").header("request-id", "req_529"),
        Canned::json(429, &spend),
        Canned::json(429, &rate).header("retry-after", "1.5"),
    ])
    .await;
    let ep = endpoint(&srv.url);
    let e = ep.chat("m", &request()).await.unwrap_err();
    assert_eq!((e.kind, e.status, e.retry_after), (ErrorKind::Overloaded, Some(529), Some(Duration::from_secs(3))));
    assert_eq!(e.request_id.as_deref(), Some("req_529"));
    assert_eq!((e.provider.as_deref(), e.model.as_deref()), (Some("anthropic"), Some("m")));
    assert!(!format!("{e:?}").contains(KEY));
    let e = ep.chat("m", &request()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::QuotaExhausted);
    let e = ep.stream("m", &request()).await.err().unwrap();
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_millis(1500))));
}

#[tokio::test]
async fn in_band_overload_after_200_and_cut_connection() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
                 event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
                 event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n";
    let overload =
        format!("{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n");
    let srv = Loopback::start(vec![Canned::sse(overload.as_bytes(), 40), Canned::sse(start.as_bytes(), 40).cut()]).await;
    let ep = endpoint(&srv.url);
    for want in [ErrorKind::Overloaded, ErrorKind::StreamInterrupted] {
        let mut s = ep.stream("m", &request()).await.unwrap();
        let mut events = vec![];
        let mut err = None;
        while let Some(ev) = s.next().await {
            match ev {
                Ok(e) => events.push(e),
                Err(e) => err = Some(e),
            }
        }
        let e = err.expect("stream must end in an error");
        assert_eq!(e.kind, want);
        assert_eq!(e.partial.as_ref().map(|p| p.text.as_str()), Some("Hel"), "{want:?}");
        assert!(events.iter().any(|e| matches!(e, StreamEvent::ContentDelta { .. })));
        assert!(!events.iter().any(|e| matches!(e, StreamEvent::Finish { .. })), "never a silent success");
    }
}
