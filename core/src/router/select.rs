//! Route matching, candidate filtering and strategy ordering.
//!
//! Filtering records a reason for every deployment it drops, because "why wasn't my
//! primary used?" is the first question an operator asks. Filters that depend on live state
//! (the breaker) are re-checked at attempt time too: between planning and sending, a breaker
//! may have opened.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Compiled, Deployment, Route};
use crate::clock::Chance;
use crate::error::{Error, ErrorKind, Result};
use crate::policy::{Capability, MatchSpec, Strategy};
use crate::types::{CandidateTrace, ChatRequest};

/// The answer to "where would this go?", without sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutePlan {
    pub route: String,
    pub matched: String,
    pub strategy: String,
    /// Eligible deployments in the order they would be tried, tier by tier.
    pub order: Vec<String>,
    pub candidates: Vec<CandidateTrace>,
    pub explanation: String,
}

/// Eligible deployments of one tier, in attempt order. The rest is borrowed from the route:
/// owned copies were three allocations per tier per request (issue 18).
#[derive(Debug, Clone)]
pub(crate) struct Tier<'a> {
    pub name: &'a str,
    pub deployments: Vec<Arc<Deployment>>,
    pub on: &'a [ErrorKind],
    pub static_response: Option<&'a str>,
}

pub(crate) struct Selection<'a> {
    pub route: &'a Route,
    pub matched: String,
    pub tiers: Vec<Tier<'a>>,
    pub candidates: Vec<CandidateTrace>,
    /// The route's canary, when this request tries it first.
    pub canary: Option<String>,
}

fn matches(m: &MatchSpec, req: &ChatRequest, stream: bool) -> Option<String> {
    let md = &req.routing;
    let mut why = Vec::new();
    let one = |list: &[String], v: &Option<String>, field: &str, why: &mut Vec<String>| -> bool {
        if list.is_empty() {
            return true;
        }
        match v {
            Some(v) if list.contains(v) => {
                why.push(format!("{field}={v}"));
                true
            }
            _ => false,
        }
    };
    if !one(&m.feature, &md.feature, "feature", &mut why)
        || !one(&m.tenant, &md.tenant, "tenant", &mut why)
        || !one(&m.tier, &md.tier, "tier", &mut why)
        || !one(&m.data_class, &md.data_class, "data_class", &mut why)
    {
        return None;
    }
    if !m.tags.is_empty() {
        let hit = md.tags.iter().find(|t| m.tags.contains(t))?;
        why.push(format!("tag={hit}"));
    }
    for c in &m.capabilities {
        let uses = match c {
            Capability::Tools => req.uses_tools(),
            Capability::Vision => req.uses_vision(),
            Capability::JsonSchema => req.uses_json_schema(),
            Capability::Streaming => stream,
        };
        if !uses {
            return None;
        }
        why.push(format!("uses {c}"));
    }
    Some(if why.is_empty() { "catch-all rule".into() } else { why.join(", ") })
}

/// What the request's `model` names, looked up in this order: a route, a deployment, a provider
/// model id that deployments serve (all of them, in the order the routes list them).
enum Named<'a> {
    Nothing,
    Route(&'a Route),
    Deployments(Vec<&'a str>),
}

fn named_by_model<'a>(c: &'a Compiled, req: &ChatRequest) -> Result<Named<'a>> {
    let Some(m) = req.model.as_deref().filter(|m| !m.is_empty()) else { return Ok(Named::Nothing) };
    if let Some(r) = c.routes.iter().find(|r| r.spec.name == m) {
        return Ok(Named::Route(r));
    }
    if let Some((name, _)) = c.deployments.get_key_value(m) {
        return Ok(Named::Deployments(vec![name.as_str()]));
    }
    let mut serving: Vec<&str> = Vec::new();
    for d in c.routes.iter().flat_map(|r| r.tiers.iter().flat_map(|t| t.deployments.iter())) {
        if d.model == m && !serving.contains(&d.name.as_str()) {
            serving.push(d.name.as_str());
        }
    }
    if !serving.is_empty() {
        return Ok(Named::Deployments(serving));
    }
    // With an explicit route the caller has said where the request goes; SDKs insist on some
    // `model`, so an unrelated one is let through there (documented precedence).
    if req.routing.route.is_some() {
        return Ok(Named::Nothing);
    }
    let routes: Vec<&str> = c.routes.iter().map(|r| r.spec.name.as_str()).collect();
    let mut deps: Vec<&str> = c.deployments.keys().map(String::as_str).collect();
    deps.sort_unstable();
    Err(Error::new(
        ErrorKind::NoRoute,
        format!(
            "model `{m}` names no route, deployment or served model of this policy (routes: {}; deployments: {}); \
             leave `model` out to route by the policy's rules",
            routes.join(", "),
            deps.join(", ")
        ),
    ))
}

fn route_has(r: &Route, names: &[&str]) -> bool {
    r.tiers.iter().any(|t| t.deployments.iter().any(|d| names.contains(&d.name.as_str())))
}

/// Pick the route: by name if the request asks for one (`polyroute.route`), else the route
/// `model` names, else by the rules (preferring, when `model` names deployments, the matched
/// route if it has one of them and otherwise the first route that does).
pub(crate) fn match_route<'a>(c: &'a Compiled, req: &ChatRequest, stream: bool) -> Result<(&'a Route, String)> {
    resolve(c, req, stream).map(|(route, why, _)| (route, why))
}

/// [`match_route`], plus the deployments `model` names that the route has (to be tried
/// first), from one lookup of `model`.
fn resolve<'a>(c: &'a Compiled, req: &ChatRequest, stream: bool) -> Result<(&'a Route, String, Vec<&'a str>)> {
    let named = named_by_model(c, req)?;
    let (route, why) = match (&req.routing.route, &named) {
        (Some(name), _) => c
            .routes
            .iter()
            .find(|r| &r.spec.name == name)
            .map(|r| (r, "route requested by name".to_string()))
            .ok_or_else(|| Error::new(ErrorKind::NoRoute, format!("no route named `{name}`")))?,
        (None, Named::Nothing) => match_by_rules(c, req, stream)?,
        (None, Named::Route(r)) => (*r, "route named by `model`".into()),
        (None, Named::Deployments(names)) => match match_by_rules(c, req, stream) {
            Ok((r, why)) if route_has(r, names) => (r, why),
            ruled => match c.routes.iter().find(|r| route_has(r, names)) {
                Some(r) => (r, format!("route with deployment `{}` named by `model`", names[0])),
                None => ruled?,
            },
        },
    };
    let preferred = match named {
        Named::Deployments(names) => names.into_iter().filter(|n| route_has(route, &[n])).collect(),
        _ => Vec::new(),
    };
    Ok((route, why, preferred))
}

fn match_by_rules<'a>(c: &'a Compiled, req: &ChatRequest, stream: bool) -> Result<(&'a Route, String)> {
    for r in &c.routes {
        if let Some(m) = &r.spec.match_rule {
            if let Some(why) = matches(m, req, stream) {
                return Ok((r, why));
            }
        }
    }
    if let Some(i) = c.default_route {
        return Ok((&c.routes[i], "default route".into()));
    }
    // Without an explicit default, a lone route (or a rule-less first route) serves all.
    if let Some(r) = c.routes.iter().find(|r| r.spec.match_rule.is_none()) {
        return Ok((r, "route without match rule".into()));
    }
    Err(Error::new(ErrorKind::NoRoute, "no route matches this request and the policy has no default route"))
}

/// Why a deployment cannot take this request, if it cannot.
pub(crate) fn static_skip(route: &Route, d: &Deployment, req: &ChatRequest, stream: bool, est_input: u64) -> Option<String> {
    let caps = d.capabilities;
    if req.uses_tools() && !caps.tools {
        return Some("lacks capability `tools`".into());
    }
    if req.uses_vision() && !caps.vision {
        return Some("lacks capability `vision`".into());
    }
    if req.uses_json_schema() && !caps.json_schema {
        return Some("lacks capability `json_schema`".into());
    }
    if stream && !caps.streaming {
        return Some("lacks capability `streaming`".into());
    }
    if let Some(ctx) = d.context_window {
        let out = u64::from(req.max_output_tokens().unwrap_or(0));
        if est_input + out > ctx {
            return Some(format!("context window {ctx} too small for ~{est_input} input + {out} output tokens"));
        }
    }
    if let Some(class) = &req.routing.data_class {
        if let Some(rule) = route.spec.data_rules.get(class) {
            if !rule.providers.is_empty() && !rule.providers.contains(&d.provider) {
                return Some(format!("data class `{class}` may not reach provider `{}`", d.provider));
            }
            if !rule.regions.is_empty() {
                match &d.region {
                    Some(r) if rule.regions.contains(r) => {}
                    Some(r) => return Some(format!("data class `{class}` may not reach region `{r}`")),
                    None => return Some(format!("data class `{class}` is region-restricted and the deployment has no region")),
                }
            }
        }
    }
    None
}

fn breaker_skip(d: &Deployment, now: Instant) -> Option<String> {
    d.health.breaker.check(now).err().map(|rej| rej.describe(now))
}

pub(crate) fn select<'a>(c: &'a Compiled, req: &ChatRequest, stream: bool, now: Instant, chance: &Chance) -> Result<Selection<'a>> {
    let (route, matched, preferred) = resolve(c, req, stream)?;
    let est_input = req.estimate_input_tokens();
    // Sized once: growing them was three reallocations per request.
    let mut candidates = Vec::with_capacity(route.tiers.iter().map(|t| t.deployments.len()).sum::<usize>() + 1);
    let mut tiers = Vec::with_capacity(route.tiers.len() + 1);
    for (ti, t) in route.tiers.iter().enumerate() {
        let mut eligible = Vec::with_capacity(t.deployments.len());
        for d in &t.deployments {
            let fixed = static_skip(route, d, req, stream, est_input);
            // A static skip is final; a breaker skip is re-evaluated at attempt time (the
            // breaker may admit a probe by then), so the deployment stays, ordered last.
            if fixed.is_none() {
                eligible.push(d.clone());
            }
            candidates.push(CandidateTrace {
                deployment: d.name.clone(),
                provider: d.provider.clone(),
                model: d.model.clone(),
                tier: ti,
                skipped: fixed.or_else(|| breaker_skip(d, now)).or_else(|| {
                    let need = est_input + u64::from(req.max_output_tokens().unwrap_or(0));
                    d.health.exhausted(now, need).map(|(why, reset)| format!("{why}, resets in {:.1} s; kept as last resort", reset.as_secs_f64()))
                }),
            });
        }
        let ordered = order(route, eligible, req, est_input, now, chance);
        tiers.push(Tier { name: &t.name, deployments: ordered, on: &t.on, static_response: t.static_response.as_deref() });
    }
    let mut canary = None;
    if !req.routing.order.is_empty() {
        tiers = caller_order(route, tiers, &req.routing.order, "requested order")?;
    } else {
        if !preferred.is_empty() {
            let preferred: Vec<String> = preferred.into_iter().map(str::to_string).collect();
            tiers = caller_order(route, tiers, &preferred, "requested model")?;
        } else if let Some(cn) = route.canary.as_ref().filter(|cn| cn.picks(req, chance)) {
            // The caller's own preferences (order, a named deployment) win over a canary draw.
            let d = &cn.deployment;
            let skipped = static_skip(route, d, req, stream, est_input);
            if !candidates.iter().any(|t| t.deployment == d.name) {
                candidates.push(CandidateTrace {
                    deployment: d.name.clone(),
                    provider: d.provider.clone(),
                    model: d.model.clone(),
                    tier: 0,
                    skipped: skipped.clone(),
                });
            }
            if skipped.is_none() {
                for t in &mut tiers {
                    t.deployments.retain(|x| x.name != d.name);
                }
                tiers.insert(0, Tier { name: "canary", deployments: vec![d.clone()], on: &[], static_response: None });
                canary = Some(d.name.clone());
            }
        }
    }
    Ok(Selection { route, matched, tiers, candidates, canary })
}

/// The caller's order (`polyroute.order`, or the deployments `model` names): those deployments first, exactly in that order,
/// as one tier; the route's tiers follow without them. Deployments the filters removed stay
/// removed (their skip reason is in the trace).
fn caller_order<'a>(route: &Route, tiers: Vec<Tier<'a>>, names: &[String], label: &'static str) -> Result<Vec<Tier<'a>>> {
    let all: Vec<&str> = route.tiers.iter().flat_map(|t| t.deployments.iter().map(|d| d.name.as_str())).collect();
    if let Some(bad) = names.iter().find(|n| !all.contains(&n.as_str())) {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            format!("polyroute.order: `{bad}` is not a deployment of route `{}` (its deployments: {})", route.spec.name, all.join(", ")),
        ));
    }
    let eligible: Vec<Arc<Deployment>> = tiers.iter().flat_map(|t| t.deployments.iter().cloned()).collect();
    let first: Vec<Arc<Deployment>> = names.iter().filter_map(|n| eligible.iter().find(|d| &d.name == n).cloned()).collect();
    let mut out = vec![Tier { name: label, deployments: first, on: &[], static_response: None }];
    for mut t in tiers {
        t.deployments.retain(|d| !names.contains(&d.name));
        out.push(t);
    }
    Ok(out)
}

/// Order eligible deployments by the route's strategy.
fn order(route: &Route, mut ds: Vec<Arc<Deployment>>, req: &ChatRequest, est_input: u64, now: Instant, chance: &Chance) -> Vec<Arc<Deployment>> {
    // Deployments whose breaker refuses go last, in their original order: tried only if a
    // breaker closes before we get to them. Deployments whose provider said they are out of
    // requests/tokens go before those, after the others. Set aside in place: the usual
    // request sets none aside and allocates nothing here (two partitions allocated two
    // `Vec`s per tier).
    let need = est_input + u64::from(req.max_output_tokens().unwrap_or(0));
    let (mut open, mut exhausted) = (Vec::new(), Vec::new());
    ds.retain(|d| {
        let aside = if d.health.breaker.check(now).is_err() {
            &mut open
        } else if d.health.exhausted(now, need).is_some() {
            &mut exhausted
        } else {
            return true;
        };
        aside.push(d.clone());
        false
    });
    match route.spec.strategy {
        Strategy::Priority => {}
        Strategy::Weighted => {
            // Efraimidis–Spirakis: key = u^(1/w), sort descending — a weighted shuffle.
            let mut keyed: Vec<(f64, Arc<Deployment>)> = ds.into_iter().map(|d| (chance.unit().powf(1.0 / d.weight.max(1e-9)), d)).collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            ds = keyed.into_iter().map(|(_, d)| d).collect();
        }
        Strategy::LeastLatency | Strategy::Hedged => {
            // Unmeasured deployments score 0 so they get measured.
            let score = |d: &Deployment| d.health.stats().ewma_ms().unwrap_or(0.0);
            let mut scored: Vec<(f64, Arc<Deployment>)> = ds.into_iter().map(|d| (score(&d), d)).collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0));
            if route.spec.strategy == Strategy::LeastLatency && scored.len() > 2 {
                // Power of two choices: pick two at random and lead with the better, so load
                // spreads instead of stampeding the single fastest deployment.
                let i = chance.below(scored.len());
                let mut j = chance.below(scored.len() - 1);
                if j >= i {
                    j += 1;
                }
                let first = i.min(j); // sorted ascending: the lower index is the better
                let lead = scored.remove(first);
                scored.insert(0, lead);
            }
            ds = scored.into_iter().map(|(_, d)| d).collect();
        }
        Strategy::Cheapest => {
            let out = u64::from(req.max_output_tokens().unwrap_or(256));
            let slo = route.spec.slo;
            let meets = |d: &Deployment| -> bool {
                let mut s = d.health.stats();
                let ttft_ok = match (slo.max_p95_ttft, s.p95_ms()) {
                    (Some(max), Some(p95)) => p95 <= max.0.as_secs_f64() * 1000.0,
                    _ => true,
                };
                let (rate, calls) = s.success_rate(now);
                let rate_ok = match slo.min_success_rate {
                    Some(min) if calls >= 5 => rate >= min,
                    _ => true,
                };
                ttft_ok && rate_ok
            };
            let mut keyed: Vec<(bool, f64, Arc<Deployment>)> =
                ds.into_iter().map(|d| (!meets(&d), d.expected_cost(est_input, out).unwrap_or(f64::INFINITY), d)).collect();
            // In SLO first, then by expected cost (unknown prices last); stable for ties.
            keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            ds = keyed.into_iter().map(|(_, _, d)| d).collect();
        }
    }
    ds.append(&mut exhausted);
    ds.append(&mut open);
    ds
}

pub(crate) fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Priority => "priority",
        Strategy::Weighted => "weighted",
        Strategy::LeastLatency => "least_latency",
        Strategy::Cheapest => "cheapest",
        Strategy::Hedged => "hedged",
    }
}

pub(crate) fn plan(c: &Compiled, req: &ChatRequest, stream: bool, now: Instant, chance: &Chance) -> Result<RoutePlan> {
    req.validate()?;
    let sel = select(c, req, stream, now, chance)?;
    let order: Vec<String> =
        sel.tiers.iter().flat_map(|t| t.deployments.iter().filter(|d| d.health.breaker.check(now).is_ok()).map(|d| d.name.clone())).collect();
    let explanation = super::explain::plan_sentence(&sel.route.spec.name, &sel.matched, &order, &sel.candidates);
    Ok(RoutePlan {
        route: sel.route.spec.name.clone(),
        matched: sel.matched,
        strategy: strategy_name(sel.route.spec.strategy).into(),
        order,
        candidates: sel.candidates,
        explanation,
    })
}
