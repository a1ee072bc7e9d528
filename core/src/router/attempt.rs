//! The attempt loop: the only retry loop in Polyroute.
//!
//! Generic over what an attempt produces (a complete response for `chat`, a committed
//! stream for `stream`), so retries, fallbacks, hedging, deadlines, breakers and traces are
//! written once. An attempt is "successful" when it produced something the caller can be
//! given: a whole response, or a stream's first content.
//!
//! [`run`] reads as the request's walk: for each tier it enters, for each candidate not ruled
//! out, open an attempt (breaker permit + budget reservation, `lifecycle.rs`), await it,
//! finish it (all bookkeeping, once), and ask the pure decision (`resilience::decide`)
//! whether to retry the same deployment after a wait, fall over, or stop. What each error
//! kind means lives in that decision's table, not here. [`Walk`] holds what the failures so
//! far rule out (smaller context windows, providers that refused the content) and the
//! request's own limits (attempts, spend, deadline).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::lifecycle::{ms, Attempt, End, Refused, RequestCtx};
use super::select::{select, Tier};
use super::{Deployment, Router};
use crate::error::{Error, ErrorKind, Result};
use crate::guard::Guarded;
use crate::policy::{OnBudgetExceeded, RouteSpec, Strategy};
use crate::provider::inline;
use crate::resilience::decide::{decide, enters_tier, Because, Decision, Failed, Next};
use crate::resilience::retry::RetryBudget;
use crate::telemetry::RouterEvent;
use crate::types::{ChatRequest, ChatResponse, Usage};

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
        /// For streams: the committed attempt, finished when the stream ends.
        attempt: Option<Box<Attempt>>,
    },
    Static(String),
}

pub(crate) fn first_token_timeout(d: &Deployment, route: &RouteSpec) -> Duration {
    d.timeouts.first_token.or(route.timeouts.first_token).map(|t| t.0).unwrap_or(super::DEFAULT_FIRST_TOKEN)
}

pub(crate) fn idle_timeout(d: &Deployment, route: &RouteSpec) -> Duration {
    d.timeouts.idle.or(route.timeouts.idle).map(|t| t.0).unwrap_or(super::DEFAULT_IDLE)
}

/// What to do after a failed attempt.
enum Step {
    Retry(Duration),
    Next,
    Stop(Error),
}

/// A stream restart continues the same request: its deadline, the attempts it already made
/// (they count against `max_attempts`), minus the deployments that were cut.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resume {
    pub exclude: Vec<String>,
    pub deadline: Option<Instant>,
    pub attempts: u32,
    /// What the guards did to this request, recorded by the first walk (a restart, whose
    /// request already went through them, has none). A rejection ends the walk before it starts.
    pub guarded: Option<Arc<Guarded>>,
}

/// Run the policy's guards over a request at its entry, before the response cache and the
/// walk: whatever follows (cache key, routing, sending, a restart) sees only what they left.
/// `None` when the policy has none (the request is then not copied).
pub(crate) fn guard(router: &Router, req: ChatRequest, stream: bool) -> (ChatRequest, Option<Arc<Guarded>>) {
    let compiled = router.snapshot();
    if compiled.guards.is_empty() {
        return (req, None);
    }
    let mut req = req;
    let out = compiled.guards.apply(&mut req, |r| super::select::match_route(&compiled, r, stream).ok().map(|(route, _)| route.spec.name.clone()));
    (req, Some(Arc::new(out)))
}

/// Run attempts until one succeeds or nothing is left.
pub(crate) async fn run<T: Send + 'static>(
    router: &Router,
    req: Arc<ChatRequest>,
    stream: bool,
    start: StartFn<T>,
    resume: Resume,
) -> Result<(Served<T>, RequestCtx)> {
    let compiled = router.snapshot();
    let now = router.inner.clock.now();
    // Before selection: a process's first request already sees what the fleet knows.
    super::fleet_sync::ensure_started(router).await;
    crate::probe::mark("walk setup");
    let mut sel = select(&compiled, &req, stream, now, &router.inner.chance)?;
    crate::probe::mark("select");
    // Taken, not cloned: the walk reads only the selection's route, tiers and canary.
    let mut ctx = RequestCtx::new(router, &compiled, &sel.route.spec, std::mem::take(&mut sel.matched), &req, stream);
    if let Some(d) = resume.deadline {
        ctx.deadline = ctx.deadline.min(d);
    }
    ctx.trace.candidates = std::mem::take(&mut sel.candidates);
    if let Some(g) = &resume.guarded {
        if let Some(e) = ctx.guarded(g) {
            return Err(ctx.fail(e));
        }
    }
    rollout(router, &sel, &req, stream, &resume, &mut ctx);
    compiled.retry_budget.on_request(now);
    let mut walk = Walk { attempts: resume.attempts, ..Walk::default() };
    crate::probe::mark("request context, rollout");
    let pass = Pass { tiers: &sel.tiers, req: &req, start: &start, exclude: &resume.exclude, retry_budget: &compiled.retry_budget };
    loop {
        let outcome = pass.walk(&mut walk, &mut ctx).await;
        ctx.attempts = walk.attempts;
        match outcome {
            Some(Ok(served)) => return Ok((served, ctx)),
            Some(Err(e)) => {
                ctx.settled().await;
                return Err(ctx.fail(e));
            }
            // Every candidate was open: wait for the earliest to admit a probe if that is
            // soon enough, then walk again.
            None => match walk.reopen_wait(&mut ctx) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            },
        }
    }
    let e = walk.nothing_left(&ctx);
    Err(ctx.fail(e))
}

/// The route's canary and shadow: the canary hears of every attempt, and a fresh request
/// (not a stream's restart, which is the same request) may be copied to the shadows.
fn rollout(router: &Router, sel: &super::select::Selection<'_>, req: &Arc<ChatRequest>, stream: bool, resume: &Resume, ctx: &mut RequestCtx) {
    let route = sel.route;
    if let Some(c) = &route.canary {
        ctx.canary = Some(c.clone());
        if sel.canary.is_some() {
            ctx.note(format!("canary `{}` ({} % of the route) tried first", c.deployment.name, c.spec.percent));
        } else if let Some(why) = c.withdrawn_because() {
            ctx.note(format!("canary `{}` withdrawn: {why}", c.deployment.name));
        }
    }
    let Some(sh) = &route.shadow else { return };
    if resume.attempts > 0 || !resume.exclude.is_empty() {
        return;
    }
    let est = req.estimate_input_tokens();
    let skip = |d: &Deployment| super::select::static_skip(route, d, req, stream, est);
    // The copies report through the router's telemetry, not this request's: what this
    // request holds back goes first.
    ctx.release_held();
    let link = sh.launch(req, &ctx.trace.request_id, router.inner.chance.unit(), ctx.clock.unix_now(), &ctx.telemetry, skip);
    // A stream's answer is not assembled here, so its copies compare nothing; dropping the
    // link now tells them at once instead of holding their slots until the stream ends.
    if !stream {
        ctx.shadow = Some(link);
    }
}

/// One walk over the tiers: what does not change between walks of a request.
struct Pass<'a, T> {
    tiers: &'a [Tier<'a>],
    req: &'a Arc<ChatRequest>,
    start: &'a StartFn<T>,
    exclude: &'a [String],
    retry_budget: &'a RetryBudget,
}

impl<T: Send + 'static> Pass<'_, T> {
    /// Every tier it enters, every candidate not ruled out: open, send, finish, decide.
    /// `None`: nothing was left to try.
    async fn walk(&self, walk: &mut Walk, ctx: &mut RequestCtx) -> Option<Result<Served<T>>> {
        let tiers = self.tiers;
        for (ti, tier) in tiers.iter().enumerate() {
            if ti > 0 && !walk.enters(tier, ctx) {
                continue;
            }
            if let Some(text) = &tier.static_response {
                ctx.trace.degraded = true;
                ctx.note(format!("served the static response of tier `{}`", tier.name));
                ctx.finish_trace();
                return Some(Ok(Served::Static(text.to_string())));
            }
            let mut i = 0;
            while i < tier.deployments.len() {
                let dep = tier.deployments[i].clone();
                i += 1;
                if walk.rules_out(&dep, self.exclude, ctx) {
                    continue;
                }
                let more = i < tier.deployments.len() || ti + 1 < tiers.len();
                let Some(mut wait) = walk.wait_for_reset(&dep, self.req, more, ctx).await else { continue };
                let mut tries: u32 = 0;
                loop {
                    if let Err(e) = walk.within_limits(ctx) {
                        return Some(Err(e));
                    }
                    let mut attempt = match Attempt::open(ctx, self.req, &dep, ti).await {
                        Ok(a) => a,
                        Err(refused) => match walk.refused(refused, &dep, ctx) {
                            Ok(()) => break,
                            Err(e) => return Some(Err(e)),
                        },
                    };
                    tries += 1;
                    walk.started(&dep, ctx);
                    attempt.trace.backoff_ms = ms(wait);
                    let backup = (ctx.route.strategy == Strategy::Hedged && i < tier.deployments.len()).then(|| tier.deployments[i].clone());
                    let (result, attempt) = send(self.start, self.req, attempt, backup, ctx, walk).await;
                    crate::probe::mark("output check, send");
                    if attempt.deployment.name != dep.name {
                        i += 1; // the hedge's backup answered: it was consumed
                    }
                    match result {
                        Ok(ok) => {
                            let served = serve(attempt, ok, ctx);
                            crate::probe::mark("breaker record, attempt trace");
                            return Some(Ok(served));
                        }
                        Err(e) => match walk.failed(e, attempt, &dep, tries, others_remain(tiers, ti, i), self.retry_budget, ctx) {
                            Step::Retry(w) => {
                                tokio::time::sleep(w).await;
                                wait = w;
                            }
                            Step::Next => break,
                            Step::Stop(e) => return Some(Err(e)),
                        },
                    }
                }
            }
        }
        None
    }
}

/// Could a real deployment still take the request after this failure? A later deployment
/// of this tier, or of a later tier (static answers do not count: the same deployment
/// retried is better than a canned reply).
fn others_remain(tiers: &[Tier<'_>], ti: usize, i: usize) -> bool {
    i < tiers[ti].deployments.len() || tiers[ti + 1..].iter().any(|t| !t.deployments.is_empty())
}

/// A success: a response is finished at once; a stream's attempt is committed and finished
/// when the stream ends.
fn serve<T>(mut attempt: Attempt, ok: AttemptOk<T>, ctx: &mut RequestCtx) -> Served<T> {
    let deployment = attempt.deployment.clone();
    if ctx.stream {
        attempt.commit(ctx, ok.ttft);
        ctx.trace.served_by = Some(deployment.name.clone());
        Served::By { value: ok.value, deployment, attempt: Some(Box::new(attempt)) }
    } else {
        attempt.finish(ctx, End::Ok { ttft: ok.ttft, usage: ok.usage, response_model: None });
        Served::By { value: ok.value, deployment, attempt: None }
    }
}

/// The request's walk through its candidates: what failed so far, what that rules out, and
/// the request's own limits.
#[derive(Default)]
struct Walk {
    attempts: u32,
    spent: f64,
    last_err: Option<Error>,
    /// (deployment, kind) of the last failure, for the `fallback_taken` event.
    last_failed: Option<(String, ErrorKind)>,
    /// The context window that overflowed (`Some(None)`: its size is unknown), once one did.
    overflowed: Option<Option<u64>>,
    /// Providers that refused the content (when the route lets it cross providers).
    filtered_providers: Vec<String>,
    /// The earliest time an open breaker of this walk admits a probe, and whose.
    reopen: Option<(Instant, String)>,
    /// Time already spent waiting for a breaker to reopen.
    waited_for_reopen: Duration,
}

impl Walk {
    fn enters(&self, tier: &Tier<'_>, ctx: &mut RequestCtx) -> bool {
        match &self.last_err {
            Some(e) if enters_tier(tier.on, e.kind, ctx.route.content_filter_fallover) => true,
            Some(e) => {
                ctx.note(format!("tier `{}` not entered: it does not take over after {}", tier.name, e.kind));
                false
            }
            // Nothing failed yet (every earlier candidate was skipped): enter the tier.
            None => true,
        }
    }

    fn rules_out(&self, dep: &Deployment, exclude: &[String], ctx: &mut RequestCtx) -> bool {
        if exclude.contains(&dep.name) {
            return true;
        }
        // After a context overflow, only a window known to be too small rules a candidate
        // out: an unknown one may well be larger, and the operator configured it.
        if let Some(Some(overflowed)) = self.overflowed {
            if let Some(c) = dep.context_window.filter(|c| *c <= overflowed) {
                ctx.note(format!("`{}` skipped: its context window ({c}) is not larger than the {overflowed} that overflowed", dep.name));
                return true;
            }
        }
        if self.filtered_providers.contains(&dep.provider) {
            ctx.note(format!("`{}` skipped: provider `{}` already refused the content", dep.name, dep.provider));
            return true;
        }
        false
    }

    /// A deployment its provider announced as exhausted is avoided while others remain; the
    /// last candidate waits for the announced reset (within the deadline) rather than collect
    /// a 429. `None`: skip it; `Some(wait)`: go ahead after having waited that long.
    async fn wait_for_reset(&mut self, dep: &Deployment, req: &ChatRequest, more: bool, ctx: &mut RequestCtx) -> Option<Duration> {
        let need = ctx.est_input + req.max_output_tokens().map(u64::from).unwrap_or(0);
        let Some((why, reset)) = dep.health.exhausted(ctx.now(), need) else { return Some(Duration::ZERO) };
        if more || ctx.now() + reset >= ctx.deadline {
            ctx.note(format!("`{}` avoided: {why}, resets in {:.1} s", dep.name, reset.as_secs_f64()));
            self.last_err = Some(
                Error::new(ErrorKind::RateLimited, format!("`{}`: {why}", dep.name)).at(&dep.provider, &dep.model).with_retry_after(Some(reset)),
            );
            return None;
        }
        ctx.note(format!("waited {:.1} s for `{}` to reset ({why})", reset.as_secs_f64(), dep.name));
        tokio::time::sleep(reset).await;
        Some(reset)
    }

    /// The request's own limits, checked before every attempt.
    fn within_limits(&mut self, ctx: &mut RequestCtx) -> std::result::Result<(), Error> {
        let retry = &ctx.route.retry;
        if self.attempts >= retry.max_attempts {
            let n = retry.max_attempts;
            ctx.note(format!("max attempts ({n}) reached"));
            return Err(self.last_err.take().unwrap_or_else(|| Error::new(ErrorKind::NoRoute, "no attempt allowed")));
        }
        if let Some(max) = retry.max_request_cost_usd {
            if self.spent >= max {
                ctx.note(format!("request spend limit ${max} reached"));
                return Err(Error::new(ErrorKind::BudgetExceeded, format!("request spent ${:.6} of its ${max} limit across attempts", self.spent)));
            }
        }
        if ctx.now() >= ctx.deadline {
            return Err(match self.last_err.take() {
                Some(mut e) => {
                    e.message = format!("deadline reached; last attempt: {}", e.message);
                    e
                }
                None => Error::new(ErrorKind::Timeout, "total deadline reached before any attempt"),
            });
        }
        Ok(())
    }

    /// The breaker or a budget refused an attempt. `Err`: the request ends with it.
    fn refused(&mut self, refused: Refused, dep: &Deployment, ctx: &mut RequestCtx) -> std::result::Result<(), Error> {
        match refused {
            Refused::Breaker { why, until } => {
                ctx.note(format!("`{}` skipped at attempt time: {why}", dep.name));
                if let Some(u) = until {
                    if self.reopen.as_ref().is_none_or(|(r, _)| u < *r) {
                        self.reopen = Some((u, dep.name.clone()));
                    }
                }
                if self.last_err.as_ref().is_none_or(|e| e.kind == ErrorKind::CircuitOpen) {
                    self.last_err = Some(Error::new(ErrorKind::CircuitOpen, format!("`{}`: {why}", dep.name)).at(&dep.provider, &dep.model));
                }
                Ok(())
            }
            Refused::Budget(e) => {
                ctx.note(e.message.clone());
                // The store is every deployment's: no other one would be admitted.
                let fall_on = e.kind != ErrorKind::StateUnavailable
                    && (e.kind == ErrorKind::RateLimited || ctx.route.on_budget_exceeded == OnBudgetExceeded::Fallback);
                if !fall_on {
                    return Err(e);
                }
                self.last_err = Some(e);
                Ok(())
            }
        }
    }

    fn started(&mut self, dep: &Deployment, ctx: &mut RequestCtx) {
        self.attempts += 1;
        if let Some((from, kind)) = self.last_failed.take() {
            if from != dep.name {
                let event = RouterEvent::FallbackTaken {
                    request_id: ctx.trace.request_id.clone(),
                    route: ctx.trace.route.clone(),
                    from,
                    to: dep.name.clone(),
                    reason: kind.code().into(),
                };
                ctx.emit(event);
            }
        }
        ctx.emit_for_callbacks(|t| RouterEvent::AttemptStarted {
            request_id: t.request_id.clone(),
            route: t.route.clone(),
            deployment: dep.name.clone(),
            provider: dep.provider.clone(),
            model: dep.model.clone(),
            attempt: self.attempts,
        });
    }

    /// Finish a failed attempt and decide what comes next.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &mut self,
        e: Error,
        attempt: Attempt,
        planned: &Deployment,
        tries: u32,
        others_remain: bool,
        budget: &RetryBudget,
        ctx: &mut RequestCtx,
    ) -> Step {
        let used = attempt.deployment.clone();
        self.spent += attempt.finish(ctx, End::Failed(&e));
        self.last_failed = Some((used.name.clone(), e.kind));
        let now = ctx.now();
        let failed = Failed {
            kind: e.kind,
            retry_after: e.retry_after,
            tries,
            other_deployment: used.name != planned.name,
            others_remain,
            remaining: ctx.deadline.saturating_duration_since(now),
            jitter: ctx.chance.unit(),
        };
        match decide(&failed, &ctx.route.retry, ctx.route.content_filter_fallover, || budget.try_withdraw(now)) {
            Decision::Stop => Step::Stop(e),
            Decision::Retry { wait } => {
                self.last_err = Some(e);
                Step::Retry(wait)
            }
            Decision::FallOver { next, because } => {
                match next {
                    Next::LargerContext => self.overflowed = Some(used.context_window),
                    Next::OtherProvider => self.filtered_providers.push(used.provider.clone()),
                    Next::Any => {}
                }
                match because {
                    Because::NotRetried => {}
                    Because::SlowFailure => {
                        ctx.note(format!("`{}` timed out: falling over at once (a timeout is retried only on the last candidate)", planned.name))
                    }
                    Because::HintOverCap { hint, cap } => ctx.note(format!(
                        "`{}` asked to wait {:.1} s, over the {:.1} s cap: falling over",
                        planned.name,
                        hint.as_secs_f64(),
                        cap.as_secs_f64()
                    )),
                    Because::PastDeadline { wait } => {
                        ctx.note(format!("no retry on `{}`: waiting {:.1} s would pass the deadline", planned.name, wait.as_secs_f64()))
                    }
                    Because::RetryBudgetExhausted => ctx.note("process retry budget exhausted: not retrying".into()),
                }
                self.last_err = Some(e);
                Step::Next
            }
        }
    }

    /// When the walk ended because every candidate it reached was open: how long to wait
    /// for the earliest to admit a probe, if that fits the route's cap and the deadline.
    /// Otherwise the `circuit_open` error gets the wait as its retry hint.
    fn reopen_wait(&mut self, ctx: &mut RequestCtx) -> Option<Duration> {
        let (until, name) = self.reopen.take()?;
        let e = self.last_err.as_mut().filter(|e| e.kind == ErrorKind::CircuitOpen)?;
        let now = ctx.now();
        let wait = until.saturating_duration_since(now);
        e.retry_after = Some(wait);
        let cap = ctx.route.retry.wait_for_reopen.0.saturating_sub(self.waited_for_reopen);
        if wait > cap || now + wait >= ctx.deadline {
            return None;
        }
        self.waited_for_reopen += wait;
        self.last_err = None;
        ctx.note(format!("every candidate was open: waited {:.1} s for `{name}` to admit a probe", wait.as_secs_f64()));
        Some(wait)
    }

    /// Every candidate was tried or ruled out: the last failure, or why nothing was eligible.
    fn nothing_left(self, ctx: &RequestCtx) -> Error {
        self.last_err.unwrap_or_else(|| {
            let skipped: Vec<String> =
                ctx.trace.candidates.iter().filter_map(|c| c.skipped.as_ref().map(|s| format!("`{}`: {s}", c.deployment))).collect();
            Error::new(ErrorKind::NoRoute, format!("no eligible deployment ({})", skipped.join("; ")))
        })
    }
}

fn timeout_error(d: &Deployment, limit: Duration, remaining: Duration) -> Error {
    let what = if limit >= remaining { "total deadline" } else { "first-token timeout" };
    Error::new(ErrorKind::Timeout, format!("no answer within the {what} of {:.1} s", limit.as_secs_f64())).at(&d.provider, &d.model)
}

/// Send one attempt, or race it against a hedge backup. Returns the result and the attempt
/// that produced it (the loser of a race is already finished).
async fn send<T: Send + 'static>(
    start: &StartFn<T>,
    req: &Arc<ChatRequest>,
    attempt: Attempt,
    backup: Option<Arc<Deployment>>,
    ctx: &mut RequestCtx,
    walk: &mut Walk,
) -> (Result<AttemptOk<T>>, Attempt) {
    let dep = attempt.deployment.clone();
    let remaining = ctx.deadline.saturating_duration_since(ctx.now());
    let limit = first_token_timeout(&dep, &ctx.route).min(remaining);
    if let Some(backup) = backup {
        // Boxed: inline, the race's state would be part of every request's future (2 KB,
        // copied once per level of nesting on every call), hedged route or not.
        return Box::pin(hedged(start, req, attempt, backup, limit, ctx, walk)).await;
    }
    // A sync caller's request may run inline on its thread (`provider::inline`), where this
    // timer cannot interrupt it: it gets the deadline too, and its expiry reads the same.
    let inline_deadline = std::time::Instant::now() + limit;
    let r = match tokio::time::timeout(limit, inline::within(inline_deadline, start(dep.clone(), req.clone()))).await {
        Ok(Err(e)) if inline::is_deadline(&e) => Err(timeout_error(&dep, limit, remaining)),
        Ok(r) => r,
        Err(_) => Err(timeout_error(&dep, limit, remaining)),
    };
    (r, attempt)
}

fn hedge_delay(route: &RouteSpec, primary: &Deployment) -> Duration {
    let min = route.hedge.min_delay.0;
    match route.hedge.delay {
        Some(d) => d.0,
        None => primary.health.stats().p95_ms().map(|p| Duration::from_secs_f64(p / 1000.0)).unwrap_or(Duration::from_millis(500)).max(min),
    }
}

/// Race the primary against a backup started after the hedge delay; the first success wins
/// and the loser is finished here (as lost if it was still running).
async fn hedged<T: Send + 'static>(
    start: &StartFn<T>,
    req: &Arc<ChatRequest>,
    primary: Attempt,
    backup_dep: Arc<Deployment>,
    limit: Duration,
    ctx: &mut RequestCtx,
    walk: &mut Walk,
) -> (Result<AttemptOk<T>>, Attempt) {
    use futures::future::{select, Either};
    let pdep = primary.deployment.clone();
    let delay = hedge_delay(&ctx.route, &pdep);
    let deadline = ctx.now() + limit;
    let timed_out = || Err(timeout_error(&pdep, limit, limit));
    let mut a = start(pdep.clone(), req.clone());
    match tokio::time::timeout(delay.min(limit), &mut a).await {
        Ok(r) => return (r, primary),
        Err(_) if delay >= limit => return (timed_out(), primary),
        Err(_) => {}
    }
    let Ok(mut backup) = Attempt::open(ctx, req, &backup_dep, primary.trace.tier).await else {
        // The backup's breaker or a budget refuses: no hedge, wait for the primary.
        let r = tokio::time::timeout_at(deadline, a).await.unwrap_or_else(|_| timed_out());
        return (r, primary);
    };
    backup.trace.hedge = true;
    walk.attempts += 1;
    let b = start(backup_dep, req.clone());
    // Who produced the returned result, and how the other one ended.
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
        Err(_) => (timed_out(), true, None),
    };
    let (winner, loser) = if primary_won { (primary, backup) } else { (backup, primary) };
    walk.spent += match &loser_err {
        Some(e) => loser.finish(ctx, End::Failed(e)),
        None => loser.finish(ctx, End::Lost),
    };
    (res, winner)
}

/// Non-streaming chat through the attempt loop.
pub(crate) async fn chat(router: &Router, req: ChatRequest) -> Result<ChatResponse> {
    crate::probe::mark("enter (block_on, Router::chat)");
    req.validate()?;
    let (req, guarded) = guard(router, req, false);
    crate::probe::mark("validate, guards");
    let masks = guarded.as_ref().and_then(|g| g.masks.clone());
    // A rejected request is failed by the walk (with its trace) and never looked up: a
    // cached answer must not let it through.
    let rejected = guarded.as_ref().is_some_and(|g| g.rejected.is_some());
    // Each path's future boxed, and only the one taken: held inline they sized this future
    // (15 KB in a release build: the walk's, plus the cache's, which holds it at three await
    // points) and every move of it, and `Router::chat` boxing it copied all 15 KB per request.
    let mut resp = if rejected || !super::cached::configured(router) {
        Box::pin(chat_uncached(router, req, guarded)).await?
    } else {
        Box::pin(super::cached::chat(router, req, guarded.clone(), |req| chat_uncached(router, req, guarded.clone()))).await?
    };
    // Restored only now: the cache holds the masked answer, which is the same for every
    // caller whose values masked alike, and each gets their own values back.
    if let Some(m) = masks {
        m.restore_response(&mut resp);
    }
    crate::probe::mark("masks, return");
    Ok(resp)
}

/// `chat` past the response cache: route the request and return its answer.
async fn chat_uncached(router: &Router, req: ChatRequest, guarded: Option<Arc<Guarded>>) -> Result<ChatResponse> {
    let req = Arc::new(req);
    let start: StartFn<ChatResponse> = Arc::new(|d: Arc<Deployment>, req: Arc<ChatRequest>| {
        Box::pin(async move {
            let t0 = Instant::now();
            crate::probe::mark("attempt start");
            let r = d.endpoint.chat(&d.model, &req).await?;
            crate::probe::mark("endpoint return");
            let r = super::validate_output::check(&req, r).map_err(|e| e.at(&d.provider, &d.model))?;
            Ok(AttemptOk { usage: r.usage, ttft: Some(t0.elapsed()), value: r })
        })
    });
    let (served, mut ctx) = run(router, req.clone(), false, start, Resume { guarded, ..Resume::default() }).await?;
    crate::probe::mark("walk end");
    ctx.settled().await;
    ctx.finish_trace();
    crate::probe::mark("settles awaited, trace finished");
    let mut resp = match served {
        Served::By { value, .. } => {
            ctx.emit_finished("ok");
            if let Some(link) = ctx.shadow.take() {
                link.served(&value);
            }
            value
        }
        Served::Static(text) => {
            ctx.emit_finished("degraded");
            static_response(&text)
        }
    };
    resp.cost_usd = ctx.trace.total_cost_usd;
    resp.trace = Some(Box::new(std::mem::take(&mut ctx.trace)));
    crate::probe::mark("finished event, answer");
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
