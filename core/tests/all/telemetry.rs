//! Telemetry: events in order, metrics content, Prometheus validity (real `promtool`), the
//! example alert rules, and host callbacks that can neither block nor break a request.
//!
//! `promtool` comes from Debian's `prometheus` package; `scripts/test.sh` installs it and sets
//! `POLYROUTE_REQUIRE_PROMTOOL=1`, so in CI these checks cannot silently skip.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polyroute::telemetry::RouterEvent;
use polyroute::{ChatRequest, Message, Router};

const POLICY: &str = r#"
providers:
  pa: {kind: mock, script: {then: {status: 403, error_code: unsupported_country_region_territory}}}
  pb: {kind: mock, script: {then: {text: "hello there", usage: {input_tokens: 100, output_tokens: 20, cache_read_tokens: 40}}}}
deployments:
  a: {provider: pa, model: model-a}
  b: {provider: pb, model: model-b, pricing: {input_per_mtok: 3.0, output_per_mtok: 15.0, cache_read_per_mtok: 0.3}}
routes:
  - name: main
    deployments: [a, b]
"#;

fn req() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

pub(crate) fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("promtool")).find(|p| p.is_file()));
    if found.is_none() && std::env::var("POLYROUTE_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
        panic!("promtool is required (POLYROUTE_REQUIRE_PROMTOOL=1) but not on PATH");
    }
    found
}

#[tokio::test]
async fn events_arrive_in_order_and_metrics_add_up() {
    let r = Router::from_policy_str(POLICY).unwrap();
    let seen: Arc<Mutex<Vec<RouterEvent>>> = Arc::default();
    let s2 = seen.clone();
    r.subscribe(move |e| s2.lock().unwrap().push(e.clone()));
    let resp = r.chat(req()).await.unwrap();
    assert_eq!(resp.content(), "hello there");
    // events are delivered on another thread: wait until they all were
    assert!(r.flush_events(), "events not delivered within the flush bound");
    let kinds: Vec<String> = seen.lock().unwrap().iter().map(|e| serde_json::to_value(e).unwrap()["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        kinds,
        [
            "request_started",
            "attempt_started",
            "attempt_finished",
            "breaker_changed",
            "fallback_taken",
            "attempt_started",
            "attempt_finished",
            "request_finished"
        ]
    );
    let ev = seen.lock().unwrap().clone();
    match &ev[6] {
        RouterEvent::AttemptFinished { outcome, input_tokens, cost_usd, provider_kind, .. } => {
            assert_eq!((outcome.as_str(), *input_tokens, provider_kind.as_str()), ("ok", 100, "openai"));
            // 60 uncached × $3 + 40 cached × $0.3 + 20 out × $15, per million
            let want = (60.0 * 3.0 + 40.0 * 0.3 + 20.0 * 15.0) / 1e6;
            assert!((cost_usd.unwrap() - want).abs() < 1e-12);
        }
        other => panic!("unexpected {other:?}"),
    }
    let m = r.metrics_text();
    for line in [
        r#"polyroute_requests_total{route="main",provider="pb",model="model-b",outcome="ok"} 1"#,
        r#"polyroute_attempts_total{deployment="a",provider="pa",model="model-a",outcome="permission_denied"} 1"#,
        r#"polyroute_fallbacks_total{route="main",from="a",to="b",reason="permission_denied"} 1"#,
        r#"polyroute_tokens_total{provider="pb",model="model-b",direction="cache_read"} 40"#,
        r#"polyroute_deployment_up{deployment="a",provider="pa",model="model-a"} 0"#,
        r#"polyroute_breaker_state{deployment="a",provider="pa",model="model-a",state="open"} 1"#,
        r#"polyroute_breaker_transitions_total{deployment="a",to="open"} 1"#,
        r#"polyroute_request_duration_seconds_count{route="main",outcome="ok"} 1"#,
    ] {
        assert!(m.lines().any(|l| l == line), "missing `{line}` in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_panicking_callbacks_never_block_or_break_requests() {
    let r = Router::from_policy_str(POLICY).unwrap();
    r.subscribe(|_| std::thread::sleep(Duration::from_secs(2)));
    r.subscribe(|e| {
        if matches!(e, RouterEvent::RequestStarted { .. }) {
            panic!("a host callback that throws")
        }
    });
    let got: Arc<Mutex<usize>> = Arc::default();
    let g2 = got.clone();
    r.subscribe(move |_| *g2.lock().unwrap() += 1);
    let t0 = Instant::now();
    for _ in 0..20 {
        r.chat(req()).await.unwrap();
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "callbacks slowed requests: {:?}", t0.elapsed());
    // The healthy subscriber still gets everything despite its panicking neighbour: 8 events
    // for the first request (attempt, ban, fallover), 4 for each later one (the banned
    // deployment is skipped without an attempt).
    let deadline = Instant::now() + Duration::from_secs(5);
    while *got.lock().unwrap() < 8 + 19 * 4 {
        assert!(Instant::now() < deadline, "healthy subscriber got {}", got.lock().unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn metrics_pass_promtool_and_a_broken_exposition_fails_it() {
    let Some(pt) = promtool() else {
        eprintln!("promtool not installed; skipping (scripts/test.sh installs it)");
        return;
    };
    let r = Router::from_policy_str(POLICY).unwrap();
    for _ in 0..3 {
        r.chat(req()).await.unwrap();
    }
    let _ = r.reload_str("not: [valid");
    let dir = std::env::temp_dir().join(format!("polyroute-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.prom");
    std::fs::write(&good, r.metrics_text()).unwrap();
    let out = Command::new(&pt).args(["check", "metrics"]).stdin(std::fs::File::open(&good).unwrap()).output().unwrap();
    assert!(out.status.success(), "promtool rejected our metrics:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // lint findings are printed even on success; we want none
    let lint = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(lint.trim().is_empty(), "promtool lint findings:\n{lint}");
    // the check is real: a counter without `_total` and a malformed line are rejected
    let bad = dir.join("bad.prom");
    std::fs::write(&bad, "# TYPE polyroute_requests counter\npolyroute_requests{route=\"x\"} 1\nthis is not a sample\n").unwrap();
    let out = Command::new(&pt).args(["check", "metrics"]).stdin(std::fs::File::open(&bad).unwrap()).output().unwrap();
    assert!(!out.status.success(), "promtool accepted a broken exposition");
}

#[test]
fn alert_rules_are_valid_and_fire_on_synthetic_series() {
    let Some(pt) = promtool() else {
        eprintln!("promtool not installed; skipping (scripts/test.sh installs it)");
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    let check = Command::new(&pt).args(["check", "rules", "alerts.yml"]).current_dir(&dir).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let test = Command::new(&pt).args(["test", "rules", "alerts_test.yml"]).current_dir(&dir).output().unwrap();
    assert!(test.status.success(), "promtool test rules failed:\n{}{}", String::from_utf8_lossy(&test.stdout), String::from_utf8_lossy(&test.stderr));
}

#[tokio::test]
async fn budget_thresholds_are_reported_once_each() {
    // Each request costs (in 10 + out 10 tokens) × $1000/Mtok = $0.02; the ceiling is $0.10.
    let y = r#"
providers:
  p: {kind: mock, script: {then: {text: "ok", usage: {input_tokens: 10, output_tokens: 10}}}}
deployments:
  d: {provider: p, model: m, pricing: {input_per_mtok: 1000.0, output_per_mtok: 1000.0}}
routes:
  - {name: main, deployments: [d]}
budgets:
  - {name: small, limit_usd: 0.1, period: month}
"#;
    let r = Router::from_policy_str(y).unwrap();
    let seen: Arc<Mutex<Vec<RouterEvent>>> = Arc::default();
    let s2 = seen.clone();
    r.subscribe(move |e| {
        if matches!(e, RouterEvent::BudgetThreshold { .. }) {
            s2.lock().unwrap().push(e.clone())
        }
    });
    let mut q = req();
    q.max_tokens = Some(10);
    let mut ok = 0;
    for _ in 0..8 {
        if r.chat(q.clone()).await.is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 4, "{ok}");
    assert!(r.flush_events());
    let th: Vec<f64> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            RouterEvent::BudgetThreshold { threshold, budget, .. } => {
                assert_eq!(budget, "small");
                *threshold
            }
            _ => unreachable!(),
        })
        .collect();
    assert!(th.windows(2).all(|w| w[0] < w[1]), "each threshold once, in order: {th:?}");
    assert!(th.contains(&0.8), "{th:?}");
    let st = &r.budgets()[0];
    assert!(st.spent <= 0.1 + 1e-12);
    assert!(r.metrics_text().contains("polyroute_budget_remaining{budget=\"small\",scope=\"all\",unit=\"usd\"}"));
}

#[tokio::test]
async fn metrics_endpoint_serves_the_exposition() {
    use std::io::{Read, Write};
    let r = Router::from_policy_str(POLICY).unwrap();
    r.chat(req()).await.unwrap();
    let srv = r.serve_metrics("127.0.0.1:0").unwrap();
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(srv.local_addr()).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let ok = get("/metrics");
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert!(ok.contains("text/plain; version=0.0.4"));
    assert!(ok.contains("polyroute_requests_total{route=\"main\""));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
}
