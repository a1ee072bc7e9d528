//! Response-cache hit latency against a provider call, measured side by side in one run.
//!
//! `cargo run --release -p polyroute --example bench_cache -- 3000` (writes a Markdown table
//! to stdout). One router, one loopback mock server (logging off), two routes to the same
//! deployment: `plain` (no cache) and `cached` (`read_write`). Interleaved call by call:
//! - a provider call through `plain`;
//! - a miss through `cached` (a new question each time: key, lookup, provider call, store);
//! - a hit through `cached` (the same question: key, lookup, trace; no provider call);
//! - a streamed hit (the same question replayed as stream events, read to the end).

use std::time::Instant;

use futures::StreamExt;
use polyroute::{ChatRequest, Message, Router};
use polyroute_mock_server::{start, ServerOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

fn on(route: &str, text: &str) -> ChatRequest {
    let mut r = ChatRequest::new(vec![Message::user(text)]);
    r.routing.route = Some(route.into());
    r
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let srv = start(ServerOptions { port: 0, log_capacity: 0 }).await.unwrap();
    let policy = format!(
        r#"
providers:
  m: {{kind: openai, base_url: "{}", api_key: "sk-test-not-a-real-key"}}
deployments:
  a: {{provider: m, model: bench-a, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
routes:
  - {{name: plain, deployments: [a]}}
  - {{name: cached, deployments: [a], cache: {{mode: read_write, ttl: 1h}}}}
"#,
        srv.base_url()
    );
    let router = Router::from_policy_str(&policy).unwrap();
    router.subscribe(|_| {});
    let question = "hello there, what is the capital of France?";
    for i in 0..200 {
        router.chat(on("plain", question)).await.unwrap();
        router.chat(on("cached", &format!("warm-up {i}"))).await.unwrap();
        router.chat(on("cached", question)).await.unwrap();
    }
    let (mut plain, mut miss, mut hit, mut stream_hit) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        router.chat(on("plain", question)).await.unwrap();
        plain.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        router.chat(on("cached", &format!("question {i}"))).await.unwrap();
        miss.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let r = router.chat(on("cached", question)).await.unwrap();
        hit.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(r.trace.unwrap().cache == Some(polyroute::CacheUse::Hit));
        let t = Instant::now();
        let mut s = router.stream(on("cached", question)).await.unwrap();
        while let Some(ev) = s.next().await {
            ev.unwrap();
        }
        stream_hit.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rows = [
        ("provider call (route without cache)", &mut plain),
        ("cache miss: provider call + store", &mut miss),
        ("cache hit (`Router::chat`)", &mut hit),
        ("cache hit replayed as a stream (`Router::stream`, read to the end)", &mut stream_hit),
    ];
    println!("| path (n={n}, interleaved) | p50 µs | p99 µs |");
    println!("|---|---|---|");
    for (name, v) in rows {
        let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
        println!("| {name} | {p50:.0} | {p99:.0} |");
    }
    let u = router.metrics_text();
    let entries = u.lines().find_map(|l| l.strip_prefix("polyroute_cache_entries ")).unwrap_or("?");
    let bytes = u.lines().find_map(|l| l.strip_prefix("polyroute_cache_bytes ")).unwrap_or("?");
    println!();
    println!("cache after the run: {entries} entries, {bytes} bytes");
}
