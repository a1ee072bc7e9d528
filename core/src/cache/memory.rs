//! The in-process store: a moka cache bounded by the serialised bytes of its entries, each
//! entry expiring after its own route's TTL (the router also checks expiry on read, against
//! its own clock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use moka::sync::Cache;
use moka::Expiry;

use super::{CacheKey, CacheStore, Entry, StoreUsage};

#[derive(Debug)]
pub struct MemoryStore {
    cache: Cache<CacheKey, Arc<Entry>>,
    max_bytes: u64,
}

struct PerEntryTtl;

impl Expiry<CacheKey, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &CacheKey, value: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl())
    }
    fn expire_after_update(&self, _key: &CacheKey, value: &Arc<Entry>, _updated_at: Instant, _left: Option<Duration>) -> Option<Duration> {
        Some(value.ttl())
    }
}

impl MemoryStore {
    pub fn new(max_bytes: u64) -> MemoryStore {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &CacheKey, v: &Arc<Entry>| u32::try_from(v.bytes).unwrap_or(u32::MAX))
            .expire_after(PerEntryTtl)
            .build();
        MemoryStore { cache, max_bytes }
    }

    fn get_now(&self, key: CacheKey) -> Option<Arc<Entry>> {
        self.cache.get(&key)
    }

    fn put_now(&self, key: CacheKey, entry: Arc<Entry>) {
        // An answer larger than the whole store would only push everything else out.
        if entry.bytes <= self.max_bytes {
            self.cache.insert(key, entry);
        }
    }
}

impl CacheStore for MemoryStore {
    fn get(&self, key: CacheKey) -> BoxFuture<'_, Option<Arc<Entry>>> {
        Box::pin(std::future::ready(self.get_now(key)))
    }

    fn put(&self, key: CacheKey, entry: Arc<Entry>) -> BoxFuture<'_, ()> {
        self.put_now(key, entry);
        Box::pin(std::future::ready(()))
    }

    fn remove(&self, key: CacheKey) -> BoxFuture<'_, ()> {
        self.cache.invalidate(&key);
        Box::pin(std::future::ready(()))
    }

    fn usage(&self) -> StoreUsage {
        // moka applies evictions in batches; settle them so the numbers are current.
        self.cache.run_pending_tasks();
        StoreUsage { entries: self.cache.entry_count(), bytes: self.cache.weighted_size(), max_bytes: self.max_bytes }
    }
}
