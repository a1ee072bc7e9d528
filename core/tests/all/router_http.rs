//! The router over real HTTP against the loopback mock server (`tests/mock-server`), with
//! attempt counts and the gaps between attempts read from the server's own log. These are
//! the behaviours a user would check with a packet capture: nothing here is mocked below the
//! socket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use polyroute::budget::MemoryStore;
use polyroute::provider::mock::MockScript;
use polyroute::resilience::breaker::BreakerState;
use polyroute::{ChatRequest, ErrorKind, Message, Policy, Router, StreamEvent};
use polyroute_mock_server::MockServerHandle;
use serde_json::json;

const KEY: &str = "sk-test-fake-canary-7f3a9c";

use crate::common::mock_server as server;

fn script(v: serde_json::Value) -> MockScript {
    serde_json::from_value(v).expect("valid script")
}

/// Deployments `a` and `b` on the mock server; their scripts are named after their models.
fn policy(srv: &MockServerHandle, a: &str, b: &str, route_extra: &str, top_extra: &str) -> String {
    format!(
        r#"
providers:
  mock: {{kind: openai, base_url: "{url}", api_key: "{KEY}"}}
deployments:
  a: {{provider: mock, model: "{a}", pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  b: {{provider: mock, model: "{b}", pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
routes:
  - name: main
    deployments: [a, b]
{route_extra}
{top_extra}
"#,
        url = srv.base_url()
    )
}

fn req(t: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(t)])
}

/// Attempts that reached the server for a model (scripted or not).
fn hits(srv: &MockServerHandle, model: &str) -> usize {
    srv.log().iter().filter(|l| l.model.as_deref() == Some(model)).count()
}

fn gaps(srv: &MockServerHandle, script: &str) -> Vec<f64> {
    let log = srv.log_for(script);
    log.windows(2).map(|w| w[1].received_ms - w[0].received_ms).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_two_seconds_is_honoured() {
    let srv = server().await;
    srv.set_script("ra", script(json!({"steps": [{"status": 429, "error_code": "rate_limit_exceeded", "retry_after": "2"}]}))).unwrap();
    let r = Router::from_policy_str(&policy(&srv, "ra", "rb", "", "")).unwrap();
    let resp = r.chat(req("hi")).await.unwrap();
    assert_eq!(resp.trace.as_ref().unwrap().served_by.as_deref(), Some("a"));
    let g = gaps(&srv, "ra");
    assert_eq!(g.len(), 1, "exactly one retry");
    assert!((1990.0..2600.0).contains(&g[0]), "retried after {} ms", g[0]);
    assert_eq!(hits(&srv, "rb"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_429_and_503_fall_over_without_hammering() {
    for (status, code) in [(429, "rate_limit_exceeded"), (503, "server_overloaded")] {
        let srv = server().await;
        srv.set_script("p", script(json!({"then": {"status": status, "error_code": code, "retry_after": "0.2"}}))).unwrap();
        let r = Router::from_policy_str(&policy(&srv, "p", "ok", "", "")).unwrap();
        let t0 = Instant::now();
        let resp = r.chat(req("x")).await.unwrap();
        assert_eq!(resp.trace.as_ref().unwrap().served_by.as_deref(), Some("b"));
        assert_eq!(hits(&srv, "p"), 2, "{status}: one try and one retry on the failing deployment");
        assert!(t0.elapsed() < Duration::from_secs(2), "{status}: {:?}", t0.elapsed());
        let g = gaps(&srv, "p");
        assert!(g[0] >= 195.0, "{status}: the retry hint was not honoured: {g:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_provider_is_abandoned_at_the_timeout() {
    let srv = server().await;
    srv.set_script("silent", script(json!({"then": {"fault": "hang"}}))).unwrap();
    let y = policy(&srv, "silent", "ok", "    timeouts: {first_token: 500ms}\n    retry: {attempts_per_deployment: 1}", "");
    let r = Router::from_policy_str(&y).unwrap();
    let t0 = Instant::now();
    let resp = r.chat(req("x")).await.unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(resp.content(), "echo: x");
    let t = resp.trace.unwrap();
    assert_eq!(t.attempts[0].outcome, "timeout");
    assert_eq!(hits(&srv, "silent"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cut_mid_answer_is_interrupted_never_success() {
    let srv = server().await;
    srv.set_script("cut", script(json!({"then": {"text": "one two three four five", "fault": {"cut_after": {"chunks": 2}}}}))).unwrap();
    srv.set_script("cut0", script(json!({"then": {"fault": {"cut_after": {"chunks": 0}}}}))).unwrap();
    // cut after content: typed error with the partial text
    let r = Router::from_policy_str(&policy(&srv, "cut", "ok", "", "")).unwrap();
    let mut s = r.stream(req("x")).await.unwrap();
    let (mut text, mut err, mut finished) = (String::new(), None, false);
    while let Some(ev) = s.next().await {
        match ev {
            Ok(StreamEvent::ContentDelta { text: t }) => text.push_str(&t),
            Ok(StreamEvent::Finish { .. }) => finished = true,
            Ok(_) => {}
            Err(e) => err = Some(e),
        }
    }
    let e = err.expect("a cut stream ends with an error");
    assert!(!finished);
    assert_eq!(e.kind, ErrorKind::StreamInterrupted);
    assert_eq!(e.partial.unwrap().text, text);
    assert!(text.starts_with("one"), "{text:?}");
    // cut before content: the caller sees one clean stream from the fallback
    let r = Router::from_policy_str(&policy(&srv, "cut0", "ok", "", "")).unwrap();
    let mut s = r.stream(req("y")).await.unwrap();
    let mut text = String::new();
    while let Some(ev) = s.next().await {
        if let StreamEvent::ContentDelta { text: t } = ev.unwrap() {
            text.push_str(&t);
        }
    }
    assert_eq!(text, "echo: y");
    assert_eq!(hits(&srv, "cut0"), 2, "the cut deployment is retried once before falling over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_done_but_with_finish_completes_promptly() {
    let srv = server().await;
    srv.set_script("nodone", script(json!({"then": {"fault": "no_done"}}))).unwrap();
    let r = Router::from_policy_str(&policy(&srv, "nodone", "ok", "", "")).unwrap();
    let t0 = Instant::now();
    let mut s = r.stream(req("x")).await.unwrap();
    let mut usage = None;
    while let Some(ev) = s.next().await {
        if let StreamEvent::Usage { usage: u } = ev.unwrap() {
            usage = Some(u);
        }
    }
    assert!(t0.elapsed() < Duration::from_millis(500), "{:?}", t0.elapsed());
    assert!(usage.is_some());
    assert_eq!(s.trace().unwrap().served_by.as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_length_is_not_retried_and_goes_to_a_larger_model() {
    let srv = server().await;
    srv.set_script("small", script(json!({"then": {"status": 400, "error_code": "context_length_exceeded"}}))).unwrap();
    let y = format!(
        r#"
providers:
  mock: {{kind: openai, base_url: "{}", api_key: "{KEY}"}}
deployments:
  small: {{provider: mock, model: small, context_window: 8000}}
  big: {{provider: mock, model: big, context_window: 128000}}
routes:
  - {{name: main, deployments: [small, big]}}
"#,
        srv.base_url()
    );
    let resp = Router::from_policy_str(&y).unwrap().chat(req("long")).await.unwrap();
    assert_eq!(resp.model, "big");
    assert_eq!(hits(&srv, "small"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_filter_is_not_retried() {
    let srv = server().await;
    srv.set_script("cf", script(json!({"then": {"status": 400, "error_code": "content_filter"}}))).unwrap();
    let e = Router::from_policy_str(&policy(&srv, "cf", "ok", "", "")).unwrap().chat(req("x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ContentFilter);
    assert_eq!(e.status, Some(400));
    assert_eq!(hits(&srv, "cf"), 1);
    assert_eq!(hits(&srv, "ok"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_recovery() {
    // Scaled-down version of "503 for 60 s" (the full 60 s runs on the paused clock in
    // router_inproc.rs): 3 s of 503, breaker opening for 300 ms. Probes that fail fast reopen
    // for open_for, never doubled, so the recovered primary is back within open_for + 1 s.
    let srv = server().await;
    srv.set_script("flaky", script(json!({"steps": [{"status": 503, "for_ms": 3000}]}))).unwrap();
    let y = policy(
        &srv,
        "flaky",
        "ok",
        "    retry: {attempts_per_deployment: 1}",
        "breaker: {consecutive_failures: 3, open_for: 300ms, max_open_for: 1s}",
    );
    let r = Router::from_policy_str(&y).unwrap();
    let t0 = Instant::now();
    let mut during = 0;
    while t0.elapsed() < Duration::from_millis(2800) {
        let t = r.chat(req("x")).await.unwrap().trace.unwrap();
        assert_eq!(t.served_by.as_deref(), Some("b"), "served by the fallback during the outage");
        during += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let flaky_hits = hits(&srv, "flaky");
    assert!(during > 30, "{during}");
    // 3 to trip, then about one probe per 270-300 ms: far fewer than one per request.
    assert!(flaky_hits <= 3 + 12, "{flaky_hits} attempts hit the failing deployment during {during} requests");
    let back = loop {
        if r.chat(req("x")).await.unwrap().trace.unwrap().served_by.as_deref() == Some("a") {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(6), "traffic never returned to the primary");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Recovery at 3.0 s: back within open_for (300 ms) + 1 s.
    assert!(back <= Duration::from_millis(4300), "primary back only {back:?} after the start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_opens_breaker_and_later_requests_skip_without_round_trip() {
    let srv = server().await;
    srv.set_script("banned", script(json!({"then": {"status": 403, "error_code": "unsupported_country_region_territory"}}))).unwrap();
    let r = Router::from_policy_str(&policy(&srv, "banned", "ok", "", "")).unwrap();
    for _ in 0..10 {
        let resp = r.chat(req("x")).await.unwrap();
        assert_eq!(resp.model, "ok", "the model that actually served is reported");
        let t = resp.trace.unwrap();
        // the failed attempt is not billed; the served one is
        assert!(t.attempts.iter().filter(|a| a.outcome != "ok").all(|a| a.cost_usd.is_none()));
        assert!(resp.usage.unwrap().output_tokens > 0);
    }
    assert_eq!(hits(&srv, "banned"), 1, "one round trip to the banned deployment, then none");
    let st = r.deployments().into_iter().find(|d| d.deployment == "a").unwrap();
    assert_eq!(st.breaker.state, BreakerState::Open);
}

/// 512 concurrent requests against one spend ceiling: never a cent over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_holds_under_512_concurrent_requests() {
    let srv = server().await;
    srv.set_script("m", script(json!({"then": {"text": "a b c d", "latency_ms": 20}}))).unwrap();
    let y = format!(
        r#"
providers:
  mock: {{kind: openai, base_url: "{}", api_key: "{KEY}"}}
deployments:
  d: {{provider: mock, model: m, pricing: {{input_per_mtok: 1000.0, output_per_mtok: 1000.0}}}}
routes:
  - {{name: main, deployments: [d]}}
budgets:
  - {{name: tight, limit_usd: 1.0, period: day}}
"#,
        srv.base_url()
    );
    let store = Arc::new(MemoryStore::new());
    let r = Router::with_store(Policy::from_str(&y).unwrap(), store.clone()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..512 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut q = req(&format!("question {i}"));
            q.max_tokens = Some(8);
            r.chat(q).await
        }));
    }
    let (mut ok, mut refused, mut spent_by_responses) = (0, 0, 0.0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(resp) => {
                ok += 1;
                spent_by_responses += resp.cost_usd.unwrap();
            }
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::BudgetExceeded, "{e}");
                let b = e.budget.expect("budget details");
                assert_eq!(b.budget, "tight");
                assert!(b.resets_at > 0.0);
                refused += 1;
            }
        }
    }
    let st = &r.budgets()[0];
    assert!(st.spent <= 1.0 + 1e-9, "overspent: {}", st.spent);
    assert!((st.spent - spent_by_responses).abs() < 1e-9);
    assert_eq!(st.reserved, 0.0, "every reservation was settled");
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
    // Reservations are worst-case (input estimate + max_tokens), so a burst of 512 is
    // refused once the ceiling is fully *reserved*; the unused part of each reservation is
    // released on settlement and served to the requests that come after (checked below).
    assert_eq!(hits(&srv, "m"), ok, "refused requests never reached the provider");
    // A second router on the same store holds the same ceiling.
    let r2 = Router::with_store(Policy::from_str(&y).unwrap(), store).unwrap();
    let remaining = r2.budgets()[0].remaining;
    assert!((remaining - (1.0 - st.spent)).abs() < 1e-9);
    let mut n = 0;
    while n < 600 {
        let mut q = req("more");
        q.max_tokens = Some(8);
        let a = r.chat(q.clone()).await;
        let b = r2.chat(q).await;
        if a.is_err() && b.is_err() {
            break;
        }
        n += 1;
    }
    let spent = r2.budgets()[0].spent;
    assert!(spent <= 1.0 + 1e-9, "two routers on one store overspent: {spent}");
    // ...and the ceiling is used up to less than one request's worst case.
    assert!(spent > 1.0 - 0.02, "released reservations were not reused: spent {spent}");
    assert!((r.budgets()[0].spent - spent).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_fallback_to_a_free_tier_and_trace_notes() {
    let srv = server().await;
    let y = format!(
        r#"
providers:
  mock: {{kind: openai, base_url: "{}", api_key: "{KEY}"}}
deployments:
  paid: {{provider: mock, model: paid, pricing: {{input_per_mtok: 100000.0, output_per_mtok: 100000.0}}}}
  local: {{provider: mock, model: local, pricing: {{input_per_mtok: 0.0, output_per_mtok: 0.0}}}}
routes:
  - name: main
    deployments: [paid]
    fallbacks: [{{name: free, deployments: [local]}}]
    on_budget_exceeded: fallback
budgets:
  - {{name: acme, scope: {{tenant: acme}}, limit_usd: 0.01, period: month}}
"#,
        srv.base_url()
    );
    let r = Router::from_policy_str(&y).unwrap();
    let mut q = req("hello");
    q.routing.tenant = Some("acme".into());
    let resp = r.chat(q).await.unwrap();
    assert_eq!(resp.model, "local");
    let t = resp.trace.unwrap();
    assert!(t.notes.iter().any(|n| n.contains("budget `acme` would be exceeded on `paid`")), "{:?}", t.notes);
    assert_eq!(hits(&srv, "paid"), 0);
    // other tenants are not under acme's budget
    let resp = r.chat(req("hello")).await.unwrap();
    assert_eq!(resp.model, "paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_rate_limit_prefers_other_deployments() {
    let srv = server().await;
    let y = policy(&srv, "rl-a", "rl-b", "", "").replace(
        "pricing: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n  b:",
        "pricing: {input_per_mtok: 1.0, output_per_mtok: 2.0}, rate_limit: {requests_per_minute: 3}}\n  b:",
    );
    assert!(y.contains("requests_per_minute: 3"), "{y}");
    let r = Router::from_policy_str(&y).unwrap();
    for _ in 0..6 {
        r.chat(req("x")).await.unwrap();
    }
    assert_eq!(hits(&srv, "rl-a"), 3, "no more than 3 requests a minute reach `a`");
    assert_eq!(hits(&srv, "rl-b"), 3);
}

/// Every provider and failure path, then every string we can observe: no API key anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_never_leak() {
    let srv = server().await;
    for (name, step) in [
        ("auth", json!({"status": 401, "error_code": "invalid_api_key"})),
        ("ban", json!({"status": 403})),
        ("boom", json!({"status": 500})),
        ("cut", json!({"fault": {"cut_after": {"chunks": 1}}})),
        ("bad", json!({"fault": {"malformed_after": {"chunks": 0}}})),
        ("drop", json!({"fault": "drop"})),
    ] {
        srv.set_script(name, script(json!({"then": step}))).unwrap();
    }
    crate::common::set_env("POLYROUTE_LEAK_TEST_KEY", KEY);
    let y = format!(
        r#"
providers:
  oa: {{kind: openai, base_url: "{v1}", api_key_env: POLYROUTE_LEAK_TEST_KEY}}
  an: {{kind: anthropic, base_url: "{url}", api_key: "{KEY}"}}
  ge: {{kind: gemini, base_url: "{url}", api_key: "{KEY}"}}
  az: {{kind: azure, base_url: "{url}", api_key: "{KEY}", api_version: "2024-10-21"}}
  co: {{kind: openai_compatible, base_url: "{v1}", api_key: "{KEY}"}}
deployments:
  d1: {{provider: oa, model: auth}}
  d2: {{provider: an, model: ban}}
  d3: {{provider: ge, model: boom}}
  d4: {{provider: az, model: cut}}
  d5: {{provider: co, model: bad}}
  d6: {{provider: oa, model: drop}}
  d7: {{provider: an, model: fine}}
routes:
  - {{name: main, deployments: [d1, d2, d3, d4, d5, d6, d7], retry: {{max_attempts: 20, base_delay: 10ms, max_delay: 20ms}}}}
"#,
        v1 = srv.base_url(),
        url = srv.url()
    );
    let r = Router::from_policy_str(&y).unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let ev2 = events.clone();
    r.subscribe(move |e| ev2.lock().unwrap().push(serde_json::to_string(e).unwrap()));
    let mut seen: Vec<String> = vec![format!("{r:?}"), serde_json::to_string(&r.policy()).unwrap(), format!("{:?}", r.policy())];
    let resp = r.chat(req("x")).await.unwrap();
    seen.push(format!("{resp:?}"));
    seen.push(serde_json::to_string(&resp).unwrap());
    let mut s = r.stream(req("y")).await.unwrap();
    while let Some(ev) = s.next().await {
        match ev {
            Ok(e) => seen.push(format!("{e:?}")),
            Err(e) => {
                seen.push(format!("{e} {e:?}"));
                seen.push(serde_json::to_string(&e).unwrap());
            }
        }
    }
    seen.push(format!("{:?}", s.trace()));
    // a failing request: only the failing deployments
    let y2 = y.replace("[d1, d2, d3, d4, d5, d6, d7]", "[d1, d2, d3, d5, d6]");
    let r2 = Router::from_policy_str(&y2).unwrap();
    let e = r2.chat(req("z")).await.unwrap_err();
    seen.push(format!("{e} {e:?}"));
    seen.push(serde_json::to_string(&e).unwrap());
    seen.push(r.metrics_text());
    seen.push(r2.metrics_text());
    seen.push(serde_json::to_string(&r.deployments()).unwrap());
    seen.push(serde_json::to_string(&srv.log()).unwrap());
    assert!(r.flush_events() && r2.flush_events());
    seen.extend(events.lock().unwrap().iter().cloned());
    assert!(seen.len() > 20);
    for s in &seen {
        assert!(!s.contains(KEY) && !s.contains("fake-canary"), "API key leaked in: {s}");
    }
    // and the key did go out on the wire, in the right header (the check above is not vacuous)
    let log = srv.log();
    assert!(log.iter().any(|l| l.api == "anthropic"), "anthropic reached");
    assert!(log.iter().any(|l| l.api == "gemini"), "gemini reached");
    assert!(log.iter().any(|l| l.api == "azure"), "azure reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_rate_limit_headers_steer_traffic_before_any_429() {
    let srv = server().await;
    // `a` answers fine but says it has no requests left for 20 s.
    srv.set_script(
        "warn",
        script(json!({"then": {"headers": {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s", "x-ratelimit-remaining-tokens": "90000", "x-ratelimit-reset-tokens": "1s"}}})),
    )
    .unwrap();
    let r = Router::from_policy_str(&policy(&srv, "warn", "other", "", "")).unwrap();
    assert_eq!(r.chat(req("1")).await.unwrap().model, "warn");
    let resp = r.chat(req("2")).await.unwrap();
    assert_eq!(resp.model, "other", "the warned-about deployment is avoided");
    let t = resp.trace.unwrap();
    let a = t.candidates.iter().find(|c| c.deployment == "a").unwrap();
    assert!(a.skipped.as_deref().unwrap().starts_with("provider reports 0 requests left, resets in"), "{a:?}");
    assert!(t.explanation.contains("`a` skipped (provider reports 0 requests left"), "{}", t.explanation);
    assert_eq!(hits(&srv, "warn"), 1);

    // Anthropic's RFC 3339 form, on the only deployment: the router waits for the reset
    // (within the deadline) instead of collecting a 429.
    let srv = server().await;
    let reset = httpdate_rfc3339(std::time::SystemTime::now() + Duration::from_millis(1500));
    srv.set_script(
        "solo",
        script(json!({"then": {"headers": {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}}})),
    )
    .unwrap();
    let y = format!(
        "providers:\n  an: {{kind: anthropic, base_url: \"{}\", api_key: \"{KEY}\"}}\ndeployments:\n  s: {{provider: an, model: solo}}\nroutes:\n  - {{name: main, deployments: [s], timeouts: {{total: 10s}}, retry: {{max_retry_after: 5s}}}}\n",
        srv.url()
    );
    let r = Router::from_policy_str(&y).unwrap();
    r.chat(req("1")).await.unwrap();
    let t0 = Instant::now();
    let resp = r.chat(req("2")).await.unwrap();
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(2500), "{waited:?}");
    assert!(resp.trace.unwrap().notes.iter().any(|n| n.starts_with("waited")));
    assert_eq!(hits(&srv, "solo"), 2, "no request was wasted on a known-exhausted deployment");
}

/// RFC 3339 UTC with milliseconds, as Anthropic sends it.
fn httpdate_rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}
