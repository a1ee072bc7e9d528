//! Route traces: why a request went where it went.
//!
//! Plain data, attached to every response and every error the router returns, so a caller
//! in any language can log it or show it. `explanation` is the one-sentence answer; the rest
//! is the evidence (candidates and why some were skipped, each attempt and how it ended).

use serde::{Deserialize, Serialize};

use super::kind::ErrorKind;
use super::Usage;

/// How an attempt ended: `ok`, or the error kind. Serialised as that one string (`"ok"`,
/// `"rate_limited"`...), the shape bindings and logs have always seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    #[default]
    Ok,
    Failed(ErrorKind),
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Failed(k) => k.code(),
        }
    }

    pub fn is_ok(self) -> bool {
        self == AttemptOutcome::Ok
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for AttemptOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for AttemptOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AttemptOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "ok" => Ok(AttemptOutcome::Ok),
            code => ErrorKind::from_code(code)
                .map(AttemptOutcome::Failed)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown attempt outcome `{code}`"))),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateTrace {
    pub deployment: String,
    pub provider: String,
    pub model: String,
    /// 0 for the route's own deployments, 1.. for fallback tiers.
    pub tier: usize,
    /// Why it was not tried (breaker open, missing capability, context too small, data
    /// class not allowed...). `None` for candidates that were eligible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptTrace {
    pub deployment: String,
    pub provider: String,
    pub model: String,
    pub tier: usize,
    /// `ok`, or the error kind.
    pub outcome: AttemptOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// From the router's send to the end of the attempt (or to commit, for streams).
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// How long the router waited before this attempt (backoff or retry hint).
    pub backoff_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Started as a hedge (a backup sent while the previous attempt was still running).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hedge: bool,
}

/// The response cache's part in a request (`RouteTrace::cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheUse {
    /// Served from the cache; no provider was called.
    Hit,
    /// Served from the cache as the degraded tier, after every deployment failed.
    Fallback,
    /// Not found (or not looked up, in `fallback_only` mode), and the answer was not stored.
    Miss,
    /// Not found; the provider's answer was stored.
    Stored,
    /// The route caches, but this request is not cacheable (it samples; see `sampled`).
    Bypass,
}

impl CacheUse {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Fallback => "fallback",
            CacheUse::Miss => "miss",
            CacheUse::Stored => "stored",
            CacheUse::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTrace {
    pub request_id: String,
    pub route: String,
    /// Which rule chose the route (`route requested by name`, `feature=support`, `default route`...).
    pub matched: String,
    pub strategy: String,
    pub candidates: Vec<CandidateTrace>,
    pub attempts: Vec<AttemptTrace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// A degraded answer was served: the policy's static response, or a cached answer
    /// after every deployment failed (`cache` = `fallback`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    /// What the response cache did for this request; absent when the route does not cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheUse>,
    /// Sum over attempts whose cost is known; `None` when some attempt's cost is unknown
    /// and no attempt's is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    pub total_ms: f64,
    /// Decisions that shaped the outcome but are not attempts (budget refusals, rate-limit
    /// waits, retry budget exhausted, restart of a stream...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub explanation: String,
}

impl RouteTrace {
    /// The one-sentence answer to "why did this request go there?".
    pub fn explain(&self) -> &str {
        &self.explanation
    }
}

/// What is known of a stream as soon as it is open (committed), long before its trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    /// The route that served it.
    pub route: String,
    /// The deployment whose answer is streaming; `None` when no deployment serves it (a
    /// response-cache hit, a degraded static answer). With `stream_recovery: restart` a later
    /// deployment may take over; the trace at the end says who finished it.
    pub deployment: Option<String>,
}
