//! Judging one stored answer against its case's expectations.

use serde_json::Value;

use super::dataset::Expect;
use super::record::RunRecord;

/// The check kinds, in the order reports list them.
pub const KINDS: [&str; 6] = ["schema", "contains", "regex", "equals", "tool_call", "refusal"];

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub kind: &'static str,
    pub passed: bool,
    /// Why it failed, for the report's list of failing cases.
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    /// For cases with a schema and an answer: whether the text parsed as JSON.
    pub json_valid: Option<bool>,
    /// For cases with a schema and an answer: whether it satisfied the schema.
    pub schema_valid: Option<bool>,
    /// The first reason the case failed (the error, a refusal, or the first failed check).
    pub reason: Option<String>,
}

/// A case passes when the candidate answered (no error), did not refuse unless a refusal
/// was expected, and every check holds. An error fails every check the case has: a
/// candidate that does not answer does not satisfy its expectations.
pub fn judge(r: &RunRecord, e: &Expect) -> Verdict {
    let mut checks = Vec::new();
    let mut json_valid = None;
    let mut schema_valid = None;
    let error = r.error.as_ref().map(|e| match e.status {
        Some(s) => format!("error {} (HTTP {s}): {}", e.kind, short(&e.message)),
        None => format!("error {}: {}", e.kind, short(&e.message)),
    });
    let answered = r.error.is_none();
    let refused = answered && r.refused();
    let fail = |kind, reason: String| CheckResult { kind, passed: false, reason: Some(reason) };
    let pass = |kind| CheckResult { kind, passed: true, reason: None };
    let text = r.text.as_str();

    if let Some(schema) = &e.schema {
        checks.push(if !answered {
            fail("schema", "no answer".into())
        } else {
            match serde_json::from_str::<Value>(text.trim()) {
                Err(err) => {
                    json_valid = Some(false);
                    schema_valid = Some(false);
                    fail("schema", format!("answer is not JSON ({err})"))
                }
                Ok(v) => {
                    json_valid = Some(true);
                    let errs = polyroute::router::schema_errors(&v, schema);
                    schema_valid = Some(errs.is_empty());
                    if errs.is_empty() {
                        pass("schema")
                    } else {
                        fail("schema", format!("schema: {}", errs.into_iter().take(3).collect::<Vec<_>>().join("; ")))
                    }
                }
            }
        });
    }
    if !e.contains.is_empty() {
        let missing: Vec<&String> = e.contains.iter().filter(|s| !text.contains(s.as_str())).collect();
        checks.push(match (answered, missing.first()) {
            (false, _) => fail("contains", "no answer".into()),
            (true, None) => pass("contains"),
            (true, Some(m)) => fail("contains", format!("does not contain {m:?}")),
        });
    }
    if let Some(re) = &e.regex {
        checks.push(if answered && re.is_match(text) { pass("regex") } else { fail("regex", format!("does not match /{}/", re.as_str())) });
    }
    if let Some(want) = &e.equals {
        // Surrounding whitespace is formatting, not an answer: models add a trailing newline freely.
        checks.push(if answered && text.trim() == want.trim() { pass("equals") } else { fail("equals", format!("is not {:?}", short(want))) });
    }
    if let Some(name) = &e.tool_call {
        let got: Vec<&str> = r.tool_calls.iter().map(|t| t.name.as_str()).collect();
        checks.push(if answered && got.contains(&name.as_str()) {
            pass("tool_call")
        } else if got.is_empty() {
            fail("tool_call", format!("no call to `{name}`"))
        } else {
            fail("tool_call", format!("called {} instead of `{name}`", got.join(", ")))
        });
    }
    if let Some(want) = e.refusal {
        checks.push(match (answered, refused == want) {
            (true, true) => pass("refusal"),
            (false, _) => fail("refusal", "no answer".into()),
            (true, false) if want => fail("refusal", "answered instead of refusing".into()),
            (true, false) => fail("refusal", "refused".into()),
        });
    }
    let unexpected_refusal = refused && e.refusal != Some(true);
    let reason = error
        .or_else(|| unexpected_refusal.then(|| format!("refused: {}", short(r.refusal.as_deref().unwrap_or("content_filter")))))
        .or_else(|| checks.iter().find_map(|c| c.reason.clone()));
    let passed = answered && !unexpected_refusal && checks.iter().all(|c| c.passed);
    Verdict { passed, checks, json_valid, schema_valid, reason }
}

/// A one-line excerpt for reports.
pub fn short(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("{}…", one_line.chars().take(79).collect::<String>())
    } else {
        one_line
    }
}
