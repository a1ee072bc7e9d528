//! The state store behind budgets and client-side rate limits.
//!
//! One primitive serves both: an atomic "reserve against a ceiling over a window" over named
//! counters, then "settle" to the real amount. A budget of $100 a month and a limit of 500
//! requests a minute are the same operation with different units and windows. Keeping the
//! trait this small is what lets a shared store (Redis with a Lua script, for fleets of
//! processes) implement it later without the router changing: the router only ever calls
//! `reserve`, `settle` and `get`.
//!
//! The guarantee: `reserve` is all-or-nothing across every charge it is given and checks
//! `spent + reserved + amount <= limit` for each under one lock, so N concurrent requests can
//! never overshoot a ceiling, whatever N is.

use std::collections::HashMap;
use std::sync::Mutex;

/// One counter to charge: add `amount` to `add_to` if the sum of the `window` counters
/// (which includes `add_to`) plus `amount` stays within `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub add_to: String,
    pub window: Vec<String>,
    pub limit: f64,
    pub amount: f64,
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

pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// All-or-nothing reservation.
    fn reserve(&self, charges: &[Charge]) -> Result<(), Refusal>;
    /// Release `reserved` from `key` and record `actual` as spent (actual may exceed the
    /// reservation when a provider used more than estimated; it is recorded, never lost).
    fn settle(&self, key: &str, reserved: f64, actual: f64);
    fn get(&self, key: &str) -> Counter;
}

/// The default store: process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    counters: Mutex<HashMap<String, Counter>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Float sums drift by ulps; a charge that lands within this of the limit still fits.
const EPS: f64 = 1e-9;

impl StateStore for MemoryStore {
    fn reserve(&self, charges: &[Charge]) -> Result<(), Refusal> {
        let mut m = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for (i, c) in charges.iter().enumerate() {
            let used: f64 = c.window.iter().filter_map(|k| m.get(k)).map(|x| x.spent + x.reserved).sum();
            if used + c.amount > c.limit + EPS {
                return Err(Refusal { index: i, remaining: (c.limit - used).max(0.0) });
            }
        }
        for c in charges {
            m.entry(c.add_to.clone()).or_default().reserved += c.amount;
        }
        Ok(())
    }

    fn settle(&self, key: &str, reserved: f64, actual: f64) {
        let mut m = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(key.to_string()).or_default();
        e.reserved -= reserved;
        // Adding and removing the same floats leaves ulp-sized residue; zero it.
        if e.reserved < 1e-12 {
            e.reserved = 0.0;
        }
        e.spent += actual;
    }

    fn get(&self, key: &str) -> Counter {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied().unwrap_or_default()
    }
}
