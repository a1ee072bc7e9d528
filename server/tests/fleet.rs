//! Fleet-wide guarantees across OS processes: four `polyroute serve` processes share one
//! real `redis-server` (started here on a free loopback port, no persistence, killed at the
//! end) and one mock provider, and are driven with 128 concurrent clients each.

mod common;

use std::time::{Duration, Instant};

use polyroute::provider::mock::MockScript;
use polyroute_mock_server::redis::{RedisCluster, RedisServer};
use polyroute_mock_server::{start, MockServerHandle, ServerOptions};
use serde_json::json;

use common::Gateway;

const PROCESSES: usize = 4;
const CLIENTS: usize = 128;

fn script(v: serde_json::Value) -> MockScript {
    serde_json::from_value(v).unwrap()
}

fn policy(srv: &MockServerHandle, redis: &str, extra: &str) -> String {
    format!(
        "providers: {{mock: {{kind: openai, base_url: \"{}\", api_key: \"sk-test-not-a-real-key\"}}}}\n\
         deployments: {{d: {{provider: mock, model: m, pricing: {{input_per_mtok: 1000.0, output_per_mtok: 1000.0}}{extra_dep}}}}}\n\
         routes: [{{name: main, deployments: [d], timeouts: {{total: 3s}}, retry: {{max_retry_after: 1s}}}}]\n\
         state: {{redis: {{url: \"{redis}\", timeout: 1s, sync_interval: 100ms}}}}\n{extra}\n",
        srv.base_url(),
        extra_dep = if extra.starts_with("rate_limit") { ", rate_limit: {requests_per_minute: 300}" } else { "" },
        extra = if extra.starts_with("rate_limit") { "" } else { extra },
    )
}

/// Every process gets `CLIENTS` clients that send until refused three times in a row.
/// Returns (successes, cost reported by the successes, tokens billed).
async fn drive(gateways: &[Gateway]) -> (usize, f64, u64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let body = json!({"model": "main", "max_tokens": 8, "messages": [{"role": "user", "content": "hello fleet"}]});
    let mut tasks = Vec::new();
    for g in gateways {
        for _ in 0..CLIENTS {
            let (client, url, body) = (client.clone(), format!("{}/v1/chat/completions", g.url), body.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut cost, mut tokens, mut refused) = (0usize, 0.0, 0u64, 0);
                while refused < 3 {
                    let r = client.post(&url).json(&body).send().await.unwrap();
                    let status = r.status().as_u16();
                    let c: f64 = r.headers().get("x-polyroute-cost-usd").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                    let v: serde_json::Value = r.json().await.unwrap();
                    if status == 200 {
                        ok += 1;
                        cost += c;
                        tokens += v["usage"]["total_tokens"].as_u64().unwrap();
                        refused = 0;
                    } else {
                        assert_eq!(status, 429, "{v}");
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                (ok, cost, tokens)
            }));
        }
    }
    let mut total = (0, 0.0, 0);
    for t in tasks {
        let (o, c, k) = t.await.unwrap();
        total = (total.0 + o, total.1 + c, total.2 + k);
    }
    total
}

struct Fleet {
    srv: MockServerHandle,
    redis: RedisServer,
}

async fn fleet() -> Fleet {
    let srv = start(ServerOptions { port: 0, log_capacity: 100_000 }).await.unwrap();
    srv.set_script("m", script(json!({"then": {"text": "a b c", "latency_ms": 15, "usage": {"input_tokens": 10, "output_tokens": 5}}}))).unwrap();
    Fleet { srv, redis: RedisServer::start() }
}

fn gateways(f: &Fleet, tag: &str, extra: &str) -> Vec<Gateway> {
    let text = policy(&f.srv, &f.redis.url(), extra);
    (0..PROCESSES).map(|i| Gateway::start(&format!("fleet-{tag}-{i}"), &text, &[], &[])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_never_overspend_one_dollar() {
    let f = fleet().await;
    let gws = gateways(&f, "usd", "budgets: [{name: fleet, limit_usd: 1.0, period: day}]");
    let (ok, cost, _) = drive(&gws).await;
    assert!(cost <= 1.0 + 1e-9, "the fleet spent ${cost} of $1.00");
    assert!(cost >= 0.95, "only ${cost} of $1.00 used");
    assert_eq!(f.srv.log_for("m").len(), ok, "refused requests never reached the provider");
}

/// The same against a 3-master Redis Cluster, with a per-tenant budget beside the global one
/// so one reservation spans two slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_on_a_cluster_never_overspend() {
    let f = fleet().await;
    let cluster = RedisCluster::start();
    let text = policy(
        &f.srv,
        &cluster.urls(),
        "budgets: [{name: fleet, limit_usd: 5.0, period: day}, {name: per-key, limit_usd: 1.0, period: day, scope: {route: main}}]",
    )
    .replace("sync_interval: 100ms", "sync_interval: 100ms, cluster: true");
    let gws: Vec<Gateway> = (0..PROCESSES).map(|i| Gateway::start(&format!("fleet-cluster-{i}"), &text, &[], &[])).collect();
    let (ok, cost, _) = drive(&gws).await;
    assert!(cost <= 1.0 + 1e-9, "the fleet spent ${cost} of $1.00");
    assert!(cost >= 0.95, "only ${cost} of $1.00 used");
    assert_eq!(f.srv.log_for("m").len(), ok);
    let holding = cluster.nodes.iter().filter(|n| n.cli(&["dbsize"]).parse::<u64>().unwrap_or(0) > 0).count();
    assert!(holding >= 2, "keys on {holding} node(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_never_exceed_a_token_budget() {
    let f = fleet().await;
    let gws = gateways(&f, "tok", "budgets: [{name: fleet-tokens, limit_tokens: 1500, period: day}]");
    let (ok, _, tokens) = drive(&gws).await;
    assert!(tokens <= 1500, "the fleet used {tokens} of 1500 tokens");
    assert!(tokens as f64 >= 1500.0 * 0.95, "only {tokens} of 1500 tokens used");
    assert_eq!(f.srv.log_for("m").len(), ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_hold_300_requests_a_minute() {
    let f = fleet().await;
    let t0 = Instant::now();
    let gws = gateways(&f, "rpm", "rate_limit");
    let (ok, _, _) = drive(&gws).await;
    // The whole run is one window of a minute: the fleet's limit is its total.
    assert!(t0.elapsed() < Duration::from_secs(60), "run too slow to be one window");
    assert!(ok <= 300, "{ok} requests in a minute across the fleet");
    assert!(ok >= 285, "only {ok} of 300");
    assert_eq!(f.srv.log_for("m").len(), ok);
}

/// A process killed while holding reservations: the hold comes back within its lease
/// (the route's total timeout plus 2 s) and the others then use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_returns_its_holds_when_the_lease_ends() {
    let f = fleet().await;
    f.srv.set_script("slow", script(json!({"then": {"text": "late", "latency_ms": 10_000}}))).unwrap();
    let text = policy(&f.srv, &f.redis.url(), "budgets: [{name: fleet, limit_usd: 0.03, period: day}]").replace("model: m,", "model: slow,");
    let victim = Gateway::start("fleet-kill-a", &text, &[], &[]);
    let survivor = Gateway::start("fleet-kill-b", &text, &[], &[]);
    let client = reqwest::Client::new();
    let body = json!({"model": "main", "max_tokens": 8, "messages": [{"role": "user", "content": "hello fleet"}]});
    // Each request holds ~$0.013 (its input estimate + 8 output tokens) of $0.03: two of
    // them fill the budget, the other two are refused at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        let (c, u, b) = (client.clone(), format!("{}/v1/chat/completions", victim.url), body.clone());
        held.push(tokio::spawn(async move { c.post(&u).json(&b).send().await }));
    }
    let t0 = Instant::now();
    while f.srv.log_for("slow").len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("{}/v1/chat/completions", survivor.url);
    assert_eq!(client.post(&url).json(&body).send().await.unwrap().status(), 429, "the budget is held");
    drop(victim); // SIGKILL, holds unsettled
    let killed = Instant::now();
    f.srv.set_script("slow", script(json!({"then": {"text": "fast"}}))).unwrap();
    loop {
        let s = client.post(&url).json(&body).send().await.unwrap().status();
        if s == 200 {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(8), "holds not returned {:?} after the kill", killed.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Lease = the 3 s total timeout (less what had passed) + 2 s of slack.
    assert!(killed.elapsed() >= Duration::from_millis(1500), "returned before the lease could end: {:?}", killed.elapsed());
}

/// Process A trips the breaker; process B skips the deployment without sending, as the mock
/// server's log proves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_in_one_process_stops_the_others_sending() {
    let f = fleet().await;
    f.srv.set_script("bad", script(json!({"then": {"status": 503}}))).unwrap();
    let text = format!(
        "providers: {{mock: {{kind: openai, base_url: \"{}\", api_key: \"sk-test-not-a-real-key\"}}}}\n\
         deployments: {{bad: {{provider: mock, model: bad}}, good: {{provider: mock, model: m}}}}\n\
         routes: [{{name: main, deployments: [bad, good]}}]\n\
         breaker: {{consecutive_failures: 1, open_for: 30s}}\n\
         state: {{redis: {{url: \"{}\", timeout: 1s, sync_interval: 100ms}}}}\n",
        f.srv.base_url(),
        f.redis.url()
    );
    let a = Gateway::start("fleet-brk-a", &text, &[], &[]);
    let b = Gateway::start("fleet-brk-b", &text, &[], &[]);
    let client = reqwest::Client::new();
    let body = json!({"model": "main", "messages": [{"role": "user", "content": "hi"}]});
    let r = client.post(format!("{}/v1/chat/completions", a.url)).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["x-polyroute-deployment"], "good");
    assert_eq!(f.srv.log_for("bad").len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..5 {
        let r = client.post(format!("{}/v1/chat/completions", b.url)).json(&body).send().await.unwrap();
        assert_eq!(r.headers()["x-polyroute-deployment"], "good");
    }
    assert_eq!(f.srv.log_for("bad").len(), 1, "process B sent nothing to the deployment A tripped");
}

/// A gateway key's rate limit is counted in the shared store: two replicas admit its
/// requests-per-minute once between them, not once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rate_limit_holds_across_gateway_replicas() {
    let f = fleet().await;
    let text = policy(&f.srv, &f.redis.url(), "keys: [{name: shared-key, key_env: PR_FLEET_KEY, tenant: t, rate_limit: {requests_per_minute: 6}}]");
    let env = [("PR_FLEET_KEY", "pk-fleet-test-key-0123456789")];
    let a = Gateway::start("fleet-key-a", &text, &[], &env);
    let b = Gateway::start("fleet-key-b", &text, &[], &env);
    let client = reqwest::Client::new();
    let body = json!({"model": "main", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let (mut ok, mut limited) = (0, 0);
    for i in 0..12 {
        let g = if i % 2 == 0 { &a } else { &b };
        let r = client.post(format!("{}/v1/chat/completions", g.url)).bearer_auth(env[0].1).json(&body).send().await.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                limited += 1
            }
            s => panic!("status {s}"),
        }
    }
    assert_eq!((ok, limited), (6, 6), "6 a minute across both replicas");
}

/// redis-server killed and started again while two gateways serve a steady stream of
/// requests (`on_error: local`): every request is answered in time, no process dies, and
/// both re-join the store when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_rides_through_a_store_restart() {
    let mut f = fleet().await;
    let text = policy(&f.srv, &f.redis.url(), "budgets: [{name: fleet, limit_usd: 1000.0, period: day}]");
    let gws: Vec<Gateway> = (0..2).map(|i| Gateway::start(&format!("fleet-restart-{i}"), &text, &[], &[])).collect();
    let client = reqwest::Client::new();
    let body = json!({"model": "main", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let stop = Instant::now() + Duration::from_millis(3000);
    let mut tasks = Vec::new();
    for g in &gws {
        for _ in 0..8 {
            let (c, u, b) = (client.clone(), format!("{}/v1/chat/completions", g.url), body.clone());
            tasks.push(tokio::spawn(async move {
                let (mut n, mut slowest) = (0, Duration::ZERO);
                while Instant::now() < stop {
                    let t = Instant::now();
                    let r = c.post(&u).json(&b).send().await.unwrap();
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                    slowest = slowest.max(t.elapsed());
                    n += 1;
                }
                (n, slowest)
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    f.redis.kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    f.redis.restart();
    for t in tasks {
        let (n, slowest) = t.await.unwrap();
        assert!(n > 0);
        // The store timeout (1 s) plus the route's total deadline (3 s) bounds any request.
        assert!(slowest < Duration::from_secs(4), "a request took {slowest:?}");
    }
    let t0 = Instant::now();
    for g in &gws {
        loop {
            let m = client.get(format!("{}/metrics", g.url)).send().await.unwrap().text().await.unwrap();
            if m.contains("polyroute_state_store_up 1") {
                assert!(m.contains("polyroute_state_store_fallbacks_total{on_error=\"local\"}"), "the outage was served locally");
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "a gateway never re-joined the store");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
