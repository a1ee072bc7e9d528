//! Server-wide state: installed scripts and the attempt log.
//!
//! The log is what tests assert on (attempt counts, gaps between attempts, which step served
//! what), so every provider request gets exactly one entry, appended in arrival order under
//! the lock that assigns its `seq`. Entries are updated in place as the attempt progresses
//! (headers sent, finished). A reset starts a new epoch: attempts still in flight from the
//! old epoch cannot touch the new log. The log is bounded (oldest entries go first) so a
//! benchmark hammering the server cannot grow it without limit.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use polyroute::provider::mock::{MockScript, ScriptRunner};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

/// One provider request the server saw. Times are milliseconds since server start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// 0-based, in arrival order; restarts at 0 after a reset.
    pub seq: u64,
    /// Which TCP connection carried it (numbered from 0 since server start): equal values
    /// mean the client reused a keep-alive connection.
    pub connection: u64,
    /// The script that served it (`None`: unscripted, default echo reply).
    pub script: Option<String>,
    /// The model asked for (Gemini: from the path; Azure: the deployment).
    pub model: Option<String>,
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string with `key=` values redacted (Gemini passes API keys there).
    pub query: Option<String>,
    /// Wire format: `openai`, `anthropic`, `gemini` (`unknown` for unrouted paths).
    pub format: String,
    /// API: `openai`, `azure`, `anthropic`, `gemini` or `unknown`.
    pub api: String,
    pub stream: bool,
    /// Index into the script's `steps` (`None`: `then` or the default reply).
    pub step_index: Option<usize>,
    /// 0-based attempt number within the script.
    pub script_attempt: Option<u64>,
    pub received_ms: f64,
    pub headers_sent_ms: Option<f64>,
    pub finished_ms: Option<f64>,
    /// `ok`, `status:429`, `drop`, `hang`, `cut`, `reset`, `stall`, `malformed`, `no_done`,
    /// `no_finish`, `inband_error`, `garbage_headers`, `bad_request`, `no_route`, ...
    pub outcome: String,
    /// The client went away before the planned response was fully played.
    pub client_disconnected: bool,
    /// Whether any credential header (`authorization`, `x-api-key`, `api-key`,
    /// `x-goog-api-key`) or a `key=` query parameter was present. Values are never recorded.
    pub auth_present: bool,
    /// Request headers (lower-case names) minus credential headers.
    pub headers: BTreeMap<String, String>,
    /// Request body as JSON (`null` if it was not JSON).
    pub body: Value,
}

/// Where an in-flight attempt's entry lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogSlot {
    epoch: u64,
    pub seq: u64,
}

#[derive(Debug, Default)]
struct Log {
    epoch: u64,
    next_seq: u64,
    entries: VecDeque<LogEntry>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    start: Instant,
    scripts: Mutex<HashMap<String, Arc<ScriptRunner>>>,
    log: Mutex<Log>,
    log_capacity: usize,
    connections: AtomicU64,
}

/// A poisoned lock means a connection task panicked mid-update; the data is still usable
/// and the server must keep serving the other tests.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) const CREDENTIAL_HEADERS: [&str; 5] = ["authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"];

impl Shared {
    pub fn new(log_capacity: usize) -> Self {
        Shared {
            start: Instant::now(),
            scripts: Mutex::new(HashMap::new()),
            log: Mutex::new(Log::default()),
            log_capacity,
            connections: AtomicU64::new(0),
        }
    }

    pub fn next_connection_id(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed)
    }

    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    pub fn set_script(&self, name: &str, script: MockScript) {
        lock(&self.scripts).insert(name.to_string(), Arc::new(ScriptRunner::new(script)));
    }

    pub fn remove_script(&self, name: &str) -> bool {
        lock(&self.scripts).remove(name).is_some()
    }

    pub fn script(&self, name: &str) -> Option<Arc<ScriptRunner>> {
        lock(&self.scripts).get(name).cloned()
    }

    /// Installed script names with the attempts each has served.
    pub fn scripts(&self) -> BTreeMap<String, u64> {
        lock(&self.scripts).iter().map(|(k, v)| (k.clone(), v.attempts())).collect()
    }

    pub fn reset(&self) {
        lock(&self.scripts).clear();
        let mut log = lock(&self.log);
        log.epoch += 1;
        log.next_seq = 0;
        log.entries.clear();
    }

    /// Append an entry, assigning its `seq`.
    pub fn log_push(&self, mut entry: LogEntry) -> LogSlot {
        let mut log = lock(&self.log);
        let seq = log.next_seq;
        log.next_seq += 1;
        if self.log_capacity > 0 {
            entry.seq = seq;
            if log.entries.len() >= self.log_capacity {
                log.entries.pop_front();
            }
            log.entries.push_back(entry);
        }
        LogSlot { epoch: log.epoch, seq }
    }

    pub fn log_update(&self, slot: LogSlot, f: impl FnOnce(&mut LogEntry)) {
        let mut log = lock(&self.log);
        if log.epoch != slot.epoch {
            return;
        }
        if let Ok(i) = log.entries.binary_search_by_key(&slot.seq, |e| e.seq) {
            f(&mut log.entries[i]);
        }
    }

    pub fn log(&self, script: Option<&str>) -> Vec<LogEntry> {
        lock(&self.log).entries.iter().filter(|e| script.is_none() || e.script.as_deref() == script).cloned().collect()
    }
}
