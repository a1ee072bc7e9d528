//! `polyroute serve` as a client sees it: the real binary, started on a loopback port, in
//! front of the loopback mock server; plain HTTP from reqwest (the official SDKs are tested
//! against the same binary by `server/tests/sdk/`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use polyroute::provider::mock::MockScript;
use polyroute_mock_server::{start, MockServerHandle, ServerOptions};
use serde_json::{json, Value};

use common::Gateway;

fn policy_text(v1: &str, route_name: &str) -> String {
    format!(
        r#"
providers: {{mock: {{kind: openai, base_url: "{v1}", api_key: "sk-test-not-a-real-key"}}}}
deployments:
  a: {{provider: mock, model: primary}}
  b: {{provider: mock, model: fallback}}
  slow: {{provider: mock, model: slow}}
  cut: {{provider: mock, model: cutter}}
  busy: {{provider: mock, model: busy}}
routes:
  - {{name: {route_name}, deployments: [a, b], retry: {{attempts_per_deployment: 1, base_delay: 10ms, max_delay: 20ms}}}}
  - {{name: slow, deployments: [slow]}}
  - {{name: cutting, deployments: [cut], retry: {{attempts_per_deployment: 1}}}}
  - {{name: busy, deployments: [busy], retry: {{attempts_per_deployment: 1, max_retry_after: 1s}}}}
default_route: {route_name}
"#
    )
}

fn script(v: Value) -> MockScript {
    serde_json::from_value(v).unwrap()
}

async fn mock() -> MockServerHandle {
    let srv = start(ServerOptions { port: 0, log_capacity: 10_000 }).await.unwrap();
    srv.set_script("primary", script(json!({"then": {"status": 503}}))).unwrap();
    srv.set_script("slow", script(json!({"then": {"text": "one two three four five", "chunk_delay_ms": 150}}))).unwrap();
    srv.set_script("cutter", script(json!({"then": {"text": "one two three four five", "fault": {"cut_after": {"chunks": 2}}}}))).unwrap();
    srv.set_script("busy", script(json!({"then": {"status": 429, "retry_after": "7"}}))).unwrap();
    srv
}

fn gateway(srv: &MockServerHandle, tag: &str) -> Gateway {
    gateway_with(srv, tag, &[])
}

fn gateway_with(srv: &MockServerHandle, tag: &str, extra: &[&str]) -> Gateway {
    let mut args = vec!["--grace", "10"];
    args.extend_from_slice(extra);
    Gateway::start(tag, &policy_text(&srv.base_url(), "main"), &args, &[])
}

fn body(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

async fn post(g: &Gateway, v: &Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("{}/v1/chat/completions", g.url)).json(v).send().await.unwrap()
}

/// `data:` payloads of an SSE body, in order.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_stream_fail_over_in_openai_format() {
    let srv = mock().await;
    let g = gateway(&srv, "failover");
    let r = post(&g, &body("hello mock")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-polyroute-deployment"], "b");
    assert_eq!(r.headers()["x-polyroute-route"], "main");
    assert!(r.headers()["x-polyroute-explanation"].to_str().unwrap().contains("after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello mock");

    // a stream: the primary's 503 is invisible, chunks then usage then [DONE]
    let mut b = body("hello mock");
    b["stream"] = json!(true);
    b["stream_options"] = json!({"include_usage": true});
    let r = post(&g, &b).await;
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (200, "text/event-stream"));
    // Known when the stream commits: route and deployment (cost and explanation are not).
    assert_eq!((r.headers()["x-polyroute-route"].to_str().unwrap(), r.headers()["x-polyroute-deployment"].to_str().unwrap()), ("main", "b"));
    let ev = events(&r.text().await.unwrap());
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = ev[..ev.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "echo: hello mock");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = chunks.iter().find(|c| c["usage"].is_object()).expect("a usage chunk when include_usage");
    assert_eq!(usage["usage"]["completion_tokens"], 3);

    // a cut after content ends the stream with an error event, never [DONE]
    let mut b = body("hello mock");
    b["stream"] = json!(true);
    b["model"] = json!("cutting");
    let ev = events(&post(&g, &b).await.text().await.unwrap());
    let last: Value = serde_json::from_str(ev.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{ev:?}");
    assert!(!ev.iter().any(|e| e == "[DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_openai_shaped_with_status_and_retry_after() {
    let srv = mock().await;
    let g = gateway(&srv, "errors");
    let mut b = body("hello mock");
    b["model"] = json!("busy");
    let r = post(&g, &b).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-polyroute-error-kind"], "rate_limited");
    assert_eq!(r.headers()["retry-after"], "7");
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["error"]["code"].as_str(), v["error"]["type"].as_str()), (Some("rate_limited"), Some("rate_limit_error")));

    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", g.url);
    let r = client.post(&url).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_request");
    let r = client.post(&url).json(&json!({"messages": "nope"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let big = "x".repeat(9 * 1024 * 1024);
    let r = client.post(&url).json(&body(&big)).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    let r = client.get(format!("{}/v2/nothing", g.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // the caller's mistake, typed as OpenAI types a 404 (not the provider-side not_found's 502)
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    // routing metadata from a header: an unknown route is a typed 404
    let r = client.post(&url).header("x-polyroute-route", "nowhere").json(&body("hi")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-polyroute-error-kind"].to_str().unwrap()), (404, "no_route"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_metrics_and_health() {
    let srv = mock().await;
    let g = gateway(&srv, "meta");
    let c = reqwest::Client::new();
    let m: Value = c.get(format!("{}/v1/models", g.url)).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = m["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"main") && ids.contains(&"b"), "{ids:?}");
    post(&g, &body("hello mock")).await;
    let text = c.get(format!("{}/metrics", g.url)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"polyroute_requests_total{route="main""#), "{text}");
    assert_eq!(c.get(format!("{}/healthz", g.url)).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("{}/readyz", g.url)).send().await.unwrap().status(), 200);
}

/// SIGHUP and a file change reload atomically; an invalid file keeps the old policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_on_sighup_and_invalid_file_keeps_serving() {
    let srv = mock().await;
    let g = gateway(&srv, "reload");
    let c = reqwest::Client::new();
    let has_route = |name: &'static str| {
        let (c, url) = (c.clone(), g.url.clone());
        async move {
            let m: Value = c.get(format!("{url}/v1/models")).send().await.unwrap().json().await.unwrap();
            m["data"].as_array().unwrap().iter().any(|d| d["id"] == name)
        }
    };
    std::fs::write(&g.policy, policy_text(&srv.base_url(), "renamed")).unwrap();
    g.signal("HUP");
    assert!(wait_for(|| has_route("renamed")).await, "the new policy serves after SIGHUP");
    std::fs::write(&g.policy, "routes: [{name: broken").unwrap();
    g.signal("HUP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(has_route("renamed").await, "an invalid file leaves the previous policy serving");
    assert_eq!(post(&g, &body("hello mock")).await.status(), 200);
}

/// SIGTERM: a stream in flight completes; new requests get 503; the process exits 0 once the
/// stream is done (well before the grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_streams() {
    let srv = mock().await;
    let mut g = gateway(&srv, "drain");
    let mut b = body("x");
    b["stream"] = json!(true);
    b["model"] = json!("slow");
    let r = post(&g, &b).await;
    assert_eq!(r.status(), 200);
    g.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // still listening while draining: a new request gets a 503 it can retry elsewhere (and
    // its connection closed), and /readyz takes the instance out of a load balancer
    let c = reqwest::Client::new();
    let r2 = c.post(format!("{}/v1/chat/completions", g.url)).json(&body("hi")).send().await.unwrap();
    assert_eq!(r2.status(), 503);
    assert_eq!(r2.headers()["connection"], "close");
    assert_eq!(r2.json::<Value>().await.unwrap()["error"]["code"], "overloaded");
    assert_eq!(c.get(format!("{}/readyz", g.url)).send().await.unwrap().status(), 503);
    let ev = events(&r.text().await.unwrap());
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"), "the in-flight stream completed: {ev:?}");
    let t0 = Instant::now();
    loop {
        if let Some(status) = g.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the gateway did not exit after draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for<F, Fut>(f: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn check_reports_every_problem_with_its_path() {
    let dir = std::env::temp_dir().join(format!("polyroute-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, policy_text("http://127.0.0.1:9/v1", "main")).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "deployments: {a: {provider: nope, model: m}}\nroutes: [{name: main, deployments: [a, ghost]}]\n").unwrap();
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_polyroute")).args(args).output().unwrap();
    let ok = run(&["check", good.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let out = run(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("deployments.a.provider") && text.contains("routes[0].deployments[1]"), "{text}");
    let out = run(&["check", bad.to_str().unwrap(), "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["problems"].as_array().unwrap().len() >= 2);
    // plan: where it would go, nothing sent
    let req = dir.join("req.json");
    std::fs::write(&req, r#"{"messages": [{"role": "user", "content": "hi"}]}"#).unwrap();
    let out = run(&["plan", good.to_str().unwrap(), "--request", req.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["route"], "main");
    assert_eq!(p["order"], json!(["a", "b"]));
}

/// `--max-concurrent`: requests beyond the limit get a 503 in OpenAI's shape at once (never
/// a queue); a stream holds its slot until its last byte, and a freed slot is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_refuses_with_503_and_frees_slots() {
    let srv = mock().await;
    let g = gateway_with(&srv, "limit", &["--max-concurrent", "2"]);
    let mut slow = body("x");
    slow["stream"] = json!(true);
    slow["model"] = json!("slow");
    let (a, b) = (post(&g, &slow).await, post(&g, &slow).await);
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let third = post(&g, &body("hello mock")).await;
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "1");
    let v: Value = third.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded");
    assert!(v["error"]["message"].as_str().unwrap().contains("limit of 2"), "{v}");
    // the streams finish, their slots come back
    for r in [a, b] {
        assert_eq!(events(&r.text().await.unwrap()).last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!(post(&g, &body("hello mock")).await.status(), 200);
}
