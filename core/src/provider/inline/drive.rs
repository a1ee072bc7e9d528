//! A host thread that drives a future's plain-`http` sockets itself and sleeps in `poll(2)`
//! on them: [`super::driven`] with the calling thread as the event loop.
//!
//! Why: a sync stream's chunks used to be read from a socket tokio's reactor watched, so
//! every chunk that arrived on its own (a provider's usual pace) woke a runtime worker, which
//! then woke the reading thread: two wake-ups per chunk, +56–73 CPU-µs a chunk over a blocking
//! socket on the 2-core VM (issue 18). Driven here, the chunk wakes the reader directly, as a
//! blocking `recv` would. Whole calls keep the blocking client (`http.rs`), which needs no
//! `poll`; this is for futures that wait more than once (a stream's reads).
//!
//! Everything else the future waits for (timers, other tasks, `https` on reqwest) wakes it
//! through its waker, which writes a byte to the thread's wake-up socket pair, one of the
//! descriptors the thread polls.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::{driven, Wait};

/// One thread's wake-up: a flag (wakes in a burst write one byte) and a socket pair.
struct Signal {
    woken: AtomicBool,
    rx: UnixStream,
    tx: UnixStream,
    /// [`FORKS`] when it was made: a forked child's thread makes its own, since the pair it
    /// inherited is shared with the parent, which could read the child's wake-ups.
    forks: u32,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            // Nonblocking: a full buffer means a wake-up is pending anyway.
            let _ = (&self.tx).write(&[1]);
        }
    }
}

impl Signal {
    fn new() -> std::io::Result<Arc<Signal>> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Arc::new(Signal { woken: AtomicBool::new(false), rx, tx, forks: forks() }))
    }

    /// Forget earlier wake-ups (the poll that follows sees whatever they were for).
    fn reset(&self) {
        if self.woken.swap(false, Ordering::AcqRel) {
            self.drain();
        }
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n == buf.len()) {}
    }
}

/// How many times this process has been forked from the one that started (see
/// [`Signal::forks`]).
static FORKS: AtomicU32 = AtomicU32::new(0);

fn forks() -> u32 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        extern "C" fn child() {
            FORKS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the handler only adds to an atomic, which a forked child's handler may
        // do. Should registration fail, a child shares its parent's pair: a wake-up read by
        // the wrong process makes the other wait out its slice, then poll again.
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    });
    FORKS.load(Ordering::Relaxed)
}

thread_local! {
    /// Whether the last [`drive_for`] on this thread had sockets of its own to wait on.
    static SOCKETS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Made on a thread's first wait and kept (made again in a forked child): wakers a
    /// future stored may fire after the call that made them ended, and then only cost the
    /// thread's next wait a re-poll.
    static SIGNAL: std::cell::RefCell<Option<Arc<Signal>>> = const { std::cell::RefCell::new(None) };
}

/// Poll `fut` on this thread, inside `rt`'s context, until it ends or `slice` has passed
/// (`Poll::Pending`: poll it again after the caller's own checks, such as Python's signal
/// handlers). Its plain-`http` requests are driven by this thread (see the module docs);
/// it must not be a runtime worker (the sleep in `poll(2)` would block one).
pub fn drive_for<F: Future + ?Sized>(rt: &tokio::runtime::Handle, mut fut: Pin<&mut F>, slice: Duration) -> Poll<F::Output> {
    let _rt = rt.enter();
    let Some(signal) = signal() else {
        // No socket pair (out of descriptors): the runtime's own wait still works.
        SOCKETS.with(|s| s.set(false));
        return match rt.block_on(tokio::time::timeout(slice, fut)) {
            Ok(v) => Poll::Ready(v),
            Err(_) => Poll::Pending,
        };
    };
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let end = Instant::now() + slice;
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        signal.reset();
        let (polled, waits) = driven(|| fut.as_mut().poll(&mut cx));
        SOCKETS.with(|s| s.set(!waits.is_empty()));
        if let Poll::Ready(v) = polled {
            return Poll::Ready(v);
        }
        if signal.woken.load(Ordering::Acquire) {
            continue;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Poll::Pending;
        }
        fds.clear();
        fds.push(pollfd(signal.rx.as_raw_fd(), libc::POLLIN));
        fds.extend(waits.iter().map(|w: &Wait| pollfd(w.fd, if w.write { libc::POLLOUT } else { libc::POLLIN })));
        // Rounded up: waking a little late is harmless, spinning on a zero timeout is not.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a live, initialised array of `fds.len()` entries. Errors (EINTR)
        // and readiness alike lead to a re-poll, which finds out what happened.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if fds[0].revents != 0 {
            // A byte written after the flag was reset (the waker sets the flag, then
            // writes): `reset` would not read it, and every later `poll` would return at once.
            signal.drain();
        }
    }
}

/// Whether the last [`drive_for`] on this thread ended with sockets this thread drives (in
/// its last poll the future read one until it would wait): what arrives next on them is
/// read fastest here, where a read on a runtime worker would hand them to tokio for good.
pub fn drove_sockets() -> bool {
    SOCKETS.with(std::cell::Cell::get)
}

/// This thread's [`Signal`], made on first use and again after a fork; `None` if no socket
/// pair could be made.
fn signal() -> Option<Arc<Signal>> {
    SIGNAL.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|sig| sig.forks != forks()) {
            *s = Signal::new().ok();
        }
        s.clone()
    })
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}
