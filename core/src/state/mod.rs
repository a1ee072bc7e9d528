//! The state store behind budgets, client-side rate limits and (with a shared store) the
//! fleet's view of each deployment's health.
//!
//! One primitive serves budgets and rate limits alike: an atomic "reserve against a ceiling
//! over a window" over named counters, then "settle" to the real amount. A budget of $100 a
//! month and a limit of 500 requests a minute are the same operation with different units and
//! windows. The guarantee: `reserve` checks `spent + reserved + amount <= limit` for every
//! charge and takes them all or none in one atomic step (one lock in memory, one Lua script
//! in Redis), so N concurrent requests, in one process or in forty, never overshoot.
//!
//! The trait is shaped for a network store:
//! - every reservation has an id chosen by the caller, and `settle` takes the id, so a
//!   retried settle (after a timeout whose reply was lost) never counts twice;
//! - every reservation has a lease: if the process holding it dies, the store returns the
//!   hold by itself when the lease ends (Redis: a sorted set of lease ends swept by every
//!   script), so a crashed worker cannot pin a budget for ever;
//! - calls are async and fallible ([`StoreError`]); what a failure means for the request is
//!   the policy's `state.on_error`, applied in [`shared::State`], not here.
//!
//! [`MemoryStore`] is the default (one process); [`redis::RedisStore`] shares everything
//! through Redis or Valkey, standalone or Cluster.

pub mod fleet;
mod memory;
pub mod redis;
pub mod shared;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use memory::MemoryStore;
pub use shared::{State, StateNote};

/// One counter to charge: add `amount` to `add_to` if the sum of the `window` counters
/// (which includes `add_to`) plus `amount` stays within `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub add_to: String,
    pub window: Vec<String>,
    pub limit: f64,
    pub amount: f64,
    /// Unix seconds after which nobody reads `add_to` any more (its window has passed), so a
    /// shared store may drop it.
    pub expires_at: f64,
}

/// Why a reservation was refused: which charge and how much was left in its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    pub index: usize,
    pub remaining: f64,
}

/// Spent and reserved amounts of one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counter {
    pub spent: f64,
    pub reserved: f64,
}

/// A store call that did not complete: timed out, refused, or answered with an error.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What one settle records: `actual` for `key` (spent, or requests that reached the provider).
pub type Actual = (String, f64);

pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// All-or-nothing reservation of every charge under `id`, held until settled or until
    /// `lease` passes. `Ok(Ok(used))`: granted, with each charge's window total after it.
    fn reserve<'a>(&'a self, id: &'a str, charges: &'a [Charge], lease: Duration) -> StoreFuture<'a, Result<Vec<f64>, Refusal>>;
    /// Return the hold of `id` and record `actual` (which may exceed what was held: a
    /// provider that used more than estimated is recorded, never lost). Idempotent: a second
    /// settle of the same id changes nothing. A settle whose hold already expired still
    /// records the spend.
    fn settle<'a>(&'a self, id: &'a str, actual: &'a [Actual]) -> StoreFuture<'a, ()>;
    /// Current spent and reserved of each key.
    fn get<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Counter>>;
    /// Current figures without waiting, for a store that can (memory); `None` otherwise.
    fn peek(&self, _keys: &[String]) -> Option<Vec<Counter>> {
        None
    }
    /// [`StateStore::reserve`] without a future, for a store that never waits (memory);
    /// `None` otherwise. The boxed future and its poll were a tenth of a reservation's cost.
    fn reserve_now(&self, _id: &str, _charges: &[Charge]) -> Option<Result<Vec<f64>, Refusal>> {
        None
    }
    /// [`StateStore::settle`] without a future, for a store that never waits (memory);
    /// `false` when it was not done.
    fn settle_now(&self, _id: &str, _actual: &[Actual]) -> bool {
        false
    }
    /// True for a store other processes see (it gets a timeout, `on_error` and fleet sync).
    fn is_shared(&self) -> bool {
        false
    }
    /// Fleet-wide deployment health (breakers, provider limits, latency), if shared.
    fn fleet(&self) -> Option<&dyn fleet::FleetStore> {
        None
    }
}

/// Run `fut` now if it completes without waiting (the memory store always does), otherwise
/// on the current runtime in the background; without a runtime (a reservation dropped after
/// its runtime ended) it is abandoned, which a shared store's lease makes safe.
pub(crate) fn detach(fut: impl Future<Output = ()> + Send + 'static) {
    let mut fut = Box::pin(fut);
    let waker = futures::task::noop_waker();
    if fut.as_mut().poll(&mut std::task::Context::from_waker(&waker)).is_ready() {
        return;
    }
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(fut);
    }
}

/// A reservation id unique across the fleet: a random per-process prefix and a counter.
pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    // The prefix's text, written once: 16 hex digits per reservation showed in profiles.
    static PREFIX: OnceLock<String> = OnceLock::new();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let p = PREFIX.get_or_init(|| {
        let mut p = String::with_capacity(16);
        crate::ids::push_hex(&mut p, rand::random::<u64>(), 16);
        p
    });
    let mut id = String::with_capacity(32);
    id.push_str(p);
    crate::ids::push_hex(&mut id, SEQ.fetch_add(1, Ordering::Relaxed), 0);
    id
}
