//! Telemetry: one event sink the router feeds, metrics derived from it, and host callbacks.
//!
//! Everything is emitted by the core once, so Rust, Python, Node and Swift see identical
//! numbers and events. Host callbacks run on their own thread behind a bounded queue: a slow
//! callback drops events (counted in `polyroute_events_dropped_total`) instead of slowing a
//! request, and a panicking one is contained.

pub mod event;
pub mod http;
pub mod metrics;
pub mod otlp;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

pub use event::RouterEvent;
pub use metrics::{BudgetGauge, DeploymentGauge, Metrics};

/// A host callback. Must be cheap to call from any thread.
pub type Callback = Arc<dyn Fn(&RouterEvent) + Send + Sync>;

/// Events a subscriber may lag behind before new ones are dropped for it.
const QUEUE: usize = 4096;
/// Pause between delivery batches (see the subscriber loop).
const DELIVERY_NAP: std::time::Duration = std::time::Duration::from_millis(2);

struct Subscriber {
    id: u64,
    tx: SyncSender<RouterEvent>,
}

#[derive(Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    subs: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    pub fn emit(&self, ev: RouterEvent) {
        self.metrics.record(&ev);
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.is_empty() {
            return;
        }
        subs.retain(|s| match s.tx.try_send(ev.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.metrics.dropped_event();
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Register a callback; returns an id for [`Telemetry::unsubscribe`]. The callback runs
    /// on a dedicated thread, in event order.
    pub fn subscribe(&self, cb: Callback) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = sync_channel::<RouterEvent>(QUEUE);
        std::thread::Builder::new()
            .name(format!("polyroute-events-{id}"))
            .spawn(move || {
                // A failing callback must not take the others, or the process, with it.
                let deliver = |ev: RouterEvent| {
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| cb(&ev)));
                };
                while let Ok(ev) = rx.recv() {
                    deliver(ev);
                    // Drain what queued meanwhile, then nap: under load the router's sends
                    // then find no parked receiver to wake, which costs far more per event
                    // than the callback itself. Callbacks lag by at most the nap.
                    while let Ok(ev) = rx.try_recv() {
                        deliver(ev);
                    }
                    std::thread::sleep(DELIVERY_NAP);
                }
            })
            .expect("spawn event thread");
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).push(Subscriber { id, tx });
        id
    }

    /// Stop delivering to a callback; events already queued are still delivered.
    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let before = subs.len();
        subs.retain(|s| s.id != id);
        subs.len() != before
    }
}
