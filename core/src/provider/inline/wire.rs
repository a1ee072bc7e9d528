//! HTTP/1.1 as the inline clients speak it, apart from how bytes arrive: the request head,
//! how a response body is framed, and reading status, headers and body out of a buffer that
//! a [`Source`] fills. The blocking client (`http.rs`, sync callers) and the async one
//! (`direct.rs`) share this, so both frame and fail alike.
//!
//! Reading is written once, as `async` code over [`Source::fill`]: the async client awaits a
//! socket there; the blocking one reads before it returns an already-finished future, so
//! the whole read completes in a single poll ([`now`]).

use std::future::Future;

use futures::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{push_decimal, push_decimal_bytes};
use crate::provider::WireRequest;

const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// Headers parsed into a stack array of this many first: a provider sends 5–30, and the
/// 128-slot array (4 KB, initialised for each parse) is only for an answer with more.
const USUAL_HEADERS: usize = 32;
const MAX_LINE_BYTES: usize = 4096;

/// Where a connection's bytes come from.
pub(super) trait Source {
    /// Append what arrives next to `buf`: the number of bytes, 0 at the end of the connection.
    fn fill(&mut self, buf: &mut Vec<u8>, during_body: bool) -> impl Future<Output = Result<usize>> + Send;
}

pub(super) fn connection(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Connection, msg)
}

pub(super) fn io_error(during_body: bool, e: std::io::Error) -> Error {
    let what = if during_body { "body read failed" } else { "request failed" };
    connection(format!("{what}: {e}"))
}

/// The result of a read whose source never waits (see the module docs).
pub(super) fn now<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    f.now_or_never().unwrap_or_else(|| Err(connection("request failed: a blocking read did not complete")))
}

/// Bodies up to this size go out in the head's buffer, in one segment.
const ONE_SEGMENT: usize = 64 * 1024;

/// The bytes a client writes for `req`: head and body in one buffer (one segment and one
/// allocation) for the usual small request; a larger body is left where it is, to be written
/// after the head.
pub(super) fn request_bytes<'r>(url: &reqwest::Url, host: &str, req: &'r WireRequest) -> (Vec<u8>, &'r [u8]) {
    if req.body.len() > ONE_SEGMENT {
        return (request_head(url, host, req, 0), &req.body);
    }
    let mut all = request_head(url, host, req, req.body.len());
    all.extend_from_slice(&req.body);
    (all, &[])
}

/// The request head, in a buffer with room for `then` more bytes.
fn request_head(url: &reqwest::Url, host: &str, req: &WireRequest, then: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(512 + then);
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
            h.push(b':');
            push_decimal_bytes(&mut h, p.into());
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
    h.extend_from_slice(b"content-length: ");
    push_decimal_bytes(&mut h, req.body.len() as u64);
    h.extend_from_slice(b"\r\n\r\n");
    h
}

/// Whether a pooled connection is still usable: nothing to read yet (the server would only
/// send unasked bytes to close it) and not closed. Cheaper than finding out by a failed
/// request, which the server may already have half read. Asks the kernel directly: an async
/// socket's cached readiness may not have seen the close yet.
#[cfg(unix)]
pub(super) fn silent(s: &impl std::os::fd::AsRawFd) -> bool {
    let mut b = 0u8;
    // SAFETY: a one-byte peek into a local byte on a socket this function borrows.
    let n = unsafe { libc::recv(s.as_raw_fd(), (&raw mut b).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

/// A provider URL's host and its pool key (`host:port`).
pub(super) fn host_and_key(url: &reqwest::Url) -> Result<(&str, String)> {
    let host = url.host_str().ok_or_else(|| connection("invalid provider URL: no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    Ok((host, pool_key(host, port)))
}

/// The pool key of a URL: `host:port`.
pub(super) fn pool_key(host: &str, port: u16) -> String {
    let mut key = String::with_capacity(host.len() + 6);
    key.push_str(host);
    key.push(':');
    push_decimal(&mut key, port.into());
    key
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A response being read from `src`.
pub(super) struct Conn<S> {
    pub(super) src: S,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    max_body: usize,
}

impl<S: Source> Conn<S> {
    pub(super) fn new(src: S, max_body: usize) -> Self {
        Conn { src, buf: Vec::with_capacity(16 * 1024), pos: 0, max_body }
    }

    /// Whether every byte received was part of the response (anything more, and the
    /// connection cannot carry another request).
    pub(super) fn consumed_all(&self) -> bool {
        self.pos == self.buf.len()
    }

    async fn fill(&mut self, during_body: bool) -> Result<usize> {
        self.src.fill(&mut self.buf, during_body).await
    }

    /// Status, headers, how the body is framed, and whether the connection may carry another
    /// request after this body (never after a body that runs to the close). Interim (1xx)
    /// answers are skipped.
    pub(super) async fn read_head(&mut self) -> Result<(u16, HeaderMap, Framing, bool)> {
        loop {
            if self.pos < self.buf.len() {
                match parse_head(&self.buf[self.pos..])? {
                    Some((n, head)) => {
                        self.pos += n;
                        if (100..200).contains(&head.status) && head.status != 101 {
                            continue;
                        }
                        let (framing, reusable) = framing(head.status, head.http11, &head.headers)?;
                        return Ok((head.status, head.headers, framing, reusable));
                    }
                    None if self.buf.len() - self.pos > MAX_HEAD_BYTES => {
                        return Err(connection("invalid HTTP response: head too large"));
                    }
                    None => {}
                }
            }
            if self.fill(false).await? == 0 {
                let what = if self.buf.is_empty() { "before a response" } else { "in the middle of the response head" };
                return Err(connection(format!("connection closed by the server {what}")));
            }
        }
    }

    pub(super) async fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) if n > self.max_body => Err(too_large(self.max_body)),
            Framing::Length(n) => {
                while self.buf.len() - self.pos < n {
                    if self.fill(true).await? == 0 {
                        return Err(truncated());
                    }
                }
                let body = self.buf[self.pos..self.pos + n].to_vec();
                self.pos += n;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked().await,
            Framing::UntilClose => {
                while self.fill(true).await? > 0 {
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

    /// The next piece of a body read as it arrives (a stream's): everything of it the buffer
    /// holds, at least one byte, with the chunked framing taken out; `None` at its end. `at`
    /// says where in the body the reading stands, from [`BodyAt::start`]; it is `Done` as soon
    /// as the body's end was in the buffer, so the caller can release the connection with the
    /// last piece (a stream's reader often stops there and never asks again).
    pub(super) async fn next_piece(&mut self, at: &mut BodyAt) -> Result<Option<Vec<u8>>> {
        // A stream may run for hours: what was consumed must not pile up in the buffer.
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut out = Vec::new();
        loop {
            match self.advance(at, &mut out)? {
                Advance::Progress => {}
                Advance::Done => return Ok((!out.is_empty()).then_some(out)),
                // What arrived so far goes out now; waiting is for when there is nothing.
                Advance::NeedBytes if !out.is_empty() => return Ok(Some(out)),
                Advance::NeedBytes => {
                    if self.fill(true).await? == 0 {
                        if *at != BodyAt::ToClose {
                            return Err(truncated());
                        }
                        *at = BodyAt::Done;
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// One step of a streamed body's framing, on buffered bytes only.
    fn advance(&mut self, at: &mut BodyAt, out: &mut Vec<u8>) -> Result<Advance> {
        let avail = self.buf.len() - self.pos;
        match *at {
            BodyAt::Done => return Ok(Advance::Done),
            BodyAt::Left(0) => *at = BodyAt::Done,
            BodyAt::Left(_) | BodyAt::ToClose | BodyAt::InChunk(_) if avail == 0 => return Ok(Advance::NeedBytes),
            BodyAt::Left(left) => {
                let n = left.min(avail);
                out.extend_from_slice(&self.take(n));
                *at = BodyAt::Left(left - n);
            }
            BodyAt::ToClose => out.extend_from_slice(&self.take(avail)),
            BodyAt::InChunk(left) => {
                let n = left.min(avail);
                out.extend_from_slice(&self.take(n));
                *at = if n == left { BodyAt::ChunkEnd } else { BodyAt::InChunk(left - n) };
            }
            BodyAt::ChunkEnd if avail < 2 => return Ok(Advance::NeedBytes),
            BodyAt::ChunkEnd => {
                if &self.buf[self.pos..self.pos + 2] != b"\r\n" {
                    return Err(connection("body read failed: chunk not followed by CRLF"));
                }
                self.pos += 2;
                *at = BodyAt::ChunkSize;
            }
            BodyAt::ChunkSize | BodyAt::Trailers => {
                let Some(line) = self.buffered_line()? else { return Ok(Advance::NeedBytes) };
                *at = match (*at, line.is_empty()) {
                    (BodyAt::Trailers, true) => BodyAt::Done,
                    (BodyAt::Trailers, false) => BodyAt::Trailers,
                    _ => match chunk_size(&line)? {
                        0 => BodyAt::Trailers,
                        size => BodyAt::InChunk(size),
                    },
                };
            }
        }
        Ok(Advance::Progress)
    }

    /// A whole line from the buffer (without its line end), if one is there.
    fn buffered_line(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(i) = self.buf[self.pos..].iter().position(|b| *b == b'\n') else {
            if self.buf.len() - self.pos > MAX_LINE_BYTES {
                return Err(connection("body read failed: chunk line too long"));
            }
            return Ok(None);
        };
        let line = self.buf[self.pos..self.pos + i].strip_suffix(b"\r").unwrap_or(&self.buf[self.pos..self.pos + i]).to_vec();
        self.pos += i + 1;
        Ok(Some(line))
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let piece = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        piece
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size = chunk_size(&self.read_line().await?)?;
            if size == 0 {
                // Trailers, up to the blank line that ends the message.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > self.max_body {
                return Err(too_large(self.max_body));
            }
            while self.buf.len() - self.pos < size + 2 {
                if self.fill(true).await? == 0 {
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
    async fn read_line(&mut self) -> Result<Vec<u8>> {
        loop {
            if let Some(line) = self.buffered_line()? {
                return Ok(line);
            }
            if self.fill(true).await? == 0 {
                return Err(truncated());
            }
        }
    }
}

/// What one step of a streamed body's framing did.
enum Advance {
    Progress,
    NeedBytes,
    Done,
}

/// Where reading a streamed body stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyAt {
    /// This many bytes to go (`content-length`).
    Left(usize),
    /// Until the server closes.
    ToClose,
    /// At a chunk's size line.
    ChunkSize,
    /// Inside a chunk, this many bytes to go.
    InChunk(usize),
    /// After a chunk's data, at its CRLF.
    ChunkEnd,
    /// After the last chunk, at the trailers (up to a blank line).
    Trailers,
    Done,
}

impl BodyAt {
    pub(super) fn start(framing: Framing) -> BodyAt {
        match framing {
            Framing::Empty => BodyAt::Done,
            Framing::Length(n) => BodyAt::Left(n),
            Framing::Chunked => BodyAt::ChunkSize,
            Framing::UntilClose => BodyAt::ToClose,
        }
    }
}

/// A chunk-size line's size (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<usize> {
    let size = line.split(|b| *b == b';').next().map(|s| s.trim_ascii()).unwrap_or_default();
    std::str::from_utf8(size).ok().and_then(|s| usize::from_str_radix(s, 16).ok()).ok_or_else(|| connection("body read failed: invalid chunk size"))
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
/// A response head as parsed.
struct Head {
    status: u16,
    http11: bool,
    headers: HeaderMap,
}

/// The response head at the start of `buf` and its length, or `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>> {
    let mut few = [httparse::EMPTY_HEADER; USUAL_HEADERS];
    let mut r = httparse::Response::new(&mut few);
    match r.parse(buf) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut many);
            let parsed = r.parse(buf);
            Head::read(parsed, &r, buf)
        }
        parsed => Head::read(parsed, &r, buf),
    }
}

impl Head {
    fn read(parsed: httparse::Result<usize>, r: &httparse::Response<'_, '_>, buf: &[u8]) -> Result<Option<(usize, Head)>> {
        let n = match parsed {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(connection(format!("invalid HTTP response: {e}"))),
        };
        // The values share one copy of the head: a copy of each was an allocation per header
        // (a provider sends 5–30).
        let shared = bytes::Bytes::copy_from_slice(&buf[..n]);
        let base = buf.as_ptr() as usize;
        let mut headers = HeaderMap::with_capacity(r.headers.len());
        for h in r.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| connection("invalid HTTP response: bad header name"))?;
            // httparse's values are slices of `buf`; anything else is copied as before.
            let value = match (h.value.as_ptr() as usize).checked_sub(base).filter(|at| at + h.value.len() <= n) {
                Some(at) => HeaderValue::from_maybe_shared(shared.slice(at..at + h.value.len())),
                None => HeaderValue::from_bytes(h.value),
            };
            headers.append(name, value.map_err(|_| connection("invalid HTTP response: bad header value"))?);
        }
        Ok(Some((n, Head { status: r.code.unwrap_or(0), http11: r.version == Some(1), headers })))
    }
}

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
            push_decimal(&mut s, n as u64);
            assert_eq!(s, n.to_string());
        }
        assert_eq!(pool_key("example.test", 8080), "example.test:8080");
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

    /// Bytes handed out a few at a time, as a socket may: framing must not depend on where
    /// reads split.
    struct Trickle(Vec<u8>, usize);

    impl Source for Trickle {
        fn fill(&mut self, buf: &mut Vec<u8>, _: bool) -> impl Future<Output = Result<usize>> + Send {
            let n = self.1.min(self.0.len());
            buf.extend(self.0.drain(..n));
            std::future::ready(Ok(n))
        }
    }

    #[test]
    fn responses_read_alike_however_the_bytes_are_split() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n";
        for step in [1, 2, 7, wire.len()] {
            let mut c = Conn::new(Trickle(wire.to_vec(), step), 1000);
            let (status, _, framing, reusable) = now(c.read_head()).unwrap();
            assert_eq!((status, framing, reusable), (200, Framing::Chunked, true), "step {step}");
            assert_eq!(now(c.read_body(framing)).unwrap(), b"abcde", "step {step}");
            assert!(c.consumed_all());
        }
        // Read piece by piece, as a stream is: the same bytes, whatever the split.
        for step in [1, 2, 7, wire.len()] {
            let mut c = Conn::new(Trickle(wire.to_vec(), step), 1000);
            let (_, _, framing, _) = now(c.read_head()).unwrap();
            let mut at = BodyAt::start(framing);
            let mut body = Vec::new();
            while let Some(piece) = now(c.next_piece(&mut at)).unwrap() {
                assert!(!piece.is_empty());
                body.extend(piece);
            }
            assert_eq!((body.as_slice(), at), (&b"abcde"[..], BodyAt::Done), "step {step}");
            assert!(c.consumed_all());
        }
        let mut c = Conn::new(Trickle(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc".to_vec(), 2), 1000);
        let (_, _, framing, _) = now(c.read_head()).unwrap();
        let mut at = BodyAt::start(framing);
        assert_eq!(now(c.next_piece(&mut at)).unwrap().unwrap(), b"ab");
        assert_eq!(now(c.next_piece(&mut at)).unwrap().unwrap(), b"c");
        assert!(now(c.next_piece(&mut at)).unwrap_err().message.contains("before the end of the body"));
        let mut c = Conn::new(Trickle(b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec(), 5), 1000);
        let (_, _, framing, reusable) = now(c.read_head()).unwrap();
        let (mut at, mut body) = (BodyAt::start(framing), Vec::new());
        while let Some(piece) = now(c.next_piece(&mut at)).unwrap() {
            body.extend(piece);
        }
        assert_eq!((body.as_slice(), reusable), (&b"until the end"[..], false));
        let mut c = Conn::new(Trickle(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc".to_vec(), 4), 1000);
        let (_, _, framing, _) = now(c.read_head()).unwrap();
        let e = now(c.read_body(framing)).unwrap_err();
        assert!(e.kind == ErrorKind::Connection && e.message.contains("before the end of the body"), "{e}");
    }

    fn head_of(n: usize, extra: &str) -> Vec<u8> {
        let mut w = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..n {
            w.extend_from_slice(format!("x-h{i}: value {i}\r\n").as_bytes());
        }
        w.extend_from_slice(extra.as_bytes());
        w.extend_from_slice(b"content-length: 2\r\n\r\nok");
        w
    }

    /// Heads are parsed with 32 header slots first and 128 when they have more; every value
    /// is kept exactly (they share one copy of the head), however the reads split.
    #[test]
    fn heads_keep_every_header_whatever_their_number() {
        for (n, step) in [(0, 1000), (5, 3), (31, 1000), (40, 7), (124, 1000)] {
            let wire = head_of(n, "x-request-id: req_1\r\nx-empty:\r\nx-spaced:   a  b \r\n");
            let mut c = Conn::new(Trickle(wire, step), 1000);
            let (status, h, framing, _) = now(c.read_head()).unwrap_or_else(|e| panic!("{n} headers: {e}"));
            assert_eq!((status, framing, h.len()), (200, Framing::Length(2), n + 4), "{n} headers");
            for i in 0..n {
                assert_eq!(h[format!("x-h{i}").as_str()], format!("value {i}").as_str());
            }
            assert_eq!([h["x-request-id"].as_bytes(), h["x-empty"].as_bytes(), h["x-spaced"].as_bytes()], [&b"req_1"[..], b"", b"a  b"]);
            assert_eq!(now(c.read_body(framing)).unwrap(), b"ok");
        }
        let e = now(Conn::new(Trickle(head_of(200, ""), 1000), 1000).read_head()).unwrap_err();
        assert!(e.kind == ErrorKind::Connection && e.message.contains("invalid HTTP response"), "{e}");
        let e = now(Conn::new(Trickle(head_of(2, "x-bad: a\x01b\r\n"), 1000), 1000).read_head()).unwrap_err();
        assert!(e.kind == ErrorKind::Connection && e.message.contains("invalid HTTP response"), "{e}");
    }
}
