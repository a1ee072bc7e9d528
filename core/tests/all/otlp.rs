//! OpenTelemetry export against a real OTLP/HTTP receiver on loopback: the receiver parses
//! every export strictly with the official `opentelemetry-proto` definitions
//! (`tests/otlp-receiver/receiver.py`). `scripts/test.sh` provides that Python environment
//! and sets `POLYROUTE_REQUIRE_OTLP=1`, so in CI this cannot skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use polyroute::{ChatRequest, Message, Router};
use serde_json::Value;

struct Receiver {
    child: Child,
    url: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [std::env::var_os("POLYROUTE_OTLP_PYTHON").map(PathBuf::from), Some(root.join("target/tools-venv/bin/python"))];
    for c in candidates.into_iter().flatten() {
        if c.is_file() && Command::new(&c).args(["-c", "import opentelemetry.proto"]).status().is_ok_and(|s| s.success()) {
            return Some(c);
        }
    }
    if std::env::var("POLYROUTE_REQUIRE_OTLP").as_deref() == Ok("1") {
        panic!("POLYROUTE_REQUIRE_OTLP=1 but no Python with opentelemetry-proto was found");
    }
    None
}

fn start_receiver() -> Option<Receiver> {
    let py = python()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/otlp-receiver/receiver.py");
    let mut child = Command::new(py).arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start receiver");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("LISTENING ").expect("LISTENING line").to_string();
    Some(Receiver { child, url })
}

fn http_get(url: &str, path: &str) -> String {
    let hp = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(hp).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

fn http_post(url: &str, path: &str, body: &str) -> String {
    let hp = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(hp).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {hp}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_otlp_receiver_with_genai_attributes() {
    let Some(rx) = start_receiver() else {
        eprintln!("no Python with opentelemetry-proto; skipping (scripts/test.sh provides one)");
        return;
    };
    // The receiver really is strict: a span with a wrong-typed field is refused.
    let bad = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00","kind":"banana"}]}]}]}"#;
    let refused = http_post(&rx.url, "/v1/traces", bad);
    assert!(refused.lines().next().unwrap_or_default().contains(" 400 "), "{refused}");

    let y = format!(
        r#"
providers:
  pa: {{kind: mock, script: {{then: {{status: 500}}}}}}
  pb: {{kind: mock, script: {{then: {{text: "fine", usage: {{input_tokens: 12, output_tokens: 3}}}}}}}}
deployments:
  a: {{provider: pa, model: model-a}}
  b: {{provider: pb, model: model-b}}
routes:
  - {{name: main, deployments: [a, b], retry: {{attempts_per_deployment: 1}}}}
telemetry:
  otlp: {{endpoint: "{}", service_name: polyroute-test, headers: {{x-collector-token: test-token}}}}
"#,
        rx.url
    );
    let r = Router::from_policy_str(&y).unwrap();
    let resp = r.chat(ChatRequest::new(vec![Message::user("a secret prompt text")])).await.unwrap();
    assert_eq!(resp.content(), "fine");
    let mut s = r.stream(ChatRequest::new(vec![Message::user("stream please")])).await.unwrap();
    while let Some(ev) = s.next().await {
        ev.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans: Vec<Value> = loop {
        let spans: Vec<Value> = serde_json::from_str(&http_get(&rx.url, "/spans")).unwrap();
        if spans.len() >= 6 || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let errors: Vec<String> = serde_json::from_str(&http_get(&rx.url, "/errors")).unwrap();
    assert_eq!(errors.len(), 1, "only the deliberately bad payload may be refused: {errors:?}");
    assert_eq!(spans.len(), 6, "2 requests × (1 request span + 2 attempt spans): {spans:#?}");
    let attr = |s: &Value, k: &str| s["attrs"][k].clone();
    let requests: Vec<&Value> = spans.iter().filter(|s| s.get("parent_span_id").is_none()).collect();
    assert_eq!(requests.len(), 2);
    for req in &requests {
        assert_eq!(req["name"], "chat main");
        assert_eq!(attr(req, "gen_ai.operation.name"), "chat");
        assert_eq!(attr(req, "gen_ai.response.model"), "model-b");
        assert_eq!(req["resource"]["service.name"]["stringValue"], "polyroute-test");
        assert_eq!(req["headers"]["x-collector-token"], "test-token");
        let children: Vec<&Value> = spans.iter().filter(|s| s.get("parent_span_id") == req.get("span_id")).collect();
        assert_eq!(children.len(), 2, "two attempts under each request");
        for c in &children {
            assert_eq!(c["trace_id"], req["trace_id"]);
            assert_eq!(c["kind"], "SPAN_KIND_CLIENT");
            assert_eq!(attr(c, "gen_ai.operation.name"), "chat");
            assert_eq!(attr(c, "gen_ai.provider.name"), "openai", "mock providers speak the OpenAI wire format");
        }
        let failed = children.iter().find(|c| attr(c, "gen_ai.request.model") == "model-a").unwrap();
        assert_eq!(attr(failed, "error.type"), "server_error");
        assert_eq!(failed["status"]["code"], "STATUS_CODE_ERROR");
        let ok = children.iter().find(|c| attr(c, "gen_ai.request.model") == "model-b").unwrap();
        assert_eq!(attr(ok, "gen_ai.response.model"), "model-b");
        assert!(attr(ok, "error.type").is_null());
    }
    // the non-streamed request's served attempt carries its usage
    let usage_spans: Vec<&Value> = spans.iter().filter(|s| s["attrs"]["gen_ai.usage.input_tokens"] == "12").collect();
    assert!(!usage_spans.is_empty());
    assert!(spans.iter().any(|s| s["attrs"]["gen_ai.usage.output_tokens"] == "3"));
    // content is never recorded
    let all = serde_json::to_string(&spans).unwrap();
    assert!(!all.contains("secret prompt") && !all.contains("fine\""), "span content leaked");
}
