//! The binding's tokio runtime: one multi-thread runtime per process, created lazily, created
//! again in a `fork()`ed child, and the two ways Python waits on it.
//!
//! Why a slot that can be replaced (and not a `OnceLock`, like `pyo3_async_runtimes::tokio`):
//! after `fork()` the child inherits a runtime whose worker threads do not exist (only the
//! forking thread survives), so every await in the child would hang.
//! Here the slot remembers the pid that built it; a different pid means "forked child", and
//! the stale runtime is abandoned (leaked: dropping it would wait for threads that will never
//! run) and a fresh one built.
//!
//! Fork safety of the slot's own lock: it is taken only with the GIL held (every entry point
//! takes a `Python` token), and `os.fork()` runs with the GIL held by the forking thread, so no
//! other thread can be inside the lock at the moment of the fork.
//!
//! Waiting: the sync API uses [`block_on`], which drives the future on the calling thread
//! with the GIL released, waking every [`SIGNAL_POLL`] to let Python run signal handlers (a
//! `KeyboardInterrupt` drops the future, which cancels the request); its requests to
//! plain-http providers run on the calling thread (`polyroute::provider::inline`). Sync
//! streams use [`drive`], where the calling thread also waits on the stream's socket itself
//! (`poll(2)`), so a chunk wakes only it. asyncio goes through `aio.rs`. None of them ever
//! takes the GIL on a runtime thread.

use std::future::Future;
#[cfg(unix)]
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polyroute::provider::inline;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::{Builder, Handle, Runtime};

/// How often a blocked sync call comes back for Python signal handlers (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

struct Slot {
    pid: u32,
    rt: &'static Runtime,
}

static SLOT: Mutex<Option<Slot>> = Mutex::new(None);

/// This process's id, cached: every call checks for a fork (runtime, workers, router), and
/// `std::process::id()` is a `getpid` syscall each time (three per async call in a syscall
/// trace, issue 18). A forked child forgets the cached id in an atfork handler, so the checks
/// still see the child's own.
#[cfg(unix)]
pub fn pid() -> u32 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        extern "C" fn forget() {
            PID.store(0, Ordering::Relaxed);
        }
        // SAFETY: registers a handler that only stores to an atomic, which is
        // async-signal-safe as a forked child's handler must be. Should registration fail,
        // the cache is never used (`HOOKED` stays false).
        if unsafe { libc::pthread_atfork(None, None, Some(forget)) } == 0 {
            HOOKED.store(true, Ordering::Relaxed);
        }
    });
    if !HOOKED.load(Ordering::Relaxed) {
        return std::process::id();
    }
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

#[cfg(unix)]
static PID: AtomicU32 = AtomicU32::new(0);
#[cfg(unix)]
static HOOKED: AtomicBool = AtomicBool::new(false);

#[cfg(not(unix))]
pub fn pid() -> u32 {
    std::process::id()
}

/// The runtime of this process, built on first use (and on first use after a fork).
pub fn runtime(_py: Python<'_>) -> PyResult<&'static Runtime> {
    let pid = pid();
    let mut slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = slot.as_ref().filter(|s| s.pid == pid) {
        return Ok(s.rt);
    }
    let rt = Builder::new_multi_thread()
        .enable_all()
        .thread_name("polyroute-rt")
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("polyroute: cannot start the tokio runtime: {e}")))?;
    // One runtime per process lifetime (plus one abandoned per fork): leaking is the point.
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some(Slot { pid, rt });
    Ok(rt)
}

/// Whether this process is not the one that built `pid`'s objects (i.e. we are a forked child).
pub fn forked_since(pid: u32) -> bool {
    pid != self::pid()
}

/// The runtime, for a sync call about to block this thread: refused on one of the runtime's
/// own threads (it would block a worker that the call itself may need).
fn runtime_for_blocking(py: Python<'_>) -> PyResult<&'static Runtime> {
    if Handle::try_current().is_ok() {
        return Err(PyRuntimeError::new_err("polyroute: a blocking Router call was made from inside the polyroute runtime; use AsyncRouter there"));
    }
    runtime(py)
}

/// Run `fut` to completion for a sync caller: GIL released while waiting, Ctrl-C honoured.
pub fn block_on<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    let rt = runtime_for_blocking(py)?;
    let mut fut = std::pin::pin!(fut);
    // Where a request running inline on this thread (see below) leaves the signal
    // handler's exception when it stops for it.
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    loop {
        let hook = raised.clone();
        // Inside `inline::scope` the call's requests to plain-http providers run on this
        // thread (no hand-off to the runtime's workers); one waiting there asks `hook`
        // between short waits, since this loop's timer cannot interrupt it.
        let r =
            py.detach(|| inline::scope(move || signalled(&hook), || rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, fut.as_mut()).await })));
        if let Some(e) = raised.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        match r {
            Ok(v) => return Ok(v),
            // Dropping `fut` on the way out of `?` cancels the request.
            Err(_elapsed) => py.check_signals()?,
        }
    }
}

/// [`block_on`] for a future that waits more than once, such as a stream's reads: this
/// thread sleeps on the future's sockets itself (`inline::drive_for`), so a chunk that
/// arrives wakes only it, where the runtime's reactor would wake a worker that then wakes
/// it (issue 18). Its requests are driven the same way rather than made on the blocking
/// client; Ctrl-C is honoured between waits of at most [`SIGNAL_POLL`].
pub fn drive<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    let rt = runtime_for_blocking(py)?;
    let mut fut = std::pin::pin!(fut);
    loop {
        match py.detach(|| inline::drive_for(rt.handle(), fut.as_mut(), SIGNAL_POLL)) {
            std::task::Poll::Ready(v) => return Ok(v),
            // Dropping `fut` on the way out of `?` cancels the request.
            std::task::Poll::Pending => py.check_signals()?,
        }
    }
}

/// Run Python's signal handlers from a thread that released the GIL; `true` (and the
/// exception kept in `raised`) if one raised.
fn signalled(raised: &Mutex<Option<PyErr>>) -> bool {
    Python::attach(|py| match py.check_signals() {
        Ok(()) => false,
        Err(e) => {
            *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            true
        }
    })
}
