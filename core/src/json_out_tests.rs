//! `json_out` must write exactly what `serde_json::to_string` writes: every binding and the
//! gateway hand this text over, and hosts compare and store it.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use super::to_string;
use crate::types::ChatResponse;

fn same<T: Serialize + ?Sized>(v: &T) {
    let theirs = serde_json::to_string(v);
    let ours = to_string(v);
    match (&theirs, &ours) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("serde_json: {theirs:?}, ours: {ours:?}"),
    }
}

/// A routed answer as the mock serves it through the router (trace, cost, extra fields).
const ANSWER: &str = r#"{"id":"chatcmpl-mock10421","object":"chat.completion","created":1796616723,"model":"bench-model","choices":[{"finish_reason":"stop","index":0,"logprobs":null,"message":{"role":"assistant","content":"echo: \"hello\"\n\tbenchmark \u0001 \\ / é 😀","annotations":[]}}],"usage":{"completion_tokens":3,"prompt_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1}},"provider":"m","cost_usd":8e-6,"trace":{"request_id":"pr-7f94-0","route":"main","matched":"route without match rule","strategy":"priority","candidates":[{"deployment":"a","provider":"m","model":"bench-model","tier":0},{"deployment":"b","provider":"m","model":"bench-model","tier":1,"skipped":"breaker open"}],"attempts":[{"deployment":"a","provider":"m","model":"bench-model","tier":0,"outcome":"ok","latency_ms":0.38821500000000003,"ttft_ms":0.381195,"backoff_ms":0.0,"usage":{"completion_tokens":3,"prompt_tokens":2,"total_tokens":5},"cost_usd":8e-6}],"served_by":"a","total_cost_usd":8e-6,"total_ms":0.39997299999999997,"explanation":"Served by `a` (m/bench-model) on route `main`."},"service_tier":"default","system_fingerprint":"fp_mock"}"#;

#[test]
fn writes_what_serde_json_writes_for_an_answer() {
    let r: ChatResponse = serde_json::from_str(ANSWER).unwrap();
    same(&r);
    // And the text reads back as the same answer.
    assert_eq!(serde_json::from_str::<ChatResponse>(&to_string(&r).unwrap()).unwrap(), r);
}

#[test]
fn strings_at_every_length_and_escape() {
    // Every ASCII byte, and each at every offset of the 8-byte words the writer checks.
    let all: String = (0u8..128).map(char::from).collect();
    same(&all);
    for c in (0u8..128).map(char::from).chain(['é', '😀', '\u{7f}', '\u{2028}', '\u{feff}']) {
        for len in 0..20 {
            for at in 0..=len {
                let mut s: String = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
                s.insert(at, c);
                same(&s);
                same(&json!({ s.clone(): s }));
            }
        }
    }
}

#[test]
fn numbers() {
    for f in
        [0.0, -0.0, 0.1, 1e-7, 8e-6, 1e21, 1e300, 5e-324, f64::MAX, f64::MIN, 0.388_215_000_000_000_03, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]
    {
        same(&f);
        same(&vec![Some(f), None]);
    }
    for f in [0.1f32, -1.5, f32::MAX, f32::NAN, 3e-45] {
        same(&f);
    }
    same(&(i64::MIN, u64::MAX, i128::MIN, u128::MAX, 0u8, -1i8, i16::MIN, u32::MAX));
    same(&json!([1, -1, 1.5, u64::MAX, i64::MIN]));
}

#[derive(Serialize)]
enum Shapes {
    Unit,
    Newtype(u8),
    Tuple(u8, String),
    Struct {
        a: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u8>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Tagged {
    Start { id: String },
    Delta { text: String },
    Done,
}

#[derive(Serialize)]
struct Flat {
    known: u8,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
    unit: (),
    empty: Vec<u8>,
    nested: Vec<Vec<u8>>,
}

struct Bytes(&'static [u8]);
impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[test]
fn every_serde_shape() {
    same(&[
        Shapes::Unit,
        Shapes::Newtype(1),
        Shapes::Tuple(2, "x".into()),
        Shapes::Struct { a: None, b: Some(3) },
        Shapes::Struct { a: Some(1), b: None },
    ]);
    same(&[Tagged::Start { id: "i".into() }, Tagged::Delta { text: "t\n".into() }, Tagged::Done]);
    let extra = BTreeMap::from([("z".to_string(), json!({"k": [null, true, false]})), ("a b".to_string(), json!("v"))]);
    same(&Flat { known: 1, extra, unit: (), empty: vec![], nested: vec![vec![], vec![1, 2]] });
    same(&Bytes(b"\x00\x01\xff"));
    same(&Bytes(b""));
    same(&'"');
    same(&Some("x"));
    same(&Option::<u8>::None);
    same(&(1, "two", [3.5]));
}

#[test]
fn map_keys_follow_serde_json() {
    same(&BTreeMap::from([(1i64, "a"), (-2, "b")]));
    same(&BTreeMap::from([(u128::MAX, 1)]));
    same(&BTreeMap::from([(true, 1), (false, 2)]));
    same(&BTreeMap::from([('k', 1), ('"', 2)]));
    same(&BTreeMap::from([(Some("k"), 1)]));
    // Keys serde_json refuses: refused here too.
    same(&BTreeMap::from([(vec![1], 1)]));
    same(&BTreeMap::from([((), 1)]));
    let float_keys: Vec<(f64, u8)> = vec![(1.5, 1), (f64::NAN, 2)];
    for (k, v) in float_keys {
        struct M(f64, u8);
        impl Serialize for M {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(&self.0, &self.1)?;
                m.end()
            }
        }
        same(&M(k, v));
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // non-finite become null, as serde_json makes them
        any::<String>().prop_map(Value::String),
        "[ -~\\n\\t\"\\\\é]{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_is_written_as_serde_json_writes_it(v in any_value()) {
        prop_assert_eq!(to_string(&v).unwrap(), serde_json::to_string(&v).unwrap());
    }
}
