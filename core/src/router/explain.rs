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
    first_choice(t).unwrap_or_else(|| general(t))
}

fn general(t: &RouteTrace) -> String {
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

/// The usual sentence, "Served by `d` (provider/model) on route `r` (matched), the first
/// choice of the s strategy.", for a request served by its first attempt with nothing
/// skipped: the same words as the general case, pieced together without `format!` (the
/// sentence is built for every request, and its several formatted parts were 4 % of a
/// call's instructions).
fn first_choice(t: &RouteTrace) -> Option<String> {
    let served = t.served_by.as_ref()?;
    let [a] = t.attempts.as_slice() else { return None };
    let plain = !matches!(t.cache, Some(CacheUse::Hit | CacheUse::Fallback))
        && a.outcome == "ok"
        && a.deployment == *served
        && t.candidates.iter().all(|c| c.skipped.is_none());
    if !plain {
        return None;
    }
    let parts = [
        "Served by `",
        served,
        "` (",
        &a.provider,
        "/",
        &a.model,
        ") on route `",
        &t.route,
        "` (",
        &t.matched,
        "), the first choice of the ",
        &t.strategy,
        " strategy.",
    ];
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| s.push_str(p));
    Some(s)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::AttemptTrace;

    #[test]
    fn the_usual_sentence_says_what_the_general_one_says() {
        let mut t = RouteTrace {
            route: "chat".into(),
            matched: "default route".into(),
            strategy: "priority".into(),
            served_by: Some("primary".into()),
            ..Default::default()
        };
        t.attempts.push(AttemptTrace { deployment: "primary".into(), provider: "openai".into(), model: "gpt-4o-mini".into(), ..Default::default() });
        t.candidates.push(CandidateTrace { deployment: "primary".into(), ..Default::default() });
        let fast = first_choice(&t).expect("the usual case");
        assert_eq!(fast, general(&t));
        assert_eq!(fast, "Served by `primary` (openai/gpt-4o-mini) on route `chat` (default route), the first choice of the priority strategy.");
        for cache in [None, Some(CacheUse::Miss)] {
            t.cache = cache;
            assert_eq!(first_choice(&t).as_deref(), Some(fast.as_str()));
        }
        // Anything unusual takes the general path.
        t.cache = Some(CacheUse::Hit);
        assert_eq!(first_choice(&t), None);
        t.cache = None;
        t.candidates.push(CandidateTrace { deployment: "other".into(), skipped: Some("breaker open".into()), ..Default::default() });
        assert_eq!(first_choice(&t), None);
        assert!(sentence(&t).contains("first eligible choice"), "{}", sentence(&t));
    }
}
