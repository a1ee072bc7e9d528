//! Helpers shared by the mock server's tests: start a server, speak raw HTTP where a client
//! library would hide the fault (a FIN vs an RST, a missing chunked terminator, a socket
//! left open), and decode what came back.

#![allow(dead_code)]

use std::time::Duration;

use polyroute::provider::mock::MockScript;
use polyroute::sse::{SseDecoder, SseEvent};
use polyroute_mock_server::{start, MockServerHandle, ServerOptions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn server() -> MockServerHandle {
    start(ServerOptions::default()).await.expect("bind loopback")
}

pub fn script(json: &str) -> MockScript {
    MockScript::from_json(json).expect("valid script")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// An HTTP/1.1 POST with a JSON body.
pub fn post(path: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

pub fn chat_body(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "stream_options": if stream { serde_json::json!({"include_usage": true}) } else { Value::Null },
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello mock"}],
    })
    .to_string()
}

/// How a raw read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Orderly close (FIN).
    Eof,
    /// Connection reset (RST).
    Reset,
    /// Still open and silent when we stopped waiting.
    Open,
}

/// Read until the server closes, resets, or is silent for `quiet`.
pub async fn read_all(s: &mut TcpStream, quiet: Duration) -> (Vec<u8>, End) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(quiet, s.read(&mut buf)).await {
            Err(_) => return (out, End::Open),
            Ok(Ok(0)) => return (out, End::Eof),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, End::Reset),
            Ok(Err(e)) => panic!("read failed: {e}"),
        }
    }
}

pub async fn send_raw(addr: std::net::SocketAddr, req: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    s
}

/// A parsed raw response: status line, lower-case headers, body (de-chunked), and whether
/// the chunked body had its terminating zero-size chunk.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub complete: bool,
    /// Bytes after this response (a pipelined next response).
    pub rest: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn sse(&self) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.feed(&self.body, &mut out).unwrap();
        d.finish(&mut out).unwrap();
        out
    }
}

pub fn parse_response(bytes: &[u8]) -> RawResponse {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hs);
    let n = match r.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("incomplete or bad head ({other:?}): {:?}", String::from_utf8_lossy(bytes)),
    };
    let headers: Vec<(String, String)> =
        r.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
    let status = r.code.unwrap();
    let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let rest = &bytes[n..];
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        let mut i = 0;
        loop {
            match httparse::parse_chunk_size(&rest[i..]) {
                Ok(httparse::Status::Complete((idx, 0))) => {
                    let end = i + idx + 2;
                    return RawResponse { status, headers, body, complete: true, rest: rest[end.min(rest.len())..].to_vec() };
                }
                Ok(httparse::Status::Complete((idx, size))) => {
                    let start = i + idx;
                    let end = (start + size as usize).min(rest.len());
                    body.extend_from_slice(&rest[start..end]);
                    if start + size as usize + 2 > rest.len() {
                        return RawResponse { status, headers, body, complete: false, rest: Vec::new() };
                    }
                    i = start + size as usize + 2;
                }
                _ => return RawResponse { status, headers, body, complete: false, rest: Vec::new() },
            }
        }
    }
    let len: usize = get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let have = rest.len().min(len);
    RawResponse { status, headers, body: rest[..have].to_vec(), complete: have == len, rest: rest[have..].to_vec() }
}

/// Poll the log until `pred` holds (the server updates entries as attempts finish).
pub async fn wait_log(srv: &MockServerHandle, pred: impl Fn(&[polyroute_mock_server::LogEntry]) -> bool) -> Vec<polyroute_mock_server::LogEntry> {
    for _ in 0..200 {
        let log = srv.log();
        if pred(&log) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("log never satisfied the condition: {:#?}", srv.log());
}
