//! HTTP/1.1 for requests polled by a host's own event loop ([`super::driven`]): the socket
//! is read and written without blocking by whoever polls, and when it would wait, its
//! descriptor goes to the host's loop (asyncio's `add_reader`) instead of tokio's reactor.
//!
//! Why: Python's asyncio calls paid two thread hops over a blocking socket, one to a worker
//! that does the request and one back to the loop with the answer (+70–88 µs p50 on the
//! 2-core VM, issue 18). Driven here, the loop sends the request itself and its own `epoll`
//! wakes it when the answer arrives, as for any asyncio socket.
//!
//! The sockets are the blocking client's (`http.rs`), from the same pool: `MSG_DONTWAIT`
//! makes each read and write non-blocking without changing the socket's mode, so a
//! connection serves sync and driven calls alike. New connections are made by tokio (the
//! loop must not block in `connect`) and handed over once connected.
//!
//! Polled where no driver listens (a stream opened on the loop and read on a runtime
//! worker), a socket becomes a tokio socket for good: it then waits on tokio's reactor and
//! is not pooled afterwards. Correct everywhere; fast where the driver is.

use std::future::Future;
use std::io::ErrorKind as IoKind;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use super::direct::Answer;
use super::http::{still_open, Pool, Socket};
use super::wire::{connection, host_and_key, io_error, request_bytes, Conn, Source};
use super::Wait;
use crate::error::Result;
use crate::provider::WireRequest;

pub(super) static SENT: AtomicU64 = AtomicU64::new(0);

enum Net {
    /// A pooled socket (blocking mode) used with `MSG_DONTWAIT`; waits go to the driver.
    Raw(Socket),
    /// Taken over by tokio (polled with no driver listening); not pooled again.
    Tokio(tokio::net::TcpStream),
    /// Only while changing from one to the other.
    Gone,
}

struct Driven(Net);

/// A socket leaving its request (closed, or back to the pool) takes back any wait reported
/// for it earlier in the poll under way: a request dropped within the poll that saw it block
/// (its attempt timed out, a hedge won) must not have its descriptor reach the driver, which
/// would watch a closed one (`EBADF`) or a pooled one.
impl Drop for Driven {
    fn drop(&mut self) {
        if let Net::Raw(s) = &self.0 {
            super::unwait(s.stream.as_raw_fd());
        }
    }
}

impl Source for Driven {
    fn fill(&mut self, buf: &mut Vec<u8>, during_body: bool) -> impl Future<Output = Result<usize>> + Send {
        std::future::poll_fn(move |cx| self.poll_fill(cx, buf).map_err(|e| io_error(during_body, e)))
    }
}

impl Driven {
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<std::io::Result<usize>> {
        self.poll_io(
            cx,
            false,
            buf,
            |s, buf| {
                let n = recv_now(s)?;
                buf.extend_from_slice(&s.scratch[..n]);
                Ok(n)
            },
            |t, buf| {
                buf.reserve(16 * 1024);
                t.try_read_buf(buf)
            },
        )
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.poll_io(cx, true, &mut (), |s, _| send_now(s, data), |t, _| t.try_write(data))
    }

    /// One read or write (`write`): `raw` on a pooled socket, whose wait goes to the driver
    /// (or, with none listening, the socket moves to tokio), `tokio` once tokio has it; both
    /// get `with` (the read's buffer).
    fn poll_io<T, W: ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        write: bool,
        with: &mut W,
        mut raw: impl FnMut(&mut Socket, &mut W) -> std::io::Result<T>,
        mut tokio: impl FnMut(&tokio::net::TcpStream, &mut W) -> std::io::Result<T>,
    ) -> Poll<std::io::Result<T>> {
        loop {
            match &mut self.0 {
                Net::Raw(s) => match raw(s, with) {
                    Err(e) if e.kind() == IoKind::Interrupted => {}
                    Err(e) if e.kind() == IoKind::WouldBlock => {
                        if super::wait_on(Wait { fd: s.stream.as_raw_fd(), write }) {
                            return Poll::Pending;
                        }
                        self.move_to_tokio()?;
                    }
                    r => return Poll::Ready(r),
                },
                Net::Tokio(t) => {
                    if write {
                        ready!(t.poll_write_ready(cx))?;
                    } else {
                        ready!(t.poll_read_ready(cx))?;
                    }
                    match tokio(t, with) {
                        Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::Interrupted) => {}
                        r => return Poll::Ready(r),
                    }
                }
                Net::Gone => return Poll::Ready(Err(std::io::Error::other("connection lost"))),
            }
        }
    }

    /// `head` (with a small body in it: `wire::request_bytes`), then `rest`.
    async fn write_request(&mut self, head: &[u8], rest: &[u8]) -> Result<()> {
        self.write_all(head).await?;
        self.write_all(rest).await
    }

    async fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match std::future::poll_fn(|cx| self.poll_write(cx, data)).await {
                Ok(0) => return Err(connection("request failed: the connection accepts no more data")),
                Ok(n) => data = &data[n..],
                Err(e) => return Err(io_error(false, e)),
            }
        }
        Ok(())
    }

    /// From here on tokio's reactor watches the socket (see the module docs).
    fn move_to_tokio(&mut self) -> std::io::Result<()> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(std::io::Error::other("a driven request was polled outside its event loop and outside the runtime"));
        }
        let Net::Raw(s) = std::mem::replace(&mut self.0, Net::Gone) else { return Ok(()) };
        s.stream.set_nonblocking(true)?;
        self.0 = Net::Tokio(tokio::net::TcpStream::from_std(s.stream)?);
        Ok(())
    }
}

fn recv_now(s: &mut Socket) -> std::io::Result<usize> {
    // SAFETY: reads into the socket's own scratch buffer, within its length.
    let n = unsafe { libc::recv(s.stream.as_raw_fd(), s.scratch.as_mut_ptr().cast(), s.scratch.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(target_os = "linux")]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
// Elsewhere no MSG_NOSIGNAL: Rust programs and Python both ignore SIGPIPE.
#[cfg(not(target_os = "linux"))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

fn send_now(s: &mut Socket, data: &[u8]) -> std::io::Result<usize> {
    // SAFETY: writes from a borrowed slice, within its length.
    let n = unsafe { libc::send(s.stream.as_raw_fd(), data.as_ptr().cast(), data.len(), SEND_FLAGS) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

impl Pool {
    /// [`super::AsyncPool::send`] for a request polled inside [`super::driven`]: the same
    /// answer (status, headers, the body whole or piece by piece), from the blocking
    /// client's connections.
    pub(crate) async fn send_driven(self: Arc<Self>, url: reqwest::Url, req: WireRequest, streamed: bool) -> Result<Answer> {
        let (host, key) = host_and_key(&url)?;
        let (head, rest) = request_bytes(&url, host, &req);
        SENT.fetch_add(1, Ordering::Relaxed);
        let (mut net, reused) = match self.idle.checkout(&key, |s| still_open(&s.stream)) {
            Some(s) => (Driven(Net::Raw(s)), true),
            None => (self.connect_driven(&url).await?, false),
        };
        if let Err(e) = net.write_request(&head, rest).await {
            if !reused {
                return Err(e);
            }
            // A pooled connection the server closed just now: the request did not get through
            // whole, so it cannot have been served. Once more on a new one.
            net = self.connect_driven(&url).await?;
            net.write_request(&head, rest).await?;
        }
        drop(head);
        // Read at once, before any wait: from a remote provider that read is one `EAGAIN`,
        // but a server on this machine can answer within the send (loopback wakes it on the
        // sender's core), and then the call ends in this poll with no trip through the loop.
        // Waiting first was 25-40 us slower per call after an idle gap (issue 18, A/B).
        let mut conn = Conn::new(net, self.max_body);
        let (status, headers, framing, keep_alive) = conn.read_head().await?;
        let release = move |mut conn: Conn<Driven>| {
            let reusable = keep_alive && conn.consumed_all();
            if let Net::Raw(s) = std::mem::replace(&mut conn.src.0, Net::Gone) {
                super::unwait(s.stream.as_raw_fd());
                if reusable {
                    self.idle.checkin(key, s);
                }
            }
        };
        Ok((status, headers, super::direct::body(conn, framing, streamed, release)))
    }

    /// Connected by tokio (without blocking the loop), then handed over in blocking mode as
    /// the pool's sockets are.
    async fn connect_driven(&self, url: &reqwest::Url) -> Result<Driven> {
        let s = super::direct::connect(url, self.connect_timeout).await?;
        let std = s.into_std().map_err(|e| io_error(false, e))?;
        std.set_nonblocking(false).map_err(|e| io_error(false, e))?;
        Ok(Driven(Net::Raw(Socket::new(std))))
    }
}
