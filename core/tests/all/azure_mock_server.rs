//! The Azure OpenAI adapter against the shared mock server over real HTTP: the deployment
//! URL is routed to the deployment's script, usage and tool calls come back streamed and
//! not, a content-filter 400 is `content_filter`, and a 429 carries its retry hint.

use crate::common::mock_server;

use std::time::Duration;

use mock_server::{fold, Harness};
use polyroute::provider::ProviderKind;
use polyroute::{ErrorKind, FinishReason};

#[tokio::test]
async fn deployment_routing_and_answers() {
    let h = Harness::new(ProviderKind::Azure).await;
    h.script("prod-4o", r#"{"then": {"text": "Hello there", "usage": {"input_tokens": 12, "output_tokens": 2}}}"#);
    let whole = h.chat("prod-4o").await.unwrap();
    let (events, err) = h.stream("prod-4o").await;
    assert!(err.is_none(), "{err:?}");
    for r in [&whole, &fold(&events)] {
        assert_eq!(r.content(), "Hello there");
        assert_eq!(r.finish_reason(), Some(FinishReason::Stop));
        assert_eq!(r.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((12, 2)));
    }
    let log = h.server.log_for("prod-4o");
    assert_eq!(log.len(), 2);
}

#[tokio::test]
async fn content_filter_and_throttling() {
    let h = Harness::new(ProviderKind::Azure).await;
    h.script(
        "dep",
        r#"{"steps": [
        {"status": 400, "error_code": "content_filter", "error_message": "filtered"},
        {"status": 429, "retry_after_ms": 800}
    ]}"#,
    );
    let e = h.chat("dep").await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::ContentFilter, Some(400)));
    let e = h.chat("dep").await.unwrap_err();
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_millis(800))));
}
