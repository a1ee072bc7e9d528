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
use std::sync::mpsc::{sync_channel, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use event::RouterEvent;
pub use metrics::{AttemptRecord, BudgetGauge, CacheGauge, DeploymentGauge, Metrics, RequestRecord};

/// A host callback. Must be cheap to call from any thread.
pub type Callback = Arc<dyn Fn(&RouterEvent) + Send + Sync>;

/// Batches of events (one to a few each) a subscriber may lag behind before new ones are
/// dropped for it.
const QUEUE: usize = 4096;
/// Pause between delivery batches (see the subscriber loop); a flush cuts it short.
const DELIVERY_NAP: Duration = Duration::from_millis(2);
/// The longest nap once events stop (doubling from `DELIVERY_NAP`); then the thread blocks
/// until the next event wakes it.
const QUIET_NAP: Duration = Duration::from_millis(16);
/// How long [`Telemetry::flush`] waits at most.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

struct Subscriber {
    id: u64,
    /// Batches (a request's events that happen together go in one send), shared rather than
    /// cloned per subscriber: a deep copy of every event's strings showed in request-path
    /// profiles.
    tx: SyncSender<Arc<Vec<RouterEvent>>>,
    /// Events queued for this subscriber (dropped ones are not counted). Only written under
    /// the `subs` lock, so a flush that reads it there sees every earlier `emit`.
    queued: u64,
    progress: Arc<Progress>,
    /// The delivery thread, unparked by a flush so that it does not wait out its nap.
    thread: std::thread::Thread,
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
    /// It goes out after the events in `held` (see [`Telemetry::publish_with`]), in one batch.
    pub fn emit_for_callbacks(&self, held: &mut Vec<RouterEvent>, make: impl FnOnce() -> RouterEvent) {
        if self.listening() {
            self.publish_with(held, Some(make()));
        }
    }

    fn publish(&self, ev: RouterEvent) {
        self.publish_batch(1, || Arc::new(vec![ev]));
    }

    /// Publish a request's events that happen together (`held`, then `ev`) as one batch: one
    /// lock, one allocation and one channel send for all of them. Delivery cost 2.8–4.6 CPU-µs
    /// of a routed request's ~37 at concurrency 64 with a callback subscribed; two sends per
    /// request instead of four saved about 1 of them (issue 18). `held` is left empty; its
    /// buffer goes with the batch (an `Arc<[_]>` collected from it cost a second buffer and a
    /// copy of every event: 1.6 k instructions per batch under callgrind).
    pub(crate) fn publish_with(&self, held: &mut Vec<RouterEvent>, ev: Option<RouterEvent>) {
        let n = held.len() + usize::from(ev.is_some());
        if n > 0 {
            self.publish_batch(n, || {
                let mut batch = std::mem::take(held);
                batch.extend(ev);
                Arc::new(batch)
            });
        }
    }

    fn publish_batch(&self, n: usize, make: impl FnOnce() -> Arc<Vec<RouterEvent>>) {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.is_empty() {
            return;
        }
        let batch = make();
        let before = subs.len();
        subs.retain_mut(|s| match s.tx.try_send(batch.clone()) {
            Ok(()) => {
                s.queued += n as u64;
                true
            }
            Err(TrySendError::Full(_)) => {
                self.metrics.dropped_events(n);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        // Written only when it changes: every request reads it, from every worker, and a
        // store (even of the same value) takes the cache line away from them.
        if subs.len() != before {
            self.listeners.store(subs.len(), Ordering::Relaxed);
        }
    }

    /// Register a callback; returns an id for [`Telemetry::unsubscribe`]. The callback runs
    /// on a dedicated thread, in event order.
    pub fn subscribe(&self, cb: Callback) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = sync_channel::<Arc<Vec<RouterEvent>>>(QUEUE);
        let progress = Arc::new(Progress::default());
        let seen = progress.clone();
        let thread = std::thread::Builder::new()
            .name(format!("polyroute-events-{id}"))
            .spawn(move || {
                DELIVERING_FOR.with(|c| c.set(id));
                // A failing callback must not take the others, or the process, with it.
                // Returns how many events the batch held, for the flush's count.
                let deliver = |batch: Arc<Vec<RouterEvent>>| {
                    for ev in batch.iter() {
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| cb(ev)));
                    }
                    batch.len() as u64
                };
                while let Ok(batch) = rx.recv() {
                    let mut n = deliver(batch);
                    // Drain what queued meanwhile, then nap: under load the router's sends
                    // then find no parked receiver to wake, which costs far more per event
                    // than the callback itself. Longer naps saved ~1 CPU-µs per routed
                    // request at concurrency 64 (20 ms) but made a routed call ~10 µs slower
                    // back to back (10 ms, three A/B runs, issue 18), so 2 ms while events
                    // keep coming. A quiet nap doubles, up to QUIET_NAP, before the thread
                    // blocks: a request after it blocked pays the wake-up (a futex wake and,
                    // on a VM, an interrupt to the idle core: +8 to +12 µs p50 on a sync call
                    // made every few ms, issue 18 seventeenth round), so a service calling
                    // every few ms should not find it blocked. Callbacks lag by at most 2 ms
                    // under traffic and QUIET_NAP after a quiet spell; a flush cuts any nap
                    // short.
                    let mut nap = DELIVERY_NAP;
                    loop {
                        while let Ok(batch) = rx.try_recv() {
                            n += deliver(batch);
                        }
                        // Progress is published per batch, before the nap, so a flush returns
                        // as soon as the batch is out.
                        if n > 0 {
                            *seen.delivered.lock().unwrap_or_else(|p| p.into_inner()) += n;
                            seen.changed.notify_all();
                            n = 0;
                        }
                        std::thread::park_timeout(nap);
                        match rx.try_recv() {
                            Ok(batch) => {
                                n += deliver(batch);
                                nap = DELIVERY_NAP;
                            }
                            Err(TryRecvError::Empty) if nap < QUIET_NAP => nap *= 2,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return,
                        }
                    }
                }
            })
            .expect("spawn event thread")
            .thread()
            .clone();
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.push(Subscriber { id, tx, queued: 0, progress, thread });
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
            let waited = subs.iter().filter(|s| s.id != own);
            // Cut the delivery threads' naps short: they have something to deliver.
            waited.clone().for_each(|s| s.thread.unpark());
            waited.map(|s| (s.queued, s.progress.clone())).collect()
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
    fn a_batch_arrives_in_order_and_a_panic_on_one_event_spares_the_rest() {
        let t = Telemetry::default();
        let seen: Arc<Mutex<Vec<bool>>> = Arc::default();
        let s2 = seen.clone();
        t.subscribe(Arc::new(move |e| {
            let RouterEvent::PolicyReloaded { ok, .. } = e else { panic!("unexpected {e:?}") };
            s2.lock().unwrap().push(*ok);
            assert!(*ok, "a callback that throws on the batch's first event");
        }));
        let reloaded = |ok| RouterEvent::PolicyReloaded { ok, error: None };
        let mut held = vec![reloaded(false), reloaded(true)];
        t.publish_with(&mut held, Some(reloaded(true)));
        assert!(held.is_empty());
        t.publish_with(&mut held, None);
        // The flush counts events, not batches: it returns once all three are delivered.
        assert!(t.flush());
        assert_eq!(*seen.lock().unwrap(), [false, true, true]);
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
        t.emit_for_callbacks(&mut Vec::new(), make);
        assert_eq!(built.load(Ordering::SeqCst), 0, "nobody listens: not built");
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let id = t.subscribe(Arc::new(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(t.listening());
        t.emit_for_callbacks(&mut Vec::new(), make);
        assert!(t.flush());
        assert_eq!((built.load(Ordering::SeqCst), seen.load(Ordering::SeqCst)), (1, 1));
        assert!(t.unsubscribe(id));
        assert!(!t.listening());
        t.emit_for_callbacks(&mut Vec::new(), make);
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
