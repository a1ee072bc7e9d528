//! `polyroute-node`: the napi-rs addon under the `polyroute` npm package.
//!
//! It holds the five things a binding may hold and nothing else: type conversion, error
//! mapping, async bridging, cancellation/callbacks and handle lifetime. Every decision
//! (routing, retries, validation, parsing) stays in the `polyroute` core.
//!
//! Shape, and why:
//! - Data crosses as JSON text. `JSON.stringify`/`JSON.parse` are V8 builtins and one native
//!   call per request is far cheaper than walking a JS object field by field through N-API;
//!   the core's types are serde already, so the text *is* the type conversion.
//! - Errors reject with a `napi::Error` whose reason is `POLYROUTE:` + the core `Error` as
//!   JSON. N-API promises cannot carry custom classes, so `polyroute.js` turns that into a
//!   `PolyrouteError` subclass with `code === kind`; users never see the raw string.
//! - Async work runs on napi's tokio runtime (`env.spawn_future`); the core never creates one.
//! - Cancellation is a `CancelToken` (a tokio `watch` flag) that JS trips from an
//!   `AbortSignal`; the in-flight future loses a `select!` and is dropped, and dropping a core
//!   future or stream is what cancels the HTTP request.
//! - Event callbacks are threadsafe functions called non-blocking: the core's hot path never
//!   waits for the JS thread.
//!
//! The classes are `Native*`: `polyroute.js` wraps them in the public `Router`/`ChatStream`.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::{Arc, Mutex as SyncMutex};

use futures::StreamExt;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use polyroute::resilience::breaker::BreakerState;
use polyroute::{ChatRequest, Error as CoreError, ErrorKind, Router};
use tokio::sync::{watch, Mutex};

/// Marks a rejection reason that carries a serialised core error.
const ERROR_PREFIX: &str = "POLYROUTE:";

/// The core error as JSON plus `display` (the core's one-line `Display`, used as the JS
/// `message` so it is worded the same in every language).
fn js_error(e: &CoreError) -> napi::Error {
    let mut v = serde_json::to_value(e).unwrap_or_else(|_| {
        // Only reachable if a field cannot be serialised; keep kind and message at least.
        serde_json::json!({"kind": e.kind.code(), "message": e.message})
    });
    if let Some(m) = v.as_object_mut() {
        m.insert("display".into(), e.to_string().into());
    }
    napi::Error::new(Status::GenericFailure, format!("{ERROR_PREFIX}{v}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| js_error(&CoreError::malformed(format!("cannot serialise result: {e}"))))
}

/// The request as the JS layer sent it (`JSON.stringify` of an openai-node body).
#[allow(clippy::result_large_err)] // the core's own `Error`, returned as the core returns it
fn parse_request(text: &str) -> std::result::Result<ChatRequest, CoreError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| CoreError::invalid_request(format!("request is not valid JSON: {e}")))?;
    ChatRequest::from_openai_json(v)
}

/// A one-way "cancelled" flag that any number of futures can wait on.
#[derive(Clone)]
struct Cancel(Arc<watch::Sender<bool>>);

impl Cancel {
    fn new() -> Self {
        Cancel(Arc::new(watch::channel(false).0))
    }

    fn trip(&self) {
        self.0.send_replace(true);
    }

    fn is_tripped(&self) -> bool {
        *self.0.borrow()
    }

    async fn tripped(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so `Err` (sender gone) cannot happen here; if it
        // ever did, never resolving is the safe reading (no spurious cancellation).
        if rx.wait_for(|c| *c).await.is_err() {
            futures::future::pending::<()>().await;
        }
    }

    /// Run `fut` unless cancellation comes first; losing the race drops (cancels) it.
    async fn guard<T>(&self, fut: impl Future<Output = polyroute::Result<T>>) -> polyroute::Result<T> {
        tokio::select! {
            biased;
            _ = self.tripped() => Err(cancelled_error()),
            r = fut => r,
        }
    }
}

fn cancelled_error() -> CoreError {
    CoreError::new(ErrorKind::Cancelled, "cancelled by the caller (AbortSignal or stream closed)")
}

/// Cancels one call. `polyroute.js` creates one per call and trips it from an `AbortSignal`.
#[napi]
pub struct CancelToken {
    cancel: Cancel,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken { cancel: Cancel::new() }
    }

    /// Idempotent; the call it was given to rejects with a `cancelled` error.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.trip();
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.cancel.is_tripped()
    }
}

/// Handle on one core `Router` (cheap clone of an `Arc`; futures keep it alive).
#[napi]
pub struct NativeRouter {
    inner: Router,
}

#[napi]
impl NativeRouter {
    /// Policy text, YAML or JSON (the JS layer stringifies objects).
    #[napi(constructor)]
    pub fn new(policy: String) -> Result<Self> {
        Router::from_policy_str(&policy).map(|inner| NativeRouter { inner }).map_err(|e| js_error(&e))
    }

    #[napi(factory)]
    pub fn from_file(path: String) -> Result<Self> {
        Router::from_policy_file(path).map(|inner| NativeRouter { inner }).map_err(|e| js_error(&e))
    }

    /// Resolves to the `ChatResponse` as JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn chat<'e>(&self, env: &'e Env, request: String, cancel: Option<&CancelToken>) -> Result<PromiseRaw<'e, String>> {
        let router = self.inner.clone();
        let cancel = cancel.map(|c| c.cancel.clone()).unwrap_or_else(Cancel::new);
        env.spawn_future(async move {
            let resp = cancel
                .guard(async {
                    let req = parse_request(&request)?;
                    router.chat(req).await
                })
                .await
                .map_err(|e| js_error(&e))?;
            to_json(&resp)
        })
    }

    /// Opens a stream; resolves once a deployment committed (first content) or all failed.
    #[napi(ts_return_type = "Promise<NativeStream>")]
    pub fn stream<'e>(&self, env: &'e Env, request: String, cancel: Option<&CancelToken>) -> Result<PromiseRaw<'e, NativeStream>> {
        let router = self.inner.clone();
        let cancel = cancel.map(|c| c.cancel.clone()).unwrap_or_else(Cancel::new);
        env.spawn_future(async move {
            let stream = cancel
                .guard(async {
                    let req = parse_request(&request)?;
                    router.stream(req).await
                })
                .await
                .map_err(|e| js_error(&e))?;
            Ok(NativeStream { stream: Arc::new(Mutex::new(Some(stream))), cancel, trace: Arc::new(SyncMutex::new(None)) })
        })
    }

    /// `RoutePlan` as JSON text: where the request would go, without sending it.
    #[napi]
    pub fn plan(&self, request: String) -> Result<String> {
        let req = parse_request(&request).map_err(|e| js_error(&e))?;
        let plan = self.inner.plan(&req).map_err(|e| js_error(&e))?;
        to_json(&plan)
    }

    /// Swap the policy atomically; an invalid one throws `config` and the old one keeps serving.
    #[napi]
    pub fn reload(&self, policy: String) -> Result<()> {
        self.inner.reload_str(&policy).map_err(|e| js_error(&e))
    }

    /// The serving policy as JSON text (literal keys are never serialised by the core).
    #[napi]
    pub fn policy(&self) -> Result<String> {
        to_json(&self.inner.policy())
    }

    /// `DeploymentStatus[]` (breaker state, latency, success rate) as JSON text.
    #[napi]
    pub fn deployments(&self) -> Result<String> {
        to_json(&self.inner.deployments())
    }

    /// `state`: `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    #[napi]
    pub fn set_breaker(&self, deployment: String, state: String) -> Result<()> {
        let state: BreakerState = serde_json::from_value(serde_json::Value::String(state))
            .map_err(|e| js_error(&CoreError::config(format!("invalid breaker state: {e}"))))?;
        self.inner.set_breaker(&deployment, state).map_err(|e| js_error(&e))
    }

    #[napi]
    pub fn reset_breaker(&self, deployment: String) -> Result<()> {
        self.inner.reset_breaker(&deployment).map_err(|e| js_error(&e))
    }

    /// Prometheus text exposition of this router's metrics.
    #[napi]
    pub fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// `BudgetStatus[]` (spent, reserved, remaining per budget and scope) as JSON text.
    #[napi]
    pub fn budgets(&self) -> Result<String> {
        to_json(&self.inner.budgets())
    }

    /// `RouteCost[]` (requests, successes, cost per success per route) as JSON text.
    #[napi]
    pub fn route_costs(&self) -> Result<String> {
        to_json(&self.inner.route_costs())
    }

    /// Call `callback` with every router event as JSON text; returns an id for `unsubscribe`.
    ///
    /// The core delivers events on its own thread; here each one is queued to the JS thread
    /// without blocking (a full queue drops the event), so a busy event loop never slows a
    /// request. The function is weak: a subscription alone does not keep Node running.
    #[napi(ts_args_type = "callback: (event: string) => void")]
    pub fn subscribe(&self, callback: EventCallback) -> u32 {
        let id = self.inner.subscribe(move |ev| {
            if let Ok(text) = serde_json::to_string(ev) {
                let _ = callback.call(text, ThreadsafeFunctionCallMode::NonBlocking);
            }
        });
        // Ids count up from 1 per router; a JS number holds any realistic count.
        u32::try_from(id).unwrap_or(u32::MAX)
    }

    /// Stop delivering to a subscription; `false` if the id was unknown.
    #[napi]
    pub fn unsubscribe(&self, id: u32) -> bool {
        self.inner.unsubscribe(u64::from(id))
    }
}

/// JS `(event: string) => void`, called without an error-first argument, not keeping the
/// event loop alive, with a bounded queue (events beyond it are dropped, never waited for).
type EventCallback = ThreadsafeFunction<String, Unknown<'static>, String, Status, false, true, 4096>;

/// One open stream. `next()` resolves to the next event as JSON text, or `null` at the end;
/// `close()` (or the call's `CancelToken`) cancels it.
#[napi]
pub struct NativeStream {
    /// `None` once ended or closed: dropping the core stream is what cancels the request.
    stream: Arc<Mutex<Option<polyroute::ChatStream>>>,
    cancel: Cancel,
    /// The route trace as JSON text, stored when the stream ends (the stream is gone by then).
    trace: Arc<SyncMutex<Option<String>>>,
}

#[napi]
impl NativeStream {
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Option<String>>> {
        let slot = self.stream.clone();
        let cancel = self.cancel.clone();
        let trace = self.trace.clone();
        env.spawn_future(async move {
            let mut guard = slot.lock().await;
            let Some(stream) = guard.as_mut() else { return Ok(None) };
            let item = tokio::select! {
                biased;
                _ = cancel.tripped() => Some(Err(cancelled_error())),
                item = stream.next() => item,
            };
            if let Some(Ok(ev)) = item {
                return to_json(&ev).map(Some);
            }
            // Ended, failed or cancelled: keep the trace, drop the stream (cancels the request).
            if let Some(t) = stream.trace() {
                let text = serde_json::to_string(&t).ok();
                *trace.lock().unwrap_or_else(|p| p.into_inner()) = text;
            }
            *guard = None;
            match item {
                Some(Err(e)) => Err(js_error(&e)),
                _ => Ok(None),
            }
        })
    }

    /// Cancel the request now. A pending `next()` rejects with `cancelled`; later ones end.
    #[napi]
    pub fn close(&self) {
        self.cancel.trip();
        // If a `next()` holds the lock it sees the flag and drops the stream itself.
        if let Ok(mut g) = self.stream.try_lock() {
            *g = None;
        }
    }

    /// The `RouteTrace` as JSON text once the stream has ended, else `null`.
    #[napi]
    pub fn trace(&self) -> Option<String> {
        self.trace.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Every `ErrorKind` code, in the core's order; the JS layer checks its classes against it.
#[napi]
pub fn error_kinds() -> Vec<String> {
    ErrorKind::ALL.iter().map(|k| k.code().to_string()).collect()
}
