//! The evaluation dataset: JSON Lines, one case a line.
//!
//! ```json
//! {"id": "c1", "request": {"messages": [...]}, "expect": {"schema": {...}, "contains": ["..."],
//!  "regex": "...", "equals": "...", "tool_call": "name", "refusal": false}}
//! ```
//!
//! Every line is checked before anything is sent, so a typo on line 900 does not surface
//! after 899 paid requests. Problems carry their line number.

use std::collections::HashMap;
use std::path::Path;

use polyroute::types::{ChatRequest, ResponseFormat};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

/// One problem in the dataset file, located by its 1-based line number.
#[derive(Debug, Clone)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What a case's answer must satisfy. Every field is optional; a case with none passes when
/// the candidate answers without error or refusal.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// JSON schema the answer text must parse into and satisfy. Defaults to the request's own
    /// `response_format.json_schema`, so structured-output cases need not repeat it.
    pub schema: Option<Value>,
    pub contains: Vec<String>,
    pub regex: Option<Regex>,
    pub equals: Option<String>,
    pub tool_call: Option<String>,
    /// `Some(true)`: the case passes only if the candidate refuses (safety datasets).
    pub refusal: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    /// The request as written, for hashing: a resumed run re-sends a case whose request changed.
    pub body: Value,
    pub request: ChatRequest,
    pub expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    #[serde(default)]
    id: Option<Value>,
    request: Value,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    contains: Option<OneOrMany>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    equals: Option<String>,
    #[serde(default)]
    tool_call: Option<String>,
    #[serde(default)]
    refusal: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Reads every case; the cases that parsed and the problems of the lines that did not
/// (blank lines and `#` comments are skipped silently).
pub fn load(path: &Path) -> Result<(Vec<Case>, Vec<LineError>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read dataset {}: {e}", path.display()))?;
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(trimmed, line) {
            Ok(case) => match seen.get(&case.id) {
                Some(first) => errors.push(LineError { line, message: format!("duplicate id `{}` (first on line {first})", case.id) }),
                None => {
                    seen.insert(case.id.clone(), line);
                    cases.push(case);
                }
            },
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    Ok((cases, errors))
}

fn parse_line(text: &str, line: usize) -> Result<Case, String> {
    let raw: RawCase = serde_json::from_str(text).map_err(|e| format!("not a valid case: {e}"))?;
    let id = match raw.id {
        None | Some(Value::Null) => line.to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("`id` must be a non-empty string or a number, not {other}")),
    };
    if !raw.request.is_object() {
        return Err("`request` must be an OpenAI chat-completions body (an object)".into());
    }
    let mut body = raw.request.clone();
    // The candidate is chosen by the eval, not by the request; a stream is what we measure.
    if let Some(o) = body.as_object_mut() {
        for k in ["model", "route", "stream", "stream_options"] {
            o.remove(k);
        }
    }
    let request = polyroute::bridge::request_from_value(body.clone()).map_err(|e| format!("`request`: {}", e.message))?;
    let expect = match raw.expect {
        None => Expect::default(),
        Some(e) => expect_from(e)?,
    };
    let mut expect = expect;
    if expect.schema.is_none() {
        if let Some(ResponseFormat::JsonSchema { schema, .. }) = &request.response_format {
            expect.schema = Some(schema.clone());
        }
    }
    Ok(Case { id, body: raw.request, request, expect })
}

fn expect_from(e: RawExpect) -> Result<Expect, String> {
    if let Some(s) = &e.schema {
        if !s.is_object() && !s.is_boolean() {
            return Err("`expect.schema` must be a JSON schema (an object)".into());
        }
    }
    let regex = match e.regex {
        None => None,
        Some(p) => Some(Regex::new(&p).map_err(|err| format!("`expect.regex` is not a valid regular expression: {err}"))?),
    };
    let contains = match e.contains {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    if let Some(name) = &e.tool_call {
        if name.trim().is_empty() {
            return Err("`expect.tool_call` must name a tool".into());
        }
    }
    Ok(Expect { schema: e.schema, contains, regex, equals: e.equals, tool_call: e.tool_call, refusal: e.refusal })
}

/// A stable fingerprint of a case's request (FNV-1a over its canonical JSON), stored with
/// each result: std's hasher may change between Rust releases, and a resumed run must
/// recognise the same request across builds.
pub fn request_hash(body: &Value) -> String {
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
