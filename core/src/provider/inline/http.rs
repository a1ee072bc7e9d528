//! HTTP/1.1 on a blocking socket, for one request on the calling thread, with idle
//! connections pooled across threads. Deliberately small: plain `http`, requests with a known
//! length, responses framed by `content-length`, chunked encoding or the connection's end.
//! Its errors are classified like reqwest's on the other path (connection problems are
//! `connection`, an elapsed deadline `timeout`), and they never name the URL. The protocol
//! itself is in `wire.rs`, shared with the async client.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::idle::Idle;
use super::wire::{connection, host_and_key, io_error, now, request_bytes, Conn, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::WireRequest;

pub(super) static SENT: AtomicU64 = AtomicU64::new(0);

/// The longest one blocking read waits before the caller's interrupt check runs.
const SLICE: Duration = Duration::from_millis(50);

/// Idle kept-alive connections by `host:port`, shared by every thread of the process.
pub(crate) struct Pool {
    pub(super) idle: Idle<Socket>,
    pub(super) connect_timeout: Duration,
    /// Longer bodies are refused (`malformed_response`), as the reqwest path's reader does.
    pub(super) max_body: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inline::Pool")
    }
}

/// A connection, with the socket timeouts it has now (each change is a syscall, and the
/// same values usually serve the next request too).
pub(super) struct Socket {
    pub(super) stream: TcpStream,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Where reads land: zeroed once per connection. A fresh zeroed array per read was
    /// 14 % of a sync call's instructions (callgrind), all of it `memset`.
    pub(super) scratch: Box<[u8]>,
}

impl Socket {
    pub(super) fn new(stream: TcpStream) -> Self {
        Socket { stream, read_timeout: None, write_timeout: None, scratch: vec![0; 16 * 1024].into_boxed_slice() }
    }
}

impl Pool {
    pub(crate) fn new(max_idle_per_host: usize, idle_timeout: Duration, connect_timeout: Duration, max_body: usize) -> Self {
        Pool { idle: Idle::new(max_idle_per_host, idle_timeout), connect_timeout, max_body }
    }

    /// Send `req` to `url` (plain `http`) and read the whole answer by `deadline`: status,
    /// headers and body.
    pub(crate) fn send(&self, url: &reqwest::Url, req: WireRequest, deadline: Instant) -> Result<(u16, HeaderMap, Vec<u8>)> {
        // Only what the caller already said: asking (Python takes its GIL for that) is for
        // when a request has waited a while.
        if super::stopped() {
            return Err(super::cancelled());
        }
        let (host, key) = host_and_key(url)?;
        let (head, rest) = request_bytes(url, host, &req);
        SENT.fetch_add(1, Ordering::Relaxed);
        let (mut socket, reused) = match self.idle.checkout(&key, |s| still_open(&s.stream)) {
            Some(s) => (s, true),
            None => (self.connect(url, deadline)?, false),
        };
        crate::probe::mark("pool checkout, request head");
        if let Err(e) = write_request(&mut socket, &head, rest, deadline) {
            if !reused || e.kind != ErrorKind::Connection {
                return Err(e);
            }
            // A pooled connection the server closed just now: the request did not get through
            // whole, so it cannot have been served. Once more on a new one.
            socket = self.connect(url, deadline)?;
            write_request(&mut socket, &head, rest, deadline)?;
        }
        crate::probe::mark("write (the server woken)");
        let mut conn = Conn::new(Blocking { socket, deadline }, self.max_body);
        let (status, headers, framing, keep_alive) = now(conn.read_head())?;
        let body = now(conn.read_body(framing))?;
        if keep_alive && conn.consumed_all() {
            self.idle.checkin(key, conn.src.socket);
        }
        Ok((status, headers, body))
    }

    fn connect(&self, url: &reqwest::Url, deadline: Instant) -> Result<Socket> {
        // Name resolution blocks this thread, as it would any sync client's.
        let addrs = url.socket_addrs(|| Some(80)).map_err(|e| connection(format!("cannot resolve the provider's host: {e}")))?;
        let mut last = connection("the provider's host resolved to no address");
        for a in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(super::deadline_passed());
            }
            match TcpStream::connect_timeout(&a, self.connect_timeout.min(left)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(Socket::new(s));
                }
                // Bounded by the attempt's deadline rather than the connect timeout: that is
                // the attempt timing out (and it reads as such).
                Err(e) if e.kind() == IoKind::TimedOut && left <= self.connect_timeout => return Err(super::deadline_passed()),
                Err(e) if e.kind() == IoKind::TimedOut => last = Error::new(ErrorKind::Timeout, format!("connect timed out: {e}")),
                Err(e) => last = connection(format!("connect failed: {e}")),
            }
        }
        Err(last)
    }
}

/// Whether a pooled connection is still usable (see `wire::silent`).
#[cfg(unix)]
pub(super) fn still_open(s: &TcpStream) -> bool {
    super::wire::silent(s)
}

#[cfg(not(unix))]
fn still_open(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let open = matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == IoKind::WouldBlock);
    open && s.set_nonblocking(false).is_ok()
}

/// Write `head` (with the body in it, for a small one: `wire::request_bytes`) and `rest`.
fn write_request(socket: &mut Socket, head: &[u8], rest: &[u8], deadline: Instant) -> Result<()> {
    // Sliced like reads, so a server that stops reading cannot hold the caller past the
    // deadline or an interrupt. Set once per connection.
    if socket.write_timeout != Some(SLICE) {
        socket.stream.set_write_timeout(Some(SLICE)).map_err(|e| io_error(false, e))?;
        socket.write_timeout = Some(SLICE);
    }
    write_all(&mut socket.stream, head, deadline)?;
    write_all(&mut socket.stream, rest, deadline)
}

fn write_all(s: &mut TcpStream, mut data: &[u8], deadline: Instant) -> Result<()> {
    while !data.is_empty() {
        if Instant::now() >= deadline {
            return Err(super::deadline_passed());
        }
        match s.write(data) {
            Ok(0) => return Err(connection("request failed: the connection accepts no more data")),
            Ok(n) => data = &data[n..],
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {
                if super::interrupted() {
                    return Err(super::cancelled());
                }
            }
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(io_error(false, e)),
        }
    }
    Ok(())
}

/// A connection read on the calling thread until `deadline`, in slices so the scope's
/// interrupt check runs between them.
struct Blocking {
    socket: Socket,
    deadline: Instant,
}

impl Source for Blocking {
    fn fill(&mut self, buf: &mut Vec<u8>, during_body: bool) -> impl std::future::Future<Output = Result<usize>> + Send {
        std::future::ready(self.read_now(buf, during_body))
    }
}

impl Blocking {
    fn read_now(&mut self, buf: &mut Vec<u8>, during_body: bool) -> Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(super::deadline_passed());
            }
            // Waits are sliced for the interrupt check; the slice is re-armed only when the
            // deadline is nearer than a slice (or the connection is new).
            let wait = left.min(SLICE);
            if self.socket.read_timeout != Some(wait) && (wait < SLICE || self.socket.read_timeout.is_none_or(|t| t < SLICE)) {
                self.socket.stream.set_read_timeout(Some(wait)).map_err(|e| io_error(during_body, e))?;
                self.socket.read_timeout = Some(wait);
            }
            let Socket { stream, scratch, .. } = &mut self.socket;
            match stream.read(scratch) {
                Ok(n) => {
                    crate::probe::mark("wait, read");
                    buf.extend_from_slice(&scratch[..n]);
                    return Ok(n);
                }
                Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {
                    if super::interrupted() {
                        return Err(super::cancelled());
                    }
                }
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(io_error(during_body, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_body_over_the_limit_is_refused_without_reading_it_all() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n{}");
            std::thread::sleep(Duration::from_secs(2));
        });
        let pool = Pool::new(4, Duration::from_secs(60), Duration::from_secs(5), 1000);
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/v1/chat/completions")).unwrap();
        let req = WireRequest { method: http::Method::POST, url: url.to_string(), headers: HeaderMap::new(), body: "{}".into() };
        let e = pool.send(&url, req, Instant::now() + Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedResponse, "{e}");
        assert!(e.message.contains("larger than 1000 bytes"), "{}", e.message);
    }
}
