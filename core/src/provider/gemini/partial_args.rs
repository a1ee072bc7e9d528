//! Streamed function-call arguments (`streamFunctionCallArguments`, Gemini 3 and Vertex).
//!
//! With that option a call arrives as a sequence of `functionCall` parts instead of one:
//! `{name, willContinue: true}` opens it, parts with `partialArgs` set values by JSON path
//! (`{"jsonPath": "$.recipe.steps[1]", "stringValue": "Cook", "willContinue": true}`; a
//! string marked `willContinue` goes on in the next value for the same path), and an empty
//! `functionCall: {}` (or a last part without `willContinue`, or the finish) closes it.
//!
//! This file owns only the assembly: a path-addressed JSON object built value by value,
//! as the official SDKs do. The stream decoder sends the finished object as the call's
//! arguments when the call closes, so a streamed call reads exactly like the non-streamed
//! `args`. Memory stays bounded by what was received: paths are at most [`MAX_DEPTH`] deep
//! and the array slots a call may create (including `null` padding up to an index) are
//! capped at [`MAX_SLOTS`], so `$.a[9999][9999]...` cannot allocate gigabytes.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// An array index past this is not a tool argument but an attack or a bug.
const MAX_INDEX: usize = 10_000;
/// Deepest path accepted.
const MAX_DEPTH: usize = 64;
/// Array slots one call may create in all.
const MAX_SLOTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The arguments of one open call.
#[derive(Debug, Default)]
pub(crate) struct PartialArgs {
    args: Map<String, Value>,
    /// Path of a string value whose next fragment continues it.
    open_string: Option<String>,
    /// Array slots created so far (see [`MAX_SLOTS`]).
    slots: usize,
}

impl PartialArgs {
    /// Apply one `partialArgs` array.
    pub(crate) fn apply(&mut self, partial: &[Value]) -> Result<()> {
        for arg in partial {
            let path = arg.get("jsonPath").and_then(Value::as_str).ok_or_else(|| Error::malformed("gemini partialArgs entry without `jsonPath`"))?;
            let segs = parse_path(path)?;
            let continues = arg.get("willContinue").and_then(Value::as_bool) == Some(true);
            let value = if let Some(s) = arg.get("stringValue").and_then(Value::as_str) {
                let slot = set(&mut self.args, &segs, &mut self.slots)?;
                match slot {
                    Value::String(cur) if self.open_string.as_deref() == Some(path) => cur.push_str(s),
                    other => *other = Value::String(s.to_string()),
                }
                self.open_string = continues.then(|| path.to_string());
                continue;
            } else if let Some(n) = arg.get("numberValue").filter(|n| n.is_number()) {
                n.clone()
            } else if let Some(b) = arg.get("boolValue").and_then(Value::as_bool) {
                Value::Bool(b)
            } else if arg.get("nullValue").is_some() {
                Value::Null
            } else {
                continue; // a marker without a value
            };
            *set(&mut self.args, &segs, &mut self.slots)? = value;
            self.open_string = None;
        }
        Ok(())
    }

    /// The arguments as JSON text, the way a non-streamed `args` object is written.
    pub(crate) fn finish(self) -> String {
        Value::Object(self.args).to_string()
    }
}

/// Whether a `partialArgs` array says more values follow.
pub(crate) fn any_continues(partial: &[Value]) -> bool {
    partial.iter().any(|a| a.get("willContinue").and_then(Value::as_bool) == Some(true))
}

/// `$.a.b[2]['c d']` → segments. The root `$` alone addresses the whole object.
fn parse_path(path: &str) -> Result<Vec<Seg>> {
    let bad = || Error::malformed(format!("gemini partialArgs has an unsupported jsonPath `{}`", snippet(path)));
    let rest = path.strip_prefix('$').ok_or_else(bad)?;
    let b = rest.as_bytes();
    let mut segs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end] != b'.' && b[end] != b'[' {
                    end += 1;
                }
                if end == start {
                    return Err(bad());
                }
                segs.push(Seg::Key(rest[start..end].to_string()));
                i = end;
            }
            b'[' => {
                let close = rest[i..].find(']').map(|c| i + c).ok_or_else(bad)?;
                let inner = &rest[i + 1..close];
                if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    segs.push(Seg::Key(q.to_string()));
                } else if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    segs.push(Seg::Key(q.to_string()));
                } else {
                    let n: usize = inner.parse().map_err(|_| bad())?;
                    if n > MAX_INDEX {
                        return Err(bad());
                    }
                    segs.push(Seg::Index(n));
                }
                i = close + 1;
            }
            _ => return Err(bad()),
        }
    }
    if segs.is_empty() || segs.len() > MAX_DEPTH {
        return Err(bad());
    }
    Ok(segs)
}

/// The slot at `segs` under `root`, creating objects and arrays on the way (a value of the
/// wrong kind in the way is replaced: the later, more specific path wins).
fn set<'a>(root: &'a mut Map<String, Value>, segs: &[Seg], slots: &mut usize) -> Result<&'a mut Value> {
    let (first, rest) = segs.split_first().expect("parse_path never returns an empty path");
    let Seg::Key(k) = first else {
        return Err(Error::malformed("gemini partialArgs path indexes the arguments object as an array"));
    };
    let mut cur = root.entry(k.clone()).or_insert(Value::Null);
    for seg in rest {
        cur = match seg {
            Seg::Key(k) => {
                if !cur.is_object() {
                    *cur = Value::Object(Map::new());
                }
                cur.as_object_mut().expect("just made an object").entry(k.clone()).or_insert(Value::Null)
            }
            Seg::Index(n) => {
                if !cur.is_array() {
                    *cur = Value::Array(Vec::new());
                }
                let a = cur.as_array_mut().expect("just made an array");
                if a.len() <= *n {
                    *slots += n + 1 - a.len();
                    if *slots > MAX_SLOTS {
                        return Err(Error::malformed("gemini partialArgs arrays are implausibly large"));
                    }
                    a.resize(n + 1, Value::Null);
                }
                &mut a[*n]
            }
        };
    }
    Ok(cur)
}

fn snippet(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(parts: &[Value]) -> Value {
        let mut p = PartialArgs::default();
        for part in parts {
            p.apply(part.as_array().unwrap()).unwrap();
        }
        serde_json::from_str(&p.finish()).unwrap()
    }

    #[test]
    fn strings_continue_only_on_the_same_path() {
        let got = run(&[
            json!([{"jsonPath": "$.recipe.steps[1]", "stringValue": "Cook noodles", "willContinue": true}]),
            json!([{"jsonPath": "$.recipe.steps[1]", "stringValue": ".", "willContinue": true}]),
            json!([{"jsonPath": "$.recipe.steps[1]", "stringValue": ""}]),
            json!([{"jsonPath": "$.recipe.steps[0]", "stringValue": "Preheat"}]),
            json!([{"jsonPath": "$.recipe.name", "stringValue": "A"}]),
            json!([{"jsonPath": "$.recipe.name", "stringValue": "B"}]),
            json!([{"jsonPath": "$.ops[0].price", "numberValue": 0.5}, {"jsonPath": "$.ops[0].ok", "boolValue": false}, {"jsonPath": "$['a b']", "nullValue": null}]),
        ]);
        assert_eq!(got, json!({"recipe": {"steps": ["Preheat", "Cook noodles."], "name": "B"}, "ops": [{"price": 0.5, "ok": false}], "a b": null}));
    }

    #[test]
    fn bad_paths_are_malformed_and_bounded() {
        let deep = format!("${}", ".a".repeat(MAX_DEPTH + 1));
        for path in ["location", "$", "$.", "$[0]", "$.a[99999999]", "$.a[x]", "$.a[0", deep.as_str()] {
            let mut p = PartialArgs::default();
            let e = p.apply(&[json!({"jsonPath": path, "stringValue": "x"})]).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::MalformedResponse, "{path}");
        }
        // Padding counts: a few wide nested arrays exhaust the slot budget, not memory.
        let wide = format!("$.a{}", "[9999]".repeat(20));
        let mut p = PartialArgs::default();
        let e = p.apply(&[json!({"jsonPath": wide, "numberValue": 1})]).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::MalformedResponse);
    }
}
