//! One OpenAI chat-completions call answered in-process, for the drop-in transports that sit
//! under the openai SDKs (Python's httpx transport): request bytes and headers in, the
//! status, headers and body an OpenAI server would send out. No sockets: the transport hands
//! these to its HTTP client library as a response.
//!
//! Built from the same pieces as the `polyroute serve` gateway ([`super::openai_in`] for the
//! request, [`super::wire`] for the answer), so a transport and the gateway answer a request
//! alike. A stream's body is an [`SseHandle`]: the router stream behind a [`StreamHandle`]
//! (closable from any thread, cancelled when dropped) and an [`SseWriter`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::cancel::CancelToken;
use super::openai_in::{parse_request, OpenAiRequest};
use super::stream::StreamHandle;
use super::wire::{endpoint_not_found, error_headers, openai_error, response_body, response_headers, stream_headers, SseWriter};
use crate::error::Error;
use crate::router::{ChatStream, Router};

/// At most this many frames go out in one read (a bound on one read's bytes).
const READY_FRAMES: usize = 256;

/// What an OpenAI server would answer.
pub struct OpenAiReply {
    pub status: u16,
    /// Lowercase names; values are ASCII.
    pub headers: Vec<(&'static str, String)>,
    pub body: OpenAiBody,
}

/// A reply's body: JSON bytes, or a stream of SSE frames.
pub enum OpenAiBody {
    Json(Vec<u8>),
    Sse(SseHandle),
}

impl std::fmt::Debug for OpenAiReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            OpenAiBody::Json(b) => format!("{} bytes of JSON", b.len()),
            OpenAiBody::Sse(_) => "an SSE stream".into(),
        };
        f.debug_struct("OpenAiReply").field("status", &self.status).field("headers", &self.headers).field("body", &body).finish()
    }
}

fn now() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The request's headers as the core reads them, from a host's `(name, value)` pairs. A
/// name that is not a header name cannot come from an HTTP client and is skipped; a value is
/// kept as bytes, so one that is not text reaches [`parse_request`], which answers the
/// caller's `invalid_request` if it reads it.
pub fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()), HeaderValue::from_bytes(value.as_bytes())) {
            h.append(n, v);
        }
    }
    h
}

fn json_reply(status: u16, body: &serde_json::Value, extra: Vec<(&'static str, String)>) -> OpenAiReply {
    let mut headers = vec![("content-type", "application/json".to_string())];
    headers.extend(extra);
    OpenAiReply { status, headers, body: OpenAiBody::Json(body.to_string().into_bytes()) }
}

/// A failure as OpenAI's status, headers and error body.
pub fn error_reply(e: &Error) -> OpenAiReply {
    let (status, body) = openai_error(e);
    json_reply(status, &body, error_headers(e, now().as_secs_f64()))
}

/// The caller's 404 for a path that is not served (the gateway's and the transports'), with
/// `message` as the error's message.
pub fn not_found_reply(message: &str) -> OpenAiReply {
    let (status, body) = endpoint_not_found(message);
    json_reply(status, &body, vec![("x-polyroute-error-kind", crate::ErrorKind::NotFound.code().to_string())])
}

/// Whether an OpenAI request body asks for a stream (`"stream": true` at any depth), without
/// parsing it: a binding's hint for how to wait on the reply ([`handle`] parses the body), so
/// a rare false positive (a nested key of that name) only picks the other, equally correct,
/// way.
pub fn asks_to_stream(body: &[u8]) -> bool {
    fn skip_space(s: &[u8]) -> &[u8] {
        &s[s.iter().take_while(|b| b.is_ascii_whitespace()).count()..]
    }
    const KEY: &[u8] = b"\"stream\"";
    body.windows(KEY.len()).enumerate().filter(|(_, w)| *w == KEY).any(|(at, _)| match skip_space(&body[at + KEY.len()..]) {
        [b':', value @ ..] => skip_space(value).starts_with(b"true"),
        _ => false,
    })
}

/// Answer one `POST /v1/chat/completions`: parse `body` and `headers` as the gateway does
/// (no access keys: an in-process caller is trusted), route it, and return the reply. A
/// stream is returned once it has committed (first content; failures before it fail over
/// invisibly) or has failed (then an error reply, like a non-streamed failure). Never fails:
/// every error is a reply.
pub async fn handle(router: &Router, body: &[u8], headers: &HeaderMap) -> OpenAiReply {
    match parse_request(body, headers, None) {
        Ok(req) => reply(router, req).await,
        Err(e) => error_reply(&e),
    }
}

/// Route a parsed request and return the reply (see [`handle`]).
pub async fn reply(router: &Router, req: OpenAiRequest) -> OpenAiReply {
    if req.stream {
        return match router.stream(req.request).await {
            Ok(s) => stream_reply(s, req.include_usage),
            Err(e) => error_reply(&e),
        };
    }
    let resp = match router.chat(req.request).await {
        Ok(r) => r,
        Err(e) => return error_reply(&e),
    };
    match response_body(&resp) {
        Ok(b) => {
            let mut headers = vec![("content-type", "application/json".to_string())];
            headers.extend(response_headers(&resp));
            OpenAiReply { status: 200, headers, body: OpenAiBody::Json(b) }
        }
        Err(e) => error_reply(&e),
    }
}

/// A committed stream's reply. Its headers leave before the trace is complete: route and
/// deployment, no cost or explanation (as with the gateway).
fn stream_reply(s: ChatStream, include_usage: bool) -> OpenAiReply {
    let mut headers = vec![("content-type", "text/event-stream".to_string()), ("cache-control", "no-cache".to_string())];
    headers.extend(stream_headers(s.head()));
    OpenAiReply { status: 200, headers, body: OpenAiBody::Sse(SseHandle::new(s, include_usage)) }
}

/// A stream's SSE frames, one read at a time, from any thread; see [`SseWriter`] for how it
/// ends. Dropping or closing it cancels the request.
pub struct SseHandle {
    handle: StreamHandle,
    writer: Arc<Mutex<SseWriter>>,
}

impl SseHandle {
    pub fn new(stream: ChatStream, include_usage: bool) -> SseHandle {
        SseHandle {
            handle: StreamHandle::new(stream, CancelToken::new()),
            writer: Arc::new(Mutex::new(SseWriter::new(now().as_secs(), include_usage))),
        }
    }

    /// The next frame's bytes, with those of the events that had already arrived behind it,
    /// `None` after the last one (or once closed). Never fails: a failure is a frame. The
    /// future owns what it needs, so a host can spawn it.
    pub fn next_frame(&self) -> impl Future<Output = Option<Vec<u8>>> + Send + 'static {
        let writer = self.writer.clone();
        let handle = self.handle.reader();
        async move {
            loop {
                if writer.lock().unwrap_or_else(|p| p.into_inner()).is_done() {
                    return None;
                }
                let item = handle.next_event().await.transpose();
                // Closed by the host: end quietly, as the handle does (never a `[DONE]`: the
                // answer did not end).
                if handle.is_closed() {
                    return None;
                }
                let first = writer.lock().unwrap_or_else(|p| p.into_inner()).feed(item);
                if let Some(mut bytes) = first {
                    // With the frames of what had already arrived: a host's read is a crossing
                    // (a thread hand-off, an event-loop trip) and a burst then takes one.
                    let ready = handle.ready_soon(READY_FRAMES).await;
                    let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                    for ev in ready {
                        if let Some(more) = w.feed(Some(Ok(ev))) {
                            bytes.extend_from_slice(&more);
                        }
                    }
                    return Some(bytes);
                }
            }
        }
    }

    /// Stop the stream and cancel its request. Idempotent (see [`StreamHandle::close`]).
    pub fn close(&self) {
        self.handle.close();
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The route trace, once the stream is over.
    pub fn trace(&self) -> Option<crate::types::RouteTrace> {
        self.handle.trace()
    }
}
