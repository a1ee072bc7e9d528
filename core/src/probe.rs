//! Where one call's time goes, phase by phase: with the `probe` feature, [`mark`] records the
//! time a phase of the calling thread's request ended; [`take`] hands the marks to whoever
//! timed the call (`bench_overhead` prints the median of each phase, interleaved and after an
//! idle gap). Without the feature `mark` is an empty inline function and `take` returns
//! nothing.
//!
//! Why timestamps and not a profiler: after a 1 ms gap a call runs on caches the VM's other
//! tenants emptied, and sampling (`perf`, cpu-clock) or instruction counts (callgrind) can
//! tell neither which phase pays for it nor whether the waits on the socket are the same as a
//! raw client's. Marks are thread-local, so only a call run on one thread (a sync call under
//! `inline::block_on`) reads as one sequence.

#[cfg(feature = "probe")]
mod on {
    use std::cell::RefCell;
    use std::time::Instant;

    /// Marks kept per thread until taken: a call has ~30; a runtime worker's, which nobody
    /// takes, stop here instead of growing with every request it serves.
    const KEPT: usize = 256;
    /// Room for one call's marks, so that none allocates inside the call being timed.
    const ONE_CALL: usize = 64;

    thread_local! {
        static MARKS: RefCell<Vec<(&'static str, Instant)>> = RefCell::new(Vec::with_capacity(ONE_CALL));
    }

    /// The phase named `ended` ended now.
    #[inline]
    pub fn mark(ended: &'static str) {
        let t = Instant::now();
        MARKS.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() < KEPT {
                m.push((ended, t));
            }
        });
    }

    /// This thread's marks since the last `take`, in order; the next call's go into a new
    /// buffer with room for them.
    pub fn take() -> Vec<(&'static str, Instant)> {
        MARKS.with(|m| std::mem::replace(&mut *m.borrow_mut(), Vec::with_capacity(ONE_CALL)))
    }
}

#[cfg(feature = "probe")]
pub use on::{mark, take};

/// The phase named `ended` ended now (recorded with the `probe` feature only).
#[cfg(not(feature = "probe"))]
#[inline(always)]
pub fn mark(_ended: &'static str) {}

/// This thread's marks since the last `take`: none without the `probe` feature, so a caller
/// needs no feature switch of its own.
#[cfg(not(feature = "probe"))]
pub fn take() -> Vec<(&'static str, std::time::Instant)> {
    Vec::new()
}
