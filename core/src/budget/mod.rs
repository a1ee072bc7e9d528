//! Budgets and client-side rate limits, held by reservation.
//!
//! Before an attempt is sent, the router reserves its worst case (estimated input tokens plus
//! the output cap, at the deployment's prices) against every budget and rate limit that
//! applies; afterwards it settles to the real usage and releases the rest. Checking before
//! and recording after (what makes other gateways overshoot under concurrency) cannot
//! overshoot here: the reservation itself is the check, atomic across all applicable
//! ceilings (see `store.rs`).
//!
//! Periods are computed from wall-clock Unix time passed in by the caller, so the period
//! arithmetic is tested with fixed timestamps.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::{BudgetSpec, Period, RateLimitSpec};
use crate::state::{shared::Held, State, StateNote};
pub use crate::state::{Charge, Counter, MemoryStore, Refusal, StateStore};
// Moved down so `error` (which carries it) and `resilience` need not import `budget`.
pub use crate::error::BudgetInfo;
use crate::time::civil;
pub use crate::time::{days_from_civil, unix_now};

/// Which request is asking: the budget scope is matched against this.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub tenant: Option<&'a str>,
    pub feature: Option<&'a str>,
    pub route: &'a str,
    pub deployment: &'a str,
}

/// Current state of one budget (instance), for the API and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub budget: String,
    /// `tenant:acme`, `route:chat`, `all`...
    pub scope: String,
    pub unit: Unit,
    pub limit: f64,
    pub spent: f64,
    pub reserved: f64,
    pub remaining: f64,
    pub resets_at: f64,
}

/// What one attempt holds until it settles. Dropping it unsettled (cancellation) releases
/// everything: an attempt that never completed is not billed.
#[derive(Debug)]
pub struct Reservation {
    state: Arc<State>,
    id: String,
    held: Held,
    /// (key, reserved amount, unit)
    items: Vec<(String, f64, Unit)>,
    settled: bool,
    /// Shadow-mode ceilings (`enforce: false`) this reservation went past.
    shadow_exceeded: Vec<String>,
    note: Option<StateNote>,
}

/// Why a reservation was not granted.
#[derive(Debug)]
pub enum Denied {
    /// A budget or rate limit would be exceeded.
    Budget(BudgetInfo),
    /// The shared store is down and `on_error: fail_closed`.
    Store(crate::error::Error),
}

use crate::error::BudgetUnit as Unit;

impl Reservation {
    /// Names of shadow-mode budgets and limits that would have refused this attempt.
    pub fn shadow_exceeded(&self) -> &[String] {
        &self.shadow_exceeded
    }

    /// What the trace should say about where this was held, if not as configured.
    pub fn note(&self) -> Option<&StateNote> {
        self.note.as_ref()
    }

    /// Record the real usage and release the rest. The returned future does the store's
    /// part; with the memory store it has already completed.
    pub fn settle(mut self, usd: f64, tokens: u64) -> Settling {
        self.settled = true;
        settle_future(self.state.clone(), std::mem::take(&mut self.id), self.held, self.actuals(usd, tokens, true))
    }

    fn actuals(&self, usd: f64, tokens: u64, happened: bool) -> Vec<(String, f64)> {
        self.items
            .iter()
            .map(|(k, _, unit)| {
                let actual = match unit {
                    Unit::Usd => usd,
                    Unit::Tokens => tokens as f64,
                    // A request that reached the provider counts against its request rate.
                    Unit::Requests => f64::from(u8::from(happened)),
                };
                (k.clone(), actual)
            })
            .collect()
    }
}

/// Starts the settle at once (so the memory store is done before this returns) and hands
/// back the rest to await or drop (a shared store's settle then finishes in the background).
fn settle_future(state: Arc<State>, id: String, held: Held, actual: Vec<(String, f64)>) -> Settling {
    if !state.is_shared() {
        // Done at once, or on the first poll: no channel to wait on (it showed in
        // request-path profiles), and with the memory store no future either.
        if !state.settle_local_now(&id, &actual) {
            crate::state::detach(async move { state.settle(&id, &actual, held).await });
        }
        return Settling(None);
    }
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    crate::state::detach(async move {
        state.settle(&id, &actual, held).await;
        let _ = tx.send(());
    });
    Settling(Some(rx))
}

/// A settle under way (done already with the memory store). Dropping it lets it finish in
/// the background.
#[derive(Debug)]
pub struct Settling(Option<futures::channel::oneshot::Receiver<()>>);

impl Settling {
    /// Whether the store has recorded it already (the memory store always has).
    pub(crate) fn is_done(&self) -> bool {
        self.0.is_none()
    }

    /// Wait until the store has recorded it (or the settle was given up).
    pub async fn wait(self) {
        if let Some(rx) = self.0 {
            let _ = rx.await;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled && !self.items.is_empty() {
            let actual = self.actuals(0.0, 0, false);
            drop(settle_future(self.state.clone(), std::mem::take(&mut self.id), self.held, actual));
        }
    }
}

/// Budgets of one policy over a shared store.
#[derive(Debug)]
pub struct Budgets {
    specs: Vec<BudgetSpec>,
    state: Arc<State>,
    /// Instances of wildcard budgets seen so far (e.g. each tenant), for `status()`.
    seen: Mutex<BTreeSet<(usize, String)>>,
    /// Highest alert threshold already reported per (budget, scope, period end).
    alerted: Mutex<std::collections::HashMap<(String, String, i64), f64>>,
    /// Counter keys of each (budget index, instance) for its current period: formatted once
    /// per period instead of twice per request (reserve and the threshold check). As many
    /// entries as `seen` has instances.
    period_keys: Mutex<crate::FastMap<(usize, String), Arc<PeriodKeys>>>,
    /// The same for plain budgets (one instance each), by index: no hashing on the request
    /// path, which reads them twice per attempt.
    plain_keys: Mutex<Vec<Option<Arc<PeriodKeys>>>>,
}

/// A budget instance's counter keys for one period (see [`Budgets::keys`]).
#[derive(Debug)]
struct PeriodKeys {
    index: i64,
    add_to: String,
    window: Vec<String>,
    resets_at: f64,
}

/// Fractions of a budget whose crossing is reported as an event.
pub const THRESHOLDS: [f64; 3] = [0.8, 0.9, 1.0];

const ROLLING_BUCKETS: i64 = 60;

fn period_secs(p: Period) -> i64 {
    match p {
        Period::Minute => 60,
        Period::Hour => 3600,
        Period::Day => 86_400,
        Period::Month => 30 * 86_400,
    }
}

/// Calendar period index containing `now` and the Unix time it ends.
pub fn calendar_period(p: Period, now: f64) -> (i64, f64) {
    let t = now.floor() as i64;
    match p {
        Period::Month => {
            let (y, m) = civil(t.div_euclid(86_400));
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (y * 12 + m, (days_from_civil(ny, nm) * 86_400) as f64)
        }
        _ => {
            let s = period_secs(p);
            let idx = t.div_euclid(s);
            (idx, ((idx + 1) * s) as f64)
        }
    }
}

/// A shadow-mode ceiling is charged against no limit (never refuses) and remembered with its
/// real limit, checked after the reservation.
fn shadowed(mut c: Charge, enforce: bool, index: usize, shadow: &mut Vec<(usize, f64)>) -> Charge {
    if !enforce {
        shadow.push((index, c.limit));
        c.limit = f64::INFINITY;
    }
    c
}

impl Budgets {
    pub fn new(specs: Vec<BudgetSpec>, state: Arc<State>) -> Self {
        let plain_keys = Mutex::new(vec![None; specs.len()]);
        Budgets {
            specs,
            state,
            seen: Mutex::new(BTreeSet::new()),
            alerted: Mutex::new(Default::default()),
            period_keys: Mutex::default(),
            plain_keys,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The budget instance (`""` for a plain budget, the tenant for `tenant: "*"`...) that
    /// applies to this scope, if the budget applies at all.
    fn instance(b: &BudgetSpec, s: &Scope) -> Option<String> {
        let mut inst = Vec::new();
        let fields: [(&Option<String>, Option<&str>, &str); 4] = [
            (&b.scope.tenant, s.tenant, "tenant"),
            (&b.scope.feature, s.feature, "feature"),
            (&b.scope.route, Some(s.route), "route"),
            (&b.scope.deployment, Some(s.deployment), "deployment"),
        ];
        for (want, have, name) in fields {
            match (want.as_deref(), have) {
                (None, _) => {}
                (Some("*"), Some(v)) => inst.push(format!("{name}:{v}")),
                (Some("*"), None) => return None,
                (Some(w), Some(v)) if w == v => {}
                _ => return None,
            }
        }
        Some(inst.join(","))
    }

    fn scope_label(b: &BudgetSpec, instance: &str) -> String {
        if !instance.is_empty() {
            return instance.to_string();
        }
        let sc = &b.scope;
        let parts: Vec<String> = [("tenant", &sc.tenant), ("feature", &sc.feature), ("route", &sc.route), ("deployment", &sc.deployment)]
            .iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}:{v}")))
            .collect();
        if parts.is_empty() {
            "all".into()
        } else {
            parts.join(",")
        }
    }

    /// Keys of the counter to add to and of the window to check, and when it resets.
    fn keys(name: &str, instance: &str, period: Period, rolling: bool, now: f64) -> (String, Vec<String>, f64) {
        let base = format!("budget|{name}|{instance}");
        if rolling {
            let bucket = period_secs(period) / ROLLING_BUCKETS;
            let idx = (now.floor() as i64).div_euclid(bucket);
            let window = (idx - ROLLING_BUCKETS + 1..=idx).map(|i| format!("{base}|r{i}")).collect();
            (format!("{base}|r{idx}"), window, ((idx + 1) * bucket) as f64)
        } else {
            let (idx, ends) = calendar_period(period, now);
            let k = format!("{base}|c{idx}");
            (k.clone(), vec![k], ends)
        }
    }

    /// Which period (calendar) or bucket (rolling) `now` falls in: the keys change with it.
    fn period_index(period: Period, rolling: bool, now: f64) -> i64 {
        if rolling {
            (now.floor() as i64).div_euclid(period_secs(period) / ROLLING_BUCKETS)
        } else {
            calendar_period(period, now).0
        }
    }

    /// `keys` of budget `i`'s `instance`, from the cache while the period lasts.
    fn cached_keys(&self, i: usize, instance: String, now: f64) -> Arc<PeriodKeys> {
        let b = &self.specs[i];
        let index = Self::period_index(b.period, b.rolling, now);
        if instance.is_empty() {
            let mut plain = self.plain_keys.lock().unwrap_or_else(|p| p.into_inner());
            return match &plain[i] {
                Some(k) if k.index == index => k.clone(),
                _ => {
                    let (add_to, window, resets_at) = Self::keys(&b.name, "", b.period, b.rolling, now);
                    plain[i].insert(Arc::new(PeriodKeys { index, add_to, window, resets_at })).clone()
                }
            };
        }
        let mut cache = self.period_keys.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (i, instance);
        if let Some(k) = cache.get(&slot).filter(|k| k.index == index) {
            return k.clone();
        }
        let (add_to, window, resets_at) = Self::keys(&b.name, &slot.1, b.period, b.rolling, now);
        let k = Arc::new(PeriodKeys { index, add_to, window, resets_at });
        cache.insert(slot, k.clone());
        k
    }

    /// When a counter written now stops being read: the end of its window (a rolling
    /// bucket is read for one more period after it closes), plus a day of slack.
    fn expires_at(period: Period, rolling: bool, resets_at: f64) -> f64 {
        let p = period_secs(period) as f64;
        resets_at + if rolling { p } else { 0.0 } + 86_400.0
    }

    /// Reserve for one attempt. `usd` is the worst-case cost, `None` when the deployment's
    /// price is unknown (spend budgets then refuse: a ceiling that cannot be checked is not
    /// held); `tokens` the worst-case tokens. Rate limits of the deployment are reserved in
    /// the same atomic step. `lease`: how long a shared store keeps the hold if this process
    /// never settles (it died).
    pub async fn reserve(
        &self,
        s: &Scope<'_>,
        usd: Option<f64>,
        tokens: u64,
        rate: Option<&RateLimitSpec>,
        now: f64,
        lease: Duration,
    ) -> Result<Reservation, Denied> {
        let mut charges = Vec::new();
        let mut meta: Vec<(String, Unit, f64)> = Vec::new(); // (name, unit, resets_at)
                                                             // (charge index, real limit) of shadow-mode ceilings, charged against no limit.
        let mut shadow: Vec<(usize, f64)> = Vec::new();
        for (i, b) in self.specs.iter().enumerate() {
            let Some(inst) = Self::instance(b, s) else { continue };
            let (unit, limit, amount) = match (b.limit_usd, b.limit_tokens) {
                (Some(l), _) => match usd {
                    // Free deployments are never blocked by spend budgets.
                    Some(0.0) => continue,
                    Some(c) => (Unit::Usd, l, c),
                    None => {
                        let (_, _, resets_at) = Self::keys(&b.name, &inst, b.period, b.rolling, now);
                        return Err(Denied::Budget(BudgetInfo {
                            budget: b.name.clone(),
                            unit: Unit::Usd,
                            limit: l,
                            remaining: f64::NAN,
                            resets_at,
                            needed: f64::NAN,
                        }));
                    }
                },
                (None, Some(l)) => (Unit::Tokens, l as f64, tokens as f64),
                (None, None) => continue,
            };
            if !inst.is_empty() {
                self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert((i, inst.clone()));
            }
            let k = self.cached_keys(i, inst, now);
            let (add_to, window, resets_at) = (k.add_to.clone(), k.window.clone(), k.resets_at);
            let expires_at = Self::expires_at(b.period, b.rolling, resets_at);
            charges.push(shadowed(Charge { add_to, window, limit, amount, expires_at }, b.enforce, charges.len(), &mut shadow));
            meta.push((b.name.clone(), unit, resets_at));
        }
        if let Some(rl) = rate {
            for (what, limit, amount, unit) in
                [("requests", rl.requests_per_minute, 1.0, Unit::Requests), ("tokens", rl.tokens_per_minute, tokens as f64, Unit::Tokens)]
            {
                if let Some(l) = limit {
                    let name = format!("rate_limit:{}:{what}", s.deployment);
                    let (add_to, window, resets_at) = Self::keys(&name, "", Period::Minute, true, now);
                    let expires_at = Self::expires_at(Period::Minute, true, resets_at);
                    charges.push(shadowed(Charge { add_to, window, limit: l as f64, amount, expires_at }, rl.enforce, charges.len(), &mut shadow));
                    meta.push((name, unit, resets_at));
                }
            }
        }
        let empty = |state: Arc<State>| Reservation {
            state,
            id: String::new(),
            held: Held::Shared,
            items: Vec::new(),
            settled: false,
            shadow_exceeded: Vec::new(),
            note: None,
        };
        if charges.is_empty() {
            return Ok(empty(self.state.clone()));
        }
        let id = crate::state::new_id();
        match self.state.reserve(&id, &charges, lease).await.map_err(Denied::Store)? {
            Ok(granted) => Ok(Reservation {
                state: self.state.clone(),
                id,
                held: granted.held,
                items: charges.iter().zip(&meta).map(|(c, m)| (c.add_to.clone(), c.amount, m.1)).collect(),
                settled: false,
                shadow_exceeded: shadow
                    .iter()
                    .filter(|(i, limit)| granted.used.get(*i).is_some_and(|u| *u > limit + 1e-9))
                    .map(|(i, _)| meta[*i].0.clone())
                    .collect(),
                note: granted.note,
            }),
            Err(r) => {
                let (name, unit, resets_at) = &meta[r.index];
                Err(Denied::Budget(BudgetInfo {
                    budget: name.clone(),
                    unit: *unit,
                    limit: charges[r.index].limit,
                    remaining: r.remaining,
                    resets_at: *resets_at,
                    needed: charges[r.index].amount,
                }))
            }
        }
    }

    /// Count one request against `per_minute` requests over the last minute of counter
    /// `name` (a gateway key's rate limit), in the same store as every budget, so gateway
    /// replicas sharing a store share the limit. One round trip; the settle that records the
    /// request goes on in the background.
    pub async fn admit(&self, name: &str, per_minute: u64, now: f64) -> Result<(), Denied> {
        let (add_to, window, resets_at) = Self::keys(name, "", Period::Minute, true, now);
        let expires_at = Self::expires_at(Period::Minute, true, resets_at);
        let c = [Charge { add_to: add_to.clone(), window, limit: per_minute as f64, amount: 1.0, expires_at }];
        let id = crate::state::new_id();
        match self.state.reserve(&id, &c, Duration::from_secs(60)).await.map_err(Denied::Store)? {
            Ok(g) => {
                drop(settle_future(self.state.clone(), id, g.held, vec![(add_to, 1.0)]));
                Ok(())
            }
            Err(r) => Err(Denied::Budget(BudgetInfo {
                budget: name.to_string(),
                unit: Unit::Requests,
                limit: per_minute as f64,
                remaining: r.remaining,
                resets_at,
                needed: 1.0,
            })),
        }
    }

    /// Every counter `status()` reads now (the fleet sync refreshes them from a shared store).
    pub fn status_keys(&self, now: f64) -> Vec<String> {
        self.instances().into_iter().flat_map(|(_, b, inst)| Self::keys(&b.name, &inst, b.period, b.rolling, now).1).collect()
    }

    /// Each budget with each of its instances seen so far (`""` for a plain budget).
    fn instances(&self) -> Vec<(usize, &BudgetSpec, String)> {
        // Locked (not copied) only when a wildcard budget needs it: every settle comes here.
        let mut seen = None;
        let mut out = Vec::with_capacity(self.specs.len());
        for (i, b) in self.specs.iter().enumerate() {
            let wildcard = [&b.scope.tenant, &b.scope.feature, &b.scope.route, &b.scope.deployment].iter().any(|v| v.as_deref() == Some("*"));
            if wildcard {
                let seen = seen.get_or_insert_with(|| self.seen.lock().unwrap_or_else(|p| p.into_inner()));
                out.extend(seen.iter().filter(|(j, _)| *j == i).map(|(_, s)| (i, b, s.clone())));
            } else {
                out.push((i, b, String::new()));
            }
        }
        out
    }

    /// Thresholds newly crossed by spend (reported once per budget, scope and period).
    /// Called after every settle: below the first threshold (the usual case) it builds no
    /// labels and does not touch the alerted set.
    pub fn crossed(&self, now: f64) -> Vec<(BudgetStatus, f64)> {
        let mut out = Vec::new();
        for (i, b, inst) in self.instances() {
            let Some((unit, limit)) = Self::limit(b).filter(|(_, l)| *l > 0.0) else { continue };
            let k = self.cached_keys(i, inst.clone(), now);
            let (window, resets_at) = (&k.window, k.resets_at);
            let (spent, reserved) = self.spent(window);
            let frac = spent / limit;
            let Some(t) = THRESHOLDS.iter().rev().find(|t| frac >= **t - 1e-12).copied() else { continue };
            let st = Self::status_of(b, &inst, unit, limit, spent, reserved, resets_at);
            let key = (st.budget.clone(), st.scope.clone(), st.resets_at as i64);
            let mut alerted = self.alerted.lock().unwrap_or_else(|p| p.into_inner());
            let prev = alerted.get(&key).copied().unwrap_or(0.0);
            if t > prev {
                alerted.insert(key, t);
                out.push((st, t));
            }
        }
        out
    }

    fn limit(b: &BudgetSpec) -> Option<(Unit, f64)> {
        match (b.limit_usd, b.limit_tokens) {
            (Some(l), _) => Some((Unit::Usd, l)),
            (None, Some(l)) => Some((Unit::Tokens, l as f64)),
            _ => None,
        }
    }

    /// Spent and reserved over a window's counters.
    fn spent(&self, window: &[String]) -> (f64, f64) {
        self.state.counters(window).iter().fold((0.0, 0.0), |a, c| (a.0 + c.spent, a.1 + c.reserved))
    }

    fn status_of(b: &BudgetSpec, inst: &str, unit: Unit, limit: f64, spent: f64, reserved: f64, resets_at: f64) -> BudgetStatus {
        BudgetStatus {
            budget: b.name.clone(),
            scope: Self::scope_label(b, inst),
            unit,
            limit,
            spent,
            reserved,
            remaining: (limit - spent - reserved).max(0.0),
            resets_at,
        }
    }

    /// Spent/remaining of every budget (and every wildcard instance seen so far): exact with
    /// the memory store, as of the last fleet sync with a shared one.
    pub fn status(&self, now: f64) -> Vec<BudgetStatus> {
        let mut out = Vec::new();
        for (_, b, inst) in self.instances() {
            let Some((unit, limit)) = Self::limit(b) else { continue };
            let (_, window, resets_at) = Self::keys(&b.name, &inst, b.period, b.rolling, now);
            let (spent, reserved) = self.spent(&window);
            out.push(Self::status_of(b, &inst, unit, limit, spent, reserved, resets_at));
        }
        out
    }
}

#[cfg(test)]
mod tests;
