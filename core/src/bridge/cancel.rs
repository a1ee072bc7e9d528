//! Cancellation as hosts see it: a token the host trips (an `AbortSignal`, a Swift task's
//! cancellation handler, a closed Python stream) and a guard that trips it when dropped.
//!
//! Rust cancels by dropping a future, and dropping a core future or stream is what cancels its
//! HTTP request. A host cannot drop a future that its runtime is polling on another thread, so
//! the token races the core future and the loser is dropped ([`CancelToken::run`]). Built on a
//! tokio `watch` flag: sticky (a token tripped before the call starts cancels it at once),
//! idempotent, any number of waiters, no runtime needed to trip it.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{Error, ErrorKind, Result};

/// The error a cancelled call ends with. The core has no cancel call of its own, so this is
/// the one wording every host shows.
pub fn cancelled_error() -> Error {
    Error::new(ErrorKind::Cancelled, "cancelled by the caller")
}

/// A one-way "cancelled" flag shared by the host and the futures it started. Cheap to clone;
/// clones are the same token.
#[derive(Clone, Debug)]
pub struct CancelToken {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl CancelToken {
    pub fn new() -> Self {
        CancelToken { tx: Arc::new(watch::Sender::new(false)) }
    }

    /// Trip the token. Idempotent; callable from any thread, inside a runtime or not.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the token is tripped (at once if it already is).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        if rx.wait_for(|c| *c).await.is_err() {
            // The sender lives as long as `self`, so this cannot happen; never resolving is
            // the safe reading (no spurious cancellation).
            std::future::pending::<()>().await;
        }
    }

    /// Run `fut` unless the token trips first; losing the race drops `fut` (which cancels its
    /// request) and ends with [`cancelled_error`].
    pub async fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            _ = self.cancelled() => Err(cancelled_error()),
            r = fut => r,
        }
    }

    /// A guard that trips this token when dropped (unless [`CancelGuard::disarm`]ed): tie a
    /// token to the lifetime of a host object, so work the object started ends with it.
    pub fn drop_guard(&self) -> CancelGuard {
        CancelGuard { token: self.clone(), armed: true }
    }
}

/// Trips its token on drop. See [`CancelToken::drop_guard`].
#[derive(Debug)]
#[must_use = "dropping the guard at once cancels the token"]
pub struct CancelGuard {
    token: CancelToken,
    armed: bool,
}

impl CancelGuard {
    /// The token this guard trips.
    pub fn token(&self) -> &CancelToken {
        &self.token
    }

    /// Let go without cancelling.
    pub fn disarm(mut self) -> CancelToken {
        self.armed = false;
        self.token.clone()
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            self.token.cancel();
        }
    }
}
