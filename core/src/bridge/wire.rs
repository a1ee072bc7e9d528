//! The OpenAI chat-completions wire format on the way out: stream events as
//! `chat.completion.chunk` objects, and errors as the HTTP status and `{"error": {...}}` body
//! that make an OpenAI client raise its own typed exception.
//!
//! In the core (not in the gateway) because every OpenAI-shaped surface needs the same table:
//! the `polyroute serve` gateway, and the drop-in transports for the openai SDKs. One table
//! means a kind reaches every client as the same status and code.

use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::types::{ChatResponse, FinishReason, StreamEvent, StreamHead};

/// Seconds since the epoch, what OpenAI stamps as `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The HTTP status an OpenAI client should see for a failure of this kind.
///
/// Failures of the providers behind the router are the gateway's upstream failures (502, 503,
/// 504), never the caller's 401/403: the caller's own credentials were fine, and an SDK that
/// sees 401 tells its user to fix a key they cannot fix.
pub fn openai_status(kind: ErrorKind) -> u16 {
    use ErrorKind::*;
    match kind {
        InvalidRequest | ContextLengthExceeded | ContentFilter | GuardRejected => 400,
        NoRoute => 404,
        RateLimited | QuotaExhausted | BudgetExceeded => 429,
        Cancelled => 499,
        Config => 500,
        ServerError | Connection | Auth | PermissionDenied | NotFound | StreamInterrupted | MalformedResponse | InvalidOutput => 502,
        Overloaded | CircuitOpen | StateUnavailable => 503,
        Timeout => 504,
    }
}

/// OpenAI's `error.type` for the status (what its SDKs and proxies branch on besides status).
fn openai_type(status: u16) -> &'static str {
    match status {
        400 | 404 => "invalid_request_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

/// `(status, body)` for an error. `error.code` is the Polyroute kind (stable, documented),
/// `error.message` the core's message; `polyroute` carries what OpenAI's shape has no room
/// for (provider, model, the provider's own code, the retry hint, the explanation).
pub fn openai_error(e: &Error) -> (u16, Value) {
    let status = openai_status(e.kind);
    let mut extra = Map::new();
    extra.insert("kind".into(), e.kind.code().into());
    for (k, v) in [("provider", &e.provider), ("model", &e.model), ("provider_code", &e.provider_code)] {
        if let Some(v) = v {
            extra.insert(k.into(), v.clone().into());
        }
    }
    if let Some(s) = e.status {
        extra.insert("provider_status".into(), s.into());
    }
    if let Some(r) = e.retry_after {
        extra.insert("retry_after".into(), json!(r.as_secs_f64()));
    }
    if let Some(t) = &e.trace {
        extra.insert("explanation".into(), t.explanation.clone().into());
    }
    let body = json!({
        "error": {"message": e.message, "type": openai_type(status), "param": null, "code": e.kind.code()},
        "polyroute": extra,
    });
    (status, body)
}

/// `(status, body)` for a path the OpenAI surface does not serve: the caller's 404 (the
/// `not_found` kind alone means a provider's, a 502).
pub fn endpoint_not_found(message: &str) -> (u16, Value) {
    let (_, mut body) = openai_error(&Error::new(ErrorKind::NotFound, message));
    // The caller's 404, typed as OpenAI types it (the `not_found` kind alone is a provider's,
    // a 502 and a server error).
    body["error"]["type"] = openai_type(404).into();
    (404, body)
}

/// A header value from any text: printable ASCII kept, anything else as `?` (explanations
/// quote names in backticks and use `×`; header values cannot carry UTF-8 reliably).
pub fn header_text(s: &str) -> String {
    s.chars().map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' }).collect()
}

/// The `x-polyroute-*` headers of a successful answer: route, deployment, explanation (from
/// its trace) and cost, each [`header_text`].
pub fn response_headers(resp: &ChatResponse) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if let Some(t) = resp.trace.as_deref() {
        h.push(("x-polyroute-route", header_text(&t.route)));
        if let Some(d) = &t.served_by {
            h.push(("x-polyroute-deployment", header_text(d)));
        }
        h.push(("x-polyroute-explanation", header_text(&t.explanation)));
    }
    if let Some(c) = resp.cost_usd {
        h.push(("x-polyroute-cost-usd", format!("{c}")));
    }
    h
}

/// The `x-polyroute-*` headers of a stream, which leave before its trace is complete: the
/// route and the deployment that committed (none for a cache hit); no cost or explanation.
pub fn stream_headers(head: &StreamHead) -> Vec<(&'static str, String)> {
    let mut h = vec![("x-polyroute-route", header_text(&head.route))];
    if let Some(d) = &head.deployment {
        h.push(("x-polyroute-deployment", header_text(d)));
    }
    h
}

/// The headers of an error answer: `x-polyroute-error-kind`, `retry-after` (seconds, rounded
/// up: a client that waits less would be refused again; a budget's reset time when the error
/// has no hint of its own; `now_unix` is the wall clock for that), and the route and
/// explanation when the error has a trace.
pub fn error_headers(e: &Error, now_unix: f64) -> Vec<(&'static str, String)> {
    let mut h = vec![("x-polyroute-error-kind", e.kind.code().to_string())];
    let wait = e.retry_after.map(|d| d.as_secs_f64()).or_else(|| e.budget.as_ref().map(|b| (b.resets_at - now_unix).max(0.0)));
    if let Some(secs) = wait {
        h.push(("retry-after", format!("{}", secs.ceil() as u64)));
    }
    if let Some(t) = &e.trace {
        h.push(("x-polyroute-route", header_text(&t.route)));
        h.push(("x-polyroute-explanation", header_text(&t.explanation)));
    }
    h
}

/// A non-streamed answer's body: the response as OpenAI's `chat.completion` JSON (with the
/// Polyroute additions `provider`, `cost_usd` and `trace`, which OpenAI clients ignore).
pub fn response_body(resp: &ChatResponse) -> Result<Vec<u8>> {
    crate::json_out::to_vec(resp, 1024).map_err(|e| Error::malformed(format!("cannot encode the answer as JSON: {e}")))
}

/// One stream as OpenAI's SSE body: feed it the router stream's items, in order, and `None`
/// at its end; it answers the bytes to send (if any). The stream ends with `data: [DONE]`
/// after a clean end, or with an `{"error": ...}` event and no `[DONE]` after a failure (the
/// SDKs raise on it: never a truncated success). A `reset` (`stream_recovery: restart`) cannot
/// be expressed in OpenAI's format and ends the stream the same way.
#[derive(Debug, Clone)]
pub struct SseWriter {
    chunks: ChunkWriter,
    done: bool,
}

impl SseWriter {
    pub fn new(created: u64, include_usage: bool) -> SseWriter {
        SseWriter { chunks: ChunkWriter::new(created, include_usage), done: false }
    }

    /// The bytes for the next item (`None` = the router stream ended); `None` when the item
    /// has no OpenAI form, and for everything after the last frame.
    pub fn feed(&mut self, item: Option<Result<StreamEvent>>) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        match item {
            Some(Ok(StreamEvent::Reset { reason })) => {
                let msg = format!("the answer restarted on another deployment, which the OpenAI stream format cannot express: {reason}");
                self.fail(&Error::new(ErrorKind::StreamInterrupted, msg))
            }
            Some(Ok(ev)) => self.chunks.chunk(&ev).map(|c| frame(&c)),
            Some(Err(e)) => self.fail(&e),
            None => {
                self.done = true;
                Some(b"data: [DONE]\n\n".to_vec())
            }
        }
    }

    /// Whether the last frame (`[DONE]` or the error) has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn fail(&mut self, e: &Error) -> Option<Vec<u8>> {
        self.done = true;
        Some(frame(&openai_error(e).1))
    }
}

fn frame(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

/// Turns a router stream into OpenAI chunks, one event at a time.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
}

impl ChunkWriter {
    /// `created` is the unix time OpenAI stamps on every chunk; `include_usage` is the
    /// request's `stream_options.include_usage` (without it OpenAI sends no usage chunk).
    pub fn new(created: u64, include_usage: bool) -> ChunkWriter {
        ChunkWriter { id: "chatcmpl-polyroute".into(), model: String::new(), created, include_usage }
    }

    /// The chunk for `ev`, if OpenAI's format has one (`None` for usage when not asked for).
    /// A `reset` has no OpenAI form: the caller ends the stream with an error instead.
    pub fn chunk(&mut self, ev: &StreamEvent) -> Option<Value> {
        let delta = match ev {
            StreamEvent::Start { id, model } => {
                if !id.is_empty() {
                    self.id = id.clone();
                }
                self.model = model.clone();
                json!({"role": "assistant", "content": ""})
            }
            StreamEvent::ContentDelta { text } => json!({"content": text}),
            StreamEvent::RefusalDelta { text } => json!({"refusal": text}),
            StreamEvent::ReasoningDelta { text, .. } => json!({"reasoning_content": text}),
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                let mut call = Map::new();
                call.insert("index".into(), (*index).into());
                if let Some(id) = id {
                    call.insert("id".into(), id.clone().into());
                    call.insert("type".into(), "function".into());
                }
                let mut f = Map::new();
                if let Some(n) = name {
                    f.insert("name".into(), n.clone().into());
                }
                f.insert("arguments".into(), arguments.clone().into());
                call.insert("function".into(), Value::Object(f));
                json!({"tool_calls": [Value::Object(call)]})
            }
            StreamEvent::Finish { reason, native } => return Some(self.frame(json!({}), Some(finish(*reason, native.as_deref())))),
            StreamEvent::Usage { usage } => {
                return self.include_usage.then(|| {
                    let mut c = self.frame(json!({}), None);
                    c["choices"] = json!([]);
                    c["usage"] = usage.to_openai();
                    c
                })
            }
            StreamEvent::Reset { .. } => return None,
        };
        Some(self.frame(delta, None))
    }

    fn frame(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        })
    }
}

/// OpenAI's own finish reasons only: its clients reject others in strict parsers.
fn finish(reason: FinishReason, native: Option<&str>) -> &'static str {
    match (reason, native) {
        (FinishReason::Other, Some("function_call")) => "function_call",
        (FinishReason::Other, _) => "stop",
        (r, _) => r.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Usage;

    #[test]
    fn every_kind_has_a_status_and_upstream_failures_are_never_401() {
        for k in ErrorKind::ALL {
            let s = openai_status(k);
            assert!((400..600).contains(&s), "{k}");
            assert!(s != 401 && s != 403, "{k}: the caller's credentials were fine");
        }
        let (s, body) = openai_error(&Error::new(ErrorKind::RateLimited, "slow down"));
        assert_eq!(s, 429);
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["polyroute"]["kind"], "rate_limited");
    }

    #[test]
    fn sse_ends_with_done_or_with_an_error_event_and_nothing_after() {
        let mut w = SseWriter::new(1, false);
        assert!(w.feed(Some(Ok(StreamEvent::Start { id: "a".into(), model: "m".into() }))).is_some());
        assert!(w.feed(Some(Ok(StreamEvent::Usage { usage: Usage::default() }))).is_none(), "usage not asked for");
        assert!(!w.is_done());
        assert_eq!(w.feed(None).unwrap(), b"data: [DONE]\n\n");
        assert!(w.is_done() && w.feed(None).is_none());
        let mut w = SseWriter::new(1, false);
        let cut = w.feed(Some(Err(Error::new(ErrorKind::StreamInterrupted, "cut")))).unwrap();
        let v: Value = serde_json::from_slice(cut.strip_prefix(b"data: ").unwrap()).unwrap();
        assert_eq!(v["error"]["code"], "stream_interrupted");
        assert!(w.feed(None).is_none(), "no [DONE] after an error");
        let mut w = SseWriter::new(1, false);
        let reset = w.feed(Some(Ok(StreamEvent::Reset { reason: "r".into() }))).unwrap();
        assert!(String::from_utf8(reset).unwrap().contains("stream_interrupted"));
    }

    #[test]
    fn headers_are_ascii_and_carry_the_kind_and_the_wait() {
        assert_eq!(header_text("`a` × b\n"), "`a` ? b?");
        let mut e = Error::new(ErrorKind::RateLimited, "slow");
        e.retry_after = Some(std::time::Duration::from_millis(1200));
        let h = error_headers(&e, 0.0);
        assert!(h.contains(&("x-polyroute-error-kind", "rate_limited".into())));
        assert!(h.contains(&("retry-after", "2".into())));
        let (s, body) = endpoint_not_found("no such path");
        assert_eq!((s, body["error"]["code"].as_str()), (404, Some("not_found")));
    }

    #[test]
    fn chunks_follow_openai() {
        let mut w = ChunkWriter::new(7, true);
        let start = w.chunk(&StreamEvent::Start { id: "x1".into(), model: "m".into() }).unwrap();
        assert_eq!(start["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        let c = w.chunk(&StreamEvent::ContentDelta { text: "hi".into() }).unwrap();
        assert_eq!((c["id"].as_str(), c["model"].as_str(), c["created"].as_u64()), (Some("x1"), Some("m"), Some(7)));
        let t = w.chunk(&StreamEvent::ToolCallDelta { index: 0, id: Some("c".into()), name: Some("f".into()), arguments: "{".into() }).unwrap();
        assert_eq!(
            t["choices"][0]["delta"]["tool_calls"][0],
            json!({"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}})
        );
        let f = w.chunk(&StreamEvent::Finish { reason: FinishReason::Other, native: Some("pause_turn".into()) }).unwrap();
        assert_eq!(f["choices"][0]["finish_reason"], "stop");
        let u = w.chunk(&StreamEvent::Usage { usage: Usage { input_tokens: 2, output_tokens: 3, ..Default::default() } }).unwrap();
        assert_eq!((u["choices"].as_array().map(Vec::len), u["usage"]["total_tokens"].as_u64()), (Some(0), Some(5)));
        assert!(ChunkWriter::new(7, false).chunk(&StreamEvent::Usage { usage: Usage::default() }).is_none());
    }
}
