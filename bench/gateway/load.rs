//! Load generator for `bench/gateway/run.sh`: OpenAI chat-completion requests (non-streamed,
//! small body) against gateways on loopback, with kept-alive HTTP/1.1 connections.
//!
//! Built as an example of `polyroute-server` (its dev-dependencies already have reqwest and a
//! multi-thread tokio): `cargo build --release -p polyroute-server --example gateway_load`.
//! It talks HTTP only; it links nothing of the gateway.
//!
//! Targets come from a JSON file: `[{"name": "floor", "url": "http://127.0.0.1:P/v1/chat/completions",
//! "model": "bench", "headers": {"x-portkey-provider": "openai"}}, ...]`.
//!
//! ```text
//! gateway_load check      --targets T.json --expect TEXT
//! gateway_load latency    --targets T.json --n N --warmup W --block B
//! gateway_load throughput --targets T.json --only NAME --concurrency C --duration S --warmup S
//!                         [--pid PID] [--clk-tck 100] --expect TEXT
//! ```
//!
//! Every command prints one JSON object on stdout. `check` exits non-zero unless every target
//! answers 200 with `expect` in its body. `latency` sends requests one at a time (concurrency
//! 1, one connection per target), in blocks of B consecutive requests per target, rotating
//! targets, so every target sees the same machine noise and its path is hot. `throughput`
//! first opens its C connections with at most 16 requests in flight (until each of the C
//! workers has had an answer), then keeps C requests in flight for the warm-up and the
//! measured duration; it counts the requests completed inside the measured window, every
//! non-200 (and every 200 without `expect` in its body, and every transport error) as an
//! error, and with `--pid` the CPU time (utime + stime from /proc) of that process and all its
//! descendants over the same window.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const USAGE: &str = "usage: gateway_load (check|latency|throughput) --targets FILE [--only NAME] [--expect TEXT] \
[--n N] [--warmup N|SECONDS] [--block N] [--concurrency C] [--duration SECONDS] [--pid PID] [--clk-tck N] [--threads N]";

#[derive(Clone)]
struct Target {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
}

struct Args {
    cmd: String,
    targets: Vec<Target>,
    only: Option<String>,
    expect: String,
    n: usize,
    warmup: f64,
    block: usize,
    concurrency: usize,
    duration: f64,
    pid: Option<u32>,
    clk_tck: u64,
    threads: usize,
}

fn fail(msg: &str) -> ! {
    eprintln!("gateway_load: {msg}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_else(|| fail(USAGE));
    let mut a = Args {
        cmd,
        targets: Vec::new(),
        only: None,
        expect: "echo: hello mock".into(),
        n: 1000,
        warmup: 0.0,
        block: 50,
        concurrency: 64,
        duration: 5.0,
        pid: None,
        clk_tck: 100,
        threads: 2,
    };
    let mut targets_file = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        let num = |s: String| -> f64 { s.parse().unwrap_or_else(|_| fail(&format!("not a number: {s}"))) };
        match flag.as_str() {
            "--targets" => targets_file = Some(value()),
            "--only" => a.only = Some(value()),
            "--expect" => a.expect = value(),
            "--n" => a.n = num(value()) as usize,
            "--warmup" => a.warmup = num(value()),
            "--block" => a.block = (num(value()) as usize).max(1),
            "--concurrency" => a.concurrency = (num(value()) as usize).max(1),
            "--duration" => a.duration = num(value()),
            "--pid" => a.pid = Some(num(value()) as u32),
            "--clk-tck" => a.clk_tck = num(value()) as u64,
            "--threads" => a.threads = (num(value()) as usize).max(1),
            _ => fail(&format!("unknown argument `{flag}`\n{USAGE}")),
        }
    }
    let file = targets_file.unwrap_or_else(|| fail("--targets is required"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| fail(&format!("{file}: {e}")));
    let spec: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{file}: {e}")));
    for t in spec {
        let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_else(|| fail(&format!("{file}: a target lacks `{k}`"))).to_string();
        let headers = t
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        // The same small body for every target: one user message, answered by the mock
        // with "echo: hello mock".
        let body = json!({"model": s("model"), "messages": [{"role": "user", "content": "hello mock"}], "max_tokens": 16}).to_string();
        a.targets.push(Target { name: s("name"), url: s("url"), headers, body: body.into() });
    }
    if let Some(only) = &a.only {
        a.targets.retain(|t| &t.name == only);
        if a.targets.is_empty() {
            fail(&format!("no target named {only}"));
        }
    }
    a
}

fn client(max_idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(max_idle)
        .pool_idle_timeout(Duration::from_secs(600))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot build the HTTP client: {e}")))
}

/// One request. Ok(()) for a 200 whose body holds `expect`; Err(label) otherwise.
async fn one(c: &reqwest::Client, t: &Target, expect: &[u8]) -> Result<(), String> {
    let mut rb = c.post(&t.url).header("content-type", "application/json").body(t.body.clone());
    for (k, v) in &t.headers {
        rb = rb.header(k, v);
    }
    let resp = rb.send().await.map_err(|e| if e.is_timeout() { "timeout".to_string() } else { "transport".to_string() })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|_| "body".to_string())?;
    if status != 200 {
        return Err(format!("status_{status}"));
    }
    if !body.windows(expect.len()).any(|w| w == expect) {
        return Err("unexpected_body".into());
    }
    Ok(())
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

async fn check(a: &Args) -> Value {
    let mut out = serde_json::Map::new();
    let mut ok = true;
    for t in &a.targets {
        let c = client(1);
        let mut rb = c.post(&t.url).header("content-type", "application/json").body(t.body.clone());
        for (k, v) in &t.headers {
            rb = rb.header(k, v);
        }
        let (status, body) = match rb.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, format!("transport error: {e}")),
        };
        let good = status == 200 && body.contains(&a.expect);
        ok &= good;
        let content = serde_json::from_str::<Value>(&body).ok().and_then(|v| v.pointer("/choices/0/message/content").cloned());
        out.insert(t.name.clone(), json!({"status": status, "ok": good, "content": content, "body": if good { Value::Null } else { body.into() }}));
    }
    json!({"ok": ok, "targets": out})
}

async fn latency(a: &Args) -> Value {
    let clients: Vec<reqwest::Client> = a.targets.iter().map(|_| client(1)).collect();
    let expect = a.expect.as_bytes();
    let warmup = a.warmup as usize;
    let mut lat: Vec<Vec<u64>> = vec![Vec::with_capacity(a.n); a.targets.len()];
    let mut errors: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); a.targets.len()];
    for (i, t) in a.targets.iter().enumerate() {
        for _ in 0..warmup {
            let _ = one(&clients[i], t, expect).await;
        }
    }
    let mut done = 0;
    let started = Instant::now();
    while done < a.n {
        let k = a.block.min(a.n - done);
        for (i, t) in a.targets.iter().enumerate() {
            for _ in 0..k {
                let s = Instant::now();
                let r = one(&clients[i], t, expect).await;
                let us = s.elapsed().as_micros() as u64;
                match r {
                    Ok(()) => lat[i].push(us),
                    Err(e) => *errors[i].entry(e).or_default() += 1,
                }
            }
        }
        done += k;
    }
    let mut out = serde_json::Map::new();
    for (i, t) in a.targets.iter().enumerate() {
        let v = &mut lat[i];
        v.sort_unstable();
        let mean = if v.is_empty() { 0.0 } else { v.iter().sum::<u64>() as f64 / v.len() as f64 };
        out.insert(
            t.name.clone(),
            json!({"n": v.len(), "p50_us": pct(v, 0.50), "p90_us": pct(v, 0.90), "p99_us": pct(v, 0.99),
                   "mean_us": mean.round(), "max_us": v.last().copied().unwrap_or(0),
                   "errors": errors[i].values().sum::<u64>(), "error_kinds": errors[i]}),
        );
    }
    json!({"mode": "latency", "n_per_target": a.n, "warmup_per_target": warmup, "block": a.block,
           "seconds": started.elapsed().as_secs_f64(), "targets": out})
}

/// utime + stime, in clock ticks, of `root` and every live descendant (the children's own
/// counters, plus root's cutime + cstime for children already reaped).
fn cpu_ticks(root: u32) -> (u64, Vec<u32>) {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut ticks: HashMap<u32, (u64, u64)> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // The command name (field 2) may contain spaces; fields after its ')' are plain.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
            let g = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            parent.insert(pid, g(4) as u32);
            ticks.insert(pid, (g(14) + g(15), g(16) + g(17)));
        }
    }
    let mut members = vec![root];
    let mut i = 0;
    while i < members.len() {
        let p = members[i];
        members.extend(parent.iter().filter(|(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    let own: u64 = members.iter().filter_map(|p| ticks.get(p)).map(|t| t.0).sum();
    let reaped = ticks.get(&root).map(|t| t.1).unwrap_or(0);
    members.sort_unstable();
    (own + reaped, members)
}

/// What the throughput workers share.
struct Shared {
    /// While set, every request holds a permit of `ramp` (RAMP_IN_FLIGHT at a time).
    ramping: AtomicBool,
    ramp: tokio::sync::Semaphore,
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Workers that have had at least one answer (the ramp waits for all of them).
    answered: AtomicU64,
    completed: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    warmup_errors: AtomicU64,
    lat: Mutex<Vec<u64>>,
}

/// Requests in flight while the connections are being opened.
const RAMP_IN_FLIGHT: usize = 16;

async fn worker(c: reqwest::Client, t: Arc<Target>, expect: Arc<[u8]>, sh: Arc<Shared>) {
    let mut mine = Vec::new();
    let mut first = true;
    while !sh.stop.load(Ordering::Relaxed) {
        // Closed when the ramp ends: then acquire fails at once and no permit is held.
        let permit = if sh.ramping.load(Ordering::Relaxed) { sh.ramp.acquire().await.ok() } else { None };
        let s = Instant::now();
        let r = one(&c, &t, &expect).await;
        drop(permit);
        if first {
            first = false;
            sh.answered.fetch_add(1, Ordering::SeqCst);
        }
        // Completions inside the measured window are counted (the usual req/s).
        if sh.measuring.load(Ordering::Relaxed) && !sh.stop.load(Ordering::Relaxed) {
            match r {
                Ok(()) => {
                    sh.completed.fetch_add(1, Ordering::Relaxed);
                    mine.push(s.elapsed().as_micros() as u64);
                }
                Err(e) => *sh.errors.lock().unwrap().entry(e).or_default() += 1,
            }
        } else if r.is_err() && !sh.stop.load(Ordering::Relaxed) {
            sh.warmup_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    sh.lat.lock().unwrap().extend(mine);
}

async fn throughput(a: &Args) -> Value {
    if a.targets.len() != 1 {
        fail("throughput measures one target: use --only NAME");
    }
    let t = Arc::new(a.targets[0].clone());
    let c = client(a.concurrency);
    let expect: Arc<[u8]> = a.expect.as_bytes().into();
    let sh = Arc::new(Shared {
        ramping: AtomicBool::new(true),
        ramp: tokio::sync::Semaphore::new(RAMP_IN_FLIGHT),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        answered: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        warmup_errors: AtomicU64::new(0),
        lat: Mutex::new(Vec::new()),
    });
    let tasks: Vec<_> = (0..a.concurrency).map(|_| tokio::spawn(worker(c.clone(), t.clone(), expect.clone(), sh.clone()))).collect();
    // Ramp: open the C connections at most RAMP_IN_FLIGHT requests at a time, until every
    // worker has had an answer (at most 60 s). Opened all at once, a saturated server whose
    // event loop is libuv's (Node, uvloop) accepts a backlog of new connections only a few
    // per second; this measures the steady state with C kept-alive connections instead.
    let ramp_start = Instant::now();
    let give_up = ramp_start + Duration::from_secs(60);
    while sh.answered.load(Ordering::SeqCst) < a.concurrency as u64 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ramp_s = ramp_start.elapsed().as_secs_f64();
    let answered_after_ramp = sh.answered.load(Ordering::SeqCst);
    sh.ramping.store(false, Ordering::SeqCst);
    sh.ramp.close();
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    let (cpu0, members0) = a.pid.map(cpu_ticks).unwrap_or_default();
    let started = Instant::now();
    sh.measuring.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    sh.stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, members1) = a.pid.map(cpu_ticks).unwrap_or_default();
    let n = sh.completed.load(Ordering::SeqCst);
    // Let the in-flight requests finish (they are not counted) so that their tasks hand over
    // their latencies; give up after 30 s.
    let _ = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(tasks)).await;
    let mut v = std::mem::take(&mut *sh.lat.lock().unwrap());
    v.sort_unstable();
    let errs = sh.errors.lock().unwrap().clone();
    let cpu_s = cpu1.saturating_sub(cpu0) as f64 / a.clk_tck as f64;
    json!({
        "mode": "throughput", "target": t.name, "concurrency": a.concurrency,
        "ramp_s": ramp_s, "workers_answered_after_ramp": answered_after_ramp, "ramp_in_flight": RAMP_IN_FLIGHT,
        "warmup_s": a.warmup, "warmup_errors": sh.warmup_errors.load(Ordering::SeqCst), "duration_s": elapsed,
        "completed": n, "rps": n as f64 / elapsed,
        "errors": errs.values().sum::<u64>(), "error_kinds": errs,
        "latency_p50_us": pct(&v, 0.50), "latency_p99_us": pct(&v, 0.99),
        "cpu": a.pid.map(|p| json!({
            "pid": p, "processes_start": members0, "processes_end": members1,
            "commands_end": members1.iter().map(|m| std::fs::read_to_string(format!("/proc/{m}/cmdline")).unwrap_or_default().replace('\0', " ").trim().to_string()).collect::<Vec<_>>(),
            "cpu_seconds": cpu_s, "cpu_us_per_request": if n > 0 { cpu_s * 1e6 / n as f64 } else { 0.0 },
            "cores_busy": cpu_s / elapsed,
        })),
    })
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the runtime: {e}")));
    let out = rt.block_on(async {
        match a.cmd.as_str() {
            "check" => check(&a).await,
            "latency" => latency(&a).await,
            "throughput" => throughput(&a).await,
            other => fail(&format!("unknown command `{other}`\n{USAGE}")),
        }
    });
    println!("{out}");
    if a.cmd == "check" && out["ok"] != json!(true) {
        std::process::exit(1);
    }
}
