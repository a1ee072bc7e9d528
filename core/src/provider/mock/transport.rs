//! The in-process mock transport: plays a [`ResponsePlan`] without a socket.
//!
//! It stands where [`super::super::HttpTransport`] stands and fails the way reqwest does
//! against the loopback server (a drop or garbage head is a `connection` error from `send`,
//! a cut body yields an `Err` item of kind `connection` which the endpoint turns into
//! `stream_interrupted`, a stall or hang is a future that never resolves). Delays use tokio
//! time, so tests under a paused clock run instantly and deterministically.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use super::plan::{render, render_bad_request, PlanChunk, PlanEnding, PlanHead, ResponsePlan};
use super::request::{route, MockRequest, MockRoute, WireFormat};
use super::script::{MockScript, ScriptRunner};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::{BodyStream, Transport, WireRequest, WireResponse};

/// One attempt the transport saw.
#[derive(Debug, Clone, PartialEq)]
pub struct MockCall {
    /// Time since the transport was created (tokio time: exact under a paused clock).
    pub at: Duration,
    /// Which step served it (`None`: `then` / default reply).
    pub step_index: Option<usize>,
    /// What the plan did (`ok`, `status:429`, `drop`, `cut`, ...).
    pub outcome: String,
    /// URL path and query of the request.
    pub path: String,
    /// The request body as JSON (`Null` if it was not JSON).
    pub body: Value,
}

#[derive(Debug)]
struct Inner {
    runner: RwLock<Arc<ScriptRunner>>,
    seq: AtomicU64,
    created: Instant,
    calls: Mutex<Vec<MockCall>>,
}

/// A [`Transport`] that answers from a [`MockScript`]. Cloning shares the script position,
/// so a router and a test can hold the same transport.
#[derive(Debug, Clone)]
pub struct MockTransport {
    inner: Arc<Inner>,
}

impl MockTransport {
    pub fn new(script: MockScript) -> MockTransport {
        MockTransport {
            inner: Arc::new(Inner {
                runner: RwLock::new(Arc::new(ScriptRunner::new(script))),
                seq: AtomicU64::new(0),
                created: Instant::now(),
                calls: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Replace the script; its step counter and timeline restart now.
    pub fn set_script(&self, script: MockScript) {
        *self.inner.runner.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ScriptRunner::new(script));
    }

    /// Attempts seen (all scripts).
    pub fn attempts(&self) -> usize {
        self.calls().len()
    }

    /// Every attempt, in arrival order.
    pub fn calls(&self) -> Vec<MockCall> {
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// An endpoint that parses with the OpenAI adapter (kind `mock`) and sends here.
    pub fn endpoint(&self, name: &str) -> crate::provider::Endpoint {
        let cfg = crate::provider::ProviderConfig::new(name, crate::provider::ProviderKind::Mock, "mock://local/v1");
        crate::provider::Endpoint::new(Arc::new(crate::provider::openai::OpenAiProvider::new(cfg)), Arc::new(self.clone()))
    }

    /// Plan the reply to one request, recording the attempt.
    fn plan(&self, req: &WireRequest) -> ResponsePlan {
        let path = path_of(&req.url).to_string();
        // Anything that is not a known provider path is treated as OpenAI: the mock kind
        // is parsed by the OpenAI adapter, whatever base URL it was configured with.
        let r = route(&path).unwrap_or(MockRoute { format: WireFormat::OpenAi, api: "openai", model: None, stream: None, unsupported: None });
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let (plan, step_index) = match (r.unsupported, MockRequest::parse(&r, &req.body)) {
            (Some(why), _) => (render_bad_request(r.format, why, seq), None),
            (None, Err(why)) => (render_bad_request(r.format, &why, seq), None),
            (None, Ok(mreq)) => {
                let runner = self.inner.runner.read().unwrap_or_else(|p| p.into_inner()).clone();
                let sel = runner.next();
                (render(&sel.step, &mreq, seq), sel.step_index)
            }
        };
        let call = MockCall { at: self.inner.created.elapsed(), step_index, outcome: plan.outcome.clone(), path, body };
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call);
        plan
    }
}

/// Build an endpoint named `name` backed by a fresh [`MockTransport`] playing `script`.
pub fn mock_endpoint(name: &str, script: MockScript) -> crate::provider::Endpoint {
    MockTransport::new(script).endpoint(name)
}

/// `scheme://authority/path?q` → `/path?q`.
fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    }
}

fn conn_err(msg: &str) -> Error {
    Error::new(ErrorKind::Connection, msg)
}

impl Transport for MockTransport {
    fn send(&self, req: WireRequest) -> BoxFuture<'static, Result<WireResponse>> {
        let this = self.clone();
        Box::pin(async move {
            let plan = this.plan(&req);
            tokio::time::sleep(plan.delay_before_headers).await;
            let (status, headers) = match plan.head {
                PlanHead::Drop => return Err(conn_err("connection closed before response headers (mock drop)")),
                PlanHead::Hang => return futures::future::pending().await,
                PlanHead::Garbage(_) => return Err(conn_err("invalid HTTP response head (mock garbage_headers)")),
                PlanHead::Respond { status, headers, .. } => (status, headers),
            };
            let mut hm = HeaderMap::new();
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                    hm.append(k, v);
                }
            }
            Ok(WireResponse { status, headers: hm, body: body_stream(plan.chunks, plan.ending) })
        })
    }
}

/// The body as the network would deliver it: each chunk after its delay, then the ending.
fn body_stream(chunks: Vec<PlanChunk>, ending: PlanEnding) -> BodyStream {
    let state = (VecDeque::from(chunks), Some(ending));
    futures::stream::unfold(state, |(mut chunks, ending)| async move {
        if let Some(c) = chunks.pop_front() {
            if !c.delay.is_zero() {
                tokio::time::sleep(c.delay).await;
            }
            return Some((Ok::<Bytes, Error>(c.data), (chunks, ending)));
        }
        match ending? {
            PlanEnding::Complete => None,
            PlanEnding::Close => Some((Err(conn_err("connection closed before the body was complete (mock cut)")), (chunks, None))),
            PlanEnding::Reset => Some((Err(conn_err("connection reset by peer (mock reset)")), (chunks, None))),
            PlanEnding::Hang => futures::future::pending().await,
        }
    })
    .boxed()
}
