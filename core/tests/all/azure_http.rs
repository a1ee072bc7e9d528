//! The Azure OpenAI adapter over real HTTP (reqwest → 127.0.0.1), through `Endpoint`:
//! deployment URL and `api-version`, the `api-key` header, content filtering (a 400 on the
//! prompt, a filtered answer), `x-ms-retry-after-ms`, and Azure's stream preamble chunk.

use crate::common::loopback;

use std::time::Duration;

use crate::common::{http_endpoint, KEY};
use futures::StreamExt;
use loopback::{Canned, Loopback};
use polyroute::provider::{Endpoint, ProviderConfig, ProviderKind};
use polyroute::{ChatRequest, ErrorKind, FinishReason, Message, StreamAccumulator, StreamEvent};
use serde_json::json;

fn endpoint(url: &str, version: Option<&str>) -> Endpoint {
    let mut cfg = ProviderConfig::new("azure-eu", ProviderKind::Azure, url).with_api_key(KEY);
    cfg.api_version = version.map(str::to_string);
    http_endpoint(cfg)
}

fn completion(finish: &str, filtered: bool) -> serde_json::Value {
    json!({"id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}],
           "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "Hi"},
                        "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}, "violence": {"filtered": filtered, "severity": if filtered { "high" } else { "safe" }}}}],
           "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}})
}

#[tokio::test]
async fn deployment_url_api_key_and_filtered_answers() {
    let srv = Loopback::start(vec![
        Canned::json(200, &completion("stop", false)).header("apim-request-id", "apim-1"),
        Canned::json(200, &completion("stop", true)),
        Canned::json(200, &completion("content_filter", false)),
    ])
    .await;
    let base = format!("{}/", srv.url);
    let ep = endpoint(&base, None);
    let req = ChatRequest::new(vec![Message::user("hello")]);
    let r = ep.chat("prod-gpt4o", &req).await.unwrap();
    let seen = &srv.seen()[0];
    assert_eq!(seen.target, "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21");
    assert_eq!(seen.header("api-key"), Some(KEY));
    assert_eq!(seen.header("authorization"), None);
    assert!(seen.json().get("model").is_none());
    assert_eq!((r.content(), r.finish_reason()), ("Hi".to_string(), Some(FinishReason::Stop)));
    assert_eq!(ep.chat("prod-gpt4o", &req).await.unwrap().finish_reason(), Some(FinishReason::ContentFilter));
    assert_eq!(ep.chat("prod-gpt4o", &req).await.unwrap().finish_reason(), Some(FinishReason::ContentFilter));
}

#[tokio::test]
async fn prompt_filter_400_and_retry_hint() {
    let filtered = json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": null, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}});
    let throttled = json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded token rate limit."}});
    let srv = Loopback::start(vec![
        Canned::json(400, &filtered),
        Canned::json(429, &throttled).header("x-ms-retry-after-ms", "1250").header("retry-after", "2"),
    ])
    .await;
    let ep = endpoint(&srv.url, Some("2025-04-01-preview"));
    let req = ChatRequest::new(vec![Message::user("something bad")]);
    let e = ep.chat("dep", &req).await.unwrap_err();
    assert_eq!((e.kind, e.status, e.provider_code.as_deref()), (ErrorKind::ContentFilter, Some(400), Some("content_filter")));
    assert!(srv.seen()[0].target.ends_with("api-version=2025-04-01-preview"));
    let e = ep.chat("dep", &req).await.unwrap_err();
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_millis(1250))));
    assert!(!format!("{e:?} {e}").contains(KEY));
}

#[tokio::test]
async fn stream_skips_the_prompt_filter_preamble() {
    let chunks = [
        json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}),
        json!({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null, "content_filter_results": {}}]}),
        json!({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null,
               "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}),
        json!({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "content_filter_results": {}}]}),
        json!({"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
    ];
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    let srv = Loopback::start(vec![Canned::sse(body.as_bytes(), 13)]).await;
    let mut s = endpoint(&srv.url, None).stream("dep", &ChatRequest::new(vec![Message::user("hi")])).await.unwrap();
    let mut events = vec![];
    while let Some(ev) = s.next().await {
        events.push(ev.unwrap());
    }
    assert_eq!(events[0], StreamEvent::Start { id: "chatcmpl-az".into(), model: "gpt-4o".into() });
    let mut acc = StreamAccumulator::new();
    events.iter().for_each(|e| acc.push(e));
    let r = acc.into_response();
    assert_eq!((r.content(), r.finish_reason()), ("Hello".to_string(), Some(FinishReason::Stop)));
    assert_eq!(r.usage.unwrap().total_tokens(), 4);
}
