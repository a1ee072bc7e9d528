//! The shared state store against a real `redis-server` (and a real 3-master Cluster) that
//! each test starts on a free loopback port and kills afterwards: the store's own contract
//! (atomic reservations, idempotent settles, leases, NOSCRIPT), routers on separate
//! connections sharing one budget, a fleet-wide breaker, and what a store that is down, or
//! restarts, does to requests. The same across OS processes is `server/tests/fleet.rs`.

use std::time::{Duration, Instant};

use polyroute::provider::mock::MockScript;
use polyroute::resilience::breaker::BreakerState;
use polyroute::state::redis::{RedisOptions, RedisStore};
use polyroute::state::{Actual, Charge, StateStore};
use polyroute::{ChatRequest, ErrorKind, Message, Policy, Router};
use polyroute_mock_server::redis::{RedisCluster, RedisServer};
use polyroute_mock_server::MockServerHandle;
use serde_json::json;

use crate::common::{mock_server as server, KEY};

fn script(v: serde_json::Value) -> MockScript {
    serde_json::from_value(v).expect("valid script")
}

fn hits(srv: &MockServerHandle, model: &str) -> usize {
    srv.log_for(model).len()
}

fn req(text: &str) -> ChatRequest {
    let mut r = ChatRequest::new(vec![Message::user(text)]);
    r.max_tokens = Some(8);
    r
}

fn charge(key: &str, limit: f64, amount: f64) -> Charge {
    Charge { add_to: key.into(), window: vec![key.into()], limit, amount, expires_at: 4e9 }
}

fn store(url: String, cluster: bool) -> RedisStore {
    RedisStore::new(RedisOptions {
        urls: url.split(',').map(String::from).collect(),
        cluster,
        key_prefix: "t:".into(),
        timeout: Duration::from_secs(2),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_are_atomic_settles_idempotent_and_leases_return_holds() {
    let redis = RedisServer::start();
    let s = store(redis.url(), false);
    let k = "budget|b||c1".to_string();
    let c = |amount| vec![charge(&k, 1.0, amount)];
    let lease = Duration::from_secs(30);
    assert!(s.reserve("a", &c(0.6), lease).await.unwrap().is_ok());
    let refused = s.reserve("b", &c(0.6), lease).await.unwrap().unwrap_err();
    assert!((refused.remaining - 0.4).abs() < 1e-9, "{refused:?}");
    let spent: Vec<Actual> = vec![(k.clone(), 0.25)];
    s.settle("a", &spent).await.unwrap();
    s.settle("a", &spent).await.unwrap(); // a retried settle
    let got = s.get(std::slice::from_ref(&k)).await.unwrap()[0];
    assert!((got.spent - 0.25).abs() < 1e-9 && got.reserved.abs() < 1e-9, "counted once: {got:?}");

    // A holder that never settles (it died): its hold comes back when the lease ends.
    assert!(s.reserve("dead", &c(0.7), Duration::from_millis(300)).await.unwrap().is_ok());
    assert!(s.reserve("x", &c(0.1), lease).await.unwrap().is_err(), "held by the dead reservation");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(s.reserve("y", &c(0.7), lease).await.unwrap().is_ok(), "the lease returned the hold");
    // A settle that arrives after its lease still records the spend, without releasing twice.
    s.settle("dead", &[(k.clone(), 0.05)]).await.unwrap();
    let got = s.get(std::slice::from_ref(&k)).await.unwrap()[0];
    assert!((got.spent - 0.30).abs() < 1e-9 && (got.reserved - 0.7).abs() < 1e-9, "{got:?}");

    // A rolling window (60 buckets of one hash): full at bucket 100, free again once bucket
    // 100 has left the window, and the bucket that left is deleted on the way.
    let roll = |at: i64, amount: f64| Charge {
        add_to: format!("budget|roll||r{at}"),
        window: (at - 59..=at).map(|i| format!("budget|roll||r{i}")).collect(),
        limit: 1.0,
        amount,
        expires_at: 4e9,
    };
    assert!(s.reserve("r1", &[roll(100, 1.0)], lease).await.unwrap().is_ok());
    s.settle("r1", &[("budget|roll||r100".into(), 1.0)]).await.unwrap();
    assert!(s.reserve("r2", &[roll(159, 0.1)], lease).await.unwrap().is_err(), "bucket 100 still in the window");
    assert!(s.reserve("r3", &[roll(160, 1.0)], lease).await.unwrap().is_ok(), "bucket 100 left the window");
    assert_eq!(redis.cli(&["hexists", "t:budget|roll||r", "s100"]), "0", "the old bucket was deleted");

    // Scripts flushed (as after a restart or failover): EVALSHA's NOSCRIPT reloads them.
    assert_eq!(redis.cli(&["script", "flush"]), "OK");
    s.settle("y", &[(k.clone(), 0.0)]).await.unwrap();
    assert!(s.reserve("z", &c(0.1), lease).await.unwrap().is_ok());
}

fn budget_policy(srv: &MockServerHandle, state: &str, budgets: &str) -> String {
    format!(
        r#"
providers:
  mock: {{kind: openai, base_url: "{}", api_key: "{KEY}"}}
deployments:
  d: {{provider: mock, model: m, pricing: {{input_per_mtok: 1000.0, output_per_mtok: 1000.0}}}}
routes:
  - {{name: main, deployments: [d]}}
budgets:
{budgets}
state: {state}
"#,
        srv.base_url()
    )
}

/// `routers` each run `workers` loops that send until they are refused three times in a row;
/// returns (successes, the cost they reported).
async fn drain(routers: &[Router], workers: usize, tenant: Option<&str>) -> (usize, f64) {
    let mut tasks = Vec::new();
    for (ri, r) in routers.iter().enumerate() {
        for w in 0..workers {
            let (r, tenant) = (r.clone(), tenant.map(String::from));
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut cost, mut refusals) = (0usize, 0.0, 0);
                while refusals < 3 {
                    let mut q = req(&format!("router {ri} worker {w}"));
                    q.routing.tenant = tenant.clone();
                    match r.chat(q).await {
                        Ok(resp) => {
                            ok += 1;
                            cost += resp.cost_usd.unwrap();
                            refusals = 0;
                        }
                        Err(e) => {
                            assert!(matches!(e.kind, ErrorKind::BudgetExceeded | ErrorKind::RateLimited), "{e}");
                            refusals += 1;
                            tokio::time::sleep(Duration::from_millis(30)).await;
                        }
                    }
                }
                (ok, cost)
            }));
        }
    }
    let mut total = (0, 0.0);
    for t in tasks {
        let (ok, cost) = t.await.unwrap();
        total = (total.0 + ok, total.1 + cost);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_on_separate_connections_share_one_budget() {
    let redis = RedisServer::start();
    let srv = server().await;
    srv.set_script("m", script(json!({"then": {"text": "a b c d", "latency_ms": 10}}))).unwrap();
    let state = format!("{{redis: {{url: \"{}\", timeout: 2s, sync_interval: 50ms}}}}", redis.url());
    let y = budget_policy(&srv, &state, "  - {name: tight, limit_usd: 0.5, period: day}");
    // Four routers, four connections: what four processes would do.
    let routers: Vec<Router> = (0..4).map(|_| Router::new(Policy::from_str(&y).unwrap()).unwrap()).collect();
    let (ok, cost) = drain(&routers, 32, None).await;
    assert!(cost <= 0.5 + 1e-9, "overspent: {cost}");
    assert!(cost >= 0.5 * 0.95, "only {cost} of 0.5 used");
    assert_eq!(hits(&srv, "m"), ok, "refused requests never reached the provider");
    // Every router's status shows the fleet's figures once its sync has run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in &routers {
        let st = &r.budgets()[0];
        assert!((st.spent - cost).abs() < 1e-6, "fleet-wide spent {} vs {cost}", st.spent);
        assert!(st.reserved.abs() < 1e-9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_master_cluster_holds_budgets_in_different_slots() {
    let cluster = RedisCluster::start();
    let srv = server().await;
    srv.set_script("m", script(json!({"then": {"text": "a b c d", "latency_ms": 5}}))).unwrap();
    let state = format!("{{redis: {{url: \"{}\", cluster: true, timeout: 2s}}}}", cluster.urls());
    // Two budgets whose keys hash to different slots: one reservation spans two nodes.
    let y = budget_policy(
        &srv,
        &state,
        "  - {name: global, limit_usd: 5.0, period: day}\n  - {name: per-tenant, limit_usd: 0.3, period: day, scope: {tenant: \"*\"}}",
    );
    let routers: Vec<Router> = (0..2).map(|_| Router::new(Policy::from_str(&y).unwrap()).unwrap()).collect();
    let (ok, cost) = drain(&routers, 16, Some("acme")).await;
    assert!((0.3 * 0.95..=0.3 + 1e-9).contains(&cost), "tenant spent {cost} of 0.3");
    assert_eq!(hits(&srv, "m"), ok);
    // Keys really are spread: more than one master holds some.
    let holding = cluster.nodes.iter().filter(|n| n.cli(&["dbsize"]).parse::<u64>().unwrap_or(0) > 0).count();
    assert!(holding >= 2, "keys on {holding} node(s)");
}

/// A port where nothing listens: no request waits past the store timeout, and each
/// `on_error` does what it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_never_hangs_a_request() {
    let srv = server().await;
    srv.set_script("m", script(json!({"then": {"text": "ok"}}))).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let state = |on_error: &str| format!("{{redis: {{url: \"redis://127.0.0.1:{dead}\", timeout: 100ms, on_error: {on_error}}}}}");
    let budgets = "  - {name: b, limit_usd: 10.0, period: day}";

    let r = Router::new(Policy::from_str(&budget_policy(&srv, &state("fail_closed"), budgets)).unwrap()).unwrap();
    let t0 = Instant::now();
    let e = r.chat(req("hi")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::StateUnavailable, "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    assert_eq!(hits(&srv, "m"), 0, "nothing sent when the store refuses");
    assert!(r.metrics_text().contains("polyroute_state_store_up 0"));

    let r = Router::new(Policy::from_str(&budget_policy(&srv, &state("fail_open"), budgets)).unwrap()).unwrap();
    let resp = r.chat(req("hi")).await.unwrap();
    let notes = resp.trace.unwrap().notes.join("\n");
    assert!(notes.contains("on_error: fail_open"), "{notes}");

    let r = Router::new(Policy::from_str(&budget_policy(&srv, &state("local"), budgets)).unwrap()).unwrap();
    for _ in 0..3 {
        let t0 = Instant::now();
        let resp = r.chat(req("hi")).await.unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(resp.trace.unwrap().notes.join("\n").contains("on_error: local"));
    }
    // Held locally: this process's own figures.
    assert!(r.budgets()[0].spent > 0.0);
    assert!(r.metrics_text().contains("polyroute_state_store_fallbacks_total{on_error=\"local\"}"));
}

/// redis-server killed mid-run and started again (empty): requests go on locally, the
/// router re-joins without a restart, and what it spent meanwhile reaches the shared ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restart_is_survived_and_the_outage_spend_reconciled() {
    let mut redis = RedisServer::start();
    let srv = server().await;
    srv.set_script("m", script(json!({"then": {"text": "a b", "usage": {"input_tokens": 10, "output_tokens": 5}}}))).unwrap();
    let state = format!("{{redis: {{url: \"{}\", timeout: 100ms, sync_interval: 50ms}}}}", redis.url());
    let y = budget_policy(&srv, &state, "  - {name: b, limit_usd: 10.0, period: day}");
    let r = Router::new(Policy::from_str(&y).unwrap()).unwrap();
    r.chat(req("before")).await.unwrap();
    redis.kill();
    let mut outage = 0.0;
    for i in 0..5 {
        let t0 = Instant::now();
        let resp = r.chat(req(&format!("during {i}"))).await.unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2), "request {i} took {:?}", t0.elapsed());
        outage += resp.cost_usd.unwrap();
    }
    redis.restart();
    let t0 = Instant::now();
    while !r.metrics_text().contains("polyroute_state_store_up 1") {
        assert!(t0.elapsed() < Duration::from_secs(10), "never re-joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new process sees what was spent during the outage (the restarted store is empty of
    // what came before: it has no persistence).
    let other = Router::new(Policy::from_str(&y).unwrap()).unwrap();
    other.chat(req("after")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spent = other.budgets()[0].spent;
    let one = outage / 5.0;
    assert!((spent - (outage + one)).abs() < 1e-6, "ledger has {spent}, outage spent {outage} + one request {one}");
}

/// A trips the breaker; B, on its own connection, skips the deployment without sending;
/// after the open time the fleet sends exactly one probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_tripped_in_one_router_opens_for_the_fleet_with_one_probe() {
    let redis = RedisServer::start();
    let srv = server().await;
    srv.set_script("flaky", script(json!({"then": {"status": 503}}))).unwrap();
    srv.set_script("good", script(json!({"then": {"text": "fine"}}))).unwrap();
    let y = format!(
        r#"
providers:
  mock: {{kind: openai, base_url: "{}", api_key: "{KEY}"}}
deployments:
  flaky: {{provider: mock, model: flaky}}
  good: {{provider: mock, model: good}}
routes:
  - {{name: main, deployments: [flaky, good]}}
breaker: {{consecutive_failures: 1, open_for: 2s}}
state: {{redis: {{url: "{}", timeout: 2s, sync_interval: 50ms}}}}
"#,
        srv.base_url(),
        redis.url()
    );
    let a = Router::new(Policy::from_str(&y).unwrap()).unwrap();
    let b = Router::new(Policy::from_str(&y).unwrap()).unwrap();
    let before = hits(&srv, "flaky");
    let resp = a.chat(req("a trips it")).await.unwrap();
    assert_eq!(resp.trace.unwrap().served_by.as_deref(), Some("good"));
    assert_eq!(hits(&srv, "flaky"), before + 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let resp = b.chat(req("b")).await.unwrap();
        assert_eq!(resp.trace.unwrap().served_by.as_deref(), Some("good"));
    }
    assert_eq!(hits(&srv, "flaky"), before + 1, "B sent nothing to the tripped deployment");
    let st = b.deployments().into_iter().find(|d| d.deployment == "flaky").unwrap();
    assert_eq!(st.breaker.state, BreakerState::Open);

    // Open time over; the deployment recovered but answers slowly: concurrent requests from
    // both routers while the probe is in flight.
    srv.set_script("flaky", script(json!({"then": {"text": "back", "latency_ms": 400}}))).unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let probes_before = hits(&srv, "flaky");
    let mut tasks = Vec::new();
    for r in [&a, &b, &a, &b, &a, &b] {
        let r = r.clone();
        tasks.push(tokio::spawn(async move { r.chat(req("after")).await.unwrap() }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(hits(&srv, "flaky") - probes_before, 1, "exactly one probe across the fleet");
    // The probe succeeded: closed for everyone after a sync.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in [&a, &b] {
        let st = r.deployments().into_iter().find(|d| d.deployment == "flaky").unwrap();
        assert_eq!(st.breaker.state, BreakerState::Closed);
    }
}

/// Redis answering OOM (maxmemory reached, nothing evictable) is a store failure like any
/// other: served locally, and re-joined when memory is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_memory_store_falls_back_and_recovers() {
    let redis = RedisServer::start();
    let srv = server().await;
    srv.set_script("m", script(json!({"then": {"text": "ok"}}))).unwrap();
    let state = format!("{{redis: {{url: \"{}\", timeout: 1s, sync_interval: 50ms}}}}", redis.url());
    let r = Router::new(Policy::from_str(&budget_policy(&srv, &state, "  - {name: b, limit_usd: 10.0, period: day}")).unwrap()).unwrap();
    r.chat(req("fine")).await.unwrap();
    assert_eq!(redis.cli(&["config", "set", "maxmemory-policy", "noeviction"]), "OK");
    assert_eq!(redis.cli(&["config", "set", "maxmemory", "1"]), "OK");
    let resp = r.chat(req("full")).await.unwrap();
    assert!(resp.trace.unwrap().notes.join("\n").contains("on_error: local"));
    assert!(r.metrics_text().contains("polyroute_state_store_up 0"));
    assert_eq!(redis.cli(&["config", "set", "maxmemory", "0"]), "OK");
    let t0 = Instant::now();
    while !r.metrics_text().contains("polyroute_state_store_up 1") {
        assert!(t0.elapsed() < Duration::from_secs(10), "never re-joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = r.chat(req("back")).await.unwrap();
    assert!(resp.trace.unwrap().notes.is_empty());
}

/// What one router learns about a deployment reaches the others through the store: the
/// provider's "0 requests left" (they skip it until the reset) and its latency figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_exhaustion_and_latency_are_shared() {
    let redis = RedisServer::start();
    let srv = server().await;
    srv.set_script(
        "warn",
        script(json!({"then": {"latency_ms": 60, "headers": {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}}})),
    )
    .unwrap();
    srv.set_script("other", script(json!({"then": {"text": "fine"}}))).unwrap();
    let y = format!(
        r#"
providers:
  mock: {{kind: openai, base_url: "{}", api_key: "{KEY}"}}
deployments:
  a: {{provider: mock, model: warn}}
  b: {{provider: mock, model: other}}
routes:
  - {{name: main, deployments: [a, b]}}
state: {{redis: {{url: "{}", timeout: 2s, sync_interval: 50ms}}}}
"#,
        srv.base_url(),
        redis.url()
    );
    let a = Router::new(Policy::from_str(&y).unwrap()).unwrap();
    assert_eq!(a.chat(req("1")).await.unwrap().model, "warn");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A router that never called `a` skips it on its very first request.
    let b = Router::new(Policy::from_str(&y).unwrap()).unwrap();
    let resp = b.chat(req("2")).await.unwrap();
    assert_eq!(resp.model, "other");
    let t = resp.trace.unwrap();
    let skipped = t.candidates.iter().find(|c| c.deployment == "a").and_then(|c| c.skipped.clone()).unwrap_or_default();
    assert!(skipped.contains("seen by another process of the fleet"), "{skipped}");
    assert_eq!(hits(&srv, "warn"), 1);
    // ...and reports the latency `a`'s callers measured, without having measured any.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = b.deployments().into_iter().find(|d| d.deployment == "a").unwrap();
    assert!(st.ttft_ewma_ms.is_some_and(|e| e >= 50.0), "{st:?}");
}
