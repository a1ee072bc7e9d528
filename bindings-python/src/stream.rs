//! `NativeStream`: one `polyroute::ChatStream`, consumable from a sync iterator (GIL released
//! while waiting) or an async iterator (one awaitable per event), and closable from anywhere.
//!
//! Handle lifetime is the point of this file. The core cancels a request when its stream is
//! dropped, so: `close()` drops it (or, if an event is being awaited right now, wakes that
//! waiter, which drops it and raises `RequestCancelledError`); reaching the end or an error
//! drops it (keeping the trace, which the caller may read afterwards); and a stream the caller
//! forgets is dropped with the Python object, unless an awaitable still holds it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use polyroute::{ChatStream, Error, ErrorKind, RouteTrace};
use pyo3::prelude::*;
use serde_json::Value;

use crate::aio::LoopBridge;
use crate::convert::{to_py, Json};
use crate::errors::{IntoPyResult, Out};
use crate::runtime::{block_on, runtime};

struct State {
    stream: tokio::sync::Mutex<Option<ChatStream>>,
    closed: AtomicBool,
    cancel: tokio::sync::Notify,
    trace: Mutex<Option<RouteTrace>>,
}

impl State {
    fn keep_trace(&self, t: Option<RouteTrace>) {
        if t.is_some() {
            *self.trace.lock().unwrap_or_else(|p| p.into_inner()) = t;
        }
    }
}

/// The next event as JSON, `None` at the end.
async fn next_event(state: Arc<State>) -> Result<Option<Value>, Error> {
    let mut guard = state.stream.lock().await;
    // Register for the wake-up before looking at the flag, so a close() between the two is
    // not missed.
    let cancelled = state.cancel.notified();
    tokio::pin!(cancelled);
    cancelled.as_mut().enable();
    let Some(stream) = guard.as_mut() else { return Ok(None) };
    if state.closed.load(Ordering::Acquire) {
        *guard = None;
        return Ok(None);
    }
    tokio::select! {
        biased;
        _ = &mut cancelled => {
            *guard = None;
            Err(Error::new(ErrorKind::Cancelled, "the stream was closed while an event was being awaited"))
        }
        item = stream.next() => match item {
            Some(Ok(ev)) => Ok(Some(serde_json::to_value(&ev).map_err(|e| Error::malformed(format!("stream event: {e}")))?)),
            Some(Err(e)) => {
                state.keep_trace(stream.trace().or_else(|| e.trace.as_deref().cloned()));
                *guard = None;
                Err(e)
            }
            None => {
                state.keep_trace(stream.trace());
                *guard = None;
                Ok(None)
            }
        }
    }
}

#[pyclass(frozen, module = "polyroute._native")]
pub struct NativeStream {
    state: Arc<State>,
}

impl NativeStream {
    pub fn new(stream: ChatStream) -> Self {
        NativeStream {
            state: Arc::new(State {
                stream: tokio::sync::Mutex::new(Some(stream)),
                closed: AtomicBool::new(false),
                cancel: tokio::sync::Notify::new(),
                trace: Mutex::new(None),
            }),
        }
    }
}

#[pymethods]
impl NativeStream {
    /// Next event as a dict, or `None` once the stream has ended. Blocks without the GIL.
    fn next(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let state = self.state.clone();
        match block_on(py, next_event(state))?.py_err(py)? {
            Some(v) => Ok(Some(to_py(py, &v)?.unbind())),
            None => Ok(None),
        }
    }

    /// Resolve `future` (of `bridge`'s loop) with the next event as a dict, or `None` once
    /// the stream has ended.
    fn next_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, PyAny>) -> PyResult<()> {
        let state = self.state.clone();
        bridge.spawn(py, future, async move { Out(next_event(state).await.map(|o| o.map(Json))) })
    }

    /// Stop the stream and cancel the request. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.state.closed.store(true, Ordering::Release);
        self.state.cancel.notify_waiters();
        // Nobody is waiting on an event: drop the stream here. Otherwise the waiter does.
        if let Ok(mut guard) = self.state.stream.try_lock() {
            let _rt = runtime(py)?.enter();
            if let Some(s) = guard.take() {
                self.state.keep_trace(s.trace());
            }
        }
        Ok(())
    }

    /// Whether the stream has ended, failed or been closed.
    #[getter]
    fn closed(&self) -> bool {
        self.state.closed.load(Ordering::Acquire) || self.state.stream.try_lock().map(|g| g.is_none()).unwrap_or(false)
    }

    /// The route trace as a dict, once the stream has ended (`None` before).
    fn trace(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let t = self.state.trace.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match t {
            Some(t) => {
                let v = serde_json::to_value(&t).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
                Ok(Some(to_py(py, &v)?.unbind()))
            }
            None => Ok(None),
        }
    }
}
