//! What the soak measured, the invariants it judges, and how it prints them.
//!
//! Kept apart from the driver so the judgement (above all "is memory flat?") is a pure
//! function with its own tests, not something buried in the run loop.

use std::collections::BTreeMap;

use serde::Serialize;

/// One resident-memory sample.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemSample {
    pub t_s: f64,
    /// Requests finished when the sample was taken.
    pub done: u64,
    pub rss_kib: u64,
}

/// The memory verdict. "Flat" means: after warm-up (the larger of the first quarter of the
/// requests and the first 2,000, but at most half the run: connection pools, allocator
/// arenas and latency windows fill up meanwhile), the median RSS of the
/// last third of the samples exceeds the median of the first third by no more than
/// `max(16 MiB, 10 %)`. Medians, not extremes, so one burst of in-flight requests does not
/// decide; thirds of the run, so a leak of even a few bytes per request shows over 20,000
/// requests (20,000 × 1 KiB = 20 MiB).
#[derive(Debug, Clone, Serialize)]
pub struct MemVerdict {
    pub samples_after_warmup: usize,
    pub first_third_median_kib: u64,
    pub last_third_median_kib: u64,
    pub growth_kib: i64,
    pub allowed_kib: u64,
    pub peak_kib: u64,
    pub flat: bool,
}

pub fn judge_memory(samples: &[MemSample], total_requests: u64) -> MemVerdict {
    let warm = (total_requests / 4).max(2_000).min(total_requests / 2);
    let after: Vec<u64> = samples.iter().filter(|s| s.done >= warm).map(|s| s.rss_kib).collect();
    let peak_kib = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let third = after.len() / 3;
    if third == 0 {
        // Too short a run to judge growth (fewer than 3 samples after warm-up): say so
        // rather than pass silently.
        return MemVerdict {
            samples_after_warmup: after.len(),
            first_third_median_kib: 0,
            last_third_median_kib: 0,
            growth_kib: 0,
            allowed_kib: 0,
            peak_kib,
            flat: false,
        };
    }
    let first = median(&after[..third]);
    let last = median(&after[after.len() - third..]);
    let allowed = (16 * 1024).max(first / 10);
    let growth = last as i64 - first as i64;
    MemVerdict {
        samples_after_warmup: after.len(),
        first_third_median_kib: first,
        last_third_median_kib: last,
        growth_kib: growth,
        allowed_kib: allowed,
        peak_kib,
        flat: growth <= allowed as i64,
    }
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Request latencies in 1 ms buckets up to 10 s (plus one overflow bucket): fixed memory
/// however long the soak runs, so the harness itself cannot look like a leak.
#[derive(Debug, Clone)]
pub struct LatencyHist {
    buckets: Vec<u64>,
    max_ms: f64,
}

const LAT_BUCKETS: usize = 10_000;

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist { buckets: vec![0; LAT_BUCKETS + 1], max_ms: 0.0 }
    }
}

impl LatencyHist {
    pub fn add(&mut self, ms: f64) {
        let i = (ms.max(0.0) as usize).min(LAT_BUCKETS);
        self.buckets[i] += 1;
        self.max_ms = self.max_ms.max(ms);
    }
    pub fn merge(&mut self, o: &LatencyHist) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.max_ms = self.max_ms.max(o.max_ms);
    }
    /// Upper edge of the bucket holding the p-th percentile (nearest rank), in ms.
    pub fn percentile(&self, p: f64) -> f64 {
        let n: u64 = self.buckets.iter().sum();
        if n == 0 {
            return 0.0;
        }
        let rank = (((p / 100.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return if i == LAT_BUCKETS { self.max_ms } else { (i + 1) as f64 };
            }
        }
        self.max_ms
    }
    pub fn max(&self) -> f64 {
        self.max_ms
    }
}

/// Everything counted per request, folded as requests finish (each worker keeps one and they
/// are merged at the end). Every map is keyed by a bounded set (error kinds, deployments,
/// attempt outcomes), so memory does not grow with the number of requests.
#[derive(Debug, Default)]
pub struct Tally {
    pub finished: u64,
    pub succeeded: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_examples: Vec<String>,
    pub lost: u64,
    pub late: u64,
    pub late_examples: Vec<String>,
    pub max_overshoot_ms: f64,
    pub truncated_successes: u64,
    pub truncated_examples: Vec<String>,
    pub errors_without_partial: u64,
    pub attempts_histogram: BTreeMap<u32, u64>,
    pub attempts_max: u32,
    pub attempts_sum: u64,
    pub attempts_over_bound: u64,
    pub stream_resets: u64,
    pub attempt_outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    pub latency: LatencyHist,
}

impl Tally {
    pub fn merge(&mut self, o: Tally) {
        self.finished += o.finished;
        self.succeeded += o.succeeded;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for e in o.error_examples {
            if self.error_examples.len() < 30 {
                self.error_examples.push(e);
            }
        }
        self.lost += o.lost;
        self.late += o.late;
        for e in o.late_examples {
            if self.late_examples.len() < 10 {
                self.late_examples.push(e);
            }
        }
        self.max_overshoot_ms = self.max_overshoot_ms.max(o.max_overshoot_ms);
        self.truncated_successes += o.truncated_successes;
        for e in o.truncated_examples {
            if self.truncated_examples.len() < 10 {
                self.truncated_examples.push(e);
            }
        }
        self.errors_without_partial += o.errors_without_partial;
        for (k, v) in o.attempts_histogram {
            *self.attempts_histogram.entry(k).or_default() += v;
        }
        self.attempts_max = self.attempts_max.max(o.attempts_max);
        self.attempts_sum += o.attempts_sum;
        self.attempts_over_bound += o.attempts_over_bound;
        self.stream_resets += o.stream_resets;
        for (d, outs) in o.attempt_outcomes {
            let m = self.attempt_outcomes.entry(d).or_default();
            for (k, v) in outs {
                *m.entry(k).or_default() += v;
            }
        }
        self.latency.merge(&o.latency);
    }
}

/// Resident set size of this process, from /proc (Linux). `None` elsewhere.
pub fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub config: serde_json::Value,
    pub requests: u64,
    pub succeeded: u64,
    /// Error kind code → count. Every failed request ended with one of these.
    pub errors: BTreeMap<String, u64>,
    /// Up to three messages per error kind, for a human reading the report.
    pub error_examples: Vec<String>,
    /// Requests that never ended (the watchdog at deadline + 5 s cancelled them).
    pub lost: u64,
    /// Requests that ended, but after their deadline plus the grace.
    pub late: u64,
    /// Up to ten of them: how long, how they ended, what was attempted.
    pub late_examples: Vec<String>,
    pub max_overshoot_ms: f64,
    /// Successes whose text was not a whole answer, or streams without a finish event.
    pub truncated_successes: u64,
    /// Up to ten of them: what the caller got and which attempts led there.
    pub truncated_examples: Vec<String>,
    /// Stream errors after content that did not carry the partial text.
    pub errors_without_partial: u64,
    pub panics: u64,
    pub attempts_histogram: BTreeMap<u32, u64>,
    pub attempts_max: u32,
    pub attempts_mean: f64,
    /// Requests whose attempt count broke the bound (max_attempts per restart).
    pub attempts_over_bound: u64,
    pub stream_resets: u64,
    /// Calm/storm scripts installed over the run (weather changes across the three providers).
    pub weather_spells: u64,
    /// Deployment → attempt outcome (or `skipped: <reason>` at selection) → count, from the traces.
    pub attempt_outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    /// `from->to` → count, from the router's telemetry events.
    pub breaker_transitions: BTreeMap<String, u64>,
    pub breaker_events_seen: u64,
    /// `deployment=…,to=…` → count, from the router's Prometheus counters (complete).
    pub breaker_transitions_by_target: BTreeMap<String, u64>,
    /// Events a host callback (ours) did not receive because its queue was full.
    pub events_dropped: u64,
    pub breakers_at_end: serde_json::Value,
    pub latency_ms: BTreeMap<String, f64>,
    pub duration_s: f64,
    pub throughput_rps: f64,
    pub memory: Option<MemVerdict>,
    pub memory_samples: Vec<MemSample>,
    pub invariants: BTreeMap<String, bool>,
    pub pass: bool,
}

impl Report {
    pub fn from_tally(requests: u64, t: Tally, duration_s: f64) -> Report {
        let mut latency_ms = BTreeMap::new();
        for p in [50.0, 95.0, 99.0] {
            latency_ms.insert(format!("p{p}"), t.latency.percentile(p));
        }
        latency_ms.insert("max".into(), t.latency.max());
        Report {
            requests,
            succeeded: t.succeeded,
            errors: t.errors,
            error_examples: t.error_examples,
            // A request no worker finished (its worker died) is lost too.
            lost: t.lost + requests.saturating_sub(t.finished),
            late: t.late,
            late_examples: t.late_examples,
            max_overshoot_ms: t.max_overshoot_ms.max(0.0),
            truncated_successes: t.truncated_successes,
            truncated_examples: t.truncated_examples,
            errors_without_partial: t.errors_without_partial,
            attempts_histogram: t.attempts_histogram,
            attempts_max: t.attempts_max,
            attempts_mean: t.attempts_sum as f64 / t.finished.max(1) as f64,
            attempts_over_bound: t.attempts_over_bound,
            stream_resets: t.stream_resets,
            attempt_outcomes: t.attempt_outcomes,
            latency_ms,
            duration_s,
            throughput_rps: t.finished as f64 / duration_s.max(1e-9),
            ..Default::default()
        }
    }

    pub fn judge(&mut self) {
        let mut inv = BTreeMap::new();
        inv.insert("zero_lost".to_string(), self.lost == 0 && self.late == 0);
        inv.insert("zero_truncated_successes".to_string(), self.truncated_successes == 0);
        inv.insert("stream_errors_carry_partial".to_string(), self.errors_without_partial == 0);
        inv.insert("zero_panics".to_string(), self.panics == 0);
        inv.insert("attempts_bounded".to_string(), self.attempts_over_bound == 0);
        inv.insert("all_requests_accounted".to_string(), self.succeeded + self.errors.values().sum::<u64>() + self.lost == self.requests);
        inv.insert("memory_flat".to_string(), self.memory.as_ref().is_some_and(|m| m.flat));
        self.pass = inv.values().all(|v| *v);
        self.invariants = inv;
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let line = |s: &mut String, t: String| {
            s.push_str(&t);
            s.push('\n');
        };
        line(&mut s, format!("polyroute chaos soak: {} requests in {:.1} s ({:.0} req/s)", self.requests, self.duration_s, self.throughput_rps));
        line(&mut s, format!("  succeeded            {}", self.succeeded));
        let errs: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line(&mut s, format!("  typed errors         {} ({})", self.errors.values().sum::<u64>(), errs.join(", ")));
        line(&mut s, format!("  lost / late          {} / {} (max overshoot past deadline {:.0} ms)", self.lost, self.late, self.max_overshoot_ms));
        line(&mut s, format!("  truncated successes  {}", self.truncated_successes));
        line(&mut s, format!("  panics               {}", self.panics));
        let hist: Vec<String> = self.attempts_histogram.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        line(
            &mut s,
            format!(
                "  attempts/request     mean {:.2}, max {} [{}], over bound {}",
                self.attempts_mean,
                self.attempts_max,
                hist.join(" "),
                self.attempts_over_bound
            ),
        );
        line(&mut s, format!("  stream resets        {}", self.stream_resets));
        line(&mut s, format!("  weather spells       {} (calm/storm scripts swapped in under load)", self.weather_spells));
        for (dep, outs) in &self.attempt_outcomes {
            let o: Vec<String> = outs.iter().map(|(k, v)| format!("{k} {v}")).collect();
            line(&mut s, format!("  attempts on {dep:<12} {}", o.join(", ")));
        }
        let tr: Vec<String> = self.breaker_transitions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line(
            &mut s,
            format!(
                "  breaker transitions  {} (callback saw {} events, {} events dropped)",
                tr.join(", "),
                self.breaker_events_seen,
                self.events_dropped
            ),
        );
        let bt: Vec<String> = self.breaker_transitions_by_target.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line(&mut s, format!("    by metrics         {}", bt.join("; ")));
        let lat: Vec<String> = self.latency_ms.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        line(&mut s, format!("  latency ms           {}", lat.join(", ")));
        if let Some(m) = &self.memory {
            line(
                &mut s,
                format!(
                    "  RSS                  after warm-up {} → {} MiB (median of first/last third of {} samples), growth {:+.1} MiB, allowed {:.1}, peak {} MiB",
                    m.first_third_median_kib / 1024,
                    m.last_third_median_kib / 1024,
                    m.samples_after_warmup,
                    m.growth_kib as f64 / 1024.0,
                    m.allowed_kib as f64 / 1024.0,
                    m.peak_kib / 1024
                ),
            );
        }
        let inv: Vec<String> = self.invariants.iter().map(|(k, v)| format!("{k}={}", if *v { "ok" } else { "FAIL" })).collect();
        line(&mut s, format!("  invariants           {}", inv.join(", ")));
        line(&mut s, format!("  verdict              {}", if self.pass { "PASS" } else { "FAIL" }));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rss: impl Fn(u64) -> u64, n: u64) -> MemVerdict {
        let samples: Vec<MemSample> = (0..100).map(|i| MemSample { t_s: i as f64, done: i * n / 100, rss_kib: rss(i) }).collect();
        judge_memory(&samples, n)
    }

    #[test]
    fn flat_noisy_memory_passes_and_a_leak_fails() {
        // warm-up growth, then noise around a plateau
        let m = run(|i| if i < 25 { 50_000 + i * 2_000 } else { 100_000 + (i * 7919 % 13) * 1_000 }, 20_000);
        assert!(m.flat, "{m:?}");
        // a steady leak of ~1 KiB per request after warm-up: 15,000 requests → ~15 MiB over the window
        let m = run(|i| 100_000 + i * 400, 20_000);
        assert!(!m.flat, "{m:?}");
        // too few samples cannot be judged flat
        let m = judge_memory(&[MemSample { t_s: 0.0, done: 0, rss_kib: 1 }], 10);
        assert!(!m.flat);
    }

    #[test]
    fn latency_percentiles_from_buckets() {
        let mut h = LatencyHist::default();
        assert_eq!(h.percentile(50.0), 0.0);
        for ms in 0..100 {
            h.add(ms as f64 + 0.5);
        }
        assert_eq!(h.percentile(50.0), 50.0);
        assert_eq!(h.percentile(99.0), 99.0);
        let mut o = LatencyHist::default();
        o.add(25_000.0); // beyond the buckets: reported as the true maximum
        h.merge(&o);
        assert_eq!(h.percentile(100.0), 25_000.0);
        assert_eq!(h.max(), 25_000.0);
    }
}
