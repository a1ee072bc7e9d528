//! Router overhead over the loopback floor, measured side by side in one run.
//!
//! `cargo run --release -p polyroute --example bench_overhead [-- N]` (writes Markdown to
//! stdout). Four clients of the same mock server: a raw reqwest POST of the same body (the
//! floor), `Endpoint::chat` (adapter + transport, no routing), `Router::chat` (routing,
//! breakers, budget, telemetry on), all as a router sends to a plain-`http` provider (the
//! async inline client, `provider::inline`), and `Router::chat` with `inline_http: false`
//! (reqwest: what the router adds where it sends over reqwest, as to every `https`
//! provider). The routers have a no-op callback subscribed, as an application that logs
//! events has (`BENCH_NO_CALLBACK=1` leaves it off); the throughput table adds a router that
//! never had one. Three orders, because their gaps are the machine's hand-off cost (issue 18):
//! - interleaved: one call of each path per round, each round in its own (seeded, shuffled)
//!   order, so neither machine noise nor a path's place favours a side;
//! - back to back: blocks of 100 calls of one path, blocks alternating;
//! - idle gap: interleaved with a 1 ms sleep before each call, so the runtime's threads park
//!   and every call pays the wake-ups a service at low traffic pays.
//!
//! Beside latency: process CPU time and context switches per call (getrusage, the whole
//! process, so the in-process mock server's share is in every row alike; the differences
//! are what a path costs). Throughput at concurrency 64 gives CPU-µs per request too.
//!
//! Then sync callers, from a plain thread outside the runtime: a raw blocking socket (the
//! floor the issue's "sync call" target is measured against), `Router::chat` under
//! `Handle::block_on` (the future on the calling thread, the request on the async inline
//! client, whose socket the runtime's IO driver watches) and under
//! `polyroute::provider::inline::block_on` (the request on the calling thread's blocking
//! socket), and `Endpoint::chat` under it (the same HTTP without routing: what is left of the
//! gap to the socket is the router's). Built with `--features probe`, it also prints the
//! routed sync call's time phase by phase (`core/src/probe.rs`).

/// The allocator the bindings and the gateway ship with (mimalloc), so these figures are
/// theirs. A Rust application chooses its own; BENCHMARKS.md has glibc's figures beside.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use polyroute::provider::inline;
use polyroute::provider::{build_provider, Endpoint, HttpTransport, ProviderConfig, ProviderKind, TransportOptions};
use polyroute::{ChatRequest, Message, Router};
use polyroute_mock_server::{start, ServerOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

/// Process CPU time (µs) and context switches (voluntary + involuntary) so far.
fn usage() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (us(u.ru_utime) + us(u.ru_stime), (u.ru_nvcsw + u.ru_nivcsw) as f64)
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Raw,
    Endpoint,
    Routed,
    RoutedReqwest,
    /// `Router::chat` with no callback subscribed (throughput only): a callback costs a few
    /// CPU-µs per request at concurrency 64 (event delivery, see BENCHMARKS.md).
    RoutedQuiet,
}
const PATHS: [Path; 4] = [Path::Raw, Path::Endpoint, Path::Routed, Path::RoutedReqwest];
const TPUT_PATHS: [Path; 5] = [Path::Raw, Path::Endpoint, Path::Routed, Path::RoutedReqwest, Path::RoutedQuiet];

struct Clients {
    client: reqwest::Client,
    url: String,
    body: String,
    ep: Endpoint,
    router: Router,
    /// The same policy with `inline_http: false`.
    router_reqwest: Router,
    /// The same policy, never subscribed to.
    router_quiet: Router,
    req: ChatRequest,
}

impl Clients {
    async fn call(&self, p: Path) {
        match p {
            Path::Raw => raw_call(&self.client, &self.url, &self.body).await,
            Path::Endpoint => drop(self.ep.chat("bench-a", &self.req).await.unwrap()),
            Path::Routed => drop(self.router.chat(self.req.clone()).await.unwrap()),
            Path::RoutedReqwest => drop(self.router_reqwest.chat(self.req.clone()).await.unwrap()),
            Path::RoutedQuiet => drop(self.router_quiet.chat(self.req.clone()).await.unwrap()),
        }
    }
}

async fn raw_call(c: &reqwest::Client, url: &str, body: &str) {
    let r = c.post(url).header("content-type", "application/json").body(body.to_string()).send().await.unwrap();
    let b = r.bytes().await.unwrap();
    let _: serde_json::Value = serde_json::from_slice(&b).unwrap();
}

/// One path's calls in one order: latencies, and CPU/context switches summed around them.
#[derive(Default)]
struct Series {
    lat: Vec<f64>,
    cpu_us: f64,
    csw: f64,
    /// Per call, the phases the core marked (built with `--features probe`; else empty).
    phases: Vec<Vec<(&'static str, Instant)>>,
}

impl Series {
    async fn time(&mut self, cl: &Clients, p: Path) {
        let (c0, s0) = usage();
        let t = Instant::now();
        cl.call(p).await;
        self.lat.push(t.elapsed().as_secs_f64() * 1e6);
        let (c1, s1) = usage();
        self.cpu_us += c1 - c0;
        self.csw += s1 - s0;
    }
}

#[derive(Clone, Copy)]
enum Order {
    Interleaved,
    BackToBack,
    IdleGap,
}

async fn measure(cl: &Clients, order: Order, n: usize) -> Vec<Series> {
    let mut s: Vec<Series> = PATHS.iter().map(|_| Series::default()).collect();
    match order {
        Order::Interleaved | Order::IdleGap => {
            let mut rng = shuffler();
            for _ in 0..n {
                for i in round_order(&mut rng, PATHS.len()) {
                    if matches!(order, Order::IdleGap) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    s[i].time(cl, PATHS[i]).await;
                }
            }
        }
        Order::BackToBack => {
            for _ in 0..n.div_ceil(100) {
                for (i, p) in PATHS.iter().enumerate() {
                    for _ in 0..100 {
                        s[i].time(cl, *p).await;
                    }
                }
            }
        }
    }
    s
}

/// Each interleaved round calls the paths in an order of its own (seeded, so runs repeat): in
/// a fixed order a path pays for its place (the Swift bench's row after the floor paid up to 35
/// CPU-µs more after a gap, issue 18 seventeenth round), and a rotation keeps every path's
/// predecessor.
fn shuffler() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(18)
}

fn round_order(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), rng);
    order
}

fn print_order(name: &str, n: usize, s: &mut [Series]) {
    let labels = [
        "raw reqwest POST + JSON parse (floor)",
        "`Endpoint::chat` (adapter + transport)",
        "`Router::chat` (routing, breaker, budget, telemetry)",
        "`Router::chat` over reqwest (`inline_http: false`)",
    ];
    print_table(name, n, &labels, s);
}

/// One table: each series against the first (the floor).
fn print_table(title: &str, n: usize, labels: &[&str], s: &mut [Series]) {
    println!("| {title} (n={n}) | p50 µs | p99 µs | added p50 µs | added p99 µs | CPU µs/call | context switches/call |");
    println!("|---|---|---|---|---|---|---|");
    let (f50, f99) = (pct(&mut s[0].lat, 0.5), pct(&mut s[0].lat, 0.99));
    for (i, x) in s.iter_mut().enumerate() {
        let (p50, p99) = (pct(&mut x.lat, 0.5), pct(&mut x.lat, 0.99));
        let k = x.lat.len() as f64;
        let added = if i == 0 { "– | –".to_string() } else { format!("{:.0} | {:.0}", p50 - f50, p99 - f99) };
        println!("| {} | {p50:.0} | {p99:.0} | {added} | {:.1} | {:.2} |", labels[i], x.cpu_us / k, x.csw / k);
    }
    println!();
}

/// Requests per second and process CPU-µs per request at `conc` concurrent callers.
async fn tput(cl: &Arc<Clients>, p: Path, conc: usize, secs: f64) -> (f64, f64) {
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let (c0, _) = usage();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let cl = cl.clone();
        tasks.push(tokio::spawn(async move {
            let mut k = 0u64;
            while Instant::now() < stop {
                cl.call(p).await;
                k += 1;
            }
            k
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let (c1, _) = usage();
    (total as f64 / secs, (c1 - c0) / total as f64)
}

/// HTTP/1.1 by hand on one kept-alive blocking socket: the least a sync caller can do.
struct RawSocket {
    s: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl RawSocket {
    fn new(addr: &str, path: &str, body: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let request =
            format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                .into_bytes();
        RawSocket { s, request, buf: Vec::with_capacity(16384) }
    }

    fn call(&mut self) {
        self.s.write_all(&self.request).unwrap();
        self.buf.clear();
        let mut chunk = [0u8; 16384];
        let (head_end, len) = loop {
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i]).to_ascii_lowercase();
                let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).expect("content-length").trim().parse().unwrap();
                break (i + 4, len);
            }
        };
        while self.buf.len() < head_end + len {
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let _: serde_json::Value = serde_json::from_slice(&self.buf[head_end..head_end + len]).unwrap();
    }
}

/// Sync callers, interleaved, from this (non-runtime) thread; `gap` sleeps 1 ms before each.
fn measure_sync(rt: &tokio::runtime::Handle, cl: &Clients, raw: &mut RawSocket, n: usize, gap: bool) -> Vec<Series> {
    let mut s: Vec<Series> = (0..5).map(|_| Series::default()).collect();
    let mut rng = shuffler();
    for _ in 0..n {
        for i in round_order(&mut rng, s.len()) {
            let x = &mut s[i];
            if gap {
                std::thread::sleep(Duration::from_millis(1));
            }
            let (c0, s0) = usage();
            polyroute::probe::take();
            polyroute::probe::mark("start");
            let t = Instant::now();
            match i {
                0 => raw.call(),
                1 => drop(rt.block_on(cl.router.chat(cl.req.clone())).unwrap()),
                2 => drop(inline::block_on(rt, cl.router.chat(cl.req.clone())).unwrap()),
                3 => drop(inline::block_on(rt, cl.router_quiet.chat(cl.req.clone())).unwrap()),
                _ => drop(inline::block_on(rt, cl.ep.chat("bench-a", &cl.req)).unwrap()),
            }
            x.lat.push(t.elapsed().as_secs_f64() * 1e6);
            polyroute::probe::mark("leave block_on, drop answer");
            if i == 2 {
                // Without the `probe` feature there are no marks, and no phase table.
                let marks = polyroute::probe::take();
                if !marks.is_empty() {
                    x.phases.push(marks);
                }
            }
            let (c1, s1) = usage();
            x.cpu_us += c1 - c0;
            x.csw += s1 - s0;
        }
    }
    s
}

/// With `--features probe`: the median time of each phase of the sync routed call under
/// `inline::block_on`, interleaved and after an idle gap, each phase named by the mark that
/// ends it (`core/src/probe.rs`; a phase marked twice in one call, as a second read, is summed).
fn print_phases(a: &Series, b: &Series) {
    if a.phases.is_empty() {
        return;
    }
    let split = |s: &Series| {
        let mut order: Vec<&'static str> = Vec::new();
        let mut per: std::collections::HashMap<&'static str, Vec<f64>> = std::collections::HashMap::new();
        for call in &s.phases {
            let mut this: Vec<(&'static str, f64)> = Vec::new();
            for w in call.windows(2) {
                let us = w[1].1.duration_since(w[0].1).as_secs_f64() * 1e6;
                match this.iter_mut().find(|(l, _)| *l == w[1].0) {
                    Some(e) => e.1 += us,
                    None => this.push((w[1].0, us)),
                }
            }
            for (l, us) in this {
                if !order.contains(&l) {
                    order.push(l);
                }
                per.entry(l).or_default().push(us);
            }
        }
        (order, per)
    };
    let ((order, mut pa), (_, mut pb)) = (split(a), split(b));
    println!("| phase of `Router::chat` under `inline::block_on` (ended by the mark) | interleaved p50 µs | idle gap p50 µs |");
    println!("|---|---|---|");
    let (mut sa, mut sb) = (0.0, 0.0);
    for l in order {
        let x = pa.get_mut(l).map(|v| pct(v, 0.5)).unwrap_or(f64::NAN);
        let y = pb.get_mut(l).map(|v| pct(v, 0.5)).unwrap_or(f64::NAN);
        sa += x;
        sb += y;
        println!("| {l} | {x:.2} | {y:.2} |");
    }
    println!("| sum of the medians | {sa:.1} | {sb:.1} |");
    println!();
}

fn print_sync(name: &str, n: usize, s: &mut [Series]) {
    let labels = [
        "raw blocking socket + JSON parse (floor)",
        "`Router::chat` under `Handle::block_on` (async inline client)",
        "`Router::chat` under `inline::block_on` (calling thread)",
        "the same, router without a callback ever subscribed",
        "`Endpoint::chat` under `inline::block_on` (the HTTP part alone: no routing)",
    ];
    print_table(&format!("sync callers, {name}"), n, &labels, s);
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
    let reqwest_only = TransportOptions { inline_http: false, ..TransportOptions::default() };
    let router_reqwest = Router::with_options(polyroute::Policy::from_str(&policy).unwrap(), reqwest_only).unwrap();
    if std::env::var_os("BENCH_NO_CALLBACK").is_none() {
        router.subscribe(|_| {});
        router_reqwest.subscribe(|_| {});
    }
    let cfg = ProviderConfig::new("m", ProviderKind::Openai, srv.base_url()).with_api_key("sk-test-not-a-real-key");
    let cl = Arc::new(Clients {
        client: reqwest::Client::new(),
        url: format!("{}/chat/completions", srv.base_url()),
        body: serde_json::json!({"model": "bench-a", "messages": [{"role": "user", "content": "hello there"}]}).to_string(),
        ep: Endpoint::new(build_provider(cfg).unwrap(), Arc::new(HttpTransport::new(&TransportOptions::default()).unwrap())),
        router,
        router_reqwest,
        router_quiet: Router::from_policy_str(&policy).unwrap(),
        req: ChatRequest::new(vec![Message::user("hello there")]),
    });

    // `BENCH_TICKER=1`: keep a timer always armed, so the per-attempt first-token timeout never
    // has to wake the parked timer driver (a tokio driver parked without a deadline is
    // unparked by the first new timer). Measured: -0.5 context switches per call, no change in
    // latency (BENCHMARKS.md, issue 18).
    if std::env::var_os("BENCH_TICKER").is_some() {
        tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    // warm up connections and caches
    for _ in 0..200 {
        for p in PATHS {
            cl.call(p).await;
        }
    }
    // For a profiler: only `Router::chat` for 10 s, from one sync caller under
    // `inline::block_on` (`BENCH_PROFILE=sync`) or at concurrency 64 (`BENCH_PROFILE=1`).
    if std::env::var("BENCH_PROFILE").is_ok_and(|v| v == "sync") {
        let (cl, rt) = (cl.clone(), tokio::runtime::Handle::current());
        let t = std::thread::spawn(move || {
            // `BENCH_GAP=1`: a 1 ms sleep before each call, as in the idle-gap order. CPU per
            // call is the process's, so what other threads do during a sleep (the callback's
            // delivery thread, the mock server) is in it.
            let gap = std::env::var_os("BENCH_GAP").is_some();
            let (stop, mut k) = (Instant::now() + Duration::from_secs(10), 0u64);
            let (c0, _) = usage();
            while Instant::now() < stop {
                if gap {
                    std::thread::sleep(Duration::from_millis(1));
                }
                inline::block_on(&rt, cl.router.chat(cl.req.clone())).unwrap();
                k += 1;
            }
            (k, (usage().0 - c0) / k as f64)
        });
        let (k, cpu) = tokio::task::spawn_blocking(move || t.join().unwrap()).await.unwrap();
        println!("sync Router::chat alone: {:.0} calls/s, {cpu:.1} CPU µs/call", k as f64 / 10.0);
        return;
    }
    if std::env::var_os("BENCH_PROFILE").is_some() {
        let (rps, cpu) = tput(&cl, Path::Routed, 64, 10.0).await;
        println!("Router::chat alone: {rps:.0} req/s, {cpu:.1} CPU µs/request");
        return;
    }
    let gap_n = (n / 3).max(1);
    // `BENCH_ONLY=sync`: the sync callers alone (what an A/B of the sync path needs);
    // `BENCH_ONLY=c64`: the throughput table alone.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let (sync_only, c64_only) = (only == "sync", only == "c64");
    if !sync_only && !c64_only {
        print_order("interleaved", n, &mut measure(&cl, Order::Interleaved, n).await);
        print_order("back to back, blocks of 100", n, &mut measure(&cl, Order::BackToBack, n).await);
        print_order("idle gap of 1 ms before each call", gap_n, &mut measure(&cl, Order::IdleGap, gap_n).await);
    }

    if !c64_only {
        sync_callers(&cl, srv.base_url(), n, gap_n).await;
    }
    if sync_only {
        return;
    }
    throughput(&cl).await;
}

/// Sync callers, from a thread of their own (a runtime thread may not block).
async fn sync_callers(cl: &Arc<Clients>, base_url: String, n: usize, gap_n: usize) {
    let (cl2, rt, addr) =
        (cl.clone(), tokio::runtime::Handle::current(), base_url.trim_start_matches("http://").split('/').next().unwrap().to_string());
    let url_path = format!("/{}", cl.url.trim_start_matches("http://").split_once('/').unwrap().1);
    let sync = std::thread::spawn(move || {
        let mut raw = RawSocket::new(&addr, &url_path, &cl2.body);
        for _ in 0..200 {
            raw.call();
            inline::block_on(&rt, cl2.router.chat(cl2.req.clone())).unwrap();
            inline::block_on(&rt, cl2.router_quiet.chat(cl2.req.clone())).unwrap();
            inline::block_on(&rt, cl2.ep.chat("bench-a", &cl2.req)).unwrap();
        }
        let a = measure_sync(&rt, &cl2, &mut raw, n, false);
        let b = measure_sync(&rt, &cl2, &mut raw, gap_n, true);
        (a, b)
    });
    let (mut a, mut b) = tokio::task::spawn_blocking(move || sync.join().unwrap()).await.unwrap();
    print_sync("interleaved", n, &mut a);
    print_sync("idle gap of 1 ms before each call", gap_n, &mut b);
    print_phases(&a[2], &b[2]);
}

async fn throughput(cl: &Arc<Clients>) {
    // Throughput at concurrency 64, alternating 2-second windows: five rounds, as three let
    // one slow window of a shared VM move a median by a tenth.
    let mut t: Vec<Vec<(f64, f64)>> = TPUT_PATHS.iter().map(|_| Vec::new()).collect();
    for _ in 0..5 {
        for (i, p) in TPUT_PATHS.iter().enumerate() {
            t[i].push(tput(cl, *p, 64, 2.0).await);
        }
    }
    let med = |v: &mut Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let m: Vec<(f64, f64)> = t.iter_mut().map(med).collect();
    println!("| throughput at concurrency 64 (median of 5 × 2 s, alternating) | req/s | ratio | CPU µs/request |");
    println!("|---|---|---|---|");
    let names = ["raw reqwest", "`Endpoint::chat`", "`Router::chat`", "`Router::chat` over reqwest", "`Router::chat`, no callback subscribed"];
    for (i, name) in names.iter().enumerate() {
        println!("| {name} | {:.0} | {:.2} | {:.1} |", m[i].0, m[i].0 / m[0].0, m[i].1);
    }
}
