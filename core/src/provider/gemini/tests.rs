//! Unit tests for Gemini translation rules that fixtures do not exercise.

use serde_json::json;

use super::*;
use crate::provider::{Provider, ProviderKind};
use crate::types::{Message, ToolCall};

fn provider() -> GeminiProvider {
    GeminiProvider::new(
        ProviderConfig::new("gemini", ProviderKind::Gemini, "https://generativelanguage.googleapis.com").with_api_key("sk-test-not-a-real-key"),
    )
}

#[test]
fn url_header_and_model_prefix() {
    let p = provider();
    let req = ChatRequest::new(vec![Message::user("q")]);
    let w = p.build_request("models/gemini-2.5-flash", &req, true).unwrap();
    assert_eq!(w.url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert!(!w.url.contains("key="));
    assert!(w.headers["x-goog-api-key"].is_sensitive());
    assert!(!format!("{w:?}").contains("sk-test-not-a-real-key"));
    let w = p.build_request("gemini-2.5-flash", &req, false).unwrap();
    assert!(w.url.ends_with("/v1beta/models/gemini-2.5-flash:generateContent"));
    assert_eq!(p.build_request("../x?y", &req, false).unwrap_err().kind, ErrorKind::InvalidRequest);
}

#[test]
fn tool_results_map_back_to_names_and_signatures_replay() {
    let mut a = Message::assistant_tool_calls(vec![
        ToolCall { id: "call_a".into(), name: "get_weather".into(), arguments: "{\"city\":\"Paris\"}".into() },
        ToolCall { id: "call_b".into(), name: "get_time".into(), arguments: "".into() },
    ]);
    a.reasoning_signature = Some("gemini:SIG".into());
    let req = ChatRequest::new(vec![
        Message::system("sys"),
        Message::user("q"),
        a,
        Message::tool_result("call_b", "12:00"),
        Message::tool_result("call_a", "{\"temp\": 20}"),
    ]);
    let b = provider().request_json(&req).unwrap();
    assert_eq!(b["systemInstruction"], json!({"parts": [{"text": "sys"}]}));
    let c = b["contents"].as_array().unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c[1]["role"], "model");
    assert_eq!(c[1]["parts"][0], json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "SIG"}));
    assert_eq!(c[1]["parts"][1], json!({"functionCall": {"name": "get_time", "args": {}}}));
    assert_eq!(c[2]["parts"][0], json!({"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}}));
    assert_eq!(c[2]["parts"][1], json!({"functionResponse": {"name": "get_weather", "response": {"temp": 20}}}));

    let orphan = ChatRequest::new(vec![Message::user("q"), Message::tool_result("nope", "x")]);
    assert_eq!(provider().request_json(&orphan).unwrap_err().kind, ErrorKind::InvalidRequest);
}

#[test]
fn foreign_calls_get_the_skip_signature() {
    let req = ChatRequest::new(vec![
        Message::user("q"),
        Message::assistant_tool_calls(vec![ToolCall { id: "toolu_1".into(), name: "f".into(), arguments: "{}".into() }]),
        Message::tool_result("toolu_1", "ok"),
    ]);
    let b = provider().request_json(&req).unwrap();
    assert_eq!(b["contents"][1]["parts"][0]["thoughtSignature"], SKIP_SIGNATURE);
}

fn err(status: u16, body: serde_json::Value) -> Error {
    provider().parse_error("m", status, &HeaderMap::new(), body.to_string().as_bytes())
}

#[test]
fn error_classification() {
    let per_day = json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]}});
    let e = err(429, per_day);
    assert_eq!(e.kind, ErrorKind::QuotaExhausted);
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(13)));
    assert_eq!(e.provider_code.as_deref(), Some("RESOURCE_EXHAUSTED"));
    let per_min = json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}]}});
    let e = err(429, per_min);
    assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(std::time::Duration::from_millis(500))));
    let bad_key = json!({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
    assert_eq!(err(400, bad_key).kind, ErrorKind::Auth);
    assert_eq!(err(503, json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})).kind, ErrorKind::Overloaded);
    assert_eq!(err(400, json!({"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}})).kind, ErrorKind::ContextLengthExceeded);
    assert_eq!(
        err(400, json!({"error": {"code": 400, "message": "User location is not supported for the API use.", "status": "FAILED_PRECONDITION"}})).kind,
        ErrorKind::PermissionDenied
    );
    assert_eq!(err(500, json!([{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}])).kind, ErrorKind::ServerError);
    assert_eq!(err(502, json!("garbage")).kind, ErrorKind::ServerError);
}

#[test]
fn prompt_block_is_content_filter_error() {
    let body = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}});
    let e = provider().parse_response("m", 200, &HeaderMap::new(), body.to_string().as_bytes()).unwrap_err();
    assert_eq!((e.kind, e.provider_code.as_deref()), (ErrorKind::ContentFilter, Some("SAFETY")));
}
