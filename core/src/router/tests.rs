//! Router-level unit tests of what the builder injects: the clock and the seed. Behaviour of
//! the attempt loop itself is tested in `core/tests` (in-process and over real HTTP) and in
//! the shared scenarios; these prove that time and chance really come from the router.

use std::sync::Arc;
use std::time::Duration;

use super::Router;
use crate::clock::FixedClock;
use crate::{ChatRequest, ErrorKind, Message, Policy};

fn policy(yaml: &str) -> Policy {
    Policy::from_str(yaml).unwrap_or_else(|e| panic!("policy: {e}"))
}

const WEIGHTED: &str = r#"
providers:
  p: {kind: mock}
deployments:
  a: {provider: p, model: m-a, weight: 1}
  b: {provider: p, model: m-b, weight: 1}
  c: {provider: p, model: m-c, weight: 1}
  d: {provider: p, model: m-d, weight: 1}
routes:
  - {name: main, strategy: weighted, deployments: [a, b, c, d]}
"#;

fn order(r: &Router) -> Vec<String> {
    r.plan(&ChatRequest::new(vec![Message::user("hi")])).unwrap().order
}

#[test]
fn a_seeded_router_makes_the_same_random_choices() {
    let draws = |seed| {
        let r = Router::builder(policy(WEIGHTED)).seed(seed).build().unwrap();
        (0..20).map(|_| order(&r)).collect::<Vec<_>>()
    };
    assert_eq!(draws(42), draws(42));
    // ...and they are choices: another seed orders differently somewhere in 20 draws.
    assert_ne!(draws(42), draws(43));
}

#[tokio::test(start_paused = true)]
async fn budgets_read_the_injected_wall_clock() {
    // 23:59:58 UTC: a calendar-day budget resets two seconds later, on the router's clock.
    let day = 86_400.0;
    let start = 20_000.0 * day - 2.0;
    let yaml = r#"
providers:
  p: {kind: mock}
deployments:
  a: {provider: p, model: m-a, pricing: {input_per_mtok: 1000000.0, output_per_mtok: 0.0}, max_output_tokens: 1}
routes:
  - {name: main, deployments: [a]}
budgets:
  - {name: daily, limit_usd: 10.0, period: day}
"#;
    let r = Router::builder(policy(yaml)).clock(Arc::new(FixedClock::starting_at(start))).build().unwrap();
    let req = || ChatRequest::new(vec![Message::user("hello there, budget")]);
    // Each request reserves a few dollars of input: the day's $10 runs out quickly.
    let mut refused = None;
    for _ in 0..10 {
        if let Err(e) = r.chat(req()).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("the daily budget must run out");
    assert_eq!(e.kind, ErrorKind::BudgetExceeded);
    let info = e.budget.expect("budget details");
    assert_eq!(info.resets_at, 20_000.0 * day, "the period ends at the injected clock's midnight");
    tokio::time::advance(Duration::from_secs(3)).await;
    r.chat(req()).await.expect("a new day on the injected clock has a fresh budget");
}

#[test]
fn an_unknown_capability_is_a_config_error_with_its_path() {
    let yaml = r#"
providers:
  p: {kind: mock}
deployments:
  a: {provider: p, model: m-a}
routes:
  - {name: main, match: {capabilities: [tools, telepathy]}, deployments: [a]}
"#;
    let e = Policy::from_str(yaml).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("routes[0].match.capabilities[1]") && e.message.contains("telepathy"), "{}", e.message);
    assert!(e.message.contains("json_schema"), "names the known ones: {}", e.message);
}

fn route_with(extra: &str) -> String {
    format!(
        r#"
providers:
  p: {{kind: mock}}
deployments:
  a: {{provider: p, model: m-a}}
routes:
  - name: main
    deployments: [a]
{extra}
"#
    )
}

#[test]
fn extreme_numbers_are_config_errors_with_paths_never_panics() {
    for (extra, path) in [
        ("    timeouts: {total: 1e30}", "routes[0].timeouts.total"),
        ("    timeouts: {total: 18446744073709551615}", "routes[0].timeouts.total"),
        ("    timeouts: {total: \"9999999h\"}", "routes[0].timeouts.total"),
        ("    timeouts: {first_token: -5}", "routes[0].timeouts.first_token"),
        ("    retry: {base_delay: 1e300}", "routes[0].retry.base_delay"),
        ("    hedge: {delay: \"1e308s\"}", "routes[0].hedge.delay"),
    ] {
        let e = Policy::from_str(&route_with(extra)).expect_err(extra);
        assert_eq!(e.kind, ErrorKind::Config, "{extra}");
        assert!(e.message.contains(path), "{extra}: {}", e.message);
    }
    // A huge attempt count is checked in bounded time and accepted (the deadline bounds it).
    let p = Policy::from_str(&route_with("    retry: {attempts_per_deployment: 4294967295, max_attempts: 4294967295}")).unwrap();
    assert_eq!(p.spec.routes[0].retry.attempts_per_deployment, u32::MAX);
}

#[test]
fn durations_are_honoured_exactly_text_or_number() {
    let p = Policy::from_str(&route_with("    timeouts: {total: \"48h\", first_token: 172800000, idle: \"1h30m\"}")).unwrap();
    let t = p.spec.routes[0].timeouts;
    assert_eq!(t.total.unwrap().0, Duration::from_secs(48 * 3600));
    assert_eq!(t.first_token.unwrap().0, Duration::from_secs(48 * 3600));
    assert_eq!(t.idle.unwrap().0, Duration::from_secs(5400));
}

#[test]
fn provider_headers_are_redacted_like_keys_and_hosted_providers_need_a_key() {
    let yaml = r#"
providers:
  gw: {kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", headers: {x-gateway-key: "gw-secret-value-123"}}
deployments:
  a: {provider: gw, model: m}
routes:
  - {name: main, deployments: [a]}
"#;
    let r = Router::from_policy_str(yaml).unwrap();
    let shown = serde_json::to_string(&r.policy()).unwrap();
    assert!(!shown.contains("gw-secret-value-123") && shown.contains("x-gateway-key"), "{shown}");
    assert!(!format!("{:?}", r.policy()).contains("gw-secret-value-123"));
    let e = Router::from_policy_str(&yaml.replace("kind: openai_compatible", "kind: openai")).unwrap_err();
    assert!(e.message.contains("providers.gw") && e.message.contains("needs `api_key_env`"), "{}", e.message);
}

/// `route_for` answers with the route the walk will take: guards' `set_data_class` and the
/// streaming capability included (what `plan` leaves out), without sending anything.
#[test]
fn route_for_sees_guards_and_streaming() {
    let r = Router::new(policy(
        r#"
providers: {p: {kind: mock}}
deployments: {a: {provider: p, model: m}}
guards:
  - {name: pii, detect: [email], action: audit, set_data_class: pii}
routes:
  - {name: private, match: {data_class: [pii]}, deployments: [a]}
  - {name: live, match: {capabilities: [streaming]}, deployments: [a]}
  - {name: main, deployments: [a]}
default_route: main
"#,
    ))
    .unwrap();
    let req = |t: &str| ChatRequest::new(vec![Message::user(t)]);
    let mail = req("write to someone@example.com");
    assert_eq!(r.route_for(&req("hi"), false).unwrap(), "main");
    assert_eq!(r.route_for(&req("hi"), true).unwrap(), "live");
    assert_eq!(r.route_for(&mail, false).unwrap(), "private");
    assert_eq!(r.plan(&mail).unwrap().route, "main", "plan does not run the guards");
    assert_eq!(mail.routing.data_class, None, "the caller's request is not changed");
    let mut named = req("hi");
    named.routing.route = Some("nowhere".into());
    assert_eq!(r.route_for(&named, false).unwrap_err().kind, ErrorKind::NoRoute);
}

/// `keys:` as a router reads its policy back: the digests are there for the gateway to match
/// against, the clear key and the digest are in no serialisation or `Debug`.
#[test]
fn policy_read_back_never_shows_a_key() {
    const CANARY: &str = "pr-test-canary-key-0005";
    std::env::set_var("POLYROUTE_UNIT_ROUTER_KEY", CANARY);
    let r = Router::new(policy(
        "providers: {p: {kind: mock}}\ndeployments: {a: {provider: p, model: m}}\nroutes: [{name: main, deployments: [a]}]\nkeys: [{name: k, key_env: POLYROUTE_UNIT_ROUTER_KEY, tenant: t}]\n",
    ))
    .unwrap();
    let p = r.policy();
    assert_eq!(crate::policy::find_key(&p.keys, CANARY).map(|k| k.tenant.as_str()), Some("t"));
    let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(CANARY.as_bytes()));
    for s in [serde_json::to_string(&p).unwrap(), serde_yaml_ng::to_string(&p).unwrap(), format!("{p:?}"), format!("{r:?}")] {
        assert!(!s.contains(CANARY) && !s.contains("canary-key") && !s.contains(&digest), "key material in: {s}");
    }
}

/// A request's held start event is not lost when the request ends without another event
/// (dropped, cancelled): the context's drop publishes it. Nothing is built when no callback
/// listens.
#[test]
fn a_held_event_goes_out_when_the_request_is_dropped() {
    use crate::telemetry::RouterEvent;
    use std::sync::Mutex;
    let r = Router::builder(policy(WEIGHTED)).build().unwrap();
    let compiled = r.snapshot();
    let route = compiled.routes[0].spec.clone();
    let req = ChatRequest::new(vec![Message::user("hi")]);
    let started = |id: &str| RouterEvent::RequestStarted { request_id: id.into(), route: "main".into(), stream: false };

    let mut quiet = super::lifecycle::RequestCtx::new(&r, &compiled, &route, "main".into(), &req, false);
    quiet.hold(|_| panic!("built although no callback listens"));
    drop(quiet);

    let seen: Arc<Mutex<Vec<RouterEvent>>> = Arc::default();
    let s2 = seen.clone();
    r.subscribe(move |e| s2.lock().unwrap().push(e.clone()));
    // A context holds its request's start from the moment it exists.
    let ctx = super::lifecycle::RequestCtx::new(&r, &compiled, &route, "main".into(), &req, false);
    assert!(r.flush_events());
    assert!(seen.lock().unwrap().is_empty(), "held, not sent: {:?}", seen.lock().unwrap());
    let id = ctx.trace.request_id.clone();
    drop(ctx);
    assert!(r.flush_events());
    assert_eq!(*seen.lock().unwrap(), vec![started(&id)]);
}

#[tokio::test]
async fn request_ids_are_the_process_id_in_hex_and_the_routers_sequence() {
    let r = Router::builder(policy(WEIGHTED)).build().unwrap();
    let prefix = format!("pr-{:x}-", std::process::id());
    for n in 0..3u64 {
        let resp = r.chat(ChatRequest::new(vec![Message::user("hi")])).await.unwrap();
        let id = &resp.trace.expect("a routed answer has its trace").request_id;
        assert_eq!(id.strip_prefix(prefix.as_str()).and_then(|s| s.parse::<u64>().ok()), Some(n), "{id}");
    }
}
