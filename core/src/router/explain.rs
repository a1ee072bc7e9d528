//! One sentence that says why a request went where it went. Built from the trace alone, so
//! what it says is always backed by the evidence next to it.

use crate::types::{CacheUse, CandidateTrace, RouteTrace};

fn failures_summary(t: &RouteTrace, except: Option<&str>) -> Vec<String> {
    // Group consecutive failures per deployment: "`a` failed with rate_limited ×2".
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for a in t.attempts.iter().filter(|a| a.outcome != "ok") {
        if Some(a.deployment.as_str()) == except && a.outcome == "cancelled" {
            continue;
        }
        match out.iter_mut().find(|(d, _)| *d == a.deployment) {
            Some((_, kinds)) => kinds.push(a.outcome.to_string()),
            None => out.push((a.deployment.clone(), vec![a.outcome.to_string()])),
        }
    }
    out.into_iter()
        .map(|(d, kinds)| {
            let mut uniq: Vec<String> = Vec::new();
            for k in &kinds {
                if !uniq.contains(k) {
                    uniq.push(k.clone());
                }
            }
            let verb = if uniq == ["cancelled"] { "was cancelled (hedge lost)".to_string() } else { format!("failed with {}", uniq.join(" then ")) };
            if kinds.len() > 1 {
                format!("`{d}` {verb} ({} attempts)", kinds.len())
            } else {
                format!("`{d}` {verb}")
            }
        })
        .collect()
}

fn skipped_summary(cands: &[CandidateTrace]) -> Vec<String> {
    cands.iter().filter_map(|c| c.skipped.as_ref().map(|s| format!("`{}` skipped ({s})", c.deployment))).collect()
}

fn join(parts: &[String]) -> String {
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        _ => format!("{} and {}", parts[..parts.len() - 1].join(", "), parts[parts.len() - 1]),
    }
}

pub(crate) fn sentence(t: &RouteTrace) -> String {
    let route = format!("route `{}` ({})", t.route, t.matched);
    let failures = failures_summary(t, None);
    let skips = skipped_summary(&t.candidates);
    let mut s = if t.cache == Some(CacheUse::Hit) {
        format!("Served from the response cache on {route}")
    } else if t.cache == Some(CacheUse::Fallback) {
        let after = if failures.is_empty() { String::new() } else { format!(" after {}", join(&failures)) };
        format!("Served a cached answer as the degraded tier on {route}{after}")
    } else if let Some(served) = &t.served_by {
        let a = t.attempts.iter().rev().find(|a| a.outcome == "ok");
        let who = a.map(|a| format!("`{served}` ({}/{})", a.provider, a.model)).unwrap_or_else(|| format!("`{served}`"));
        if failures.is_empty() {
            let first = if skips.is_empty() { "first" } else { "first eligible" };
            format!("Served by {who} on {route}, the {first} choice of the {} strategy", t.strategy)
        } else {
            format!("Served by {who} on {route} after {}", join(&failures))
        }
    } else if t.degraded {
        if failures.is_empty() {
            format!("Served the policy's static degraded response on {route}")
        } else {
            format!("Served the policy's static degraded response on {route} after {}", join(&failures))
        }
    } else if let Some(refusal) = t.notes.iter().find(|n| n.starts_with("guard `") && n.contains("rejected the request")) {
        // A guard refused before any deployment was considered: that is the whole story.
        return format!("Not sent on {route}: {refusal}.");
    } else if failures.is_empty() {
        format!("Not served on {route}: no deployment could be tried")
    } else {
        format!("Not served on {route}: {}", join(&failures))
    };
    if !skips.is_empty() {
        s.push_str("; ");
        s.push_str(&join(&skips));
    }
    s.push('.');
    s
}

pub(crate) fn plan_sentence(route: &str, matched: &str, order: &[String], cands: &[CandidateTrace]) -> String {
    let skips = skipped_summary(cands);
    let mut s = match order.first() {
        Some(first) if order.len() > 1 => format!(
            "Would go to `{first}` on route `{route}` ({matched}), then {}",
            order[1..].iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
        ),
        Some(first) => format!("Would go to `{first}` on route `{route}` ({matched}) with no fallback"),
        None => format!("Would fail on route `{route}` ({matched}): no eligible deployment"),
    };
    if !skips.is_empty() {
        s.push_str("; ");
        s.push_str(&join(&skips));
    }
    s.push('.');
    s
}
