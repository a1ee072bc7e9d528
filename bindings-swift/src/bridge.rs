//! Async bridging: the binding's tokio runtime, explicit cancellation, and the stream handle.
//!
//! Why our own runtime: uniffi's `async_runtime = "tokio"` polls exported futures from Swift's
//! cooperative threads inside async-compat, whose fallback runtime is single-threaded. The
//! router's IO, hedges and stream reads belong on a real multi-thread runtime, so every core
//! future (each stream read included) is spawned onto one process-wide runtime and the
//! exported future only awaits the join handle.
//!
//! Why explicit cancellation: uniffi does not propagate Swift task cancellation into Rust, and
//! a spawned task outlives the future that awaits it. Swift passes a [`CancelToken`] (the
//! core's `bridge::CancelToken` behind a uniffi object) and fires it from
//! `withTaskCancellationHandler` / the stream's `onTermination`; the spawned task races the
//! core future against it and drops the core future (which aborts the HTTP request) on
//! cancel. If the awaiting future itself is dropped, the task is aborted too. The stream's
//! lifetime rules (trace kept at the end, reads failing with `cancelled` once the token
//! fired) are the core's `bridge::StreamHandle`.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use polyroute::bridge::{self, StreamHandle};
use polyroute::ChatStream;
use tokio::runtime::Runtime;

use crate::error::PolyrouteError;

fn runtime() -> Result<&'static Runtime, PolyrouteError> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    let rt = RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().thread_name("polyroute").enable_all().build().map_err(|e| e.to_string()));
    rt.as_ref().map_err(|e| polyroute::Error::config(format!("cannot start the polyroute runtime: {e}")).into())
}

/// A cancellation signal shared between Swift and the Rust task it started. Cancelling is
/// idempotent and sticky: a token fired before the call starts cancels it at once.
#[derive(Debug, uniffi::Object)]
pub struct CancelToken {
    inner: bridge::CancelToken,
}

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(CancelToken { inner: bridge::CancelToken::new() })
    }

    pub fn cancel(&self) {
        self.inner.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// Aborts the spawned task when the future awaiting it is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every synchronous export runs under the core's panic guard: a panic in the core (a bug)
/// throws `PolyrouteError.config` ("internal error: ...; please report it") instead of
/// uniffi's unexpected-error path (a crash under `try!` for non-throwing calls).
pub(crate) fn guard<T>(body: impl FnOnce() -> Result<T, PolyrouteError>) -> Result<T, PolyrouteError> {
    bridge::catch(body).unwrap_or_else(|e| Err(e.into()))
}

/// [`guard`] for async exports: a panic while the exported future is polled throws the same
/// `config` error. (Panics inside work on the binding's runtime arrive as a `JoinError`, see
/// [`spawned`].)
pub(crate) async fn guard_async<T>(fut: impl Future<Output = Result<T, PolyrouteError>>) -> Result<T, PolyrouteError> {
    bridge::catch_future(fut).await.unwrap_or_else(|e| Err(e.into()))
}

/// Run `fut` on the binding's runtime and await it from whatever polls the exported future.
pub(crate) async fn spawned<T, F>(fut: F) -> Result<T, PolyrouteError>
where
    T: Send + 'static,
    F: Future<Output = polyroute::Result<T>> + Send + 'static,
{
    let task = runtime()?.spawn(fut);
    let _guard = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(r) => r.map_err(Into::into),
        // A panic in the core is a bug: reported as the typed `config` error, never re-raised.
        Err(e) if e.is_panic() => Err(bridge::panic_error(e.into_panic()).into()),
        Err(_) => Err(bridge::cancelled_error().into()),
    }
}

/// Run a core future on the binding's runtime, ending it with `cancelled` when `token` fires.
pub(crate) async fn run<T, F>(token: Arc<CancelToken>, fut: F) -> Result<T, PolyrouteError>
where
    T: Send + 'static,
    F: Future<Output = polyroute::Result<T>> + Send + 'static,
{
    spawned(async move { token.inner.run(fut).await }).await
}

/// A streamed answer. Swift normally sees it as an `AsyncThrowingStream` of events (the Swift
/// layer wraps `next`); ending that stream early cancels the request.
#[derive(uniffi::Object)]
pub struct ChatEventStream {
    handle: StreamHandle,
}

impl ChatEventStream {
    /// Take over `stream`; firing `token`, or dropping this handle, cancels the request.
    pub(crate) fn new(stream: ChatStream, token: Arc<CancelToken>) -> Arc<Self> {
        Arc::new(ChatEventStream { handle: StreamHandle::new(stream, token.inner.clone()) })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl ChatEventStream {
    /// The next event as the core's serde JSON (`{"type": "content_delta", ...}`), `nil` at
    /// the end. A failure after the first content ends the stream with its error.
    pub async fn next(&self) -> Result<Option<String>, PolyrouteError> {
        guard_async(async { spawned(self.handle.next_json()).await }).await
    }

    /// The whole answer as `chat` returns it (core `ChatResponse` JSON with usage, cost and
    /// trace), after reading what is left of the stream. Fails as the stream failed, or with
    /// `cancelled` if it was cancelled before its end.
    pub async fn final_response_json(&self) -> Result<String, PolyrouteError> {
        guard_async(async {
            let fin = self.handle.final_response();
            spawned(async move { bridge::to_json(&fin.await?) }).await
        })
        .await
    }

    /// Stop the request now. Pending and later `next` calls fail with `cancelled`.
    pub fn cancel(&self) {
        // Not throwing (Swift calls it from termination handlers): a panic while tripping the
        // token is contained here; the request still ends when the handle is dropped.
        let _ = bridge::catch(|| self.handle.cancel());
    }

    /// The route trace (core `RouteTrace` JSON), once the stream has ended.
    pub fn trace_json(&self) -> Result<Option<String>, PolyrouteError> {
        guard(|| Ok(self.handle.trace().and_then(|t| bridge::to_json(&t).ok())))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use polyroute::ErrorKind;

    use super::*;

    #[tokio::test]
    async fn firing_the_token_ends_the_call_with_cancelled() {
        let token = CancelToken::new();
        let fire = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fire.cancel();
        });
        let started = Instant::now();
        let r = run(token, async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .await;
        assert_eq!(r.unwrap_err().details().kind, ErrorKind::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_panic_on_the_runtime_is_a_config_error() {
        let e = spawned(bridge::debug_panic_async("unit".into())).await.unwrap_err();
        assert_eq!(e.details().kind, ErrorKind::Config);
        assert!(e.details().message.starts_with("internal error: deliberate panic for testing (unit)"), "{e}");
        let e = guard(|| -> Result<(), PolyrouteError> { bridge::debug_panic("sync") }).unwrap_err();
        assert_eq!(e.details().kind, ErrorKind::Config);
    }

    #[tokio::test]
    async fn a_token_fired_before_the_call_cancels_it_at_once() {
        let token = CancelToken::new();
        token.cancel();
        let r = run(token, async { Ok(1) }).await;
        assert_eq!(r.unwrap_err().details().kind, ErrorKind::Cancelled);
    }

    #[tokio::test]
    async fn cancelling_a_stream_fails_pending_reads() {
        let policy = r#"{"providers": {"p": {"kind": "mock", "script": {"then": {"text": "a b c d e f", "chunk_delay_ms": 3000}}}},
            "deployments": {"d": {"provider": "p", "model": "m"}},
            "routes": [{"name": "r", "deployments": ["d"]}], "default_route": "r"}"#;
        let router = crate::Router::new(policy.into(), None).unwrap();
        let stream = router.stream_json(r#"{"messages": [{"role": "user", "content": "hi"}]}"#.into(), None).await.unwrap();
        // Read up to the first content (a `start` event comes first).
        while !stream.next().await.unwrap().unwrap().contains("content_delta") {}
        stream.cancel();
        let started = Instant::now();
        assert_eq!(stream.next().await.unwrap_err().details().kind, ErrorKind::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(1), "must not wait for the next chunk");
    }

    #[tokio::test]
    async fn a_stream_read_to_the_end_publishes_its_trace() {
        let policy = r#"{"providers": {"p": {"kind": "mock", "script": {"then": {"text": "done"}}}},
            "deployments": {"d": {"provider": "p", "model": "m"}},
            "routes": [{"name": "r", "deployments": ["d"]}], "default_route": "r"}"#;
        let router = crate::Router::new(policy.into(), None).unwrap();
        let stream = router.stream_json(r#"{"messages": [{"role": "user", "content": "hi"}]}"#.into(), None).await.unwrap();
        while stream.next().await.unwrap().is_some() {}
        let trace: serde_json::Value = serde_json::from_str(&stream.trace_json().unwrap().unwrap()).unwrap();
        assert_eq!(trace["served_by"], "d");
    }
}
