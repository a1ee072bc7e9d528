//! Idle kept-alive connections by `host:port`, for both inline clients (blocking sockets in
//! `http.rs`, tokio sockets in `direct.rs`): the most recently used first, each at most
//! `idle_timeout` old and checked still open before reuse, at most `max_per_host` kept.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(super) struct Idle<T> {
    idle: Mutex<crate::FastMap<String, Vec<(T, Instant)>>>,
    max_per_host: usize,
    idle_timeout: Duration,
}

impl<T> Idle<T> {
    pub(super) fn new(max_per_host: usize, idle_timeout: Duration) -> Self {
        Idle { idle: Mutex::default(), max_per_host, idle_timeout }
    }

    /// The most recently used idle connection to `key` that `still_open` accepts; older or
    /// closed ones are dropped on the way.
    pub(super) fn checkout(&self, key: &str, still_open: impl Fn(&T) -> bool) -> Option<T> {
        loop {
            let (conn, since) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(key)?.pop()?;
            if since.elapsed() < self.idle_timeout && still_open(&conn) {
                return Some(conn);
            }
        }
    }

    pub(super) fn checkin(&self, key: String, conn: T) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < self.max_per_host {
            list.push((conn, Instant::now()));
        }
    }
}
