//! Core values straight into Python objects through their `Serialize`, without the
//! `serde_json::Value` in between: that pass built a tree of `BTreeMap`s and strings per
//! response only for `to_py` to walk and free it (~10 % of a call's native CPU in a profile
//! of `AsyncRouter.chat`, issue 18). The objects are the ones `to_py(to_value(v))` gives,
//! dicts in field order rather than sorted: `None` for `None`, unit and non-finite floats
//! (JSON has no NaN), strings for unit variants, `{variant: value}` for data-carrying ones,
//! map keys as strings as `serde_json` writes them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};
use pyo3::BoundObject;
use serde::ser::{self, Serialize};

use crate::errors::IntoPyResult;

/// `v` as Python objects. A value that has no JSON form (a map keyed by something other than
/// a string or number) is the same typed `malformed_response` error `bridge::to_value` gives.
pub fn to_py<'py, T: Serialize + ?Sized>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    match v.serialize(Ser { py }) {
        Ok(ob) => Ok(ob),
        Err(Error::Py(e)) => Err(e),
        Err(Error::Unencodable(m)) => Err(polyroute::Error::malformed(format!("cannot encode the result as JSON: {m}"))).py_err(py),
    }
}

#[derive(Debug)]
pub enum Error {
    Py(PyErr),
    Unencodable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Py(e) => std::fmt::Display::fmt(e, f),
            Error::Unencodable(m) => f.write_str(m),
        }
    }
}
impl std::error::Error for Error {}
impl ser::Error for Error {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Error::Unencodable(msg.to_string())
    }
}
impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

type R<'py> = Result<Bound<'py, PyAny>, Error>;

/// Most keys cached, and all past this many are made anew: the field names of answers are a
/// few dozen, but a provider's unmodelled fields and a tool's argument names are anybody's.
const NAMES_CACHED: usize = 512;
/// Longer names are made anew: they are rarely field names.
const NAME_CACHED_LEN: usize = 40;

/// A dict key (or an enum's name), as a `str` shared by every answer. An answer's ~25 keys are
/// the same few names each call; making each anew, hashing it on insert and freeing it with
/// its dict was ~6 k of a sync call's ~88 k instructions (callgrind, issue 18). A cached
/// name is interned, so it also keeps its hash, and is shared with Python's own attribute
/// names. The lock is uncontended (the GIL is held) and is only a few instructions.
fn name<'py>(py: Python<'py>, s: &str) -> Bound<'py, PyString> {
    type Names = HashMap<Box<str>, Py<PyString>, foldhash::fast::RandomState>;
    static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();
    if s.len() > NAME_CACHED_LEN {
        return PyString::new(py, s);
    }
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = names.get(s) {
        return k.bind(py).clone();
    }
    let k = PyString::intern(py, s);
    if names.len() < NAMES_CACHED {
        names.insert(s.into(), k.clone().unbind());
    }
    k
}

#[derive(Clone, Copy)]
struct Ser<'py> {
    py: Python<'py>,
}

impl<'py> Ser<'py> {
    fn int<T>(self, v: T) -> R<'py>
    where
        T: IntoPyObject<'py>,
        PyErr: From<T::Error>,
    {
        Ok(v.into_pyobject(self.py).map_err(PyErr::from)?.into_bound().into_any())
    }
    fn str(self, s: &str) -> R<'py> {
        Ok(PyString::new(self.py, s).into_any())
    }
    fn none(self) -> R<'py> {
        Ok(self.py.None().into_bound(self.py))
    }
    /// `{variant: value}`, serde_json's external tagging.
    fn tagged(self, variant: &str, value: Bound<'py, PyAny>) -> R<'py> {
        let d = PyDict::new(self.py);
        d.set_item(name(self.py, variant), value)?;
        Ok(d.into_any())
    }
}

impl<'py> ser::Serializer for Ser<'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    type SerializeSeq = Seq<'py>;
    type SerializeTuple = Seq<'py>;
    type SerializeTupleStruct = Seq<'py>;
    type SerializeTupleVariant = Seq<'py>;
    type SerializeMap = Map<'py>;
    type SerializeStruct = Map<'py>;
    type SerializeStructVariant = Map<'py>;

    fn serialize_bool(self, v: bool) -> R<'py> {
        Ok(pyo3::types::PyBool::new(self.py, v).to_owned().into_any())
    }
    fn serialize_i8(self, v: i8) -> R<'py> {
        self.int(v)
    }
    fn serialize_i16(self, v: i16) -> R<'py> {
        self.int(v)
    }
    fn serialize_i32(self, v: i32) -> R<'py> {
        self.int(v)
    }
    fn serialize_i64(self, v: i64) -> R<'py> {
        self.int(v)
    }
    fn serialize_i128(self, v: i128) -> R<'py> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> R<'py> {
        self.int(v)
    }
    fn serialize_u16(self, v: u16) -> R<'py> {
        self.int(v)
    }
    fn serialize_u32(self, v: u32) -> R<'py> {
        self.int(v)
    }
    fn serialize_u64(self, v: u64) -> R<'py> {
        self.int(v)
    }
    fn serialize_u128(self, v: u128) -> R<'py> {
        self.int(v)
    }
    fn serialize_f32(self, v: f32) -> R<'py> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> R<'py> {
        if v.is_finite() {
            Ok(PyFloat::new(self.py, v).into_any())
        } else {
            self.none()
        }
    }
    fn serialize_char(self, v: char) -> R<'py> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> R<'py> {
        self.str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> R<'py> {
        Ok(PyList::new(self.py, v)?.into_any())
    }
    fn serialize_none(self) -> R<'py> {
        self.none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R<'py> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> R<'py> {
        self.none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> R<'py> {
        self.none()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> R<'py> {
        // An enum's names are few (a role, a finish reason): shared like keys.
        Ok(name(self.py, variant).into_any())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R<'py> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, variant: &'static str, v: &T) -> R<'py> {
        let inner = v.serialize(self)?;
        self.tagged(variant, inner)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'py>, Error> {
        Ok(Seq { ser: self, items: Vec::with_capacity(len.unwrap_or(0)), variant: None })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'py>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq<'py>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, variant: &'static str, len: usize) -> Result<Seq<'py>, Error> {
        Ok(Seq { ser: self, items: Vec::with_capacity(len), variant: Some(variant) })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Map<'py>, Error> {
        Ok(Map { ser: self, dict: PyDict::new(self.py), key: None, variant: None })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Map<'py>, Error> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Map<'py>, Error> {
        Ok(Map { ser: self, dict: PyDict::new(self.py), key: None, variant: Some(variant) })
    }
}

pub struct Seq<'py> {
    ser: Ser<'py>,
    items: Vec<Bound<'py, PyAny>>,
    variant: Option<&'static str>,
}

impl<'py> Seq<'py> {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.items.push(v.serialize(self.ser)?);
        Ok(())
    }
    fn done(self) -> R<'py> {
        let list = PyList::new(self.ser.py, self.items)?.into_any();
        match self.variant {
            Some(v) => self.ser.tagged(v, list),
            None => Ok(list),
        }
    }
}

/// serde has one trait per kind of sequence; all four build a list (tagged for a variant).
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl<'py> ser::$trait for Seq<'py> {
            type Ok = Bound<'py, PyAny>;
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
                self.push(v)
            }
            fn end(self) -> R<'py> {
                self.done()
            }
        }
    )*};
}
seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

pub struct Map<'py> {
    ser: Ser<'py>,
    dict: Bound<'py, PyDict>,
    key: Option<Bound<'py, PyAny>>,
    variant: Option<&'static str>,
}

impl<'py> Map<'py> {
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> Result<(), Error> {
        self.dict.set_item(name(self.ser.py, key), v.serialize(self.ser)?)?;
        Ok(())
    }
    fn done(self) -> R<'py> {
        match self.variant {
            Some(v) => self.ser.tagged(v, self.dict.into_any()),
            None => Ok(self.dict.into_any()),
        }
    }
}

impl<'py> ser::SerializeMap for Map<'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        self.key = Some(k.serialize(Key { py: self.ser.py })?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let k = self.key.take().ok_or_else(|| <Error as ser::Error>::custom("a map value without its key"))?;
        self.dict.set_item(k, v.serialize(self.ser)?)?;
        Ok(())
    }
    fn end(self) -> R<'py> {
        self.done()
    }
}
/// A struct and a struct variant both build a dict (tagged for a variant).
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl<'py> ser::$trait for Map<'py> {
            type Ok = Bound<'py, PyAny>;
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
                self.field(key, v)
            }
            fn end(self) -> R<'py> {
                self.done()
            }
        }
    )*};
}
struct_like!(SerializeStruct, SerializeStructVariant);

/// Map keys as `serde_json` writes them: strings as they are, numbers and booleans as their
/// text, anything else refused.
struct Key<'py> {
    py: Python<'py>,
}

impl<'py> Key<'py> {
    fn text(self, s: impl std::fmt::Display) -> R<'py> {
        Ok(PyString::new(self.py, &s.to_string()).into_any())
    }
    fn refuse(self) -> R<'py> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
}

impl<'py> ser::Serializer for Key<'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = Error;
    type SerializeSeq = ser::Impossible<Bound<'py, PyAny>, Error>;
    type SerializeTuple = ser::Impossible<Bound<'py, PyAny>, Error>;
    type SerializeTupleStruct = ser::Impossible<Bound<'py, PyAny>, Error>;
    type SerializeTupleVariant = ser::Impossible<Bound<'py, PyAny>, Error>;
    type SerializeMap = ser::Impossible<Bound<'py, PyAny>, Error>;
    type SerializeStruct = ser::Impossible<Bound<'py, PyAny>, Error>;
    type SerializeStructVariant = ser::Impossible<Bound<'py, PyAny>, Error>;

    fn serialize_bool(self, v: bool) -> R<'py> {
        self.text(v)
    }
    fn serialize_i8(self, v: i8) -> R<'py> {
        self.text(v)
    }
    fn serialize_i16(self, v: i16) -> R<'py> {
        self.text(v)
    }
    fn serialize_i32(self, v: i32) -> R<'py> {
        self.text(v)
    }
    fn serialize_i64(self, v: i64) -> R<'py> {
        self.text(v)
    }
    fn serialize_u8(self, v: u8) -> R<'py> {
        self.text(v)
    }
    fn serialize_u16(self, v: u16) -> R<'py> {
        self.text(v)
    }
    fn serialize_u32(self, v: u32) -> R<'py> {
        self.text(v)
    }
    fn serialize_u64(self, v: u64) -> R<'py> {
        self.text(v)
    }
    fn serialize_f32(self, _: f32) -> R<'py> {
        self.refuse()
    }
    fn serialize_f64(self, _: f64) -> R<'py> {
        self.refuse()
    }
    fn serialize_char(self, v: char) -> R<'py> {
        self.text(v)
    }
    fn serialize_str(self, v: &str) -> R<'py> {
        Ok(name(self.py, v).into_any())
    }
    fn serialize_bytes(self, _: &[u8]) -> R<'py> {
        self.refuse()
    }
    fn serialize_none(self) -> R<'py> {
        self.refuse()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> R<'py> {
        self.refuse()
    }
    fn serialize_unit(self) -> R<'py> {
        self.refuse()
    }
    fn serialize_unit_struct(self, _: &'static str) -> R<'py> {
        self.refuse()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> R<'py> {
        Ok(name(self.py, variant).into_any())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R<'py> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> R<'py> {
        self.refuse()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeTupleVariant, Error> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeStructVariant, Error> {
        Err(<Error as ser::Error>::custom("a map key must be a string"))
    }
}
