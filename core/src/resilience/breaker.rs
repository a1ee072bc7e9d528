//! Per-deployment circuit breaker: closed → open → half-open → closed, plus forced-open and
//! disabled for operators. Semantics follow resilience4j's state machine:
//! - trips on failure rate over a sliding window (after `min_calls`), on a run of
//!   consecutive failures (fast path), or on the slow-call rate;
//! - `permission_denied`, `auth` and `quota_exhausted` trip at once for `ban_open_for`: a
//!   banned key or an empty wallet must stop costing a round trip per request;
//! - open time doubles per consecutive trip up to a cap, with jitter so a fleet of processes
//!   does not probe in lockstep, and never shorter than the provider's retry hint;
//! - half-open admits `half_open_probes` calls at a time (single flight by default).
//!
//! Every transition bumps a generation. A permit remembers the generation it was issued in,
//! and an outcome from an older generation is ignored: a slow request that started before a
//! trip cannot re-trip (or close) the breaker after it. Caller errors and cancellations
//! never count. A permit dropped without an outcome (the caller cancelled) frees its probe
//! slot, so half-open can never wedge.
//!
//! Time comes in as an argument; nothing here reads a clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::decide::{meaning, BreakerEffect};
use super::window::Window;
use crate::clock::Chance;
use crate::error::ErrorKind;
use crate::policy::BreakerSpec;

pub use crate::health_types::BreakerState;

/// What an attempt's outcome means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Success {
        ttft: Option<Duration>,
    },
    Failure {
        kind: ErrorKind,
        retry_after: Option<Duration>,
    },
    /// Caller errors, cancellations, hedge losers: not the provider's fault or not known.
    Ignored,
}

impl Outcome {
    pub fn from_error(kind: ErrorKind, retry_after: Option<Duration>) -> Outcome {
        match meaning(kind).breaker {
            BreakerEffect::Ignore => Outcome::Ignored,
            BreakerEffect::Failure | BreakerEffect::Ban => Outcome::Failure { kind, retry_after },
        }
    }
}

/// A state change, for telemetry and traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    /// Why, in words (e.g. "5 consecutive failures", "permission_denied").
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_for_ms: Option<u64>,
}

/// Read-only view for APIs and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    pub calls_in_window: u64,
    pub failures_in_window: u64,
    pub consecutive_failures: u32,
    /// Milliseconds until an open breaker admits a probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    pub trips: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorKind>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
    ForcedOpen,
    Disabled,
}

impl State {
    fn public(self) -> BreakerState {
        match self {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::ForcedOpen => BreakerState::ForcedOpen,
            State::Disabled => BreakerState::Disabled,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    generation: u64,
    window: Window,
    consecutive: u32,
    trips: u32,
    /// Consecutive trips caused by slow failures (timeouts, slow calls): the exponent of the
    /// open time. Reset when the breaker closes.
    slow_trips: u32,
    last_error: Option<ErrorKind>,
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerSpec,
    inner: Mutex<Inner>,
    /// Open-time jitter; the router's, so a seeded router trips reproducibly.
    chance: Arc<Chance>,
}

/// Admission to call a deployment. Report its outcome with [`Breaker::record`]; dropping it
/// unreported counts as `Ignored`.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    generation: u64,
    probe: bool,
    done: bool,
}

impl Permit {
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.release(self.generation, self.probe);
        }
    }
}

/// Why a call was refused and until when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rejected {
    pub state: BreakerState,
    /// `None` for forced-open (until an operator resets it).
    pub until: Option<Instant>,
}

impl Rejected {
    /// The skip reason shown in traces: `breaker open, retry in 4.2 s`.
    pub fn describe(&self, now: Instant) -> String {
        match self.until {
            Some(u) => format!("breaker {}, retry in {:.1} s", self.state.as_str(), u.saturating_duration_since(now).as_secs_f64()),
            None => format!("breaker {}", self.state.as_str()),
        }
    }
}

impl Breaker {
    pub fn new(cfg: BreakerSpec, now: Instant) -> Arc<Breaker> {
        Breaker::with_chance(cfg, now, Arc::new(Chance::from_entropy()))
    }

    pub fn with_chance(cfg: BreakerSpec, now: Instant, chance: Arc<Chance>) -> Arc<Breaker> {
        let window = Window::new(cfg.window.0, now);
        Arc::new(Breaker {
            cfg,
            inner: Mutex::new(Inner { state: State::Closed, generation: 0, window, consecutive: 0, trips: 0, slow_trips: 0, last_error: None }),
            chance,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state half-updated in a way that
        // matters more than refusing all traffic would, so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Would a call be admitted now? Does not take a probe slot.
    pub fn check(&self, now: Instant) -> Result<(), Rejected> {
        let g = self.lock();
        match g.state {
            State::Closed | State::Disabled => Ok(()),
            State::Open { until } if now >= until => Ok(()),
            State::Open { until } => Err(Rejected { state: BreakerState::Open, until: Some(until) }),
            State::HalfOpen { in_flight, .. } if in_flight < self.cfg.half_open_probes => Ok(()),
            State::HalfOpen { .. } => Err(Rejected { state: BreakerState::HalfOpen, until: None }),
            State::ForcedOpen => Err(Rejected { state: BreakerState::ForcedOpen, until: None }),
        }
    }

    /// Ask to make a call. An open breaker whose time is up turns half-open here and the
    /// caller gets the probe.
    pub fn acquire(self: &Arc<Self>, now: Instant) -> Result<(Permit, Option<Transition>), Rejected> {
        let mut g = self.lock();
        let mut transition = None;
        if let State::Open { until } = g.state {
            if now >= until {
                g.state = State::HalfOpen { in_flight: 0, successes: 0 };
                g.generation += 1;
                transition =
                    Some(Transition { from: BreakerState::Open, to: BreakerState::HalfOpen, reason: "open time elapsed".into(), open_for_ms: None });
            }
        }
        let probe = match &mut g.state {
            State::Closed | State::Disabled => false,
            State::HalfOpen { in_flight, .. } if *in_flight < self.cfg.half_open_probes => {
                *in_flight += 1;
                true
            }
            State::HalfOpen { .. } => return Err(Rejected { state: BreakerState::HalfOpen, until: None }),
            State::Open { until } => return Err(Rejected { state: BreakerState::Open, until: Some(*until) }),
            State::ForcedOpen => return Err(Rejected { state: BreakerState::ForcedOpen, until: None }),
        };
        let permit = Permit { breaker: self.clone(), generation: g.generation, probe, done: false };
        Ok((permit, transition))
    }

    fn release(&self, generation: u64, probe: bool) {
        let mut g = self.lock();
        if probe && g.generation == generation {
            if let State::HalfOpen { in_flight, .. } = &mut g.state {
                *in_flight = in_flight.saturating_sub(1);
            }
        }
    }

    /// Report how the call went. Returns the transition it caused, if any.
    pub fn record(&self, mut permit: Permit, outcome: Outcome, now: Instant) -> Option<Transition> {
        permit.done = true;
        let mut g = self.lock();
        if g.generation != permit.generation {
            return None; // from before a transition: must not re-trip or close
        }
        let cfg = &self.cfg;
        match (g.state, outcome) {
            (State::Disabled, _) | (State::ForcedOpen, _) | (State::Open { .. }, _) => None,
            (State::HalfOpen { .. }, Outcome::Ignored) => {
                if let State::HalfOpen { in_flight, .. } = &mut g.state {
                    *in_flight = in_flight.saturating_sub(1);
                }
                None
            }
            (State::HalfOpen { in_flight, successes }, Outcome::Success { ttft }) => {
                if is_slow(cfg, ttft) {
                    return Some(self.trip(&mut g, now, "slow probe".into(), None, None));
                }
                let successes = successes + 1;
                if successes >= cfg.half_open_probes {
                    close(&mut g);
                    Some(Transition { from: BreakerState::HalfOpen, to: BreakerState::Closed, reason: "probe succeeded".into(), open_for_ms: None })
                } else {
                    g.state = State::HalfOpen { in_flight: in_flight.saturating_sub(1), successes };
                    None
                }
            }
            (State::HalfOpen { .. }, Outcome::Failure { kind, retry_after }) => {
                g.last_error = Some(kind);
                Some(self.trip(&mut g, now, format!("probe failed with {kind}"), Some(kind), retry_after))
            }
            (State::Closed, Outcome::Ignored) => None,
            (State::Closed, Outcome::Success { ttft }) => {
                let slow = is_slow(cfg, ttft);
                g.window.add(now, false, slow);
                g.consecutive = 0;
                let c = g.window.counts(now);
                if slow && c.calls >= u64::from(cfg.min_calls) && c.slow as f64 / c.calls as f64 >= cfg.slow_call_rate {
                    return Some(self.trip(&mut g, now, format!("{} of {} calls slow", c.slow, c.calls), None, None));
                }
                None
            }
            (State::Closed, Outcome::Failure { kind, retry_after }) => {
                g.window.add(now, true, false);
                g.consecutive += 1;
                g.last_error = Some(kind);
                if meaning(kind).breaker == BreakerEffect::Ban {
                    return Some(self.trip(&mut g, now, kind.to_string(), Some(kind), retry_after));
                }
                if g.consecutive >= cfg.consecutive_failures {
                    let n = g.consecutive;
                    return Some(self.trip(&mut g, now, format!("{n} consecutive failures"), Some(kind), retry_after));
                }
                let c = g.window.counts(now);
                if c.calls >= u64::from(cfg.min_calls) && c.failures as f64 / c.calls as f64 >= cfg.failure_rate {
                    return Some(self.trip(&mut g, now, format!("{} of {} calls failed", c.failures, c.calls), Some(kind), retry_after));
                }
                None
            }
        }
    }

    /// Open the breaker. How long depends on how the deployment fails (the recovery rule):
    /// - a ban (`permission_denied`, `auth`, `quota_exhausted`): `ban_open_for`;
    /// - a slow failure (a timeout, or slow calls): `open_for` doubling per consecutive slow
    ///   trip up to `max_open_for`, because each probe of a silent deployment costs a whole
    ///   timeout;
    /// - a fast failure (5xx, 429, refused connection...): `open_for` again, never doubled,
    ///   because a probe costs one quick error and a recovered deployment should get its
    ///   traffic back within `open_for` whatever the outage length.
    ///
    /// Jitter only shortens (down to 90 %), so many processes do not probe together and the
    /// bound "back within `open_for`" still holds. A retry hint longer than that wins.
    fn trip(&self, g: &mut Inner, now: Instant, reason: String, kind: Option<ErrorKind>, retry_after: Option<Duration>) -> Transition {
        let cfg = &self.cfg;
        let from = g.state.public();
        g.trips = g.trips.saturating_add(1);
        let slow = kind.is_none_or(|k| k == ErrorKind::Timeout);
        let (open_for, rule) = if kind.is_some_and(|k| meaning(k).breaker == BreakerEffect::Ban) {
            (cfg.ban_open_for.0, "ban")
        } else if slow {
            g.slow_trips = g.slow_trips.saturating_add(1);
            let exp = cfg.open_for.0.saturating_mul(1u32 << (g.slow_trips - 1).min(16)).min(cfg.max_open_for.0);
            (exp.mul_f64(0.9 + self.chance.unit() * 0.1), "slow failure, doubling")
        } else {
            (cfg.open_for.0.min(cfg.max_open_for.0).mul_f64(0.9 + self.chance.unit() * 0.1), "fast failure")
        };
        let reason = format!("{reason} ({rule}: next probe in {:.1} s)", open_for.max(retry_after.unwrap_or(Duration::ZERO)).as_secs_f64());
        let open_for = open_for.max(retry_after.unwrap_or(Duration::ZERO));
        g.state = State::Open { until: now + open_for };
        g.generation += 1;
        g.consecutive = 0;
        g.window.clear();
        Transition { from, to: BreakerState::Open, reason, open_for_ms: Some(ceil_ms(open_for)) }
    }

    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let mut g = self.lock();
        let c = g.window.counts(now);
        let state = match g.state {
            // An open breaker whose time is up is, for anyone looking, ready to probe.
            State::Open { until } if now >= until => BreakerState::HalfOpen,
            s => s.public(),
        };
        BreakerSnapshot {
            state,
            calls_in_window: c.calls,
            failures_in_window: c.failures,
            consecutive_failures: g.consecutive,
            retry_in_ms: match g.state {
                State::Open { until } => Some(ceil_ms(until.saturating_duration_since(now))),
                _ => None,
            },
            trips: g.trips,
            last_error: g.last_error,
        }
    }

    /// Operator controls. Each is a transition (bumps the generation).
    pub fn set(&self, to: BreakerState, now: Instant) -> Option<Transition> {
        let mut g = self.lock();
        let from = g.state.public();
        g.state = match to {
            BreakerState::Closed => State::Closed,
            BreakerState::Disabled => State::Disabled,
            BreakerState::ForcedOpen => State::ForcedOpen,
            BreakerState::Open => State::Open { until: now + self.cfg.open_for.0 },
            BreakerState::HalfOpen => State::HalfOpen { in_flight: 0, successes: 0 },
        };
        g.generation += 1;
        g.consecutive = 0;
        g.window.clear();
        if to == BreakerState::Closed {
            g.trips = 0;
            g.slow_trips = 0;
            g.last_error = None;
        }
        (from != to).then(|| Transition { from, to, reason: "set by operator".into(), open_for_ms: None })
    }

    /// Another process of the fleet tripped this deployment: open here too for `open_for`,
    /// unless this process already holds it open about as long, is probing it, or an
    /// operator pinned it.
    pub fn adopt_open(&self, now: Instant, open_for: Duration, reason: &str) -> Option<Transition> {
        let mut g = self.lock();
        let until = now + open_for;
        match g.state {
            State::ForcedOpen | State::Disabled => return None,
            State::HalfOpen { in_flight, .. } if in_flight > 0 => return None,
            // Within half a second is the same trip (ours, or one we adopted) seen again.
            State::Open { until: mine } if mine + Duration::from_millis(500) >= until => return None,
            _ => {}
        }
        let from = g.state.public();
        g.state = State::Open { until };
        g.generation += 1;
        g.consecutive = 0;
        g.window.clear();
        Some(Transition { from, to: BreakerState::Open, reason: format!("open in the fleet: {reason}"), open_for_ms: Some(ceil_ms(open_for)) })
    }

    /// Another process's probe succeeded: close here too, unless this process is probing
    /// it itself or an operator pinned it.
    pub fn adopt_closed(&self) -> Option<Transition> {
        let mut g = self.lock();
        match g.state {
            State::Open { .. } | State::HalfOpen { in_flight: 0, .. } => {}
            _ => return None,
        }
        let from = g.state.public();
        close(&mut g);
        Some(Transition {
            from,
            to: BreakerState::Closed,
            reason: "closed in the fleet: another process's probe succeeded".into(),
            open_for_ms: None,
        })
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        self.snapshot(now).state
    }
}

/// Closed after a successful probe (here or, adopted, elsewhere in the fleet): a new
/// generation and a clean slate, so the next trip starts from `open_for` again.
fn close(g: &mut Inner) {
    g.state = State::Closed;
    g.generation += 1;
    g.trips = 0;
    g.slow_trips = 0;
    g.consecutive = 0;
    g.window.clear();
}

/// Rounded up, so that waiting the reported time always reaches the deadline.
fn ceil_ms(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000) as u64
}

fn is_slow(cfg: &BreakerSpec, ttft: Option<Duration>) -> bool {
    matches!((cfg.slow_call, ttft), (Some(limit), Some(t)) if t >= limit.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Dur;

    fn cfg() -> BreakerSpec {
        BreakerSpec { min_calls: 4, consecutive_failures: 3, open_for: Dur::secs(5), max_open_for: Dur::secs(60), ..Default::default() }
    }
    fn fail(k: ErrorKind) -> Outcome {
        Outcome::Failure { kind: k, retry_after: None }
    }
    const OK: Outcome = Outcome::Success { ttft: None };

    #[test]
    fn consecutive_failures_trip_then_probe_closes() {
        let t0 = Instant::now();
        let b = Breaker::new(cfg(), t0);
        for i in 0..2 {
            let (p, _) = b.acquire(t0).unwrap();
            assert_eq!(b.record(p, fail(ErrorKind::ServerError), t0), None, "call {i}");
        }
        let (p, _) = b.acquire(t0).unwrap();
        let tr = b.record(p, fail(ErrorKind::ServerError), t0).unwrap();
        assert_eq!((tr.from, tr.to), (BreakerState::Closed, BreakerState::Open));
        let open_ms = tr.open_for_ms.unwrap();
        assert!((4500..=5500).contains(&open_ms), "{open_ms}");
        assert!(b.acquire(t0 + Duration::from_secs(4)).is_err());
        let later = t0 + Duration::from_millis(open_ms);
        let (probe, tr) = b.acquire(later).unwrap();
        assert!(probe.is_probe());
        assert_eq!(tr.unwrap().to, BreakerState::HalfOpen);
        // single flight: a second caller is refused while the probe is out
        assert_eq!(b.acquire(later).unwrap_err().state, BreakerState::HalfOpen);
        let tr = b.record(probe, OK, later).unwrap();
        assert_eq!(tr.to, BreakerState::Closed);
        assert!(b.acquire(later).is_ok());
    }

    #[test]
    fn fast_probe_failures_reopen_for_open_for_whatever_the_outage_length() {
        let t0 = Instant::now();
        let b = Breaker::new(cfg(), t0);
        let mut now = t0;
        for _ in 0..3 {
            let (p, _) = b.acquire(now).unwrap();
            b.record(p, fail(ErrorKind::ServerError), now);
        }
        // A long outage: twenty failed probes, each reopening for open_for (5 s), never longer.
        for _ in 0..20 {
            let wait = b.snapshot(now).retry_in_ms.unwrap();
            assert!((4_500..=5_000).contains(&wait), "{wait}");
            now += Duration::from_millis(wait);
            let (p, _) = b.acquire(now).unwrap();
            let tr = b.record(p, fail(ErrorKind::ServerError), now).unwrap();
            assert!(tr.reason.contains("fast failure: next probe in"), "{}", tr.reason);
        }
        // Recovery: the next probe (within open_for) closes it.
        now += Duration::from_millis(b.snapshot(now).retry_in_ms.unwrap());
        let (p, _) = b.acquire(now).unwrap();
        assert_eq!(b.record(p, OK, now).map(|t| t.to), Some(BreakerState::Closed));
    }

    #[test]
    fn slow_probe_failures_double_open_time_with_cap_and_hint_is_minimum() {
        let t0 = Instant::now();
        let b = Breaker::new(cfg(), t0);
        let mut now = t0;
        let mut opens = Vec::new();
        for _ in 0..3 {
            let (p, _) = b.acquire(now).unwrap();
            b.record(p, fail(ErrorKind::Timeout), now);
        }
        for _ in 0..6 {
            let snap = b.snapshot(now);
            let wait = snap.retry_in_ms.unwrap();
            opens.push(wait);
            now += Duration::from_millis(wait);
            let (p, _) = b.acquire(now).unwrap();
            b.record(p, fail(ErrorKind::Timeout), now);
        }
        // 5s, 10s, 20s, 40s, 60s (cap), 60s — each shortened by at most 10 % jitter
        let expect = [5_000u64, 10_000, 20_000, 40_000, 60_000, 60_000];
        for (got, want) in opens.iter().zip(expect) {
            assert!(*got as f64 >= want as f64 * 0.9 - 1.0 && *got <= want, "{opens:?}");
        }
        // A retry hint longer than the computed open time wins.
        let b = Breaker::new(cfg(), t0);
        let (p, _) = b.acquire(t0).unwrap();
        b.record(p, Outcome::Failure { kind: ErrorKind::RateLimited, retry_after: None }, t0);
        let (p, _) = b.acquire(t0).unwrap();
        b.record(p, Outcome::Failure { kind: ErrorKind::RateLimited, retry_after: None }, t0);
        let (p, _) = b.acquire(t0).unwrap();
        let tr = b.record(p, Outcome::Failure { kind: ErrorKind::RateLimited, retry_after: Some(Duration::from_secs(30)) }, t0).unwrap();
        assert_eq!(tr.open_for_ms, Some(30_000));
    }

    #[test]
    fn failure_rate_needs_min_calls() {
        let t0 = Instant::now();
        let b = Breaker::new(BreakerSpec { consecutive_failures: 100, ..cfg() }, t0);
        let seq = [OK, fail(ErrorKind::ServerError), OK, fail(ErrorKind::ServerError)];
        let mut last = None;
        for o in seq {
            let (p, _) = b.acquire(t0).unwrap();
            last = b.record(p, o, t0);
        }
        // 2 of 4 failed = 50 % at min_calls 4 → trips on the 4th call
        assert_eq!(last.unwrap().to, BreakerState::Open);
        // Outside the window, old failures no longer count.
        let b = Breaker::new(BreakerSpec { consecutive_failures: 100, ..cfg() }, t0);
        for o in [fail(ErrorKind::ServerError), fail(ErrorKind::ServerError)] {
            let (p, _) = b.acquire(t0).unwrap();
            b.record(p, o, t0);
        }
        let later = t0 + Duration::from_secs(31);
        for o in [OK, fail(ErrorKind::ServerError), OK] {
            let (p, _) = b.acquire(later).unwrap();
            assert_eq!(b.record(p, o, later), None);
        }
    }

    #[test]
    fn caller_errors_and_cancellations_never_count() {
        let t0 = Instant::now();
        let b = Breaker::new(cfg(), t0);
        for k in [ErrorKind::InvalidRequest, ErrorKind::NotFound, ErrorKind::Cancelled, ErrorKind::ContextLengthExceeded] {
            for _ in 0..10 {
                let (p, _) = b.acquire(t0).unwrap();
                assert_eq!(b.record(p, Outcome::from_error(k, None), t0), None);
            }
        }
        assert_eq!(b.snapshot(t0).calls_in_window, 0);
        assert_eq!(b.state(t0), BreakerState::Closed);
    }

    #[test]
    fn ban_kinds_open_for_the_long_time() {
        let t0 = Instant::now();
        for k in [ErrorKind::PermissionDenied, ErrorKind::Auth, ErrorKind::QuotaExhausted] {
            let b = Breaker::new(cfg(), t0);
            let (p, _) = b.acquire(t0).unwrap();
            let tr = b.record(p, fail(k), t0).unwrap();
            assert_eq!(tr.open_for_ms, Some(3_600_000), "{k}");
            assert!(b.acquire(t0 + Duration::from_secs(3599)).is_err());
        }
    }

    #[test]
    fn late_outcomes_from_before_a_trip_do_not_retrip_or_close() {
        let t0 = Instant::now();
        let b = Breaker::new(cfg(), t0);
        // Ten calls start while closed.
        let mut permits: Vec<_> = (0..10).map(|_| b.acquire(t0).unwrap().0).collect();
        let mut transitions = 0;
        // Three fail: one trip.
        for _ in 0..3 {
            if b.record(permits.remove(0), fail(ErrorKind::ServerError), t0).is_some() {
                transitions += 1;
            }
        }
        assert_eq!(transitions, 1);
        // The other seven finish late, failing or succeeding: no further transition.
        for (i, p) in permits.into_iter().enumerate() {
            let o = if i % 2 == 0 { fail(ErrorKind::ServerError) } else { OK };
            assert_eq!(b.record(p, o, t0 + Duration::from_millis(10)), None);
        }
        assert_eq!(b.snapshot(t0).trips, 1);
        assert_eq!(b.state(t0 + Duration::from_millis(10)), BreakerState::Open);
    }

    #[test]
    fn dropped_probe_frees_the_slot() {
        let t0 = Instant::now();
        let b = Breaker::new(cfg(), t0);
        for _ in 0..3 {
            let (p, _) = b.acquire(t0).unwrap();
            b.record(p, fail(ErrorKind::Timeout), t0);
        }
        let later = t0 + Duration::from_secs(10);
        let (probe, _) = b.acquire(later).unwrap();
        assert!(b.acquire(later).is_err());
        drop(probe); // caller cancelled
        let (probe2, _) = b.acquire(later).unwrap();
        assert!(probe2.is_probe());
    }

    #[test]
    fn concurrent_failures_trip_exactly_once() {
        let t0 = Instant::now();
        let b = Breaker::new(BreakerSpec { consecutive_failures: 3, ..cfg() }, t0);
        let permits: Vec<_> = (0..64).map(|_| b.acquire(t0).unwrap().0).collect();
        let trips = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for p in permits {
                let b = &b;
                let trips = &trips;
                s.spawn(move || {
                    if b.record(p, fail(ErrorKind::ServerError), t0).is_some() {
                        trips.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(trips.into_inner(), 1);
    }

    #[test]
    fn operator_controls() {
        let t0 = Instant::now();
        let b = Breaker::new(cfg(), t0);
        b.set(BreakerState::ForcedOpen, t0);
        assert_eq!(b.acquire(t0 + Duration::from_secs(99_999)).unwrap_err().state, BreakerState::ForcedOpen);
        b.set(BreakerState::Disabled, t0);
        for _ in 0..20 {
            let (p, _) = b.acquire(t0).unwrap();
            assert_eq!(b.record(p, fail(ErrorKind::ServerError), t0), None);
        }
        b.set(BreakerState::Closed, t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
    }

    #[test]
    fn slow_calls_trip_when_configured() {
        let t0 = Instant::now();
        let b = Breaker::new(BreakerSpec { slow_call: Some(Dur::secs(2)), slow_call_rate: 0.5, ..cfg() }, t0);
        let mut last = None;
        for _ in 0..4 {
            let (p, _) = b.acquire(t0).unwrap();
            last = b.record(p, Outcome::Success { ttft: Some(Duration::from_secs(3)) }, t0);
        }
        assert_eq!(last.unwrap().to, BreakerState::Open);
    }
}
