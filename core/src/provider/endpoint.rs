//! One attempt against one provider: adapter + transport.
//!
//! This is where bytes become unified events and where the "no silent truncation" rule is
//! enforced for every provider at once: whatever the adapter says, a byte stream that breaks
//! or ends before the adapter saw its completion signal yields `stream_interrupted` carrying
//! the partial output. Timeouts (first token, idle) belong to the router, which wraps this
//! stream; nothing here sleeps or retries.
//!
//! It is also where an answer is finished, so it checks what only a finished answer can
//! show: tool-call arguments must be JSON. A finished answer whose arguments are not (a
//! provider bug, or fragments of two messages spliced together) is `invalid_output`, which
//! the router retries or falls over like a schema violation, instead of handing the caller a
//! call it cannot run. Arguments cut by the output-token cap (`finish_reason: length`) are
//! exempt: the truncation is the caller's own limit, visible in the finish reason.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};

use super::ratelimit::LimitSink;
use super::transport::read_body;
use super::{Provider, StreamDecoder, Transport};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::sse::SseDecoder;
use crate::types::{ChatRequest, ChatResponse, FinishReason, StreamAccumulator, StreamEvent, ToolCall};

pub use super::transport::MAX_BODY_BYTES;
/// Error bodies are small; a huge one is read only this far for classification.
const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;

/// Unified events of one attempt. Ends after `Finish` (and a trailing `Usage`, if any);
/// an `Err` item ends it too.
pub type EventStream = BoxStream<'static, Result<StreamEvent>>;

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub provider: Arc<dyn Provider>,
    pub transport: Arc<dyn Transport>,
    /// Where what responses say about the remaining allowance goes (the deployment's
    /// health), with the clock that dates it. `None`: not read.
    limits: Option<(Arc<dyn LimitSink>, Arc<dyn Clock>)>,
}

impl Endpoint {
    pub fn new(provider: Arc<dyn Provider>, transport: Arc<dyn Transport>) -> Self {
        Endpoint { provider, transport, limits: None }
    }

    /// Read the provider's rate-limit headers off every response (success or error) into
    /// `sink`. One per deployment, so the limits land in the right place.
    pub fn with_limit_sink(mut self, sink: Arc<dyn LimitSink>, clock: Arc<dyn Clock>) -> Self {
        self.limits = Some((sink, clock));
        self
    }

    fn observe(&self, headers: &http::HeaderMap) {
        if let Some((sink, clock)) = &self.limits {
            let l = self.provider.rate_limits(headers, clock.unix_now());
            if !l.is_empty() {
                sink.observe(l);
            }
        }
    }

    /// One non-streamed attempt.
    pub async fn chat(&self, model: &str, req: &ChatRequest) -> Result<ChatResponse> {
        let p = &self.provider;
        let wire = p.build_request(model, req, false).map_err(|e| e.at(p.name(), model))?;
        crate::probe::mark("build request");
        let resp = self.transport.send(wire).await.map_err(|e| e.at(p.name(), model))?;
        crate::probe::mark("response head");
        self.observe(&resp.headers);
        if !(200..300).contains(&resp.status) {
            let body = read_error_body(resp.body).await;
            return Err(p.parse_error(model, resp.status, &resp.headers, &body).at(p.name(), model));
        }
        // A body that breaks after the headers still has the provider's request id: keep it,
        // it is what the provider's support asks for.
        let rid = request_id(&resp.headers);
        let body = read_body(resp.body, MAX_BODY_BYTES).await.map_err(|e| e.at(p.name(), model).with_request_id(rid.clone()))?;
        crate::probe::mark("response body");
        let mut r = p.parse_response(model, resp.status, &resp.headers, &body).map_err(|e| e.at(p.name(), model))?;
        crate::probe::mark("parse response");
        for c in &r.choices {
            check_tool_arguments(&c.message.tool_calls, c.finish_reason)
                .map_err(|e| e.with_status(resp.status).with_request_id(rid.clone()).at(p.name(), model))?;
        }
        if r.provider.is_none() {
            r.provider = Some(p.name().to_string());
        }
        Ok(r)
    }

    /// One streamed attempt. Resolves once the provider answered with headers: an HTTP error
    /// is returned here; failures after that arrive as an `Err` item in the stream.
    pub async fn stream(&self, model: &str, req: &ChatRequest) -> Result<EventStream> {
        let p = self.provider.clone();
        let wire = p.build_request(model, req, true).map_err(|e| e.at(p.name(), model))?;
        let resp = super::inline::outside(|| self.transport.send(wire)).await.map_err(|e| e.at(p.name(), model))?;
        self.observe(&resp.headers);
        if !(200..300).contains(&resp.status) {
            let body = read_error_body(resp.body).await;
            return Err(p.parse_error(model, resp.status, &resp.headers, &body).at(p.name(), model));
        }
        let state = StreamState {
            body: Some(resp.body),
            sse: SseDecoder::new(),
            decoder: p.stream_decoder(model),
            acc: StreamAccumulator::new(),
            decoded: StreamAccumulator::new(),
            pending: VecDeque::new(),
            provider: p.name().to_string(),
            model: model.to_string(),
            request_id: request_id(&resp.headers),
        };
        Ok(futures::stream::unfold(state, |mut st| async move { st.next().await.map(|item| (item, st)) }).boxed())
    }
}

/// Read an error body for classification; a body that breaks mid-way is still classified
/// by its status, so read failures are swallowed here on purpose.
async fn read_error_body(body: super::BodyStream) -> Vec<u8> {
    read_body(body, MAX_ERROR_BODY_BYTES).await.unwrap_or_default()
}

/// `invalid_output` unless every tool call's arguments are JSON (or empty: no arguments).
/// See the module docs for why `length` is exempt.
pub(crate) fn check_tool_arguments(calls: &[ToolCall], finish: Option<FinishReason>) -> Result<()> {
    if finish == Some(FinishReason::Length) {
        return Ok(());
    }
    for tc in calls {
        let args = tc.arguments.trim();
        if args.is_empty() {
            continue;
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(args) {
            return Err(Error::new(
                ErrorKind::InvalidOutput,
                format!("tool call `{}` ({}) has arguments that are not valid JSON ({e})", tc.name, tc.id),
            )
            .with_provider_code("tool_arguments_json"));
        }
    }
    Ok(())
}

pub(crate) fn request_id(h: &http::HeaderMap) -> Option<String> {
    use http::HeaderName;
    // Names, not `&str`s: a `&str` is parsed and checked on every lookup (~100 instructions
    // each, five per answer).
    static NAMES: [HeaderName; 5] = [
        HeaderName::from_static("x-request-id"),
        HeaderName::from_static("request-id"),
        HeaderName::from_static("apim-request-id"),
        HeaderName::from_static("x-goog-request-id"),
        HeaderName::from_static("cf-ray"),
    ];
    NAMES.iter().find_map(|n| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string))
}

struct StreamState {
    /// `None` once the body is exhausted or abandoned.
    body: Option<super::BodyStream>,
    sse: SseDecoder,
    decoder: Box<dyn StreamDecoder>,
    acc: StreamAccumulator,
    /// Everything the decoder produced so far (`acc` plus `pending`), to check the answer
    /// at its finish before the caller sees the finish.
    decoded: StreamAccumulator,
    pending: VecDeque<Result<StreamEvent>>,
    provider: String,
    model: String,
    request_id: Option<String>,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<StreamEvent>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if let Ok(ev) = &item {
                    self.acc.push(ev);
                }
                return Some(item);
            }
            let body = self.body.as_mut()?;
            let mut sse_events = Vec::new();
            let mut unified = Vec::new();
            let result: Result<()> = match body.next().await {
                Some(Ok(chunk)) => self.sse.feed(&chunk, &mut sse_events),
                Some(Err(e)) => {
                    // The connection broke mid-stream: whatever was decoded so far stands,
                    // then the stream is interrupted.
                    self.body = None;
                    Err(Error::new(ErrorKind::StreamInterrupted, format!("stream broke: {}", e.message)))
                }
                None => {
                    self.body = None;
                    self.sse.finish(&mut sse_events)
                }
            };
            let at_eof = self.body.is_none();
            let mut failure = result.err();
            if failure.is_none() || failure.as_ref().is_some_and(|e| e.kind == ErrorKind::StreamInterrupted) {
                for ev in &sse_events {
                    if self.decoder.is_done() {
                        break;
                    }
                    if let Err(e) = self.decoder.on_event(ev, &mut unified) {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if failure.is_none() && at_eof && !self.decoder.is_done() {
                if let Err(e) = self.decoder.on_end(&mut unified) {
                    failure = Some(e);
                }
            }
            for ev in unified {
                if let StreamEvent::Finish { reason, .. } = &ev {
                    if let Err(e) = check_tool_arguments(&self.decoded.tool_calls, Some(*reason)) {
                        failure = Some(e);
                        break;
                    }
                }
                self.decoded.push(&ev);
                self.pending.push_back(Ok(ev));
            }
            if let Some(e) = failure {
                self.body = None;
                self.pending.push_back(Err(self.decorate(e)));
            } else if self.decoder.is_done() {
                // Terminator seen: stop reading even if the server keeps the socket open.
                self.body = None;
            }
        }
    }

    /// Attach identity and what the caller already received (including events still queued
    /// ahead of this error, which the caller will receive first).
    fn decorate(&self, e: Error) -> Error {
        let mut acc = self.acc.clone();
        for ev in self.pending.iter().flatten() {
            acc.push(ev);
        }
        let mut e = e.at(&self.provider, &self.model);
        if e.request_id.is_none() {
            e.request_id = self.request_id.clone();
        }
        if e.kind == ErrorKind::StreamInterrupted || acc.saw_content() {
            e.partial = Some(Box::new(acc.partial()));
        }
        e
    }
}
