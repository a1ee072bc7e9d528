//! Sync callers' HTTP on their own thread.
//!
//! A sync call (`Router.chat` in Python, [`block_on`] in Rust) already runs the router's
//! future on the calling thread, but reqwest hands every request to a connection task and
//! an IO driver on the runtime's workers, so each call crossed threads at least twice each
//! way, and woke a parked worker first when the process had been idle: on a 2-core VM that
//! was 50–100 µs per call, more than the routing itself (issue 18). Here, inside a scope
//! that a sync entry point opens, an attempt's request to a plain-`http` provider is written
//! and its answer read on the calling thread over a blocking socket from a pool shared by
//! every thread (`http.rs`).
//!
//! Async callers' requests to plain-`http` providers, and every stream's, take the same
//! protocol code in async form (`direct.rs`): the awaiting task (for a stream, its reader)
//! reads and writes the socket itself, with no hand-off to a connection task.
//!
//! What stays on reqwest, by design: `https` (network latency dwarfs the hop there), and all
//! calls when a proxy is configured in the environment or `POLYROUTE_INLINE_HTTP=0` is set
//! (or `TransportOptions::inline_http` is false). Streams and hedged attempts of a sync call
//! take the async client (a stream's chunks are read later, maybe elsewhere; two hedged
//! requests race, which one blocked thread cannot do), unless the caller waits with
//! [`drive_for`], as Python's sync streams do: then they are driven by the waiting thread.
//!
//! Requests of a future polled by a host's event loop inside [`driven`] (Python's asyncio
//! calls) are read and written on that loop's thread without blocking, and the loop's own
//! selector waits for their sockets (`driven.rs`): no thread hop at all. [`drive_for`] makes
//! the calling thread that loop (`poll(2)`), for sync callers of futures that wait more than
//! once, such as a stream's reads (`drive.rs`).
//!
//! How the pieces meet without new parameters through the provider interface: the attempt
//! loop wraps an attempt in [`within`] (its deadline), which is visible to the transport only
//! while that attempt is being polled, on this thread, inside a [`scope`]. A blocking read
//! waits in slices so the scope's interrupt check (Python's Ctrl-C) runs between them.

mod direct;
#[cfg(unix)]
mod drive;
#[cfg(unix)]
mod driven;
mod http;
mod idle;
#[cfg(target_os = "linux")]
mod watch;
mod wire;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::{Error, ErrorKind};

pub(crate) use direct::AsyncPool;
#[cfg(unix)]
pub use drive::{drive_for, drove_sockets};
pub(crate) use http::Pool;
#[cfg(target_os = "linux")]
pub use watch::SocketSet;

struct Scope {
    interrupted: Box<dyn Fn() -> bool>,
    /// Sticky: once the caller asked to stop, every later inline request of this call stops.
    cancelled: Cell<bool>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Set while a stream's request is started: its body is read later, chunk by chunk.
    static STREAMING: Cell<bool> = const { Cell::new(false) };
    /// Inside [`driven`]: what the polled requests wait for.
    static DRIVEN: RefCell<Option<Vec<Wait>>> = const { RefCell::new(None) };
}

/// A socket a driven request waits on: readable, or with `write`, writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    pub fd: i32,
    pub write: bool,
}

/// Poll a future (in `poll`) with this thread as the driver of its plain-`http` requests:
/// those started or read inside never block and never ask tokio to watch their sockets;
/// what they would wait for is returned instead, for the caller's own event loop to watch
/// (asyncio's `add_reader`), and the future is to be polled again, inside `driven` again,
/// once one of them is ready. Anything else the future waits for (timers, other tasks)
/// wakes its waker as usual. Must run inside the runtime's context (`Runtime::enter`).
///
/// The caller must stop watching those sockets before it polls or drops the future again:
/// the next poll may close or pool them. Unix only; elsewhere requests take the async
/// client and the list is always empty.
pub fn driven<R>(poll: impl FnOnce() -> R) -> (R, Vec<Wait>) {
    struct Restore(Option<Vec<Wait>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            DRIVEN.with(|d| *d.borrow_mut() = prev);
        }
    }
    // The previous driver comes back however `poll` ends (a panic included).
    let restore = Restore(DRIVEN.with(|d| d.borrow_mut().replace(Vec::new())));
    let r = poll();
    let waits = DRIVEN.with(|d| d.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (r, waits)
}

/// Whether a request started now is driven by the host's loop (see [`driven`]).
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn driving() -> bool {
    DRIVEN.with(|d| d.borrow().is_some())
}

/// Report `w` to the driver polling this thread; `false` if none is (the caller must wait
/// some other way).
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn wait_on(w: Wait) -> bool {
    DRIVEN.with(|d| match d.borrow_mut().as_mut() {
        Some(waits) => {
            if !waits.contains(&w) {
                waits.push(w);
            }
            true
        }
        None => false,
    })
}

/// Take back the waits reported for `fd` in the poll under way (its request let go of it).
#[cfg(unix)]
pub(crate) fn unwait(fd: i32) {
    DRIVEN.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            if let Some(waits) = d.as_mut() {
                waits.retain(|w| w.fd != fd);
            }
        }
    });
}

/// Run `f` with inline HTTP allowed on this thread. `interrupted` is asked every few tens of
/// milliseconds while a request waits; `true` ends it as `cancelled` (and the call's later
/// inline requests too).
pub fn scope<R>(interrupted: impl Fn() -> bool + 'static, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = prev);
        }
    }
    let prev = SCOPE.with(|s| s.borrow_mut().replace(Scope { interrupted: Box::new(interrupted), cancelled: Cell::new(false) }));
    let _restore = Restore(prev);
    f()
}

/// `rt.block_on(fut)` for a sync Rust caller (`rt.handle()` of a multi-thread runtime), with
/// this thread doing its plain-`http` providers' requests itself; anything the future spawns
/// runs on the runtime's workers as usual. Panics where `Handle::block_on` does (inside the
/// runtime).
pub fn block_on<F: Future>(rt: &tokio::runtime::Handle, fut: F) -> F::Output {
    scope(|| false, || rt.block_on(fut))
}

/// No thread drives sockets of its own here (see [`drive_for`]).
#[cfg(not(unix))]
pub fn drove_sockets() -> bool {
    false
}

/// Poll `fut` on this thread until it ends or `slice` has passed (`Poll::Pending`), as
/// `rt.block_on` with a timeout would. Elsewhere than on Unix there is no driven path, so
/// it is exactly that.
#[cfg(not(unix))]
pub fn drive_for<F: Future + ?Sized>(rt: &tokio::runtime::Handle, fut: Pin<&mut F>, slice: std::time::Duration) -> Poll<F::Output> {
    match rt.block_on(tokio::time::timeout(slice, fut)) {
        Ok(v) => Poll::Ready(v),
        Err(_) => Poll::Pending,
    }
}

/// An attempt whose requests may run inline until `deadline`.
pub(crate) fn within<F: Future + Unpin>(deadline: Instant, inner: F) -> Within<F> {
    Within { deadline, inner }
}

pub(crate) struct Within<F> {
    deadline: Instant,
    inner: F,
}

impl<F: Future + Unpin> Future for Within<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _restore = SetDeadline::new(Some(self.deadline));
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// Sets the thread's deadline and puts the previous one back when dropped (a panicking poll
/// included).
struct SetDeadline(Option<Instant>);

impl SetDeadline {
    fn new(d: Option<Instant>) -> Self {
        SetDeadline(DEADLINE.with(|c| c.replace(d)))
    }
}

impl Drop for SetDeadline {
    fn drop(&mut self) {
        DEADLINE.with(|c| c.set(self.0));
    }
}

/// Run `f` (which starts a stream's request) with the blocking client off: a stream's body
/// is read after the attempt returns, chunk by chunk, maybe on another thread, so it must
/// come from a connection the runtime's IO driver watches (the async inline client reads it
/// piece by piece; reqwest for `https`).
pub(crate) fn outside<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            STREAMING.with(|s| s.set(self.0));
        }
    }
    let _deadline = SetDeadline::new(None);
    let _streaming = Restore(STREAMING.with(|s| s.replace(true)));
    f()
}

/// Whether the request being started now is a stream's (see [`outside`]): the async inline
/// client then hands its body over as it arrives instead of whole.
pub(crate) fn streaming() -> bool {
    STREAMING.with(Cell::get)
}

/// The deadline of the attempt being polled on this thread, if its request may run inline.
pub(crate) fn here() -> Option<Instant> {
    let d = DEADLINE.with(Cell::get)?;
    SCOPE.with(|s| s.borrow().is_some()).then_some(d)
}

/// Whether the scope's caller already asked to stop (without asking again).
pub(crate) fn stopped() -> bool {
    SCOPE.with(|s| s.borrow().as_ref().is_some_and(|sc| sc.cancelled.get()))
}

/// Whether the scope's caller asked to stop (asks it now; remembers a yes).
pub(crate) fn interrupted() -> bool {
    SCOPE.with(|s| match s.borrow().as_ref() {
        Some(sc) if sc.cancelled.get() => true,
        Some(sc) if (sc.interrupted)() => {
            sc.cancelled.set(true);
            true
        }
        _ => false,
    })
}

pub(crate) fn cancelled() -> Error {
    Error::new(ErrorKind::Cancelled, "cancelled by the caller")
}

const DEADLINE_MSG: &str = "inline request reached its attempt deadline";

/// The attempt's deadline passed while its request ran inline. The attempt loop replaces it
/// with the same error its own timer gives, so callers see one wording whichever path ran.
pub(crate) fn deadline_passed() -> Error {
    Error::new(ErrorKind::Timeout, DEADLINE_MSG)
}

pub(crate) fn is_deadline(e: &Error) -> bool {
    e.kind == ErrorKind::Timeout && e.message == DEADLINE_MSG
}

/// Requests sent inline since the process started (tests check that the path was taken).
#[doc(hidden)]
pub fn sent() -> u64 {
    http::SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Requests sent by the async inline client since the process started.
#[doc(hidden)]
pub fn sent_async() -> u64 {
    direct::SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Requests sent driven by a host's loop since the process started.
#[doc(hidden)]
pub fn sent_driven() -> u64 {
    #[cfg(unix)]
    return driven::SENT.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(unix))]
    0
}

/// Whether inline HTTP may be used by a transport built now: not with a proxy configured in
/// the environment (reqwest honours those; this path does not speak to proxies), nor when
/// `POLYROUTE_INLINE_HTTP=0`.
pub fn enabled_by_env() -> bool {
    let off = std::env::var("POLYROUTE_INLINE_HTTP").is_ok_and(|v| v.trim() == "0" || v.trim().eq_ignore_ascii_case("false"));
    let proxied = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"].iter().any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    !off && !proxied
}
