//! Type conversion between Python objects and `serde_json::Value`.
//!
//! Every core type is serde, so the binding converts through `Value` instead of mirroring
//! the types as pyclasses: the core's serde shape (OpenAI's, for requests and responses) *is*
//! the Python shape. The walk is direct (no JSON text in between) because it runs on every
//! request and response.
//!
//! Python → JSON accepts exactly what `json.dumps` would, minus its lenient corners: only
//! `str` keys (no silent `str(key)`), no NaN/Infinity (not JSON, and no provider takes them).
//! A value of the wrong type raises `TypeError`, a value of the right type that JSON cannot
//! carry raises `ValueError`; both name where in the argument it was (`messages[1].content`),
//! before anything is sent.
//!
//! Objects that stand for JSON (pydantic models such as the openai SDK's messages, dataclasses,
//! other mappings, polyroute's own views) are turned into it by the Python side's `_plain`,
//! called here when the walk meets one. It used to walk every message in Python first, to find
//! the few that are objects: ~0.5 µs per message per call, for plain dicts nearly always.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deeper than any real request; a guard against cycles (`d["self"] = d`) and stack overflow.
const MAX_DEPTH: usize = 128;

/// JSON → Python (dict, list, str, int, float, bool, None).
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(PyString::new(py, k), to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Why a conversion failed.
enum ConvError {
    /// Ours: a `TypeError` (`type_error`) or `ValueError` naming where, its path collected on
    /// the way out of the recursion (innermost segment first) so the success path builds none.
    Named { type_error: bool, message: String, path: Vec<String> },
    /// What `_plain` raised (a `model_dump` that failed): passed on as it is.
    Raised(PyErr),
}

impl ConvError {
    fn type_err(message: String) -> Self {
        ConvError::Named { type_error: true, message, path: Vec::new() }
    }
    fn value_err(message: String) -> Self {
        ConvError::Named { type_error: false, message, path: Vec::new() }
    }
    fn at(mut self, seg: String) -> Self {
        if let ConvError::Named { path, .. } = &mut self {
            path.push(seg);
        }
        self
    }
    fn into_pyerr(self, root: &str) -> PyErr {
        let (type_error, message, segs) = match self {
            ConvError::Raised(e) => return e,
            ConvError::Named { type_error, message, path } => (type_error, message, path),
        };
        let mut path = root.to_string();
        for seg in segs.iter().rev() {
            if seg.starts_with('[') || path.is_empty() {
                path.push_str(seg);
            } else {
                path.push('.');
                path.push_str(seg);
            }
        }
        let msg = if path.is_empty() { message } else { format!("{path}: {message}") };
        if type_error {
            PyTypeError::new_err(msg)
        } else {
            PyValueError::new_err(msg)
        }
    }
}

/// Python → JSON. `root` names the argument in error messages (`""` for the body itself).
pub fn from_py(ob: &Bound<'_, PyAny>, root: &str) -> PyResult<Value> {
    walk(ob, 0).map_err(|e| e.into_pyerr(root))
}

fn type_name(ob: &Bound<'_, PyAny>) -> String {
    ob.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

fn walk(ob: &Bound<'_, PyAny>, depth: usize) -> Result<Value, ConvError> {
    if depth > MAX_DEPTH {
        return Err(ConvError::value_err(format!("nested deeper than {MAX_DEPTH} levels (a reference cycle?)")));
    }
    if ob.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = ob.cast::<PyString>() {
        return s.to_cow().map(|c| Value::String(c.into_owned())).map_err(|e| ConvError::value_err(e.to_string()));
    }
    // bool before int: `True` is an `int` to Python.
    if let Ok(b) = ob.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if ob.cast::<PyInt>().is_ok() {
        if let Ok(i) = ob.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = ob.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(ConvError::value_err("integer out of the 64-bit range JSON numbers are sent with".into()));
    }
    if let Ok(f) = ob.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| ConvError::value_err(format!("{v} is not a JSON number (NaN and infinities cannot be sent)")));
    }
    if let Ok(d) = ob.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s.to_cow().map_err(|e| ConvError::value_err(e.to_string()))?.into_owned(),
                Err(_) => {
                    let repr = k.repr().map(|r| r.to_string()).unwrap_or_default();
                    return Err(ConvError::type_err(format!("dict keys must be str, got {} key {repr}", type_name(&k))));
                }
            };
            let val = walk(&v, depth + 1).map_err(|e| e.at(key.clone()))?;
            map.insert(key, val);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = ob.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for (i, item) in l.iter().enumerate() {
            out.push(walk(&item, depth + 1).map_err(|e| e.at(format!("[{i}]")))?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = ob.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for (i, item) in t.iter().enumerate() {
            out.push(walk(&item, depth + 1).map_err(|e| e.at(format!("[{i}]")))?);
        }
        return Ok(Value::Array(out));
    }
    match plain(ob) {
        Ok(Some(p)) => walk(&p, depth + 1),
        Ok(None) => {
            Err(ConvError::type_err(format!("unsupported type {}: expected dict, list, tuple, str, int, float, bool or None", type_name(ob))))
        }
        Err(e) => Err(ConvError::Raised(e)),
    }
}

/// `ob` as the plain data it stands for (`polyroute._request._plain`), or `None` when it is not
/// an object that stands for JSON.
fn plain<'py>(ob: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    static PLAIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = ob.py();
    let f = PLAIN.get_or_try_init(py, || py.import("polyroute._request")?.getattr("_plain").map(Bound::unbind))?;
    let p = f.bind(py).call1((ob,))?;
    Ok((!p.is(ob)).then_some(p))
}

/// A JSON result, converted to Python when the asyncio bridge hands it over (under the GIL).
pub struct Json(pub Value);

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.0)
    }
}
