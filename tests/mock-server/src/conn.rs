//! One HTTP/1.1 connection, hand-rolled on a tokio `TcpStream`.
//!
//! Hand-rolled rather than hyper because the faults are the point: a server framework
//! would not let us close before the status line, send a malformed head, stop a chunked
//! body without its terminator, reset with RST or keep a socket open in silence. It also
//! keeps the per-request cost tiny for benchmarks at concurrency 512: keep-alive,
//! pipelining (leftover bytes stay in the buffer), zero-delay pieces coalesced into one
//! write, `TCP_NODELAY` so SSE events leave at once.
//!
//! While the plan sleeps or hangs, the socket is still read: that is how a client that gives
//! up (a timeout, a hedged request cancelled) is noticed and logged at the moment it leaves,
//! and bytes it pipelines meanwhile are kept for the next request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use polyroute::provider::mock::{render, render_bad_request, route, BodyFraming, MockRequest, MockStep, PlanEnding, PlanHead, ResponsePlan};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::control;
use crate::state::{LogEntry, Shared, CREDENTIAL_HEADERS};

/// Request head larger than this is refused (431).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Request bodies larger than this are refused (413).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Bytes buffered from a client while we are not reading requests (hang, stall).
const MAX_IDLE_BUFFER: usize = 1024 * 1024;

pub(crate) struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lower-case names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A reply that is not a provider plan (control API, routing errors).
pub(crate) struct SimpleResponse {
    pub status: u16,
    pub body: Value,
}

impl SimpleResponse {
    pub fn json(status: u16, body: Value) -> Self {
        SimpleResponse { status, body }
    }
}

enum Read {
    Request(Request),
    Closed,
    Bad(u16, &'static str),
}

pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    shared: Arc<Shared>,
    id: u64,
}

impl Conn {
    pub fn new(stream: TcpStream, shared: Arc<Shared>) -> Self {
        let id = shared.next_connection_id();
        Conn { stream, buf: BytesMut::with_capacity(8 * 1024), shared, id }
    }

    /// Serve requests until the client leaves or a plan ends the connection.
    pub async fn serve(mut self) {
        loop {
            let req = match self.read_request().await {
                Ok(Read::Request(r)) => r,
                Ok(Read::Closed) | Err(_) => return,
                Ok(Read::Bad(status, why)) => {
                    let _ = self.write_simple(&SimpleResponse::json(status, json!({"error": {"message": why}})), false).await;
                    return;
                }
            };
            let keep = if req.target.starts_with("/_mock/") || req.target == "/_mock" {
                let resp = control::handle(&self.shared, &req);
                self.write_simple(&resp, req.keep_alive).await.is_ok() && req.keep_alive
            } else {
                self.provider(req).await
            };
            if !keep {
                return;
            }
        }
    }

    /// Read more bytes into the buffer; `false` on EOF or error.
    async fn fill(&mut self) -> bool {
        matches!(self.stream.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    async fn read_request(&mut self) -> std::io::Result<Read> {
        let (method, target, headers, head_len) = loop {
            if !self.buf.is_empty() {
                let mut hs = [httparse::EMPTY_HEADER; 128];
                let mut r = httparse::Request::new(&mut hs);
                match r.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let headers: Vec<(String, String)> =
                            r.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
                        let version = r.version.unwrap_or(1);
                        let method = r.method.unwrap_or("GET").to_string();
                        let target = r.path.unwrap_or("/").to_string();
                        break (method, target, (version, headers), n);
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD_BYTES => return Ok(Read::Bad(431, "request head too large")),
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Ok(Read::Bad(431, "too many headers")),
                    Err(_) => return Ok(Read::Bad(400, "malformed request head")),
                }
            }
            if !self.fill().await {
                return Ok(Read::Closed);
            }
        };
        let (version, headers) = headers;
        self.buf.advance(head_len);
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_ascii_lowercase());
        let conn_hdr = get("connection").unwrap_or_default();
        let keep_alive = if version == 0 { conn_hdr.contains("keep-alive") } else { !conn_hdr.contains("close") };
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length = match get("content-length") {
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) => n,
                Err(_) => return Ok(Read::Bad(400, "invalid content-length")),
            },
            None => 0,
        };
        if length > MAX_BODY_BYTES {
            return Ok(Read::Bad(413, "request body too large"));
        }
        if get("expect").is_some_and(|v| v == "100-continue") && (chunked || self.buf.len() < length) {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let body = if chunked {
            match self.read_chunked().await {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(Read::Closed),
                Err(why) => return Ok(Read::Bad(400, why)),
            }
        } else {
            while self.buf.len() < length {
                if !self.fill().await {
                    return Ok(Read::Closed);
                }
            }
            self.buf.split_to(length).to_vec()
        };
        Ok(Read::Request(Request { method, target, headers, body, keep_alive }))
    }

    /// Decode a chunked request body. `Ok(None)`: the client left mid-body.
    async fn read_chunked(&mut self) -> Result<Option<Vec<u8>>, &'static str> {
        let mut body = Vec::new();
        loop {
            let (idx, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((i, s))) => break (i, s),
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD_BYTES => return Err("chunk size line too long"),
                    Ok(httparse::Status::Partial) => {
                        if !self.fill().await {
                            return Ok(None);
                        }
                    }
                    Err(_) => return Err("malformed chunk size"),
                }
            };
            let size = usize::try_from(size).map_err(|_| "chunk too large")?;
            if size == 0 {
                // Trailers (ignored) end with an empty line.
                loop {
                    if self.buf.len() >= idx + 2 && &self.buf[idx..idx + 2] == b"\r\n" {
                        self.buf.advance(idx + 2);
                        return Ok(Some(body));
                    }
                    if let Some(p) = self.buf[idx..].windows(4).position(|w| w == b"\r\n\r\n") {
                        self.buf.advance(idx + p + 4);
                        return Ok(Some(body));
                    }
                    if self.buf.len() > MAX_HEAD_BYTES {
                        return Err("trailers too long");
                    }
                    if !self.fill().await {
                        return Ok(None);
                    }
                }
            }
            if body.len() + size > MAX_BODY_BYTES {
                return Err("request body too large");
            }
            let need = idx + size + 2;
            while self.buf.len() < need {
                if !self.fill().await {
                    return Ok(None);
                }
            }
            if &self.buf[idx + size..need] != b"\r\n" {
                return Err("chunk not followed by CRLF");
            }
            body.extend_from_slice(&self.buf[idx..idx + size]);
            self.buf.advance(need);
        }
    }

    async fn write_simple(&mut self, r: &SimpleResponse, keep_alive: bool) -> std::io::Result<()> {
        let body = serde_json::to_vec(&r.body).unwrap_or_default();
        let headers = vec![("content-type".to_string(), "application/json".to_string())];
        let mut out = response_head(r.status, &headers, BodyFraming::Length(body.len()), keep_alive);
        out.extend_from_slice(&body);
        self.stream.write_all(&out).await
    }

    /// Wait `d` while watching the socket. `false`: the client left.
    async fn pause(&mut self, d: Duration) -> bool {
        if d.is_zero() {
            return true;
        }
        let deadline = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return true,
                r = self.stream.read_buf(&mut self.buf) => match r {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => self.cap_idle_buffer(),
                },
            }
        }
    }

    /// Keep the socket open, sending nothing, until the client leaves.
    async fn hold(&mut self) {
        loop {
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => self.cap_idle_buffer(),
            }
        }
    }

    fn cap_idle_buffer(&mut self) {
        if self.buf.len() > MAX_IDLE_BUFFER {
            self.buf.clear();
        }
    }

    /// A provider request: pick the step, plan, log, play. Returns whether to keep the
    /// connection for another request.
    async fn provider(&mut self, req: Request) -> bool {
        let shared = self.shared.clone();
        let received_ms = shared.now_ms();
        let (path, query) = match req.target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (req.target.clone(), None),
        };
        let key_in_query = query.as_deref().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("key=")));
        let mut entry = LogEntry {
            seq: 0,
            connection: self.id,
            script: None,
            model: None,
            method: req.method.clone(),
            path: path.clone(),
            query: query.as_deref().map(redact_query),
            format: "unknown".into(),
            api: "unknown".into(),
            stream: false,
            step_index: None,
            script_attempt: None,
            received_ms,
            headers_sent_ms: None,
            finished_ms: None,
            outcome: String::new(),
            client_disconnected: false,
            auth_present: key_in_query || req.headers.iter().any(|(k, _)| CREDENTIAL_HEADERS.contains(&k.as_str())),
            headers: redacted_headers(&req.headers),
            body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
        };

        let Some(rt) = route(&req.target) else {
            entry.outcome = "no_route".into();
            let slot = shared.log_push(entry);
            let resp = SimpleResponse::json(
                404,
                json!({"error": {"message": format!("mock server has no route for {} {}", req.method, path),
                    "type": "invalid_request_error", "param": null, "code": "unknown_url"}}),
            );
            let ok = self.write_simple(&resp, req.keep_alive).await.is_ok();
            let now = shared.now_ms();
            shared.log_update(slot, |e| {
                e.headers_sent_ms = Some(now);
                e.finished_ms = Some(now);
            });
            return ok && req.keep_alive;
        };
        entry.format = format_name(rt.format).into();
        entry.api = rt.api.into();
        entry.model = rt.model.clone().or_else(|| entry.body.get("model").and_then(Value::as_str).map(str::to_string));
        entry.stream = rt.stream.unwrap_or_else(|| entry.body.get("stream").and_then(Value::as_bool).unwrap_or(false));

        if req.method != "POST" {
            entry.outcome = "method_not_allowed".into();
            let slot = shared.log_push(entry);
            let resp = SimpleResponse::json(405, json!({"error": {"message": format!("{} needs POST", path)}}));
            let ok = self.write_simple(&resp, req.keep_alive).await.is_ok();
            let now = shared.now_ms();
            shared.log_update(slot, |e| e.finished_ms = Some(now));
            return ok && req.keep_alive;
        }

        let parsed = match rt.unsupported {
            Some(why) => Err(why.to_string()),
            None => MockRequest::parse(&rt, &req.body),
        };
        let script_name = req.header("x-mock-script").map(str::to_string).or_else(|| entry.model.clone());
        let runner = script_name.as_deref().and_then(|n| shared.script(n));
        let plan_input = match parsed {
            Ok(mreq) => {
                let selected = runner.as_ref().map(|r| r.next());
                if runner.is_some() {
                    entry.script = script_name;
                }
                entry.step_index = selected.as_ref().and_then(|s| s.step_index);
                entry.script_attempt = selected.as_ref().map(|s| s.attempt);
                Ok((mreq, selected.map(|s| s.step)))
            }
            Err(why) => Err(why),
        };
        let slot = shared.log_push(entry);
        let plan = match plan_input {
            Ok((mreq, step)) => {
                let default_step;
                let step: &MockStep = match &step {
                    Some(s) => s,
                    None => {
                        default_step = MockStep::default();
                        &default_step
                    }
                };
                render(step, &mreq, slot.seq)
            }
            Err(why) => render_bad_request(rt.format, &why, slot.seq),
        };
        shared.log_update(slot, |e| e.outcome = plan.outcome.clone());
        let played = self.play(plan, req.keep_alive).await;
        let now = shared.now_ms();
        shared.log_update(slot, |e| {
            e.headers_sent_ms = played.headers_sent_ms;
            e.finished_ms = Some(now);
            e.client_disconnected = played.client_left;
        });
        played.keep_alive
    }

    /// Play a plan on the socket.
    async fn play(&mut self, plan: ResponsePlan, keep_alive: bool) -> Played {
        let shared = self.shared.clone();
        let mut played = Played { headers_sent_ms: None, client_left: false, keep_alive: false };
        if !self.pause(plan.delay_before_headers).await {
            played.client_left = true;
            return played;
        }
        let (status, headers, framing) = match plan.head {
            // Dropping the socket closes it: FIN before any byte.
            PlanHead::Drop => return played,
            PlanHead::Hang => {
                self.hold().await;
                played.client_left = true;
                return played;
            }
            PlanHead::Garbage(bytes) => {
                played.client_left = self.stream.write_all(&bytes).await.is_err();
                played.headers_sent_ms = Some(shared.now_ms());
                return played;
            }
            PlanHead::Respond { status, headers, framing } => (status, headers, framing),
        };
        let keep = keep_alive && plan.ending == PlanEnding::Complete;
        let chunked = framing == BodyFraming::Chunked;
        let mut out = response_head(status, &headers, framing, keep);
        let mut first = true;
        for c in plan.chunks {
            if !c.delay.is_zero() {
                // Flush what is pending before going quiet.
                if !out.is_empty() {
                    if self.stream.write_all(&out).await.is_err() {
                        played.client_left = true;
                        return played;
                    }
                    out.clear();
                    if first {
                        played.headers_sent_ms = Some(shared.now_ms());
                        first = false;
                    }
                }
                if !self.pause(c.delay).await {
                    played.client_left = true;
                    return played;
                }
            }
            if chunked {
                out.extend_from_slice(format!("{:x}\r\n", c.data.len()).as_bytes());
                out.extend_from_slice(&c.data);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(&c.data);
            }
        }
        if plan.ending == PlanEnding::Complete && chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        if !out.is_empty() {
            if self.stream.write_all(&out).await.is_err() {
                played.client_left = true;
                return played;
            }
            if first {
                played.headers_sent_ms = Some(shared.now_ms());
            }
        }
        match plan.ending {
            PlanEnding::Complete => played.keep_alive = keep,
            PlanEnding::Close => {
                let _ = self.stream.flush().await;
            }
            PlanEnding::Reset => {
                // SO_LINGER 0: close() sends RST instead of FIN.
                let _ = self.stream.set_zero_linger();
            }
            PlanEnding::Hang => {
                self.hold().await;
                played.client_left = true;
            }
        }
        played
    }
}

struct Played {
    headers_sent_ms: Option<f64>,
    client_left: bool,
    keep_alive: bool,
}

fn format_name(f: polyroute::provider::mock::WireFormat) -> &'static str {
    use polyroute::provider::mock::WireFormat::*;
    match f {
        OpenAi => "openai",
        Anthropic => "anthropic",
        Gemini => "gemini",
    }
}

fn redacted_headers(headers: &[(String, String)]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in headers {
        if CREDENTIAL_HEADERS.contains(&k.as_str()) {
            continue;
        }
        out.entry(k.clone())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    out
}

fn redact_query(q: &str) -> String {
    q.split('&').map(|kv| if kv.starts_with("key=") { "key=[redacted]" } else { kv }).collect::<Vec<_>>().join("&")
}

fn reason(status: u16) -> &'static str {
    match status {
        529 => "Site Overloaded",
        _ => http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Unknown"),
    }
}

/// Status line and headers, including framing and connection headers.
pub(crate) fn response_head(status: u16, headers: &[(String, String)], framing: BodyFraming, keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Length(n) => out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes()),
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(if keep_alive { b"connection: keep-alive\r\n" as &[u8] } else { b"connection: close\r\n" });
    out.extend_from_slice(b"server: polyroute-mock\r\n\r\n");
    out
}
