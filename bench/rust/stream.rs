//! What streaming adds per chunk: `Router::stream` against a raw reqwest SSE reader of the
//! same mock stream, side by side in one run (issue 18's target: at most 1 µs per chunk).
//!
//! `cargo run --release -p polyroute --example bench_stream [-- N]` (Markdown on stdout).
//! Each path reads a 1-word and a 257-word stream (the mock sends one word per chunk); the
//! difference between the two, less the raw reader's difference, divided by the 256 extra
//! chunks, is what the router adds per chunk. Two ways the chunks arrive:
//! - burst: the mock writes the whole stream at once, so the cost is parsing, normalising
//!   and handing each event over (p50 of wall time and process CPU per stream);
//! - spaced: 1 ms between chunks, so every chunk is its own read and wake-up, as with a real
//!   provider; wall time is the mock's pauses, so only CPU per chunk is reported.
//!
//! CPU is the whole process's (getrusage), the in-process mock's share alike in every row.

/// The allocator the bindings and the gateway ship with (mimalloc), so these figures are
/// theirs. A Rust application chooses its own; BENCHMARKS.md has glibc's figures beside.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use futures::StreamExt;
use polyroute::provider::mock::{MockScript, MockStep};
use polyroute::{ChatRequest, Message, Router};
use polyroute_mock_server::{start, ServerOptions};

const EXTRA_CHUNKS: f64 = 256.0;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

/// Process CPU time so far, µs.
fn cpu_us() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(u.ru_utime) + us(u.ru_stime)
}

struct Setup {
    client: reqwest::Client,
    url: String,
    /// Router per script name.
    routers: Vec<(String, Router)>,
}

impl Setup {
    /// A raw SSE reader: split events on blank lines and parse each `data:` payload, the
    /// least any client does with a stream. Returns the number of events.
    async fn raw(&self, script: &str) -> usize {
        let body = serde_json::json!({"model": script, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
        let resp = self.client.post(&self.url).header("content-type", "application/json").body(body).send().await.unwrap();
        let mut bytes = resp.bytes_stream();
        let (mut buf, mut n) = (Vec::<u8>::new(), 0);
        while let Some(chunk) = bytes.next().await {
            buf.extend_from_slice(&chunk.unwrap());
            // Events are consumed from a cursor and the rest kept once per read: draining
            // each from the front would copy the remainder per event.
            let mut at = 0;
            while let Some(end) = buf[at..].windows(2).position(|w| w == b"\n\n") {
                let event = &buf[at..at + end];
                at += end + 2;
                if let Some(data) = event.strip_prefix(b"data: ") {
                    let data = data.trim_ascii_end();
                    if data != b"[DONE]" {
                        let _: serde_json::Value = serde_json::from_slice(data).unwrap();
                        n += 1;
                    }
                }
            }
            buf.drain(..at);
        }
        n
    }

    async fn routed(&self, script: &str) -> usize {
        let router = &self.routers.iter().find(|(s, _)| s == script).unwrap().1;
        let mut s = router.stream(ChatRequest::new(vec![Message::user("hi")])).await.unwrap();
        let mut n = 0;
        while let Some(ev) = s.next().await {
            ev.unwrap();
            n += 1;
        }
        n
    }
}

/// p50 wall µs and mean CPU µs per stream, for raw and routed, short and long, interleaved.
async fn measure(s: &Setup, short: &str, long: &str, n: usize) -> [(f64, f64); 4] {
    let mut wall = [(); 4].map(|_| Vec::with_capacity(n));
    let mut cpu = [0.0; 4];
    for _ in 0..n {
        for (i, (routed, script)) in [(false, short), (false, long), (true, short), (true, long)].into_iter().enumerate() {
            let (t, c) = (Instant::now(), cpu_us());
            if routed {
                s.routed(script).await;
            } else {
                s.raw(script).await;
            }
            cpu[i] += cpu_us() - c;
            wall[i].push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let mut out = [(0.0, 0.0); 4];
    for i in 0..4 {
        out[i] = (pct(&mut wall[i], 0.5), cpu[i] / n as f64);
    }
    out
}

fn print(title: &str, n: usize, r: [(f64, f64); 4], wall: bool) {
    let per = |a: f64, b: f64, c: f64, d: f64| ((d - c) - (b - a)) / EXTRA_CHUNKS;
    println!("| {title} (n={n} each) | 1 chunk | 257 chunks | per extra chunk |");
    println!("|---|---|---|---|");
    let rows = [("raw reqwest SSE + JSON parse", 0), ("`Router::stream`", 2)];
    for (label, i) in rows {
        if wall {
            let d = (r[i + 1].0 - r[i].0) / EXTRA_CHUNKS;
            println!("| {label}, p50 µs | {:.0} | {:.0} | {d:.2} |", r[i].0, r[i + 1].0);
        }
        let d = (r[i + 1].1 - r[i].1) / EXTRA_CHUNKS;
        println!("| {label}, CPU µs | {:.0} | {:.0} | {d:.2} |", r[i].1, r[i + 1].1);
    }
    if wall {
        println!("| **added by the router per chunk, p50 µs** | | | **{:.2}** |", per(r[0].0, r[1].0, r[2].0, r[3].0));
    }
    println!("| **added by the router per chunk, CPU µs** | | | **{:.2}** |", per(r[0].1, r[1].1, r[2].1, r[3].1));
    println!();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let srv = start(ServerOptions { port: 0, log_capacity: 0 }).await.unwrap();
    let words = |k: usize| vec!["word"; k].join(" ");
    let scripts = [
        ("burst-1", MockStep::text(words(1))),
        ("burst-257", MockStep::text(words(257))),
        ("spaced-1", MockStep::text(words(1)).with_chunk_delay_ms(1)),
        ("spaced-257", MockStep::text(words(257)).with_chunk_delay_ms(1)),
    ];
    let mut routers = Vec::new();
    for (name, step) in scripts {
        srv.set_script(name, MockScript::always(step)).unwrap();
        let policy = format!(
            r#"
providers:
  m: {{kind: openai, base_url: "{}", api_key: "sk-test-not-a-real-key"}}
deployments:
  a: {{provider: m, model: {name}, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
routes:
  - {{name: main, deployments: [a]}}
budgets:
  - {{name: global, limit_usd: 1000000.0, period: month}}
"#,
            srv.base_url()
        );
        let router = Router::from_policy_str(&policy).unwrap();
        router.subscribe(|_| {});
        routers.push((name.to_string(), router));
    }
    let s = Setup { client: reqwest::Client::new(), url: format!("{}/chat/completions", srv.base_url()), routers };
    // Both readers see every chunk: a bench that silently read less would flatter one side.
    for script in ["burst-1", "burst-257"] {
        let (raw, routed) = (s.raw(script).await, s.routed(script).await);
        assert!(raw >= 257 * usize::from(script == "burst-257") && routed >= raw, "{script}: raw {raw} events, routed {routed}");
    }
    // For a profiler: `BENCH_PROFILE=spaced` (or `spaced-raw`) reads only that stream, 20 times.
    if let Ok(which) = std::env::var("BENCH_PROFILE") {
        let c = cpu_us();
        for _ in 0..20 {
            match which.as_str() {
                "spaced-raw" => s.raw("spaced-257").await,
                _ => s.routed("spaced-257").await,
            };
        }
        println!("{which}: {:.1} CPU µs per stream", (cpu_us() - c) / 20.0);
        return;
    }
    for _ in 0..100 {
        measure(&s, "burst-1", "burst-257", 1).await;
    }
    print("burst: the whole stream in one write", n, measure(&s, "burst-1", "burst-257", n).await, true);
    let spaced_n = (n / 50).max(5);
    print("spaced: 1 ms between chunks", spaced_n, measure(&s, "spaced-1", "spaced-257", spaced_n).await, false);
}
