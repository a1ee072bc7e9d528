//! Router overhead over the loopback floor, measured side by side in one run.
//!
//! `cargo run --release -p polyroute --example bench_overhead` (writes a Markdown table to
//! stdout). For each round it interleaves: a raw reqwest POST of the same body to the same
//! mock server (the floor), `Endpoint::chat` (adapter + transport, no routing), and
//! `Router::chat` with routing, breakers, budgets and telemetry on. Medians and p99 are per
//! call; the overhead is the difference to the floor. Interleaving keeps machine noise from
//! favouring one side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use polyroute::provider::{build_provider, Endpoint, HttpTransport, ProviderConfig, ProviderKind, TransportOptions};
use polyroute::{ChatRequest, Message, Router};
use polyroute_mock_server::{start, ServerOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
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
  b: {{provider: m, model: bench-b}}
routes:
  - {{name: main, deployments: [a, b], fallbacks: [{{static_response: "sorry"}}]}}
budgets:
  - {{name: global, limit_usd: 1000000.0, period: month}}
"#,
        srv.base_url()
    );
    let router = Router::from_policy_str(&policy).unwrap();
    if std::env::var_os("BENCH_NO_CALLBACK").is_none() {
        router.subscribe(|_| {});
    }
    let cfg = ProviderConfig::new("m", ProviderKind::Openai, srv.base_url()).with_api_key("sk-test-not-a-real-key");
    let ep = Endpoint::new(build_provider(cfg).unwrap(), Arc::new(HttpTransport::new(&TransportOptions::default()).unwrap()));
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", srv.base_url());
    let req = ChatRequest::new(vec![Message::user("hello there")]);
    let body = serde_json::json!({"model": "bench-a", "messages": [{"role": "user", "content": "hello there"}]}).to_string();

    // warm up connections and caches
    for _ in 0..200 {
        client.post(&url).header("content-type", "application/json").body(body.clone()).send().await.unwrap().bytes().await.unwrap();
        ep.chat("bench-a", &req).await.unwrap();
        router.chat(req.clone()).await.unwrap();
    }
    let (mut raw, mut endpoint, mut routed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let r = client.post(&url).header("content-type", "application/json").body(body.clone()).send().await.unwrap();
        let b = r.bytes().await.unwrap();
        let _: serde_json::Value = serde_json::from_slice(&b).unwrap();
        raw.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        ep.chat("bench-a", &req).await.unwrap();
        endpoint.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        router.chat(req.clone()).await.unwrap();
        routed.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (r50, r99) = (pct(&mut raw, 0.5), pct(&mut raw, 0.99));
    let (e50, e99) = (pct(&mut endpoint, 0.5), pct(&mut endpoint, 0.99));
    let (p50, p99) = (pct(&mut routed, 0.5), pct(&mut routed, 0.99));

    // throughput at concurrency 64, same interleaving idea: alternate 2-second windows
    async fn tput<F, Fut>(conc: usize, secs: f64, f: F) -> f64
    where
        F: Fn() -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let stop = Instant::now() + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let mut k = 0u64;
                while Instant::now() < stop {
                    f().await;
                    k += 1;
                }
                k
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total as f64 / secs
    }
    let (mut tr, mut tp) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (c, u, b) = (client.clone(), url.clone(), body.clone());
        tr.push(
            tput(64, 2.0, move || {
                let (c, u, b) = (c.clone(), u.clone(), b.clone());
                async move {
                    let r = c.post(&u).header("content-type", "application/json").body(b).send().await.unwrap();
                    let b = r.bytes().await.unwrap();
                    let _: serde_json::Value = serde_json::from_slice(&b).unwrap();
                }
            })
            .await,
        );
        let (rt, rq) = (router.clone(), req.clone());
        tp.push(
            tput(64, 2.0, move || {
                let (rt, rq) = (rt.clone(), rq.clone());
                async move {
                    rt.chat(rq).await.unwrap();
                }
            })
            .await,
        );
    }
    let (tr, tp) = (pct(&mut tr, 0.5), pct(&mut tp, 0.5));
    println!("| path (n={n}, interleaved) | p50 µs | p99 µs | added p50 µs | added p99 µs |");
    println!("|---|---|---|---|---|");
    println!("| raw reqwest POST + JSON parse (floor) | {r50:.0} | {r99:.0} | – | – |");
    println!("| `Endpoint::chat` (adapter + transport) | {e50:.0} | {e99:.0} | {:.0} | {:.0} |", e50 - r50, e99 - r99);
    println!("| `Router::chat` (routing, breaker, budget, telemetry) | {p50:.0} | {p99:.0} | {:.0} | {:.0} |", p50 - r50, p99 - r99);
    println!();
    println!("| throughput at concurrency 64 (median of 3 × 2 s, alternating) | req/s | ratio |");
    println!("|---|---|---|");
    println!("| raw reqwest | {tr:.0} | 1.00 |");
    println!("| `Router::chat` | {tp:.0} | {:.2} |", tp / tr);
}
