//! `guards:` in the policy: what must not leave the process as the caller wrote it.
//!
//! A guard names detectors (built-in or custom regexes) and one action. It can be limited to
//! some routes or data classes, and can set the request's data class so the data rules route
//! it. The detectors themselves live in `crate::guard`; this file is the schema and the checks
//! an operator needs before deploying (unknown routes, patterns that cannot compile or would
//! match everything, ordering mistakes).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Built-in detectors. Each is a pattern plus a check that removes look-alikes (a Luhn sum
/// for cards, the IBAN checksum, valid octets for addresses), because a guard that fires on
/// every order number gets switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
    /// Strings shaped like provider and cloud API keys (`sk-…`, `AKIA…`, `ghp_…`, …).
    ApiKey,
    /// `Bearer <token>` credentials pasted into a prompt.
    BearerToken,
}

impl Detector {
    pub const ALL: [Detector; 8] = [
        Detector::Email,
        Detector::Phone,
        Detector::CreditCard,
        Detector::Iban,
        Detector::UsSsn,
        Detector::IpAddress,
        Detector::ApiKey,
        Detector::BearerToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::CreditCard => "credit_card",
            Detector::Iban => "iban",
            Detector::UsSsn => "us_ssn",
            Detector::IpAddress => "ip_address",
            Detector::ApiKey => "api_key",
            Detector::BearerToken => "bearer_token",
        }
    }
}

/// What a guard does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Replace each finding with its type tag (`[EMAIL]`); the answer keeps the tag.
    Redact,
    /// Replace each distinct value with a numbered placeholder (`[EMAIL_1]`) and put the value
    /// back wherever the answer repeats the placeholder (content, tool-call arguments, streams).
    Mask,
    /// Refuse the request with `guard_rejected` before anything is sent.
    Reject,
    /// Change nothing; report what was found (event, metric, trace note). For rollouts.
    Audit,
}

impl GuardAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Redact => "redact",
            GuardAction::Mask => "mask",
            GuardAction::Reject => "reject",
            GuardAction::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    pub name: String,
    #[serde(default)]
    pub detect: Vec<Detector>,
    /// Custom detectors: name → regular expression (Rust `regex` syntax). The name is what
    /// events and metrics report and, upper-cased, the tag a finding is replaced with.
    #[serde(default)]
    pub patterns: BTreeMap<String, String>,
    pub action: GuardAction,
    /// Only requests routed to one of these routes (empty: every route). A guard limited to
    /// routes runs after routing, so it cannot set the data class routing depends on.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Only requests of one of these data classes (empty: every request).
    #[serde(default)]
    pub data_class: Vec<String>,
    /// When the guard finds anything, the request's data class becomes this (data rules and
    /// `match.data_class` then see it), whatever the caller said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_data_class: Option<String>,
}

/// Longest custom pattern accepted; a policy is operator input, but a pathological regex
/// must not make loading (or every request) slow.
const MAX_PATTERN_LEN: usize = 2000;
/// Compiled size limit per custom pattern (the `regex` crate refuses larger programs).
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Every problem with the guards, as (path, message).
pub(super) fn check(guards: &[GuardSpec], route_names: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let mut names = BTreeSet::new();
    for (i, g) in guards.iter().enumerate() {
        let at = format!("guards[{i}]");
        let mut push = |path: String, msg: String| issues.push((path, msg));
        if g.name.trim().is_empty() {
            push(format!("{at}.name"), "must not be empty".into());
        } else if !names.insert(g.name.as_str()) {
            push(format!("{at}.name"), format!("duplicate guard name `{}`", g.name));
        }
        if g.detect.is_empty() && g.patterns.is_empty() {
            push(at.clone(), "needs at least one detector in `detect` or `patterns`".into());
        }
        let mut seen = BTreeSet::new();
        for d in &g.detect {
            if !seen.insert(*d) {
                push(format!("{at}.detect"), format!("`{}` is listed twice", d.as_str()));
            }
        }
        for (name, pattern) in &g.patterns {
            let p = format!("{at}.patterns.{name}");
            if let Some(msg) = pattern_problem(name, pattern) {
                push(p, msg);
            }
        }
        for (j, r) in g.routes.iter().enumerate() {
            if !route_names.contains(r) {
                push(format!("{at}.routes[{j}]"), format!("unknown route `{r}`"));
            }
        }
        if g.set_data_class.is_some() && !g.routes.is_empty() {
            push(
                format!("{at}.set_data_class"),
                "a guard limited to `routes` runs after routing, so the class it sets could not steer the request; remove `routes` or `set_data_class`".into(),
            );
        }
        if matches!(&g.set_data_class, Some(c) if c.trim().is_empty()) {
            push(format!("{at}.set_data_class"), "must not be empty".into());
        }
    }
    issues
}

fn pattern_problem(name: &str, pattern: &str) -> Option<String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Some("pattern names are lower-case letters, digits and `_` (they become tags and metric labels)".into());
    }
    if Detector::ALL.iter().any(|d| d.as_str() == name) {
        return Some(format!("`{name}` is a built-in detector; list it in `detect` or pick another name"));
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Some(format!("pattern longer than {MAX_PATTERN_LEN} characters"));
    }
    match regex::RegexBuilder::new(pattern).size_limit(PATTERN_SIZE_LIMIT).build() {
        Err(e) => Some(format!("invalid regular expression: {e}")),
        Ok(re) if re.is_match("") => Some("pattern matches the empty string, so it would fire on every request".into()),
        Ok(_) => None,
    }
}
