//! Per-candidate numbers, from the recorded runs judged against the dataset.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::checks::{judge, KINDS};
use super::dataset::Case;
use super::record::RunRecord;

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub passed: u64,
    pub total: u64,
    /// `passed / total`; null when there is nothing to divide.
    pub rate: Option<f64>,
}

impl Ratio {
    fn new(passed: u64, total: u64) -> Ratio {
        Ratio { passed, total, rate: (total > 0).then(|| passed as f64 / total as f64) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SchemaStats {
    /// Cases with a schema that the candidate answered.
    pub answered: u64,
    pub json_valid: u64,
    pub schema_valid: u64,
    /// `schema_valid / answered`.
    pub validity_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub first_token: Percentiles,
    pub total: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub case: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CandidateStats {
    pub deployment: String,
    pub provider: String,
    pub model: String,
    /// Cases in the dataset.
    pub cases: u64,
    /// Cases with a recorded result (fewer than `cases` when the run stopped early).
    pub runs: u64,
    pub missing: u64,
    pub answered: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub passed: u64,
    /// `passed / runs`.
    pub pass_rate: Option<f64>,
    /// Per check kind, over the runs of the cases that have that check.
    pub checks: BTreeMap<String, Ratio>,
    pub schema: SchemaStats,
    pub refusals: u64,
    /// `refusals / answered`.
    pub refusal_rate: Option<f64>,
    /// Over answered runs only: an error's latency measures the failure, not the model.
    pub latency_ms: Latency,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Sum over runs with a known cost.
    pub cost_usd: f64,
    /// Runs whose cost is unknown (no pricing for the deployment's model).
    pub cost_unknown_runs: u64,
    /// `cost_usd / runs`.
    pub cost_per_case_usd: Option<f64>,
    /// `cost_usd / passed`: what one good answer costs, failures' spend included.
    pub cost_per_pass_usd: Option<f64>,
    pub failures: Vec<Failure>,
    /// Latency samples for the chart (not serialised: the JSON has the percentiles).
    #[serde(skip)]
    pub ttft_samples: Vec<f64>,
    #[serde(skip)]
    pub total_samples: Vec<f64>,
}

/// The numbers for one candidate. `runs` holds its recorded results by case id.
pub fn candidate(name: (&str, &str, &str), cases: &[Case], runs: &HashMap<&str, &RunRecord>) -> CandidateStats {
    let mut s = CandidateStats {
        deployment: name.0.into(),
        provider: name.1.into(),
        model: name.2.into(),
        cases: cases.len() as u64,
        runs: 0,
        missing: 0,
        answered: 0,
        errors: 0,
        errors_by_kind: BTreeMap::new(),
        passed: 0,
        pass_rate: None,
        checks: BTreeMap::new(),
        schema: SchemaStats { answered: 0, json_valid: 0, schema_valid: 0, validity_rate: None },
        refusals: 0,
        refusal_rate: None,
        latency_ms: Latency { first_token: percentiles(&mut []), total: percentiles(&mut []) },
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        cost_unknown_runs: 0,
        cost_per_case_usd: None,
        cost_per_pass_usd: None,
        failures: Vec::new(),
        ttft_samples: Vec::new(),
        total_samples: Vec::new(),
    };
    let mut check_counts: HashMap<&str, (u64, u64)> = HashMap::new();
    for case in cases {
        let Some(r) = runs.get(case.id.as_str()) else {
            s.missing += 1;
            continue;
        };
        s.runs += 1;
        let v = judge(r, &case.expect);
        match &r.error {
            Some(e) => {
                s.errors += 1;
                *s.errors_by_kind.entry(e.kind.clone()).or_default() += 1;
            }
            None => {
                s.answered += 1;
                s.refusals += u64::from(r.refused());
                s.total_samples.push(r.total_ms);
                s.ttft_samples.extend(r.ttft_ms);
                if case.expect.schema.is_some() {
                    s.schema.answered += 1;
                    s.schema.json_valid += u64::from(v.json_valid == Some(true));
                    s.schema.schema_valid += u64::from(v.schema_valid == Some(true));
                }
            }
        }
        for c in &v.checks {
            let e = check_counts.entry(c.kind).or_default();
            e.0 += u64::from(c.passed);
            e.1 += 1;
        }
        if v.passed {
            s.passed += 1;
        } else if let Some(reason) = v.reason {
            s.failures.push(Failure { case: case.id.clone(), reason });
        }
        s.input_tokens += r.input_tokens;
        s.output_tokens += r.output_tokens;
        match r.cost_usd {
            Some(c) => s.cost_usd += c,
            None => s.cost_unknown_runs += 1,
        }
    }
    for kind in KINDS {
        if let Some((p, t)) = check_counts.get(kind) {
            s.checks.insert(kind.to_string(), Ratio::new(*p, *t));
        }
    }
    let div = |a: f64, b: u64| (b > 0).then(|| a / b as f64);
    s.pass_rate = div(s.passed as f64, s.runs);
    s.refusal_rate = div(s.refusals as f64, s.answered);
    s.schema.validity_rate = div(s.schema.schema_valid as f64, s.schema.answered);
    s.cost_per_case_usd = div(s.cost_usd, s.runs);
    s.cost_per_pass_usd = div(s.cost_usd, s.passed);
    s.latency_ms = Latency { first_token: percentiles(&mut s.ttft_samples.clone()), total: percentiles(&mut s.total_samples.clone()) };
    s
}

/// Nearest-rank percentiles: always a latency that was observed, never an interpolation.
fn percentiles(v: &mut [f64]) -> Percentiles {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| {
        if v.is_empty() {
            return None;
        }
        let rank = (p * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    };
    Percentiles { n: v.len(), p50: at(0.50), p95: at(0.95) }
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn nearest_rank() {
        let p = percentiles(&mut [5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((p.p50, p.p95), (Some(3.0), Some(5.0)));
        assert_eq!(percentiles(&mut []).p50, None);
    }
}
