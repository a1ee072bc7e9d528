//! The policy's JSON Schema, generated from the same Rust types serde reads the policy with,
//! so editors complete and check exactly what the loader accepts (`polyroute schema`, and the
//! committed `schema/policy.schema.json`, checked for staleness by a test).
//!
//! Types with hand-written serde (durations, sizes, secrets) describe themselves here. The
//! schema cannot say everything validation checks (references between entries, timing
//! arithmetic, regexes that compile): `polyroute check` remains the full answer.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::{ByteSize, DigestText, Dur, PolicySpec, SecretText};

/// Where editors find the committed schema (the file's `$id`).
pub const SCHEMA_ID: &str = "https://polyroute.dev/schema/policy.schema.json";

/// The policy's JSON Schema (draft 2020-12) as a JSON value.
pub fn policy_json_schema() -> serde_json::Value {
    let mut s = schemars::schema_for!(PolicySpec);
    s.insert("$id".into(), SCHEMA_ID.into());
    s.insert("title".into(), "Polyroute policy".into());
    s.to_value()
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: text with units (`250ms`, `30s`, `5m`, `1h30m`; also `us`, `ns`) or integer milliseconds; at most 366 days.",
            "oneOf": [
                {"type": "string", "pattern": "^\\s*([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|µs|ns))+\\s*$"},
                {"type": "number", "minimum": 0}
            ]
        })
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes: an integer, or text with a unit (`KB`, `MB`, `GB` = powers of 1000; `KiB`, `MiB`, `GiB` = powers of 1024).",
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9]+\\s*(B|KB|MB|GB|KiB|MiB|GiB)?\\s*$"}
            ]
        })
    }
}

impl JsonSchema for DigestText {
    fn schema_name() -> Cow<'static, str> {
        "Sha256Hex".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "A key's SHA-256 in hex (`printf %s \"$KEY\" | sha256sum`)."})
    }
}

impl JsonSchema for SecretText {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "description": "A secret given literally (prefer the `_env` form: a literal key ends up in files and repositories)."})
    }
}

#[cfg(test)]
mod tests {
    /// The committed file is what `polyroute schema` prints (regenerate with
    /// `cargo run -q -p polyroute-server -- schema > schema/policy.schema.json`).
    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/policy.schema.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let now = serde_json::to_string_pretty(&super::policy_json_schema()).unwrap() + "\n";
        assert!(committed == now, "schema/policy.schema.json is stale: run `cargo run -q -p polyroute-server -- schema > schema/policy.schema.json`");
    }

    #[test]
    fn the_schema_knows_every_top_level_key_and_refuses_others() {
        let s = super::policy_json_schema();
        let props = s["properties"].as_object().unwrap();
        for k in ["providers", "deployments", "routes", "budgets", "guards", "cache", "telemetry"] {
            assert!(props.contains_key(k), "{k}");
        }
        assert_eq!(s["additionalProperties"], false);
    }
}
