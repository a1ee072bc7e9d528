//! The accept loop: hyper's HTTP/1 connections under the limits `axum::serve` has no knobs
//! for, each answered in OpenAI's error shape where HTTP allows an answer at all.
//!
//! - Connections: at most `max_connections` open; one more is told 503 and closed (a client
//!   opening sockets faster than they finish cannot exhaust the process's descriptors).
//! - Idle and slow clients: a connection must deliver a complete request head within
//!   `idle_timeout` of opening or of its previous answer (hyper's header-read timer, which
//!   covers both the keep-alive wait and a slow-loris head). A connection that sent part of a
//!   head gets 408 before it is closed; an idle one is just closed, as keep-alive expects.
//! - Header size: heads over `max_header_bytes` get 431 (ours, JSON); far larger ones (past
//!   hyper's read buffer) get hyper's own empty 431.
//!
//! Every connection task owns its socket and lends it to hyper, so after hyper gives up on a
//! connection the task can still write the 408 that hyper does not send.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

#[derive(Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

/// Accepts until `stop` turns true, then returns; from then on every open connection answers
/// what it has in progress and closes (`open` counts them down to zero).
pub async fn accept_loop(listener: TcpListener, app: axum::Router, limits: Limits, mut stop: watch::Receiver<bool>, open: Arc<AtomicUsize>) {
    let mut warned = false;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = async { drop(stop.wait_for(|s| *s).await) } => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: a hot retry loop would only burn
                // the CPU the open connections need to finish and free some.
                if !warned {
                    eprintln!("polyroute: cannot accept connections ({e}); retrying");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        warned = false;
        let _ = stream.set_nodelay(true);
        let count = Counted::enter(&open);
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            if count.n > limits.max_connections {
                let msg = format!("the gateway is at its limit of {} open connections", limits.max_connections);
                refuse(stream, StatusCode::SERVICE_UNAVAILABLE, "overloaded", &msg).await;
            } else {
                connection(stream, app, limits, stop).await;
            }
            drop(count);
        });
    }
}

/// One open connection in `open` for as long as it lives.
struct Counted {
    open: Arc<AtomicUsize>,
    n: usize,
}

impl Counted {
    fn enter(open: &Arc<AtomicUsize>) -> Counted {
        Counted { open: open.clone(), n: open.fetch_add(1, Ordering::SeqCst) + 1 }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(mut stream: TcpStream, app: axum::Router, limits: Limits, mut stop: watch::Receiver<bool>) {
    let partial = AtomicBool::new(false);
    let timed_out = {
        let io = TokioIo::new(Watched { inner: &mut stream, partial: &partial });
        let max_header_bytes = limits.max_header_bytes;
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut app = app.clone();
            async move {
                if head_bytes(&req) > max_header_bytes {
                    let msg = format!("the request's headers are over this gateway's limit of {max_header_bytes} bytes");
                    return Ok::<_, Infallible>(error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request_header_fields_too_large", &msg));
                }
                app.call(req.map(Body::new)).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            // Room past our own limit, so heads between the two get the JSON 431 above.
            .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024) + 8 * 1024);
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            _ = async { drop(stop.wait_for(|s| *s).await) } => {
                // Draining: answer what is in progress, then close instead of keeping alive.
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
        };
        result.err().is_some_and(|e| e.is_timeout())
    };
    if timed_out && partial.load(Ordering::SeqCst) {
        let msg = format!("the request head did not arrive within {} s", limits.idle_timeout.as_secs_f64());
        refuse(stream, StatusCode::REQUEST_TIMEOUT, "request_timeout", &msg).await;
    }
}

/// Bytes of the request line and headers as they came (within a few bytes of the wire).
fn head_bytes(req: &Request<Incoming>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    line + req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>()
}

/// An answer in OpenAI's error shape that also closes the connection (after a protocol-level
/// refusal, what else the client sent on it cannot be trusted to be a request boundary).
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert("x-polyroute-error-kind", v);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// Writes `error(...)` straight to a socket hyper is not serving, then closes it.
async fn refuse(mut stream: TcpStream, status: StatusCode, code: &str, message: &str) {
    let r = error(status, code, message);
    let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    for (k, v) in r.headers() {
        head.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap_or("")));
    }
    let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap_or_default();
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    // A client that does not read must not hold the task.
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// The socket as hyper sees it, noting whether request bytes arrived since the last answer
/// went out (a head timing out with bytes received is a slow client, without is an idle one).
struct Watched<'a> {
    inner: &'a mut TcpStream,
    partial: &'a AtomicBool,
}

impl AsyncRead for Watched<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.partial.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Watched<'_> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut *self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.partial.store(false, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.partial.store(false, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
