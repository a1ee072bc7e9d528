//! One request's context and one attempt's life, each written once.
//!
//! An [`Attempt`] exists only after the deployment's breaker granted a permit and every
//! budget and rate limit that applies granted a reservation ([`Attempt::open`]). It ends in
//! exactly one [`Attempt::finish`], which does all of an attempt's bookkeeping in one place:
//! latency/success statistics, budget settlement (and threshold events), the breaker's
//! record (and transition events), the trace entry and the `attempt_finished` event. Chat,
//! stream and both sides of a hedge go through it, so they cannot disagree about what an
//! attempt cost or meant. Dropping an attempt without finishing it is a cancellation: the
//! permit's probe slot and the reservation are released by their own `Drop`s.
//!
//! [`RequestCtx`] is the per-request state that outlives the attempt loop (a stream keeps
//! using it after commit): the trace, the deadline, the clock and the telemetry sink.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Compiled, Deployment, Router};
use crate::budget::{BudgetInfo, Budgets, Denied, Reservation, Scope, Settling};
use crate::clock::{Chance, Clock};
use crate::error::{Error, ErrorKind};
use crate::guard::Guarded;
use crate::policy::RouteSpec;
use crate::resilience::breaker::{Outcome as BreakerOutcome, Permit, Transition};
use crate::telemetry::{AttemptRecord, RequestRecord, RouterEvent, Telemetry};
use crate::types::{AttemptOutcome, AttemptTrace, ChatRequest, RouteTrace, Usage};

/// Output tokens reserved when neither the request nor the catalog caps them.
const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Per-request state that outlives the loop (streams keep using it after commit).
pub(crate) struct RequestCtx {
    pub trace: RouteTrace,
    pub started: Instant,
    pub deadline: Instant,
    pub route: Arc<RouteSpec>,
    pub est_input: u64,
    /// Attempts made so far (a stream restart continues counting against `max_attempts`).
    pub attempts: u32,
    pub telemetry: Arc<Telemetry>,
    pub stream: bool,
    pub clock: Arc<dyn Clock>,
    pub chance: Arc<Chance>,
    /// The budgets of the policy the request started with (a reload does not move them).
    pub budgets: Arc<Budgets>,
    /// Settles a shared store has not confirmed yet; a chat waits for them before it
    /// returns, so what it spent is in the fleet's ledger when the caller sees the answer.
    pub settles: Vec<Settling>,
    /// The route's canary, which hears of every attempt on the route.
    pub canary: Option<Arc<super::canary::CanaryRt>>,
    /// Tells this request's shadow copies what it was served.
    pub shadow: Option<super::shadow::ShadowLink>,
    /// Callback events held back to travel with the next one ([`RequestCtx::hold`]).
    held: Vec<RouterEvent>,
}

/// What was held goes out when the request ends some other way (dropped mid-request).
impl Drop for RequestCtx {
    fn drop(&mut self) {
        self.release_held();
    }
}

impl RequestCtx {
    pub(crate) fn new(router: &Router, compiled: &Compiled, route: &Arc<RouteSpec>, matched: String, req: &ChatRequest, stream: bool) -> RequestCtx {
        let inner = &router.inner;
        let started = inner.clock.now();
        let mut total = route.timeouts.total.map(|t| t.0).unwrap_or(super::DEFAULT_TOTAL);
        // The caller's `timeout` can only shorten the route's deadline: a policy's cap on how
        // long a request may hold budget and connections is the operator's, not the caller's.
        if let Some(t) = req.routing.timeout.and_then(|t| std::time::Duration::try_from_secs_f64(t).ok()) {
            total = total.min(t);
        }
        let n = inner.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut ctx = RequestCtx {
            trace: RouteTrace {
                request_id: request_id(&inner.id_prefix, n),
                route: route.name.clone(),
                matched,
                strategy: super::select::strategy_name(route.strategy).into(),
                ..Default::default()
            },
            started,
            deadline: started + total,
            route: Arc::clone(route),
            est_input: req.estimate_input_tokens(),
            attempts: 0,
            telemetry: inner.telemetry.clone(),
            stream,
            clock: inner.clock.clone(),
            chance: inner.chance.clone(),
            budgets: compiled.budgets.clone(),
            settles: Vec::new(),
            canary: None,
            shadow: None,
            held: Vec::new(),
        };
        // A context is a request's start. Held: the first attempt's start (or the request's
        // end) follows without a wait.
        ctx.hold(|t| RouterEvent::RequestStarted { request_id: t.request_id.clone(), route: t.route.clone(), stream });
        ctx
    }

    /// Hold a callback event back until this request's next one, which publishes both in one
    /// batch: for events that another always follows without a wait (a request's start is
    /// followed by its first attempt's, a successful attempt's end by the request's end). A
    /// held event still goes out first, in order, and with the request if it ends otherwise.
    pub(crate) fn hold(&mut self, make: impl FnOnce(&RouteTrace) -> RouterEvent) {
        if self.telemetry.listening() {
            let ev = make(&self.trace);
            self.held.push(ev);
        }
    }

    /// Publish what is held now, before an event that does not go through this request.
    pub(crate) fn release_held(&mut self) {
        self.telemetry.publish_with(&mut self.held, None);
    }

    /// Publish an event the metrics read too, after anything held.
    pub(crate) fn emit(&mut self, ev: RouterEvent) {
        self.telemetry.metrics.record(&ev);
        self.telemetry.publish_with(&mut self.held, Some(ev));
    }

    /// Publish an event only callbacks read (built only when one listens), after anything held.
    pub(crate) fn emit_for_callbacks(&mut self, make: impl FnOnce(&RouteTrace) -> RouterEvent) {
        let trace = &self.trace;
        self.telemetry.emit_for_callbacks(&mut self.held, || make(trace));
    }

    /// Wait for this request's settles (bounded by the store timeout each).
    pub(crate) async fn settled(&mut self) {
        for s in std::mem::take(&mut self.settles) {
            s.wait().await;
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(crate) fn note(&mut self, text: String) {
        self.trace.notes.push(text);
    }

    /// Record what the guards did (notes, events); the rejection, if one fired.
    pub(crate) fn guarded(&mut self, g: &Guarded) -> Option<Error> {
        if let Some(n) = &g.class_note {
            self.note(n.clone());
        }
        for hit in &g.hits {
            self.note(hit.note());
            let ev = RouterEvent::GuardTriggered {
                request_id: self.trace.request_id.clone(),
                route: self.trace.route.clone(),
                guard: hit.guard.clone(),
                action: hit.action.as_str().into(),
                findings: hit.findings.clone(),
            };
            self.emit(ev);
        }
        g.rejected.clone()
    }

    /// Totals and the explanation, from the attempts recorded so far.
    pub(crate) fn finish_trace(&mut self) {
        let t = &mut self.trace;
        let known: Vec<f64> = t.attempts.iter().filter_map(|a| a.cost_usd).collect();
        t.total_cost_usd = if known.is_empty() { None } else { Some(known.iter().sum()) };
        t.total_ms = ms(self.started.elapsed());
        t.explanation = super::explain::sentence(t);
    }

    /// End the request with `e`: finish the trace, report, attach the trace to the error.
    pub(crate) fn fail(&mut self, mut e: Error) -> Error {
        self.finish_trace();
        self.emit_finished(e.kind.code());
        e.trace = Some(Box::new(self.trace.clone()));
        e
    }

    /// Report the end of the request. Call after `finish_trace`.
    pub(crate) fn emit_finished(&mut self, outcome: &str) {
        let t = &self.trace;
        let served = served_attempt(t);
        self.telemetry.metrics.request_finished(&RequestRecord {
            route: &t.route,
            outcome,
            provider: served.map(|a| a.provider.as_str()),
            model: served.map(|a| a.model.as_str()),
            duration_ms: t.total_ms,
            cost_usd: t.total_cost_usd,
        });
        self.emit_for_callbacks(|t| {
            let served = served_attempt(t);
            RouterEvent::RequestFinished {
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
            }
        });
    }

    pub(crate) fn emit_transition(&mut self, deployment: &str, tr: Option<Transition>) {
        if let Some(tr) = tr {
            super::fleet_sync::publish(self.budgets.state(), deployment, &tr);
            self.emit(RouterEvent::BreakerChanged { deployment: deployment.to_string(), from: tr.from, to: tr.to, reason: tr.reason });
        }
    }

    fn emit_attempt(&mut self, a: &AttemptTrace, provider_kind: &str, response_model: Option<String>) {
        let u = a.usage.unwrap_or_default();
        self.telemetry.metrics.attempt_finished(&AttemptRecord {
            route: &self.trace.route,
            deployment: &a.deployment,
            provider: &a.provider,
            model: &a.model,
            outcome: a.outcome.as_str(),
            ttft_ms: a.ttft_ms,
            tokens: [u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens],
            cost_usd: a.cost_usd,
        });
        let make = |t: &RouteTrace| RouterEvent::AttemptFinished {
            request_id: t.request_id.clone(),
            route: t.route.clone(),
            deployment: a.deployment.clone(),
            provider: a.provider.clone(),
            provider_kind: provider_kind.to_string(),
            model: a.model.clone(),
            outcome: a.outcome.to_string(),
            latency_ms: a.latency_ms,
            ttft_ms: a.ttft_ms,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_usd: a.cost_usd,
            response_model,
        };
        // A success is followed by the request's end (or the next leg of a hedge) at once.
        if a.outcome.is_ok() {
            self.hold(make);
        } else {
            self.emit_for_callbacks(make);
        }
    }

    /// After spend was recorded: report budgets that crossed 80 %, 90 % or 100 %. With a
    /// shared store the fleet sync reports them from the fleet's figures instead.
    fn emit_budget_thresholds(&mut self) {
        if self.budgets.is_empty() || self.budgets.state().is_shared() {
            return;
        }
        for (st, threshold) in self.budgets.crossed(self.clock.unix_now()) {
            self.emit(RouterEvent::BudgetThreshold { budget: st.budget, scope: st.scope, threshold, spent: st.spent, limit: st.limit });
        }
    }
}

/// `pr-<process id in hex>-`, the start of a router's request ids.
pub(crate) fn id_prefix(pid: u32) -> String {
    let mut p = String::from("pr-");
    crate::ids::push_hex(&mut p, pid.into(), 0);
    p.push('-');
    p
}

/// `<prefix><this router's request sequence>`.
fn request_id(prefix: &str, n: u64) -> String {
    let mut id = String::with_capacity(24);
    id.push_str(prefix);
    crate::ids::push_decimal(&mut id, n);
    id
}

/// The attempt that served the request, if one did.
fn served_attempt(t: &RouteTrace) -> Option<&AttemptTrace> {
    t.served_by.as_ref().and_then(|s| t.attempts.iter().rev().find(|a| &a.deployment == s && a.outcome == "ok"))
}

/// Why an attempt could not be opened.
pub(crate) enum Refused {
    /// The breaker refuses (open, forced open, or its probe slots are taken): why, in words,
    /// and when it admits a probe again if that is known.
    Breaker { why: String, until: Option<Instant> },
    /// A budget or rate limit would be exceeded: the typed error to report.
    Budget(Error),
}

/// How an attempt ended.
pub(crate) enum End<'a> {
    /// A whole response (chat), or a stream that completed after its commit.
    Ok { ttft: Option<Duration>, usage: Option<Usage>, response_model: Option<String> },
    /// Failed before anything reached the caller; billed only for usage the provider
    /// reported (e.g. in a partial output).
    Failed(&'a Error),
    /// A committed stream failed after content: billed for what it reported so far.
    Interrupted { error: &'a Error, usage: Option<Usage> },
    /// The losing side of a hedge, dropped while running: its prompt was processed.
    Lost,
}

/// One attempt on one deployment, from permit to report.
pub(crate) struct Attempt {
    pub deployment: Arc<Deployment>,
    permit: Option<Permit>,
    reservation: Option<Reservation>,
    pub trace: AttemptTrace,
    pub started: Instant,
    /// A stream's first content arrived: statistics are recorded, the outcome waits for the end.
    committed: bool,
    ttft: Option<Duration>,
}

impl Attempt {
    /// Ask the deployment's breaker, then every budget and rate limit that applies.
    pub(crate) async fn open(ctx: &mut RequestCtx, req: &ChatRequest, dep: &Arc<Deployment>, tier: usize) -> Result<Attempt, Refused> {
        let now = ctx.now();
        let permit = match dep.health.breaker.acquire(now) {
            Ok((p, transition)) => {
                ctx.emit_transition(&dep.name, transition);
                p
            }
            Err(rej) => return Err(Refused::Breaker { why: rej.describe(now), until: rej.until }),
        };
        // Half-open admits one probe per process; a fleet admits one in all.
        if permit.is_probe() && !super::fleet_sync::claim_probe(ctx.budgets.state(), &dep.name, ctx.deadline.saturating_duration_since(now)).await {
            return Err(Refused::Breaker { why: "breaker half-open, another process is probing".into(), until: None });
        }
        crate::probe::mark("breaker permit");
        // On refusal the permit is dropped unreported, which frees a probe slot.
        let reservation = reserve(ctx, req, dep).await.map_err(|d| match d {
            Denied::Budget(info) => Refused::Budget(budget_error(info, dep, ctx.clock.unix_now())),
            Denied::Store(e) => Refused::Budget(e.at(&dep.provider, &dep.model)),
        })?;
        crate::probe::mark("budget reserve");
        for name in reservation.iter().flat_map(|r| r.shadow_exceeded()) {
            ctx.note(format!("`{name}` would refuse `{}` (shadow mode, enforce: false): not enforced", dep.name));
        }
        if let Some(n) = reservation.as_ref().and_then(|r| r.note()) {
            if !ctx.trace.notes.contains(&n.0) {
                ctx.note(n.0.clone());
            }
        }
        let trace =
            AttemptTrace { deployment: dep.name.clone(), provider: dep.provider.clone(), model: dep.model.clone(), tier, ..Default::default() };
        Ok(Attempt { deployment: dep.clone(), permit: Some(permit), reservation, trace, started: now, committed: false, ttft: None })
    }

    /// A stream delivered its first content: from here the caller sees this deployment.
    pub(crate) fn commit(&mut self, ctx: &RequestCtx, ttft: Option<Duration>) {
        let now = ctx.now();
        self.committed = true;
        self.ttft = ttft;
        self.trace.outcome = AttemptOutcome::Ok;
        self.trace.ttft_ms = ttft.map(ms);
        self.trace.latency_ms = ms(now.saturating_duration_since(self.started));
        observe(&self.deployment, now, true, ttft);
    }

    /// Everything an attempt's end implies, once. Returns what it cost (for the request's
    /// spend limit).
    pub(crate) fn finish(mut self, ctx: &mut RequestCtx, end: End<'_>) -> f64 {
        let now = ctx.now();
        let d = self.deployment.clone();
        let t = &mut self.trace;
        if !self.committed {
            t.latency_ms = ms(now.saturating_duration_since(self.started));
        }
        let (breaker, billed, tokens, response_model) = match end {
            End::Ok { ttft, usage, response_model } => {
                t.outcome = AttemptOutcome::Ok;
                if !self.committed {
                    t.ttft_ms = ttft.map(ms);
                    observe(&d, now, true, ttft);
                }
                ctx.trace.served_by = Some(d.name.clone());
                let ttft = if self.committed { self.ttft } else { ttft };
                (BreakerOutcome::Success { ttft }, usage, usage.map(|u| u.total_tokens()).unwrap_or(0), response_model)
            }
            End::Failed(e) => {
                t.outcome = AttemptOutcome::Failed(e.kind);
                t.error = Some(e.message.clone());
                t.status = e.status;
                let usage = e.partial.as_ref().and_then(|p| p.usage);
                failed(&d, now, e, usage, self.committed)
            }
            End::Interrupted { error: e, usage } => {
                t.outcome = AttemptOutcome::Failed(ErrorKind::StreamInterrupted);
                t.error = Some(format!("after content: {}", e.message));
                failed(&d, now, e, usage, self.committed)
            }
            End::Lost => {
                t.outcome = AttemptOutcome::Failed(ErrorKind::Cancelled);
                t.error = Some("hedge lost: dropped when the other request answered first".into());
                (BreakerOutcome::Ignored, None, ctx.est_input, None)
            }
        };
        t.usage = billed;
        t.cost_usd = match billed {
            Some(u) => d.cost(&u),
            // A dropped request still had its prompt processed: count the input as spent.
            None if tokens > 0 => d.expected_cost(ctx.est_input, 0),
            None => None,
        };
        let cost = t.cost_usd.unwrap_or(0.0);
        crate::probe::mark("attempt outcome, cost");
        if let Some(r) = self.reservation.take() {
            let settling = r.settle(cost, tokens);
            // Only a shared store's settle is waited for; a `Vec` slot per request for the
            // memory store's (done already) showed in profiles.
            if !settling.is_done() {
                ctx.settles.push(settling);
            }
            ctx.emit_budget_thresholds();
        }
        crate::probe::mark("budget settle");
        ctx.emit_attempt(&self.trace, d.endpoint.provider.kind().as_str(), response_model);
        crate::probe::mark("attempt event, metrics");
        if let Some(c) = ctx.canary.clone() {
            let ok = match &breaker {
                BreakerOutcome::Success { .. } => Some(true),
                BreakerOutcome::Failure { .. } => Some(false),
                BreakerOutcome::Ignored => None,
            };
            if let Some(why) = c.record(&d.name, ok, self.trace.latency_ms, now) {
                ctx.note(format!("canary `{}` withdrawn: {why}", c.deployment.name));
                ctx.emit(RouterEvent::CanaryWithdrawn { route: ctx.trace.route.clone(), deployment: c.deployment.name.clone(), reason: why });
            }
        }
        if let Some(p) = self.permit.take() {
            match breaker {
                // Unreported, the permit frees its probe slot without counting.
                BreakerOutcome::Ignored => drop(p),
                outcome => {
                    let tr = d.health.breaker.record(p, outcome, now);
                    ctx.emit_transition(&d.name, tr);
                }
            }
        }
        ctx.trace.attempts.push(std::mem::take(&mut self.trace));
        cost
    }
}

/// A failure's breaker outcome and statistics; billing is the caller's.
fn failed(d: &Deployment, now: Instant, e: &Error, usage: Option<Usage>, committed: bool) -> (BreakerOutcome, Option<Usage>, u64, Option<String>) {
    let outcome = match (e.kind, e.status) {
        // No key to send (the app's key provider had none): the provider never saw the
        // request, so this says nothing about the deployment, and must not ban it for an hour.
        (ErrorKind::Auth, None) => BreakerOutcome::Ignored,
        (kind, _) => BreakerOutcome::from_error(kind, e.retry_after),
    };
    // A committed stream counted as a success at commit; its failure counts too.
    if !matches!(outcome, BreakerOutcome::Ignored) || committed {
        observe(d, now, false, None);
    }
    (outcome, usage, usage.map(|u| u.total_tokens()).unwrap_or(0), None)
}

fn observe(d: &Deployment, now: Instant, ok: bool, ttft: Option<Duration>) {
    let mut s = d.health.stats();
    s.observe_outcome(now, ok);
    if let Some(t) = ttft {
        s.observe_ttft(t);
    }
}

/// A dead process's holds come back this long after its request's deadline.
const LEASE_SLACK: Duration = Duration::from_secs(2);

/// Reserve an attempt's worst case against every budget and rate limit that applies.
async fn reserve(ctx: &RequestCtx, req: &ChatRequest, d: &Deployment) -> Result<Option<Reservation>, Denied> {
    if ctx.budgets.is_empty() && d.rate_limit.is_none() {
        return Ok(None);
    }
    let out = req.max_output_tokens().map(u64::from).or(d.max_output_tokens).unwrap_or(DEFAULT_OUTPUT_RESERVE);
    let usd = d.expected_cost(ctx.est_input, out);
    let md = &req.routing;
    let scope = Scope { tenant: md.tenant.as_deref(), feature: md.feature.as_deref(), route: &ctx.route.name, deployment: &d.name };
    let lease = ctx.deadline.saturating_duration_since(ctx.now()) + LEASE_SLACK;
    ctx.budgets.reserve(&scope, usd, ctx.est_input + out, d.rate_limit.as_ref(), ctx.clock.unix_now(), lease).await.map(Some)
}

fn budget_error(info: BudgetInfo, d: &Deployment, unix_now: f64) -> Error {
    let local_rate = info.budget.starts_with("rate_limit:");
    let wait = (info.resets_at - unix_now).max(0.0);
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
