//! Guards over real HTTP: what a provider receives (the mock server's log), what the caller
//! gets back, and the leak check — a detected value never appears in an event, a trace, a
//! metric or an error, only its detector's name and a count.

use std::process::Command;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use polyroute::provider::mock::MockScript;
use polyroute::{ChatRequest, ErrorKind, Message, Router, StreamEvent};
use serde_json::json;

use crate::common::mock_server as server;

const EMAIL: &str = "canary.person@example.com";
const CARD: &str = "4111 1111 1111 1111";
const PHONE: &str = "+44 20 7946 0958";
const SSN: &str = "078-05-1120";

fn req(t: &str, route: &str) -> ChatRequest {
    let mut r = ChatRequest::new(vec![Message::system(format!("the customer is {EMAIL}")), Message::user(t)]);
    r.routing.route = Some(route.into());
    r
}

fn policy(v1: &str) -> String {
    format!(
        r#"
providers: {{mock: {{kind: openai, base_url: "{v1}", api_key: "sk-test-not-a-real-key"}}}}
deployments:
  ok: {{provider: mock, model: echo}}
  cut: {{provider: mock, model: cut}}
routes:
  - {{name: main, deployments: [ok]}}
  - {{name: cutting, deployments: [cut]}}
  - {{name: strict, deployments: [ok]}}
guards:
  - {{name: watch, detect: [phone], action: audit}}
  - {{name: mails, detect: [email], action: redact}}
  - {{name: cards, detect: [credit_card], action: mask}}
  - {{name: no-ssn, detect: [us_ssn], action: reject, routes: [strict]}}
"#
    )
}

/// Every observable string of a run through every guard action, chat and stream, success,
/// interruption and rejection: none holds a detected value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detected_values_never_leak() {
    let srv = server().await;
    let cut: MockScript = serde_json::from_value(json!({"then": {"fault": {"cut_after": {"chunks": 4}}}})).unwrap();
    srv.set_script("cut", cut).unwrap();
    let r = Router::from_policy_str(&policy(&srv.base_url())).unwrap();
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let ev2 = events.clone();
    r.subscribe(move |e| ev2.lock().unwrap().push(serde_json::to_string(e).unwrap()));
    let prompt = format!("card {CARD} phone {PHONE} ssn {SSN}");
    let mut seen: Vec<String> = Vec::new();

    // chat: the card is masked and restored, the address redacted (also in the system prompt)
    let resp = r.chat(req(&prompt, "main")).await.unwrap();
    assert_eq!(resp.content(), format!("echo: card {CARD} phone {PHONE} ssn {SSN}"), "the masked card is restored in the answer");
    seen.push(serde_json::to_string(resp.trace.as_deref().unwrap()).unwrap());

    // stream: same, event by event
    let mut s = r.stream(req(&prompt, "main")).await.unwrap();
    let mut text = String::new();
    while let Some(ev) = s.next().await {
        if let StreamEvent::ContentDelta { text: t } = ev.unwrap() {
            text.push_str(&t);
        }
    }
    assert_eq!(text, format!("echo: card {CARD} phone {PHONE} ssn {SSN}"));
    seen.push(serde_json::to_string(&s.trace().unwrap()).unwrap());

    // a stream cut after content: the error is about the cut; its partial output is the
    // caller's own (restored) answer so far and is checked apart
    let mut s = r.stream(req(&format!("card {CARD} again and again"), "cutting")).await.unwrap();
    let mut err = None;
    while let Some(ev) = s.next().await {
        if let Err(e) = ev {
            err = Some(e);
        }
    }
    let mut e = err.expect("the cut reaches the caller");
    assert_eq!(e.kind, ErrorKind::StreamInterrupted);
    let partial = e.partial.take().expect("partial output");
    assert!(partial.text.contains(CARD), "partial output is restored: {}", partial.text);
    seen.push(format!("{e} {e:?}"));
    seen.push(serde_json::to_string(&e).unwrap());

    // rejected on the strict route: nothing sent
    let before = srv.log().len();
    let e = r.chat(req(&prompt, "strict")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::GuardRejected);
    assert!(e.message.contains("no-ssn") && e.message.contains("1 us_ssn"), "{}", e.message);
    assert_eq!(srv.log().len(), before, "a rejected request reaches no provider");
    seen.push(format!("{e} {e:?}"));
    seen.push(serde_json::to_string(&e).unwrap());

    let metrics = r.metrics_text();
    seen.push(metrics.clone());
    assert!(r.flush_events());
    seen.extend(events.lock().unwrap().iter().cloned());

    let wire = serde_json::to_string(&srv.log()).unwrap();
    for v in [EMAIL, CARD, "4111", PHONE, SSN] {
        for s in &seen {
            // Timings' decimals (`"ttft_ms":0.541113`) may contain the card's fragment.
            assert!(!without_decimals(s).contains(v), "`{v}` leaked in: {s}");
        }
    }
    // What providers saw: no address, no card; the audited phone and (off the strict route)
    // the SSN went out unchanged, as configured.
    assert!(!wire.contains(EMAIL) && !wire.contains("4111"), "{wire}");
    assert!(wire.contains("[EMAIL]") && wire.contains("[CREDIT_CARD_1]") && wire.contains(PHONE) && wire.contains(SSN), "{wire}");

    // ... and the checks above are not vacuous: the guards did report, with counts
    let all_events = events.lock().unwrap().join("\n");
    assert!(
        all_events.contains(r#""type":"guard_triggered""#) && all_events.contains(r#""guard":"cards","action":"mask","findings":{"credit_card":1}"#),
        "{all_events}"
    );
    assert!(metrics.contains(r#"polyroute_guard_findings_total{guard="mails",action="redact",detector="email"} 4"#), "{metrics}");
    assert!(metrics.contains(r#"polyroute_guard_findings_total{guard="no-ssn",action="reject",detector="us_ssn"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"polyroute_guard_findings_total{guard="watch",action="audit",detector="phone"} 3"#), "{metrics}");
    promtool_accepts(&metrics);
}

fn promtool_accepts(metrics: &str) {
    let Some(pt) = crate::telemetry::promtool() else { return };
    let path = std::env::temp_dir().join(format!("polyroute-guard-metrics-{}.prom", std::process::id()));
    std::fs::write(&path, metrics).unwrap();
    let out = Command::new(&pt).args(["check", "metrics"]).stdin(std::fs::File::open(&path).unwrap()).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}");
}

/// A policy with a broken guard is refused with the path of every problem.
#[test]
fn invalid_guards_are_reported_with_paths() {
    let bad = r#"
providers: {mock: {kind: mock}}
deployments: {a: {provider: mock, model: m}}
routes: [{name: main, deployments: [a]}]
guards:
  - {name: g, detect: [email, email], action: redact}
  - {name: g, patterns: {bad: "([a-z"}, action: mask}
  - {name: h, patterns: {any: "x*"}, action: audit, routes: [nowhere], set_data_class: pii}
  - {name: i, action: reject}
  - {name: j, detect: [passport], action: redact}
  - {name: k, detect: [email], action: shred}
"#;
    let e = Router::from_policy_str(bad).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    for want in [
        "guards[0].detect: `email` is listed twice",
        "guards[1].name: duplicate guard name `g`",
        "guards[1].patterns.bad: invalid regular expression",
        "guards[2].patterns.any: pattern matches the empty string",
        "guards[2].routes[0]: unknown route `nowhere`",
        "guards[2].set_data_class: a guard limited to `routes` runs after routing",
        "guards[3]: needs at least one detector",
        "guards[4].detect[0]: unknown variant `passport`",
        "guards[5].action: unknown variant `shred`",
    ] {
        assert!(e.message.contains(want), "missing `{want}` in:\n{}", e.message);
    }
}

/// `s` without the digits after a decimal point.
fn without_decimals(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '.' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.next_if(char::is_ascii_digit).is_some() {}
        }
    }
    out
}
