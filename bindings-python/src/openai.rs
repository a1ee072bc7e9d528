//! The native half of `polyroute.http_client()` (the httpx transport under the openai SDK):
//! conversions around `polyroute::bridge::openai_http`, which answers one chat-completions
//! request in-process exactly as the `polyroute serve` gateway would.
//!
//! `NativeRouter.openai_chat(body, headers)` (and `openai_chat_async`) return
//! `(status, headers, body)`: `body` is `bytes`, or a [`NativeSse`] whose reads return SSE
//! frames as `bytes` until `None`. Nothing here can fail after the request was taken: every
//! failure is an OpenAI error reply.

use http::HeaderMap;
use polyroute::bridge::openai_http::{self, OpenAiBody, OpenAiReply, SseHandle};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::aio::LoopBridge;
use crate::convert::to_py;
use crate::errors::{guarded, IntoPyResult, Out};
use crate::runtime::{drive, runtime};
use crate::waiter::Waiter;

/// The request's headers as the core reads them (see `openai_http::header_map`).
pub fn header_map(pairs: Vec<(String, String)>) -> HeaderMap {
    openai_http::header_map(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// An [`OpenAiReply`] on its way to Python: `(status, [(name, value)], bytes | NativeSse)`.
pub struct Reply(pub OpenAiReply);

impl<'py> IntoPyObject<'py> for Reply {
    type Target = PyTuple;
    type Output = Bound<'py, PyTuple>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let OpenAiReply { status, headers, body } = self.0;
        let headers: Vec<(&str, String)> = headers;
        let body = match body {
            OpenAiBody::Json(b) => PyBytes::new(py, &b).into_any(),
            OpenAiBody::Sse(s) => NativeSse { handle: s }.into_bound_py_any(py)?,
        };
        PyTuple::new(py, [status.into_bound_py_any(py)?, headers.into_bound_py_any(py)?, body])
    }
}

/// `(404, headers, body)` for a path the transport does not serve, in OpenAI's error shape
/// (the gateway's answer to an unknown path).
#[pyfunction]
pub fn openai_not_found<'py>(py: Python<'py>, message: &str) -> PyResult<Bound<'py, PyTuple>> {
    guarded(py, || not_found_reply(message).into_pyobject(py))
}

fn not_found_reply(message: &str) -> Reply {
    Reply(openai_http::not_found_reply(message))
}

/// A streamed reply's body: SSE frames, read from a sync or an async iterator.
#[pyclass(frozen, module = "polyroute._native")]
pub struct NativeSse {
    handle: SseHandle,
}

struct Frame(Option<Vec<u8>>);

impl<'py> IntoPyObject<'py> for Frame {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.0 {
            Some(b) => PyBytes::new(py, &b).into_any(),
            None => py.None().into_bound(py),
        })
    }
}

#[pymethods]
impl NativeSse {
    /// The next frame's bytes, or `None` after the last one. Blocks without the GIL.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || Frame(drive(py, self.handle.next_frame())?).into_pyobject(py))
    }

    /// Resolve `future` (of `bridge`'s loop) with the next frame's bytes, or `None`.
    fn next_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, Waiter>) -> PyResult<()> {
        guarded(py, || {
            let next = self.handle.next_frame();
            bridge.spawn(py, future, async move { Out::<Frame>(Ok(Frame(next.await))) })
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

    #[getter]
    fn closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The route trace as a dict, once the stream has ended (`None` before).
    fn trace(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        guarded(py, || match self.handle.trace() {
            Some(t) => Ok(Some(to_py(py, &polyroute::bridge::to_value(&t).py_err(py)?)?.unbind())),
            None => Ok(None),
        })
    }
}
