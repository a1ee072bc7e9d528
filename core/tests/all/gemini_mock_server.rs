//! The Gemini adapter against the shared mock server over real HTTP: a scripted answer with
//! a function call and thought/cache usage streamed and not, a 429 whose `RetryInfo` is
//! the hint, and a stream that ends without a finishing chunk.

use crate::common::mock_server;

use std::time::Duration;

use mock_server::{fold, Harness};
use polyroute::provider::ProviderKind;
use polyroute::{ErrorKind, FinishReason, Usage};
use serde_json::json;

#[tokio::test]
async fn scripted_answer_streamed_and_not() {
    let h = Harness::new(ProviderKind::Gemini).await;
    h.script(
        "gemini-x",
        r#"{"then": {"text": "Checking now.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 30, "reasoning_tokens": 5}, "finish_reason": "tool_calls"}}"#,
    );
    let whole = h.chat("gemini-x").await.unwrap();
    let (events, err) = h.stream("gemini-x").await;
    assert!(err.is_none(), "{err:?}");
    let streamed = fold(&events);
    for r in [&whole, &streamed] {
        assert_eq!(r.content(), "Checking now.");
        assert_eq!(r.tool_calls()[0].name, "get_weather");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&r.tool_calls()[0].arguments).unwrap(), json!({"city": "Paris"}));
        assert_eq!(r.finish_reason(), Some(FinishReason::ToolCalls));
        assert_eq!(r.usage, Some(Usage { input_tokens: 100, output_tokens: 20, cache_read_tokens: 30, cache_write_tokens: 0, reasoning_tokens: 5 }));
    }
    let log = h.server.log_for("gemini-x");
    assert_eq!(log.len(), 2);
}

#[tokio::test]
async fn retry_info_and_missing_finish() {
    let h = Harness::new(ProviderKind::Gemini).await;
    h.script(
        "g",
        r#"{"steps": [
        {"status": 429, "retry_after_ms": 1500},
        {"status": 503},
        {"text": "one two three", "fault": "no_finish"}
    ]}"#,
    );
    let e = h.chat("g").await.unwrap_err();
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_millis(1500))));
    assert_eq!(h.chat("g").await.unwrap_err().kind, ErrorKind::Overloaded);
    let (events, e) = h.stream("g").await;
    assert_eq!(e.unwrap().kind, ErrorKind::StreamInterrupted);
    assert_eq!(fold(&events).content(), "one two three");
}
