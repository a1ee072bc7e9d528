//! [`State`]: the router's handle on its store, and what a store failure means.
//!
//! Every call to a shared store is bounded by the policy's `state.timeout`. A call that fails
//! (timeout, refused connection, Redis restarting or out of memory) marks the store down and
//! is answered as `on_error` says: `local` holds budgets in this process (seeded with the
//! fleet's last known figures, so a process does not start again from zero), `fail_closed`
//! refuses with `state_unavailable`, `fail_open` serves without limits. While the store is
//! down no request waits on it: the fleet sync probes it once per interval, and when it
//! answers, what was settled meanwhile is replayed into the shared ledger (settles are
//! idempotent by reservation id, so a replay that half-succeeded is safe to repeat).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Actual, Charge, Counter, MemoryStore, Refusal, StateStore, StoreError};
use crate::error::{Error, ErrorKind};
pub use crate::policy::OnStoreError;
use crate::telemetry::{RouterEvent, Telemetry};

/// Where a reservation was held, so its settle goes to the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Shared,
    Local,
    /// `fail_open` while the store was down: nothing held, the spend is still reconciled.
    Nowhere,
}

/// A line for the request's trace when the store did not take part as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct StateNote(pub String);

/// A granted reservation: each charge's window total after it, where it is held and what
/// the trace should say about it.
#[derive(Debug)]
pub struct Granted {
    pub used: Vec<f64>,
    pub held: Held,
    pub note: Option<StateNote>,
}

/// Settles waiting to be replayed into the shared ledger; beyond this many the oldest are
/// dropped (and counted), so a store down for days cannot eat the process's memory.
const PENDING_MAX: usize = 100_000;

pub struct State {
    store: Arc<dyn StateStore>,
    local: MemoryStore,
    on_error: OnStoreError,
    timeout: Duration,
    /// Why the shared store is down, while it is.
    down: Mutex<Option<String>>,
    pending: Mutex<Vec<(String, Vec<Actual>)>>,
    /// Last figures read from the shared store, for status and metrics (refreshed by the
    /// fleet sync, never on the request path).
    mirror: Mutex<HashMap<String, Counter>>,
    telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("store", &self.store).field("on_error", &self.on_error).finish_non_exhaustive()
    }
}

impl State {
    pub fn new(store: Arc<dyn StateStore>, on_error: OnStoreError, timeout: Duration, telemetry: Arc<Telemetry>) -> State {
        if store.is_shared() {
            telemetry.metrics.state_store(true);
        }
        State {
            store,
            local: MemoryStore::new(),
            on_error,
            timeout,
            down: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            mirror: Mutex::new(HashMap::new()),
            telemetry,
        }
    }

    pub fn memory() -> State {
        State::new(Arc::new(MemoryStore::new()), OnStoreError::Local, Duration::from_secs(1), Arc::new(Telemetry::default()))
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    pub fn is_shared(&self) -> bool {
        self.store.is_shared()
    }

    pub fn on_error(&self) -> OnStoreError {
        self.on_error
    }

    /// Why the shared store is down, while it is.
    pub fn down(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn bounded<T>(&self, what: &str, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError(format!("{what} took longer than the store timeout ({} ms)", self.timeout.as_millis()))),
        }
    }

    /// Mark the store down (reporting the change once) and seed the local fallback with the
    /// fleet's last known figures.
    fn went_down(&self, e: &StoreError) {
        let mut d = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_some() {
            return;
        }
        *d = Some(e.0.clone());
        drop(d);
        if self.on_error == OnStoreError::Local {
            let mirror = self.mirror.lock().unwrap_or_else(|p| p.into_inner()).clone();
            self.local.seed(&mirror);
        }
        self.telemetry.metrics.state_store(false);
        self.telemetry.emit(RouterEvent::StateStoreChanged { up: false, on_error: self.on_error.as_str().into(), error: Some(e.0.clone()) });
    }

    fn fallback_note(&self, why: &str) -> StateNote {
        self.telemetry.metrics.state_fallback(self.on_error.as_str());
        StateNote(match self.on_error {
            OnStoreError::Local => format!("state store unavailable ({why}): budgets and limits held in this process only (on_error: local)"),
            OnStoreError::FailOpen => format!("state store unavailable ({why}): served without budgets or limits (on_error: fail_open)"),
            OnStoreError::FailClosed => format!("state store unavailable ({why})"),
        })
    }

    /// Reserve every charge or none, where the store's state says.
    pub async fn reserve(&self, id: &str, charges: &[Charge], lease: Duration) -> Result<Result<Granted, Refusal>, Error> {
        if !self.is_shared() {
            let now = match self.store.reserve_now(id, charges) {
                Some(r) => r,
                None => self.store.reserve(id, charges, lease).await.unwrap_or_else(|_| self.local.reserve_now(id, charges)),
            };
            return Ok(now.map(|used| Granted { used, held: Held::Shared, note: None }));
        }
        let why = match self.down() {
            Some(why) => why,
            None => match self.bounded("reserve", self.store.reserve(id, charges, lease)).await {
                Ok(r) => return Ok(r.map(|used| Granted { used, held: Held::Shared, note: None })),
                Err(e) => {
                    self.went_down(&e);
                    e.0
                }
            },
        };
        let note = Some(self.fallback_note(&why));
        match self.on_error {
            OnStoreError::Local => Ok(self.local.reserve_now(id, charges).map(|used| Granted { used, held: Held::Local, note })),
            OnStoreError::FailOpen => Ok(Ok(Granted { used: charges.iter().map(|c| c.amount).collect(), held: Held::Nowhere, note })),
            OnStoreError::FailClosed => {
                Err(Error::new(ErrorKind::StateUnavailable, format!("the shared state store is unavailable ({why}); on_error: fail_closed refuses")))
            }
        }
    }

    /// [`State::settle`] done at once, for a store of this process that never waits (the
    /// memory store): `false` when it must go through `settle`.
    pub(crate) fn settle_local_now(&self, id: &str, actual: &[Actual]) -> bool {
        !self.is_shared() && self.store.settle_now(id, actual)
    }

    /// Record what a reservation really used. Never fails: what the shared store cannot take
    /// now is recorded locally and replayed when it is back.
    pub async fn settle(&self, id: &str, actual: &[Actual], held: Held) {
        if !self.is_shared() {
            if !self.store.settle_now(id, actual) && self.store.settle(id, actual).await.is_err() {
                self.local.settle_now(id, actual);
            }
            return;
        }
        if held == Held::Shared && self.down().is_none() {
            match self.bounded("settle", self.store.settle(id, actual)).await {
                Ok(()) => return,
                Err(e) => self.went_down(&e),
            }
        }
        if held != Held::Nowhere || self.on_error == OnStoreError::Local {
            self.local.settle_now(id, actual);
        }
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() >= PENDING_MAX {
            p.remove(0);
            self.telemetry.metrics.state_fallback("dropped_settle");
        }
        p.push((id.to_string(), actual.to_vec()));
    }

    /// Spent and reserved of `keys` as last known: exact for the memory store, the fleet's
    /// figures from the last sync for a shared one (the local fallback's while it is down).
    pub fn counters(&self, keys: &[String]) -> Vec<Counter> {
        if !self.is_shared() {
            return self.store.peek(keys).unwrap_or_else(|| self.local.get_now(keys));
        }
        if self.down().is_some() && self.on_error == OnStoreError::Local {
            return self.local.get_now(keys);
        }
        let m = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().map(|k| m.get(k).copied().unwrap_or_default()).collect()
    }

    /// Read `keys` from the shared store into the mirror (the fleet sync calls this).
    pub async fn refresh(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() || !self.is_shared() || self.down().is_some() {
            return Ok(());
        }
        match self.bounded("read", self.store.get(keys)).await {
            Ok(v) => {
                let mut m = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
                m.clear();
                m.extend(keys.iter().cloned().zip(v));
                Ok(())
            }
            Err(e) => {
                self.went_down(&e);
                Err(e)
            }
        }
    }

    /// While down: try the store again; if it answers, replay what was settled meanwhile and
    /// mark it up. Returns whether it is up.
    pub async fn heal(&self) -> bool {
        if self.down().is_none() {
            return true;
        }
        let batch: Vec<(String, Vec<Actual>)> = self.pending.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let probe = ["polyroute-ping|x".to_string()];
        if batch.is_empty() && self.bounded("ping", self.store.get(&probe)).await.is_err() {
            return false;
        }
        for (n, (id, actual)) in batch.iter().enumerate() {
            if self.bounded("replay", self.store.settle(id, actual)).await.is_err() {
                // Keep the rest (the done ones are idempotent if replayed again).
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).drain(..n);
                return false;
            }
        }
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let done = batch.len().min(p.len());
            p.drain(..done);
            if !p.is_empty() {
                return false; // more arrived while replaying: next round
            }
        }
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.telemetry.metrics.state_store(true);
        self.telemetry.emit(RouterEvent::StateStoreChanged { up: true, on_error: self.on_error.as_str().into(), error: None });
        true
    }

    /// Run a fleet-health call bounded by the timeout; a failure marks the store down.
    pub(crate) async fn fleet_call<T>(&self, what: &str, fut: impl Future<Output = Result<T, StoreError>>) -> Option<T> {
        if self.down().is_some() {
            return None;
        }
        match self.bounded(what, fut).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.went_down(&e);
                None
            }
        }
    }
}
