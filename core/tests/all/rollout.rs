//! Canary and shadow (issue 21) over real HTTP against the loopback mock server: what the
//! events and metrics say, and what the caller never sees. The routing behaviour itself
//! (withdrawal, isolation) is also a scenario in every language (`tests/scenarios/canary_*`,
//! `shadow_*`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polyroute::provider::mock::MockScript;
use polyroute::telemetry::RouterEvent;
use polyroute::{ChatRequest, ErrorKind, Message, Router};
use polyroute_mock_server::MockServerHandle;
use serde_json::{json, Value};

use crate::common::mock_server as server;

fn script(srv: &MockServerHandle, name: &str, v: Value) {
    srv.set_script(name, serde_json::from_value::<MockScript>(v).unwrap()).unwrap();
}

fn router(srv: &MockServerHandle, deployments: &[&str], route: Value) -> Router {
    let mut deps = serde_json::Map::new();
    for d in deployments {
        deps.insert(d.to_string(), json!({"provider": "mock", "model": d, "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}));
    }
    let policy = json!({
        "providers": {"mock": {"kind": "openai", "base_url": srv.base_url(), "api_key": "sk-test-not-a-real-key"}},
        "deployments": deps,
        "routes": [route],
    });
    Router::from_policy_str(&policy.to_string()).unwrap()
}

fn events(r: &Router) -> Arc<Mutex<Vec<RouterEvent>>> {
    let seen: Arc<Mutex<Vec<RouterEvent>>> = Arc::default();
    let s2 = seen.clone();
    r.subscribe(move |e| s2.lock().unwrap().push(e.clone()));
    seen
}

/// Wait (bounded) until `n` events of `kind` have arrived; they come from background tasks.
async fn wait_for(r: &Router, seen: &Arc<Mutex<Vec<RouterEvent>>>, kind: &str, n: usize) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        r.flush_events();
        let got: Vec<Value> = seen.lock().unwrap().iter().map(|e| serde_json::to_value(e).unwrap()).filter(|v| v["type"] == kind).collect();
        if got.len() >= n || Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn hello(tenant: Option<&str>) -> ChatRequest {
    let mut r = ChatRequest::new(vec![Message::user("hello shadow")]);
    r.routing.tenant = tenant.map(str::to_string);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_copies_are_compared_with_the_served_answer_and_counted() {
    let srv = server().await;
    script(&srv, "ro-main", json!({}));
    script(&srv, "ro-same", json!({}));
    script(&srv, "ro-other", json!({"then": {"text": "a different answer"}}));
    let r = router(
        &srv,
        &["ro-main", "ro-same", "ro-other"],
        json!({"name": "main", "deployments": ["ro-main"], "shadow": {"deployments": ["ro-same", "ro-other"], "percent": 100}}),
    );
    let seen = events(&r);
    let resp = r.chat(hello(None)).await.unwrap();
    assert_eq!(resp.content(), "echo: hello shadow");
    assert_eq!(resp.trace.as_ref().unwrap().attempts.len(), 1, "copies are not attempts of the request");
    let done = wait_for(&r, &seen, "shadow_finished", 2).await;
    let by = |d: &str| done.iter().find(|e| e["deployment"] == d).cloned().unwrap_or_else(|| panic!("no shadow_finished for {d}: {done:?}"));
    assert_eq!((by("ro-same")["outcome"].clone(), by("ro-same")["same_text"].clone()), (json!("ok"), json!(true)));
    assert_eq!(by("ro-other")["same_text"], json!(false));
    assert!(by("ro-other")["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(by("ro-same")["request_id"], json!(resp.trace.as_ref().unwrap().request_id));
    let m = r.metrics_text();
    assert!(m.contains(r#"polyroute_shadow_requests_total{route="main",deployment="ro-same",outcome="ok"} 1"#), "{m}");
    assert!(m.contains(r#"polyroute_shadow_agreement_total{route="main",deployment="ro-other",check="text",result="disagree"} 1"#), "{m}");
    assert!(m.contains(r#"polyroute_shadow_cost_usd_total{route="main",deployment="ro-other"}"#), "{m}");
    // A copy's spend is outside the policy's accounting: the request's own cost is a's alone.
    assert_eq!(r.route_costs()[0].total_cost_usd, resp.cost_usd.unwrap());

    // A streamed request is copied too; there is no served text to compare with.
    let mut s = r.stream(hello(None)).await.unwrap();
    while futures::StreamExt::next(&mut s).await.is_some() {}
    let done = wait_for(&r, &seen, "shadow_finished", 4).await;
    assert!(done[2..].iter().all(|e| e.get("same_text").is_none()), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_copies_over_the_bound_or_the_budget_are_dropped_and_never_slow_the_caller() {
    let srv = server().await;
    script(&srv, "ro2-main", json!({}));
    script(&srv, "ro2-slow", json!({"then": {"latency_ms": 1500}}));
    let r = router(
        &srv,
        &["ro2-main", "ro2-slow"],
        json!({"name": "main", "deployments": ["ro2-main"], "shadow": {"deployments": ["ro2-slow"], "percent": 100, "max_concurrent": 1}}),
    );
    let seen = events(&r);
    let t0 = Instant::now();
    for _ in 0..3 {
        r.chat(hello(None)).await.unwrap();
    }
    assert!(t0.elapsed() < Duration::from_millis(1000), "three answers must not wait for a 1.5 s shadow: {:?}", t0.elapsed());
    let dropped = wait_for(&r, &seen, "shadow_dropped", 2).await;
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert!(dropped.iter().all(|e| e["reason"] == "concurrency"));
    let finished = wait_for(&r, &seen, "shadow_finished", 1).await;
    assert_eq!(finished.len(), 1, "the copy in flight finished; the dropped ones were never queued");
    assert_eq!(srv.log_for("ro2-slow").len(), 1);

    // A budget of zero stops every copy; the caller is served as usual.
    script(&srv, "ro3-main", json!({}));
    script(&srv, "ro3-shadow", json!({}));
    let r = router(
        &srv,
        &["ro3-main", "ro3-shadow"],
        json!({"name": "main", "deployments": ["ro3-main"], "shadow": {"deployments": ["ro3-shadow"], "percent": 100, "budget_usd": 0.0}}),
    );
    let seen = events(&r);
    r.chat(hello(None)).await.unwrap();
    let dropped = wait_for(&r, &seen, "shadow_dropped", 1).await;
    assert_eq!(dropped[0]["reason"], "budget");
    assert_eq!(srv.log_for("ro3-shadow").len(), 0);
    assert!(r.metrics_text().contains(r#"polyroute_shadow_dropped_total{route="main",deployment="ro3-shadow",reason="budget"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_canary_is_withdrawn_by_latency_and_tenants_stay_on_their_side() {
    let srv = server().await;
    script(&srv, "ro4-main", json!({}));
    script(&srv, "ro4-canary", json!({"then": {"latency_ms": 120}}));
    let r = router(
        &srv,
        &["ro4-main", "ro4-canary"],
        json!({"name": "main", "deployments": ["ro4-main"],
               "canary": {"deployment": "ro4-canary", "percent": 50, "sticky": "tenant", "min_requests": 3, "max_latency_ratio": 3.0}}),
    );
    let seen = events(&r);
    // Sticky: a tenant's first attempt is always on the same side.
    let first = |resp: &polyroute::ChatResponse| resp.trace.as_ref().unwrap().attempts[0].deployment.clone();
    let t = first(&r.chat(hello(Some("tenant-1"))).await.unwrap());
    for _ in 0..3 {
        assert_eq!(first(&r.chat(hello(Some("tenant-1"))).await.unwrap()), t);
    }
    let mut i = 0;
    while wait_for(&r, &seen, "canary_withdrawn", 0).await.is_empty() && i < 60 {
        r.chat(hello(Some(&format!("tenant-{i}")))).await.unwrap();
        i += 1;
    }
    let w = wait_for(&r, &seen, "canary_withdrawn", 1).await;
    assert_eq!(w.len(), 1, "withdrawn once, after {i} requests");
    assert!(w[0]["reason"].as_str().unwrap().contains("median latency"), "{w:?}");
    let before = srv.log_for("ro4-canary").len();
    for j in 0..10 {
        let resp = r.chat(hello(Some(&format!("tenant-{j}")))).await.unwrap();
        assert_eq!(first(&resp), "ro4-main");
        assert!(resp.trace.unwrap().notes.iter().any(|n| n.contains("canary `ro4-canary` withdrawn")));
    }
    assert_eq!(srv.log_for("ro4-canary").len(), before, "no traffic after the withdrawal");
    assert!(r.metrics_text().contains(r#"polyroute_canary_withdrawals_total{route="main",deployment="ro4-canary"} 1"#));
}

#[test]
fn bad_canary_and_shadow_settings_are_config_errors_with_their_paths() {
    let policy = json!({
        "providers": {"mock": {"kind": "mock"}},
        "deployments": {"a": {"provider": "mock", "model": "m"}},
        "routes": [{"name": "main", "deployments": ["a"],
            "canary": {"deployment": "ghost", "percent": 120, "min_requests": 0, "max_latency_ratio": 0.5},
            "shadow": {"deployments": ["nope"], "percent": -1, "max_concurrent": 0, "budget_usd": -2}}],
    });
    let e = Router::from_policy_str(&policy.to_string()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    for path in [
        "routes[0].canary.deployment",
        "routes[0].canary.percent",
        "routes[0].canary.min_requests",
        "routes[0].canary.max_latency_ratio",
        "routes[0].shadow.deployments[0]",
        "routes[0].shadow.percent",
        "routes[0].shadow.max_concurrent",
        "routes[0].shadow.budget_usd",
    ] {
        assert!(e.message.contains(path), "{path} missing from: {}", e.message);
    }
}
