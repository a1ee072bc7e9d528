//! What the shared store costs per request: the same router with a budget and a rate limit,
//! its state in process memory or in a real `redis-server` (loopback, no persistence),
//! measured side by side in one run against the in-process mock server.
//!
//! `cargo run --release -p polyroute --example bench_state_store [ROUNDS]` (Markdown to
//! stdout; needs `redis-server` on PATH). Latency at concurrency 1 interleaves one call of
//! each per round; the store's round trips per request are read from Redis's own command
//! statistics (the fleet sync's pipelines are counted apart); throughput runs 64 concurrent
//! callers for 3 s each, with this process's CPU time per request beside it.

use std::time::{Duration, Instant};

use polyroute::{ChatRequest, Message, Router};
use polyroute_mock_server::redis::RedisServer;
use polyroute_mock_server::{start, ServerOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

/// This process's user + system CPU seconds (Linux /proc).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn stat(redis: &RedisServer, cmd: &str) -> u64 {
    let info = redis.cli(&["info", "commandstats"]);
    info.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn throughput(router: &Router, req: &ChatRequest) -> (f64, f64) {
    let stop = Instant::now() + Duration::from_secs(3);
    let c0 = cpu_s();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (r, q) = (router.clone(), req.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < stop {
                    r.chat(q.clone()).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    (n as f64 / secs, (cpu_s() - c0) / n as f64 * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let srv = start(ServerOptions { port: 0, log_capacity: 0 }).await.unwrap();
    let redis = RedisServer::start();
    // BENCH_NO_RPM=1 leaves out the deployment's rate limit (a rolling window of 60 counters).
    let rpm = if std::env::var_os("BENCH_NO_RPM").is_some() { "" } else { ", rate_limit: {requests_per_minute: 100000000}" };
    let policy = |state: &str| {
        format!(
            "providers: {{m: {{kind: openai, base_url: \"{}\", api_key: \"sk-test-not-a-real-key\"}}}}\n\
             deployments: {{a: {{provider: m, model: bench-a, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}{rpm}}}}}\n\
             routes: [{{name: main, deployments: [a]}}]\n\
             budgets: [{{name: global, limit_usd: 1000000.0, period: month}}, {{name: per-tenant, limit_usd: 1000.0, period: day, scope: {{tenant: \"*\"}}}}]\n{state}\n",
            srv.base_url()
        )
    };
    let mem = Router::from_policy_str(&policy("")).unwrap();
    let shared = Router::from_policy_str(&policy(&format!("state: {{redis: {{url: \"{}\", timeout: 1s}}}}", redis.url()))).unwrap();
    let mut req = ChatRequest::new(vec![Message::user("hello there")]);
    req.routing.tenant = Some("acme".into());
    for _ in 0..300 {
        mem.chat(req.clone()).await.unwrap();
        shared.chat(req.clone()).await.unwrap();
    }
    let (e0, p0) = (stat(&redis, "evalsha") + stat(&redis, "eval"), stat(&redis, "exists"));
    let (mut m, mut s) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        mem.chat(req.clone()).await.unwrap();
        m.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        shared.chat(req.clone()).await.unwrap();
        s.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let scripts = (stat(&redis, "evalsha") + stat(&redis, "eval") - e0) as f64 / n as f64;
    let syncs = stat(&redis, "exists") - p0; // one EXISTS per deployment per sync pipeline
    let (mp50, mp99, sp50, sp99) = (pct(&mut m, 0.5), pct(&mut m, 0.99), pct(&mut s, 0.5), pct(&mut s, 0.99));
    let (mt, mc) = throughput(&mem, &req).await;
    let (st, sc) = throughput(&shared, &req).await;
    println!("| store | p50 µs (c=1) | p99 µs (c=1) | req/s (c=64) | CPU µs/req (this process) |");
    println!("|---|---|---|---|---|");
    println!("| memory | {mp50:.0} | {mp99:.0} | {mt:.0} | {mc:.0} |");
    println!("| redis | {sp50:.0} | {sp99:.0} | {st:.0} | {sc:.0} |");
    println!();
    println!(
        "Redis adds {:.0} µs p50 and {:.0} µs p99 per request at c=1; {:.2} scripts (round trips) per request; \
         {syncs} fleet-sync pipelines in the c=1 phase; throughput at c=64 is {:.2}x the memory store's.",
        sp50 - mp50,
        sp99 - mp99,
        scripts,
        st / mt
    );
}
