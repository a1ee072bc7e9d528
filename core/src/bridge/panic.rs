//! The last line of defence at every host boundary: a panic in the core (a bug) must never
//! unwind into Python, Node or Swift, where it would abort the process or surface as an
//! untyped error. Every binding entry point runs its body under [`catch`] (synchronous calls)
//! or [`catch_future`] (async calls, stream reads), or maps a tokio `JoinError` that
//! `is_panic()` with [`panic_error`], and hands the host the result as an ordinary core
//! error.
//!
//! Which error: kind `config` with the message `internal error: <panic message>; please
//! report it`. There is no `internal` kind on purpose: adding one to the stable code list
//! would need a meaning (retry, fallover, breaker) for something that is never a routing
//! outcome, and `config` already is the "not the provider's fault, nothing was decided"
//! class every host has. The message says what it is.
//!
//! Unwind safety: the closure or future is wrapped in `AssertUnwindSafe`. After a panic the
//! call's own state is dropped; state shared with other calls (the router) is built from
//! locks that recover from poisoning, so the next call works.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures::FutureExt;

use crate::error::{Error, Result};

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// The error a host sees instead of a panic: kind `config`, message `internal error: <panic
/// message>; please report it`.
pub fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    Error::config(format!("internal error: {}; please report it", panic_message(payload.as_ref())))
}

/// Run `f`, turning a panic into [`panic_error`]. Generic over `f`'s output, so a binding
/// wraps its whole body (host result type and all) and flattens.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(panic_error)
}

/// [`catch`] for a future: a panic while polling `fut` ends it with [`panic_error`].
pub async fn catch_future<F: Future>(fut: F) -> Result<F::Output> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(panic_error)
}

/// Test hook for the bindings' suites (never called by the core): panics on purpose, so each
/// language can prove a panic crosses its boundary as a typed error and the process keeps
/// working. `site` names the caller in the message.
#[doc(hidden)]
pub fn debug_panic(site: &str) -> ! {
    panic!("deliberate panic for testing ({site})")
}

/// [`debug_panic`] from inside a future, after one yield (so it panics while being polled by
/// the host's runtime, not when the future is created).
#[doc(hidden)]
pub async fn debug_panic_async(site: String) -> Result<()> {
    tokio::task::yield_now().await;
    debug_panic(&site)
}
