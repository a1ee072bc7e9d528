//! Async bridging: the binding's tokio runtime, explicit cancellation, and the stream handle.
//!
//! Where core futures run: uniffi (`async_runtime = "tokio"`) polls exported futures from
//! Swift's cooperative threads inside async-compat, whose fallback runtime is single-threaded.
//! [`here`] polls the core future right there, but inside the context of one process-wide
//! multi-thread runtime: its sockets and timers register with that runtime's reactor and what
//! it spawns (hedges) runs on its workers. It used to be spawned onto that runtime and awaited
//! through its join handle, which cost a thread wake-up each way per call and per stream read
//! (issue 18: a cache hit took ~100 µs more than a loopback round trip with no I/O at all); now
//! an answer that is ready at the first poll (a cache hit, an error found before sending)
//! returns with no hop, and a request wakes Swift's task once, from the reactor.
//!
//! Why explicit cancellation: uniffi does not propagate Swift task cancellation into Rust.
//! Swift passes a [`CancelToken`] (the core's `bridge::CancelToken` behind a uniffi object) and
//! fires it from `withTaskCancellationHandler` / the stream's `onTermination`; the call races
//! the core future against it and drops the core future (which aborts the HTTP request) on
//! cancel. The stream's lifetime rules (trace kept at the end, reads failing with `cancelled`
//! once the token fired) are the core's `bridge::StreamHandle`.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use polyroute::bridge::{self, StreamHandle};
use polyroute::provider::inline;
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

/// Every synchronous export runs under the core's panic guard: a panic in the core (a bug)
/// throws `PolyrouteError.config` ("internal error: ...; please report it") instead of
/// uniffi's unexpected-error path (a crash under `try!` for non-throwing calls).
pub(crate) fn guard<T>(body: impl FnOnce() -> Result<T, PolyrouteError>) -> Result<T, PolyrouteError> {
    bridge::catch(body).unwrap_or_else(|e| Err(e.into()))
}

/// [`guard`] for async exports: a panic while the exported future is polled (the core future
/// included, see [`here`]) throws the same `config` error.
pub(crate) async fn guard_async<T>(fut: impl Future<Output = Result<T, PolyrouteError>>) -> Result<T, PolyrouteError> {
    bridge::catch_future(fut).await.unwrap_or_else(|e| Err(e.into()))
}

/// Poll `fut` where the exported future is polled, inside the binding runtime's context (see
/// the module doc). Dropping the returned future drops `fut`, which ends its requests.
pub(crate) async fn here<T>(fut: impl Future<Output = polyroute::Result<T>>) -> Result<T, PolyrouteError> {
    let rt = runtime()?;
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _ctx = rt.enter();
        fut.as_mut().poll(cx)
    })
    .await
    .map_err(Into::into)
}

/// Run a core future, ending it with `cancelled` when `token` fires.
pub(crate) async fn run<T>(token: Arc<CancelToken>, fut: impl Future<Output = polyroute::Result<T>>) -> Result<T, PolyrouteError> {
    here(token.inner.run(fut)).await
}

/// Run a core future to its end on the calling thread (a sync export), ending it with
/// `cancelled` when `token` fires. Inside `inline::scope` the requests to plain-http providers
/// run on this thread too: no hand-off to the runtime's workers and back, which is most of what
/// an async call costs (issue 18; BENCHMARKS.md). A request waiting on its socket asks the
/// token every few tens of milliseconds, so a token fired from another thread ends it.
/// Refused on one of the runtime's own threads, which it would block (a host callback calling
/// back in, say).
pub(crate) fn block<T, F>(token: Arc<CancelToken>, fut: F) -> Result<T, PolyrouteError>
where
    F: Future<Output = polyroute::Result<T>>,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(polyroute::Error::config(
            "a blocking polyroute call was made on a thread of polyroute's runtime (from a callback?); use the async call there",
        )
        .into());
    }
    let rt = runtime()?;
    let watch = token.clone();
    inline::scope(move || watch.is_cancelled(), || rt.block_on(token.inner.run(fut))).map_err(Into::into)
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
        guard_async(here(self.handle.next_json())).await
    }

    /// The whole answer as `chat` returns it (core `ChatResponse` JSON with usage, cost and
    /// trace), after reading what is left of the stream. Fails as the stream failed, or with
    /// `cancelled` if it was cancelled before its end.
    pub async fn final_response_json(&self) -> Result<String, PolyrouteError> {
        guard_async(async {
            let fin = self.handle.final_response();
            here(async move { bridge::to_json(&fin.await?) }).await
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
    async fn a_panic_in_a_core_future_is_a_config_error() {
        let e = guard_async(here(bridge::debug_panic_async("unit".into()))).await.unwrap_err();
        assert_eq!(e.details().kind, ErrorKind::Config);
        assert!(e.details().message.starts_with("internal error: deliberate panic for testing (unit)"), "{e}");
        let e = guard(|| -> Result<(), PolyrouteError> { bridge::debug_panic("sync") }).unwrap_err();
        assert_eq!(e.details().kind, ErrorKind::Config);
    }

    #[test]
    fn a_blocking_call_runs_on_the_calling_thread_and_honours_its_token() {
        let caller = std::thread::current().id();
        let r = block(CancelToken::new(), async move { Ok(std::thread::current().id()) });
        assert_eq!(r.unwrap(), caller, "a sync export must not hop to a runtime worker");

        let token = CancelToken::new();
        let fire = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            fire.cancel();
        });
        let started = Instant::now();
        let r = block(token, async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        });
        assert_eq!(r.unwrap_err().details().kind, ErrorKind::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_core_future_runs_where_it_is_polled_with_the_binding_runtime_for_its_io() {
        // As uniffi does: a current-thread runtime of another crate (async-compat's) polls the
        // exported future. The core future runs on the polling thread, no hop; its timers and
        // what it spawns use the binding's multi-thread runtime.
        let foreign = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let caller = std::thread::current().id();
        let (ran_on, spawned_on) = foreign
            .block_on(here(async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let spawned = tokio::spawn(async { std::thread::current().name().map(str::to_owned) }).await.unwrap();
                Ok((std::thread::current().id(), spawned))
            }))
            .unwrap();
        assert_eq!(ran_on, caller);
        assert_eq!(spawned_on.as_deref(), Some("polyroute"));
        // Ready at the first poll: no wake-up needed at all.
        let waker = std::task::Waker::noop();
        let mut fut = std::pin::pin!(here(async { Ok(7) }));
        assert!(matches!(fut.as_mut().poll(&mut std::task::Context::from_waker(waker)), std::task::Poll::Ready(Ok(7))));
    }

    #[tokio::test]
    async fn a_blocking_call_on_a_runtime_thread_is_a_config_error() {
        let e = block(CancelToken::new(), async { Ok(()) }).unwrap_err();
        assert_eq!(e.details().kind, ErrorKind::Config);
        assert!(e.details().message.contains("runtime"), "{e}");
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
