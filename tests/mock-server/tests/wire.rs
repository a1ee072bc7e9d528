//! Each wire format over real HTTP with reqwest: routes, success bodies, streams, error
//! bodies and headers, exactly as a provider SDK would see them.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn openai_json_and_stream() {
    let srv = server().await;
    let c = client();
    let r = c.post(format!("{}/chat/completions", srv.base_url())).body(chat_body("gpt-t", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["x-request-id"], "req_mock0");
    let v: Value = r.json_value().await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello mock");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // prompt: "be brief" + "hello mock" = 4 words; completion: 3 words
    assert_eq!(v["usage"], json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}));

    let r = c.post(format!("{}/chat/completions", srv.base_url())).body(chat_body("gpt-t", true)).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let body = r.text().await.unwrap();
    let datas: Vec<&str> = body.split("\n\n").filter(|s| !s.is_empty()).collect();
    assert_eq!(datas.last(), Some(&"data: [DONE]"));
    assert!(datas.iter().all(|d| d.starts_with("data: ")));
    let text: String = datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(&d[6..]).unwrap())
        .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_string))
        .collect();
    assert_eq!(text, "echo: hello mock");
    assert!(body.contains(r#""usage":{"completion_tokens":3,"prompt_tokens":4,"total_tokens":7}"#));
}

#[tokio::test]
async fn azure_deployment_is_the_model() {
    let srv = server().await;
    srv.set_script("my-deploy", script(r#"{"then":{"text":"from azure"}}"#)).unwrap();
    let body = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    let r = client()
        .post(format!("{}/openai/deployments/my-deploy/chat/completions?api-version=2024-10-21", srv.url()))
        .header("api-key", "sk-test-not-a-real-key")
        .body(body)
        .send()
        .await
        .unwrap();
    let v: Value = r.json_value().await;
    assert_eq!(v["choices"][0]["message"]["content"], "from azure");
    assert_eq!(v["model"], "my-deploy");
    let log = srv.log();
    assert_eq!((log[0].api.as_str(), log[0].format.as_str(), log[0].model.as_deref()), ("azure", "openai", Some("my-deploy")));
    assert_eq!(log[0].script.as_deref(), Some("my-deploy"));
    assert!(log[0].auth_present);
    assert_eq!(log[0].query.as_deref(), Some("api-version=2024-10-21"));
}

#[tokio::test]
async fn anthropic_json_and_stream() {
    let srv = server().await;
    srv.set_script(
        "claude-t",
        script(r#"{"steps":[{"text":"Hello there","tool_calls":[{"name":"get_weather","arguments":{"location":"Paris"}}]}]}"#),
    )
    .unwrap();
    let c = client();
    let req = |stream: bool| {
        json!({"model": "claude-t", "max_tokens": 100, "stream": stream, "system": "be brief",
               "messages": [{"role": "user", "content": "hello mock"}]})
        .to_string()
    };
    let r = c.post(format!("{}/v1/messages", srv.url())).header("x-api-key", "sk-test-not-a-real-key").body(req(false)).send().await.unwrap();
    assert_eq!(r.headers()["request-id"], "req_mock0");
    let v: Value = r.json_value().await;
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0], json!({"type": "text", "text": "Hello there"}));
    assert_eq!(v["content"][1]["type"], "tool_use");
    assert_eq!(v["content"][1]["input"], json!({"location": "Paris"}));
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 5);

    let r = c.post(format!("{}/v1/messages", srv.url())).body(req(true)).send().await.unwrap();
    let raw = r.bytes().await.unwrap();
    let resp = RawResponse { status: 200, headers: vec![], body: raw.to_vec(), complete: true, rest: vec![] };
    let names: Vec<String> = resp.sse().iter().map(|e| e.event.clone().unwrap_or_default()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(names.contains(&"ping".to_string()));
    let text: String = resp
        .sse()
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v.pointer("/delta/text").and_then(Value::as_str).map(str::to_string))
        .collect();
    assert_eq!(text, "echo: hello mock", "steps ran out: the default echo reply");
}

#[tokio::test]
async fn gemini_generate_and_stream() {
    let srv = server().await;
    let c = client();
    let body = json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "hello mock"}]}]})
    .to_string();
    let r =
        c.post(format!("{}/v1beta/models/gemini-t:generateContent?key=sk-test-not-a-real-key", srv.url())).body(body.clone()).send().await.unwrap();
    let v: Value = r.json_value().await;
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "echo: hello mock");
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"], json!({"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7}));
    assert_eq!(v["modelVersion"], "gemini-t");

    let r = c.post(format!("{}/v1beta/models/gemini-t:streamGenerateContent?alt=sse", srv.url())).body(body.clone()).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let raw = r.text().await.unwrap();
    assert!(raw.contains("\r\n\r\ndata: "), "CRLF-separated events like the real API");
    let events: Vec<Value> = raw.split("\r\n\r\n").filter(|s| !s.is_empty()).map(|s| serde_json::from_str(&s[6..]).unwrap()).collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[3]["candidates"][0]["finishReason"], "STOP");

    // Without alt=sse Gemini would stream a JSON array; the mock refuses clearly.
    let r = c.post(format!("{}/v1beta/models/gemini-t:streamGenerateContent", srv.url())).body(body).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json_value().await;
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");

    let log = srv.log();
    assert_eq!(log[0].query.as_deref(), Some("key=[redacted]"));
    assert!(log[0].auth_present);
    assert!(!serde_json::to_string(&log).unwrap().contains("sk-test-not-a-real-key"));
    assert_eq!(log.iter().map(|e| e.stream).collect::<Vec<_>>(), [false, true, true]);
    assert_eq!(log[2].outcome, "bad_request");
}

#[tokio::test]
async fn error_bodies_per_format() {
    let srv = server().await;
    let s = r#"{"then":{"status":429,"retry_after":"2","retry_after_ms":2000}}"#;
    for name in ["o", "a", "g"] {
        srv.set_script(name, script(s)).unwrap();
    }
    let c = client();
    let r = c.post(format!("{}/chat/completions", srv.base_url())).body(chat_body("o", false)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!((&r.headers()["retry-after"], &r.headers()["retry-after-ms"]), (&"2".parse().unwrap(), &"2000".parse().unwrap()));
    let v: Value = r.json_value().await;
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(v["error"].as_object().unwrap().contains_key("param"));

    let r = c
        .post(format!("{}/v1/messages", srv.url()))
        .body(json!({"model": "a", "messages": [{"role": "user", "content": "x"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json_value().await;
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")));

    let r = c
        .post(format!("{}/v1beta/models/g:generateContent", srv.url()))
        .body(json!({"contents": [{"parts": [{"text": "x"}]}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json_value().await;
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    let retry = v["error"]["details"].as_array().unwrap().iter().find(|d| d["@type"].as_str().unwrap().ends_with("RetryInfo")).cloned();
    assert_eq!(retry.unwrap()["retryDelay"], "2s");

    // Anthropic overload: 529 with overloaded_error.
    srv.set_script("a", script(r#"{"then":{"error_type":"overloaded_error"}}"#)).unwrap();
    let r = c
        .post(format!("{}/v1/messages", srv.url()))
        .body(json!({"model": "a", "messages": [{"role": "user", "content": "x"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
    let v: Value = r.json_value().await;
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn bad_requests_and_unknown_routes() {
    let srv = server().await;
    let c = client();
    let r = c.post(format!("{}/chat/completions", srv.base_url())).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json_value().await;
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let r = c.post(format!("{}/v1/embeddings", srv.url())).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(format!("{}/v1/chat/completions", srv.url())).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let outcomes: Vec<_> = srv.log().into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, ["bad_request", "no_route", "method_not_allowed"]);
}

/// reqwest's `json()` needs a feature the workspace does not enable; parse by hand.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let b = self.bytes().await.unwrap();
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&b)))
    }
}
