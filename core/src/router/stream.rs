//! Streaming with failover.
//!
//! A stream has a commit point: the first event the caller can see (content, refusal,
//! reasoning or a tool-call fragment). Until then lifecycle events are held back and any
//! failure (HTTP error, in-band error, first-token timeout, malformed first frame, cut) goes
//! back into the attempt loop, so the caller sees one clean stream. After it, a failure
//! cannot be hidden: the stream ends with a typed `stream_interrupted` error carrying the
//! partial output, or, if the route opted into `stream_recovery: restart`, a `reset` event
//! followed by the whole answer from the next deployment. Never a silent truncated success.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::time::Instant;

use super::attempt::{self, idle_timeout, AttemptOk, Resume, Served, StartFn};
use super::cached::StreamParts;
use super::lifecycle::{End, RequestCtx};
use super::{Deployment, Router};
use crate::error::{Error, ErrorKind, Result};
use crate::guard::{Guarded, Masks, StreamRestorer};
use crate::policy::StreamRecovery;
use crate::provider::EventStream;
use crate::types::{ChatRequest, RouteTrace, StreamAccumulator, StreamEvent, StreamHead};

/// After the finish reason, how long to wait for a trailing usage chunk or terminator
/// before calling the stream complete.
const TAIL_WAIT: Duration = Duration::from_secs(2);

/// A stream that has produced its first content.
pub(crate) struct Committed {
    buffered: Vec<StreamEvent>,
    rest: Option<EventStream>,
}

/// The caller's view: unified events, ending after `Finish` (and usage), or with an `Err`.
/// `trace()` is complete once the stream has ended. Dropping it cancels the request.
pub struct ChatStream {
    inner: BoxStream<'static, Result<StreamEvent>>,
    trace: Arc<Mutex<Option<RouteTrace>>>,
    head: StreamHead,
}

impl ChatStream {
    /// The route trace, once the stream has ended (successfully or not).
    pub fn trace(&self) -> Option<RouteTrace> {
        self.trace.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The route and deployment serving this stream, known from the start (what an HTTP
    /// answer can put in its headers, which leave before the trace is complete).
    pub fn head(&self) -> &StreamHead {
        &self.head
    }
}

impl Stream for ChatStream {
    type Item = Result<StreamEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream").finish_non_exhaustive()
    }
}

fn start_fn() -> StartFn<Committed> {
    Arc::new(|d: Arc<Deployment>, req: Arc<ChatRequest>| {
        Box::pin(async move {
            let t0 = Instant::now();
            let mut s = d.endpoint.stream(&d.model, &req).await?;
            let mut buffered = Vec::new();
            // Hold lifecycle events until something the caller can see arrives.
            loop {
                match s.next().await {
                    Some(Ok(ev)) => {
                        let content = ev.is_content();
                        let finish = matches!(ev, StreamEvent::Finish { .. });
                        buffered.push(ev);
                        if content || finish {
                            return Ok(AttemptOk { value: Committed { buffered, rest: Some(s) }, ttft: Some(t0.elapsed()), usage: None });
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => {
                        // The endpoint guarantees a clean end had a finish reason; a stream
                        // that ends with neither content nor finish is interrupted.
                        return Err(Error::new(ErrorKind::StreamInterrupted, "stream ended before any content").at(&d.provider, &d.model));
                    }
                }
            }
        })
    })
}

pub(crate) async fn open(router: &Router, req: ChatRequest) -> Result<ChatStream> {
    req.validate()?;
    let (req, guarded) = attempt::guard(router, req, true);
    let masks = guarded.as_ref().and_then(|g| g.masks.clone());
    // As for chat: a rejection is failed by the walk, never answered from the cache; the
    // cache sees (and stores) the masked events, the caller gets them restored.
    let (inner, trace, head) = match guarded.as_ref().is_some_and(|g| g.rejected.is_some()) {
        true => open_uncached(router, req, guarded).await?,
        false => super::cached::stream(router, req, guarded.clone(), |req| open_uncached(router, req, guarded.clone())).await?,
    };
    let inner = match masks {
        Some(m) => unmask(inner, m).boxed(),
        None => inner,
    };
    Ok(ChatStream { inner, trace, head })
}

/// `open` past the response cache: route the request and stream its answer.
async fn open_uncached(router: &Router, req: ChatRequest, guarded: Option<Arc<Guarded>>) -> Result<StreamParts> {
    let req = Arc::new(req);
    let (served, ctx) = attempt::run(router, req.clone(), true, start_fn(), Resume { guarded, ..Resume::default() }).await?;
    let deployment = match &served {
        Served::By { deployment, .. } => Some(deployment.name.clone()),
        Served::Static(_) => None,
    };
    let head = StreamHead { route: ctx.trace.route.clone(), deployment };
    let trace_slot = Arc::new(Mutex::new(None));
    let inner = drive(router.clone(), req, served, ctx, trace_slot.clone()).boxed();
    Ok((inner, trace_slot, head))
}

/// Put masked values back into the caller's stream, across chunk boundaries, and into the
/// partial output of an interrupted one.
fn unmask(mut inner: BoxStream<'static, Result<StreamEvent>>, masks: Arc<Masks>) -> impl Stream<Item = Result<StreamEvent>> + Send + 'static {
    async_stream::stream! {
        let mut r = StreamRestorer::new(masks);
        while let Some(item) = inner.next().await {
            match item {
                Ok(ev) => {
                    for ev in r.push(ev) {
                        yield Ok(ev);
                    }
                }
                Err(mut e) => {
                    if let Some(p) = e.partial.as_mut() {
                        p.text = r.masks().restore(&p.text);
                        for c in &mut p.tool_calls {
                            c.arguments = r.masks().restore(&c.arguments);
                        }
                    }
                    yield Err(e);
                    return;
                }
            }
        }
        for ev in r.flush() {
            yield Ok(ev);
        }
    }
}

fn drive(
    router: Router,
    req: Arc<ChatRequest>,
    served: Served<Committed>,
    mut ctx: RequestCtx,
    slot: Arc<Mutex<Option<RouteTrace>>>,
) -> impl Stream<Item = Result<StreamEvent>> + Send + 'static {
    async_stream::stream! {
        let mut served = served;
        let mut excluded: Vec<String> = Vec::new();
        loop {
            let (committed, dep, attempt) = match served {
                Served::Static(text) => {
                    for ev in static_events(&text) {
                        yield Ok(ev);
                    }
                    ctx.finish_trace();
                    ctx.emit_finished("degraded");
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx.trace.clone());
                    return;
                }
                Served::By { value, deployment, attempt } => (value, deployment, *attempt.expect("a stream's attempt is finished when it ends")),
            };
            let mut acc = StreamAccumulator::new();
            for ev in committed.buffered {
                acc.push(&ev);
                yield Ok(ev);
            }
            let mut rest = committed.rest.expect("committed stream has a body");
            let idle = idle_timeout(&dep, &ctx.route);
            let mut quiet = Quiet::new(idle);
            let failure: Option<Error> = loop {
                let wait = if acc.is_finished() { TAIL_WAIT.min(idle) } else { idle };
                match quiet.next(&mut rest, wait, ctx.deadline).await {
                    Ok(Some(Ok(ev))) => {
                        acc.push(&ev);
                        yield Ok(ev);
                    }
                    Ok(Some(Err(e))) => break Some(e),
                    Ok(None) if acc.is_finished() => break None,
                    Ok(None) => break Some(Error::new(ErrorKind::StreamInterrupted, "stream ended without a finish reason")),
                    // Finished and only the trailing usage/terminator is late: complete.
                    Err(_) if acc.is_finished() => break None,
                    Err(silent) => {
                        let past_deadline = Instant::now() >= ctx.deadline;
                        let what = if past_deadline { "total deadline reached" } else { "stream went silent" };
                        break Some(Error::new(ErrorKind::StreamInterrupted, format!("{what}: no data for {:.1} s", silent.as_secs_f64())));
                    }
                }
            };
            drop(rest);
            let usage = acc.usage;
            match failure {
                None => {
                    let response_model = (!acc.model.is_empty()).then(|| acc.model.clone());
                    attempt.finish(&mut ctx, End::Ok { ttft: None, usage, response_model });
                    ctx.finish_trace();
                    ctx.emit_finished("ok");
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx.trace.clone());
                    return;
                }
                Some(e) => {
                    // A stream cut after content is billed for what the provider reported so far.
                    attempt.finish(&mut ctx, End::Interrupted { error: &e, usage });
                    excluded.push(dep.name.clone());
                    let restart = ctx.route.stream_recovery == StreamRecovery::Restart && Instant::now() < ctx.deadline;
                    if restart {
                        let reason = format!("`{}` interrupted after content ({}); restarting on the next deployment", dep.name, e.message);
                        let resume = Resume { exclude: excluded.clone(), deadline: Some(ctx.deadline), attempts: ctx.attempts, guarded: None };
                        match attempt::run(&router, req.clone(), true, start_fn(), resume).await {
                            Ok((next, next_ctx)) => {
                                ctx.trace.notes.push(reason.clone());
                                // Keep the earlier attempts in front of the new ones.
                                let mut merged = ctx.trace.attempts.clone();
                                merged.extend(next_ctx.trace.attempts.clone());
                                ctx.trace.attempts = merged;
                                ctx.trace.served_by = next_ctx.trace.served_by.clone();
                                ctx.attempts = next_ctx.attempts;
                                ctx.trace.notes.extend(next_ctx.trace.notes.clone());
                                yield Ok(StreamEvent::Reset { reason });
                                served = next;
                                continue;
                            }
                            Err(next_err) => {
                                ctx.trace.notes.push(format!("restart found no deployment: {}", next_err.message));
                                if let Some(t) = next_err.trace {
                                    ctx.trace.attempts.extend(t.attempts);
                                    ctx.trace.notes.extend(t.notes);
                                }
                            }
                        }
                    }
                    let mut err = Error::new(ErrorKind::StreamInterrupted, format!("stream interrupted after content: {}", e.message))
                        .at(&dep.provider, &dep.model)
                        .with_partial(acc.partial());
                    err.provider_code = e.provider_code.clone().or_else(|| Some(e.kind.code().to_string()));
                    err.status = e.status;
                    err.request_id = e.request_id.clone();
                    ctx.trace.served_by = None;
                    let err = ctx.fail(err);
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = err.trace.as_deref().cloned();
                    yield Err(err);
                    return;
                }
            }
        }
    }
}

/// A stream's idle timer: one for the whole stream, moved only when it fires or must fire
/// sooner; a chunk just records when it came. A `timeout` per chunk registered and removed a
/// timer for every chunk that had to be waited for (most, from a real provider).
struct Quiet {
    last: Instant,
    armed: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Quiet {
    fn new(idle: Duration) -> Self {
        let last = Instant::now();
        Quiet { last, armed: last + idle, timer: Box::pin(tokio::time::sleep_until(last + idle)) }
    }

    /// The next item of `rest`, or `Err(how long it was silent)` when nothing came within
    /// `wait` of the last item (or by `deadline`, at least 1 ms after it).
    async fn next(
        &mut self,
        rest: &mut EventStream,
        wait: Duration,
        deadline: Instant,
    ) -> std::result::Result<Option<Result<StreamEvent>>, Duration> {
        loop {
            let due = (self.last + wait).min(deadline.max(self.last + Duration::from_millis(1)));
            if due < self.armed {
                self.armed = due;
                self.timer.as_mut().reset(due);
            }
            tokio::select! {
                biased;
                item = rest.next() => {
                    self.last = Instant::now();
                    return Ok(item);
                }
                () = &mut self.timer => {}
            }
            // Data came since the timer was set: wait on from the last of it.
            if due > Instant::now() {
                self.armed = due;
                self.timer.as_mut().reset(due);
            } else {
                return Err(due - self.last);
            }
        }
    }
}

fn static_events(text: &str) -> Vec<StreamEvent> {
    vec![
        StreamEvent::Start { id: "static".into(), model: "static".into() },
        StreamEvent::ContentDelta { text: text.to_string() },
        StreamEvent::Finish { reason: crate::types::FinishReason::Stop, native: None },
    ]
}
