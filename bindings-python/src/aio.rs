//! The asyncio bridge: core futures run on the tokio runtime and complete asyncio futures,
//! without any tokio thread ever taking the GIL.
//!
//! Why not `pyo3_async_runtimes::future_into_py`: it hands each result to the event loop
//! from a tokio blocking thread that attaches to the interpreter and calls
//! `loop.call_soon_threadsafe`. That call releases the GIL inside (its self-pipe write), so
//! the loop can finish, the program can exit, and the interpreter can start finalizing while
//! the foreign thread still waits to re-attach; CPython then `pthread_exit`s it, the unwind
//! runs pyo3's guard, and the process aborts ("PyGILState_Release: thread state must be
//! current"). We saw it on ~10% of short asyncio programs.
//!
//! Here instead, one [`LoopBridge`] per event loop owns the write end of a socket pair whose
//! read end the Python side watches. A finished task pushes `(future, outcome)` onto the
//! bridge's queue and writes one byte (a plain syscall, no GIL); the loop then runs
//! [`LoopBridge::drain`] on its own thread, which converts the outcomes and resolves the
//! futures. Results are converted to Python objects exactly once, on the thread that will
//! use them.
//!
//! The pair is made by Python's `socket.socketpair()` (AF_UNIX on Unix, a loopback TCP pair
//! on Windows) and the write end handed over here; the read end stays in Python, watched by
//! `loop.add_reader` where the loop has it (selector loops, uvloop) and by a task awaiting
//! `loop.sock_recv` where it does not (Windows' default proactor loop). Nothing here is
//! Unix-only.
//!
//! The futures are [`Waiter`]s (`waiter.rs`), which wake their task in the loop callback
//! that resolved them. Cancellation: each waiter holds what stops its call (the tokio task's
//! abort handle, the worker job's flag, the driven call) and stops it when cancelled (task
//! cancelled, `wait_for` timed out...). Aborting drops the core future, which cancels the
//! HTTP request.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;

use crate::driven::{self, Driven};
use crate::errors::to_pyerr;
use crate::runtime::runtime;
use crate::waiter::{self, Stop, Waiter};
use crate::workers;

pub(crate) type Outcome = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send>;

struct Done {
    future: Py<Waiter>,
    outcome: Outcome,
}

/// What the loop does for the bridge when woken.
enum Item {
    /// Resolve a future with a finished task's outcome.
    Done(Done),
    /// Poll a loop-driven call again (`driven.rs`).
    Repoll(Arc<Driven>),
}

pub(crate) struct Shared {
    done: Mutex<Vec<Item>>,
    /// Write end; a byte here wakes the loop. `None` once the loop has closed its end.
    tx: Mutex<Option<WakeSocket>>,
    /// A wake-up byte is pending: completions in a burst share one.
    signalled: AtomicBool,
    /// Calls the loop drives now (`driven.rs`).
    driving: AtomicUsize,
    /// Where the driven calls' sockets are watched, if not one by one with `add_reader`.
    pub(crate) sockets: Option<Sockets>,
}

/// The driven calls' sockets in one set the loop watches as one descriptor (Linux: the
/// core's `inline::SocketSet`): a wait costs one `epoll_ctl` instead of an `add_reader` and a
/// `remove_reader` (~20 Python-level calls and two `epoll_ctl`s per read).
pub(crate) struct Sockets {
    #[cfg(target_os = "linux")]
    pub(crate) set: polyroute::provider::inline::SocketSet,
    /// The calls by the token their sockets are armed with.
    pub(crate) calls: Mutex<std::collections::HashMap<u64, std::sync::Weak<Driven>>>,
    pub(crate) next_token: std::sync::atomic::AtomicU64,
}

impl Sockets {
    /// `POLYROUTE_ASYNC_SOCKET_SET=0` watches each socket with `add_reader` instead (the
    /// benchmarks compare the two with it).
    #[cfg(target_os = "linux")]
    fn new() -> Option<Sockets> {
        if std::env::var("POLYROUTE_ASYNC_SOCKET_SET").is_ok_and(|v| v.trim() == "0") {
            return None;
        }
        let set = polyroute::provider::inline::SocketSet::new().ok()?;
        Some(Sockets { set, calls: Mutex::new(Default::default()), next_token: Default::default() })
    }
    #[cfg(not(target_os = "linux"))]
    fn new() -> Option<Sockets> {
        None
    }
}

impl Shared {
    fn complete(&self, d: Done) {
        self.push(Item::Done(d));
    }

    pub(crate) fn repoll(&self, d: Arc<Driven>) {
        self.push(Item::Repoll(d));
    }

    fn push(&self, item: Item) {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).push(item);
        if !self.signalled.swap(true, Ordering::SeqCst) {
            // Nonblocking: a full buffer means a wake-up is pending anyway.
            if let Some(tx) = &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
                let _ = (&*tx).write(&[1]);
            }
        }
    }
}

/// One event loop's completion queue. Created by the Python facade per running loop.
#[pyclass(frozen, module = "polyroute._native")]
pub struct LoopBridge {
    shared: Arc<Shared>,
    /// The loop watches sockets for us (`add_reader`): calls may be driven by it.
    driven: bool,
}

#[cfg(unix)]
type WakeSocket = std::os::unix::net::UnixStream;
#[cfg(windows)]
type WakeSocket = std::net::TcpStream;

/// Takes ownership of a socket Python detached (`sock.detach()`): closing it is ours now.
fn adopt(handle: i64) -> PyResult<WakeSocket> {
    #[cfg(unix)]
    let s = {
        use std::os::fd::FromRawFd;
        let fd = i32::try_from(handle).map_err(|_| PyOSError::new_err("polyroute: not a file descriptor"))?;
        if fd < 0 {
            return Err(PyOSError::new_err("polyroute: not a file descriptor"));
        }
        // SAFETY: Python detached the socket, so this is the descriptor's only owner.
        unsafe { WakeSocket::from_raw_fd(fd) }
    };
    #[cfg(windows)]
    let s = {
        use std::os::windows::io::FromRawSocket;
        let sock = u64::try_from(handle).map_err(|_| PyOSError::new_err("polyroute: not a socket"))?;
        // SAFETY: Python detached the socket, so this is the handle's only owner.
        unsafe { WakeSocket::from_raw_socket(sock) }
    };
    s.set_nonblocking(true).map_err(|e| PyOSError::new_err(format!("polyroute: wake-up socket: {e}")))?;
    Ok(s)
}

#[pymethods]
impl LoopBridge {
    /// `wake`: the write end of a `socket.socketpair()`, detached; a byte is written to it
    /// when futures are ready to resolve. `driven`: the loop has `add_reader`, so calls may
    /// run on it (`driven.rs`).
    #[new]
    #[pyo3(signature = (wake, driven=false))]
    fn new(wake: i64, driven: bool) -> PyResult<Self> {
        let tx = adopt(wake)?;
        let driven = driven && driven::possible();
        let shared = Arc::new(Shared {
            done: Mutex::new(Vec::new()),
            tx: Mutex::new(Some(tx)),
            signalled: AtomicBool::new(false),
            driving: AtomicUsize::new(0),
            sockets: if driven { Sockets::new() } else { None },
        });
        Ok(LoopBridge { shared, driven })
    }

    /// The descriptor the loop watches for every driven call's sockets (`add_reader` with
    /// [`LoopBridge::poll_sockets`]), or `None`: then each socket is watched on its own.
    #[getter]
    fn sockets_fd(&self) -> Option<i32> {
        #[cfg(target_os = "linux")]
        return self.shared.sockets.as_ref().map(|s| s.set.fd());
        #[cfg(not(target_os = "linux"))]
        None
    }

    /// Poll the driven calls whose sockets the set reports ready (a loop callback); the tasks
    /// they resolved resume at its end (`waiter::eager`).
    fn poll_sockets(&self, py: Python<'_>) -> PyResult<()> {
        #[cfg(target_os = "linux")]
        if let Some(sockets) = &self.shared.sockets {
            let polled = waiter::eager(py, || {
                polyroute::bridge::catch(|| {
                    for token in sockets.set.ready() {
                        let call = sockets.calls.lock().unwrap_or_else(|p| p.into_inner()).get(&token).and_then(std::sync::Weak::upgrade);
                        // None: a late report for a call that has ended.
                        if let Some(call) = call {
                            call.poll(py);
                        }
                    }
                })
            })?;
            if let Err(e) = polled {
                to_pyerr(py, &e).write_unraisable(py, None);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = py;
        Ok(())
    }

    /// Close the write end now rather than when this object is collected (the loop is going
    /// away; a cycle through it could keep the descriptor open until the next GC pass).
    fn close(&self) {
        self.shared.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Resolve every finished future (runs on the loop's thread, after the caller has read
    /// the wake-up bytes). `eager`: called as a loop callback (not from a task), so the tasks
    /// it resolves may resume at its end (`waiter::eager`).
    #[pyo3(signature = (eager=false))]
    fn drain(&self, py: Python<'_>, eager: bool) -> PyResult<()> {
        let drained = if eager { waiter::eager(py, || self.drain_now(py))? } else { self.drain_now(py) };
        if let Err(e) = drained {
            to_pyerr(py, &e).write_unraisable(py, None);
        }
        Ok(())
    }
}

impl LoopBridge {
    fn drain_now(&self, py: Python<'_>) -> polyroute::Result<()> {
        polyroute::bridge::catch(|| {
            // Clear the flag before taking the queue: a completion racing with us either lands in
            // this batch or signals again.
            self.shared.signalled.store(false, Ordering::SeqCst);
            let batch = std::mem::take(&mut *self.shared.done.lock().unwrap_or_else(|p| p.into_inner()));
            for item in batch {
                match item {
                    Item::Done(d) => {
                        let fut = d.future.bind(py);
                        // Cancelled meanwhile: nothing to convert.
                        if fut.get().is_pending() {
                            Waiter::resolve(fut, (d.outcome)(py));
                        }
                    }
                    Item::Repoll(call) => call.poll(py),
                }
            }
        })
    }
}

impl LoopBridge {
    /// `work`, then its output (or its panic, as `ConfigError`: never a future left pending)
    /// handed to the loop for `future`.
    fn delivering<F, T>(&self, future: &Bound<'_, Waiter>, work: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = T> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        let shared = self.shared.clone();
        let target = future.clone().unbind();
        async move {
            let outcome = outcome_of(work).await;
            shared.complete(Done { future: target, outcome });
        }
    }

    /// Run `work` driven by the loop (`driven.rs`), if this bridge's loop can; `Err(work)`
    /// otherwise.
    fn try_drive<F, T>(&self, py: Python<'_>, future: &Bound<'_, Waiter>, work: F) -> PyResult<Result<(), F>>
    where
        F: Future<Output = T> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        // A few at a time: the loop's one thread does all the routing work of the calls it
        // drives, where the runtime spreads it over the cores. Driving every call of 64 at
        // once cut throughput by half (`bench/python`: 2.1× aiohttp instead of 3.9×), so past
        // one per core the calls go on as before (call workers, then the runtime).
        if !self.driven || self.shared.driving.load(Ordering::Relaxed) >= driven::max_at_once() {
            return Ok(Err(work));
        }
        struct InFlight(Arc<Shared>);
        impl Drop for InFlight {
            fn drop(&mut self) {
                self.0.driving.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.shared.driving.fetch_add(1, Ordering::Relaxed);
        let counted = InFlight(self.shared.clone());
        // Counted until the call's future is dropped: when it ended, or was cancelled.
        let work = async move {
            let _counted = counted;
            outcome_of(work).await
        };
        // The stop first: the first poll may already resolve the future.
        let call = Driven::new(self.shared.clone(), future, Box::pin(work));
        future.get().set_stop(Stop::Driven(call.clone()));
        call.poll(py);
        Ok(Ok(()))
    }

    /// Run `work` on the runtime and resolve `future` (an `asyncio.Future` of the bridge's
    /// loop) with its output.
    pub fn spawn<F, T>(&self, py: Python<'_>, future: &Bound<'_, Waiter>, work: F) -> PyResult<()>
    where
        F: Future<Output = T> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        // Boxed once, here: a call's future is kilobytes, and each wrapper below would move it.
        let work = Box::pin(work);
        let Err(work) = self.try_drive(py, future, work)? else { return Ok(()) };
        let task = runtime(py)?.spawn(self.delivering(future, work));
        future.get().set_stop(Stop::Abort(task.abort_handle()));
        Ok(())
    }

    /// [`LoopBridge::spawn`] for a whole call (`chat`): on an idle call worker when there is
    /// one, where its requests run inline (`workers.rs`), else on the runtime.
    pub fn spawn_call<F, T>(&self, py: Python<'_>, future: &Bound<'_, Waiter>, work: F) -> PyResult<()>
    where
        F: Future<Output = T> + Send + 'static,
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        // As in `spawn`: moved by pointer from here on.
        let work = Box::pin(work);
        let Err(work) = self.try_drive(py, future, work)? else { return Ok(()) };
        let rt = runtime(py)?;
        future.get().set_stop(match workers::try_run(rt, self.delivering(future, work)) {
            Ok(stop) => Stop::Worker(stop),
            Err(work) => Stop::Abort(rt.spawn(work).abort_handle()),
        });
        Ok(())
    }
}

/// `work`'s output (or its panic, as `ConfigError`), to be turned into a Python object on
/// the loop's thread.
async fn outcome_of<F, T>(work: F) -> Outcome
where
    F: Future<Output = T> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let out = polyroute::bridge::catch_future(work).await;
    Box::new(move |py| match out {
        Ok(v) => v.into_bound_py_any(py),
        Err(e) => Err(to_pyerr(py, &e)),
    })
}
