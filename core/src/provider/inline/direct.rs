//! HTTP/1.1 for async callers' requests to plain-`http` providers, read and written by the
//! task that awaits them (a stream's body: by whoever reads the stream).
//!
//! Why not reqwest here: hyper drives each connection from a task of its own, so a request
//! is handed to that task, its answer handed back, and the body handed back again: three
//! wake-ups across the runtime's threads per call, on top of the socket's. On the 2-core VM
//! that is most of what a routed async call costs over a raw socket (issue 18). Here the
//! task that awaits the attempt owns the socket while the request runs: no hand-off.
//!
//! Cancel safety comes from ownership: a connection is out of the pool while a request uses
//! it, and goes back only after its response was read to the end. A dropped future (attempt
//! timeout, hedge lost, caller gone) drops the socket with it, which closes the connection,
//! so the server sees the disconnect and no half-read answer is ever reused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::idle::Idle;
use super::wire::{connection, host_and_key, io_error, request_bytes, BodyAt, Conn, Framing, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::WireRequest;

pub(super) static SENT: AtomicU64 = AtomicU64::new(0);

/// What an inline async client hands the transport: status, headers, the body.
pub(crate) type Answer = (u16, HeaderMap, BoxStream<'static, Result<Bytes>>);

/// Idle kept-alive connections by `host:port`, shared by every task of the router.
pub(crate) struct AsyncPool {
    idle: Idle<TcpStream>,
    connect_timeout: Duration,
    /// Longer bodies are refused (`malformed_response`), as the reqwest path's reader does.
    max_body: usize,
}

impl std::fmt::Debug for AsyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inline::AsyncPool")
    }
}

/// A socket the awaiting task reads itself.
struct Socket(TcpStream);

impl Source for Socket {
    async fn fill(&mut self, buf: &mut Vec<u8>, during_body: bool) -> Result<usize> {
        // Straight into the buffer's spare room: no scratch copy, no zeroing.
        buf.reserve(16 * 1024);
        self.0.read_buf(buf).await.map_err(|e| io_error(during_body, e))
    }
}

impl AsyncPool {
    pub(crate) fn new(max_idle_per_host: usize, idle_timeout: Duration, connect_timeout: Duration, max_body: usize) -> Self {
        AsyncPool { idle: Idle::new(max_idle_per_host, idle_timeout), connect_timeout, max_body }
    }

    /// Send `req` to `url` (plain `http`) and return once the head has arrived: status,
    /// headers and the body. The body is read as it is polled (a body that breaks keeps the
    /// head, and its request id, as on the reqwest path): whole, or with `streamed`, piece
    /// by piece as it arrives. The connection goes back to the pool after its end.
    pub(crate) async fn send(self: Arc<Self>, url: reqwest::Url, req: WireRequest, streamed: bool) -> Result<Answer> {
        let (host, key) = host_and_key(&url)?;
        let (head, rest) = request_bytes(&url, host, &req);
        SENT.fetch_add(1, Ordering::Relaxed);
        let (mut stream, reused) = match self.idle.checkout(&key, still_open) {
            Some(s) => (s, true),
            None => (connect(&url, self.connect_timeout).await?, false),
        };
        if let Err(e) = write_request(&mut stream, &head, rest).await {
            if !reused {
                return Err(e);
            }
            // A pooled connection the server closed just now: the request did not get through
            // whole, so it cannot have been served. Once more on a new one.
            stream = connect(&url, self.connect_timeout).await?;
            write_request(&mut stream, &head, rest).await?;
        }
        let mut conn = Conn::new(Socket(stream), self.max_body);
        let (status, headers, framing, keep_alive) = conn.read_head().await?;
        let release = move |conn: Conn<Socket>| {
            if keep_alive && conn.consumed_all() {
                self.idle.checkin(key, conn.src.0);
            }
        };
        Ok((status, headers, body(conn, framing, streamed, release)))
    }
}

/// A response's body as the transport hands it on: whole (one item), or with `streamed`
/// piece by piece as it arrives. `release` gets the connection after the body's end (to
/// pool it if it may carry another request); after an error, nothing more is read.
pub(super) fn body<S, R>(mut conn: Conn<S>, framing: Framing, streamed: bool, release: R) -> BoxStream<'static, Result<Bytes>>
where
    S: Source + Send + 'static,
    R: FnOnce(Conn<S>) + Send + 'static,
{
    if !streamed {
        let whole = async move {
            let body = conn.read_body(framing).await?;
            release(conn);
            Ok(Bytes::from(body))
        };
        return futures::stream::once(whole).boxed();
    }
    let state = Some((conn, BodyAt::start(framing), release));
    futures::stream::unfold(state, |state| async move {
        let (mut conn, mut at, release) = state?;
        match conn.next_piece(&mut at).await {
            // The end came with this piece: the connection is free now, not when (if ever)
            // the reader asks for more.
            Ok(Some(piece)) if at == BodyAt::Done => {
                release(conn);
                Some((Ok(Bytes::from(piece)), None))
            }
            Ok(Some(piece)) => Some((Ok(Bytes::from(piece)), Some((conn, at, release)))),
            Ok(None) => {
                release(conn);
                None
            }
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}

/// A new connection to `url`'s host, `TCP_NODELAY` set, each address tried within
/// `timeout`.
pub(super) async fn connect(url: &reqwest::Url, timeout: std::time::Duration) -> Result<TcpStream> {
    let port = url.port_or_known_default().unwrap_or(80);
    let host = url.host_str().ok_or_else(|| connection("invalid provider URL: no host"))?;
    // An address needs no lookup; a name is resolved on tokio's blocking pool (a
    // hand-off, but once per new connection).
    let addrs: Vec<std::net::SocketAddr> = match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
        Ok(ip) => vec![(ip, port).into()],
        Err(_) => tokio::net::lookup_host((host, port)).await.map_err(|e| connection(format!("cannot resolve the provider's host: {e}")))?.collect(),
    };
    let mut last = connection("the provider's host resolved to no address");
    for a in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = connection(format!("connect failed: {e}")),
            Err(_) => last = Error::new(ErrorKind::Timeout, "connect timed out"),
        }
    }
    Err(last)
}

/// Write `head` (with the body in it, for a small one: `wire::request_bytes`) and `rest`.
async fn write_request(s: &mut TcpStream, head: &[u8], rest: &[u8]) -> Result<()> {
    let r = match s.write_all(head).await {
        Ok(()) if rest.is_empty() => Ok(()),
        Ok(()) => s.write_all(rest).await,
        Err(e) => Err(e),
    };
    r.map_err(|e| io_error(false, e))
}

#[cfg(unix)]
fn still_open(s: &TcpStream) -> bool {
    super::wire::silent(s)
}

#[cfg(not(unix))]
fn still_open(s: &TcpStream) -> bool {
    use futures::FutureExt;
    // Pending: nothing to read, i.e. open and quiet.
    s.peek(&mut [0u8; 1]).now_or_never().is_none()
}
