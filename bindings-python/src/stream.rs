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
use crate::runtime::{block_on, drive, runtime};
use crate::waiter::Waiter;

/// At most this many events cross to Python in one read.
const BATCH: usize = 256;

/// A sync batch read: waited for here (a chunk at a time, the usual pace of a provider, costs
/// no hand-off: this thread reads a plain-`http` stream's socket itself, `runtime::drive`).
/// Once more than one has arrived, a burst is on its way: read here it was read whole
/// already, as far as it had arrived; from a connection the runtime reads (reqwest's, for
/// `https`), `rest` takes what else has arrived on the runtime (`on_runtime`).
fn sync_batch<R>(
    py: Python<'_>,
    here: impl std::future::Future<Output = polyroute::Result<Option<Vec<serde_json::Value>>>> + Send,
    rest: impl FnOnce(usize) -> R,
) -> PyResult<Option<Py<PyAny>>>
where
    R: std::future::Future<Output = polyroute::Result<Vec<serde_json::Value>>> + Send + 'static,
{
    let Some(mut items) = drive(py, here)?.py_err(py)? else { return Ok(None) };
    if items.len() > 1 && items.len() < BATCH && !polyroute::provider::inline::drove_sockets() {
        items.extend(block_on(py, on_runtime(py, rest(BATCH - items.len()))?)?.py_err(py)?);
    }
    Ok(Some(to_py(py, &serde_json::Value::Array(items))?.unbind()))
}

/// The rest of a sync batch read runs as a task on the runtime, next to the HTTP connection's
/// own task that hands the body over one chunk per poll: from the calling thread every chunk
/// of a burst was a round of wake-ups between the two threads (batches of ~4 events,
/// measured), there the read takes what has arrived for one hand-off. Aborted when the wait
/// for it is given up (Ctrl-C); what it had read by then was folded into the final response.
fn on_runtime<T: Send + 'static>(
    py: Python<'_>,
    read: impl std::future::Future<Output = polyroute::Result<T>> + Send + 'static,
) -> PyResult<impl std::future::Future<Output = polyroute::Result<T>> + Send> {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = runtime(py)?.spawn(read);
    let guard = AbortOnDrop(task.abort_handle());
    Ok(async move {
        let r = task.await;
        drop(guard);
        r.unwrap_or_else(|e| match e.try_into_panic() {
            Ok(payload) => Err(polyroute::bridge::panic_error(payload)),
            Err(_) => Err(polyroute::Error::new(polyroute::ErrorKind::Cancelled, "the stream read was cancelled")),
        })
    })
}

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
    /// The next event and those already arrived behind it, as a list of dicts (at most
    /// `BATCH`), or `None` once the stream has ended: one GIL release and one runtime entry
    /// per burst of chunks instead of per chunk. Blocks without the GIL.
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        guarded(py, || sync_batch(py, self.handle.next_values_here(BATCH), |n| self.handle.ready_values(n)))
    }

    /// Resolve `future` with [`Self::next_batch`]'s list, or `None` once the stream has ended:
    /// one trip through the event loop per burst.
    fn next_batch_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, Waiter>) -> PyResult<()> {
        guarded(py, || {
            let next = self.handle.next_values(BATCH);
            bridge.spawn(py, future, async move { Out(next.await.map(|o| o.map(|v| Json(serde_json::Value::Array(v))))) })
        })
    }

    /// [`Self::next_batch`] in OpenAI chunk form.
    fn next_chunk_batch(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        guarded(py, || sync_batch(py, self.handle.next_chunk_values_here(BATCH), |n| self.handle.ready_chunk_values(n)))
    }

    /// [`Self::next_batch_async`] in OpenAI chunk form.
    fn next_chunk_batch_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, Waiter>) -> PyResult<()> {
        guarded(py, || {
            let next = self.handle.next_chunk_values(BATCH);
            bridge.spawn(py, future, async move { Out(next.await.map(|o| o.map(|v| Json(serde_json::Value::Array(v))))) })
        })
    }

    /// The whole answer as `chat()` gives it (reads the rest of the stream first).
    fn final_response<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, crate::answer::NativeAnswer>> {
        guarded(py, || {
            let resp = drive(py, self.handle.final_response())?.py_err(py)?;
            crate::answer::Answer(resp).into_pyobject(py)
        })
    }

    /// Resolve `future` with [`Self::final_response`]'s answer.
    fn final_response_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, Waiter>) -> PyResult<()> {
        guarded(py, || {
            let resp = self.handle.final_response();
            bridge.spawn(py, future, async move { Out(resp.await.map(crate::answer::Answer)) })
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
