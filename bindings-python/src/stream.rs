//! `NativeStream`: the core's `bridge::StreamHandle` as a Python object, consumable from a sync
//! iterator (GIL released while waiting) or an async iterator (one awaitable per event), as
//! events or as OpenAI chunks, foldable into the final response, and closable from anywhere.
//!
//! The handle owns the lifetime rules (a read in flight when `close()` happens fails with
//! `cancelled`, later reads end; the trace is kept once the stream is over; dropping the
//! handle cancels the request). This file only bridges: it blocks or spawns reads on the
//! binding's runtime and converts events and the trace to dicts.

use polyroute::bridge::{self, CancelToken, StreamHandle};
use polyroute::ChatStream;
use pyo3::prelude::*;

use crate::aio::LoopBridge;
use crate::convert::{to_py, Json};
use crate::errors::{guarded, IntoPyResult, Out};
use crate::runtime::{block_on, runtime};

#[pyclass(frozen, module = "polyroute._native")]
pub struct NativeStream {
    handle: StreamHandle,
}

impl NativeStream {
    pub fn new(stream: ChatStream) -> Self {
        NativeStream { handle: StreamHandle::new(stream, CancelToken::new()) }
    }
}

#[pymethods]
impl NativeStream {
    /// Next event as a dict, or `None` once the stream has ended. Blocks without the GIL.
    fn next(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        guarded(py, || match block_on(py, self.handle.next_value())?.py_err(py)? {
            Some(v) => Ok(Some(to_py(py, &v)?.unbind())),
            None => Ok(None),
        })
    }

    /// Resolve `future` (of `bridge`'s loop) with the next event as a dict, or `None` once
    /// the stream has ended.
    fn next_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(py, || {
            let next = self.handle.next_value();
            bridge.spawn(py, future, async move { Out(next.await.map(|o| o.map(Json))) })
        })
    }

    /// Next OpenAI `chat.completion.chunk` as a dict, or `None` once the stream has ended.
    /// Blocks without the GIL.
    fn next_chunk(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        guarded(py, || match block_on(py, self.handle.next_chunk_value())?.py_err(py)? {
            Some(v) => Ok(Some(to_py(py, &v)?.unbind())),
            None => Ok(None),
        })
    }

    /// Resolve `future` with the next chunk as a dict, or `None` once the stream has ended.
    fn next_chunk_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(py, || {
            let next = self.handle.next_chunk_value();
            bridge.spawn(py, future, async move { Out(next.await.map(|o| o.map(Json))) })
        })
    }

    /// The whole answer as `chat()`'s dict (reads the rest of the stream first).
    fn final_response<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || {
            let resp = block_on(py, self.handle.final_response())?.py_err(py)?;
            to_py(py, &bridge::to_value(&resp).py_err(py)?)
        })
    }

    /// Resolve `future` with [`Self::final_response`]'s dict.
    fn final_response_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(py, || {
            let resp = self.handle.final_response();
            bridge.spawn(py, future, async move { Out(resp.await.and_then(|r| polyroute::bridge::to_value(&r)).map(Json)) })
        })
    }

    /// Stop the stream and cancel the request. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || {
            // Dropping the core stream may need the runtime's context.
            let _rt = runtime(py)?.enter();
            self.handle.close();
            Ok(())
        })
    }

    /// Whether the stream has ended, failed or been closed.
    #[getter]
    fn closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The route trace as a dict, once the stream has ended (`None` before).
    fn trace(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        guarded(py, || match self.handle.trace() {
            Some(t) => Ok(Some(to_py(py, &bridge::to_value(&t).py_err(py)?)?.unbind())),
            None => Ok(None),
        })
    }
}
