//! Changing a route's model safely (issue 21): `canary:` sends a slice of a route's traffic to
//! a new deployment first and withdraws it by itself when it does worse than the route's own
//! deployments; `shadow:` sends copies of requests to deployments whose answers nobody sees,
//! to compare them. What the router does with them is in `router::canary` and
//! `router::shadow`.

use serde::{Deserialize, Serialize};

use super::values::{Dur, Period};

/// `routes[].canary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The deployment on trial (any deployment of the policy). Canary requests try it first;
    /// the route's own deployments stay their fallbacks, so a bad canary costs latency, not
    /// answers.
    pub deployment: String,
    /// Share of the route's requests that try the canary first, 0 to 100.
    pub percent: f64,
    /// What keeps a caller on one side: `none` (each request drawn at random), `tenant` or
    /// `feature` (a hash of the value: the same tenant always gets the same side; requests
    /// without the value are drawn at random).
    #[serde(default)]
    pub sticky: Sticky,
    /// How far back the comparison looks.
    #[serde(default = "d_window")]
    pub window: Dur,
    /// Canary attempts in the window before it can be judged (and the route's own attempts
    /// before its latency is compared).
    #[serde(default = "d_min_requests")]
    pub min_requests: u32,
    /// Withdraw when the canary's error rate exceeds the route's own deployments' by more
    /// than this (0.05: five points). With too few attempts of the route's own in the window,
    /// the canary's rate is compared with zero.
    #[serde(default = "d_error_margin")]
    pub max_error_rate_increase: f64,
    /// Withdraw when the canary's median latency exceeds the route's own deployments' median
    /// by this factor.
    #[serde(default = "d_latency_ratio")]
    pub max_latency_ratio: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sticky {
    #[default]
    None,
    Tenant,
    Feature,
}

/// `routes[].shadow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    /// Deployments that get a copy (any deployments of the policy).
    pub deployments: Vec<String>,
    /// Share of the route's requests copied, 0 to 100.
    pub percent: f64,
    /// Copies in flight at once, per route; a copy that would exceed it is dropped (counted),
    /// never queued, so shadow traffic cannot build up behind a slow deployment.
    #[serde(default = "d_max_concurrent")]
    pub max_concurrent: usize,
    /// What the copies may spend per `period` (in this process); past it they are dropped.
    /// Shadow spend never counts against the policy's budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    #[serde(default = "d_period")]
    pub period: Period,
    /// Longest a copy may take (default: the route's total timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

fn d_window() -> Dur {
    Dur::secs(600)
}
fn d_min_requests() -> u32 {
    20
}
fn d_error_margin() -> f64 {
    0.05
}
fn d_latency_ratio() -> f64 {
    1.5
}
fn d_max_concurrent() -> usize {
    4
}
fn d_period() -> Period {
    Period::Day
}
