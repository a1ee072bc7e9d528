//! Async bridging: the binding's tokio runtime, explicit cancellation, and the stream handle.
//!
//! Why our own runtime: uniffi's `async_runtime = "tokio"` polls exported futures from Swift's
//! cooperative threads inside async-compat, whose fallback runtime is single-threaded. The
//! router's IO, hedges and stream pumps belong on a real multi-thread runtime, so every core
//! future is spawned onto one process-wide runtime and the exported future only awaits the
//! join handle (or a channel).
//!
//! Why explicit cancellation: uniffi does not propagate Swift task cancellation into Rust, and
//! a spawned task outlives the future that awaits it. Swift passes a [`CancelToken`] and fires
//! it from `withTaskCancellationHandler` / the stream's `onTermination`; the spawned task races
//! the core future against it and drops the core future (which aborts the HTTP request) on
//! cancel. If the awaiting future itself is dropped, the task is aborted too.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;
use polyroute::{ChatStream, RouteTrace, StreamEvent};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

use crate::error::{cancelled, PolyrouteError};

/// Events buffered between the stream pump and Swift: enough to absorb a burst, small enough
/// that a consumer that stops reading applies backpressure to the provider connection.
const STREAM_BUFFER: usize = 64;

fn runtime() -> Result<&'static Runtime, PolyrouteError> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("polyroute")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    rt.as_ref()
        .map_err(|e| polyroute::Error::config(format!("cannot start the polyroute runtime: {e}")).into())
}

/// A cancellation signal shared between Swift and the Rust task it started. Cancelling is
/// idempotent and sticky: a token fired before the call starts cancels it at once.
#[derive(Debug, uniffi::Object)]
pub struct CancelToken {
    tx: watch::Sender<bool>,
}

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(CancelToken { tx: watch::Sender::new(false) })
    }

    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }
}

impl CancelToken {
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        if rx.wait_for(|c| *c).await.is_err() {
            // Unreachable while `self` (the sender) is alive; never report a false cancel.
            std::future::pending::<()>().await;
        }
    }
}

/// Aborts the spawned task when the future awaiting it is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run a core future on the binding's runtime, ending it with `cancelled` when `token` fires.
pub(crate) async fn run<T, F>(token: Arc<CancelToken>, fut: F) -> Result<T, PolyrouteError>
where
    T: Send + 'static,
    F: Future<Output = polyroute::Result<T>> + Send + 'static,
{
    let task = runtime()?.spawn(async move {
        tokio::select! {
            biased;
            _ = token.cancelled() => Err(cancelled()),
            r = fut => r,
        }
    });
    let _guard = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(r) => r.map_err(Into::into),
        // A panic in the core is a bug; re-raise it so uniffi reports it as one.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(cancelled().into()),
    }
}

/// A streamed answer. Swift normally sees it as an `AsyncThrowingStream` of events (the Swift
/// layer wraps `next`); ending that stream early cancels the request.
#[derive(uniffi::Object)]
pub struct ChatEventStream {
    rx: tokio::sync::Mutex<mpsc::Receiver<polyroute::Result<StreamEvent>>>,
    token: Arc<CancelToken>,
    trace: Arc<Mutex<Option<RouteTrace>>>,
}

impl ChatEventStream {
    /// Start pumping `stream` on the runtime. The pump owns the core stream, so the request
    /// lives exactly as long as someone may still read it: it stops (dropping the stream and
    /// with it the connection) on cancel, or when this handle is gone.
    pub(crate) fn spawn(stream: ChatStream, token: Arc<CancelToken>) -> Result<Arc<Self>, PolyrouteError> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let trace = Arc::new(Mutex::new(None));
        let (pump_token, pump_trace) = (token.clone(), trace.clone());
        runtime()?.spawn(async move {
            let mut stream = stream;
            loop {
                let item = tokio::select! {
                    biased;
                    _ = pump_token.cancelled() => return,
                    item = stream.next() => item,
                };
                let Some(item) = item else { break };
                tokio::select! {
                    biased;
                    _ = pump_token.cancelled() => return,
                    sent = tx.send(item) => if sent.is_err() { return },
                }
            }
            // The core sets the trace when the stream ends; publish it before closing the
            // channel so a reader that saw the end also sees the trace.
            *pump_trace.lock().unwrap_or_else(|p| p.into_inner()) = stream.trace();
            drop(tx);
        });
        Ok(Arc::new(ChatEventStream { rx: tokio::sync::Mutex::new(rx), token, trace }))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl ChatEventStream {
    /// The next event as the core's serde JSON (`{"type": "content_delta", ...}`), `nil` at
    /// the end. A failure after the first content ends the stream with its error.
    pub async fn next(&self) -> Result<Option<String>, PolyrouteError> {
        let mut rx = self.rx.lock().await;
        tokio::select! {
            biased;
            _ = self.token.cancelled() => Err(cancelled().into()),
            item = rx.recv() => match item {
                None => Ok(None),
                Some(Ok(ev)) => serde_json::to_string(&ev)
                    .map(Some)
                    .map_err(|e| polyroute::Error::malformed(format!("cannot encode stream event: {e}")).into()),
                Some(Err(e)) => Err(e.into()),
            },
        }
    }

    /// Stop the request now. Pending and later `next` calls fail with `cancelled`.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// The route trace (core `RouteTrace` JSON), once the stream has ended.
    pub fn trace_json(&self) -> Option<String> {
        let t = self.trace.lock().unwrap_or_else(|p| p.into_inner());
        t.as_ref().and_then(|t| serde_json::to_string(t).ok())
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
        let router = crate::Router::new(policy.into()).unwrap();
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
        let router = crate::Router::new(policy.into()).unwrap();
        let stream = router.stream_json(r#"{"messages": [{"role": "user", "content": "hi"}]}"#.into(), None).await.unwrap();
        while stream.next().await.unwrap().is_some() {}
        let trace: serde_json::Value = serde_json::from_str(&stream.trace_json().unwrap()).unwrap();
        assert_eq!(trace["served_by"], "d");
    }
}
