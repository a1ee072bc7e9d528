//! The value types policy sections share: durations and secrets. Their own file so that
//! sections in files of their own (`state_spec.rs`) and the root (`schema.rs`) both build on
//! them without importing each other.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A credential from a policy file: readable by the router, invisible to `Debug` and never
/// serialised (its field is `skip_serializing`), so dumping a policy cannot leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(s: impl Into<String>) -> Self {
        SecretText(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Serialised as `[redacted]`: a policy read back (`router.policy()`) shows that a value is
/// set, never the value.
impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

// Policy duration parsing lives with the other time parsing (`crate::time`).
pub use crate::time::MAX_POLICY_DURATION;
use crate::time::{parse_policy_duration, policy_duration_too_long as too_long, within_policy_max as within_max};

/// A duration written as `"30s"`/`"250ms"` or as integer milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn ms(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Float(f64),
            Text(String),
        }
        // Numbers are milliseconds. Every path is checked: `1e30` or `"9999999h"` must be a
        // config error with its path, never a panic in `Duration` arithmetic.
        let d = match Raw::deserialize(d)? {
            Raw::Ms(ms) => within_max(Duration::from_millis(ms), format!("{ms} ms")),
            Raw::Float(f) if f.is_finite() && f >= 0.0 => {
                Duration::try_from_secs_f64(f / 1000.0).map_err(|_| too_long(format!("{f} ms"))).and_then(|d| within_max(d, format!("{f} ms")))
            }
            Raw::Float(f) => Err(format!("invalid duration {f}")),
            Raw::Text(s) => parse_policy_duration(&s),
        };
        d.map(Dur).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

/// Budget periods. Calendar periods are aligned to UTC (a day starts at 00:00 UTC, a month
/// on the 1st); rolling ones cover the last period's length, sliding in 1/60 steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Minute,
    Hour,
    Day,
    Month,
}
