//! Where budgets, rate limits and deployment health live (`state:`): absent, in this
//! process; with `redis:`, shared by every process that names the same store and prefix.
//! What the store does is in `crate::state`.

use serde::{Deserialize, Serialize};

use super::values::{Dur, SecretText};

/// Top-level `state:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,
}

/// A Redis or Valkey server (or Cluster) shared by a fleet of processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// Environment variable holding the URL (`redis://[user:password@]host:port[/db]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// The URL itself (prefer `url_env`: URLs carry passwords).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretText>,
    /// A Redis Cluster: the URL names any node (several may be given comma-separated).
    #[serde(default)]
    pub cluster: bool,
    /// Prefix of every key; processes share state exactly when they share store and prefix.
    #[serde(default = "d_prefix")]
    pub key_prefix: String,
    /// Longest a store call may take before `on_error` applies.
    #[serde(default = "d_timeout")]
    pub timeout: Dur,
    #[serde(default)]
    pub on_error: OnStoreError,
    /// How often a process pushes its latency figures and reads the fleet's health view.
    #[serde(default = "d_sync")]
    pub sync_interval: Dur,
}

fn d_prefix() -> String {
    "polyroute:".into()
}
fn d_timeout() -> Dur {
    Dur::ms(50)
}
fn d_sync() -> Dur {
    Dur::ms(250)
}

/// What a request does when the shared store does not answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Hold budgets and limits in this process until the store is back, then reconcile.
    #[default]
    Local,
    /// Refuse with `state_unavailable`.
    FailClosed,
    /// Serve without budgets or limits (the spend is still reconciled later).
    FailOpen,
}

impl OnStoreError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Local => "local",
            OnStoreError::FailClosed => "fail_closed",
            OnStoreError::FailOpen => "fail_open",
        }
    }
}

impl RedisSpec {
    /// The node URLs, from `url` or the environment variable `url_env`.
    pub fn urls(&self) -> Result<Vec<String>, String> {
        let raw = match (&self.url, &self.url_env) {
            (Some(u), None) => u.expose().to_string(),
            (None, Some(env)) => std::env::var(env).map_err(|_| format!("environment variable `{env}` is not set"))?,
            (Some(_), Some(_)) => return Err("set either `url_env` or `url`, not both".into()),
            (None, None) => return Err("needs `url_env` (or `url`)".into()),
        };
        let urls: Vec<String> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if urls.is_empty() {
            return Err("the URL is empty".into());
        }
        Ok(urls)
    }
}
