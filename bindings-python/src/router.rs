//! `NativeRouter`: the core `Router` behind the Python `Router` / `AsyncRouter` facades.
//!
//! Every method converts its arguments (dict → `ChatRequest` via the core's
//! `bridge::request_from_value`, so parsing, validation and the `route` shortcut are the
//! core's), calls the core, and converts back. Sync methods block without the GIL; `*_async` methods return asyncio awaitables.
//!
//! Fork: the core router owns an HTTP connection pool whose connections belong to the parent
//! (shared sockets, driver tasks on the parent's runtime threads, which the child does not
//! have). A router used in a forked child therefore replaces its core router with a fresh one
//! built from the same policy (breaker and latency history start over: the child is a new
//! process) and abandons the old one without dropping it. Event subscriptions are remembered
//! here for that reason: the child's router gets them again (the parent's delivery threads
//! did not survive the fork).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use polyroute::telemetry::RouterEvent;
use polyroute::{bridge, ChatRequest, Policy, Router};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::aio::LoopBridge;
use crate::answer::{Answer, NativeAnswer};
use crate::convert::from_py;
use crate::errors::{guarded, to_pyerr, IntoPyResult, Out};
use crate::openai::{header_map, Reply};
use crate::runtime::{block_on, drive, forked_since, runtime};
use crate::stream::NativeStream;
use crate::waiter::Waiter;

struct Slot {
    pid: u32,
    router: Router,
    subs: Vec<Subscription>,
    next_sub: u64,
}

/// A Python event callback: our id (stable across a fork) and the core's id for it.
struct Subscription {
    id: u64,
    core_id: u64,
    callback: Arc<Py<PyAny>>,
}

/// Set at interpreter exit (an `atexit` hook): no callback starts after it.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
/// Callbacks running right now, which the exit hook waits for.
static IN_CALLBACK: AtomicUsize = AtomicUsize::new(0);

/// Deliver core events to a Python callable, as dicts, on the core's delivery thread.
///
/// The delivery thread is not a Python thread, so it must never be attached when the
/// interpreter starts finalizing (CPython would end it mid-call and the process would
/// abort). [`stop_callbacks`] runs at exit, before finalization: it closes the gate and waits
/// for the callbacks already inside. The SeqCst increment-then-check here and
/// store-then-read there guarantee one of the two sees the other.
fn subscribe_core(router: &Router, callback: Arc<Py<PyAny>>) -> u64 {
    router.subscribe(move |ev: &RouterEvent| {
        IN_CALLBACK.fetch_add(1, Ordering::SeqCst);
        if !SHUTTING_DOWN.load(Ordering::SeqCst) {
            // A panic here would end the core's delivery thread: reported like a raising callback.
            let delivered = bridge::catch(|| {
                let _ = Python::try_attach(|py| {
                    let cb = callback.bind(py);
                    // Straight to a dict (no JSON value tree first), keys in field order.
                    if let Err(e) = crate::pyser::to_py(py, ev).and_then(|d| cb.call1((d,))) {
                        // Like an exception in a thread: reported, never propagated into routing.
                        e.write_unraisable(py, Some(cb));
                    }
                });
            });
            if let Err(e) = delivered {
                let _ = Python::try_attach(|py| to_pyerr(py, &e).write_unraisable(py, Some(callback.bind(py))));
            }
        }
        IN_CALLBACK.fetch_sub(1, Ordering::SeqCst);
    })
}

/// `atexit` hook: stop delivering events and wait (GIL released, at most 2 s) for callbacks
/// in progress.
#[pyfunction]
pub fn stop_callbacks(py: Python<'_>) {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while IN_CALLBACK.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

/// Test hook (`_native._debug_panic`): panics inside the core on purpose, under the same guard
/// as every entry point, so the suite can prove a panic arrives as `ConfigError`.
#[pyfunction]
pub fn _debug_panic(py: Python<'_>) -> PyResult<()> {
    guarded(py, || bridge::debug_panic("python sync call"))
}

/// Test hook (`_native._debug_panic_async`): resolves `future` through the asyncio bridge with
/// a future that panics while the runtime polls it.
#[pyfunction]
pub fn _debug_panic_async(py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, Waiter>) -> PyResult<()> {
    guarded(py, || bridge.spawn(py, future, async { Out(polyroute::bridge::debug_panic_async("python async call".into()).await) }))
}

#[pyclass(frozen, module = "polyroute._native")]
pub struct NativeRouter {
    // Locked only with the GIL held (see runtime.rs for why that makes it fork-safe).
    slot: Mutex<Slot>,
}

fn request(py: Python<'_>, body: &Bound<'_, PyAny>) -> PyResult<ChatRequest> {
    bridge::request_from_value(from_py(body, "")?).py_err(py)
}

fn json_out<'py>(py: Python<'py>, v: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    crate::pyser::to_py(py, v)
}

fn policy_from_dict(py: Python<'_>, policy: &Bound<'_, PyAny>) -> PyResult<Policy> {
    Policy::from_value(from_py(policy, "policy")?).py_err(py)
}

impl NativeRouter {
    fn build(py: Python<'_>, policy: Policy) -> PyResult<NativeRouter> {
        // reqwest may register with the current runtime while building its client.
        let _rt = runtime(py)?.enter();
        let router = Router::new(policy).py_err(py)?;
        Ok(NativeRouter { slot: Mutex::new(Slot { pid: crate::runtime::pid(), router, subs: Vec::new(), next_sub: 1 }) })
    }

    /// The core router for this process (rebuilt once in a forked child).
    fn router(&self, py: Python<'_>) -> PyResult<Router> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if forked_since(slot.pid) {
            let _rt = runtime(py)?.enter();
            let fresh = Router::new(Policy { spec: slot.router.policy() }).py_err(py)?;
            std::mem::forget(std::mem::replace(&mut slot.router, fresh));
            slot.pid = crate::runtime::pid();
            let Slot { router, subs, .. } = &mut *slot;
            for sub in subs.iter_mut() {
                sub.core_id = subscribe_core(router, sub.callback.clone());
            }
        }
        Ok(slot.router.clone())
    }
}

#[pymethods]
impl NativeRouter {
    /// Build from policy text (YAML or JSON).
    #[staticmethod]
    fn from_text(py: Python<'_>, text: &str) -> PyResult<NativeRouter> {
        guarded(py, || NativeRouter::build(py, Policy::from_str(text).py_err(py)?))
    }

    /// Build from a policy file (YAML or JSON).
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<NativeRouter> {
        guarded(py, || NativeRouter::build(py, Policy::from_file(path).py_err(py)?))
    }

    /// Build from a policy given as a dict.
    #[staticmethod]
    fn from_dict(py: Python<'_>, policy: &Bound<'_, PyAny>) -> PyResult<NativeRouter> {
        guarded(py, || NativeRouter::build(py, policy_from_dict(py, policy)?))
    }

    /// Send a request (an OpenAI chat-completions body) and wait for the whole answer, a
    /// `NativeAnswer` (`answer.rs`).
    fn chat<'py>(&self, py: Python<'py>, body: &Bound<'py, PyAny>) -> PyResult<Bound<'py, NativeAnswer>> {
        guarded(py, || {
            let req = request(py, body)?;
            let router = self.router(py)?;
            let resp = block_on(py, router.chat(req))?.py_err(py)?;
            Answer(resp).into_pyobject(py)
        })
    }

    /// Resolve `future` (an asyncio future of `bridge`'s loop) with `chat`'s answer.
    fn chat_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, Waiter>, body: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(py, || {
            let req = request(py, body)?;
            let router = self.router(py)?;
            bridge.spawn_call(py, future, async move { Out(router.chat(req).await.map(Answer)) })
        })
    }

    /// Open a stream: returns once the answer has committed (first content) or failed.
    fn stream(&self, py: Python<'_>, body: &Bound<'_, PyAny>) -> PyResult<NativeStream> {
        guarded(py, || {
            let req = request(py, body)?;
            let router = self.router(py)?;
            let s = drive(py, router.stream(req))?.py_err(py)?;
            Ok(NativeStream::new(s))
        })
    }

    /// Resolve `future` with a `NativeStream` once the answer has committed (or failed).
    fn stream_async(&self, py: Python<'_>, bridge: &LoopBridge, future: &Bound<'_, Waiter>, body: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(py, || {
            let req = request(py, body)?;
            let router = self.router(py)?;
            bridge.spawn(py, future, async move { Out(router.stream(req).await.map(NativeStream::new)) })
        })
    }

    /// Answer one OpenAI chat-completions request (body bytes and headers) in-process:
    /// `(status, headers, bytes | NativeSse)`, exactly what the gateway would send.
    fn openai_chat<'py>(&self, py: Python<'py>, body: &[u8], headers: Vec<(String, String)>) -> PyResult<Bound<'py, PyTuple>> {
        guarded(py, || {
            let router = self.router(py)?;
            let streamed = polyroute::bridge::openai_http::asks_to_stream(body);
            let (body, headers) = (body.to_vec(), header_map(headers));
            let reply = async move { bridge::openai_http::handle(&router, &body, &headers).await };
            // A stream is opened the way its chunks will be read (`runtime::drive`); a whole
            // answer is fastest on the blocking client. Either way serves either request.
            Reply(if streamed { drive(py, reply)? } else { block_on(py, reply)? }).into_pyobject(py)
        })
    }

    /// Resolve `future` with [`Self::openai_chat`]'s tuple.
    fn openai_chat_async(
        &self,
        py: Python<'_>,
        bridge: &LoopBridge,
        future: &Bound<'_, Waiter>,
        body: &[u8],
        headers: Vec<(String, String)>,
    ) -> PyResult<()> {
        guarded(py, || {
            let router = self.router(py)?;
            let (body, headers) = (body.to_vec(), header_map(headers));
            // A whole call (a stream's only up to its commit; its frames are read later on
            // the runtime), so it may run on a call worker like `chat_async`.
            bridge.spawn_call(py, future, async move { Out::<Reply>(Ok(Reply(bridge::openai_http::handle(&router, &body, &headers).await))) })
        })
    }

    /// Where a request would go, and why, without sending it.
    fn plan<'py>(&self, py: Python<'py>, body: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || {
            let req = request(py, body)?;
            let plan = self.router(py)?.plan(&req).py_err(py)?;
            json_out(py, &plan)
        })
    }

    fn reload_text(&self, py: Python<'_>, text: &str) -> PyResult<()> {
        guarded(py, || self.router(py)?.reload_str(text).py_err(py))
    }

    fn reload_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        guarded(py, || {
            let policy = Policy::from_file(path).py_err(py)?;
            let router = self.router(py)?;
            let _rt = runtime(py)?.enter();
            router.reload(policy).py_err(py)
        })
    }

    fn reload_dict(&self, py: Python<'_>, policy: &Bound<'_, PyAny>) -> PyResult<()> {
        guarded(py, || {
            let policy = policy_from_dict(py, policy)?;
            let router = self.router(py)?;
            let _rt = runtime(py)?.enter();
            router.reload(policy).py_err(py)
        })
    }

    /// The policy currently serving, as a dict (literal API keys are never included).
    fn policy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || json_out(py, &self.router(py)?.policy()))
    }

    /// Breaker and health of every deployment, as a list of dicts.
    fn deployments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || json_out(py, &self.router(py)?.deployments()))
    }

    /// Force a deployment's breaker into `state` (`closed`, `open`, `half_open`,
    /// `forced_open`, `disabled`; anything else is a `ConfigError`).
    fn set_breaker(&self, py: Python<'_>, deployment: &str, state: &str) -> PyResult<()> {
        guarded(py, || {
            let state = bridge::parse_breaker_state(state).py_err(py)?;
            self.router(py)?.set_breaker(deployment, state).py_err(py)
        })
    }

    fn reset_breaker(&self, py: Python<'_>, deployment: &str) -> PyResult<()> {
        guarded(py, || self.router(py)?.reset_breaker(deployment).py_err(py))
    }

    /// Prometheus text exposition of this router's metrics.
    fn metrics_text(&self, py: Python<'_>) -> PyResult<String> {
        guarded(py, || Ok(self.router(py)?.metrics_text()))
    }

    /// Spent, reserved and remaining per budget in its current period, as dicts.
    fn budgets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || json_out(py, &self.router(py)?.budgets()))
    }

    /// Per route: requests, successes, total cost and cost per success, as dicts.
    fn route_costs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || json_out(py, &self.router(py)?.route_costs()))
    }

    /// Call `callback(event_dict)` for every router event, on a delivery thread of its own.
    fn subscribe(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<u64> {
        guarded(py, || {
            if !callback.is_callable() {
                return Err(pyo3::exceptions::PyTypeError::new_err("subscribe() needs a callable"));
            }
            let router = self.router(py)?;
            let callback = Arc::new(callback.unbind());
            let core_id = subscribe_core(&router, callback.clone());
            let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            let id = slot.next_sub;
            slot.next_sub += 1;
            slot.subs.push(Subscription { id, core_id, callback });
            Ok(id)
        })
    }

    /// Stop calling a subscribed callback (events already queued are still delivered).
    fn unsubscribe(&self, py: Python<'_>, subscription: u64) -> PyResult<bool> {
        guarded(py, || {
            let router = self.router(py)?;
            let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            let Some(pos) = slot.subs.iter().position(|s| s.id == subscription) else { return Ok(false) };
            let sub = slot.subs.remove(pos);
            Ok(router.unsubscribe(sub.core_id))
        })
    }
}
