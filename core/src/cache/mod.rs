//! The exact-match response cache (issue 20, part 2): what a key is made of, which requests
//! may be cached, and the store behind a small trait.
//!
//! - **Key**: SHA-256 over a canonical serialisation (object keys sorted, at every depth) of
//!   the request as a provider would see it (messages, tools, tool choice, response format,
//!   sampling parameters and every other body field, `model` included) plus a namespace of
//!   the route name, the tenant and the data class. All other metadata (feature, tier, tags,
//!   order, the route-by-name shortcut) and the stream flags (`stream`, `stream_options`)
//!   are left out: a chat answer can be replayed as a stream and the reverse. A request
//!   without a tenant has its own namespace, distinct from every named tenant, so tenants
//!   never see each other's answers.
//! - **Cacheable**: a request that samples (`temperature` > 0 or `top_p` < 1) only when the
//!   route says `sampled: true`.
//! - **Entries** keep the answer (without trace or cost), which deployment produced it,
//!   and when it was stored and expires, in the router's wall clock (unix seconds): expiry
//!   is checked on every read against the router's injected clock, so tests are
//!   deterministic, and the format suits a shared store.
//! - **Stores** implement [`CacheStore`] (async, so a Redis store can be added without
//!   touching the router); this build has the in-process one, [`MemoryStore`] (moka,
//!   bounded by the serialised bytes of its entries).
//!
//! The router's hooks (when to read, what to store, how a hit is traced and replayed) are
//! in `router/cached.rs`.

mod memory;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::types::{ChatRequest, ChatResponse};

pub use memory::MemoryStore;

/// A 256-bit digest of the normalised request and its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key of `req` on route `route`. See the module docs for what goes in.
    pub fn of(req: &ChatRequest, route: &str) -> CacheKey {
        let mut body = req.to_openai_json();
        if let Value::Object(m) = &mut body {
            // Neither routing metadata nor OpenAI's `metadata` (labels for stored completions) changes the answer.
            for k in ["polyroute", "metadata", "stream", "stream_options"] {
                m.remove(k);
            }
        }
        let ns = serde_json::json!({"route": route, "tenant": req.routing.tenant, "data_class": req.routing.data_class});
        let mut text = String::from("polyroute-cache-v1\n");
        canonical(&ns, &mut text);
        text.push('\n');
        canonical(&body, &mut text);
        CacheKey(Sha256::digest(text.as_bytes()).into())
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// JSON with object keys sorted at every depth, whatever order the map keeps.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Whether the request asks for a random draw (`temperature` > 0 or `top_p` < 1).
pub fn samples(req: &ChatRequest) -> bool {
    req.temperature.is_some_and(|t| t > 0.0) || req.top_p.is_some_and(|p| p < 1.0)
}

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The answer as the caller got it, without trace and cost.
    pub response: ChatResponse,
    /// The deployment that produced it.
    pub deployment: Option<String>,
    /// Router wall-clock time (unix seconds) when it was stored, and until when it may be
    /// served.
    pub stored_at: f64,
    pub expires_at: f64,
    /// Serialised size, what the store's bound counts.
    #[serde(skip)]
    pub bytes: u64,
}

impl Entry {
    pub fn new(mut response: ChatResponse, deployment: Option<String>, now: f64, ttl: Duration) -> Entry {
        response.trace = None;
        response.cost_usd = None;
        let mut e = Entry { response, deployment, stored_at: now, expires_at: now + ttl.as_secs_f64(), bytes: 0 };
        // The key, the timestamps and the store's own bookkeeping: a fixed allowance.
        e.bytes = serde_json::to_vec(&e).map(|v| v.len() as u64).unwrap_or(u64::MAX / 2) + 128;
        e
    }

    pub fn ttl(&self) -> Duration {
        Duration::try_from_secs_f64(self.expires_at - self.stored_at).unwrap_or_default()
    }

    pub fn is_fresh(&self, now: f64) -> bool {
        now < self.expires_at
    }
}

/// Entries and bytes held (best effort: a shared store may not know).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

/// Where answers are kept. Async so that a networked store (Redis, planned) fits the same
/// hooks; the in-process [`MemoryStore`] answers at once.
pub trait CacheStore: Send + Sync + std::fmt::Debug {
    fn get(&self, key: CacheKey) -> BoxFuture<'_, Option<Arc<Entry>>>;
    /// Store (replacing any entry under `key`). A store may refuse an entry larger than it
    /// can hold, and evicts others to stay within its bound.
    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> BoxFuture<'_, ()>;
    fn remove(&self, key: CacheKey) -> BoxFuture<'_, ()>;
    fn usage(&self) -> StoreUsage;
}

/// The router's cache: one store for the process (per router), replaced by an empty one
/// when a reload changes `cache.max_bytes` (moka cannot be resized in place), kept as it is
/// across any other reload.
#[derive(Debug)]
pub struct ResponseCache {
    store: RwLock<(u64, Arc<dyn CacheStore>)>,
}

impl ResponseCache {
    pub fn new(max_bytes: u64) -> ResponseCache {
        ResponseCache { store: RwLock::new((max_bytes, Arc::new(MemoryStore::new(max_bytes)))) }
    }

    /// Apply a (re)loaded policy's bound. Returns whether the store was replaced (emptied).
    pub fn configure(&self, max_bytes: u64) -> bool {
        let mut s = self.store.write().unwrap_or_else(|p| p.into_inner());
        if s.0 == max_bytes {
            return false;
        }
        *s = (max_bytes, Arc::new(MemoryStore::new(max_bytes)));
        true
    }

    pub fn store(&self) -> Arc<dyn CacheStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// A fresh entry under `key` at wall time `now`; an expired one is removed.
    pub async fn lookup(&self, key: CacheKey, now: f64) -> Option<Arc<Entry>> {
        let store = self.store();
        let e = store.get(key).await?;
        if e.is_fresh(now) {
            Some(e)
        } else {
            store.remove(key).await;
            None
        }
    }

    pub async fn insert(&self, key: CacheKey, entry: Entry) {
        self.store().put(key, Arc::new(entry)).await;
    }

    pub fn usage(&self) -> StoreUsage {
        self.store().usage()
    }
}

#[cfg(test)]
mod tests;
