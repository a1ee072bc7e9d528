//! `StreamHandle`: one [`ChatStream`] as a host holds it: read one event at a time (as JSON),
//! close it from any thread, read the route trace once it is over.
//!
//! Handle lifetime is the point. Dropping the core stream is what cancels the request, so the
//! handle drops it as soon as it is no longer wanted: at the end (after keeping its trace), on
//! an error, on `close()`, or when the token trips. A read may be in flight on the host's
//! runtime while another thread closes the handle, so reads are `'static` futures over shared
//! state that race the token; the host object owns a [`CancelGuard`], so a handle the host
//! forgets (garbage-collected mid-read) still ends the request.
//!
//! After `close()` reads end quietly (`None`); a read in flight when it happens fails with
//! `cancelled`. A token tripped by other means (an `AbortSignal`, Swift's `cancel()`) fails
//! every read with `cancelled`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::Value;

use super::cancel::{cancelled_error, CancelGuard, CancelToken};
use crate::error::Result;
use crate::router::ChatStream;
use crate::types::{RouteTrace, StreamEvent};

struct Shared {
    /// `None` once ended, failed, cancelled or closed.
    stream: tokio::sync::Mutex<Option<ChatStream>>,
    closed: AtomicBool,
    token: CancelToken,
    /// Kept when the stream goes (the trace lives in the stream).
    trace: Mutex<Option<RouteTrace>>,
}

impl Shared {
    fn finish(&self, stream: Option<ChatStream>, err_trace: Option<RouteTrace>) {
        let t = stream.as_ref().and_then(ChatStream::trace).or(err_trace);
        if t.is_some() {
            *self.trace.lock().unwrap_or_else(|p| p.into_inner()) = t;
        }
        drop(stream);
    }

    async fn next(self: Arc<Self>) -> Result<Option<StreamEvent>> {
        let mut slot = self.stream.lock().await;
        if self.closed.load(Ordering::Acquire) {
            self.finish(slot.take(), None);
            return Ok(None);
        }
        if self.token.is_cancelled() {
            self.finish(slot.take(), None);
            return Err(cancelled_error());
        }
        let Some(stream) = slot.as_mut() else { return Ok(None) };
        let item = tokio::select! {
            biased;
            _ = self.token.cancelled() => Some(Err(cancelled_error())),
            item = stream.next() => item,
        };
        match item {
            Some(Ok(ev)) => Ok(Some(ev)),
            Some(Err(e)) => {
                self.finish(slot.take(), e.trace.as_deref().cloned());
                Err(e)
            }
            None => {
                self.finish(slot.take(), None);
                Ok(None)
            }
        }
    }
}

/// A host's handle on one open stream. See the module docs for its lifetime rules.
pub struct StreamHandle {
    shared: Arc<Shared>,
    _guard: CancelGuard,
}

impl std::fmt::Debug for StreamHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHandle").field("closed", &self.is_closed()).finish_non_exhaustive()
    }
}

impl StreamHandle {
    /// Take over `stream`; tripping `token` (or dropping the handle) cancels it.
    pub fn new(stream: ChatStream, token: CancelToken) -> Self {
        let _guard = token.drop_guard();
        StreamHandle {
            shared: Arc::new(Shared {
                stream: tokio::sync::Mutex::new(Some(stream)),
                closed: AtomicBool::new(false),
                token,
                trace: Mutex::new(None),
            }),
            _guard,
        }
    }

    /// The next event, `None` at the end. The future owns what it needs, so a host can spawn it.
    pub fn next_event(&self) -> impl Future<Output = Result<Option<StreamEvent>>> + Send + 'static {
        self.shared.clone().next()
    }

    /// [`Self::next_event`] as the event's serde JSON text (`{"type": "content_delta", ...}`).
    pub fn next_json(&self) -> impl Future<Output = Result<Option<String>>> + Send + 'static {
        let next = self.next_event();
        async move { next.await?.map(|ev| super::to_json(&ev)).transpose() }
    }

    /// [`Self::next_event`] as a JSON `Value`.
    pub fn next_value(&self) -> impl Future<Output = Result<Option<Value>>> + Send + 'static {
        let next = self.next_event();
        async move { next.await?.map(|ev| super::to_value(&ev)).transpose() }
    }

    /// Stop the stream and cancel its request. Idempotent. Drops the core stream here unless
    /// a read holds it (that read then fails with `cancelled` and drops it), so call it where
    /// the stream may be dropped (inside the host's runtime context, if its drop needs one).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.token.cancel();
        if let Ok(mut slot) = self.shared.stream.try_lock() {
            self.shared.finish(slot.take(), None);
        }
    }

    /// Trip the token without closing: reads fail with `cancelled` from now on.
    pub fn cancel(&self) {
        self.shared.token.cancel();
    }

    /// Whether the stream has ended, failed, been closed or cancelled.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
            || self.shared.token.is_cancelled()
            || self.shared.stream.try_lock().map(|s| s.is_none()).unwrap_or(false)
    }

    /// The token that cancels this stream.
    pub fn token(&self) -> &CancelToken {
        &self.shared.token
    }

    /// The route trace, once the stream is over (ended or failed); `None` before.
    pub fn trace(&self) -> Option<RouteTrace> {
        self.shared.trace.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A reader for futures that read more than once (the handle keeps the request's lifetime).
    pub(super) fn reader(&self) -> Reader {
        Reader { shared: self.shared.clone() }
    }

    /// Whether the core stream (and so its request) is still alive.
    #[cfg(test)]
    pub(super) fn holds_stream(&self) -> bool {
        self.shared.stream.try_lock().map(|s| s.is_some()).unwrap_or(true)
    }
}

/// Reads a [`StreamHandle`]'s stream from a `'static` future that reads in a loop.
#[derive(Clone)]
pub(super) struct Reader {
    shared: Arc<Shared>,
}

impl Reader {
    pub(super) fn next_event(&self) -> impl Future<Output = Result<Option<StreamEvent>>> + Send + 'static {
        self.shared.clone().next()
    }

    /// Whether the host closed the handle (not: the stream ended).
    pub(super) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}
