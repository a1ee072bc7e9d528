//! Calls and streams run by Node's own event loop (issue 18).
//!
//! Why: a call or a stream read spawned on napi's runtime paid two wake-ups per answer and
//! per spaced chunk: tokio's reactor woke a runtime worker to read it, which then handed the
//! result to the JS thread through a threadsafe function (`uv_async_send`), which woke the
//! loop. On the 2-core VM that was +94–111 CPU-µs per spaced chunk over undici's reader, and
//! a call after an idle gap 74–76 µs p50 behind undici's. Here the JS thread polls the
//! future itself, inside the core's `inline::driven`, and libuv's own `epoll` waits for the
//! socket: an answer or a chunk wakes the JS thread and nothing else, as a Node socket's
//! would.
//!
//! How libuv watches our sockets: through the core's `inline::SocketSet`, one epoll set
//! that one `uv_poll` handle watches (an epoll descriptor is readable while any socket in it
//! is ready); each reported socket is armed `EPOLLONESHOT` with its call's id, so the report
//! that wakes a call disarms it. Not a `uv_poll` per socket: `uv_poll_init` turns the
//! descriptor non-blocking (the pool's sockets are blocking, shared with sync callers) and
//! libuv forbids closing a descriptor its handle polls, which the core does when a
//! connection ends.
//!
//! What else a read waits for (a tokio timer, a cancel, another task) wakes it through an
//! eventfd in the same set: the waker queues the call's id and writes the eventfd once.
//!
//! Settling from a libuv callback, outside any JS frame, happens in a callback scope, whose
//! close runs the microtasks (the `await` that continues), as after Node's own callbacks.
//! The handle keeps the loop alive only while a call is pending.
//!
//! Linux only (epoll, eventfd), and only where Node's libuv symbols resolve (Node itself, not
//! every runtime with N-API); elsewhere, or with `POLYROUTE_ASYNC_DRIVEN=0`, the futures are
//! spawned on napi's runtime as before.

use std::future::Future;

use napi::bindgen_prelude::*;

/// A promise for `fut`, polled by this thread's event loop where it can be (see the module
/// docs), else spawned on napi's runtime. Either way a panic while polling rejects it with
/// the core's `config` error.
pub fn promise<'e, T, F>(env: &'e Env, fut: F) -> Result<PromiseRaw<'e, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    #[cfg(target_os = "linux")]
    if let Some(driver) = linux::current(env.raw()) {
        let call: linux::Call = Box::pin(async move {
            let v = crate::guard_future(fut).await?;
            // SAFETY: run by the driver on the JS thread, with its env, in a handle scope.
            Ok(Box::new(move |env| unsafe { T::to_napi_value(env, v) }) as linux::Settle)
        });
        return driver.start(call).map(|p| PromiseRaw::new(env.raw(), p));
    }
    env.spawn_future(crate::guard_future(fut))
}

/// Whether calls are driven by the loop here: on by default, off with
/// `POLYROUTE_ASYNC_DRIVEN=0` (the benchmarks compare the paths with it), and off where the
/// core's inline HTTP is (a proxy in the environment: those requests take reqwest).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| polyroute::provider::inline::enabled_by_env() && std::env::var("POLYROUTE_ASYNC_DRIVEN").map_or(true, |v| v.trim() != "0"))
}

/// Test hook: whether this thread's loop drives calls (its driver could be set up).
pub fn active(env: &Env) -> bool {
    #[cfg(target_os = "linux")]
    return linux::current(env.raw()).is_some();
    #[cfg(not(target_os = "linux"))]
    {
        let _ = env;
        false
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::ffi::{c_int, c_void, CStr};
    use std::future::Future;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::pin::Pin;
    use std::ptr::null_mut;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::task::{Context, Poll, Wake, Waker};

    use napi::bindgen_prelude::within_runtime_if_available;
    use napi::{sys, JsError, Result};
    use polyroute::provider::inline::{self, SocketSet, Wait};
    use polyroute::{Error as CoreError, ErrorKind};

    /// Turns a call's value into its JS value (on the JS thread).
    pub type Settle = Box<dyn FnOnce(sys::napi_env) -> Result<sys::napi_value> + Send>;
    pub type Call = Pin<Box<dyn Future<Output = Result<Settle>> + Send>>;

    /// `epoll_event.data` of the wake-up eventfd; calls' ids count up from 0.
    const WAKE: u64 = u64::MAX;
    /// libuv's ABI (stable across 1.x): `UV_POLL` in `uv_handle_type`, `UV_READABLE`.
    const UV_POLL: c_int = 8;
    const UV_READABLE: c_int = 1;

    type PollCb = unsafe extern "C" fn(*mut c_void, c_int, c_int);
    type CloseCb = unsafe extern "C" fn(*mut c_void);

    /// The libuv functions used, looked up in the process (Node exports them for addons).
    struct Uv {
        handle_size: unsafe extern "C" fn(c_int) -> usize,
        poll_init: unsafe extern "C" fn(*mut sys::uv_loop_s, *mut c_void, c_int) -> c_int,
        poll_start: unsafe extern "C" fn(*mut c_void, c_int, PollCb) -> c_int,
        poll_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
        close: unsafe extern "C" fn(*mut c_void, Option<CloseCb>),
        ref_: unsafe extern "C" fn(*mut c_void),
        unref: unsafe extern "C" fn(*mut c_void),
    }

    /// # Safety
    /// `T` must be the C function type of the symbol `name`.
    unsafe fn sym<T: Copy>(name: &CStr) -> Option<T> {
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if p.is_null() || std::mem::size_of::<T>() != std::mem::size_of::<*mut c_void>() {
            return None;
        }
        // SAFETY: a non-null function pointer of the caller's type, same size (checked).
        Some(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
    }

    fn uv() -> Option<&'static Uv> {
        static UV: OnceLock<Option<Uv>> = OnceLock::new();
        UV.get_or_init(|| {
            // SAFETY: each type is the function's signature in libuv 1.x's `uv.h`.
            unsafe {
                Some(Uv {
                    handle_size: sym(c"uv_handle_size")?,
                    poll_init: sym(c"uv_poll_init")?,
                    poll_start: sym(c"uv_poll_start")?,
                    poll_stop: sym(c"uv_poll_stop")?,
                    close: sym(c"uv_close")?,
                    ref_: sym(c"uv_ref")?,
                    unref: sym(c"uv_unref")?,
                })
            }
        })
        .as_ref()
    }

    enum Slot {
        Unset,
        /// Could not be set up on this thread (no libuv, a failed syscall): spawn instead.
        Unavailable,
        Ready(Rc<Driver>),
    }

    thread_local! {
        static DRIVER: RefCell<Slot> = const { RefCell::new(Slot::Unset) };
    }

    /// This thread's driver for `env`, set up on first use.
    pub fn current(env: sys::napi_env) -> Option<Rc<Driver>> {
        if !super::enabled() {
            return None;
        }
        DRIVER.with(|slot| {
            let mut slot = slot.borrow_mut();
            match &*slot {
                Slot::Ready(d) if d.env == env => return Some(d.clone()),
                Slot::Unavailable => return None,
                _ => {}
            }
            match Driver::new(env) {
                Some(d) => {
                    let d = Rc::new(d);
                    *slot = Slot::Ready(d.clone());
                    Some(d)
                }
                None => {
                    *slot = Slot::Unavailable;
                    None
                }
            }
        })
    }

    /// The wake-up side, shared with wakers on any thread.
    struct Shared {
        queue: Mutex<Vec<u64>>,
        /// The eventfd has been written and not read yet: wake-ups in a burst share it.
        signalled: AtomicBool,
        eventfd: OwnedFd,
    }

    impl Shared {
        /// The queued ids, after resetting the eventfd (the flag is cleared before the queue
        /// is taken: a wake-up racing with us lands in this batch or writes again).
        fn drain(&self, ids: &mut Vec<u64>) {
            let mut n = 0u64;
            // SAFETY: reads 8 bytes into a u64, as an eventfd read is.
            unsafe { libc::read(self.eventfd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
            self.signalled.store(false, Ordering::SeqCst);
            ids.append(&mut self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    struct Rewake {
        id: u64,
        shared: Arc<Shared>,
    }

    impl Wake for Rewake {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.shared.queue.lock().unwrap_or_else(|p| p.into_inner()).push(self.id);
            if !self.shared.signalled.swap(true, Ordering::SeqCst) {
                let one = 1u64;
                // SAFETY: writes 8 bytes from a u64, as an eventfd write is.
                unsafe { libc::write(self.shared.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
        }
    }

    struct Entry {
        /// Out of its slot while it is polled.
        call: Option<Call>,
        deferred: sys::napi_deferred,
        waker: Waker,
    }

    /// One JS thread's driver: its epoll set, watched by one `uv_poll` handle on its loop.
    pub struct Driver {
        env: sys::napi_env,
        uv: &'static Uv,
        handle: *mut c_void,
        sockets: SocketSet,
        shared: Arc<Shared>,
        context: sys::napi_async_context,
        calls: RefCell<HashMap<u64, Entry>>,
        next_id: Cell<u64>,
        /// The handle is ref'ed (keeps the loop alive): some call is pending.
        referenced: Cell<bool>,
    }

    impl Driver {
        fn new(env: sys::napi_env) -> Option<Driver> {
            let uv = uv()?;
            // SAFETY: plain syscalls and N-API/libuv calls on the JS thread that owns `env`,
            // inside a call from JS (a handle scope is open); each result is checked.
            unsafe {
                let mut uv_loop = null_mut();
                if sys::napi_get_uv_event_loop(env, &mut uv_loop) != sys::Status::napi_ok || uv_loop.is_null() {
                    return None;
                }
                let sockets = SocketSet::new().ok()?;
                let ef = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
                if ef < 0 {
                    return None;
                }
                let eventfd = OwnedFd::from_raw_fd(ef);
                sockets.watch(ef, WAKE).ok()?;
                let name = c"polyroute";
                let mut name_value = null_mut();
                let mut context = null_mut();
                if sys::napi_create_string_utf8(env, name.as_ptr(), name.count_bytes() as isize, &mut name_value) != sys::Status::napi_ok
                    || sys::napi_async_init(env, null_mut(), name_value, &mut context) != sys::Status::napi_ok
                {
                    return None;
                }
                let handle = libc::calloc(1, (uv.handle_size)(UV_POLL));
                if handle.is_null() {
                    sys::napi_async_destroy(env, context);
                    return None;
                }
                if (uv.poll_init)(uv_loop, handle, sockets.fd()) != 0 {
                    libc::free(handle);
                    sys::napi_async_destroy(env, context);
                    return None;
                }
                if (uv.poll_start)(handle, UV_READABLE, on_ready) != 0
                    || sys::napi_add_env_cleanup_hook(env, Some(cleanup), null_mut()) != sys::Status::napi_ok
                {
                    (uv.close)(handle, Some(free_handle));
                    sys::napi_async_destroy(env, context);
                    return None;
                }
                (uv.unref)(handle);
                let shared = Arc::new(Shared { queue: Mutex::new(Vec::new()), signalled: AtomicBool::new(false), eventfd });
                Some(Driver {
                    env,
                    uv,
                    handle,
                    sockets,
                    shared,
                    context,
                    calls: RefCell::new(HashMap::new()),
                    next_id: Cell::new(0),
                    referenced: Cell::new(false),
                })
            }
        }

        /// Poll `call` now (a burst already in the socket resolves the promise at once);
        /// if it waits, watch what it waits for. Returns the promise.
        pub fn start(&self, mut call: Call) -> Result<sys::napi_value> {
            let env = self.env;
            let mut deferred = null_mut();
            let mut promise = null_mut();
            // SAFETY: on the JS thread, inside a call from JS.
            let status = unsafe { sys::napi_create_promise(env, &mut deferred, &mut promise) };
            if status != sys::Status::napi_ok {
                return Err(napi::Error::new(napi::Status::from(status), "polyroute: could not create a promise"));
            }
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            let waker = Waker::from(Arc::new(Rewake { id, shared: self.shared.clone() }));
            let (polled, waits) = poll(&mut call, &waker);
            match polled {
                Poll::Ready(outcome) => {
                    drop(call);
                    settle(env, deferred, outcome);
                }
                Poll::Pending => match self.arm(id, &waits) {
                    Ok(()) => {
                        self.calls.borrow_mut().insert(id, Entry { call: Some(call), deferred, waker });
                        self.keep_alive();
                    }
                    Err(e) => {
                        drop(call);
                        settle(env, deferred, Err(e));
                    }
                },
            }
            Ok(promise)
        }

        /// Watch `waits` for call `id`, each armed for one report.
        fn arm(&self, id: u64, waits: &[Wait]) -> Result<()> {
            self.sockets.arm(id, waits).map_err(|e| {
                let core = CoreError::new(ErrorKind::Connection, format!("the event loop could not watch the connection: {e}"));
                crate::js_error(&core)
            })
        }

        /// The loop reported the epoll set ready: poll the calls whose sockets or wakers fired,
        /// settling the finished ones in a callback scope (whose close runs the microtasks).
        fn run(&self) {
            let ids = self.ready();
            if !ids.is_empty() {
                let env = self.env;
                let mut handles = null_mut();
                let mut resource = null_mut();
                let mut scope = null_mut();
                // SAFETY: on the JS thread, in a libuv callback (no JS frame): the scopes are
                // opened and closed here, in order.
                unsafe {
                    sys::napi_open_handle_scope(env, &mut handles);
                    sys::napi_create_object(env, &mut resource);
                    let opened = sys::napi_open_callback_scope(env, resource, self.context, &mut scope) == sys::Status::napi_ok;
                    for id in ids {
                        self.repoll(id);
                    }
                    if opened {
                        sys::napi_close_callback_scope(env, scope);
                    }
                    sys::napi_close_handle_scope(env, handles);
                }
            }
            self.keep_alive();
        }

        /// The ids of the calls to poll again: sockets reported, and wakers queued.
        fn ready(&self) -> Vec<u64> {
            let mut ids = self.sockets.ready();
            if ids.last() == Some(&WAKE) {
                ids.pop();
                self.shared.drain(&mut ids);
                ids.sort_unstable();
                ids.dedup();
            }
            ids
        }

        fn repoll(&self, id: u64) {
            let (mut call, waker) = {
                let mut calls = self.calls.borrow_mut();
                // Finished already: a late report, or a wake-up after its end.
                let Some(e) = calls.get_mut(&id) else { return };
                let Some(c) = e.call.take() else { return };
                (c, e.waker.clone())
            };
            let (polled, waits) = poll(&mut call, &waker);
            let outcome = match polled {
                Poll::Pending => match self.arm(id, &waits) {
                    Ok(()) => {
                        if let Some(e) = self.calls.borrow_mut().get_mut(&id) {
                            e.call = Some(call);
                        }
                        return;
                    }
                    Err(e) => Err(e),
                },
                Poll::Ready(outcome) => outcome,
            };
            drop(call);
            let entry = self.calls.borrow_mut().remove(&id);
            if let Some(e) = entry {
                settle(self.env, e.deferred, outcome);
            }
        }

        fn keep_alive(&self) {
            let pending = !self.calls.borrow().is_empty();
            if pending != self.referenced.get() {
                self.referenced.set(pending);
                // SAFETY: the handle is initialised and not closed while the driver is in use.
                unsafe { (if pending { self.uv.ref_ } else { self.uv.unref })(self.handle) };
            }
        }
    }

    /// One poll of `call` with this thread as the driver of its sockets, in the runtime's
    /// context (its timers and tasks).
    fn poll(call: &mut Call, waker: &Waker) -> (Poll<Result<Settle>>, Vec<Wait>) {
        within_runtime_if_available(|| inline::driven(|| call.as_mut().poll(&mut Context::from_waker(waker))))
    }

    fn settle(env: sys::napi_env, deferred: sys::napi_deferred, outcome: Result<Settle>) {
        // SAFETY: on the JS thread with a handle scope open; each deferred is settled once
        // (its entry is gone after this).
        unsafe {
            match outcome.and_then(|s| s(env)) {
                Ok(v) => sys::napi_resolve_deferred(env, deferred, v),
                Err(e) => sys::napi_reject_deferred(env, deferred, JsError::from(e).into_value(env)),
            };
        }
    }

    unsafe extern "C" fn on_ready(_handle: *mut c_void, _status: c_int, _events: c_int) {
        // A panic must not unwind into libuv; the calls' own panics are their outcome already.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let driver = DRIVER.with(|slot| match &*slot.borrow() {
                Slot::Ready(d) => Some(d.clone()),
                _ => None,
            });
            if let Some(d) = driver {
                d.run();
            }
        }));
    }

    /// The environment is going away (process exit, a worker's end): stop watching, drop the
    /// pending calls (their requests close with them; their promises can no longer settle).
    unsafe extern "C" fn cleanup(_arg: *mut c_void) {
        let _ = std::panic::catch_unwind(|| {
            let Slot::Ready(d) = DRIVER.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), Slot::Unset)) else { return };
            // SAFETY: the handle was started by this driver and is closed once, here.
            unsafe {
                (d.uv.poll_stop)(d.handle);
                (d.uv.close)(d.handle, Some(free_handle));
                sys::napi_async_destroy(d.env, d.context);
            }
            let calls = std::mem::take(&mut *d.calls.borrow_mut());
            drop(calls);
        });
    }

    unsafe extern "C" fn free_handle(handle: *mut c_void) {
        // SAFETY: allocated by `calloc` in `Driver::new`; libuv is done with it.
        unsafe { libc::free(handle) };
    }
}
