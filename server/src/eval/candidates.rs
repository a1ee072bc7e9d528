//! The router an eval sends through: the policy's providers and deployments as written, with
//! its routes replaced by one single-deployment route per candidate, so each candidate is
//! judged alone (no fallback hides its failures, no retry improves its numbers).

use std::path::Path;
use std::time::Duration;

use polyroute::{Policy, Router};
use serde_json::{json, Value};

pub struct Candidates {
    pub router: Router,
    /// The candidates, in the order asked for.
    pub names: Vec<String>,
    /// deployment → (provider, model), for the report.
    pub described: Vec<(String, String, String)>,
}

/// The route that sends to exactly one candidate.
pub fn route_name(deployment: &str) -> String {
    format!("eval:{deployment}")
}

pub fn build(policy_path: &Path, wanted: Option<&str>, timeout: Duration) -> Result<Candidates, String> {
    let policy = Policy::from_file(policy_path).map_err(|e| e.message)?;
    let known: Vec<String> = policy.spec.deployments.keys().cloned().collect();
    let names = match wanted {
        None => known.clone(),
        Some(list) => parse_list(list, &known)?,
    };
    let mut spec = serde_json::to_value(&policy.spec).map_err(|e| format!("cannot re-read the policy: {e}"))?;
    let o = spec.as_object_mut().ok_or("the policy is not a mapping")?;
    let total = format!("{}ms", timeout.as_millis());
    let routes: Vec<Value> = names
        .iter()
        .map(|d| {
            json!({
                "name": route_name(d),
                "deployments": [d],
                // One attempt: a candidate's transient errors are part of its record.
                "retry": {"attempts_per_deployment": 1, "max_attempts": 1, "wait_for_reopen": "0s"},
                "timeouts": {"total": total},
                // The eval judges the raw answer itself; the router must not turn a
                // schema-breaking answer into an error (or retry it).
                "validate_output": false,
            })
        })
        .collect();
    o.insert("routes".into(), Value::Array(routes));
    o.remove("default_route");
    // The eval has its own spend cap; the policy's budgets and keys name its own routes.
    o.remove("budgets");
    o.remove("keys");
    // In-process state only: an eval must not trip the shared breakers of live traffic.
    o.remove("state");
    // A breaker would turn a failing candidate's later cases into instant `circuit_open`
    // errors, measuring the breaker instead of the candidate.
    o.insert("breaker".into(), json!({"consecutive_failures": 1_000_000, "min_calls": 1_000_000}));
    let policy = Policy::from_value(spec).map_err(|e| format!("cannot build the eval routes: {}", e.message))?;
    let described = names
        .iter()
        .map(|d| {
            let spec = &policy.spec.deployments[d];
            (d.clone(), spec.provider.clone(), spec.model.clone())
        })
        .collect();
    let router = Router::new(policy).map_err(|e| e.message)?;
    Ok(Candidates { router, names, described })
}

fn parse_list(list: &str, known: &[String]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let mut unknown = Vec::new();
    for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !known.iter().any(|k| k == n) {
            unknown.push(n.to_string());
        } else if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown deployment{} {} (the policy has: {})",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", "),
            known.join(", ")
        ));
    }
    if names.is_empty() {
        return Err(format!("--deployments names no deployment (the policy has: {})", known.join(", ")));
    }
    Ok(names)
}
