//! Fuzz the policy loader and the router built from it with numeric edge cases in every
//! numeric field: durations as integers, floats and text with units, counts, weights,
//! prices, budget limits and rates.
//!
//! Invariants: `Router::from_policy_str` never panics (a panic here would cross into Python,
//! Node or Swift); it either builds a router or returns a `config` error naming a path; a
//! router that was built can plan a request (deadline arithmetic included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use polyroute::{ChatRequest, ErrorKind, Message, Router};

/// Values that have broken loaders before, plus whatever the fuzzer derives from its bytes.
const EDGES: &[&str] = &[
    "0", "1", "-1", "1e30", "-1e30", "1e308", "1e-308", "NaN", ".inf", "-.inf", "18446744073709551615", "18446744073709551616",
    "4294967295", "4294967296", "9223372036854775807", "\"48h\"", "\"9999999h\"", "\"1e30s\"", "\"0.0000001ns\"", "\"1h1h1h1h\"",
    "\"1.5\"", "\"\"", "\"ms\"", "\"-5s\"", "\"99999999999999999999s\"", "true", "null", "[]", "{}",
];

fn value(b: &[u8], i: usize) -> String {
    let pick = b.get(i).copied().unwrap_or(0) as usize;
    if pick < EDGES.len() * 4 {
        return EDGES[pick % EDGES.len()].to_string();
    }
    // A number from the following eight bytes, as an integer, a float or a duration text.
    let mut raw = [0u8; 8];
    for (k, r) in raw.iter_mut().enumerate() {
        *r = b.get(i + 1 + k).copied().unwrap_or(0);
    }
    let n = u64::from_le_bytes(raw);
    match pick % 3 {
        0 => n.to_string(),
        1 => format!("{:e}", f64::from_bits(n)),
        _ => format!("\"{}{}\"", n >> (pick % 64), ["h", "m", "s", "ms", "us", "ns"][pick % 6]),
    }
}

fuzz_target!(|data: &[u8]| {
    let v = |k: usize| value(data, k * 9);
    let yaml = format!(
        r#"
providers:
  p: {{kind: mock}}
deployments:
  a: {{provider: p, model: m-a, weight: {w}, context_window: {cw}, max_output_tokens: {mo},
      pricing: {{input_per_mtok: {pi}, output_per_mtok: {po}}}, rate_limit: {{requests_per_minute: {rpm}, tokens_per_minute: {tpm}}},
      timeouts: {{first_token: {ft}}}}}
  b: {{provider: p, model: m-b}}
routes:
  - name: main
    strategy: hedged
    deployments: [a, b]
    retry: {{attempts_per_deployment: {apd}, max_attempts: {ma}, base_delay: {bd}, max_delay: {md}, max_retry_after: {mra}, wait_for_reopen: {wfr}, max_request_cost_usd: {mrc}}}
    timeouts: {{first_token: {rft}, idle: {idle}, total: {total}}}
    hedge: {{delay: {hd}, min_delay: {hmd}}}
budgets:
  - {{name: b1, limit_usd: {lu}, period: day}}
breaker: {{failure_rate: {fr}, consecutive_failures: {cf}, open_for: {of}, max_open_for: {mof}, ban_open_for: {bof}, window: {bw}, min_calls: {mc}}}
retry_budget: {{ratio: {rr}, min_per_second: {rm}, window: {rw}}}
"#,
        w = v(0), cw = v(1), mo = v(2), pi = v(3), po = v(4), rpm = v(5), tpm = v(6), ft = v(7), apd = v(8), ma = v(9),
        bd = v(10), md = v(11), mra = v(12), wfr = v(13), mrc = v(14), rft = v(15), idle = v(16), total = v(17), hd = v(18),
        hmd = v(19), lu = v(20), fr = v(21), cf = v(22), of = v(23), mof = v(24), bof = v(25), bw = v(26), mc = v(27),
        rr = v(28), rm = v(29), rw = v(30),
    );
    match Router::from_policy_str(&yaml) {
        Ok(r) => {
            let _ = r.plan(&ChatRequest::new(vec![Message::user("hi")]));
            let _ = serde_json::to_string(&r.policy()).expect("a policy serialises");
        }
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Config, "{}", e.message);
            assert!(!e.message.is_empty());
        }
    }
});
