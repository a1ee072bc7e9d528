//! `report.json` and `report.md`.

use std::fmt::Write;

use serde::Serialize;

use super::checks::KINDS;
use super::stats::CandidateStats;

/// Why the run did not finish every case.
#[derive(Debug, Clone, Serialize)]
pub struct StoppedEarly {
    pub reason: String,
    pub max_spend_usd: f64,
    pub spent_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub policy: String,
    pub dataset: String,
    pub cases: usize,
    /// Every candidate has a result for every case.
    pub complete: bool,
    pub stopped_early: Option<StoppedEarly>,
    /// Runs sent by this invocation, and runs reused from an earlier one.
    pub new_runs: u64,
    pub resumed_runs: u64,
    /// Spend over all recorded runs of these candidates, earlier invocations included.
    pub spent_usd: f64,
    /// Dataset lines that were skipped (`--skip-invalid`), with their problems.
    pub skipped_lines: Vec<String>,
    pub candidates: Vec<CandidateStats>,
}

/// Failing cases listed per candidate in the Markdown report (the JSON has them all).
const FAILURES_SHOWN: usize = 10;

pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Eval report\n");
    let _ = writeln!(
        md,
        "Policy `{}`, dataset `{}`: {} case{} × {} candidate{}.\n",
        r.policy,
        r.dataset,
        r.cases,
        plural(r.cases),
        r.candidates.len(),
        plural(r.candidates.len())
    );
    if let Some(s) = &r.stopped_early {
        let _ = writeln!(
            md,
            "**Stopped early**: {} (spent ${:.6} of ${:.6}); the missing cases run on the next invocation with a higher `--max-spend`.\n",
            s.reason, s.spent_usd, s.max_spend_usd
        );
    } else if !r.complete {
        let _ = writeln!(md, "**Incomplete**: some cases have no result yet.\n");
    }
    md.push_str(&summary_table(r));
    md.push('\n');
    md.push_str(&checks_table(r));
    let errors: Vec<&CandidateStats> = r.candidates.iter().filter(|c| c.errors > 0).collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n## Errors\n");
        for c in errors {
            let kinds: Vec<String> = c.errors_by_kind.iter().map(|(k, n)| format!("{k} × {n}")).collect();
            let _ = writeln!(md, "- `{}`: {}", c.deployment, kinds.join(", "));
        }
    }
    let failing: Vec<&CandidateStats> = r.candidates.iter().filter(|c| !c.failures.is_empty()).collect();
    if !failing.is_empty() {
        let _ = writeln!(md, "\n## Failing cases\n");
        for c in failing {
            let _ = writeln!(md, "`{}` ({} failing):\n", c.deployment, c.failures.len());
            for f in c.failures.iter().take(FAILURES_SHOWN) {
                let _ = writeln!(md, "- `{}`: {}", f.case, f.reason.replace('|', "\\|"));
            }
            if c.failures.len() > FAILURES_SHOWN {
                let _ = writeln!(md, "- … and {} more (see report.json)", c.failures.len() - FAILURES_SHOWN);
            }
            md.push('\n');
        }
    }
    let _ = writeln!(md, "\n![pass rate vs cost, latency distribution](chart.png)\n");
    let _ = writeln!(
        md,
        "Pass: answered, no unexpected refusal, every check held. Latency over answered cases \
         (first token: to the first content event; total: to the end of the stream). \
         Cost per pass: all spend of the candidate divided by its passing answers."
    );
    md
}

/// The one table the README and the terminal show.
pub fn summary_table(r: &Report) -> String {
    let mut md = String::new();
    md.push_str("| candidate | model | pass rate | passed | errors | schema valid | refusals | first token p50 / p95 | total p50 / p95 | tokens in / out | cost | cost per pass |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for c in &r.candidates {
        let schema = if c.schema.answered > 0 { format!("{}/{}", c.schema.schema_valid, c.schema.answered) } else { "–".into() };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {}/{} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} | {} |",
            c.deployment,
            c.model,
            pct(c.pass_rate),
            c.passed,
            c.runs,
            c.errors,
            schema,
            c.refusals,
            millis(c.latency_ms.first_token.p50),
            millis(c.latency_ms.first_token.p95),
            millis(c.latency_ms.total.p50),
            millis(c.latency_ms.total.p95),
            c.input_tokens,
            c.output_tokens,
            cost(c),
            c.cost_per_pass_usd.map(usd).unwrap_or_else(|| "–".into()),
        );
    }
    md
}

fn checks_table(r: &Report) -> String {
    let kinds: Vec<&str> = KINDS.iter().copied().filter(|k| r.candidates.iter().any(|c| c.checks.contains_key(*k))).collect();
    if kinds.is_empty() {
        return String::new();
    }
    let mut md = String::from("## Pass rate per check\n\n| check |");
    for c in &r.candidates {
        let _ = write!(md, " `{}` |", c.deployment);
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(r.candidates.len()));
    md.push('\n');
    for k in kinds {
        let _ = write!(md, "| {k} |");
        for c in &r.candidates {
            match c.checks.get(k) {
                Some(x) => {
                    let _ = write!(md, " {} ({}/{}) |", pct(x.rate), x.passed, x.total);
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    md
}

fn cost(c: &CandidateStats) -> String {
    match (c.cost_unknown_runs, c.runs) {
        (u, n) if u == n && n > 0 => "unknown".into(),
        (0, _) => usd(c.cost_usd),
        (u, _) => format!("{} (+{u} unpriced)", usd(c.cost_usd)),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.0}%", r * 100.0)).unwrap_or_else(|| "–".into())
}

fn millis(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "–".into())
}

/// Dollars with enough digits that cheap models do not all read `$0.00`.
pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".into()
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else if v >= 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.6}")
    }
}
