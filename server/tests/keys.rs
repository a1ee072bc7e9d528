//! `keys:` in the policy, as a client of `polyroute serve` sees it: the real binary with the
//! keys' environment variables set on the child process, in front of the loopback mock server.
//! 401 without a known key, 403 for a route the key may not use, 429 with `Retry-After` over
//! the key's rate, the key's tenant is what routing sees, a reload changes the keys, and the
//! clear keys (obvious canaries) appear nowhere the gateway writes.

mod common;

use std::time::{Duration, Instant};

use polyroute_mock_server::{start, MockServerHandle, ServerOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use common::Gateway;

const ACME: &str = "pr-test-canary-key-0001";
const OTHER: &str = "pr-test-canary-key-0002";
const LIMITED: &str = "pr-test-canary-key-0003";
const LATER: &str = "pr-test-canary-key-0004";
const UNKNOWN: &str = "pr-test-canary-key-9999";
/// Every canary shares this; none of it may appear in anything the gateway writes.
const CANARY: &str = "canary-key";

fn sha(k: &str) -> String {
    format!("{:x}", Sha256::digest(k.as_bytes()))
}

fn policy_text(v1: &str, keys: &str) -> String {
    format!(
        r#"
providers: {{mock: {{kind: openai, base_url: "{v1}", api_key: "sk-test-not-a-real-key"}}}}
deployments:
  a: {{provider: mock, model: general}}
  t: {{provider: mock, model: acme-model}}
routes:
  - {{name: acme-only, match: {{tenant: [acme]}}, deployments: [t]}}
  - {{name: chat, deployments: [a]}}
  - {{name: batch, deployments: [a]}}
default_route: chat
keys:
{keys}
"#
    )
}

fn first_keys() -> String {
    format!(
        r#"  - {{name: acme-key, key_env: PR_TEST_KEY_ACME, tenant: acme, routes: [chat, acme-only]}}
  - {{name: other-key, key_sha256: "{}", tenant: other}}
  - {{name: limited-key, key_env: PR_TEST_KEY_LIMITED, tenant: lim, rate_limit: {{requests_per_minute: 2}}}}"#,
        sha(OTHER)
    )
}

async fn mock() -> MockServerHandle {
    start(ServerOptions { port: 0, log_capacity: 10_000 }).await.unwrap()
}

fn gateway(srv: &MockServerHandle, tag: &str) -> Gateway {
    let env = [("PR_TEST_KEY_ACME", ACME), ("PR_TEST_KEY_LIMITED", LIMITED)];
    Gateway::start(&format!("keys-{tag}"), &policy_text(&srv.base_url(), &first_keys()), &["--grace", "5"], &env)
}

fn body(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

/// Everything a response showed: status, headers and body, kept for the leak check.
struct Seen {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
    log: Vec<String>,
}

impl Client {
    async fn send(&mut self, rb: reqwest::RequestBuilder) -> Seen {
        let r = rb.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let body = r.text().await.unwrap();
        self.log.push(format!("{status} {headers:?} {body}"));
        Seen { status, headers, body }
    }
    async fn chat(&mut self, auth: Option<(&str, &str)>, v: &Value) -> Seen {
        let mut rb = self.http.post(format!("{}/v1/chat/completions", self.url)).json(v);
        if let Some((h, k)) = auth {
            rb = rb.header(h, k);
        }
        self.send(rb).await
    }
    async fn bearer(&mut self, key: &str, v: &Value) -> Seen {
        self.chat(Some(("authorization", &format!("Bearer {key}"))), v).await
    }
    async fn get(&mut self, path: &str, key: Option<&str>) -> Seen {
        let mut rb = self.http.get(format!("{}{path}", self.url));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        self.send(rb).await
    }
}

fn assert_refused(s: &Seen, status: u16, code: &str) {
    assert_eq!(s.status, status, "{}", s.body);
    // what a client that does not parse the body can branch on
    assert_eq!(s.header("x-polyroute-error-kind"), code, "{:?}", s.headers);
    let v = s.json();
    assert_eq!(v["error"]["code"], code, "{}", s.body);
    assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "{}", s.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_enforced_bind_the_tenant_reload_and_never_leak() {
    let srv = mock().await;
    let mut g = gateway(&srv, "all");
    let mut c = Client { http: reqwest::Client::new(), url: g.url.clone(), log: Vec::new() };

    // 401: no key, an unknown key, a malformed header; the message never echoes the key
    assert_refused(&c.chat(None, &body("hi")).await, 401, "invalid_api_key");
    let s = c.bearer(UNKNOWN, &body("hi")).await;
    assert_refused(&s, 401, "invalid_api_key");
    assert_refused(&c.chat(Some(("authorization", &format!("Basic {ACME}"))), &body("hi")).await, 401, "invalid_api_key");
    assert_refused(&c.get("/v1/models", None).await, 401, "invalid_api_key");

    // a good key, in each accepted header
    for (h, k) in [("authorization", format!("Bearer {ACME}")), ("x-api-key", ACME.to_string()), ("api-key", ACME.to_string())] {
        let s = c.chat(Some((h, &k)), &body("hello mock")).await;
        assert_eq!(s.status, 200, "{h}: {}", s.body);
    }

    // the key's tenant is what routing sees: acme reaches `acme-only` whatever tenant it claims
    let mut claims_other = body("hello mock");
    claims_other["polyroute"] = json!({"tenant": "other"});
    let s = c.chat(Some(("authorization", &format!("Bearer {ACME}"))), &claims_other).await;
    assert_eq!((s.status, s.header("x-polyroute-route"), s.header("x-polyroute-deployment")), (200, "acme-only", "t"), "{}", s.body);
    let s =
        c.send(c.http.post(format!("{}/v1/chat/completions", c.url)).bearer_auth(ACME).header("x-polyroute-tenant", "other").json(&body("hi"))).await;
    assert_eq!(s.header("x-polyroute-route"), "acme-only");
    // ... and another key claiming to be acme does not get acme's route
    let mut claims_acme = body("hello mock");
    claims_acme["polyroute"] = json!({"tenant": "acme"});
    let s = c
        .send(c.http.post(format!("{}/v1/chat/completions", c.url)).bearer_auth(OTHER).header("x-polyroute-tenant", "acme").json(&claims_acme))
        .await;
    assert_eq!((s.status, s.header("x-polyroute-route"), s.header("x-polyroute-deployment")), (200, "chat", "a"), "{}", s.body);
    // a stream with a key takes the same checks
    let mut st = body("hello mock");
    st["stream"] = json!(true);
    let s = c.bearer(ACME, &st).await;
    assert!(s.status == 200 && s.body.contains("[DONE]"), "{}", s.body);

    // 403: a route the key may not use, asked for by name or by `model`
    let mut batch = body("hi");
    batch["model"] = json!("batch");
    assert_refused(&c.bearer(ACME, &batch).await, 403, "route_not_allowed");
    let s =
        c.send(c.http.post(format!("{}/v1/chat/completions", c.url)).bearer_auth(ACME).header("x-polyroute-route", "batch").json(&body("hi"))).await;
    assert_refused(&s, 403, "route_not_allowed");
    assert_eq!(c.bearer(OTHER, &batch).await.status, 200, "a key without `routes` may use every route");

    // /v1/models: only the key's routes, no deployments
    let ids = |s: &Seen| -> Vec<String> { s.json()["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect() };
    assert_eq!(ids(&c.get("/v1/models", Some(ACME)).await), ["acme-only", "chat"]);
    assert_eq!(ids(&c.get("/v1/models", Some(OTHER)).await), ["acme-only", "chat", "batch"]);

    // 429 with Retry-After over the key's rate; other keys are not affected
    assert_eq!(c.bearer(LIMITED, &body("hi")).await.status, 200);
    assert_eq!(c.bearer(LIMITED, &body("hi")).await.status, 200);
    let s = c.bearer(LIMITED, &body("hi")).await;
    assert_refused(&s, 429, "rate_limited");
    let wait: u64 = s.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(c.bearer(OTHER, &body("hi")).await.status, 200);

    // open endpoints
    let m = c.get("/metrics", None).await;
    assert!(m.status == 200 && m.body.contains("polyroute_requests_total"), "{}", m.body);
    assert_eq!(c.get("/healthz", None).await.status, 200);
    assert_eq!(c.get("/readyz", None).await.status, 200);

    // reload: a new key works, a removed one is refused; a policy with a pasted clear key in
    // `key_sha256` is refused without echoing it
    let later = format!("  - {{name: later-key, key_sha256: \"{}\", tenant: later}}", sha(LATER));
    std::fs::write(&g.policy, policy_text(&srv.base_url(), &later)).unwrap();
    g.signal("HUP");
    let t0 = Instant::now();
    while c.bearer(LATER, &body("hi")).await.status != 200 {
        assert!(t0.elapsed() < Duration::from_secs(5), "the new key works after the reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(&c.bearer(ACME, &body("hi")).await, 401, "invalid_api_key");
    let pasted = format!("  - {{name: pasted, key_sha256: \"{ACME}\", tenant: x}}");
    std::fs::write(&g.policy, policy_text(&srv.base_url(), &pasted)).unwrap();
    g.signal("HUP");
    let t0 = Instant::now();
    while !g.stderr.lock().unwrap().contains("NOT reloaded") {
        assert!(t0.elapsed() < Duration::from_secs(5), "the bad policy is reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.bearer(LATER, &body("hi")).await.status, 200, "the previous policy keeps serving");
    c.get("/metrics", None).await;

    // stop, so stderr is complete; then look for the canaries everywhere
    g.signal("TERM");
    let t0 = Instant::now();
    while g.child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the gateway did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stderr = g.stderr.lock().unwrap().clone();
    assert!(stderr.contains("policy reloaded") && stderr.contains("keys[0].key_sha256"), "{stderr}");
    let mut everything = c.log.clone();
    everything.push(stderr);
    assert!(everything.len() > 20);
    for (i, s) in everything.iter().enumerate() {
        assert!(!s.contains(CANARY), "a key leaked in output #{i}: {s}");
    }
    // and the keys did reach the gateway (the check above is not vacuous)
    assert!(c.log.iter().filter(|l| l.starts_with("200 ")).count() >= 10);
    std::fs::remove_file(&g.policy).ok();
}

/// Without `keys:` the gateway stays open (the other gateway tests run that way too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keys_means_open() {
    let srv = mock().await;
    let g = gateway(&srv, "open");
    std::fs::write(&g.policy, policy_text(&srv.base_url(), "  []")).unwrap();
    g.signal("HUP");
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        let r = http.post(format!("{}/v1/chat/completions", g.url)).json(&body("hi")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "open after a reload without keys");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
