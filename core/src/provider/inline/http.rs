//! HTTP/1.1 on a blocking socket, for one request on the calling thread, with idle
//! connections pooled across threads. Deliberately small: plain `http`, requests with a known
//! length, responses framed by `content-length`, chunked encoding or the connection's end.
//! Its errors are classified like reqwest's on the other path (connection problems are
//! `connection`, an elapsed deadline `timeout`), and they never name the URL.

use std::collections::HashMap;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind, Result};
use crate::provider::WireRequest;

pub(super) static SENT: AtomicU64 = AtomicU64::new(0);

/// The longest one blocking read waits before the caller's interrupt check runs.
const SLICE: Duration = Duration::from_millis(50);
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
const MAX_LINE_BYTES: usize = 4096;

/// Idle kept-alive connections by `host:port`, shared by every thread of the process.
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    /// Longer bodies are refused (`malformed_response`), as the reqwest path's reader does.
    max_body: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inline::Pool")
    }
}

/// A connection, with the socket timeouts it has now (each change is a syscall, and the
/// same values usually serve the next request too).
struct Socket {
    stream: TcpStream,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Where reads land: zeroed once per connection. A fresh zeroed array per read was
    /// 14 % of a sync call's instructions (callgrind), all of it `memset`.
    scratch: Box<[u8]>,
}

struct Idle {
    socket: Socket,
    since: Instant,
}

fn connection(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Connection, msg)
}

fn io_error(during_body: bool, e: std::io::Error) -> Error {
    let what = if during_body { "body read failed" } else { "request failed" };
    connection(format!("{what}: {e}"))
}

impl Pool {
    pub(crate) fn new(max_idle_per_host: usize, idle_timeout: Duration, connect_timeout: Duration, max_body: usize) -> Self {
        Pool { idle: Mutex::new(HashMap::new()), max_idle_per_host, idle_timeout, connect_timeout, max_body }
    }

    /// Send `req` to `url` (plain `http`) and read the whole answer by `deadline`: status,
    /// headers and body.
    pub(crate) fn send(&self, url: &reqwest::Url, req: WireRequest, deadline: Instant) -> Result<(u16, HeaderMap, Vec<u8>)> {
        // Only what the caller already said: asking (Python takes its GIL for that) is for
        // when a request has waited a while.
        if super::stopped() {
            return Err(super::cancelled());
        }
        let host = url.host_str().ok_or_else(|| connection("invalid provider URL: no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let mut key = String::with_capacity(host.len() + 6);
        key.push_str(host);
        key.push(':');
        push_decimal(&mut key, port.into());
        let head = request_head(url, host, &req);
        SENT.fetch_add(1, Ordering::Relaxed);
        let (mut socket, reused) = match self.checkout(&key) {
            Some(s) => (s, true),
            None => (self.connect(url, deadline)?, false),
        };
        if let Err(e) = write_request(&mut socket, &head, &req.body, deadline) {
            if !reused || e.kind != ErrorKind::Connection {
                return Err(e);
            }
            // A pooled connection the server closed just now: the request did not get through
            // whole, so it cannot have been served. Once more on a new one.
            socket = self.connect(url, deadline)?;
            write_request(&mut socket, &head, &req.body, deadline)?;
        }
        let mut conn = Conn { socket, buf: Vec::with_capacity(16 * 1024), pos: 0, deadline, max_body: self.max_body };
        let (status, headers, framing, keep_alive) = conn.read_head()?;
        let body = conn.read_body(framing)?;
        if keep_alive && framing != Framing::UntilClose && conn.pos == conn.buf.len() {
            self.checkin(key, conn.socket);
        }
        Ok((status, headers, body))
    }

    /// The most recently used idle connection that is still open.
    fn checkout(&self, key: &str) -> Option<Socket> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(key)?.pop()?;
            if idle.since.elapsed() < self.idle_timeout && still_open(&idle.socket.stream) {
                return Some(idle.socket);
            }
        }
    }

    fn checkin(&self, key: String, socket: Socket) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < self.max_idle_per_host {
            list.push(Idle { socket, since: Instant::now() });
        }
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
                    return Ok(Socket { stream: s, read_timeout: None, write_timeout: None, scratch: vec![0; 16 * 1024].into_boxed_slice() });
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

/// Whether a pooled connection is still usable: nothing to read yet (the server would only
/// send unasked bytes to close it) and not closed. Cheaper than finding out by a failed
/// request, which the server may already have half read.
#[cfg(unix)]
fn still_open(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = 0u8;
    // SAFETY: a one-byte peek into a local byte on a socket this function borrows.
    let n = unsafe { libc::recv(s.as_raw_fd(), (&raw mut b).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && std::io::Error::last_os_error().kind() == IoKind::WouldBlock
}

#[cfg(not(unix))]
fn still_open(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let open = matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == IoKind::WouldBlock);
    open && s.set_nonblocking(false).is_ok()
}

fn request_head(url: &reqwest::Url, host: &str, req: &WireRequest) -> Vec<u8> {
    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(req.method.as_str().as_bytes());
    h.push(b' ');
    h.extend_from_slice(url.path().as_bytes());
    if let Some(q) = url.query() {
        h.push(b'?');
        h.extend_from_slice(q.as_bytes());
    }
    h.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers.contains_key(http::header::HOST) {
        h.extend_from_slice(b"host: ");
        h.extend_from_slice(host.as_bytes());
        if let Some(p) = url.port() {
            let mut port = String::from(":");
            push_decimal(&mut port, p.into());
            h.extend_from_slice(port.as_bytes());
        }
        h.extend_from_slice(b"\r\n");
    }
    if !req.headers.contains_key(http::header::ACCEPT) {
        h.extend_from_slice(b"accept: */*\r\n");
    }
    for (k, v) in &req.headers {
        if k == http::header::CONTENT_LENGTH || k == http::header::TRANSFER_ENCODING || k == http::header::CONNECTION {
            continue;
        }
        h.extend_from_slice(k.as_str().as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    let mut len = String::from("content-length: ");
    push_decimal(&mut len, req.body.len());
    h.extend_from_slice(len.as_bytes());
    h.extend_from_slice(b"\r\n\r\n");
    h
}

/// `n` in decimal, without `format!`'s machinery (three per request showed in profiles).
fn push_decimal(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|d| char::from(*d)));
}

fn write_request(socket: &mut Socket, head: &[u8], body: &[u8], deadline: Instant) -> Result<()> {
    // Sliced like reads, so a server that stops reading cannot hold the caller past the
    // deadline or an interrupt. Set once per connection.
    if socket.write_timeout != Some(SLICE) {
        socket.stream.set_write_timeout(Some(SLICE)).map_err(|e| io_error(false, e))?;
        socket.write_timeout = Some(SLICE);
    }
    if body.len() <= 64 * 1024 {
        // One segment for the usual small request.
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head);
        all.extend_from_slice(body);
        write_all(&mut socket.stream, &all, deadline)
    } else {
        write_all(&mut socket.stream, head, deadline)?;
        write_all(&mut socket.stream, body, deadline)
    }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

struct Conn {
    socket: Socket,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    deadline: Instant,
    max_body: usize,
}

impl Conn {
    /// Read more into the buffer: the number of bytes read, 0 at the end of the connection.
    fn fill(&mut self, during_body: bool) -> Result<usize> {
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
                    self.buf.extend_from_slice(&scratch[..n]);
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

    /// Status, headers, how the body is framed, and whether the connection may be reused.
    /// Interim (1xx) answers are skipped.
    fn read_head(&mut self) -> Result<(u16, HeaderMap, Framing, bool)> {
        loop {
            if self.pos < self.buf.len() {
                let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut r = httparse::Response::new(&mut hs);
                match r.parse(&self.buf[self.pos..]) {
                    Ok(httparse::Status::Complete(n)) => {
                        self.pos += n;
                        let status = r.code.unwrap_or(0);
                        if (100..200).contains(&status) && status != 101 {
                            continue;
                        }
                        let mut headers = HeaderMap::with_capacity(r.headers.len());
                        for h in r.headers.iter() {
                            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| connection("invalid HTTP response: bad header name"))?;
                            let value = HeaderValue::from_bytes(h.value).map_err(|_| connection("invalid HTTP response: bad header value"))?;
                            headers.append(name, value);
                        }
                        let (framing, reusable) = framing(status, r.version == Some(1), &headers)?;
                        return Ok((status, headers, framing, reusable));
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() - self.pos > MAX_HEAD_BYTES => {
                        return Err(connection("invalid HTTP response: head too large"));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(connection(format!("invalid HTTP response: {e}"))),
                }
            }
            if self.fill(false)? == 0 {
                let what = if self.buf.is_empty() { "before a response" } else { "in the middle of the response head" };
                return Err(connection(format!("connection closed by the server {what}")));
            }
        }
    }

    fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) if n > self.max_body => Err(too_large(self.max_body)),
            Framing::Length(n) => {
                while self.buf.len() - self.pos < n {
                    if self.fill(true)? == 0 {
                        return Err(truncated());
                    }
                }
                let body = self.buf[self.pos..self.pos + n].to_vec();
                self.pos += n;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked(),
            Framing::UntilClose => {
                while self.fill(true)? > 0 {
                    if self.buf.len() - self.pos > self.max_body {
                        return Err(too_large(self.max_body));
                    }
                }
                let body = self.buf[self.pos..].to_vec();
                self.pos = self.buf.len();
                Ok(body)
            }
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = line.split(|b| *b == b';').next().map(|s| s.trim_ascii()).unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or_else(|| connection("body read failed: invalid chunk size"))?;
            if size == 0 {
                // Trailers, up to the blank line that ends the message.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > self.max_body {
                return Err(too_large(self.max_body));
            }
            while self.buf.len() - self.pos < size + 2 {
                if self.fill(true)? == 0 {
                    return Err(truncated());
                }
            }
            body.extend_from_slice(&self.buf[self.pos..self.pos + size]);
            if &self.buf[self.pos + size..self.pos + size + 2] != b"\r\n" {
                return Err(connection("body read failed: chunk not followed by CRLF"));
            }
            self.pos += size + 2;
        }
    }

    /// One line of the body's framing, without its line end.
    fn read_line(&mut self) -> Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|b| *b == b'\n') {
                let line = self.buf[self.pos..self.pos + i].strip_suffix(b"\r").unwrap_or(&self.buf[self.pos..self.pos + i]).to_vec();
                self.pos += i + 1;
                return Ok(line);
            }
            if self.buf.len() - self.pos > MAX_LINE_BYTES {
                return Err(connection("body read failed: chunk line too long"));
            }
            if self.fill(true)? == 0 {
                return Err(truncated());
            }
        }
    }
}

fn truncated() -> Error {
    connection("body read failed: connection closed before the end of the body")
}

fn too_large(limit: usize) -> Error {
    // The same words as `read_body`'s limit on the other path.
    Error::malformed(format!("response body larger than {limit} bytes"))
}

/// How the body after this head is delimited (RFC 9112 §6.3), and whether the connection
/// can carry another request afterwards.
fn framing(status: u16, http11: bool, h: &HeaderMap) -> Result<(Framing, bool)> {
    let close =
        h.get_all(http::header::CONNECTION).iter().any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))));
    let reusable = http11 && !close;
    if status == 204 || status == 304 {
        return Ok((Framing::Empty, reusable));
    }
    if let Some(te) = h.get_all(http::header::TRANSFER_ENCODING).iter().next_back() {
        let chunked = te.to_str().is_ok_and(|v| v.rsplit(',').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked")));
        return Ok(if chunked { (Framing::Chunked, reusable) } else { (Framing::UntilClose, false) });
    }
    let mut lengths = h.get_all(http::header::CONTENT_LENGTH).iter();
    match lengths.next() {
        None => Ok((Framing::UntilClose, false)),
        Some(first) => {
            let n: usize =
                first.to_str().ok().and_then(|v| v.trim().parse().ok()).ok_or_else(|| connection("invalid HTTP response: bad content-length"))?;
            if lengths.any(|v| v != first) {
                return Err(connection("invalid HTTP response: conflicting content-length"));
            }
            Ok((if n == 0 { Framing::Empty } else { Framing::Length(n) }, reusable))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn decimals_are_written_like_format_writes_them() {
        for n in [0, 7, 10, 80, 443, 65535, 1_000_000, usize::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn bodies_are_framed_as_rfc_9112_says() {
        let f = |status, http11, pairs: &[(&str, &str)]| framing(status, http11, &headers(pairs));
        assert_eq!(f(200, true, &[("content-length", "12")]).unwrap(), (Framing::Length(12), true));
        assert_eq!(f(200, true, &[("content-length", "0")]).unwrap(), (Framing::Empty, true));
        assert_eq!(f(204, true, &[]).unwrap(), (Framing::Empty, true));
        assert_eq!(f(200, true, &[("transfer-encoding", "gzip, chunked"), ("content-length", "5")]).unwrap(), (Framing::Chunked, true));
        // Not ending in chunked: the body runs to the close, and the connection is spent.
        assert_eq!(f(200, true, &[("transfer-encoding", "gzip")]).unwrap(), (Framing::UntilClose, false));
        assert_eq!(f(200, true, &[]).unwrap(), (Framing::UntilClose, false));
        assert_eq!(f(200, true, &[("connection", "keep-alive, Close"), ("content-length", "1")]).unwrap(), (Framing::Length(1), false));
        assert_eq!(f(200, false, &[("content-length", "1")]).unwrap(), (Framing::Length(1), false));
        assert_eq!(f(200, true, &[("content-length", "1"), ("content-length", "1")]).unwrap(), (Framing::Length(1), true));
        for bad in [&[("content-length", "1"), ("content-length", "2")][..], &[("content-length", "-1")], &[("content-length", "x")]] {
            assert_eq!(f(200, true, bad).unwrap_err().kind, ErrorKind::Connection, "{bad:?}");
        }
    }

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
