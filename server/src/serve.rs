//! `polyroute serve`: the OpenAI chat-completions API over the core router.
//!
//! The gateway decides nothing: a request body goes through the same parsing as the
//! bindings' (`polyroute::bridge`), the router does the routing, and the answer goes back in
//! OpenAI's wire format (`polyroute::bridge::wire`: chunks, and errors as the status and body
//! that make an OpenAI SDK raise its own exception). What it adds is HTTP: routing metadata
//! from headers or `extra_body`, `x-polyroute-*` response headers, hot reload and draining.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use polyroute::bridge::openai_http::{error_reply, not_found_reply, reply, OpenAiBody, OpenAiReply};
use polyroute::bridge::openai_in::parse_request;
use polyroute::bridge::wire::header_text;
use polyroute::{ChatRequest, Error, ErrorKind, Router};
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access;

pub struct Options {
    pub policy: PathBuf,
    pub listen: String,
    pub max_body: usize,
    pub max_concurrent: usize,
    pub grace: Duration,
    pub limits: crate::listen::Limits,
}

struct App {
    router: Router,
    policy: PathBuf,
    /// Set on SIGTERM/SIGINT: new requests get 503, `/readyz` says not ready.
    draining: AtomicBool,
    /// Per-key request rates (`keys[].rate_limit`).
    /// Chat requests in flight (streams until their last byte), at most `max_concurrent`.
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    body_timeout: Duration,
}

pub async fn run(opts: Options) -> Result<(), String> {
    let router = Router::from_policy_file(&opts.policy).map_err(|e| format!("{}: {}", opts.policy.display(), e.message))?;
    let app = Arc::new(App {
        router,
        policy: opts.policy.clone(),
        draining: AtomicBool::new(false),
        slots: Arc::new(Semaphore::new(opts.max_concurrent)),
        max_concurrent: opts.max_concurrent,
        body_timeout: opts.limits.idle_timeout,
    });
    let listener = tokio::net::TcpListener::bind(&opts.listen).await.map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Installed before the line below: a SIGHUP sent as soon as it is read must reload, not
    // meet the default action (which ends the process).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let stop_requested = stop_signal();
    // Tests and supervisors read this line for the port (`--listen 127.0.0.1:0`).
    eprintln!("polyroute: serving http://{addr} (policy {})", opts.policy.display());
    tokio::spawn(reload_on_sighup(app.clone(), hup));
    tokio::spawn(reload_on_change(app.clone()));
    let routes = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .route("/readyz", get(ready))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(opts.max_body))
        .with_state(app.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    tokio::spawn(crate::listen::accept_loop(listener, routes, opts.limits, stopped, open.clone()));
    stop_requested.await;
    // Still accepting: a request that arrives now gets a 503 it can retry elsewhere, which a
    // load balancer that has not yet seen this instance go handles better than a refused
    // connection.
    app.draining.store(true, Ordering::SeqCst);
    eprintln!("polyroute: draining (new requests get 503; in-flight ones have up to the grace period)");
    let deadline = tokio::time::Instant::now() + opts.grace;
    // First the chat requests in flight (a stream holds its slot to its last byte), then the
    // connections, which write out what they hold and close.
    while app.slots.available_permits() < app.max_concurrent && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    while open.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if open.load(Ordering::SeqCst) == 0 {
        eprintln!("polyroute: stopped");
    } else {
        eprintln!("polyroute: grace period over; stopping with requests in flight");
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not when
/// first polled), so a signal sent as soon as the start line is out is not the default action.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (term, int) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
}

/// Re-read the policy file. An invalid file is reported and the current policy keeps serving
/// (the router's reload is atomic).
fn reload(app: &App, why: &str) {
    let result = std::fs::read_to_string(&app.policy).map_err(|e| e.to_string()).and_then(|t| app.router.reload_str(&t).map_err(|e| e.message));
    match result {
        Ok(()) => eprintln!("polyroute: policy reloaded ({why})"),
        Err(e) => eprintln!("polyroute: policy NOT reloaded ({why}); the previous one keeps serving: {e}"),
    }
}

async fn reload_on_sighup(app: Arc<App>, hup: Option<tokio::signal::unix::Signal>) {
    let Some(mut hup) = hup else { return };
    while hup.recv().await.is_some() {
        reload(&app, "SIGHUP");
    }
}

/// Polls the file's modification time once a second: no platform watcher to go wrong under
/// editors that replace files, and a second is fast enough for a policy change.
async fn reload_on_change(app: Arc<App>) {
    let stamp = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = stamp(&app.policy);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = stamp(&app.policy);
        if now.is_some() && now != last {
            last = now;
            reload(&app, "file changed");
        }
    }
}

struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0.to_string()).into_response()
    }
}

fn error_response(e: &Error) -> Response {
    to_response(error_reply(e), None)
}

/// An answer built by the core (the same one the in-process transports give), as HTTP. A
/// stream holds the concurrency `slot` until its last frame is out.
fn to_response(reply: OpenAiReply, slot: Option<OwnedSemaphorePermit>) -> Response {
    let mut r = match reply.body {
        OpenAiBody::Json(b) => Response::new(Body::from(b)),
        OpenAiBody::Sse(sse) => {
            let frames = futures::stream::unfold((sse, slot), |(sse, slot)| async move {
                let frame = sse.next_frame().await?;
                Some((Ok::<Bytes, Infallible>(Bytes::from(frame)), (sse, slot)))
            });
            Response::new(Body::from_stream(frames))
        }
    };
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = r.headers_mut();
    for (name, value) in reply.headers {
        h.insert(HeaderName::from_static(name), HeaderValue::from_str(&header_text(&value)).unwrap_or_else(|_| HeaderValue::from_static("")));
    }
    r
}

/// An unknown path is the caller's 404 (the `not_found` kind alone means a provider's, a 502).
async fn not_found() -> Response {
    to_response(not_found_reply("no such endpoint (this gateway serves /v1/chat/completions and /v1/models)"), None)
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "reason": "draining"}))).into_response()
    } else {
        Json(json!({"ready": true})).into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.router.metrics_text()).into_response()
}

/// Routes (ask for one with `model`) and deployments, as OpenAI's model list. With `keys:`,
/// only the routes the caller's key may use (deployments are not listed to key holders).
async fn models(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let p = app.router.policy();
    let key = match access::authenticate(&p.keys, &headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let route = |id: &str, kind: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "polyroute", "polyroute": {"kind": kind}});
    let mut data: Vec<Value> = p.routes.iter().filter(|r| key.as_ref().is_none_or(|k| k.allows(&r.name))).map(|r| route(&r.name, "route")).collect();
    if key.is_none() {
        data.extend(p.deployments.keys().map(|d| route(d, "deployment")));
    }
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn chat(State(app): State<Arc<App>>, headers: HeaderMap, request: Request) -> Response {
    if app.draining.load(Ordering::SeqCst) {
        let mut e = Error::new(ErrorKind::Overloaded, "the gateway is shutting down; retry on another instance");
        e.retry_after = Some(Duration::from_secs(1));
        let mut r = error_response(&e);
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    // Held until the answer (a stream: its last byte) is out; full → 503, never a queue that
    // grows without bound behind a slow provider.
    let Ok(slot) = app.slots.clone().try_acquire_owned() else {
        let mut e = Error::new(ErrorKind::Overloaded, format!("the gateway is at its limit of {} concurrent requests", app.max_concurrent));
        e.retry_after = Some(Duration::from_secs(1));
        return error_response(&e);
    };
    let key = match access::authenticate(&app.router.keys(), &headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    // The head arrived within the idle timeout (hyper's timer); the body gets as long again,
    // or a client trickling it would hold a concurrency slot for as long as it likes.
    let body = match tokio::time::timeout(app.body_timeout, Bytes::from_request(request, &())).await {
        Ok(Ok(b)) => b,
        Err(_) => {
            let msg = format!("the request body did not arrive within {} s", app.body_timeout.as_secs_f64());
            return crate::listen::error(StatusCode::REQUEST_TIMEOUT, "request_timeout", &msg);
        }
        Ok(Err(rej)) => {
            let mut r = error_response(&Error::invalid_request(format!("request body refused: {rej}")));
            *r.status_mut() = rej.status();
            // The unread rest of the body is still on the connection: close it, or a client
            // that keeps it alive sends its next request into a connection hyper drops.
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    // Routing metadata from headers and `extra_body` (the `polyroute` object): the core's, shared with the
    // in-process transports.
    let parsed = match parse_request(&body, &headers, key.as_ref().map(|k| k.tenant.as_str())) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let mut parsed = parsed;
    if let Some(k) = &key {
        if let Err(r) = admit(&app, k, &mut parsed.request, parsed.stream) {
            return r;
        }
        if let Some(rl) = k.rate_limit {
            // Counted in the router's state store: shared by every replica with `state.redis`.
            if let Err(e) = app.router.admit(&format!("key `{}`", k.name), rl.requests_per_minute).await {
                return error_response(&e);
            }
        }
    }
    // The slot goes with a stream's body; a non-streamed answer is complete here.
    let stream = parsed.stream;
    let reply = reply(&app.router, parsed).await;
    to_response(reply, stream.then_some(slot))
}

/// A keyed request: the route it would take must be one of the key's (403); the key's rate
/// (429) is checked after. The allowed route is then named in the request, so a reload between this
/// check and the routing cannot send it elsewhere.
fn admit(app: &App, key: &polyroute::policy::KeySpec, req: &mut ChatRequest, stream: bool) -> Result<(), Response> {
    if !key.routes.is_empty() {
        let route = app.router.route_for(req, stream).map_err(|e| error_response(&e))?;
        if !key.allows(&route) {
            return Err(access::forbidden(key, &route));
        }
        req.routing.route = Some(route);
    }
    Ok(())
}
