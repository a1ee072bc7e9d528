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
//! - Async work (calls, streams and their reads) is polled by the JS thread's own event loop
//!   (`driver.rs`: libuv's epoll waits for the sockets, so an answer wakes that thread and no
//!   other), in the context of napi's tokio runtime (timers, tasks); where the loop cannot
//!   drive it, it is spawned on that runtime. The core never creates a runtime.
//! - Cancellation is a `CancelToken` (the core's `bridge::CancelToken`) that JS trips from an
//!   `AbortSignal`; the in-flight future loses the race and is dropped, and dropping a core
//!   future or stream is what cancels the HTTP request.
//! - Request parsing (and the `route` shortcut), JSON out, the error's JSON shape, breaker
//!   state names and the stream handle are the core's (`polyroute::bridge`), shared with the
//!   Python and Swift bindings.
//! - Event callbacks are threadsafe functions called non-blocking: the core's hot path never
//!   waits for the JS thread.
//!
//! The classes are `Native*`: `polyroute.js` wraps them in the public `Router`/`ChatStream`.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use polyroute::bridge::openai_http::{OpenAiBody, OpenAiReply, SseHandle};
use polyroute::bridge::{self, StreamHandle};
use polyroute::{Error as CoreError, ErrorKind, Router};

mod driver;

/// mimalloc: glibc's malloc and free were ~30 % of a routed call's instructions (issue 18).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Marks a rejection reason that carries a serialised core error.
const ERROR_PREFIX: &str = "POLYROUTE:";

/// The core error as JSON plus `display` (the core's one-line `Display`, used as the JS
/// `message` so it is worded the same in every language).
fn js_error(e: &CoreError) -> napi::Error {
    let mut v = bridge::error_to_json(e);
    if let Some(m) = v.as_object_mut() {
        m.insert("display".into(), e.to_string().into());
    }
    napi::Error::new(Status::GenericFailure, format!("{ERROR_PREFIX}{v}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    bridge::to_json(v).map_err(|e| js_error(&e))
}

/// Every synchronous entry point runs under the core's panic guard: a panic in the core (a
/// bug) throws a `config` error ("internal error: ...; please report it", a `ConfigError` in
/// JS) instead of crossing N-API as an untyped error or aborting the process.
fn guard<T>(body: impl FnOnce() -> Result<T>) -> Result<T> {
    bridge::catch(body).unwrap_or_else(|e| Err(js_error(&e)))
}

/// [`guard`] for the futures spawned on napi's runtime: a panic while polling rejects the
/// promise with the same `config` error instead of leaving it pending.
async fn guard_future<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    bridge::catch_future(fut).await.unwrap_or_else(|e| Err(js_error(&e)))
}

/// Cancels one call. `polyroute.js` creates one per call and trips it from an `AbortSignal`.
#[napi]
pub struct CancelToken {
    cancel: bridge::CancelToken,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken { cancel: bridge::CancelToken::new() }
    }

    /// Idempotent; the call it was given to rejects with a `cancelled` error.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
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
        guard(|| Router::from_policy_str(&policy).map(|inner| NativeRouter { inner }).map_err(|e| js_error(&e)))
    }

    #[napi(factory)]
    pub fn from_file(path: String) -> Result<Self> {
        guard(|| Router::from_policy_file(path).map(|inner| NativeRouter { inner }).map_err(|e| js_error(&e)))
    }

    /// Resolves to the `ChatResponse` as JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn chat<'e>(&self, env: &'e Env, request: String, cancel: Option<&CancelToken>) -> Result<PromiseRaw<'e, String>> {
        guard(|| {
            let router = self.inner.clone();
            let cancel = cancel.map(|c| c.cancel.clone()).unwrap_or_default();
            driver::promise(env, async move {
                let resp = cancel
                    .run(async {
                        let req = bridge::request_from_json(&request)?;
                        router.chat(req).await
                    })
                    .await
                    .map_err(|e| js_error(&e))?;
                to_json(&resp)
            })
        })
    }

    /// Opens a stream; resolves once a deployment committed (first content) or all failed.
    #[napi(ts_return_type = "Promise<NativeStream>")]
    pub fn stream<'e>(&self, env: &'e Env, request: String, cancel: Option<&CancelToken>) -> Result<PromiseRaw<'e, NativeStream>> {
        guard(|| {
            let router = self.inner.clone();
            let cancel = cancel.map(|c| c.cancel.clone()).unwrap_or_default();
            driver::promise(env, async move {
                let stream = cancel
                    .run(async {
                        let req = bridge::request_from_json(&request)?;
                        router.stream(req).await
                    })
                    .await
                    .map_err(|e| js_error(&e))?;
                Ok(NativeStream { handle: StreamHandle::new(stream, cancel) })
            })
        })
    }

    /// The native half of `router.fetch`: answer one OpenAI `POST /v1/chat/completions` (body
    /// bytes and `[name, value]` header pairs) in-process, exactly as the `polyroute serve`
    /// gateway and the Python transport do (`polyroute::bridge::openai_http`). Resolves to the
    /// reply; every failure is an OpenAI error reply, except `cancel` tripped before the reply
    /// was ready, which rejects with `cancelled`.
    #[napi(ts_return_type = "Promise<NativeOpenAiReply>")]
    pub fn openai_chat<'e>(
        &self,
        env: &'e Env,
        body: Buffer,
        headers: Vec<Vec<String>>,
        cancel: Option<&CancelToken>,
    ) -> Result<PromiseRaw<'e, NativeOpenAiReply>> {
        guard(|| {
            let router = self.inner.clone();
            let cancel = cancel.map(|c| c.cancel.clone()).unwrap_or_default();
            let body = body.to_vec();
            let headers = header_map(&headers);
            driver::promise(env, async move {
                let reply = cancel.run(async { Ok(bridge::openai_http::handle(&router, &body, &headers).await) }).await.map_err(|e| js_error(&e))?;
                Ok(NativeOpenAiReply::new(reply))
            })
        })
    }

    /// `RoutePlan` as JSON text: where the request would go, without sending it.
    #[napi]
    pub fn plan(&self, request: String) -> Result<String> {
        guard(|| {
            let req = bridge::request_from_json(&request).map_err(|e| js_error(&e))?;
            let plan = self.inner.plan(&req).map_err(|e| js_error(&e))?;
            to_json(&plan)
        })
    }

    /// Swap the policy atomically; an invalid one throws `config` and the old one keeps serving.
    #[napi]
    pub fn reload(&self, policy: String) -> Result<()> {
        guard(|| self.inner.reload_str(&policy).map_err(|e| js_error(&e)))
    }

    /// The serving policy as JSON text (literal keys are never serialised by the core).
    #[napi]
    pub fn policy(&self) -> Result<String> {
        guard(|| to_json(&self.inner.policy()))
    }

    /// `DeploymentStatus[]` (breaker state, latency, success rate) as JSON text.
    #[napi]
    pub fn deployments(&self) -> Result<String> {
        guard(|| to_json(&self.inner.deployments()))
    }

    /// `state`: `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    #[napi]
    pub fn set_breaker(&self, deployment: String, state: String) -> Result<()> {
        guard(|| {
            let state = bridge::parse_breaker_state(&state).map_err(|e| js_error(&e))?;
            self.inner.set_breaker(&deployment, state).map_err(|e| js_error(&e))
        })
    }

    #[napi]
    pub fn reset_breaker(&self, deployment: String) -> Result<()> {
        guard(|| self.inner.reset_breaker(&deployment).map_err(|e| js_error(&e)))
    }

    /// Prometheus text exposition of this router's metrics.
    #[napi]
    pub fn metrics_text(&self) -> Result<String> {
        guard(|| Ok(self.inner.metrics_text()))
    }

    /// `BudgetStatus[]` (spent, reserved, remaining per budget and scope) as JSON text.
    #[napi]
    pub fn budgets(&self) -> Result<String> {
        guard(|| to_json(&self.inner.budgets()))
    }

    /// `RouteCost[]` (requests, successes, cost per success per route) as JSON text.
    #[napi]
    pub fn route_costs(&self) -> Result<String> {
        guard(|| to_json(&self.inner.route_costs()))
    }

    /// Call `callback` with every router event as JSON text; returns an id for `unsubscribe`.
    ///
    /// The core delivers events on its own thread; here each one is queued to the JS thread
    /// without blocking (a full queue drops the event), so a busy event loop never slows a
    /// request. The function is weak: a subscription alone does not keep Node running.
    #[napi(ts_args_type = "callback: (event: string) => void")]
    pub fn subscribe(&self, callback: EventCallback) -> Result<u32> {
        guard(|| {
            let id = self.inner.subscribe(move |ev| {
                // On the core's delivery thread, where no JS caller could see an error: a panic
                // while encoding or queueing one event skips that event, like a full queue.
                let _ = bridge::catch(|| {
                    if let Ok(text) = bridge::to_json(ev) {
                        let _ = callback.call(text, ThreadsafeFunctionCallMode::NonBlocking);
                    }
                });
            });
            // Ids count up from 1 per router; a JS number holds any realistic count.
            Ok(u32::try_from(id).unwrap_or(u32::MAX))
        })
    }

    /// Stop delivering to a subscription; `false` if the id was unknown.
    #[napi]
    pub fn unsubscribe(&self, id: u32) -> Result<bool> {
        guard(|| Ok(self.inner.unsubscribe(u64::from(id))))
    }
}

/// JS `(event: string) => void`, called without an error-first argument, not keeping the
/// event loop alive, with a bounded queue (events beyond it are dropped, never waited for).
type EventCallback = ThreadsafeFunction<String, Unknown<'static>, String, Status, false, true, 4096>;

/// At most this many events cross to JavaScript in one read.
const BATCH: usize = 256;

/// One open stream (the core's `bridge::StreamHandle`). `nextBatch()` resolves to the next
/// events as a JSON array (`nextChunkBatch()`: OpenAI chunks), or `null` at the end;
/// `finalResponse()` to the whole answer; `close()` (or the call's `CancelToken`) cancels it.
#[napi]
pub struct NativeStream {
    handle: StreamHandle,
}

#[napi]
impl NativeStream {
    /// The next event and those already arrived behind it, as a JSON array of events (at most
    /// 256), or `null` at the end: one promise per burst of chunks instead of per chunk.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next_batch<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Option<String>>> {
        guard(|| {
            let next = self.handle.next_values(BATCH);
            driver::promise(env, async move {
                let batch = next.await.map_err(|e| js_error(&e))?;
                batch.map(|b| to_json(&b)).transpose()
            })
        })
    }

    /// `nextBatch()` in OpenAI `chat.completion.chunk` form (a usage chunk comes before the
    /// end). A `reset` (restart recovery) rejects with `stream_interrupted`: a chunk cannot
    /// take back what was sent. A stream is read with either this or `nextBatch()`, not both.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next_chunk_batch<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Option<String>>> {
        guard(|| {
            let next = self.handle.next_chunk_values(BATCH);
            driver::promise(env, async move {
                let batch = next.await.map_err(|e| js_error(&e))?;
                batch.map(|b| to_json(&b)).transpose()
            })
        })
    }

    /// The whole answer as `chat()` would have resolved it (`ChatResponse` JSON text: usage,
    /// cost, trace), after reading what is left of the stream. Rejects with the stream's
    /// error, or `cancelled` if it was closed before its end.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn final_response<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, String>> {
        guard(|| {
            let fin = self.handle.final_response();
            driver::promise(env, async move {
                let resp = fin.await.map_err(|e| js_error(&e))?;
                to_json(&resp)
            })
        })
    }

    /// Cancel the request now. A pending read rejects with `cancelled`; later ones end.
    #[napi]
    pub fn close(&self) -> Result<()> {
        guard(|| {
            self.handle.close();
            Ok(())
        })
    }

    /// The `RouteTrace` as JSON text once the stream has ended, else `null`.
    #[napi]
    pub fn trace(&self) -> Result<Option<String>> {
        guard(|| Ok(self.handle.trace().and_then(|t| bridge::to_json(&t).ok())))
    }
}

/// The request's headers as the core reads them, from `[name, value]` pairs (see
/// `openai_http::header_map`; a malformed pair, which `fetch`'s `Headers` never yields, is
/// skipped).
fn header_map(pairs: &[Vec<String>]) -> http::HeaderMap {
    bridge::openai_http::header_map(pairs.iter().filter_map(|p| match p.as_slice() {
        [name, value] => Some((name.as_str(), value.as_str())),
        _ => None,
    }))
}

/// What an OpenAI server would answer (`polyroute::bridge::openai_http::OpenAiReply`):
/// `status`, `headers` (`[name, value]` pairs, lowercase names, ASCII values), and a body that
/// is either JSON bytes (`body()`) or a stream of SSE frames (`next()` until `null`; `close()`
/// cancels the request, as does dropping the reply).
#[napi]
pub struct NativeOpenAiReply {
    status: u16,
    headers: Vec<Vec<String>>,
    json: Option<Vec<u8>>,
    sse: Option<SseHandle>,
}

impl NativeOpenAiReply {
    fn new(reply: OpenAiReply) -> Self {
        let headers = reply.headers.into_iter().map(|(n, v)| vec![n.to_string(), v]).collect();
        let (json, sse) = match reply.body {
            OpenAiBody::Json(b) => (Some(b), None),
            OpenAiBody::Sse(s) => (None, Some(s)),
        };
        NativeOpenAiReply { status: reply.status, headers, json, sse }
    }
}

#[napi]
impl NativeOpenAiReply {
    #[napi(getter)]
    pub fn status(&self) -> u16 {
        self.status
    }

    #[napi(getter)]
    pub fn headers(&self) -> Result<Vec<Vec<String>>> {
        guard(|| Ok(self.headers.clone()))
    }

    /// Whether the body is a stream of SSE frames (read with `next()`).
    #[napi(getter)]
    pub fn is_stream(&self) -> bool {
        self.sse.is_some()
    }

    /// The JSON body's bytes; `null` for a stream.
    #[napi]
    pub fn body(&self) -> Result<Option<Buffer>> {
        guard(|| Ok(self.json.as_ref().map(|b| Buffer::from(b.clone()))))
    }

    /// The next SSE frame's bytes, `null` after the last one (or once closed, or for a JSON
    /// body). Never rejects with a routing failure: a failure is a frame (`{"error": ...}`,
    /// and no `[DONE]` after it).
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn next<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Option<Buffer>>> {
        guard(|| {
            let next = self.sse.as_ref().map(|s| s.next_frame());
            driver::promise(env, async move {
                Ok(match next {
                    Some(next) => next.await.map(Buffer::from),
                    None => None,
                })
            })
        })
    }

    /// Stop the stream and cancel its request. Idempotent; nothing for a JSON body.
    #[napi]
    pub fn close(&self) -> Result<()> {
        guard(|| {
            if let Some(s) = &self.sse {
                s.close();
            }
            Ok(())
        })
    }
}

/// The reply to a path `router.fetch` does not serve: 404 in OpenAI's error shape (the
/// gateway's answer to an unknown path), with `message` as the error's message.
#[napi]
pub fn openai_not_found(message: String) -> Result<NativeOpenAiReply> {
    guard(|| Ok(NativeOpenAiReply::new(bridge::openai_http::not_found_reply(&message))))
}

/// Every `ErrorKind` code, in the core's order; the JS layer checks its classes against it.
#[napi]
pub fn error_kinds() -> Vec<String> {
    ErrorKind::ALL.iter().map(|k| k.code().to_string()).collect()
}

/// Test hook: requests sent since the process started by each of the core's own HTTP
/// clients, `[blocking, runtime async, loop-driven]`, and whether this thread's loop drives
/// calls and streams (`driver.rs`).
#[doc(hidden)]
#[napi(js_name = "_requestsByPath")]
pub fn requests_by_path(env: &Env) -> (u32, u32, u32, bool) {
    use polyroute::provider::inline;
    let n = |v: u64| v as u32;
    (n(inline::sent()), n(inline::sent_async()), n(inline::sent_driven()), driver::active(env))
}

/// Test hook: panics inside the core on purpose, under the guard of every synchronous entry
/// point; `polyroute.js` re-exports it as `_debugPanic` for the suite.
#[doc(hidden)]
#[napi(js_name = "_debugPanic")]
pub fn debug_panic() -> Result<()> {
    guard(|| bridge::debug_panic("node sync call"))
}

/// Test hook: a promise whose future panics while it is polled (by the loop, or by napi's
/// runtime with `POLYROUTE_ASYNC_DRIVEN=0`).
#[doc(hidden)]
#[napi(js_name = "_debugPanicAsync", ts_return_type = "Promise<void>")]
pub fn debug_panic_async(env: &Env) -> Result<PromiseRaw<'_, ()>> {
    guard(|| driver::promise(env, async { bridge::debug_panic_async("node async call".into()).await.map_err(|e| js_error(&e)) }))
}
