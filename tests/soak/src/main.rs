//! `polyroute-soak`: the chaos soak.
//!
//! Tens of thousands of requests at high concurrency through ONE router, against the
//! loopback mock server playing three faulty providers (OpenAI, Anthropic and Gemini wire
//! formats, so every stream decoder is under fire) and one healthy one (OpenAI-compatible).
//! Half the requests stream; half of those on a route with `stream_recovery: restart`.
//!
//! It then judges what the issue promises, and exits non-zero if any of it fails:
//! - zero lost: every request ends in a success or a typed error within its deadline (plus
//!   a small scheduling grace); a watchdog at deadline + 5 s catches one that never ends;
//! - zero truncated successes: every success carries a whole answer (see `chaos.rs`), and
//!   every successful stream delivered a finish event;
//! - bounded attempts, zero panics (a panic hook counts them, including in the router's
//!   tasks), and flat resident memory after warm-up (criterion in `report.rs`).
//!
//! The mock server runs in this process on its own tokio runtime with its log disabled, so
//! the RSS figure covers router, client and server together; a leak in any of them shows.
//!
//! ```text
//! polyroute-soak [--requests 20000] [--concurrency 256] [--seed 1] [--grace-ms 250]
//!                [--report target/soak-report.json]
//! ```

mod chaos;
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use polyroute::telemetry::RouterEvent;
use polyroute::{ChatRequest, Message, Router, StreamEvent};
use polyroute_mock_server::{start, ServerOptions};
use rand::{Rng, SeedableRng};
use serde_json::json;

use report::{judge_memory, rss_kib, MemSample, Report, Tally};

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Policy timings. The total deadline is what "within its deadline" is measured against.
const TOTAL_MS: u64 = 1_500;
const FIRST_TOKEN_MS: u64 = 500;
const IDLE_MS: u64 = 500;
const MAX_ATTEMPTS: u32 = 5;
/// Past this, a request is cancelled and counted lost.
const WATCHDOG: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Args {
    requests: u64,
    concurrency: usize,
    seed: u64,
    grace_ms: u64,
    report: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { requests: 20_000, concurrency: 256, seed: 1, grace_ms: 250, report: PathBuf::from("target/soak-report.json") };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--requests" => a.requests = val()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--concurrency" => a.concurrency = val()?.parse().map_err(|e| format!("--concurrency: {e}"))?,
            "--seed" => a.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--grace-ms" => a.grace_ms = val()?.parse().map_err(|e| format!("--grace-ms: {e}"))?,
            "--report" => a.report = PathBuf::from(val()?),
            "-h" | "--help" => {
                return Err("usage: polyroute-soak [--requests N] [--concurrency N] [--seed N] [--grace-ms N] [--report PATH]".into());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if a.requests == 0 || a.concurrency == 0 {
        return Err("--requests and --concurrency must be positive".into());
    }
    Ok(a)
}

fn policy(base_v1: &str, root: &str) -> String {
    let key = "sk-test-not-a-real-key";
    let route = |name: &str, recovery: &str, feature: Option<&str>| {
        let mut r = json!({
            "name": name,
            "strategy": "weighted",
            "deployments": ["openai-f", "anthropic-f", "gemini-f"],
            "fallbacks": [{"name": "healthy", "deployments": ["healthy"]}],
            "retry": {"attempts_per_deployment": 2, "max_attempts": MAX_ATTEMPTS, "base_delay": "20ms", "max_delay": "200ms", "max_retry_after": "1s"},
            "timeouts": {"first_token": format!("{FIRST_TOKEN_MS}ms"), "idle": format!("{IDLE_MS}ms"), "total": format!("{TOTAL_MS}ms")},
            "stream_recovery": recovery,
        });
        if let Some(f) = feature {
            r["match"] = json!({"feature": [f]});
        }
        r
    };
    json!({
        "providers": {
            "oa": {"kind": "openai", "base_url": base_v1, "api_key": key},
            "an": {"kind": "anthropic", "base_url": root, "api_key": key},
            "ge": {"kind": "gemini", "base_url": root, "api_key": key},
            "ok": {"kind": "openai_compatible", "base_url": base_v1, "api_key": key},
        },
        "deployments": {
            "openai-f": {"provider": "oa", "model": "chaos-openai"},
            "anthropic-f": {"provider": "an", "model": "chaos-anthropic"},
            "gemini-f": {"provider": "ge", "model": "chaos-gemini"},
            "healthy": {"provider": "ok", "model": "healthy"},
        },
        "routes": [route("restart", "restart", Some("restart")), route("main", "error", None)],
        "default_route": "main",
        // Tolerant enough that faulty providers keep taking traffic (the point of the soak),
        // strict enough that bursts trip them and every transition happens many times.
        "breaker": {"consecutive_failures": 10, "min_calls": 50, "failure_rate": 0.85, "open_for": "100ms", "max_open_for": "400ms", "half_open_probes": 3},
    })
    .to_string()
}

/// How one request ended.
enum End {
    /// `detail` describes an incomplete success (what the caller got, and from where).
    Ok {
        attempts: u32,
        complete: bool,
        resets: u32,
        trace: Vec<(String, String)>,
        detail: Option<String>,
    },
    Err {
        kind: String,
        attempts: u32,
        partial_missing: bool,
        resets: u32,
        trace: Vec<(String, String)>,
        message: String,
    },
}

/// (deployment, outcome) of every attempt, then (deployment, "skipped: <reason>") of every
/// candidate skipped at selection (reasons cut before their numbers, so they group).
fn pairs(t: Option<&polyroute::RouteTrace>) -> Vec<(String, String)> {
    let Some(t) = t else { return Vec::new() };
    let mut v: Vec<(String, String)> = t.attempts.iter().map(|a| (a.deployment.clone(), a.outcome.to_string())).collect();
    for c in &t.candidates {
        if let Some(why) = &c.skipped {
            let short: String = why.split(',').next().unwrap_or(why).chars().take_while(|ch| !ch.is_ascii_digit()).collect();
            v.push((c.deployment.clone(), format!("skipped: {}", short.trim())));
        }
    }
    v
}

fn attempt_count(pairs: &[(String, String)]) -> u32 {
    pairs.iter().filter(|(_, o)| !o.starts_with("skipped")).count() as u32
}

fn err_end(e: &polyroute::Error, partial_missing: bool, resets: u32) -> End {
    let trace = pairs(e.trace.as_deref());
    End::Err { kind: e.kind.code().into(), attempts: attempt_count(&trace), partial_missing, resets, trace, message: e.to_string() }
}

async fn one(router: &Router, i: u64) -> End {
    let mut req = ChatRequest::new(vec![Message::user(format!("soak request {i}"))]);
    let stream = i % 2 == 1;
    if i % 4 == 3 {
        req.routing.feature = Some("restart".into());
    }
    if !stream {
        return match router.chat(req).await {
            Ok(r) => {
                let trace = pairs(r.trace.as_deref());
                let complete = chaos::is_complete(&r.content());
                let detail = (!complete).then(|| format!("chat: content {:?}, finish {:?}, attempts {:?}", r.content(), r.finish_reason(), trace));
                End::Ok { attempts: attempt_count(&trace), complete, resets: 0, trace, detail }
            }
            Err(e) => err_end(&e, false, 0),
        };
    }
    let mut s = match router.stream(req).await {
        Ok(s) => s,
        Err(e) => return err_end(&e, false, 0),
    };
    let (mut text, mut finished, mut resets, mut saw_content) = (String::new(), false, 0u32, false);
    while let Some(item) = s.next().await {
        match item {
            Ok(StreamEvent::ContentDelta { text: t }) => {
                saw_content = true;
                text.push_str(&t);
            }
            Ok(StreamEvent::Finish { .. }) => finished = true,
            Ok(StreamEvent::Reset { .. }) => {
                resets += 1;
                text.clear();
                finished = false;
            }
            Ok(_) => {}
            Err(e) => {
                // A stream that failed after content must say what the caller already saw.
                let partial_missing = saw_content && e.partial.as_ref().is_none_or(|p| p.text != text);
                return err_end(&e, partial_missing, resets);
            }
        }
    }
    let trace = pairs(s.trace().as_ref());
    let complete = finished && chaos::is_complete(&text);
    let detail = (!complete).then(|| format!("stream: content {text:?}, finished {finished}, resets {resets}, attempts {trace:?}"));
    End::Ok { attempts: attempt_count(&trace), complete, resets, trace, detail }
}

/// Count one finished (or, with `None`, watchdog-cancelled) request.
fn fold(t: &mut Tally, end: Option<End>, took: Duration, deadline: Duration, grace: Duration) {
    let ms = took.as_secs_f64() * 1000.0;
    t.finished += 1;
    t.latency.add(ms);
    t.max_overshoot_ms = t.max_overshoot_ms.max(ms - deadline.as_secs_f64() * 1000.0);
    let Some(end) = end else {
        t.lost += 1;
        return;
    };
    let late = took > deadline + grace;
    if late {
        t.late += 1;
    }
    let trace_kind = match &end {
        End::Ok { .. } => None,
        End::Err { kind, .. } => Some(kind.clone()),
    };
    let (attempts, resets, trace) = match end {
        End::Ok { attempts, complete, resets, trace, detail } => {
            t.succeeded += 1;
            if !complete {
                t.truncated_successes += 1;
            }
            if let Some(d) = detail {
                if t.truncated_examples.len() < 10 {
                    t.truncated_examples.push(d);
                }
            }
            (attempts, resets, trace)
        }
        End::Err { kind, attempts, partial_missing, resets, trace, message } => {
            let n = t.errors.entry(kind).or_default();
            *n += 1;
            if *n <= 3 {
                t.error_examples.push(message);
            }
            if partial_missing {
                t.errors_without_partial += 1;
            }
            (attempts, resets, trace)
        }
    };
    if late && t.late_examples.len() < 10 {
        let how = match &trace_kind {
            Some(k) => format!("ended with {k}"),
            None => "succeeded".to_string(),
        };
        t.late_examples.push(format!("{ms:.0} ms, {how}, resets {resets}, attempts {trace:?}"));
    }
    for (dep, outcome) in trace {
        *t.attempt_outcomes.entry(dep).or_default().entry(outcome).or_default() += 1;
    }
    t.stream_resets += u64::from(resets);
    *t.attempts_histogram.entry(attempts).or_default() += 1;
    t.attempts_max = t.attempts_max.max(attempts);
    t.attempts_sum += u64::from(attempts);
    // Each restart runs the attempt loop again, itself bounded by max_attempts.
    if attempts > MAX_ATTEMPTS * (1 + resets) {
        t.attempts_over_bound += 1;
    }
}

/// Send `args.requests` requests from `args.concurrency` workers; fold results as they end.
fn run(rt: &tokio::runtime::Runtime, router: &Router, args: &Args, done: &Arc<AtomicU64>, deadline: Duration, grace: Duration) -> Tally {
    let requests = args.requests;
    rt.block_on(async {
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let (router, next, done) = (router.clone(), next.clone(), done.clone());
            workers.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return tally;
                    }
                    let t = Instant::now();
                    let r = tokio::time::timeout(deadline + WATCHDOG, one(&router, i)).await;
                    fold(&mut tally, r.ok(), t.elapsed(), deadline, grace);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let mut all = Tally::default();
        for w in workers {
            // A worker that panicked (already counted by the hook) returns nothing: its
            // unfinished requests show up as lost below.
            if let Ok(t) = w.await {
                all.merge(t);
            }
        }
        all
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        prev(info);
    }));

    // The mock server on its own runtime, so a saturated client side cannot starve it into
    // looking like a faulty provider.
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("mock-server").enable_all().build().expect("server runtime");
    let server = server_rt.block_on(start(ServerOptions { port: 0, log_capacity: 0 })).expect("mock server starts");
    const FAULTY: [(&str, chaos::Format, char); 3] = [
        ("chaos-openai", chaos::Format::OpenAi, 'o'),
        ("chaos-anthropic", chaos::Format::Anthropic, 'a'),
        ("chaos-gemini", chaos::Format::Gemini, 'g'),
    ];
    server.set_script("healthy", chaos::healthy_script()).expect("valid script");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("client runtime");
    let router = Router::from_policy_str(&policy(&server.base_url(), &server.url())).expect("soak policy is valid");
    let transitions: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let t2 = transitions.clone();
    let breaker_events = Arc::new(AtomicU64::new(0));
    let be2 = breaker_events.clone();
    router.subscribe(move |e| {
        if let RouterEvent::BreakerChanged { from, to, .. } = e {
            be2.fetch_add(1, Ordering::Relaxed);
            *t2.lock().unwrap_or_else(|p| p.into_inner()).entry(format!("{}->{}", from.as_str(), to.as_str())).or_default() += 1;
        }
    });

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<MemSample>>> = Arc::default();
    let t0 = Instant::now();
    let sampler = {
        let (done, stop, samples) = (done.clone(), stop.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss_kib) = rss_kib() {
                    let s = MemSample { t_s: t0.elapsed().as_secs_f64(), done: done.load(Ordering::Relaxed), rss_kib };
                    samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let deadline = Duration::from_millis(TOTAL_MS);
    let grace = Duration::from_millis(args.grace_ms);
    let spells = Arc::new(AtomicU64::new(0));
    let tally = std::thread::scope(|scope| {
        // One weather thread per faulty provider: calm and storm spells of random length.
        for (k, (name, format, prefix)) in FAULTY.iter().enumerate() {
            let (server, stop, spells) = (&server, stop.clone(), spells.clone());
            let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed.wrapping_mul(31).wrapping_add(k as u64));
            // The first (calm) spell is in place before any request is sent: an unscripted
            // model would answer with the mock's default echo, which is not a soak answer.
            server.set_script(name, chaos::spell_script(&mut rng, chaos::SPELL_STEPS, *format, *prefix, false)).expect("valid script");
            spells.fetch_add(1, Ordering::Relaxed);
            scope.spawn(move || {
                let mut storm = false;
                loop {
                    let ms = rng.random_range(if storm { chaos::STORM_MS } else { chaos::CALM_MS });
                    // Sleep in slices so the end of the run is not held up by a long spell.
                    let until = Instant::now() + Duration::from_millis(ms);
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    storm = !storm;
                    let script = chaos::spell_script(&mut rng, chaos::SPELL_STEPS, *format, *prefix, storm);
                    server.set_script(name, script).expect("valid script");
                    spells.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let t = run(&rt, &router, &args, &done, deadline, grace);
        stop.store(true, Ordering::Relaxed);
        t
    });
    let duration_s = t0.elapsed().as_secs_f64();
    let _ = sampler.join();

    let mut rep = Report::from_tally(args.requests, tally, duration_s);
    rep.weather_spells = spells.load(Ordering::Relaxed);
    // Let the event thread drain before reading its counts.
    std::thread::sleep(Duration::from_millis(200));
    rep.breaker_transitions = transitions.lock().unwrap_or_else(|p| p.into_inner()).clone();
    rep.breaker_events_seen = breaker_events.load(Ordering::Relaxed);
    // The metrics counters see every transition (host callbacks may drop events under load).
    for line in router.metrics_text().lines() {
        if let Some(rest) = line.strip_prefix("polyroute_breaker_transitions_total{") {
            if let Some((labels, n)) = rest.rsplit_once("} ") {
                rep.breaker_transitions_by_target.insert(labels.replace('"', ""), n.trim().parse().unwrap_or(0.0) as u64);
            }
        } else if let Some(n) = line.strip_prefix("polyroute_events_dropped_total ") {
            rep.events_dropped = n.trim().parse().unwrap_or(0.0) as u64;
        }
    }
    rep.breakers_at_end = serde_json::to_value(router.deployments()).unwrap_or_default();
    rep.memory_samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    rep.memory = Some(judge_memory(&rep.memory_samples, args.requests));
    rep.panics = PANICS.load(Ordering::SeqCst);
    rep.config = json!({
        "requests": args.requests, "concurrency": args.concurrency, "seed": args.seed, "grace_ms": args.grace_ms,
        "deadline_ms": TOTAL_MS, "first_token_ms": FIRST_TOKEN_MS, "idle_ms": IDLE_MS, "max_attempts": MAX_ATTEMPTS,
        "faulty_providers": ["openai", "anthropic", "gemini"], "healthy_provider": "openai_compatible",
        "fault_weights": chaos::FAULTS.iter().map(|(w, n)| (n.to_string(), *w)).collect::<BTreeMap<_, _>>(),
        "ok_share": {"calm": chaos::CALM_OK_SHARE, "storm": chaos::STORM_OK_SHARE},
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    rep.judge();

    print!("{}", rep.summary());
    if let Some(dir) = args.report.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_string_pretty(&rep) {
        Ok(text) => match std::fs::write(&args.report, text) {
            Ok(()) => println!("  report               {}", args.report.display()),
            Err(e) => eprintln!("cannot write {}: {e}", args.report.display()),
        },
        Err(e) => eprintln!("cannot serialise the report: {e}"),
    }
    drop(router);
    rt.shutdown_timeout(Duration::from_secs(1));
    server_rt.block_on(server.shutdown());
    std::process::exit(if rep.pass { 0 } else { 1 });
}
