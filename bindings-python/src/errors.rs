//! Error mapping: one core `polyroute::Error` becomes an instance of the Python exception
//! class for its kind (`polyroute.RateLimitedError`, ...).
//!
//! The classes are defined in Python (`polyroute/_errors.py`), not with `create_exception!`:
//! there they can carry typed fields, lazy trace objects, `__reduce__` for pickling and extra
//! builtin bases (`InvalidRequestError` is also a `ValueError`), and the stubs are the code.
//! Rust hands over the error's serde form (`polyroute::bridge::error_to_json`) plus its
//! `Display` text and lets `polyroute._errors._from_native` pick the class, so a kind added to
//! the core needs no change here (it maps to the base class until Python gets a class for it).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::IntoPyObjectExt;

use crate::convert::to_py;

static FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The Python exception for a core error.
pub fn to_pyerr(py: Python<'_>, e: &polyroute::Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let factory =
            FACTORY.get_or_try_init(py, || -> PyResult<Py<PyAny>> { Ok(py.import("polyroute._errors")?.getattr("_from_native")?.unbind()) })?;
        let exc = factory.bind(py).call1((to_py(py, &polyroute::bridge::error_to_json(e))?, e.to_string()))?;
        Ok(PyErr::from_value(exc))
    };
    // Only a broken installation (the Python package missing next to the module) gets here;
    // the caller still learns what failed.
    build().unwrap_or_else(|why| PyRuntimeError::new_err(format!("{e} (and polyroute._errors could not build the exception: {why})")))
}

/// The outcome of core work that ran without the GIL: converted (or raised) only when the
/// asyncio bridge delivers it under the GIL, so no worker thread ever waits for the GIL.
pub struct Out<T>(pub Result<T, polyroute::Error>);

impl<'py, T> IntoPyObject<'py> for Out<T>
where
    T: IntoPyObject<'py>,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Ok(v) => v.into_bound_py_any(py),
            Err(e) => Err(to_pyerr(py, &e)),
        }
    }
}

/// `?` for core results inside pymethods.
pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, polyroute::Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, &e))
    }
}

/// Run an entry point's body under the core's panic guard: a panic in the core (a bug) is
/// raised as `polyroute.ConfigError` ("internal error: ...; please report it") instead of
/// pyo3's `PanicException`, and the interpreter carries on.
pub fn guarded<T>(py: Python<'_>, body: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    polyroute::bridge::catch(body).unwrap_or_else(|e| Err(to_pyerr(py, &e)))
}
