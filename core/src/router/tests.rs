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
