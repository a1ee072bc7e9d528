//! A tiny HTTP/1.1 server on 127.0.0.1 that answers each connection with the next canned
//! response and records the request it got, for the `*_http` adapter tests.
//!
//! It is deliberately dumb (one request per connection, `Connection: close`), so a test can
//! say byte for byte what the provider "sent": a status, headers, a body in chunks, and
//! whether the connection is cut before the body ends. The shared mock server
//! (`tests/mock-server`) scripts higher-level behaviour; these tests replay recorded
//! provider bytes instead, which is what proves the adapters against the real formats.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub chunks: Vec<Vec<u8>>,
    /// Close the socket after the chunks without finishing the body (a cut connection).
    pub cut: bool,
}

impl Canned {
    pub fn json(status: u16, body: &serde_json::Value) -> Canned {
        Canned { status, headers: vec![("content-type".into(), "application/json".into())], chunks: vec![body.to_string().into_bytes()], cut: false }
    }
    /// An SSE body sent in pieces of `piece` bytes, so decoders see arbitrary splits.
    pub fn sse(body: &[u8], piece: usize) -> Canned {
        Canned {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: body.chunks(piece.max(1)).map(<[u8]>::to_vec).collect(),
            cut: false,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Canned {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn cut(mut self) -> Canned {
        self.cut = true;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub struct Loopback {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Loopback {
    /// Serve `responses` in order, one per connection; stops after the last.
    pub async fn start(responses: Vec<Canned>) -> Loopback {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            for canned in responses {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let Some(req) = read_request(&mut sock).await else { return };
                log.lock().unwrap().push(req);
                let mut head = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", canned.status);
                for (k, v) in &canned.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("transfer-encoding: chunked\r\n\r\n");
                if sock.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                for c in &canned.chunks {
                    let frame = [format!("{:x}\r\n", c.len()).into_bytes(), c.clone(), b"\r\n".to_vec()].concat();
                    if sock.write_all(&frame).await.is_err() {
                        break;
                    }
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if !canned.cut {
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                }
                let _ = sock.shutdown().await;
            }
        });
        Loopback { url, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Seen { method, target, headers, body })
}
