//! The default store: process memory. Its futures complete at once, so the router's
//! bookkeeping with it is as synchronous as it was before the store went async.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use super::{Actual, Charge, Counter, Refusal, StateStore, StoreFuture};

/// Float sums drift by ulps; a charge that lands within this of the limit still fits.
pub(crate) const EPS: f64 = 1e-9;
/// Settled ids remembered for idempotency: far more than are ever settled twice in flight.
const SETTLED_MEMORY: usize = 65_536;

/// Hashes a key that is already a digest (see [`digest`]) as itself: hashing it again with
/// SipHash bought nothing and cost two rounds per reservation.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else still spreads.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type ByDigest = BuildHasherDefault<Prehashed>;

#[derive(Debug, Default)]
struct Inner {
    counters: crate::FastMap<String, Counter>,
    /// What each open reservation holds, by its id's digest (two open ones colliding has
    /// the settled set's odds, below). No lease here: a hold dies with its process.
    holds: HashMap<u64, Vec<(String, f64)>, ByDigest>,
    /// Settled ids by a 64-bit digest (a collision among the remembered 65 536 has odds of
    /// ~1e-15 per settle): two `String`s per request showed in request-path profiles.
    settled: HashSet<u64, ByDigest>,
    settled_order: VecDeque<u64>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn reserve_now(&self, id: &str, charges: &[Charge]) -> Result<Vec<f64>, Refusal> {
        let mut g = self.lock();
        let mut used = Vec::with_capacity(charges.len());
        for (i, c) in charges.iter().enumerate() {
            let u: f64 = c.window.iter().filter_map(|k| g.counters.get(k)).map(|x| x.spent + x.reserved).sum();
            if u + c.amount > c.limit + EPS {
                return Err(Refusal { index: i, remaining: (c.limit - u).max(0.0) });
            }
            used.push(u + c.amount);
        }
        for c in charges {
            bump(&mut g.counters, &c.add_to, |n| n.reserved += c.amount);
        }
        g.holds.insert(digest(id), charges.iter().map(|c| (c.add_to.clone(), c.amount)).collect());
        Ok(used)
    }

    pub(crate) fn settle_now(&self, id: &str, actual: &[Actual]) {
        let mut g = self.lock();
        let digest = digest(id);
        if !g.settled.insert(digest) {
            return;
        }
        g.settled_order.push_back(digest);
        if g.settled_order.len() > SETTLED_MEMORY {
            if let Some(old) = g.settled_order.pop_front() {
                g.settled.remove(&old);
            }
        }
        for (k, amount) in g.holds.remove(&digest).unwrap_or_default() {
            bump(&mut g.counters, &k, |e| {
                e.reserved -= amount;
                // Adding and removing the same floats leaves ulp-sized residue; zero it.
                if e.reserved < 1e-12 {
                    e.reserved = 0.0;
                }
            });
        }
        for (k, a) in actual {
            if *a != 0.0 {
                bump(&mut g.counters, k, |n| n.spent += a);
            }
        }
    }

    /// Take the fleet's last known figures as spent (its reservations too: they may become
    /// spend), so a process falling back to itself does not start again from zero.
    pub(crate) fn seed<S>(&self, fleet: &HashMap<String, Counter, S>) {
        let mut g = self.lock();
        for (k, c) in fleet {
            let e = g.counters.entry(k.clone()).or_default();
            e.spent = e.spent.max(c.spent + c.reserved);
        }
    }

    pub(crate) fn get_now(&self, keys: &[String]) -> Vec<Counter> {
        let g = self.lock();
        keys.iter().map(|k| g.counters.get(k).copied().unwrap_or_default()).collect()
    }
}

/// An id's 64-bit digest: foldhash's quality variant (its output is used as the key itself),
/// seeded once per process; std's SipHash cost ~200 instructions per call of it.
fn digest(id: &str) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<foldhash::quality::RandomState> = std::sync::OnceLock::new();
    SEED.get_or_init(Default::default).hash_one(id)
}

/// Apply `f` to the counter for `key`, created on first use: an existing one (the usual
/// case) is found with one hash and without allocating a key. (`f` rather than a returned
/// `&mut`: a borrow returned from a missed `get_mut` cannot fall through to `insert`, and a
/// `contains_key` first hashed every key twice.)
fn bump(counters: &mut crate::FastMap<String, Counter>, key: &str, f: impl FnOnce(&mut Counter)) {
    if let Some(c) = counters.get_mut(key) {
        f(c);
        return;
    }
    let mut c = Counter::default();
    f(&mut c);
    counters.insert(key.to_string(), c);
}

impl StateStore for MemoryStore {
    fn reserve<'a>(&'a self, id: &'a str, charges: &'a [Charge], _lease: Duration) -> StoreFuture<'a, Result<Vec<f64>, Refusal>> {
        Box::pin(std::future::ready(Ok(self.reserve_now(id, charges))))
    }

    fn settle<'a>(&'a self, id: &'a str, actual: &'a [Actual]) -> StoreFuture<'a, ()> {
        self.settle_now(id, actual);
        Box::pin(std::future::ready(Ok(())))
    }

    fn get<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Counter>> {
        Box::pin(std::future::ready(Ok(self.get_now(keys))))
    }

    fn peek(&self, keys: &[String]) -> Option<Vec<Counter>> {
        Some(self.get_now(keys))
    }

    fn reserve_now(&self, id: &str, charges: &[Charge]) -> Option<Result<Vec<f64>, Refusal>> {
        Some(MemoryStore::reserve_now(self, id, charges))
    }

    fn settle_now(&self, id: &str, actual: &[Actual]) -> bool {
        MemoryStore::settle_now(self, id, actual);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settle_counts_once_and_releases_its_hold_once() {
        let m = MemoryStore::new();
        let charge = |amount| Charge { add_to: "k".into(), window: vec!["k".into()], limit: 10.0, amount, expires_at: 0.0 };
        m.reserve_now("a", &[charge(4.0)]).unwrap();
        m.reserve_now("b", &[charge(3.0)]).unwrap();
        for _ in 0..2 {
            m.settle_now("a", &[("k".into(), 1.5)]);
        }
        let c = m.get_now(&["k".into()])[0];
        assert_eq!((c.spent, c.reserved), (1.5, 3.0), "the second settle of `a` changed nothing");
        // A settle without a hold here (held elsewhere) still records its spend, once.
        m.settle_now("elsewhere", &[("k".into(), 0.5)]);
        m.settle_now("elsewhere", &[("k".into(), 0.5)]);
        assert_eq!(m.get_now(&["k".into()])[0].spent, 2.0);
    }
}
