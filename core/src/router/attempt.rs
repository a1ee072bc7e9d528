//! The attempt loop: the only retry loop in Polyroute.
//!
//! Generic over what an attempt produces (a complete response for `chat`, a committed
//! stream for `stream`), so retries, fallbacks, hedging, deadlines, breakers and traces are
//! written once. An attempt is "successful" when it produced something the caller can be
//! given: a whole response, or a stream's first content.
//!
//! Decisions per failed attempt, in order:
//! 1. caller errors (`invalid_request`, `cancelled`, `config`) stop: the same request fails
//!    anywhere, and trying elsewhere only hides the real error;
//! 2. retry the same deployment if the kind is retryable there, tries remain, the provider's
//!    hint is under the cap, the deadline allows the wait and the process-wide retry budget
//!    has a token;
//! 3. otherwise fall over to the next candidate of the tier, then to the next tier whose
//!    triggers include the kind; `context_length_exceeded` only to larger context windows,
//!    `content_filter` only across providers and only if the route opts in.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::select::{select, strategy_name, Tier};
use super::{Deployment, Router};
use crate::error::{Error, ErrorKind, Result};
use crate::policy::{OnBudgetExceeded, RouteSpec, Strategy};
use crate::resilience::breaker::{Outcome as BreakerOutcome, Permit, Transition};
use crate::budget::{BudgetInfo, Budgets, Reservation, Scope};
use crate::telemetry::{RouterEvent, Telemetry};
use crate::resilience::retry::{backoff, wait_for};
use crate::types::{AttemptTrace, ChatRequest, ChatResponse, RouteTrace, Usage};

/// What a successful attempt hands back.
pub(crate) struct AttemptOk<T> {
    pub value: T,
    pub ttft: Option<Duration>,
    pub usage: Option<Usage>,
}

pub(crate) type StartFn<T> = Arc<dyn Fn(Arc<Deployment>, Arc<ChatRequest>) -> BoxFuture<'static, Result<AttemptOk<T>>> + Send + Sync>;

pub(crate) enum Served<T> {
    By {
        value: T,
        deployment: Arc<Deployment>,
        /// For streams: the breaker permit, reported when the stream ends. `None` once reported.
        permit: Option<Permit>,
        /// For streams: the budget reservation, settled when the stream ends.
        reservation: Option<Reservation>,
    },
    Static(String),
}

/// Per-request state that outlives the loop (streams keep using it after commit).
pub(crate) struct RequestCtx {
    pub trace: RouteTrace,
    pub started: Instant,
    pub deadline: Instant,
    pub route: RouteSpec,
    pub est_input: u64,
    /// Deployments still untried when the loop returned, for stream restarts.
    pub remaining: Vec<(usize, Arc<Deployment>)>,
    pub telemetry: Arc<Telemetry>,
    pub stream: bool,
}

impl RequestCtx {
    /// Report a finished attempt (the trace entry is the single source of the numbers).
    pub(crate) fn emit_attempt(&self, a: &AttemptTrace, provider_kind: &str, response_model: Option<String>) {
        let u = a.usage.unwrap_or_default();
        self.telemetry.emit(RouterEvent::AttemptFinished {
            request_id: self.trace.request_id.clone(),
            route: self.trace.route.clone(),
            deployment: a.deployment.clone(),
            provider: a.provider.clone(),
            provider_kind: provider_kind.to_string(),
            model: a.model.clone(),
            outcome: a.outcome.clone(),
            latency_ms: a.latency_ms,
            ttft_ms: a.ttft_ms,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_usd: a.cost_usd,
            response_model,
        });
    }

    /// Report the end of the request. Call after `finish_trace`.
    pub(crate) fn emit_finished(&self, outcome: &str) {
        let t = &self.trace;
        let served = t.served_by.as_ref().and_then(|s| t.attempts.iter().rev().find(|a| &a.deployment == s && a.outcome == "ok"));
        self.telemetry.emit(RouterEvent::RequestFinished {
            request_id: t.request_id.clone(),
            route: t.route.clone(),
            outcome: outcome.to_string(),
            deployment: t.served_by.clone(),
            provider: served.map(|a| a.provider.clone()),
            model: served.map(|a| a.model.clone()),
            duration_ms: t.total_ms,
            attempts: t.attempts.len() as u32,
            cost_usd: t.total_cost_usd,
            explanation: t.explanation.clone(),
        });
    }

    /// After spend was recorded: report budgets that crossed 80 %, 90 % or 100 %.
    pub(crate) fn emit_budget_thresholds(&self, budgets: &Budgets) {
        if budgets.is_empty() {
            return;
        }
        for (st, threshold) in budgets.crossed(super::unix_now()) {
            self.telemetry.emit(RouterEvent::BudgetThreshold { budget: st.budget, scope: st.scope, threshold, spent: st.spent, limit: st.limit });
        }
    }

    pub(crate) fn emit_transition(&self, deployment: &str, tr: Option<Transition>) {
        if let Some(tr) = tr {
            self.telemetry.emit(RouterEvent::BreakerChanged { deployment: deployment.to_string(), from: tr.from, to: tr.to, reason: tr.reason });
        }
    }
}

/// Kinds retried on the same deployment when the route does not say otherwise.
const DEFAULT_RETRY_ON: &[ErrorKind] = &[
    ErrorKind::RateLimited,
    ErrorKind::Overloaded,
    ErrorKind::ServerError,
    ErrorKind::Timeout,
    ErrorKind::Connection,
    ErrorKind::StreamInterrupted,
    ErrorKind::MalformedResponse,
    ErrorKind::InvalidOutput,
];

fn stops(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::InvalidRequest | ErrorKind::Cancelled | ErrorKind::Config)
}

/// Reserve an attempt's worst case against every budget and rate limit that applies.
fn reserve(budgets: &Budgets, req: &ChatRequest, route: &str, est_input: u64, d: &Deployment) -> std::result::Result<Option<Reservation>, BudgetInfo> {
    if budgets.is_empty() && d.rate_limit.is_none() {
        return Ok(None);
    }
    let out = req.max_output_tokens().map(u64::from).or(d.max_output_tokens).unwrap_or(DEFAULT_OUTPUT_RESERVE);
    let usd = d.expected_cost(est_input, out);
    let scope = Scope { tenant: req.metadata.tenant.as_deref(), feature: req.metadata.feature.as_deref(), route, deployment: &d.name };
    budgets.reserve(&scope, usd, est_input + out, d.rate_limit.as_ref(), super::unix_now()).map(Some)
}

/// Output tokens reserved when neither the request nor the catalog caps them.
const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

fn budget_error(info: BudgetInfo, d: &Deployment) -> Error {
    let local_rate = info.budget.starts_with("rate_limit:");
    let wait = (info.resets_at - super::unix_now()).max(0.0);
    let msg = if info.remaining.is_nan() {
        format!("budget `{}` cannot be held on `{}`: its price is unknown (set `pricing` in the policy)", info.budget, d.name)
    } else {
        format!(
            "{} `{}` would be exceeded on `{}`: needs {:.6} {}, {:.6} of {} left; resets in {:.0} s",
            if local_rate { "rate limit" } else { "budget" },
            info.budget,
            d.name,
            info.needed,
            info.unit,
            info.remaining,
            info.limit,
            wait
        )
    };
    let kind = if local_rate { ErrorKind::RateLimited } else { ErrorKind::BudgetExceeded };
    let mut e = Error::new(kind, msg).at(&d.provider, &d.model);
    if local_rate {
        e.retry_after = Duration::try_from_secs_f64(wait).ok();
    }
    e.budget = Some(Box::new(info));
    e
}

/// Does a fallback tier take over after this kind?
fn tier_triggered(tier: &Tier, kind: ErrorKind, route: &RouteSpec) -> bool {
    if !tier.on.is_empty() {
        return tier.on.contains(&kind);
    }
    match kind {
        ErrorKind::ContentFilter => route.content_filter_fallover,
        k => !stops(k),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn first_token_timeout(d: &Deployment, route: &RouteSpec) -> Duration {
    d.timeouts.first_token.or(route.timeouts.first_token).map(|t| t.0).unwrap_or(super::DEFAULT_FIRST_TOKEN)
}

pub(crate) fn idle_timeout(d: &Deployment, route: &RouteSpec) -> Duration {
    d.timeouts.idle.or(route.timeouts.idle).map(|t| t.0).unwrap_or(super::DEFAULT_IDLE)
}

pub(crate) fn new_ctx(router: &Router, route: &RouteSpec, matched: String, est_input: u64) -> RequestCtx {
    let started = Instant::now();
    let total = route.timeouts.total.map(|t| t.0).unwrap_or(super::DEFAULT_TOTAL);
    let n = router.inner.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    RequestCtx {
        trace: RouteTrace {
            request_id: format!("pr-{:x}-{n}", std::process::id()),
            route: route.name.clone(),
            matched,
            strategy: strategy_name(route.strategy).into(),
            ..Default::default()
        },
        started,
        deadline: started + total,
        route: route.clone(),
        est_input,
        remaining: Vec::new(),
        telemetry: router.inner.telemetry.clone(),
        stream: false,
    }
}

fn attempt_trace(d: &Deployment, tier: usize) -> AttemptTrace {
    AttemptTrace {
        deployment: d.name.clone(),
        provider: d.provider.clone(),
        model: d.model.clone(),
        tier,
        outcome: String::new(),
        ..Default::default()
    }
}

/// Finish the trace (totals, explanation) and attach it to an error.
pub(crate) fn fail(mut e: Error, ctx: &mut RequestCtx) -> Error {
    finish_trace(ctx);
    ctx.emit_finished(e.kind.code());
    e.trace = Some(Box::new(ctx.trace.clone()));
    e
}

pub(crate) fn finish_trace(ctx: &mut RequestCtx) {
    let t = &mut ctx.trace;
    let known: Vec<f64> = t.attempts.iter().filter_map(|a| a.cost_usd).collect();
    t.total_cost_usd = if known.is_empty() { None } else { Some(known.iter().sum()) };
    t.total_ms = ms(ctx.started.elapsed());
    t.explanation = super::explain::sentence(t);
}

/// Run attempts until one succeeds or nothing is left.
pub(crate) async fn run<T: Send + 'static>(
    router: &Router,
    req: Arc<ChatRequest>,
    stream: bool,
    start: StartFn<T>,
    exclude: &[String],
    deadline: Option<Instant>,
) -> Result<(Served<T>, RequestCtx)> {
    let compiled = router.snapshot();
    let now = Instant::now();
    let sel = select(&compiled, &req, stream, now)?;
    let mut ctx = new_ctx(router, &sel.route.spec, sel.matched.clone(), req.estimate_input_tokens());
    // A stream restart continues the same request: it keeps that request's deadline
    // instead of starting a fresh one.
    if let Some(d) = deadline {
        ctx.deadline = ctx.deadline.min(d);
    }
    ctx.trace.candidates = sel.candidates.clone();
    ctx.stream = stream;
    ctx.telemetry.emit(RouterEvent::RequestStarted { request_id: ctx.trace.request_id.clone(), route: ctx.trace.route.clone(), stream });
    compiled.retry_budget.on_request(now);
    let mut last_failed: Option<(String, ErrorKind)> = None;
    let route = sel.route.spec.clone();
    let retry_on: Vec<ErrorKind> = route.retry.retry_on.clone().unwrap_or_else(|| DEFAULT_RETRY_ON.to_vec());
    let mut attempts: u32 = 0;
    let mut spent = 0.0f64;
    let mut last_err: Option<Error> = None;
    // (deployment name, context window) of a context_length_exceeded failure.
    let mut ctx_fail: Option<Option<u64>> = None;
    let mut filtered_providers: Vec<String> = Vec::new();

    let tiers = sel.tiers;
    for (ti, tier) in tiers.iter().enumerate() {
        if ti > 0 {
            match &last_err {
                Some(e) if tier_triggered(tier, e.kind, &route) => {}
                Some(e) => {
                    ctx.trace.notes.push(format!("tier `{}` not entered: it does not take over after {}", tier.name, e.kind));
                    continue;
                }
                // Nothing failed yet (every earlier candidate was skipped): enter the tier.
                None => {}
            }
        }
        if let Some(text) = &tier.static_response {
            ctx.trace.degraded = true;
            ctx.trace.notes.push(format!("served the static response of tier `{}`", tier.name));
            finish_trace(&mut ctx);
            return Ok((Served::Static(text.clone()), ctx));
        }
        let mut i = 0;
        while i < tier.deployments.len() {
            let dep = tier.deployments[i].clone();
            i += 1;
            if exclude.contains(&dep.name) {
                continue;
            }
            if let Some(window) = ctx_fail {
                let larger = matches!((dep.context_window, window), (Some(c), Some(w)) if c > w) || (dep.context_window.is_some() && window.is_none());
                if !larger {
                    ctx.trace.notes.push(format!("`{}` skipped: context window not known to be larger than the one that overflowed", dep.name));
                    continue;
                }
            }
            if filtered_providers.contains(&dep.provider) {
                ctx.trace.notes.push(format!("`{}` skipped: provider `{}` already refused the content", dep.name, dep.provider));
                continue;
            }
            let mut tries: u32 = 0;
            let mut wait = Duration::ZERO;
            let need = ctx.est_input + req.max_output_tokens().map(u64::from).unwrap_or(0);
            if let Some((why, reset)) = dep.health.exhausted(Instant::now(), need) {
                let more = i < tier.deployments.len() || ti + 1 < tiers.len();
                let fits = Instant::now() + reset < ctx.deadline;
                if more || !fits {
                    ctx.trace.notes.push(format!("`{}` avoided: {why}, resets in {:.1} s", dep.name, reset.as_secs_f64()));
                    last_err = Some(
                        Error::new(ErrorKind::RateLimited, format!("`{}`: {why}", dep.name)).at(&dep.provider, &dep.model).with_retry_after(Some(reset)),
                    );
                    continue;
                }
                // The last candidate: wait for the announced reset rather than collect a 429.
                ctx.trace.notes.push(format!("waited {:.1} s for `{}` to reset ({why})", reset.as_secs_f64(), dep.name));
                tokio::time::sleep(reset).await;
                wait = reset;
            }
            loop {
                if attempts >= route.retry.max_attempts {
                    ctx.trace.notes.push(format!("max attempts ({}) reached", route.retry.max_attempts));
                    return Err(fail(last_err.unwrap_or_else(|| Error::new(ErrorKind::NoRoute, "no attempt allowed")), &mut ctx));
                }
                if let Some(max) = route.retry.max_request_cost_usd {
                    if spent >= max {
                        ctx.trace.notes.push(format!("request spend limit ${max} reached"));
                        let e = Error::new(ErrorKind::BudgetExceeded, format!("request spent ${spent:.6} of its ${max} limit across attempts"));
                        return Err(fail(e, &mut ctx));
                    }
                }
                let now = Instant::now();
                if now >= ctx.deadline {
                    let e = last_err.take().map(|mut e| {
                        e.message = format!("deadline reached; last attempt: {}", e.message);
                        e
                    });
                    let e = e.unwrap_or_else(|| Error::new(ErrorKind::Timeout, "total deadline reached before any attempt"));
                    return Err(fail(e, &mut ctx));
                }
                let permit = match dep.health.breaker.acquire(now) {
                    Ok((p, transition)) => {
                        ctx.emit_transition(&dep.name, transition);
                        p
                    }
                    Err(rej) => {
                        let why = rej.describe(now);
                        ctx.trace.notes.push(format!("`{}` skipped at attempt time: {why}", dep.name));
                        if last_err.is_none() || last_err.as_ref().is_some_and(|e| e.kind == ErrorKind::CircuitOpen) {
                            last_err = Some(Error::new(ErrorKind::CircuitOpen, format!("`{}`: {why}", dep.name)).at(&dep.provider, &dep.model));
                        }
                        break;
                    }
                };
                let reservation = match reserve(&compiled.budgets, &req, &route.name, ctx.est_input, &dep) {
                    Ok(r) => r,
                    Err(info) => {
                        drop(permit);
                        let e = budget_error(info, &dep);
                        ctx.trace.notes.push(e.message.clone());
                        let fall_on = e.kind == ErrorKind::RateLimited || route.on_budget_exceeded == OnBudgetExceeded::Fallback;
                        if !fall_on {
                            return Err(fail(e, &mut ctx));
                        }
                        last_err = Some(e);
                        break;
                    }
                };
                attempts += 1;
                tries += 1;
                if let Some((from, kind)) = last_failed.take() {
                    if from != dep.name {
                        ctx.telemetry.emit(RouterEvent::FallbackTaken {
                            request_id: ctx.trace.request_id.clone(),
                            route: ctx.trace.route.clone(),
                            from,
                            to: dep.name.clone(),
                            reason: kind.code().into(),
                        });
                    }
                }
                ctx.telemetry.emit(RouterEvent::AttemptStarted {
                    request_id: ctx.trace.request_id.clone(),
                    route: ctx.trace.route.clone(),
                    deployment: dep.name.clone(),
                    provider: dep.provider.clone(),
                    model: dep.model.clone(),
                    attempt: attempts,
                });
                let mut at = attempt_trace(&dep, ti);
                at.backoff_ms = ms(wait);
                let remaining = ctx.deadline.saturating_duration_since(now);
                let limit = first_token_timeout(&dep, &route).min(remaining);

                // Hedged: if the primary has not delivered by the hedge delay, start the next
                // candidate too; the first success wins and the other is dropped (cancelled).
                let hedge_with = (route.strategy == Strategy::Hedged && i < tier.deployments.len()).then(|| tier.deployments[i].clone());
                let (result, winner, took) = match hedge_with {
                    Some(backup) => {
                        let delay = hedge_delay(&route, &dep);
                        let budgets = compiled.budgets.clone();
                        let (rq, rn, est) = (req.clone(), route.name.clone(), ctx.est_input);
                        let reserve_backup = move |d: &Deployment| reserve(&budgets, &rq, &rn, est, d);
                        let r = hedged(&start, &req, dep.clone(), backup.clone(), delay, limit, &mut ctx, ti, &mut attempts, &reserve_backup).await;
                        if r.1.name == backup.name {
                            i += 1; // the backup was consumed
                        }
                        r
                    }
                    None => {
                        let t0 = Instant::now();
                        let r = match tokio::time::timeout(limit, start(dep.clone(), req.clone())).await {
                            Ok(r) => r,
                            Err(_) => Err(timeout_error(&dep, limit, remaining)),
                        };
                        (r, dep.clone(), t0.elapsed())
                    }
                };
                let now = Instant::now();
                let dep_used = winner;
                at.deployment = dep_used.name.clone();
                at.provider = dep_used.provider.clone();
                at.model = dep_used.model.clone();
                // The backup of a hedge that won was started as a hedge: say so in the trace.
                at.hedge = dep_used.name != dep.name;
                at.latency_ms = ms(took);
                let permit = if dep_used.name == dep.name { Some(permit) } else { drop(permit); None };
                match result {
                    Ok(ok) => {
                        at.outcome = "ok".into();
                        at.ttft_ms = ok.ttft.map(ms);
                        at.usage = ok.usage;
                        at.cost_usd = ok.usage.and_then(|u| dep_used.cost(&u));
                        if !stream {
                            ctx.emit_attempt(&at, dep_used.endpoint.provider.kind(), None);
                        }
                        ctx.trace.attempts.push(at);
                        ctx.trace.served_by = Some(dep_used.name.clone());
                        {
                            let mut s = dep_used.health.stats();
                            s.observe_outcome(now, true);
                            if let Some(t) = ok.ttft {
                                s.observe_ttft(t);
                            }
                        }
                        ctx.remaining = remaining_after(&tiers, ti, i, &dep_used);
                        // The hedge winner's own reservation was settled in `hedged`.
                        let reservation = if dep_used.name == dep.name { reservation } else { None };
                        let reservation = match (stream, reservation) {
                            (false, Some(r)) => {
                                let u = ok.usage.unwrap_or_default();
                                r.settle(dep_used.cost(&u).unwrap_or(0.0), u.total_tokens());
                                ctx.emit_budget_thresholds(&compiled.budgets);
                                None
                            }
                            (_, r) => r,
                        };
                        let permit = match (stream, permit) {
                            (true, p) => p,
                            (false, Some(p)) => {
                                let tr = dep_used.health.breaker.record(p, BreakerOutcome::Success { ttft: ok.ttft }, now);
                                ctx.emit_transition(&dep_used.name, tr);
                                None
                            }
                            (false, None) => None,
                        };
                        return Ok((Served::By { value: ok.value, deployment: dep_used, permit, reservation }, ctx));
                    }
                    Err(e) => {
                        at.outcome = e.kind.code().into();
                        at.error = Some(e.message.clone());
                        at.status = e.status;
                        // A failed attempt is billed only if the provider reported usage
                        // (e.g. a stream cut after content); otherwise it costs nothing.
                        let billed = e.partial.as_ref().and_then(|p| p.usage);
                        at.usage = billed;
                        at.cost_usd = billed.and_then(|u| dep_used.cost(&u));
                        spent += at.cost_usd.unwrap_or(0.0);
                        if let Some(r) = reservation {
                            let u = billed.unwrap_or_default();
                            r.settle(at.cost_usd.unwrap_or(0.0), u.total_tokens());
                        }
                        ctx.emit_attempt(&at, dep_used.endpoint.provider.kind(), None);
                        ctx.trace.attempts.push(at);
                        let outcome = BreakerOutcome::from_error(e.kind, e.retry_after);
                        if let Some(p) = permit {
                            let tr = dep_used.health.breaker.record(p, outcome, now);
                            ctx.emit_transition(&dep_used.name, tr);
                        }
                        last_failed = Some((dep_used.name.clone(), e.kind));
                        if !matches!(outcome, BreakerOutcome::Ignored) {
                            dep_used.health.stats().observe_outcome(now, false);
                        }
                        if stops(e.kind) {
                            return Err(fail(e, &mut ctx));
                        }
                        let kind = e.kind;
                        let hint = e.retry_after;
                        last_err = Some(e);
                        match kind {
                            ErrorKind::ContextLengthExceeded => {
                                ctx_fail = Some(dep_used.context_window);
                                break;
                            }
                            ErrorKind::ContentFilter => {
                                if !route.content_filter_fallover {
                                    return Err(fail(last_err.take().expect("set above"), &mut ctx));
                                }
                                filtered_providers.push(dep_used.provider.clone());
                                break;
                            }
                            _ => {}
                        }
                        if dep_used.name != dep.name || !retry_on.contains(&kind) || tries >= route.retry.attempts_per_deployment {
                            break;
                        }
                        let computed = backoff(&route.retry, tries, rand::random::<f64>());
                        let Some(w) = wait_for(&route.retry, computed, hint) else {
                            ctx.trace.notes.push(format!(
                                "`{}` asked to wait {:.1} s, over the {:.1} s cap: falling over",
                                dep.name,
                                hint.unwrap_or_default().as_secs_f64(),
                                route.retry.max_retry_after.0.as_secs_f64()
                            ));
                            break;
                        };
                        if Instant::now() + w >= ctx.deadline {
                            ctx.trace.notes.push(format!("no retry on `{}`: waiting {:.1} s would pass the deadline", dep.name, w.as_secs_f64()));
                            break;
                        }
                        if !compiled.retry_budget.try_withdraw(Instant::now()) {
                            ctx.trace.notes.push("process retry budget exhausted: not retrying".into());
                            break;
                        }
                        tokio::time::sleep(w).await;
                        wait = w;
                    }
                }
            }
        }
    }
    let e = last_err.unwrap_or_else(|| {
        let skipped: Vec<String> = ctx
            .trace
            .candidates
            .iter()
            .filter_map(|c| c.skipped.as_ref().map(|s| format!("`{}`: {s}", c.deployment)))
            .collect();
        Error::new(ErrorKind::NoRoute, format!("no eligible deployment ({})", skipped.join("; ")))
    });
    Err(fail(e, &mut ctx))
}

fn remaining_after(tiers: &[Tier], ti: usize, i: usize, served: &Deployment) -> Vec<(usize, Arc<Deployment>)> {
    let mut v = Vec::new();
    for (k, t) in tiers.iter().enumerate().skip(ti) {
        let start = if k == ti { i } else { 0 };
        for d in t.deployments.iter().skip(start) {
            if d.name != served.name {
                v.push((k, d.clone()));
            }
        }
    }
    v
}

fn timeout_error(d: &Deployment, limit: Duration, remaining: Duration) -> Error {
    let what = if limit >= remaining { "total deadline" } else { "first-token timeout" };
    Error::new(ErrorKind::Timeout, format!("no answer within the {what} of {:.1} s", limit.as_secs_f64())).at(&d.provider, &d.model)
}

fn hedge_delay(route: &RouteSpec, primary: &Deployment) -> Duration {
    let min = route.hedge.min_delay.0;
    match route.hedge.delay {
        Some(d) => d.0,
        None => primary.health.stats().p95_ms().map(|p| Duration::from_secs_f64(p / 1000.0)).unwrap_or(Duration::from_millis(500)).max(min),
    }
}

/// Race the primary against a backup started after `delay`. Returns the result, who
/// produced it and how long it took. The loser's attempt is recorded in the trace.
#[allow(clippy::too_many_arguments)]
async fn hedged<T: Send + 'static>(
    start: &StartFn<T>,
    req: &Arc<ChatRequest>,
    primary: Arc<Deployment>,
    backup: Arc<Deployment>,
    delay: Duration,
    limit: Duration,
    ctx: &mut RequestCtx,
    tier: usize,
    attempts: &mut u32,
    reserve_backup: &(dyn Fn(&Deployment) -> std::result::Result<Option<Reservation>, BudgetInfo> + Send + Sync),
) -> (Result<AttemptOk<T>>, Arc<Deployment>, Duration) {
    use futures::future::{select, Either};
    let t0 = Instant::now();
    let deadline = t0 + limit;
    let mut a = start(primary.clone(), req.clone());
    let first = tokio::time::timeout(delay.min(limit), &mut a).await;
    match first {
        Ok(r) => return (r, primary, t0.elapsed()),
        Err(_) if delay >= limit => {
            return (Err(timeout_error(&primary, limit, limit)), primary, t0.elapsed());
        }
        Err(_) => {}
    }
    let backup_reservation = match reserve_backup(&backup) {
        Ok(r) => r,
        Err(_) => {
            // The backup would break a budget or rate limit: no hedge, wait for the primary.
            let r = tokio::time::timeout_at(deadline, a).await.unwrap_or_else(|_| Err(timeout_error(&primary, limit, limit)));
            return (r, primary, t0.elapsed());
        }
    };
    let backup_permit = match backup.health.breaker.acquire(Instant::now()) {
        Ok((p, _)) => p,
        Err(_) => {
            let r = tokio::time::timeout_at(deadline, a).await.unwrap_or_else(|_| Err(timeout_error(&primary, limit, limit)));
            return (r, primary, t0.elapsed());
        }
    };
    *attempts += 1;
    let tb = Instant::now();
    let b = start(backup.clone(), req.clone());
    // Who produced the returned result, and what happened to the other one.
    let race = async {
        match select(a, b).await {
            Either::Left((Ok(v), _b)) => (Ok(v), true, None),
            Either::Left((Err(e), b)) => (b.await, false, Some(e)),
            Either::Right((Ok(v), _a)) => (Ok(v), false, None),
            Either::Right((Err(e), a)) => (a.await, true, Some(e)),
        }
    };
    let (res, primary_won, loser_err) = match tokio::time::timeout_at(deadline, race).await {
        Ok(r) => r,
        Err(_) => (Err(timeout_error(&primary, limit, limit)), true, None),
    };
    let now = Instant::now();
    let loser = if primary_won { backup.clone() } else { primary.clone() };
    let mut lt = attempt_trace(&loser, tier);
    lt.hedge = primary_won;
    lt.latency_ms = ms(now.saturating_duration_since(if primary_won { tb } else { t0 }));
    match &loser_err {
        Some(e) => {
            lt.outcome = e.kind.code().into();
            lt.error = Some(e.message.clone());
            lt.status = e.status;
        }
        None => {
            lt.outcome = "cancelled".into();
            lt.error = Some("hedge lost: dropped when the other request answered first".into());
            // A dropped request still had its prompt processed: count the input as spent.
            lt.cost_usd = loser.expected_cost(ctx.est_input, 0);
        }
    }
    ctx.emit_attempt(&lt, loser.endpoint.provider.kind(), None);
    ctx.trace.attempts.push(lt);
    if let Some(r) = backup_reservation {
        // The backup's bill: its usage if it won, its prompt if it was dropped.
        let (usd, tokens) = match (&res, primary_won) {
            (Ok(ok), false) => {
                let u = ok.usage.unwrap_or_default();
                (backup.cost(&u).unwrap_or(0.0), u.total_tokens())
            }
            _ => (if loser_err.is_none() { backup.expected_cost(ctx.est_input, 0).unwrap_or(0.0) } else { 0.0 }, ctx.est_input),
        };
        r.settle(usd, tokens);
    }
    if primary_won {
        let outcome = match &loser_err {
            Some(e) => BreakerOutcome::from_error(e.kind, e.retry_after),
            None => BreakerOutcome::Ignored,
        };
        let tr = backup.health.breaker.record(backup_permit, outcome, now);
        ctx.emit_transition(&backup.name, tr);
        (res, primary, now.saturating_duration_since(t0))
    } else {
        let outcome = match &res {
            Ok(ok) => BreakerOutcome::Success { ttft: ok.ttft },
            Err(e) => BreakerOutcome::from_error(e.kind, e.retry_after),
        };
        let tr = backup.health.breaker.record(backup_permit, outcome, now);
        ctx.emit_transition(&backup.name, tr);
        (res, backup, now.saturating_duration_since(tb))
    }
}

/// Non-streaming chat through the attempt loop.
pub(crate) async fn chat(router: &Router, req: ChatRequest) -> Result<ChatResponse> {
    req.validate()?;
    let req = Arc::new(req);
    let start: StartFn<ChatResponse> = Arc::new(|d: Arc<Deployment>, req: Arc<ChatRequest>| {
        Box::pin(async move {
            let t0 = Instant::now();
            let r = d.endpoint.chat(&d.model, &req).await?;
            let r = super::validate_output::check(&req, r).map_err(|e| e.at(&d.provider, &d.model))?;
            Ok(AttemptOk { usage: r.usage, ttft: Some(t0.elapsed()), value: r })
        })
    });
    let (served, mut ctx) = run(router, req.clone(), false, start, &[], None).await?;
    finish_trace(&mut ctx);
    let mut resp = match served {
        Served::By { value, .. } => {
            ctx.emit_finished("ok");
            value
        }
        Served::Static(text) => {
            ctx.emit_finished("degraded");
            static_response(&text)
        }
    };
    resp.cost_usd = ctx.trace.total_cost_usd;
    resp.trace = Some(Box::new(ctx.trace));
    Ok(resp)
}

pub(crate) fn static_response(text: &str) -> ChatResponse {
    let mut acc = crate::types::StreamAccumulator::new();
    acc.push(&crate::types::StreamEvent::Start { id: "static".into(), model: "static".into() });
    acc.push(&crate::types::StreamEvent::ContentDelta { text: text.to_string() });
    acc.push(&crate::types::StreamEvent::Finish { reason: crate::types::FinishReason::Stop, native: None });
    let mut r = acc.into_response();
    r.provider = Some("policy".into());
    r
}
