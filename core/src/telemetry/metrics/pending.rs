//! The two observations every request makes (an attempt's end, the request's end), added up
//! under one lookup each and folded into the families before anything reads them.
//!
//! Recorded straight into the families, an attempt's end was five label-set lookups and a
//! request's end three, ~650 instructions each (every label name and value hashed and
//! compared through `dyn LabelView`): 5.3 k of a routed call's ~70 k instructions under
//! callgrind (issue 18). Here each is one lookup, of the values alone; the families see
//! the sums at the next read ([`Pending::fold_into`]), which is all a scrape can observe.

use super::{inc, update, AttemptRecord, Families, Histogram, RequestRecord, Series, TOKEN_DIRECTIONS};

/// Sums by label values. The keys are label sets with empty names: the families' own map and
/// lookup, hashing and comparing only the values (the names are fixed per map).
type Sums<V> = Series<V>;

fn key<const N: usize>(values: [&str; N]) -> [(&'static str, &str); N] {
    values.map(|v| ("", v))
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
        update(&mut self.attempts, &key([a.route, a.deployment, a.provider, a.model, a.outcome]), |s: &mut AttemptSums| {
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
        update(&mut self.requests, &key([r.route, r.outcome, provider, model]), |s: &mut RequestSums| {
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
            let [route, deployment, provider, model, outcome] = [&k[0].1, &k[1].1, &k[2].1, &k[3].1, &k[4].1].map(String::as_str);
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
            let [route, outcome, provider, model] = [&k[0].1, &k[1].1, &k[2].1, &k[3].1].map(String::as_str);
            let rc = f.route_costs.entry(route.to_string()).or_default();
            rc.0 += s.requests as u64;
            rc.1 += s.successes;
            rc.2 += s.cost;
            inc(&mut f.requests, &[("route", route), ("provider", provider), ("model", model), ("outcome", outcome)], s.requests);
            update(&mut f.request_duration, &[("route", route), ("outcome", outcome)], |h: &mut Histogram| h.merge(&s.duration));
        }
    }
}
