//! The Gemini adapter over real HTTP (reqwest → 127.0.0.1), through `Endpoint`: URL and
//! key placement, recorded answers streamed and not, `google.rpc.Status` errors with
//! `RetryInfo`, and a stream cut before its finishing chunk.

use crate::common::loopback;
use crate::common::support;

use std::time::Duration;

use crate::common::{http_endpoint, KEY};
use futures::StreamExt;
use loopback::{Canned, Loopback};
use polyroute::provider::{Endpoint, ProviderConfig, ProviderKind};
use polyroute::{ChatRequest, ErrorKind, FinishReason, Message, ResponseFormat, StreamAccumulator};
use serde_json::json;
use support::cassette;

fn endpoint(url: &str) -> Endpoint {
    http_endpoint(ProviderConfig::new("gemini", ProviderKind::Gemini, url).with_api_key(KEY))
}

#[tokio::test]
async fn chat_with_sanitised_schema_and_key_in_header_only() {
    let it = &cassette("google", "test_google_integer_enum_native_output.yaml")[0];
    let srv = Loopback::start(vec![Canned::json(200, &it["response"]["parsed_body"])]).await;
    let mut req = ChatRequest::new(vec![Message::system("Be exact."), Message::user("Give me a task")]);
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "Task".into(),
        schema: json!({"$defs": {"Priority": {"enum": [1, 2, 3], "type": "integer"}}, "additionalProperties": false, "type": "object",
                       "properties": {"name": {"type": "string"}, "priority": {"$ref": "#/$defs/Priority"}}, "required": ["name", "priority"]}),
        strict: Some(true),
        description: None,
    });
    let r = endpoint(&srv.url).chat("models/gemini-2.5-flash", &req).await.unwrap();
    let seen = &srv.seen()[0];
    assert_eq!(seen.target, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.header("x-goog-api-key"), Some(KEY));
    assert!(!seen.target.contains("key="));
    let b = seen.json();
    assert_eq!(b["systemInstruction"], json!({"parts": [{"text": "Be exact."}]}));
    let schema = &b["generationConfig"]["responseSchema"];
    assert_eq!(b["generationConfig"]["responseMimeType"], "application/json");
    assert!(schema.get("additionalProperties").is_none() && !schema.to_string().contains("$ref"), "{schema}");
    assert_eq!(schema["properties"]["priority"]["enum"], json!(["1", "2", "3"]));
    assert_eq!(r.content(), "{\"name\": \"Fix bug\", \"priority\": 1}");
    assert_eq!(r.usage.unwrap().output_tokens, 13 + 448);
    assert_eq!(r.usage.unwrap().reasoning_tokens, 448);
}

#[tokio::test]
async fn stream_of_recorded_bytes_in_small_pieces() {
    let it = &cassette("google", "test_google_stream_usage_is_live_mid_stream.yaml")[0];
    let body = it["response"]["body"]["string"].as_str().unwrap().as_bytes().to_vec();
    let srv = Loopback::start(vec![Canned::sse(&body, 11)]).await;
    let mut s = endpoint(&srv.url).stream("gemini-2.5-flash", &ChatRequest::new(vec![Message::user("count")])).await.unwrap();
    let mut acc = StreamAccumulator::new();
    while let Some(ev) = s.next().await {
        acc.push(&ev.unwrap());
    }
    assert_eq!(srv.seen()[0].target, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    let r = acc.into_response();
    let want: String = (1..=30).map(|i| format!("{i}\n")).collect::<String>();
    assert_eq!(r.content(), want.trim_end());
    assert_eq!(r.finish_reason(), Some(FinishReason::Stop));
    let u = r.usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens, u.reasoning_tokens), (18, 115, 35));
}

#[tokio::test]
async fn quota_errors_use_retry_info_and_cut_stream_is_interrupted() {
    let per_day = json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]}});
    let per_minute = json!({"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}});
    let partial = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"1, 2\"}],\"role\": \"model\"},\"index\": 0}],\"responseId\": \"r1\"}\r\n\r\n";
    let srv = Loopback::start(vec![
        Canned::json(429, &per_day).header("retry-after", "60"),
        Canned::json(429, &per_minute),
        Canned::sse(partial.as_bytes(), 9),
    ])
    .await;
    let ep = endpoint(&srv.url);
    let req = ChatRequest::new(vec![Message::user("q")]);
    let e = ep.chat("gemini-2.5-flash", &req).await.unwrap_err();
    // The body's RetryInfo wins over the header.
    assert_eq!((e.kind, e.retry_after), (ErrorKind::QuotaExhausted, Some(Duration::from_secs(13))));
    let e = ep.chat("gemini-2.5-flash", &req).await.unwrap_err();
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_secs(2))));
    let mut s = ep.stream("gemini-2.5-flash", &req).await.unwrap();
    let mut last = None;
    while let Some(ev) = s.next().await {
        last = Some(ev);
    }
    let e = last.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::StreamInterrupted);
    assert_eq!(e.partial.unwrap().text, "1, 2");
}
