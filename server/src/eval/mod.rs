//! `polyroute eval policy.yaml dataset.jsonl --deployments a,b,c`: every case of a dataset
//! against every candidate deployment, judged by the case's expectations; a Markdown report,
//! a JSON report and a PNG chart in `--out`.
//!
//! Runs are appended to `<out>/results.jsonl` as they finish; a later invocation with the
//! same `--out` reuses every (case, deployment) result whose request is unchanged, so an
//! interrupted or spend-capped eval continues where it stopped.

mod candidates;
mod chart;
mod checks;
mod dataset;
mod record;
mod report;
mod runner;
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use dataset::Case;
use record::RunRecord;
use report::{Report, StoppedEarly};

pub struct Options {
    pub policy: PathBuf,
    pub dataset: PathBuf,
    pub deployments: Option<String>,
    pub out: PathBuf,
    pub concurrency: usize,
    pub max_spend: Option<f64>,
    pub timeout: Duration,
    pub skip_invalid: bool,
    pub retry_errors: bool,
}

/// Lines of dataset problems printed before "and N more".
const PROBLEMS_SHOWN: usize = 20;

pub fn run(opts: Options) -> Result<(), String> {
    if opts.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if let Some(m) = opts.max_spend {
        if !(m.is_finite() && m >= 0.0) {
            return Err("--max-spend must be a non-negative number of USD".into());
        }
    }
    let (cases, problems) = dataset::load(&opts.dataset)?;
    let shown: Vec<String> = problems.iter().map(|p| format!("{}:{p}", opts.dataset.display())).collect();
    if !problems.is_empty() && !opts.skip_invalid {
        let mut msg = format!("{} invalid line{} in {} (nothing was sent):", problems.len(), plural(problems.len()), opts.dataset.display());
        for p in shown.iter().take(PROBLEMS_SHOWN) {
            msg.push_str("\n  ");
            msg.push_str(p);
        }
        if problems.len() > PROBLEMS_SHOWN {
            msg.push_str(&format!("\n  … and {} more", problems.len() - PROBLEMS_SHOWN));
        }
        msg.push_str("\nfix them, or pass --skip-invalid to run the valid lines only");
        return Err(msg);
    }
    for p in &shown {
        eprintln!("polyroute: skipping {p}");
    }
    if cases.is_empty() {
        return Err(format!("{} has no case to run", opts.dataset.display()));
    }
    let cands = candidates::build(&opts.policy, opts.deployments.as_deref(), opts.timeout)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("cannot create {}: {e}", opts.out.display()))?;
    let results_path = opts.out.join("results.jsonl");
    let prev = record::load(&results_path)?;
    if !prev.bad_lines.is_empty() {
        eprintln!("polyroute: ignoring unreadable lines {:?} of {}", prev.bad_lines, results_path.display());
    }

    let hashes: HashMap<&str, String> = cases.iter().map(|c| (c.id.as_str(), dataset::request_hash(&c.body))).collect();
    let mut done: HashMap<(String, String), RunRecord> = HashMap::new();
    let mut jobs: Vec<(&Case, &str)> = Vec::new();
    // Case by case, every candidate in turn: a run stopped early leaves the candidates
    // compared on the same cases.
    for case in &cases {
        for d in &cands.names {
            let key = (case.id.clone(), d.clone());
            match prev.runs.get(&key) {
                Some(r) if r.request_hash == hashes[case.id.as_str()] && !(opts.retry_errors && r.error.is_some()) => {
                    done.insert(key, r.clone());
                }
                _ => jobs.push((case, d)),
            }
        }
    }
    let resumed = done.len() as u64;
    // The cap is on the total: what earlier invocations spent into this --out counts too.
    let spent_before: f64 = prev.runs.values().filter_map(|r| r.cost_usd).sum();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut appender = record::Appender::open(&results_path)?;
    let outcome = rt.block_on(run_jobs(&cands.router, jobs, opts.concurrency, opts.max_spend, spent_before, &mut appender))?;
    let new_runs = outcome.records.len() as u64;
    for r in outcome.records {
        done.insert((r.case.clone(), r.deployment.clone()), r);
    }

    let mut candidates_stats = Vec::new();
    for (name, provider, model) in &cands.described {
        let runs: HashMap<&str, &RunRecord> = done.iter().filter(|((_, d), _)| d == name).map(|((c, _), r)| (c.as_str(), r)).collect();
        candidates_stats.push(stats::candidate((name, provider, model), &cases, &runs));
    }
    let complete = candidates_stats.iter().all(|c| c.missing == 0);
    let spent_usd = prev.runs.iter().filter(|(k, _)| !done.contains_key(*k)).filter_map(|(_, r)| r.cost_usd).sum::<f64>()
        + done.values().filter_map(|r| r.cost_usd).sum::<f64>();
    let stopped_early = outcome.stopped.then(|| StoppedEarly {
        reason: "the spend cap (--max-spend) was reached".into(),
        max_spend_usd: opts.max_spend.unwrap_or(0.0),
        spent_usd,
    });
    let rep = Report {
        policy: opts.policy.display().to_string(),
        dataset: opts.dataset.display().to_string(),
        cases: cases.len(),
        complete,
        stopped_early,
        new_runs,
        resumed_runs: resumed,
        spent_usd,
        skipped_lines: shown,
        candidates: candidates_stats,
    };
    write_outputs(&rep, &opts.out)?;
    println!("{}", report::summary_table(&rep));
    println!("{} new run{}, {} reused; report: {}", new_runs, plural(new_runs as usize), resumed, opts.out.join("report.md").display());
    if let Some(s) = &rep.stopped_early {
        eprintln!("polyroute: stopped early: spent ${:.6} of --max-spend ${:.6}; re-run with a higher cap to finish", s.spent_usd, s.max_spend_usd);
    }
    Ok(())
}

fn write_outputs(rep: &Report, out: &std::path::Path) -> Result<(), String> {
    let write = |name: &str, text: String| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write("report.json", serde_json::to_string_pretty(rep).map_err(|e| format!("cannot encode the report: {e}"))? + "\n")?;
    write("report.md", report::markdown(rep))?;
    chart::draw(rep, &out.join("chart.png"))
}

struct Outcome {
    records: Vec<RunRecord>,
    /// The spend cap stopped new runs from starting.
    stopped: bool,
}

async fn run_jobs(
    router: &polyroute::Router,
    jobs: Vec<(&Case, &str)>,
    concurrency: usize,
    max_spend: Option<f64>,
    spent_before: f64,
    appender: &mut record::Appender,
) -> Result<Outcome, String> {
    let bar = progress_bar(jobs.len() as u64);
    let spent = Arc::new(Mutex::new(spent_before));
    let stopped = Arc::new(AtomicBool::new(false));
    let over_cap = |spent: &Mutex<f64>| max_spend.is_some_and(|m| *spent.lock().unwrap_or_else(|p| p.into_inner()) >= m);
    let mut runs = futures::stream::iter(jobs)
        .map(|(case, d)| {
            let (spent, stopped) = (spent.clone(), stopped.clone());
            async move {
                // Checked when the run would start, not when it was queued: runs already in
                // flight finish, so the cap can be passed by at most `concurrency - 1` runs.
                if over_cap(&spent) {
                    stopped.store(true, Ordering::Relaxed);
                    return None;
                }
                Some(runner::run(router, case, d).await)
            }
        })
        .buffer_unordered(concurrency);
    let mut records = Vec::new();
    while let Some(r) = runs.next().await {
        bar.inc(1);
        let Some(r) = r else { continue };
        if let Some(c) = r.cost_usd {
            let mut s = spent.lock().unwrap_or_else(|p| p.into_inner());
            *s += c;
            bar.set_message(format!("spent {}", report::usd(*s)));
        }
        appender.append(&r)?;
        records.push(r);
    }
    bar.finish_and_clear();
    Ok(Outcome { records, stopped: stopped.load(Ordering::Relaxed) })
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    // `stderr()` draws nothing when stderr is not a terminal (CI logs, tests).
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {elapsed_precise}  {msg}") {
        bar.set_style(style);
    }
    bar
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
