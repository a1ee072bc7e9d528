//! The two observations every request makes (an attempt's end, the request's end), added up
//! under one lookup each and folded into the families before anything reads them.
//!
//! Recorded straight into the families, an attempt's end was five label-set lookups and a
//! request's end three, ~650 instructions each (every label name and value hashed and
//! compared through `dyn LabelView`): 5.3 k of a routed call's ~70 k instructions under
//! callgrind (issue 18). Here each is one lookup of the label values alone; the families see
//! the sums at the next read ([`Pending::fold_into`]), which is all a scrape can observe.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::{inc, update, AttemptRecord, Families, Histogram, LabelHasher, RequestRecord, TOKEN_DIRECTIONS};

/// Label values, owned (the map's keys) or borrowed (a lookup), hashed and compared as their
/// sequence of `str`s, so a lookup of an existing key builds no `String`.
trait Values {
    fn len(&self) -> usize;
    fn at(&self, i: usize) -> &str;
}

impl Values for Vec<String> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn at(&self, i: usize) -> &str {
        &self[i]
    }
}

struct Borrowed<'a, 'b>(&'a [&'b str]);

impl Values for Borrowed<'_, '_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn at(&self, i: usize) -> &str {
        self.0[i]
    }
}

// `Vec<String>`'s own hash (length, then each `str`), so `Borrow` below is sound.
impl Hash for dyn Values + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for i in 0..self.len() {
            self.at(i).hash(state);
        }
    }
}

impl PartialEq for dyn Values + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.at(i) == other.at(i))
    }
}

impl Eq for dyn Values + '_ {}

impl<'a> std::borrow::Borrow<dyn Values + 'a> for Vec<String> {
    fn borrow(&self) -> &(dyn Values + 'a) {
        self
    }
}

type Sums<V> = HashMap<Vec<String>, V, BuildHasherDefault<LabelHasher>>;

/// Apply `f` to the sums under `key`, created on first use (one lookup when they exist).
fn with<V: Default>(m: &mut Sums<V>, key: &[&str], f: impl FnOnce(&mut V)) {
    let b = Borrowed(key);
    if let Some(v) = m.get_mut(&b as &dyn Values) {
        f(v);
        return;
    }
    let mut v = V::default();
    f(&mut v);
    m.insert(key.iter().map(|s| s.to_string()).collect(), v);
}

/// What attempts with the same route, deployment, provider, model and outcome added since
/// the last fold.
#[derive(Debug, Default)]
struct AttemptSums {
    attempts: f64,
    ttft: Histogram,
    tokens: [u64; 5],
    /// `Some` once an attempt had a known cost (even 0: the series then exists).
    cost: Option<f64>,
}

/// What requests with the same route, outcome, provider and model added since the last fold.
#[derive(Debug, Default)]
struct RequestSums {
    requests: f64,
    successes: u64,
    cost: f64,
    duration: Histogram,
}

#[derive(Debug, Default)]
pub(super) struct Pending {
    /// By route, deployment, provider, model, outcome.
    attempts: Sums<AttemptSums>,
    /// By route, outcome, provider, model.
    requests: Sums<RequestSums>,
    /// Something was added since the last fold.
    dirty: bool,
}

impl Pending {
    pub(super) fn attempt(&mut self, a: &AttemptRecord) {
        self.dirty = true;
        with(&mut self.attempts, &[a.route, a.deployment, a.provider, a.model, a.outcome], |s: &mut AttemptSums| {
            s.attempts += 1.0;
            if let Some(t) = a.ttft_ms {
                s.ttft.observe(t / 1000.0);
            }
            for (sum, n) in s.tokens.iter_mut().zip(a.tokens) {
                *sum += n;
            }
            if let Some(c) = a.cost_usd {
                *s.cost.get_or_insert(0.0) += c;
            }
        });
    }

    pub(super) fn request(&mut self, r: &RequestRecord) {
        self.dirty = true;
        let (provider, model) = (r.provider.unwrap_or_default(), r.model.unwrap_or_default());
        with(&mut self.requests, &[r.route, r.outcome, provider, model], |s: &mut RequestSums| {
            s.requests += 1.0;
            s.successes += u64::from(r.outcome == "ok" || r.outcome == "degraded");
            s.cost += r.cost_usd.unwrap_or(0.0);
            s.duration.observe(r.duration_ms / 1000.0);
        });
    }

    /// Add what accumulated to the families and start again from zero (the keys stay, so
    /// the next observation of a known series allocates nothing).
    pub(super) fn fold_into(&mut self, f: &mut Families) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        for (k, s) in self.attempts.iter_mut().filter(|(_, s)| s.attempts > 0.0) {
            let s = std::mem::take(s);
            let [route, deployment, provider, model, outcome] = [&k[0], &k[1], &k[2], &k[3], &k[4]].map(String::as_str);
            inc(&mut f.attempts, &[("deployment", deployment), ("provider", provider), ("model", model), ("outcome", outcome)], s.attempts);
            if s.ttft.count > 0 {
                update(&mut f.ttft, &[("provider", provider), ("model", model)], |h: &mut Histogram| h.merge(&s.ttft));
            }
            for (dir, n) in TOKEN_DIRECTIONS.into_iter().zip(s.tokens) {
                if n > 0 {
                    inc(&mut f.tokens, &[("provider", provider), ("model", model), ("direction", dir)], n as f64);
                }
            }
            if let Some(c) = s.cost {
                inc(&mut f.cost, &[("route", route), ("provider", provider), ("model", model)], c);
            }
        }
        for (k, s) in self.requests.iter_mut().filter(|(_, s)| s.requests > 0.0) {
            let s = std::mem::take(s);
            let [route, outcome, provider, model] = [&k[0], &k[1], &k[2], &k[3]].map(String::as_str);
            let rc = f.route_costs.entry(route.to_string()).or_default();
            rc.0 += s.requests as u64;
            rc.1 += s.successes;
            rc.2 += s.cost;
            inc(&mut f.requests, &[("route", route), ("provider", provider), ("model", model), ("outcome", outcome)], s.requests);
            update(&mut f.request_duration, &[("route", route), ("outcome", outcome)], |h: &mut Histogram| h.merge(&s.duration));
        }
    }
}
