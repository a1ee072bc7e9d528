//! JSON Schema → the OpenAPI-subset `Schema` that Gemini's `responseSchema` and function
//! `parameters` accept.
//!
//! Gemini rejects a request outright for keywords outside its subset (`additionalProperties`,
//! `$ref`, `$defs`, `const`, type arrays, unsupported `format`s...). A caller's schema is
//! usually written for OpenAI, so instead of failing we translate what has a Gemini
//! equivalent and drop what does not, the way the Google SDKs do:
//! - `$ref` into `$defs`/`definitions` is inlined; a recursive reference deeper than
//!   [`MAX_REF_DEPTH`] becomes a plain `{"type": "object"}` (Gemini cannot express recursion);
//! - `"type": ["string", "null"]` and `anyOf: [..., {"type": "null"}]` become `nullable`;
//!   `oneOf` becomes `anyOf`; a single-member `allOf`/`anyOf` is inlined;
//! - `const` becomes a one-value `enum`; enum values are sent as strings (Gemini's enums are
//!   string-only);
//! - `required` keeps only names that exist in `properties`;
//! - every other keyword not in Gemini's list is dropped.
//!
//! The translation is lossy by design: it narrows what the model is told, never what it may
//! legally answer, except for the dropped constraints, which the router's output validation
//! (against the caller's original schema) still enforces.

use serde_json::{Map, Value};

/// How many nested `$ref` expansions we follow before cutting recursion.
pub const MAX_REF_DEPTH: usize = 8;

const KEEP: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "items",
    "minItems",
    "maxItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "anyOf",
    "propertyOrdering",
];

/// Sanitise a whole schema (the root is where `$defs` live).
pub fn sanitize(schema: &Value) -> Value {
    let defs = collect_defs(schema);
    convert(schema, &defs, 0)
}

fn collect_defs(root: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = root.get(key) {
            for (k, v) in d {
                defs.insert(format!("#/{key}/{k}"), v.clone());
            }
        }
    }
    defs
}

fn convert(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Some(obj) = schema.as_object() else {
        // `true`/`{}`-like schemas: anything goes; Gemini needs a concrete type, so say string.
        return serde_json::json!({"type": "string"});
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        return resolve_ref(obj, r, defs, depth);
    }
    let mut out = Map::new();
    let mut nullable = obj.get("nullable").and_then(Value::as_bool).unwrap_or(false);
    let merged = merge_all_of(obj, defs, depth);
    let obj = &merged;
    if let Some(single) = union(obj, defs, depth, &mut nullable, &mut out) {
        return single;
    }
    type_keyword(obj, &mut nullable, &mut out);
    keywords(obj, defs, depth, &mut nullable, &mut out);
    finish(obj, nullable, out)
}

/// A `$ref` (to `$defs`/`definitions`), inlined; keywords next to it refine it.
fn resolve_ref(obj: &Map<String, Value>, r: &str, defs: &Map<String, Value>, depth: usize) -> Value {
    let target = if depth >= MAX_REF_DEPTH { None } else { defs.get(r) };
    let mut resolved = match target {
        Some(t) => convert(t, defs, depth + 1),
        None => serde_json::json!({"type": "object"}),
    };
    // Keywords next to a `$ref` (description, nullable) refine the referenced schema.
    if let Value::Object(res) = &mut resolved {
        for key in ["description", "title"] {
            if let Some(v) = obj.get(key) {
                res.insert(key.into(), v.clone());
            }
        }
    }
    resolved
}

/// allOf: merge members into this schema (the common use is a single wrapped $ref).
fn merge_all_of(obj: &Map<String, Value>, defs: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let mut merged = obj.clone();
    if let Some(Value::Array(all)) = obj.get("allOf") {
        merged.remove("allOf");
        for member in all {
            if let Value::Object(m) = convert(member, defs, depth + 1) {
                for (k, v) in m {
                    match (merged.get_mut(&k), v) {
                        (Some(Value::Object(a)), Value::Object(b)) if k == "properties" => a.extend(b),
                        (Some(_), _) => {}
                        (None, v) => {
                            merged.insert(k, v);
                        }
                    }
                }
            }
        }
    }
    merged
}

/// anyOf/oneOf: null members make the schema nullable; a single remaining member is inlined
/// (returned), several become `anyOf`.
fn union(obj: &Map<String, Value>, defs: &Map<String, Value>, depth: usize, nullable: &mut bool, out: &mut Map<String, Value>) -> Option<Value> {
    let union = obj.get("anyOf").or_else(|| obj.get("oneOf")).and_then(Value::as_array);
    if let Some(members) = union {
        let mut kept = Vec::new();
        for m in members {
            if m.get("type").and_then(Value::as_str) == Some("null") {
                *nullable = true;
            } else {
                kept.push(convert(m, defs, depth + 1));
            }
        }
        if kept.len() == 1 {
            // Inline the single remaining member, keeping this level's description.
            let mut single = match kept.pop() {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            if let Some(d) = obj.get("description") {
                single.insert("description".into(), d.clone());
            }
            if *nullable {
                single.insert("nullable".into(), Value::Bool(true));
            }
            return Some(Value::Object(single));
        }
        if !kept.is_empty() {
            out.insert("anyOf".into(), Value::Array(kept));
        }
    }

    None
}

/// type: a list with null means nullable; a list of several types becomes anyOf.
fn type_keyword(obj: &Map<String, Value>, nullable: &mut bool, out: &mut Map<String, Value>) {
    match obj.get("type") {
        Some(Value::String(t)) if t != "null" => {
            out.insert("type".into(), Value::String(t.clone()));
        }
        Some(Value::Array(ts)) => {
            let non_null: Vec<&str> = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
            if non_null.len() < ts.len() {
                *nullable = true;
            }
            match non_null.as_slice() {
                [one] => {
                    out.insert("type".into(), Value::String(one.to_string()));
                }
                [] => {}
                many => {
                    let alts = many.iter().map(|t| serde_json::json!({"type": t})).collect();
                    out.insert("anyOf".into(), Value::Array(alts));
                }
            }
        }
        _ => {}
    }
}

/// The keywords Gemini accepts, converted (properties and items recursively, enums as
/// strings, only the formats it knows).
fn keywords(obj: &Map<String, Value>, defs: &Map<String, Value>, depth: usize, nullable: &mut bool, out: &mut Map<String, Value>) {
    for (k, v) in obj {
        if !KEEP.contains(&k.as_str()) || matches!(k.as_str(), "type" | "anyOf" | "nullable") {
            continue;
        }
        match k.as_str() {
            "properties" => {
                if let Value::Object(props) = v {
                    let conv: Map<String, Value> = props.iter().map(|(pk, pv)| (pk.clone(), convert(pv, defs, depth))).collect();
                    out.insert(k.clone(), Value::Object(conv));
                }
            }
            "items" => {
                // Tuple-style `items: [..]` has no Gemini form; the first member is the best hint.
                let item = match v {
                    Value::Array(a) => a.first().cloned().unwrap_or(Value::Bool(true)),
                    other => other.clone(),
                };
                out.insert(k.clone(), convert(&item, defs, depth));
            }
            "enum" => {
                if let Value::Array(vals) = v {
                    let strs: Vec<Value> = vals
                        .iter()
                        .filter(|x| !x.is_null())
                        .map(|x| match x {
                            Value::String(s) => Value::String(s.clone()),
                            other => Value::String(other.to_string()),
                        })
                        .collect();
                    if vals.iter().any(Value::is_null) {
                        *nullable = true;
                    }
                    out.insert(k.clone(), Value::Array(strs));
                    out.insert("type".into(), Value::String("string".into()));
                    out.insert("format".into(), Value::String("enum".into()));
                }
            }
            "format" => {
                let t = obj.get("type").and_then(Value::as_str).unwrap_or_default();
                let ok = matches!(
                    (t, v.as_str().unwrap_or_default()),
                    ("string", "enum" | "date-time") | ("integer", "int32" | "int64") | ("number", "float" | "double")
                );
                if ok && !out.contains_key("format") {
                    out.insert(k.clone(), v.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
}

/// const as a one-value enum, `required` limited to declared properties, nullable, and a
/// type inferred where none was given (Gemini needs one).
fn finish(obj: &Map<String, Value>, nullable: bool, mut out: Map<String, Value>) -> Value {
    if let Some(c) = obj.get("const") {
        let s = match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.insert("type".into(), Value::String("string".into()));
        out.insert("format".into(), Value::String("enum".into()));
        out.insert("enum".into(), Value::Array(vec![Value::String(s)]));
    }

    // `required` may only name declared properties.
    if let Some(Value::Array(req)) = out.get("required").cloned() {
        let props = out.get("properties").and_then(Value::as_object);
        let kept: Vec<Value> = req.into_iter().filter(|r| r.as_str().is_some_and(|n| props.is_some_and(|p| p.contains_key(n)))).collect();
        if kept.is_empty() {
            out.remove("required");
        } else {
            out.insert("required".into(), Value::Array(kept));
        }
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
    if !out.contains_key("type") && !out.contains_key("anyOf") {
        // Gemini needs a type; infer the obvious ones, default to object for property bags.
        let t = if out.contains_key("properties") {
            "object"
        } else if out.contains_key("items") {
            "array"
        } else {
            "string"
        };
        out.insert("type".into(), Value::String(t.into()));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_rejected_keywords_and_inlines_refs() {
        let s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "$defs": {"P": {"enum": [1, 2, 3], "type": "integer", "title": "P"}},
            "properties": {
                "name": {"type": ["string", "null"], "format": "email", "default": "x"},
                "priority": {"$ref": "#/$defs/P", "description": "how urgent"},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "kind": {"const": "task"},
                "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]}
            },
            "required": ["name", "priority", "ghost"]
        });
        let g = sanitize(&s);
        assert_eq!(
            g,
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "nullable": true},
                    "priority": {"type": "string", "format": "enum", "enum": ["1", "2", "3"], "title": "P", "description": "how urgent"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "kind": {"type": "string", "format": "enum", "enum": ["task"]},
                    "maybe": {"type": "integer", "nullable": true}
                },
                "required": ["name", "priority"]
            })
        );
    }

    #[test]
    fn recursion_is_cut_not_looped() {
        let s = json!({
            "$defs": {"Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}, "value": {"type": "string"}}}},
            "$ref": "#/$defs/Node"
        });
        let g = sanitize(&s);
        let mut cur = &g;
        let mut depth = 0;
        while let Some(next) = cur.pointer("/properties/children/items") {
            cur = next;
            depth += 1;
        }
        assert_eq!(depth, MAX_REF_DEPTH);
        assert_eq!(cur, &json!({"type": "object"}));
        assert!(g.to_string().find("$ref").is_none());
    }

    #[test]
    fn garbage_never_panics() {
        for s in [json!(null), json!(true), json!([1, 2]), json!({"type": 5}), json!({"$ref": "#/nope"}), json!({"anyOf": "x"})] {
            let g = sanitize(&s);
            assert!(g.is_object());
        }
    }
}
