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
//!
//! The handle also folds what it hands out into the complete answer (`final_response`, what
//! the openai SDKs call `get_final_completion()`), and can hand out OpenAI
//! `chat.completion.chunk` objects instead of events (`next_chunk_value`), so hosts do neither.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::Value;

use super::cancel::{cancelled_error, CancelGuard, CancelToken};
use super::wire::ChunkWriter;
use crate::error::{Error, ErrorKind, Result};
use crate::router::ChatStream;
use crate::types::{ChatResponse, RouteTrace, StreamAccumulator, StreamEvent};

struct Shared {
    /// `None` once ended, failed, cancelled or closed.
    stream: tokio::sync::Mutex<Option<ChatStream>>,
    closed: AtomicBool,
    token: CancelToken,
    /// Kept when the stream goes (the trace lives in the stream).
    trace: Mutex<Option<RouteTrace>>,
    /// Everything handed out so far, folded (a `reset` starts it over, as for the caller).
    acc: Mutex<StreamAccumulator>,
    /// How the stream ended: `Ok(())` at its natural end, the error it failed with.
    end: Mutex<Option<std::result::Result<(), Error>>>,
    /// Turns events into OpenAI chunks for `next_chunk_value` (made on first use).
    chunks: Mutex<Option<ChunkWriter>>,
    /// What `ready` took from the stream but leaves to the next `next`: the end, a failure
    /// or a `reset`, which each read must meet as if it had read it itself.
    lookahead: Mutex<Option<Option<Result<StreamEvent>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn finish(&self, stream: Option<ChatStream>, err_trace: Option<RouteTrace>) {
        let t = stream.as_ref().and_then(ChatStream::trace).or(err_trace);
        if t.is_some() {
            *lock(&self.trace) = t;
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
        let ahead = lock(&self.lookahead).take();
        let item = match ahead {
            Some(item) => item,
            None => tokio::select! {
                biased;
                _ = self.token.cancelled() => Some(Err(cancelled_error())),
                item = stream.next() => item,
            },
        };
        match item {
            Some(Ok(ev)) => {
                lock(&self.acc).push(&ev);
                Ok(Some(ev))
            }
            Some(Err(e)) => {
                self.finish(slot.take(), e.trace.as_deref().cloned());
                *lock(&self.end) = Some(Err(e.clone()));
                Err(e)
            }
            None => {
                self.finish(slot.take(), None);
                lock(&self.end).get_or_insert(Ok(()));
                Ok(None)
            }
        }
    }
}

impl Shared {
    /// Up to `max` plain events that have already arrived, without waiting: what a host hands
    /// over together with the event it waited for, so a burst of chunks costs it one wake-up
    /// and one crossing instead of one per chunk. Stops before the end, a failure or a
    /// `reset` (kept for the next read) and when a read is in flight elsewhere.
    fn ready(&self, max: usize) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        let Ok(mut slot) = self.stream.try_lock() else { return out };
        while out.len() < max && !self.closed.load(Ordering::Acquire) && !self.token.is_cancelled() {
            let Some(stream) = slot.as_mut() else { break };
            if lock(&self.lookahead).is_some() {
                break;
            }
            // A stream polled once more with a no-op waker: `next` is cancel-safe and the next
            // real read registers its own waker.
            match futures::FutureExt::now_or_never(stream.next()) {
                None => break,
                Some(Some(Ok(ev))) if !matches!(ev, StreamEvent::Reset { .. }) => {
                    lock(&self.acc).push(&ev);
                    out.push(ev);
                }
                Some(item) => {
                    *lock(&self.lookahead) = Some(item);
                    break;
                }
            }
        }
        out
    }

    /// The OpenAI chunks of plain events (not every event has one).
    fn chunks_of(&self, events: &[StreamEvent]) -> Vec<Value> {
        let mut w = lock(&self.chunks);
        let w = w.get_or_insert_with(|| ChunkWriter::new(super::wire::unix_now(), true));
        events.iter().filter_map(|ev| w.chunk(ev)).collect()
    }

    /// [`Shared::ready`], also letting the runtime run once whenever nothing is ready: an
    /// HTTP/1 body is handed over one chunk per consumer poll by the connection's own task,
    /// which a read on the same runtime thread otherwise keeps from running until the read
    /// returns (one event per read, measured from asyncio). Ends when a turn brings nothing.
    async fn ready_soon(&self, max: usize) -> Vec<StreamEvent> {
        let mut out = self.ready(max);
        while out.len() < max {
            tokio::task::yield_now().await;
            let more = self.ready(max - out.len());
            if more.is_empty() {
                break;
            }
            out.extend(more);
        }
        out
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
                acc: Mutex::new(StreamAccumulator::new()),
                end: Mutex::new(None),
                chunks: Mutex::new(None),
                lookahead: Mutex::new(None),
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

    /// [`Self::next_value`] and the events that had arrived behind it (at most `max` in all),
    /// in order; `None` at the end. For hosts whose every read is a crossing (a thread
    /// hand-off, a trip through an event loop): a burst of chunks takes one.
    pub fn next_values(&self, max: usize) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send + 'static {
        self.value_batch(max, true)
    }

    /// [`Self::next_values`] without letting the runtime run: for a read on a thread of the
    /// host's own (not the runtime's), where yielding does not let the connection's task run.
    /// A host that gets more than one value knows a burst is arriving and can take the rest
    /// with [`Self::ready_values`] on the runtime.
    pub fn next_values_here(&self, max: usize) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send + 'static {
        self.value_batch(max, false)
    }

    fn value_batch(&self, max: usize, soon: bool) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let Some(first) = shared.clone().next().await? else { return Ok(None) };
            let rest = max.saturating_sub(1);
            let ready = if soon { shared.ready_soon(rest).await } else { shared.ready(rest) };
            std::iter::once(&first).chain(&ready).map(super::to_value).collect::<Result<Vec<_>>>().map(Some)
        }
    }

    /// The plain events that have arrived or arrive while the runtime gets a turn, without
    /// waiting for any (at most `max`); see [`Self::next_values`].
    pub fn ready_values(&self, max: usize) -> impl Future<Output = Result<Vec<Value>>> + Send + 'static {
        let shared = self.shared.clone();
        async move { shared.ready_soon(max).await.iter().map(super::to_value).collect() }
    }

    /// [`Self::next_chunk_value`] and the chunks of the events that had arrived behind it
    /// (at most `max` in all), in order; `None` at the end.
    pub fn next_chunk_values(&self, max: usize) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send + 'static {
        self.chunk_batch(max, true)
    }

    /// [`Self::next_chunk_values`] as [`Self::next_values_here`] is to [`Self::next_values`].
    pub fn next_chunk_values_here(&self, max: usize) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send + 'static {
        self.chunk_batch(max, false)
    }

    /// [`Self::ready_values`] in chunk form.
    pub fn ready_chunk_values(&self, max: usize) -> impl Future<Output = Result<Vec<Value>>> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let ready = shared.ready_soon(max).await;
            Ok(shared.chunks_of(&ready))
        }
    }

    fn chunk_batch(&self, max: usize, soon: bool) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send + 'static {
        let shared = self.shared.clone();
        let first = self.next_chunk_value();
        async move {
            let Some(first) = first.await? else { return Ok(None) };
            let rest = max.saturating_sub(1);
            let ready = if soon { shared.ready_soon(rest).await } else { shared.ready(rest) };
            let mut out = vec![first];
            out.extend(shared.chunks_of(&ready));
            Ok(Some(out))
        }
    }

    /// The next OpenAI `chat.completion.chunk` (as the openai SDKs stream them, with a usage
    /// chunk before the end), `None` at the end. Events with no chunk form are skipped; a
    /// `reset` (restart recovery) has none either, so it is an error here, as it is on the
    /// OpenAI wire. Use either this or [`Self::next_event`] on one stream, not both.
    pub fn next_chunk_value(&self) -> impl Future<Output = Result<Option<Value>>> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            loop {
                let Some(ev) = shared.clone().next().await? else { return Ok(None) };
                if let StreamEvent::Reset { reason } = &ev {
                    return Err(Error::new(
                        ErrorKind::StreamInterrupted,
                        format!("the stream restarted on another deployment ({reason}); OpenAI chunks cannot take back what was sent"),
                    ));
                }
                let mut w = lock(&shared.chunks);
                let w = w.get_or_insert_with(|| ChunkWriter::new(super::wire::unix_now(), true));
                if let Some(c) = w.chunk(&ev) {
                    return Ok(Some(c));
                }
            }
        }
    }

    /// The whole answer, as `chat()` would have returned it (usage, cost, trace): reads what
    /// is left of the stream first. Fails with the error the stream failed with, or
    /// `cancelled` if it was closed before its end.
    pub fn final_response(&self) -> impl Future<Output = Result<ChatResponse>> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            loop {
                let ended = lock(&shared.end).clone();
                match ended {
                    Some(Ok(())) => break,
                    Some(Err(e)) => return Err(e),
                    None if shared.closed.load(Ordering::Acquire) => {
                        return Err(Error::new(ErrorKind::Cancelled, "the stream was closed before its end: there is no final response"))
                    }
                    None => {
                        shared.clone().next().await?;
                    }
                }
            }
            let mut resp = lock(&shared.acc).clone().into_response();
            resp.created = super::wire::unix_now() as i64;
            let trace = lock(&shared.trace).clone();
            if let Some(t) = trace {
                resp.cost_usd = t.total_cost_usd;
                resp.provider = t.attempts.iter().rev().find(|a| Some(&a.deployment) == t.served_by.as_ref()).map(|a| a.provider.clone());
                resp.trace = Some(Box::new(t));
            }
            Ok(resp)
        }
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
        lock(&self.shared.trace).clone()
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

    /// Plain events already arrived or arriving at once (see `Shared::ready_soon`).
    pub(super) async fn ready_soon(&self, max: usize) -> Vec<StreamEvent> {
        self.shared.ready_soon(max).await
    }

    /// Whether the host closed the handle (not: the stream ended).
    pub(super) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}
