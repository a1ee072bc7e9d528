//! Policy files: parsing (YAML or JSON), validation that reports every problem at once with
//! its path, and the validated [`Policy`] the router compiles.
//!
//! Parsing is done entry by entry (each provider, deployment and route separately) so that a
//! typo in one route does not hide a problem in another: the operator fixes the file once.

mod cache_spec;
mod guards;
mod json_schema;
mod keys;
mod rollout_spec;
mod schema;
mod state_spec;
mod validate;
mod values;

use std::path::Path;

use serde_json::Value;

pub use cache_spec::*;
pub use guards::{Detector, GuardAction, GuardSpec, PATTERN_SIZE_LIMIT};
pub use json_schema::{policy_json_schema, SCHEMA_ID};
pub use keys::{find_key, DigestText, KeyDigest, KeyRateLimit, KeySpec};
pub use rollout_spec::{CanarySpec, ShadowSpec, Sticky};
pub use schema::*;
pub use state_spec::{OnStoreError, RedisSpec, StateSpec};

use crate::error::{Error, Result};

/// One problem in a policy file, located by its path (`routes[1].fallbacks[0].deployments[2]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyIssue {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A validated policy. Construct with [`Policy::from_str`], [`Policy::from_file`] or
/// [`Policy::from_value`]; all of them reject invalid input with a `config` error listing
/// every issue.
#[derive(Debug, Clone)]
pub struct Policy {
    pub spec: PolicySpec,
}

impl Policy {
    /// Parse YAML or JSON text (JSON is YAML, but we try JSON first for exact error positions).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Policy> {
        let v = parse_text(text)?;
        Policy::from_value(v)
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::config(format!("cannot read policy file {}: {e}", path.display())))?;
        Policy::from_str(&text).map_err(|mut e| {
            e.message = format!("{}: {}", path.display(), e.message);
            e
        })
    }

    pub fn from_value(v: Value) -> Result<Policy> {
        let (spec, issues) = validate::parse_and_validate(&v);
        match spec {
            Some(spec) if issues.is_empty() => Ok(Policy { spec }),
            _ => Err(issues_to_error(&issues)),
        }
    }

    /// Every problem in a policy text, without building anything (for linters and CI).
    pub fn check(text: &str) -> Vec<PolicyIssue> {
        match parse_text(text) {
            Ok(v) => validate::parse_and_validate(&v).1,
            Err(e) => vec![PolicyIssue { path: String::new(), message: e.message }],
        }
    }
}

/// The script of a `kind: mock` provider (none: plain echo replies).
pub(crate) fn mock_script(v: Option<&Value>) -> Result<crate::provider::mock::MockScript> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Default::default());
    };
    let script: crate::provider::mock::MockScript =
        serde_json::from_value(v.clone()).map_err(|e| Error::config(format!("invalid mock script: {e}")))?;
    script.validate()?;
    Ok(script)
}

fn parse_text(text: &str) -> Result<Value> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| Error::config(format!("policy is not valid JSON: {e}")));
    }
    let v: Value = serde_yaml_ng::from_str(text).map_err(|e| Error::config(format!("policy is not valid YAML: {e}")))?;
    if !v.is_object() {
        return Err(Error::config("policy must be a mapping with `providers`, `deployments` and `routes`"));
    }
    Ok(v)
}

fn issues_to_error(issues: &[PolicyIssue]) -> Error {
    let mut msg = format!("invalid policy ({} problem{})", issues.len(), if issues.len() == 1 { "" } else { "s" });
    for i in issues {
        msg.push_str("\n- ");
        msg.push_str(&i.to_string());
    }
    Error::config(msg)
}
