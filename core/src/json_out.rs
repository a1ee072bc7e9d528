//! Compact JSON text, byte for byte what `serde_json::to_string` writes, with strings
//! written a word at a time.
//!
//! Why not `serde_json::to_string` (issue 18): its string writer steps through every byte of
//! every key and value through a table, then appends each piece separately: 12 k of the ~20 k
//! instructions `to_json` spent on a routed answer (970 bytes, ~80 strings) under callgrind,
//! and a Swift call hands every answer over as this text. Here a string with nothing to escape
//! (nearly all of them) is checked 8 bytes at a time and copied in one piece. Numbers are
//! written by serde_json itself; non-finite floats are `null` as there; map keys follow
//! serde_json's rules (strings; integers, bools, chars and finite floats as their text, quoted).
//! `tests::writes_what_serde_json_writes` holds the two equal over core types and random values.

use serde::ser::{self, Serialize};
use serde_json::Error;

type Result<T> = std::result::Result<T, Error>;

/// `value` as compact JSON text.
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    // An answer with its trace is ~1 KB: grown from serde_json's 128 it was copied three times.
    let out = to_vec(value, 1024)?;
    // SAFETY: only `str`s, ASCII punctuation, escapes and formatted numbers were written.
    Ok(unsafe { String::from_utf8_unchecked(out) })
}

/// `value` as compact JSON bytes, in a buffer of `capacity` to start with: request bodies sent
/// upstream and the gateway's answers as well as what the bindings receive.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    value.serialize(&mut Writer { out: &mut out })?;
    Ok(out)
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether any of the 8 bytes is below 0x20, `"` or `\` (exact: no false negatives; a rare
/// false positive only sends that word through the byte loop).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))) != 0
}

/// Whether `b` holds a byte JSON must escape, 8 bytes at a time (the tail padded with spaces:
/// measured a little cheaper than a byte loop over it).
fn needs_escape(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    if words.any(|w| word_needs_escape(u64::from_le_bytes(w.try_into().expect("8 bytes")))) {
        return true;
    }
    let tail = words.remainder();
    let mut padded = [b' '; 8];
    padded[..tail.len()].copy_from_slice(tail);
    !tail.is_empty() && word_needs_escape(u64::from_le_bytes(padded))
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    if needs_escape(b) {
        out.push(b'"');
        write_escaped(out, b);
        out.push(b'"');
        return;
    }
    // One copy into reserved space: three checked appends per string were a third of this
    // writer's instructions (~80 strings per answer).
    let n = out.len();
    // SAFETY: `reserve` made room for `b.len() + 2` more bytes past `n`; all of them are
    // written before the length covers them, and `b` cannot overlap `out`'s spare capacity.
    unsafe {
        let p = out.as_mut_ptr().add(n);
        *p = b'"';
        std::ptr::copy_nonoverlapping(b.as_ptr(), p.add(1), b.len());
        *p.add(1 + b.len()) = b'"';
        out.set_len(n + b.len() + 2);
    }
}

/// The byte loop, for the rare string with something to escape (as serde_json escapes it).
fn write_escaped(out: &mut Vec<u8>, b: &[u8]) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// A number as serde_json writes it, by serde_json itself: its float formatting has changed
/// between versions (ryu, then zmij), and this text must stay its text.
fn number<N: Serialize>(out: &mut Vec<u8>, v: N) -> Result<()> {
    serde_json::to_writer(out, &v)
}

impl Writer<'_> {
    fn float<N: Serialize>(&mut self, v: N, finite: bool) -> Result<()> {
        if !finite {
            self.out.extend_from_slice(b"null");
            return Ok(());
        }
        number(self.out, v)
    }
}

/// A sequence or map being written: `first` says whether a comma goes before the next element.
struct Compound<'a, 'b> {
    w: &'b mut Writer<'a>,
    first: bool,
    /// Closers after the body (`]`, `}`, or `]}` / `}}` for a variant wrapped in an object).
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(b',');
        }
    }

    fn key(&mut self, key: &str) {
        self.comma();
        write_str(self.w.out, key);
        self.w.out.push(b':');
    }

    fn finish(self) {
        self.w.out.extend_from_slice(self.close);
    }
}

/// `{"variant":` (then `opener`): the object serde_json wraps an enum variant's content in.
fn open_variant(out: &mut Vec<u8>, variant: &str, opener: &[u8]) {
    out.push(b'{');
    write_str(out, variant);
    out.push(b':');
    out.extend_from_slice(opener);
}

macro_rules! numbers {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<()> {
            number(self.out, v)
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'b mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    numbers!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128);
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.float(v, v.is_finite())
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.float(v, v.is_finite())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        // As serde_json: an array of numbers.
        let mut seq = ser::Serializer::serialize_seq(self, Some(v.len()))?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<()> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Result<()> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(self, _: &'static str, _: u32, variant: &'static str, v: &T) -> Result<()> {
        open_variant(self.out, variant, b"");
        v.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a, 'b>> {
        self.out.push(b'[');
        Ok(Compound { w: self, first: true, close: b"]" })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a, 'b>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound<'a, 'b>> {
        open_variant(self.out, variant, b"[");
        Ok(Compound { w: self, first: true, close: b"]}" })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a, 'b>> {
        self.out.push(b'{');
        Ok(Compound { w: self, first: true, close: b"}" })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a, 'b>> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound<'a, 'b>> {
        open_variant(self.out, variant, b"{");
        Ok(Compound { w: self, first: true, close: b"}}" })
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<()> {
        self.comma();
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<()> {
        self.finish();
        Ok(())
    }
}

macro_rules! as_seq {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<()> {
                ser::SerializeSeq::serialize_element(self, v)
            }
            fn end(self) -> Result<()> {
                self.finish();
                Ok(())
            }
        }
    )*};
}
as_seq!(SerializeTuple::serialize_element, SerializeTupleStruct::serialize_field, SerializeTupleVariant::serialize_field);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        self.comma();
        key.serialize(MapKey { out: self.w.out })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<()> {
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<()> {
        self.finish();
        Ok(())
    }
}

macro_rules! as_struct {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, v: &T) -> Result<()> {
                self.key(key);
                v.serialize(&mut *self.w)
            }
            fn end(self) -> Result<()> {
                self.finish();
                Ok(())
            }
        }
    )*};
}
as_struct!(SerializeStruct, SerializeStructVariant);

/// A map key: serde_json's rules (a string; integers, bools and chars as their text quoted).
struct MapKey<'a> {
    out: &'a mut Vec<u8>,
}

fn key_must_be_a_string() -> Error {
    ser::Error::custom("key must be a string")
}

impl MapKey<'_> {
    fn quoted<N: Serialize>(self, v: N) -> Result<()> {
        self.out.push(b'"');
        number(self.out, v)?;
        self.out.push(b'"');
        Ok(())
    }
}

macro_rules! int_keys {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<()> {
            self.quoted(v)
        }
    )*};
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<()> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.extend_from_slice(if v { b"\"true\"" } else { b"\"false\"" });
        Ok(())
    }
    int_keys!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128);
    fn serialize_f32(self, v: f32) -> Result<()> {
        if !v.is_finite() {
            return Err(ser::Error::custom("float key must be finite (got NaN or +/-inf)"));
        }
        self.quoted(v)
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        if !v.is_finite() {
            return Err(ser::Error::custom("float key must be finite (got NaN or +/-inf)"));
        }
        self.quoted(v)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<()> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Result<()> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeTupleVariant> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeStructVariant> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
#[path = "json_out_tests.rs"]
mod tests;
