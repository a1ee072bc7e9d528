//! Telemetry: one event sink the router feeds, metrics derived from it, and host callbacks.
//!
//! Everything is emitted by the core once, so Rust, Python, Node and Swift see identical
//! numbers and events. Host callbacks run on their own thread behind a bounded queue: a slow
//! callback drops events (counted in `polyroute_events_dropped_total`) instead of slowing a
//! request, and a panicking one is contained. [`Telemetry::flush`] waits until everything
//! emitted so far has reached every callback (tests and shutdown use it instead of sleeping).

pub mod event;
pub mod http;
pub mod metrics;
pub mod otlp;

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use event::RouterEvent;
pub use metrics::{AttemptRecord, BudgetGauge, CacheGauge, DeploymentGauge, Metrics, RequestRecord};

/// A host callback. Must be cheap to call from any thread.
pub type Callback = Arc<dyn Fn(&RouterEvent) + Send + Sync>;

/// Events a subscriber may lag behind before new ones are dropped for it.
const QUEUE: usize = 4096;
/// Pause between delivery batches (see the subscriber loop).
const DELIVERY_NAP: Duration = Duration::from_millis(2);
/// How long [`Telemetry::flush`] waits at most.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

struct Subscriber {
    id: u64,
    /// Shared, not cloned per subscriber: a deep copy of every event's strings showed in
    /// request-path profiles.
    tx: SyncSender<Arc<RouterEvent>>,
    /// Events queued for this subscriber (dropped ones are not counted). Only written under
    /// the `subs` lock, so a flush that reads it there sees every earlier `emit`.
    queued: u64,
    progress: Arc<Progress>,
}

/// How many events a subscriber's thread has finished delivering, with a condvar to wait on.
#[derive(Default)]
struct Progress {
    delivered: Mutex<u64>,
    changed: Condvar,
}

thread_local! {
    /// The subscriber whose delivery thread this is (0 elsewhere): a callback that flushes
    /// must not wait for itself.
    static DELIVERING_FOR: Cell<u64> = const { Cell::new(0) };
}

#[derive(Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    subs: Mutex<Vec<Subscriber>>,
    /// `subs.len()`, written under its lock, read without: most routers have no callback,
    /// and then the request path neither locks nor builds the events only callbacks read.
    listeners: AtomicUsize,
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
        self.publish(ev);
    }

    /// Whether a host callback is subscribed (it may have just changed).
    pub fn listening(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// An event the metrics do not read (or that the caller already recorded with
    /// [`Metrics::attempt_finished`] / [`Metrics::request_finished`]), built only when a
    /// callback will receive it: its owned strings were ~15 allocations per request (issue 18).
    pub fn emit_for_callbacks(&self, make: impl FnOnce() -> RouterEvent) {
        if self.listening() {
            self.publish(make());
        }
    }

    fn publish(&self, ev: RouterEvent) {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.is_empty() {
            return;
        }
        let ev = Arc::new(ev);
        subs.retain_mut(|s| match s.tx.try_send(ev.clone()) {
            Ok(()) => {
                s.queued += 1;
                true
            }
            Err(TrySendError::Full(_)) => {
                self.metrics.dropped_event();
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        self.listeners.store(subs.len(), Ordering::Relaxed);
    }

    /// Register a callback; returns an id for [`Telemetry::unsubscribe`]. The callback runs
    /// on a dedicated thread, in event order.
    pub fn subscribe(&self, cb: Callback) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = sync_channel::<Arc<RouterEvent>>(QUEUE);
        let progress = Arc::new(Progress::default());
        let seen = progress.clone();
        std::thread::Builder::new()
            .name(format!("polyroute-events-{id}"))
            .spawn(move || {
                DELIVERING_FOR.with(|c| c.set(id));
                // A failing callback must not take the others, or the process, with it.
                let deliver = |ev: Arc<RouterEvent>| {
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| cb(&ev)));
                };
                while let Ok(ev) = rx.recv() {
                    deliver(ev);
                    let mut n = 1;
                    // Drain what queued meanwhile, then nap: under load the router's sends
                    // then find no parked receiver to wake, which costs far more per event
                    // than the callback itself. Callbacks lag by at most the nap.
                    while let Ok(ev) = rx.try_recv() {
                        deliver(ev);
                        n += 1;
                    }
                    // Progress is published per batch, before the nap, so a flush returns as
                    // soon as the batch is out.
                    *seen.delivered.lock().unwrap_or_else(|p| p.into_inner()) += n;
                    seen.changed.notify_all();
                    std::thread::sleep(DELIVERY_NAP);
                }
            })
            .expect("spawn event thread");
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.push(Subscriber { id, tx, queued: 0, progress });
        self.listeners.store(subs.len(), Ordering::Relaxed);
        id
    }

    /// Block until every event emitted before this call has been delivered to every
    /// subscribed callback, waiting at most [`FLUSH_TIMEOUT`] (5 s). Returns whether it
    /// completed. Events dropped because a subscriber's queue was full are not waited for
    /// (they are counted in `polyroute_events_dropped_total`). Called from inside a callback,
    /// it does not wait for that callback's own queue (that would deadlock).
    ///
    /// Blocking (std threads, real time): from async code call it where blocking is allowed,
    /// e.g. in `spawn_blocking`, or accept that it parks the current thread for the wait.
    pub fn flush(&self) -> bool {
        self.flush_timeout(FLUSH_TIMEOUT)
    }

    /// [`Telemetry::flush`] with a caller-chosen bound.
    pub fn flush_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let own = DELIVERING_FOR.with(|c| c.get());
        let targets: Vec<(u64, Arc<Progress>)> = {
            let subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
            subs.iter().filter(|s| s.id != own).map(|s| (s.queued, s.progress.clone())).collect()
        };
        for (queued, progress) in targets {
            let mut delivered = progress.delivered.lock().unwrap_or_else(|p| p.into_inner());
            while *delivered < queued {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                delivered = progress.changed.wait_timeout(delivered, left).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
        true
    }

    /// Stop delivering to a callback; events already queued are still delivered.
    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let before = subs.len();
        subs.retain(|s| s.id != id);
        self.listeners.store(subs.len(), Ordering::Relaxed);
        subs.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn ev() -> RouterEvent {
        RouterEvent::PolicyReloaded { ok: true, error: None }
    }

    #[test]
    fn flush_waits_for_every_earlier_event() {
        let t = Telemetry::default();
        assert!(t.flush(), "nothing subscribed: nothing to wait for");
        let seen = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let seen = seen.clone();
            t.subscribe(Arc::new(move |_| {
                std::thread::sleep(Duration::from_millis(1));
                seen.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for _ in 0..50 {
            t.emit(ev());
        }
        assert!(t.flush());
        assert_eq!(seen.load(Ordering::SeqCst), 100);
    }

    #[test]
    fn flush_is_bounded_and_safe_inside_a_callback() {
        let t = Arc::new(Telemetry::default());
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new(gate_rx);
        t.subscribe(Arc::new(move |_| {
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        }));
        t.emit(ev());
        // The callback is blocked: the flush gives up at its bound and says so.
        assert!(!t.flush_timeout(Duration::from_millis(50)));
        gate_tx.send(()).unwrap();
        assert!(t.flush());

        // A callback that flushes waits for the others, not for itself.
        let inner = t.clone();
        let flushed = Arc::new(AtomicUsize::new(0));
        let f = flushed.clone();
        t.subscribe(Arc::new(move |_| {
            if inner.flush_timeout(Duration::from_secs(2)) {
                f.fetch_add(1, Ordering::SeqCst);
            }
        }));
        gate_tx.send(()).unwrap();
        t.emit(ev());
        assert!(t.flush());
        assert_eq!(flushed.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn events_for_callbacks_are_built_only_while_one_listens() {
        let t = Telemetry::default();
        let built = AtomicUsize::new(0);
        let make = || {
            built.fetch_add(1, Ordering::SeqCst);
            ev()
        };
        t.emit_for_callbacks(make);
        assert_eq!(built.load(Ordering::SeqCst), 0, "nobody listens: not built");
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let id = t.subscribe(Arc::new(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(t.listening());
        t.emit_for_callbacks(make);
        assert!(t.flush());
        assert_eq!((built.load(Ordering::SeqCst), seen.load(Ordering::SeqCst)), (1, 1));
        assert!(t.unsubscribe(id));
        assert!(!t.listening());
        t.emit_for_callbacks(make);
        assert_eq!(built.load(Ordering::SeqCst), 1, "unsubscribed: not built again");
    }

    #[test]
    fn recorded_attempts_and_requests_count_like_their_events() {
        // The request path records metrics from borrowed fields; `emit` of the same event
        // (other callers) must render the same text.
        let (a, b) = (Telemetry::default(), Telemetry::default());
        a.metrics.attempt_finished(&AttemptRecord {
            route: "r",
            deployment: "d",
            provider: "p",
            model: "m",
            outcome: "ok",
            ttft_ms: Some(12.0),
            tokens: [3, 2, 0, 0, 1],
            cost_usd: Some(0.5),
        });
        a.metrics.request_finished(&RequestRecord {
            route: "r",
            outcome: "ok",
            provider: Some("p"),
            model: Some("m"),
            duration_ms: 20.0,
            cost_usd: Some(0.5),
        });
        b.emit(RouterEvent::AttemptFinished {
            request_id: "x".into(),
            route: "r".into(),
            deployment: "d".into(),
            provider: "p".into(),
            provider_kind: "openai".into(),
            model: "m".into(),
            outcome: "ok".into(),
            latency_ms: 20.0,
            ttft_ms: Some(12.0),
            input_tokens: 3,
            output_tokens: 2,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 1,
            cost_usd: Some(0.5),
            response_model: None,
        });
        b.emit(RouterEvent::RequestFinished {
            request_id: "x".into(),
            route: "r".into(),
            outcome: "ok".into(),
            deployment: Some("d".into()),
            provider: Some("p".into()),
            model: Some("m".into()),
            duration_ms: 20.0,
            attempts: 1,
            cost_usd: Some(0.5),
            explanation: String::new(),
        });
        let render = |t: &Telemetry| t.metrics.render(&[], &[], CacheGauge::default());
        let text = render(&a);
        assert_eq!(text, render(&b));
        assert!(text.contains(r#"polyroute_tokens_total{provider="p",model="m",direction="reasoning"} 1"#), "{text}");
        assert!(!text.contains(r#"direction="cache_read""#), "zero counts make no series: {text}");
        assert_eq!(a.metrics.route_costs(), b.metrics.route_costs());
    }
}
