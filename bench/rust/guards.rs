//! What guards cost per KB of prompt, measured side by side in one run.
//!
//! `cargo run --release -p polyroute --example bench_guards [rounds]` prints a Markdown table.
//! Routers differ only in their `guards:` (none; all eight built-in detectors with `redact`;
//! the same with `mask`) and send to one loopback mock server answering "ok" (logging off), so
//! what differs between them is the guard pass. (The in-process mock provider is not used: its
//! zero delay is a tokio timer tick, ~1 ms, which drowns microseconds.) Each round interleaves every router and
//! prompt so machine noise cannot favour one. Prompts: "clean" prose with no finding (the
//! common case: one RegexSet pass) and "dense" text with a finding about every 120 bytes.

use std::time::Instant;

use polyroute::provider::mock::MockScript;
use polyroute::{ChatRequest, Message, Router};
use polyroute_mock_server::{start, ServerOptions};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

fn router(v1: &str, guards: &str) -> Router {
    let policy = format!(
        r#"
providers: {{m: {{kind: openai, base_url: "{v1}", api_key: "sk-test-not-a-real-key"}}}}
deployments: {{a: {{provider: m, model: ok}}}}
routes: [{{name: main, deployments: [a]}}]
{guards}
"#
    );
    Router::from_policy_str(&policy).unwrap()
}

fn prompt(kb: usize, dense: bool) -> String {
    let clean = "The quarterly report covers revenue, churn and the roadmap for next year in detail. ";
    let finding = "Contact jane.doe@example.com or +44 20 7946 0958 about card 4111 1111 1111 1111. ";
    let mut s = String::new();
    let mut i = 0;
    while s.len() < kb * 1024 {
        s.push_str(if dense && i % 2 == 1 { finding } else { clean });
        i += 1;
    }
    s.truncate(kb * 1024);
    s
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let srv = start(ServerOptions { port: 0, log_capacity: 0 }).await.unwrap();
    let ok: MockScript = serde_json::from_value(serde_json::json!({"then": {"text": "ok"}})).unwrap();
    srv.set_script("ok", ok).unwrap();
    let v1 = srv.base_url();
    let all = "[email, phone, credit_card, iban, us_ssn, ip_address, api_key, bearer_token]";
    let routers = [
        ("no guards", router(&v1, "")),
        ("redact, 8 detectors", router(&v1, &format!("guards: [{{name: g, detect: {all}, action: redact}}]"))),
        ("mask, 8 detectors", router(&v1, &format!("guards: [{{name: g, detect: {all}, action: mask}}]"))),
    ];
    let prompts: Vec<(String, ChatRequest)> = [(1, false), (16, false), (64, false), (1, true), (16, true), (64, true)]
        .iter()
        .map(|&(kb, dense)| (format!("{kb} KB {}", if dense { "dense" } else { "clean" }), ChatRequest::new(vec![Message::user(prompt(kb, dense))])))
        .collect();
    let mut times = vec![vec![Vec::with_capacity(rounds); prompts.len()]; routers.len()];
    for round in 0..rounds + 20 {
        for (pi, (_, req)) in prompts.iter().enumerate() {
            // Rotate which router goes first, so a position in the round favours none.
            for k in 0..routers.len() {
                let ri = (k + round) % routers.len();
                let r = &routers[ri].1;
                let t = Instant::now();
                r.chat(req.clone()).await.unwrap();
                if round >= 20 {
                    times[ri][pi].push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
    }
    println!(
        "| prompt | {} | added by redact, µs per KB | added by mask, µs per KB |",
        routers.iter().map(|(n, _)| format!("{n} p50 µs")).collect::<Vec<_>>().join(" | ")
    );
    println!("|---|---|---|---|---|---|");
    for (pi, (name, _)) in prompts.iter().enumerate() {
        let kb: f64 = name.split(' ').next().unwrap().parse().unwrap();
        let p50: Vec<f64> = (0..routers.len()).map(|ri| pct(&mut times[ri][pi], 0.5)).collect();
        println!("| {name} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |", p50[0], p50[1], p50[2], (p50[1] - p50[0]) / kb, (p50[2] - p50[0]) / kb);
    }
}
