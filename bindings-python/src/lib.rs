//! `polyroute._native`: the compiled half of the Python package `polyroute`.
//!
//! This crate holds only what a binding may hold (see ARCHITECTURE.md): type conversion
//! (`convert.rs`), error mapping (`errors.rs`), async bridging and the runtime that owns it
//! (`runtime.rs`, `aio.rs`, `driven.rs`, `waiter.rs`), host callbacks and handle lifetime (`router.rs`, `stream.rs`,
//! `openai.rs` for the openai-SDK transport). The public API, its types
//! and its exception classes are plain Python in `python/polyroute/`, which wraps this module;
//! `_native.pyi` is its exact stub (checked by `mypy.stubtest`).

// The core's `Error` travels by value on purpose (see core/src/lib.rs).
#![allow(clippy::result_large_err)]

mod aio;
mod answer;
mod convert;
mod driven;
mod errors;
mod openai;
mod pyser;
mod router;
mod runtime;
mod stream;
mod waiter;
mod workers;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// mimalloc: glibc's malloc and free were ~30 % of a routed call's instructions (issue 18).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Test hook: requests sent since the process started by each of the core's own HTTP
/// clients: blocking (sync calls, call workers), async (runtime tasks), loop-driven.
#[pyfunction]
fn _requests_by_path() -> (u64, u64, u64) {
    use polyroute::provider::inline;
    (inline::sent(), inline::sent_async(), inline::sent_driven())
}

/// Test hook: JSON text to Python objects through the direct serializer the results take
/// (`pyser`), for comparison with `json.loads`.
#[pyfunction]
fn _to_py_direct<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    pyser::to_py(py, &v)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<router::NativeRouter>()?;
    m.add_class::<answer::NativeAnswer>()?;
    m.add_class::<answer::NativeTrace>()?;
    m.add_class::<stream::NativeStream>()?;
    m.add_class::<aio::LoopBridge>()?;
    m.add_class::<waiter::Waiter>()?;
    m.add_class::<openai::NativeSse>()?;
    m.add_function(wrap_pyfunction!(openai::openai_not_found, m)?)?;
    // Test hooks (underscore names, not in `__all__`): a deliberate panic in the core.
    m.add_function(wrap_pyfunction!(router::_debug_panic, m)?)?;
    m.add_function(wrap_pyfunction!(router::_debug_panic_async, m)?)?;
    m.add_function(wrap_pyfunction!(_requests_by_path, m)?)?;
    m.add_function(wrap_pyfunction!(_to_py_direct, m)?)?;
    // Stable snake_case codes in the core's order; `_errors.py` has one class per code and a
    // test checks that the two lists agree.
    let kinds: Vec<&str> = polyroute::ErrorKind::ALL.iter().map(|k| k.code()).collect();
    m.add("ERROR_KINDS", PyTuple::new(py, kinds)?)?;
    m.add("CORE_VERSION", env!("CARGO_PKG_VERSION"))?;
    // The request fields the core knows by name: `Router.chat(**params)` rejects others.
    m.add("REQUEST_FIELDS", PyTuple::new(py, polyroute::bridge::REQUEST_FIELDS)?)?;
    // Event callbacks run on non-Python threads; they must be done before finalization.
    let stop = wrap_pyfunction!(router::stop_callbacks, m)?;
    py.import("atexit")?.call_method1("register", (stop,))?;
    Ok(())
}
