//! What an async call's coroutine awaits: an asyncio-compatible future the bridge (`aio.rs`,
//! `driven.rs`) resolves, which wakes its task in the loop callback that resolved it.
//!
//! Why not `loop.create_future()`: an `asyncio.Future` runs its done-callbacks (the awaiting
//! task's wake-up) through `loop.call_soon`, so every answer costs the loop a second turn
//! after the one that read it: a `Handle`, a second `select`, a second `_run_once` (in Python
//! on the default loop), ~4–9 µs on the 2-core VM (issue 18). `asyncio.Task` accepts any
//! future-like object (`_asyncio_future_blocking`, `get_loop`, `add_done_callback`,
//! `result`, `cancel`: the protocol `asyncio.isfuture` describes) and only needs its wake-up
//! called once the object is done; this one calls it at the end of the loop callback that
//! resolved it (a socket or the wake-up pipe reported ready, see [`eager`]), where no task is
//! running, in the task's context. Everywhere else (cancellation, a task already running,
//! callbacks added after the end) it schedules them with `call_soon`, as `asyncio.Future`
//! does. It also carries what stops its call, so cancelling needs no done-callback.
//!
//! Only `AsyncRouter`'s own coroutines await it: a user awaits those (or wraps them in
//! tasks), never this object, so `gather`, `wait_for`, `shield` and friends see coroutines.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{PyTraverseError, PyVisit};
use tokio::task::AbortHandle;

use crate::driven::Driven;
use crate::workers;

pyo3::import_exception!(asyncio, CancelledError);
pyo3::import_exception!(asyncio, InvalidStateError);

enum State {
    Pending,
    Done(Py<PyAny>),
    /// The exception instance.
    Failed(Py<PyAny>),
    /// The message given to `cancel`, if any.
    Cancelled(Option<Py<PyAny>>),
}

/// What stops a waiter's call when it is cancelled.
pub(crate) enum Stop {
    /// A task on the runtime.
    Abort(AbortHandle),
    /// A job on a call worker.
    Worker(Arc<workers::Stop>),
    /// A call the loop drives; holds it alive while it waits for a socket.
    Driven(Arc<Driven>),
}

struct Inner {
    state: State,
    /// `(callback, context)`: the awaiting task's wake-up, usually the only one.
    callbacks: Vec<(Py<PyAny>, Py<PyAny>)>,
    stop: Option<Stop>,
}

#[pyclass(frozen, module = "polyroute._native")]
pub struct Waiter {
    inner: Mutex<Inner>,
    event_loop: Py<PyAny>,
    blocking: AtomicBool,
}

impl Waiter {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_pending(&self) -> bool {
        matches!(self.lock().state, State::Pending)
    }

    pub(crate) fn event_loop<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.event_loop.bind(py)
    }

    /// Remember what stops this waiter's call; dropped at once if it is done already (the
    /// call then holds no cycle through it).
    pub(crate) fn set_stop(&self, stop: Stop) {
        let mut g = self.lock();
        if matches!(g.state, State::Pending) {
            g.stop = Some(stop);
        }
    }

    /// Resolve with `outcome`, unless it is done already (cancelled meanwhile), and wake
    /// whoever awaits it (see the module docs for when).
    pub(crate) fn resolve(slf: &Bound<'_, Self>, outcome: PyResult<Bound<'_, PyAny>>) {
        let py = slf.py();
        let (callbacks, stop) = {
            let mut g = slf.get().lock();
            if !matches!(g.state, State::Pending) {
                return;
            }
            g.state = match outcome {
                Ok(v) => State::Done(v.unbind()),
                Err(e) => State::Failed(e.into_value(py).into_any()),
            };
            (std::mem::take(&mut g.callbacks), g.stop.take())
        };
        // Outside the lock: dropping a driven call may drop the last reference to this.
        drop(stop);
        if callbacks.is_empty() {
            return;
        }
        let deferred = EAGER.with(|e| match e.borrow_mut().as_mut() {
            Some(woken) => {
                woken.push((slf.clone().unbind(), callbacks));
                None
            }
            None => Some(callbacks),
        });
        if let Some(callbacks) = deferred {
            schedule(slf, callbacks);
        }
    }

    fn exception_of(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match &self.lock().state {
            State::Pending => Err(InvalidStateError::new_err("polyroute: result is not set yet")),
            State::Cancelled(msg) => Err(cancelled_error(py, msg.as_ref())),
            State::Failed(e) => Ok(Some(e.clone_ref(py))),
            State::Done(_) => Ok(None),
        }
    }
}

fn cancelled_error(py: Python<'_>, msg: Option<&Py<PyAny>>) -> PyErr {
    match msg {
        Some(m) => CancelledError::new_err(m.clone_ref(py)),
        None => CancelledError::new_err(()),
    }
}

/// `loop.call_soon(callback, waiter, context=context)` for each, as `asyncio.Future` runs its
/// callbacks. A loop that refuses (closed) leaves nobody to wake.
fn schedule(slf: &Bound<'_, Waiter>, callbacks: Vec<(Py<PyAny>, Py<PyAny>)>) {
    let py = slf.py();
    let event_loop = slf.get().event_loop(py);
    for (callback, context) in callbacks {
        let kwargs = [(pyo3::intern!(py, "context"), context)];
        let r = pyo3::types::IntoPyDict::into_py_dict(kwargs, py)
            .and_then(|kw| event_loop.call_method(pyo3::intern!(py, "call_soon"), (callback, slf), Some(&kw)));
        if let Err(e) = r {
            e.write_unraisable(py, Some(slf.as_any()));
        }
    }
}

type Woken = Vec<(Py<Waiter>, Vec<(Py<PyAny>, Py<PyAny>)>)>;

thread_local! {
    /// Inside [`eager`]: the waiters resolved so far and their callbacks, to run at its end.
    static EAGER: RefCell<Option<Woken>> = const { RefCell::new(None) };
}

/// Run `body`, a loop callback (a watched socket or the bridge's wake-up pipe reported
/// ready), then wake the tasks awaiting the waiters it resolved, here rather than through
/// `call_soon`: the same as the loop's next turn would do, one turn sooner. Only where no
/// task is running (a nested loop, e.g. `nest_asyncio`, may run callbacks inside one; then
/// they are scheduled). An error from a callback (a task re-raising `KeyboardInterrupt` or
/// `SystemExit`) is returned, for the loop to handle as its own callback's, once the rest
/// are scheduled.
pub(crate) fn eager<R>(py: Python<'_>, body: impl FnOnce() -> R) -> PyResult<R> {
    /// Puts the enclosing scope back even if `body` unwinds: left set, every later resolve on
    /// this thread would queue its wake-up in a list nobody runs.
    struct Restore(Option<Option<Woken>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                EAGER.with(|e| e.replace(outer));
            }
        }
    }
    let mut restore = Restore(Some(EAGER.with(|e| e.replace(Some(Vec::new())))));
    let r = body();
    let woken = EAGER.with(|e| e.replace(restore.0.take().unwrap_or_default())).unwrap_or_default();
    if woken.is_empty() {
        return Ok(r);
    }
    let event_loop = woken[0].0.get().event_loop.clone_ref(py);
    let mut woken = woken.into_iter();
    // Unable to tell (it cannot fail in practice): the safe way, which strands no task.
    if task_running(event_loop.bind(py)).unwrap_or(true) {
        woken.for_each(|(w, callbacks)| schedule(w.bind(py), callbacks));
        return Ok(r);
    }
    while let Some((w, callbacks)) = woken.next() {
        let w = w.bind(py);
        let mut callbacks = callbacks.into_iter();
        while let Some((callback, context)) = callbacks.next() {
            if let Err(e) = context.bind(py).call_method1(pyo3::intern!(py, "run"), (callback, w)) {
                schedule(w, callbacks.collect());
                woken.for_each(|(w, callbacks)| schedule(w.bind(py), callbacks));
                return Err(e);
            }
        }
    }
    Ok(r)
}

/// Whether a task of `event_loop` is running now. Once per batch of wake-ups, so cheap: the C
/// `_asyncio.current_task` (3.12+), else the C dict 3.9–3.11's `asyncio.current_task` reads
/// (a Python frame and a `get_running_loop` less), else that function.
fn task_running(event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    static CURRENT_TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = event_loop.py();
    let f = CURRENT_TASK.get_or_try_init(py, || {
        if let Ok(f) = py.import("_asyncio").and_then(|m| m.getattr("current_task")) {
            return Ok::<_, PyErr>(f.unbind());
        }
        let tasks = py.import("asyncio.tasks")?;
        match tasks.getattr("_current_tasks") {
            Ok(d) if d.is_instance_of::<pyo3::types::PyDict>() => Ok(d.getattr("get")?.unbind()),
            _ => Ok(tasks.getattr("current_task")?.unbind()),
        }
    })?;
    Ok(!f.bind(py).call1((event_loop,))?.is_none())
}

fn copy_context(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static COPY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    COPY.get_or_try_init(py, || py.import("contextvars").and_then(|m| m.getattr("copy_context")).map(Bound::unbind))?.bind(py).call0()
}

#[pymethods]
impl Waiter {
    #[new]
    fn new(event_loop: Py<PyAny>) -> Self {
        Waiter { inner: Mutex::new(Inner { state: State::Pending, callbacks: Vec::new(), stop: None }), event_loop, blocking: AtomicBool::new(false) }
    }

    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// As `asyncio.Future`'s iterator: yields itself while pending (the task then waits on
    /// it), then ends with the result, or raises the call's error.
    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let g = this.lock();
        match &g.state {
            State::Pending => {
                drop(g);
                this.blocking.store(true, Ordering::Relaxed);
                Ok(slf.clone().into_any().unbind())
            }
            State::Done(v) => Err(PyStopIteration::new_err((v.clone_ref(py),))),
            State::Failed(e) => Err(PyErr::from_value(e.bind(py).clone())),
            State::Cancelled(msg) => Err(cancelled_error(py, msg.as_ref())),
        }
    }

    /// Set by the waiting task's protocol: it yields this object to mean "wait for me".
    #[getter(_asyncio_future_blocking)]
    fn blocking(&self) -> bool {
        self.blocking.load(Ordering::Relaxed)
    }

    #[setter(_asyncio_future_blocking)]
    fn set_blocking(&self, value: bool) {
        self.blocking.store(value, Ordering::Relaxed);
    }

    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    /// As `asyncio.Future.add_done_callback`: `callback(self)` once done, in `context` (the
    /// current one copied, if none).
    #[pyo3(signature = (callback, *, context=None))]
    fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>, context: Option<Py<PyAny>>) -> PyResult<()> {
        let context = match context {
            Some(c) if !c.is_none(slf.py()) => c,
            _ => copy_context(slf.py())?.unbind(),
        };
        {
            let mut g = slf.get().lock();
            if matches!(g.state, State::Pending) {
                g.callbacks.push((callback, context));
                return Ok(());
            }
        }
        schedule(slf, vec![(callback, context)]);
        Ok(())
    }

    fn remove_done_callback(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<usize> {
        let callbacks = std::mem::take(&mut self.lock().callbacks);
        let mut kept = Vec::with_capacity(callbacks.len());
        let mut removed = 0;
        for (c, ctx) in callbacks {
            if c.bind(py).eq(&callback)? {
                removed += 1;
            } else {
                kept.push((c, ctx));
            }
        }
        self.lock().callbacks.extend(kept);
        Ok(removed)
    }

    /// Cancel: stops the call (its request is dropped) and wakes the awaiting task, which
    /// then raises `CancelledError`. `False` if it is done already.
    #[pyo3(signature = (msg=None))]
    fn cancel(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> bool {
        let (callbacks, stop) = {
            let mut g = slf.get().lock();
            if !matches!(g.state, State::Pending) {
                return false;
            }
            g.state = State::Cancelled(msg);
            (std::mem::take(&mut g.callbacks), g.stop.take())
        };
        match stop {
            Some(Stop::Abort(a)) => a.abort(),
            Some(Stop::Worker(s)) => s.stop(),
            Some(Stop::Driven(d)) => d.cancel(slf.py()),
            None => {}
        }
        schedule(slf, callbacks);
        true
    }

    fn cancelled(&self) -> bool {
        matches!(self.lock().state, State::Cancelled(_))
    }

    fn done(&self) -> bool {
        !self.is_pending()
    }

    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(e) = self.exception_of(py)? {
            return Err(PyErr::from_value(e.into_bound(py)));
        }
        match &self.lock().state {
            State::Done(v) => Ok(v.clone_ref(py)),
            _ => Err(InvalidStateError::new_err("polyroute: result is not set yet")),
        }
    }

    fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.exception_of(py)
    }

    fn __repr__(&self) -> &'static str {
        match self.lock().state {
            State::Pending => "<polyroute Waiter pending>",
            State::Done(_) => "<polyroute Waiter finished>",
            State::Failed(_) => "<polyroute Waiter finished with an exception>",
            State::Cancelled(_) => "<polyroute Waiter cancelled>",
        }
    }

    // A pending waiter and its task refer to each other (its wake-up callback, the task's
    // `_fut_waiter`): the collector must see those edges. Not the one through a driven call
    // (`Stop::Driven` holds it back): others may hold that call too (a loop's reader), and
    // what keeps the call alive must keep its task alive, as with an `asyncio.Future`.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.event_loop)?;
        let Ok(g) = self.inner.try_lock() else { return Ok(()) };
        match &g.state {
            State::Done(v) | State::Failed(v) => visit.call(v)?,
            State::Cancelled(Some(m)) => visit.call(m)?,
            _ => {}
        }
        for (c, ctx) in &g.callbacks {
            visit.call(c)?;
            visit.call(ctx)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let (callbacks, stop) = {
            let mut g = self.lock();
            (std::mem::take(&mut g.callbacks), g.stop.take())
        };
        drop(callbacks);
        drop(stop);
    }
}
