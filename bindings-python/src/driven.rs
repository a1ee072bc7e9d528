//! Async calls polled by the asyncio loop itself: the call's future runs on the loop's
//! thread (GIL released while it runs), its plain-`http` requests are sent from there, and
//! the loop's own selector waits for their sockets (`loop.add_reader`), so the answer wakes
//! the loop directly, as an aiohttp socket would (`polyroute::provider::inline::driven`).
//!
//! Why: the call workers (`workers.rs`) cost two thread hops per call, one to the worker
//! and one back to the loop; on the 2-core VM that was +70–88 µs p50 over a blocking socket
//! (issue 18), where this path has none.
//!
//! What else the future waits for (a timer: backoff, attempt timeouts, hedging; a request
//! over `https`, which stays on reqwest; another task) wakes it through the loop's bridge
//! (`aio.rs`): the waker queues a re-poll and writes the wake-up byte, and the loop polls
//! again on its own thread. On Linux the sockets a poll reports are armed in the bridge's
//! socket set (`aio::Sockets`, one descriptor the loop watches), each for one report, so
//! nothing watches them when the call is polled next or dropped (either may close or pool
//! them); elsewhere each gets its own `add_reader`, removed before the next poll.
//!
//! Cancellation: cancelling the call's [`Waiter`] drops the call's future (closing its
//! sockets). Used only where the loop has `add_reader` (selector
//! loops, uvloop) on Unix; Windows' proactor loop keeps the call workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};

use polyroute::provider::inline::{self, Wait};
use pyo3::prelude::*;

use crate::aio::{Outcome, Shared};
use crate::errors::to_pyerr;
use crate::runtime::runtime;
use crate::waiter::Waiter;

type Call = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One driven call: its future until it ends, and the sockets the loop watches for it.
pub struct Driven {
    call: Mutex<Option<Call>>,
    waits: Mutex<Vec<Wait>>,
    /// The future the outcome goes to (it holds this call until it is done or cancelled).
    target: Py<Waiter>,
    shared: Arc<Shared>,
    /// A re-poll is queued on the bridge already (wake-ups in a burst share one).
    queued: AtomicBool,
    /// The token its sockets are armed with in the loop's socket set (`aio::Sockets`), if the
    /// loop has one; else they are watched one by one with `add_reader`.
    token: Option<u64>,
}

impl Drop for Driven {
    fn drop(&mut self) {
        if let (Some(sockets), Some(token)) = (&self.shared.sockets, self.token) {
            sockets.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
        }
    }
}

/// Wakes a driven call from any thread: a re-poll on the loop, through the bridge.
struct Rewake(Weak<Driven>);

impl Wake for Rewake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(d) = self.0.upgrade() {
            if !d.queued.swap(true, Ordering::AcqRel) {
                d.shared.repoll(d.clone());
            }
        }
    }
}

/// The loop's callback for a watched socket: poll the call again.
#[pyclass(frozen, module = "polyroute._native")]
struct Ready(Arc<Driven>);

#[pymethods]
impl Ready {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        crate::waiter::eager(py, || self.0.poll(py))
    }
}

impl Driven {
    /// `call` for `target` (the waiter its coroutine awaits); not polled yet.
    pub fn new(shared: Arc<Shared>, target: &Bound<'_, Waiter>, call: Call) -> Arc<Driven> {
        let token = shared.sockets.as_ref().map(|s| s.next_token.fetch_add(1, Ordering::Relaxed));
        let driven = Arc::new(Driven {
            call: Mutex::new(Some(call)),
            waits: Mutex::new(Vec::new()),
            target: target.clone().unbind(),
            shared,
            queued: AtomicBool::new(false),
            token,
        });
        if let (Some(sockets), Some(token)) = (&driven.shared.sockets, token) {
            sockets.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(token, Arc::downgrade(&driven));
        }
        driven
    }

    /// [`Driven::poll`], where a panic (outside the call's own future, whose panics are its
    /// outcome already) ends the call with it as `ConfigError` instead of leaving the
    /// future pending or reaching the loop's callback machinery.
    pub fn poll(self: &Arc<Self>, py: Python<'_>) {
        if let Err(e) = polyroute::bridge::catch(|| self.poll_once(py)) {
            self.cancel(py);
            Waiter::resolve(self.target.bind(py), Err(to_pyerr(py, &e)));
        }
    }

    /// Poll the call on this (the loop's) thread; resolve the future if it ended, else watch
    /// what it waits for.
    fn poll_once(self: &Arc<Self>, py: Python<'_>) {
        self.queued.store(false, Ordering::Release);
        let target = self.target.bind(py);
        if let Err(e) = self.unwatch(py) {
            e.write_unraisable(py, Some(target.as_any()));
        }
        // Out of its slot while it runs: the GIL is released and a guard cannot cross that.
        let Some(mut call) = self.call.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let rt = match runtime(py) {
            Ok(rt) => rt,
            Err(e) => return Waiter::resolve(target, Err(e)),
        };
        let waker = Waker::from(Arc::new(Rewake(Arc::downgrade(self))));
        let (polled, waits) = py.detach(|| {
            let _rt = rt.enter();
            inline::driven(|| call.as_mut().poll(&mut Context::from_waker(&waker)))
        });
        match polled {
            Poll::Ready(outcome) => {
                drop(call);
                if target.get().is_pending() {
                    Waiter::resolve(target, outcome(py));
                }
            }
            Poll::Pending => {
                *self.call.lock().unwrap_or_else(|p| p.into_inner()) = Some(call);
                if let Err(e) = self.watch(target, waits) {
                    // The loop refused the socket (closed meanwhile): the call cannot go on.
                    self.cancel(py);
                    Waiter::resolve(target, Err(e));
                }
            }
        }
    }

    /// The future was cancelled: stop watching, drop the call (closing its sockets).
    pub fn cancel(&self, py: Python<'_>) {
        let _ = self.unwatch(py);
        let call = self.call.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(call);
    }

    fn watch(self: &Arc<Self>, target: &Bound<'_, Waiter>, waits: Vec<Wait>) -> PyResult<()> {
        if waits.is_empty() {
            return Ok(());
        }
        let py = target.py();
        #[cfg(target_os = "linux")]
        if let (Some(sockets), Some(token)) = (&self.shared.sockets, self.token) {
            // Armed for one report each: nothing to unwatch before the next poll.
            return sockets.set.arm(token, &waits).map_err(|e| {
                let e = polyroute::Error::new(polyroute::ErrorKind::Connection, format!("the event loop could not watch the connection: {e}"));
                to_pyerr(py, &e)
            });
        }
        let event_loop = target.get().event_loop(py);
        let ready = Bound::new(py, Ready(self.clone()))?;
        for w in &waits {
            let method = if w.write { "add_writer" } else { "add_reader" };
            event_loop.call_method1(method, (w.fd, &ready))?;
            self.waits.lock().unwrap_or_else(|p| p.into_inner()).push(*w);
        }
        Ok(())
    }

    fn unwatch(&self, py: Python<'_>) -> PyResult<()> {
        let waits = std::mem::take(&mut *self.waits.lock().unwrap_or_else(|p| p.into_inner()));
        if waits.is_empty() {
            return Ok(());
        }
        let event_loop = self.target.get().event_loop(py);
        for w in waits {
            let method = if w.write { "remove_writer" } else { "remove_reader" };
            event_loop.call_method1(method, (w.fd,))?;
        }
        Ok(())
    }
}

/// How many calls one loop drives at once (one per core, at least two); more go to the call
/// workers and the runtime.
pub fn max_at_once() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2))
}

/// Whether async calls may be driven by their loop here: Unix, inline HTTP allowed, and not
/// turned off with `POLYROUTE_ASYNC_DRIVEN=0` (the benchmarks compare the paths with it).
pub fn possible() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| cfg!(unix) && inline::enabled_by_env() && std::env::var("POLYROUTE_ASYNC_DRIVEN").map_or(true, |v| v.trim() != "0"))
}
