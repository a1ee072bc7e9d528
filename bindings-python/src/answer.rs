//! A whole answer handed to Python: the response as a dict, its route trace kept native
//! (`NativeTrace`) until something reads it.
//!
//! Why: turning a routed call's trace into dicts (candidates, attempts, scores, timings) was
//! 22 k of the 114 k instructions a sync `Router.chat` costs in all (callgrind, issue 18), and
//! most callers never look at it. `polyroute.ChatResponse` asks for the dict the first time its
//! `trace`, `deployment`, `explain()`, `to_dict()`, equality, `repr` or pickling need it, and
//! keeps it from then on.

use polyroute::{ChatResponse, RouteTrace};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A routed call's answer: converted to `(dict without "trace", NativeTrace | None)`.
pub struct Answer(pub ChatResponse);

impl<'py> IntoPyObject<'py> for Answer {
    type Target = PyTuple;
    type Output = Bound<'py, PyTuple>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let mut resp = self.0;
        let trace = resp.trace.take().map(NativeTrace);
        (crate::pyser::to_py(py, &resp)?, trace).into_pyobject(py)
    }
}

/// A response's route trace, not yet converted.
#[pyclass(frozen, module = "polyroute._native")]
pub struct NativeTrace(Box<RouteTrace>);

#[pymethods]
impl NativeTrace {
    /// The trace as the dict `chat()` used to carry under `"trace"` (a new one each call).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::errors::guarded(py, || crate::pyser::to_py(py, &*self.0))
    }
}
