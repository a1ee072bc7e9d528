//! A whole answer handed to Python as a `NativeAnswer`: the response stays a Rust value until
//! something reads more of it than its text.
//!
//! Why: turning a routed call's trace into dicts (candidates, attempts, scores, timings) was
//! 22 k of the 114 k instructions a sync `Router.chat` cost in all (callgrind, issue 18), and
//! building the response dict itself another 12 k of an async call's 118 k, where most
//! callers read only `content`. `polyroute.ChatResponse` reads `content` from here and asks
//! for the dict (`to_dict`) the first time anything else needs it, and the trace's dict the
//! first time its `trace`, `deployment`, `explain()`, `to_dict()`, equality, `repr` or
//! pickling need it; it keeps both from then on.

use polyroute::{ChatResponse, RouteTrace};
use pyo3::prelude::*;
use pyo3::types::PyString;

/// A routed call's answer: converted to a `NativeAnswer`.
pub struct Answer(pub ChatResponse);

impl<'py> IntoPyObject<'py> for Answer {
    type Target = NativeAnswer;
    type Output = Bound<'py, NativeAnswer>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, NativeAnswer>> {
        let mut resp = self.0;
        let trace = match resp.trace.take() {
            Some(t) => Some(Py::new(py, NativeTrace(t))?),
            None => None,
        };
        Bound::new(py, NativeAnswer { resp, trace })
    }
}

/// A response not converted yet (its trace apart: `trace`).
#[pyclass(frozen, module = "polyroute._native")]
pub struct NativeAnswer {
    resp: ChatResponse,
    trace: Option<Py<NativeTrace>>,
}

#[pymethods]
impl NativeAnswer {
    /// The response as a dict, without `"trace"` (a new one each call).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::errors::guarded(py, || crate::pyser::to_py(py, &self.resp))
    }

    /// The first choice's text, `""` without one (text parts joined): the core's
    /// `ChatResponse::content`, what `ChatResponse.content` reads from the dict.
    #[getter]
    fn content<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        PyString::new(py, &self.resp.content())
    }

    #[getter]
    fn trace(&self, py: Python<'_>) -> Option<Py<NativeTrace>> {
        self.trace.as_ref().map(|t| t.clone_ref(py))
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
