//! Where the event loop cannot drive a call itself (`driven.rs`: no `add_reader`, as on
//! Windows' proactor loop, or `POLYROUTE_ASYNC_DRIVEN=0`): a few threads that run asyncio
//! calls the way sync calls run: the router's future driven
//! by `block_on` on the thread, its requests to plain-http providers done there too
//! (`polyroute::provider::inline`), with no hand-off to the runtime's workers and back.
//!
//! Why: an async call used to cost the sync call's work plus reqwest's hops between its
//! connection task, the IO driver and the task awaiting it (issue 18). A call claims an idle
//! worker here if there is one; when all are busy (concurrency above the worker count) it
//! runs on the runtime as before, so throughput under load keeps the runtime's shape and a
//! worker never queues work. Nothing here touches Python: the outcome goes through the
//! loop's bridge like a spawned task's.
//!
//! Cancellation: the caller's canceller sets the job's flag and wakes it; the router's future
//! is dropped at once while it awaits anything but an inline request, and an inline request
//! notices within its wait slice (50 ms) and ends as `cancelled`.
//!
//! Fork: the workers belong to the process that started them; a forked child (where those
//! threads do not exist) starts its own on first use, as the runtime does.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use polyroute::provider::inline;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

type Job = Box<dyn FnOnce() + Send>;

struct Worker {
    busy: Arc<AtomicBool>,
    tx: SyncSender<Job>,
}

struct Workers {
    pid: u32,
    list: Vec<Worker>,
}

static WORKERS: Mutex<Option<Arc<Workers>>> = Mutex::new(None);

/// How many: one per core, at least two. Past that, calls go to the runtime.
fn count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2)
}

fn workers() -> Option<Arc<Workers>> {
    let pid = crate::runtime::pid();
    let mut slot = WORKERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(w) = slot.as_ref().filter(|w| w.pid == pid) {
        return Some(w.clone());
    }
    let mut list = Vec::new();
    for i in 0..count() {
        let (tx, rx) = sync_channel::<Job>(1);
        let spawned = std::thread::Builder::new().name(format!("polyroute-call-{i}")).spawn(move || {
            while let Ok(job) = rx.recv() {
                // The job resolves its future whatever happens; a panic must not end the worker.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            }
        });
        if spawned.is_err() {
            break;
        }
        list.push(Worker { busy: Arc::new(AtomicBool::new(false)), tx });
    }
    if list.is_empty() {
        return None;
    }
    let w = Arc::new(Workers { pid, list });
    *slot = Some(w.clone());
    Some(w)
}

/// Stops a job run by a worker.
pub struct Stop {
    flag: AtomicBool,
    wake: Notify,
}

impl Stop {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Run `work` on an idle worker, if one is idle; `Err(work)` (to spawn it on the runtime
/// instead) otherwise. `work` must deliver its own outcome.
pub fn try_run<F>(rt: &'static Runtime, work: F) -> Result<Arc<Stop>, F>
where
    F: Future<Output = ()> + Send + 'static,
{
    if !inline_possible() {
        return Err(work);
    }
    let Some(ws) = workers() else { return Err(work) };
    let Some(w) = ws.list.iter().find(|w| w.busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok()) else {
        return Err(work);
    };
    let stop = Arc::new(Stop { flag: AtomicBool::new(false), wake: Notify::new() });
    let (s, busy) = (stop.clone(), w.busy.clone());
    // The work waits in a slot the job takes it from: should the worker be gone, the send
    // hands the job back unrun and the work comes back out of the slot for the runtime.
    let slot = Arc::new(Mutex::new(Some(work)));
    let take = slot.clone();
    let job: Job = Box::new(move || {
        // Free again however the job ends (a panic included), or the worker is lost for good.
        struct Free(Arc<AtomicBool>);
        impl Drop for Free {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _free = Free(busy);
        if let Some(work) = take.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let flag = s.clone();
            inline::scope(
                move || flag.flag.load(Ordering::SeqCst),
                || {
                    rt.block_on(async {
                        tokio::select! {
                            () = work => {}
                            () = s.wake.notified() => {}
                        }
                    })
                },
            );
        }
    });
    if w.tx.send(job).is_err() {
        w.busy.store(false, Ordering::Release);
        return match slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(work) => Err(work),
            None => Ok(stop),
        };
    }
    Ok(stop)
}

/// Whether running inline can help at all (it is off under a proxy or by configuration,
/// and then a worker would only add a thread hop). `POLYROUTE_CALL_WORKERS=0` sends every
/// call to the runtime, where the async inline client serves it: what the benchmarks
/// compare the workers with.
fn inline_possible() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| inline::enabled_by_env() && std::env::var("POLYROUTE_CALL_WORKERS").map_or(true, |v| v.trim() != "0"))
}
