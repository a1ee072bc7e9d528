//! The gateway's connection limits as a misbehaving client meets them, over raw TCP (an HTTP
//! client library would not send half a request or sit on an idle socket): slow-loris heads
//! and trickled bodies get 408, oversized heads 431, connections past the limit 503, each in
//! OpenAI's error shape before the connection closes; idle keep-alive connections are closed
//! quietly; garbage is refused with a 400; the gateway serves on after every one of them.

mod common;

use std::time::{Duration, Instant};

use polyroute_mock_server::{start, MockServerHandle, ServerOptions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::Gateway;

async fn mock() -> MockServerHandle {
    start(ServerOptions { port: 0, log_capacity: 100 }).await.unwrap()
}

fn gateway(srv: &MockServerHandle, tag: &str, args: &[&str]) -> Gateway {
    let policy = format!(
        "providers: {{mock: {{kind: openai, base_url: \"{}\", api_key: \"sk-test-not-a-real-key\"}}}}\n\
         deployments: {{a: {{provider: mock, model: general}}}}\nroutes: [{{name: main, deployments: [a]}}]\n",
        srv.base_url()
    );
    Gateway::start(&format!("limits-{tag}"), &policy, args, &[])
}

const CHAT: &str = r#"{"model": "main", "messages": [{"role": "user", "content": "hello mock"}]}"#;

/// A complete request, as bytes.
fn request(extra_headers: &str, body: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// Everything the gateway sends until it closes the connection (or 10 s pass).
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status and JSON body of a raw response (`content-length` framed, as all of these are).
fn parse(raw: &str) -> (u16, Value, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response head in {raw:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null), head.to_ascii_lowercase())
}

/// One well-formed request on a fresh connection: the gateway still serves.
async fn still_serves(g: &Gateway) {
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    s.write_all(request("connection: close\r\n", CHAT).as_bytes()).await.unwrap();
    let (status, v, _) = parse(&read_to_close(&mut s).await);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion", "{v}");
}

fn assert_openai_error(raw: &str, status: u16, code: &str) {
    let (got, v, head) = parse(raw);
    assert_eq!(got, status, "{raw}");
    assert_eq!(v["error"]["code"], code, "{raw}");
    assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "{raw}");
    assert!(head.contains(&format!("x-polyroute-error-kind: {code}")), "{head}");
    assert!(head.contains("connection: close"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_bodies_get_408_and_idle_connections_close_quietly() {
    let srv = mock().await;
    let g = gateway(&srv, "slow", &["--idle-timeout", "0.5"]);

    // slow-loris: a head that never finishes
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ").await.unwrap();
    let t0 = Instant::now();
    let raw = read_to_close(&mut s).await;
    assert_openai_error(&raw, 408, "request_timeout");
    assert!(t0.elapsed() < Duration::from_secs(3), "closed after {:?}", t0.elapsed());

    // a body that stops halfway
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    let full = request("", CHAT);
    s.write_all(&full.as_bytes()[..full.len() - 10]).await.unwrap();
    assert_openai_error(&read_to_close(&mut s).await, 408, "request_timeout");

    // idle keep-alive: one answered request, then silence → closed without a word
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    s.write_all(request("", CHAT).as_bytes()).await.unwrap();
    let mut first = vec![0u8; 64 * 1024];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let t0 = Instant::now();
    let rest = read_to_close(&mut s).await;
    assert_eq!(rest, "", "an idle connection is closed, not answered");
    assert!(t0.elapsed() < Duration::from_secs(3), "idle connection closed after {:?}", t0.elapsed());

    // a connection that never sends anything is closed the same way
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    assert_eq!(read_to_close(&mut s).await, "");
    still_serves(&g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_garbage_gets_400() {
    let srv = mock().await;
    let g = gateway(&srv, "heads", &["--max-header-bytes", "4096"]);

    // over our limit: 431 in OpenAI's shape
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    let big = format!("x-big: {}\r\n", "a".repeat(6000));
    s.write_all(request(&big, CHAT).as_bytes()).await.unwrap();
    assert_openai_error(&read_to_close(&mut s).await, 431, "request_header_fields_too_large");

    // far over (past hyper's read buffer): hyper's own empty 431 and the connection closed;
    // with the rest of the head still unread the close can be a reset that discards the 431
    // before the client reads it, so either is accepted; what matters is that nothing breaks
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    let huge = format!("x-big: {}\r\n", "a".repeat(200_000));
    let _ = s.write_all(request(&huge, CHAT).as_bytes()).await;
    let raw = read_to_close(&mut s).await;
    assert!(raw.is_empty() || raw.starts_with("HTTP/1.1 431"), "{raw:?}");

    // not HTTP at all
    // (a TLS hello to the plain port, a broken header line, no HTTP at all)
    let tls: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n";
    for garbage in [tls, b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", b"HELLO\r\n\r\n"] {
        let mut s = TcpStream::connect(g.addr()).await.unwrap();
        let _ = s.write_all(garbage).await;
        let raw = read_to_close(&mut s).await;
        assert!(raw.is_empty() || raw.starts_with("HTTP/1.1 400"), "{garbage:?} → {raw:?}");
    }
    // a header value that is not text where the gateway reads it
    let mut s = TcpStream::connect(g.addr()).await.unwrap();
    let mut req = request("x-polyroute-tenant: caf\u{e9}\r\nconnection: close\r\n", CHAT).into_bytes();
    // latin-1 é, not UTF-8
    let at = req.windows(4).position(|w| w == b"caf\xc3").unwrap() + 3;
    req.splice(at..at + 2, [0xe9]);
    s.write_all(&req).await.unwrap();
    let (status, v, head) = parse(&read_to_close(&mut s).await);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    assert!(head.contains("x-polyroute-error-kind: invalid_request"), "{head}");
    still_serves(&g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_503_then_are_accepted_again() {
    let srv = mock().await;
    let g = gateway(&srv, "conns", &["--max-connections", "2"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(g.addr()).await.unwrap();
        // a request answered, so the gateway has certainly counted this connection
        s.write_all(request("", CHAT).as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = TcpStream::connect(g.addr()).await.unwrap();
    let raw = read_to_close(&mut third).await;
    assert_openai_error(&raw, 503, "overloaded");
    assert!(parse(&raw).2.contains("retry-after: 1"), "{raw}");
    drop(held.pop());
    // the freed place is taken again (the gateway sees the close within moments)
    let t0 = Instant::now();
    loop {
        let mut s = TcpStream::connect(g.addr()).await.unwrap();
        s.write_all(request("connection: close\r\n", CHAT).as_bytes()).await.unwrap();
        let (status, _, _) = parse(&read_to_close(&mut s).await);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(t0.elapsed() < Duration::from_secs(5), "the closed connection's place never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
