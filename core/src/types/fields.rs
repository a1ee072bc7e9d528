//! Keys of hand-written struct deserializers that keep unknown keys in an `extra` map.
//!
//! serde's `#[serde(flatten)]` is how such structs used to be derived. It buffers every
//! unknown key's value in serde's private `Content` tree and then converts that tree into the
//! `extra` map with a second deserializer. A visitor over the map reads each known field
//! straight from the parser and each unknown one straight into a `Value`. Measured on a
//! completion (two unknown keys, one per message): 0.4 % of a routed call (issue 18), since
//! flatten buffers only the unknown keys; more for bodies with many unknown keys.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

/// A key of the map being read: the index of a known field in the list the seed was given,
/// or the key itself for `extra`.
pub(crate) enum Field {
    Known(usize),
    Other(String),
}

/// Reads one key against a struct's known field names. A known key borrowed from the input is
/// matched without allocating; only unknown keys are copied (they are kept).
#[derive(Clone, Copy)]
pub(crate) struct Fields(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Fields {
    type Value = Field;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Fields {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
        Ok(match self.0.iter().position(|k| *k == s) {
            Some(i) => Field::Known(i),
            None => Field::Other(s.to_owned()),
        })
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Field, E> {
        Ok(match self.0.iter().position(|k| *k == s) {
            Some(i) => Field::Known(i),
            None => Field::Other(s),
        })
    }
}

/// Read a known field's value into its slot; a field given twice is an error, as it is for
/// derived structs (`duplicate field `id``).
pub(crate) fn once<'de, T: de::Deserialize<'de>, A: MapAccess<'de>>(m: &mut A, slot: &mut Option<T>, name: &'static str) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(m.next_value()?);
    Ok(())
}

/// A required field, or serde's `missing field` error.
pub(crate) fn required<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(name))
}
