//! The Anthropic adapter against the shared mock server over real HTTP: a scripted answer
//! (text, a tool call, cache usage) streamed and not, 529 and 429 errors, an in-band
//! `overloaded_error` after a 200, and a connection cut mid-stream.

use crate::common::mock_server;

use std::time::Duration;

use mock_server::{fold, Harness};
use polyroute::provider::ProviderKind;
use polyroute::{ErrorKind, FinishReason, Usage};
use serde_json::json;

const ANSWER: &str = r#"{"then": {"text": "Checking now.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}],
    "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 30, "cache_write_tokens": 10}, "finish_reason": "tool_calls"}}"#;

#[tokio::test]
async fn scripted_answer_streamed_and_not() {
    let h = Harness::new(ProviderKind::Anthropic).await;
    h.script("claude-x", ANSWER);
    let whole = h.chat("claude-x").await.unwrap();
    let (events, err) = h.stream("claude-x").await;
    assert!(err.is_none(), "{err:?}");
    let streamed = fold(&events);
    for r in [&whole, &streamed] {
        assert_eq!(r.content(), "Checking now.");
        assert_eq!(r.tool_calls().len(), 1);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&r.tool_calls()[0].arguments).unwrap(), json!({"city": "Paris", "days": 2}));
        assert!(r.tool_calls()[0].id.starts_with("toolu_"));
        assert_eq!(r.finish_reason(), Some(FinishReason::ToolCalls));
        assert_eq!(r.usage, Some(Usage { input_tokens: 100, output_tokens: 20, cache_read_tokens: 30, cache_write_tokens: 10, reasoning_tokens: 0 }));
    }
    let log = h.server.log_for("claude-x");
    assert_eq!(log.len(), 2);
}

#[tokio::test]
async fn errors_and_stream_faults() {
    let h = Harness::new(ProviderKind::Anthropic).await;
    h.script(
        "c",
        r#"{"steps": [
        {"status": 529, "retry_after": "4"},
        {"status": 429, "retry_after": "2"},
        {"text": "one two three four", "fault": {"inband_error": {"after_chunks": 1, "type": "overloaded_error", "message": "Overloaded"}}},
        {"text": "one two three four", "fault": {"cut_after": {"chunks": 2}}}
    ]}"#,
    );
    let e = h.chat("c").await.unwrap_err();
    assert_eq!((e.kind, e.status, e.retry_after), (ErrorKind::Overloaded, Some(529), Some(Duration::from_secs(4))));
    let e = h.chat("c").await.unwrap_err();
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_secs(2))));
    let (events, e) = h.stream("c").await;
    let e = e.unwrap();
    assert_eq!(e.kind, ErrorKind::Overloaded, "{e}");
    assert!(!fold(&events).content().is_empty());
    let (events, e) = h.stream("c").await;
    assert_eq!(e.unwrap().kind, ErrorKind::StreamInterrupted);
    assert!(!events.iter().any(|e| matches!(e, polyroute::StreamEvent::Finish { .. })));
}
