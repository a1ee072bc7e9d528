//! Structured-output validation: when a request asked for a JSON schema, the answer must
//! parse and satisfy it, or the attempt fails with `invalid_output` (retried or failed over
//! like any other attempt failure).
//!
//! A deliberately small validator for the keywords structured-output schemas use (the
//! subset OpenAI strict mode accepts: type, properties, required, additionalProperties,
//! items, enum, const, anyOf/oneOf/allOf, $ref into $defs/definitions, and the numeric and
//! length bounds). Unknown keywords are ignored rather than failing an answer: a validator
//! stricter than the provider would turn good answers into errors.

use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::types::{ChatRequest, ChatResponse, ResponseFormat};

pub(crate) fn check(req: &ChatRequest, resp: ChatResponse) -> Result<ChatResponse> {
    let Some(ResponseFormat::JsonSchema { schema, .. }) = &req.response_format else {
        return Ok(resp);
    };
    if !resp.tool_calls().is_empty() {
        return Ok(resp); // a tool-call turn is not the structured answer yet
    }
    let text = resp.content();
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(ErrorKind::InvalidOutput, format!("answer is not valid JSON ({e})")).with_provider_code("json_parse"))?;
    let mut errors = Vec::new();
    validate(&v, schema, schema, "$", &mut errors, 0);
    if errors.is_empty() {
        Ok(resp)
    } else {
        errors.truncate(5);
        Err(Error::new(ErrorKind::InvalidOutput, format!("answer does not match the JSON schema: {}", errors.join("; ")))
            .with_provider_code("schema_mismatch"))
    }
}

/// Where `v` breaks `schema` (empty: it satisfies it), with the same validator and the same
/// keyword subset the router applies to structured answers, so an offline evaluation
/// (`polyroute eval`) and live traffic judge an answer alike.
pub fn schema_errors(v: &Value, schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    validate(v, schema, schema, "$", &mut errors, 0);
    errors
}

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    root.pointer(r.strip_prefix('#')?)
}

pub(crate) fn validate(v: &Value, s: &Value, root: &Value, path: &str, errs: &mut Vec<String>, depth: u32) {
    if depth > 64 {
        return; // recursive schemas on deep data: stop rather than overflow
    }
    let Some(obj) = s.as_object() else { return };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        match resolve(root, r) {
            Some(target) => validate(v, target, root, path, errs, depth + 1),
            None => errs.push(format!("{path}: unresolvable $ref {r}")),
        }
        return;
    }
    match obj.get("type") {
        Some(Value::String(t)) if !type_ok(v, t) => {
            errs.push(format!("{path}: expected {t}"));
            return;
        }
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(|t| type_ok(v, t)) => {
            errs.push(format!("{path}: expected one of {}", Value::Array(ts.clone())));
            return;
        }
        _ => {}
    }
    if let Some(e) = obj.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errs.push(format!("{path}: not one of the allowed values"));
        }
    }
    if let Some(c) = obj.get("const") {
        if c != v {
            errs.push(format!("{path}: must equal {c}"));
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            let ok = alts.iter().any(|alt| {
                let mut sub = Vec::new();
                validate(v, alt, root, path, &mut sub, depth + 1);
                sub.is_empty()
            });
            if !ok {
                errs.push(format!("{path}: matches none of {key}"));
            }
        }
    }
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        for alt in all {
            validate(v, alt, root, path, errs, depth + 1);
        }
    }
    if let Some(o) = v.as_object() {
        let props = obj.get("properties").and_then(Value::as_object);
        if let Some(req) = obj.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(r) {
                    errs.push(format!("{path}: missing required property `{r}`"));
                }
            }
        }
        for (k, val) in o {
            let p = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(val, ps, root, &p, errs, depth + 1),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => errs.push(format!("{p}: property not allowed")),
                    Some(extra @ Value::Object(_)) => validate(val, extra, root, &p, errs, depth + 1),
                    _ => {}
                },
            }
        }
    }
    if let Some(a) = v.as_array() {
        if let Some(items) = obj.get("items") {
            for (i, it) in a.iter().enumerate() {
                validate(it, items, root, &format!("{path}[{i}]"), errs, depth + 1);
            }
        }
        bound(obj, "minItems", "maxItems", a.len() as f64, path, "items", errs);
    }
    if let Some(st) = v.as_str() {
        bound(obj, "minLength", "maxLength", st.chars().count() as f64, path, "characters", errs);
    }
    if let Some(n) = v.as_f64() {
        bound(obj, "minimum", "maximum", n, path, "as value", errs);
    }
}

fn bound(s: &serde_json::Map<String, Value>, min: &str, max: &str, x: f64, path: &str, what: &str, errs: &mut Vec<String>) {
    if let Some(m) = s.get(min).and_then(Value::as_f64) {
        if x < m {
            errs.push(format!("{path}: fewer than {m} {what}"));
        }
    }
    if let Some(m) = s.get(max).and_then(Value::as_f64) {
        if x > m {
            errs.push(format!("{path}: more than {m} {what}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(v: Value, s: Value) -> Vec<String> {
        let mut e = Vec::new();
        validate(&v, &s, &s, "$", &mut e, 0);
        e
    }

    #[test]
    fn validates_common_strict_schemas() {
        let s = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "age": {"type": ["integer", "null"]},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            },
            "required": ["name", "age"],
            "additionalProperties": false,
            "$defs": {"tag": {"type": "string", "enum": ["a", "b"]}}
        });
        assert!(errs(json!({"name": "x", "age": 3, "tags": ["a"]}), s.clone()).is_empty());
        assert!(errs(json!({"name": "x", "age": null}), s.clone()).is_empty());
        let e = errs(json!({"name": "", "tags": ["c"], "extra": 1}), s);
        assert_eq!(e.len(), 4, "{e:?}");
    }
}
