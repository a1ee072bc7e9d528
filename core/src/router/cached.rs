//! The response cache's hooks: one call from `attempt::chat` and one from `stream::open`,
//! each wrapping the uncached path (what a key is and what the store does: `crate::cache`).
//!
//! Per route (`routes[].cache`), for a cacheable request (one that does not sample, unless
//! the route says `sampled: true`):
//! - `read_write`: look up first; a hit is served without routing (no attempt, no cost:
//!   `trace.cache = "hit"`, `served_by` null, a note naming the deployment that produced the
//!   answer and its age). On a miss the request is routed as usual.
//! - `fallback_only`: never read first; when the request fails on every deployment with an
//!   availability error (see [`falls_back_on`]), a cached answer is served as the degraded
//!   tier (`trace.degraded`, `trace.cache = "fallback"`, the failed attempts kept).
//! - Both modes store an answer a deployment produced in full: a chat response (already
//!   checked against the request's schema by the attempt), or a stream that ended cleanly
//!   (folded into a response and checked the same way). Never an error, an interrupted or
//!   abandoned stream, an answer that failed validation, or the policy's static response.
//!
//! A hit asked for as a stream is replayed as a stream (start, content, tool-call
//! fragments, usage, finish), whichever API stored it.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::stream::{BoxStream, StreamExt};

use super::lifecycle::RequestCtx;
use super::{Compiled, Router};
use crate::cache::{samples, CacheKey, Entry};
use crate::error::{Error, ErrorKind, Result};
use crate::guard::Guarded;
use crate::policy::{CacheMode, RouteCacheSpec};
use crate::types::{CacheUse, ChatRequest, ChatResponse, RouteTrace, StreamAccumulator, StreamEvent, StreamHead};

/// A stream as `stream.rs` hands it over: the events and the slot its trace lands in.
pub(crate) type StreamParts = (BoxStream<'static, Result<StreamEvent>>, Arc<Mutex<Option<RouteTrace>>>, StreamHead);

/// What the cache does for one request.
enum Plan {
    /// The route does not cache.
    Off,
    /// The route caches, this request may not be (it samples).
    Bypass,
    On(On),
}

/// A cacheable request: its key, its route's settings, and the policy snapshot the route was
/// matched in (a hit's trace is built from the same one, whatever a reload does meanwhile).
struct On {
    key: CacheKey,
    spec: RouteCacheSpec,
    compiled: Arc<Compiled>,
    route: usize,
    matched: String,
}

impl On {
    fn route_name(&self) -> &str {
        &self.compiled.routes[self.route].spec.name
    }
}

/// Whether any route of the serving policy caches (if not, a request need not come here).
pub(crate) fn configured(router: &Router) -> bool {
    router.snapshot().caches
}

fn plan(router: &Router, req: &ChatRequest, stream: bool) -> Plan {
    let compiled = router.snapshot();
    if !compiled.caches {
        return Plan::Off;
    }
    // No route: the uncached path reports it.
    let Ok((route, matched)) = super::select::match_route(&compiled, req, stream) else { return Plan::Off };
    let Some(spec) = route.spec.cache else { return Plan::Off };
    if samples(req) && !spec.sampled {
        return Plan::Bypass;
    }
    let key = CacheKey::of(req, &route.spec.name);
    let Some(idx) = compiled.routes.iter().position(|r| std::ptr::eq(r, route)) else { return Plan::Off };
    Plan::On(On { key, spec, compiled: compiled.clone(), route: idx, matched })
}

/// The error kinds after which `fallback_only` serves a cached answer: the providers could
/// not answer. Not the caller's own errors (invalid request, context length, cancelled),
/// a refusal, a budget or configuration decision.
pub(crate) fn falls_back_on(kind: ErrorKind) -> bool {
    use ErrorKind::*;
    matches!(
        kind,
        RateLimited
            | QuotaExhausted
            | Overloaded
            | ServerError
            | Timeout
            | Connection
            | Auth
            | PermissionDenied
            | NotFound
            | StreamInterrupted
            | MalformedResponse
            | InvalidOutput
            | CircuitOpen
    )
}

/// `chat` through the cache; `serve` is the uncached path.
pub(crate) async fn chat<F, Fut>(router: &Router, req: ChatRequest, guarded: Option<Arc<Guarded>>, serve: F) -> Result<ChatResponse>
where
    F: FnOnce(ChatRequest) -> Fut,
    Fut: Future<Output = Result<ChatResponse>>,
{
    let on = match plan(router, &req, false) {
        Plan::Off => return serve(req).await,
        Plan::Bypass => return mark(serve(req).await, CacheUse::Bypass),
        Plan::On(on) => on,
    };
    if let Some(e) = read_first(router, &on).await {
        let mut resp = e.response.clone();
        let trace = hit_trace(router, &req, &on, &e, false, guarded.as_deref());
        resp.cost_usd = Some(0.0);
        resp.trace = Some(Box::new(trace));
        return Ok(resp);
    }
    let (key, spec, route) = (on.key, on.spec, on.route_name().to_string());
    let cache = &router.inner.cache;
    match serve(req).await {
        Ok(mut resp) => {
            // The entry is the answer without its trace: take it out rather than clone it.
            let mut trace = resp.trace.take();
            let stored = match trace.as_deref() {
                Some(t) if !t.degraded && t.served_by.is_some() => {
                    cache.insert(key, Entry::new(resp.clone(), t.served_by.clone(), router.inner.clock.unix_now(), spec.ttl.0)).await;
                    CacheUse::Stored
                }
                _ => CacheUse::Miss,
            };
            if let Some(t) = trace.as_deref_mut() {
                t.cache = Some(stored);
            }
            resp.trace = trace;
            Ok(resp)
        }
        Err(e) if spec.mode == CacheMode::FallbackOnly && falls_back_on(e.kind) => match fallback(router, key, &route, &e).await {
            Some((entry, trace)) => {
                let mut resp = entry.response.clone();
                resp.cost_usd = trace.total_cost_usd;
                resp.trace = Some(Box::new(trace));
                Ok(resp)
            }
            None => mark(Err(e), CacheUse::Miss),
        },
        Err(e) => mark(Err(e), CacheUse::Miss),
    }
}

/// `stream` through the cache; `open` is the uncached path.
pub(crate) async fn stream<F, Fut>(router: &Router, req: ChatRequest, guarded: Option<Arc<Guarded>>, open: F) -> Result<StreamParts>
where
    F: FnOnce(ChatRequest) -> Fut,
    Fut: Future<Output = Result<StreamParts>>,
{
    let on = match plan(router, &req, true) {
        Plan::Off => return open(req).await,
        Plan::Bypass => return open(req).await.map(|p| watch(p, None)).map_err(|e| mark_err(e, CacheUse::Bypass)),
        Plan::On(on) => on,
    };
    if let Some(e) = read_first(router, &on).await {
        let trace = hit_trace(router, &req, &on, &e, true, guarded.as_deref());
        return Ok(replay(&e.response, trace));
    }
    let (key, spec, route) = (on.key, on.spec, on.route_name().to_string());
    let store = Store { router: router.clone(), req: Arc::new(req.clone()), key, ttl: spec.ttl.0 };
    match open(req).await {
        Ok(parts) => Ok(watch(parts, Some(store))),
        Err(e) if spec.mode == CacheMode::FallbackOnly && falls_back_on(e.kind) => match fallback(router, key, &route, &e).await {
            Some((entry, trace)) => Ok(replay(&entry.response, trace)),
            None => Err(mark_err(e, CacheUse::Miss)),
        },
        Err(e) => Err(mark_err(e, CacheUse::Miss)),
    }
}

/// `read_write`: the entry to serve without routing, if there is one (counted as a hit or a
/// miss). `fallback_only` never reads first.
async fn read_first(router: &Router, on: &On) -> Option<Arc<Entry>> {
    if on.spec.mode != CacheMode::ReadWrite {
        return None;
    }
    let entry = router.inner.cache.lookup(on.key, router.inner.clock.unix_now()).await;
    router.inner.telemetry.metrics.cache_lookup(on.route_name(), if entry.is_some() { "hit" } else { "miss" });
    entry
}

/// The trace of a request served from the cache without routing.
fn hit_trace(router: &Router, req: &ChatRequest, on: &On, e: &Entry, stream: bool, guarded: Option<&Guarded>) -> RouteTrace {
    let route = &on.compiled.routes[on.route].spec;
    let mut ctx = RequestCtx::new(router, &on.compiled, route, on.matched.clone(), req, stream);
    // The guards ran on this request too (never a rejection: those skip the cache).
    if let Some(g) = guarded {
        ctx.guarded(g);
    }
    ctx.trace.cache = Some(CacheUse::Hit);
    ctx.note(format!("served from the response cache ({})", provenance(router, e)));
    ctx.finish_trace();
    ctx.trace.total_cost_usd = Some(0.0);
    ctx.emit_finished("ok");
    std::mem::take(&mut ctx.trace)
}

/// "stored 12 s ago by `a`"
fn provenance(router: &Router, e: &Entry) -> String {
    let age = (router.inner.clock.unix_now() - e.stored_at).max(0.0);
    match &e.deployment {
        Some(d) => format!("stored {age:.0} s ago by `{d}`"),
        None => format!("stored {age:.0} s ago"),
    }
}

/// After every deployment failed: the cached answer and the failed request's trace, marked
/// degraded.
async fn fallback(router: &Router, key: CacheKey, route: &str, err: &Error) -> Option<(Arc<Entry>, RouteTrace)> {
    let entry = router.inner.cache.lookup(key, router.inner.clock.unix_now()).await;
    router.inner.telemetry.metrics.cache_lookup(route, if entry.is_some() { "fallback" } else { "miss" });
    let entry = entry?;
    let mut trace = err.trace.as_deref().cloned().unwrap_or_default();
    trace.degraded = true;
    trace.served_by = None;
    trace.cache = Some(CacheUse::Fallback);
    trace.notes.push(format!(
        "every deployment failed ({}); served a cached answer as the degraded tier ({})",
        err.kind.code(),
        provenance(router, &entry)
    ));
    trace.explanation = super::explain::sentence(&trace);
    Some((entry, trace))
}

fn mark(r: Result<ChatResponse>, how: CacheUse) -> Result<ChatResponse> {
    match r {
        Ok(mut resp) => {
            if let Some(t) = resp.trace.as_deref_mut() {
                t.cache = Some(how);
            }
            Ok(resp)
        }
        Err(e) => Err(mark_err(e, how)),
    }
}

fn mark_err(mut e: Error, how: CacheUse) -> Error {
    if let Some(t) = e.trace.as_deref_mut() {
        t.cache = Some(how);
    }
    e
}

/// A cached answer as stream events, in the order a provider sends them.
fn replay_events(r: &ChatResponse) -> Vec<StreamEvent> {
    let mut evs = vec![StreamEvent::Start { id: r.id.clone(), model: r.model.clone() }];
    if let Some(c) = r.choices.first() {
        let m = &c.message;
        if let Some(text) = m.reasoning_content.clone().filter(|t| !t.is_empty()) {
            evs.push(StreamEvent::ReasoningDelta { text, signature: m.reasoning_signature.clone() });
        }
        if let Some(text) = m.refusal.clone().filter(|t| !t.is_empty()) {
            evs.push(StreamEvent::RefusalDelta { text });
        }
        let text = m.text();
        if !text.is_empty() {
            evs.push(StreamEvent::ContentDelta { text });
        }
        for (i, tc) in m.tool_calls.iter().enumerate() {
            evs.push(StreamEvent::ToolCallDelta {
                index: i as u32,
                id: Some(tc.id.clone()),
                name: Some(tc.name.clone()),
                arguments: tc.arguments.clone(),
            });
        }
        if let Some(u) = r.usage {
            evs.push(StreamEvent::Usage { usage: u });
        }
        let reason = c.finish_reason.unwrap_or(crate::types::FinishReason::Stop);
        evs.push(StreamEvent::Finish { reason, native: c.native_finish_reason.clone() });
    }
    evs
}

fn replay(r: &ChatResponse, trace: RouteTrace) -> StreamParts {
    let evs: Vec<Result<StreamEvent>> = replay_events(r).into_iter().map(Ok).collect();
    let head = StreamHead { route: trace.route.clone(), deployment: None };
    (futures::stream::iter(evs).boxed(), Arc::new(Mutex::new(Some(trace))), head)
}

/// Where a stream that ends cleanly is stored.
struct Store {
    router: Router,
    req: Arc<ChatRequest>,
    key: CacheKey,
    ttl: std::time::Duration,
}

impl Store {
    /// Store the folded answer if a deployment served it in full and it passes the output
    /// check; what the trace says about it.
    async fn finish(self, acc: StreamAccumulator, trace: &RouteTrace) -> CacheUse {
        let Some(deployment) = trace.served_by.clone().filter(|_| !trace.degraded && acc.is_finished()) else { return CacheUse::Miss };
        let mut resp = acc.into_response();
        resp.provider = trace.attempts.iter().rev().find(|a| a.outcome.is_ok()).map(|a| a.provider.clone());
        let Ok(resp) = super::validate_output::check(&self.req, resp) else { return CacheUse::Miss };
        let inner = &self.router.inner;
        inner.cache.insert(self.key, Entry::new(resp, Some(deployment), inner.clock.unix_now(), self.ttl)).await;
        CacheUse::Stored
    }
}

/// Pass the stream through, folding it; when it ends, store it (`store`) or only mark the
/// trace (`None`: bypass). A stream that ends in an error is marked `miss` before the error
/// is handed on; one the caller drops early is neither stored nor marked.
fn watch(parts: StreamParts, store: Option<Store>) -> StreamParts {
    let (mut inner, slot, head) = parts;
    let mark_slot = slot.clone();
    let read_slot = slot.clone();
    let set = move |how: CacheUse| {
        if let Some(t) = mark_slot.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            t.cache = Some(how);
        }
    };
    let s = async_stream::stream! {
        let mut acc = StreamAccumulator::new();
        while let Some(item) = inner.next().await {
            match &item {
                Ok(ev) => acc.push(ev),
                Err(_) => {
                    // The trace is in its slot before the error is handed on.
                    set(if store.is_some() { CacheUse::Miss } else { CacheUse::Bypass });
                    yield item;
                    return;
                }
            }
            yield item;
        }
        let how = match store {
            None => CacheUse::Bypass,
            Some(store) => {
                let trace = read_slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match trace {
                    Some(t) => store.finish(acc, &t).await,
                    None => CacheUse::Miss,
                }
            }
        };
        set(how);
    };
    (s.boxed(), slot, head)
}
