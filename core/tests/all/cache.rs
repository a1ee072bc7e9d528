//! The response cache over the in-process mock provider, under tokio's paused clock: TTL
//! on the router's clock, trace marks, metrics, reloads, policy validation, stream replay of
//! tool calls, and what is never stored. The cross-language cases are the `cache_*`
//! scenarios (tests/scenarios).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use polyroute::clock::FixedClock;
use polyroute::{CacheUse, ChatRequest, ErrorKind, Message, Policy, Router, StreamEvent};

fn policy(script: &str, cache: &str, top: &str) -> String {
    format!(
        r#"
providers:
  pa: {{kind: mock, script: {script}}}
  pb: {{kind: mock, script: {{then: {{status: 500}}}}}}
deployments:
  a: {{provider: pa, model: model-a, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  b: {{provider: pb, model: model-b}}
routes:
  - name: main
    deployments: [a]
    retry: {{attempts_per_deployment: 1}}
    cache: {cache}
{top}
"#
    )
}

/// A router whose wall clock follows tokio's paused clock.
fn router(text: &str) -> Router {
    let p = Policy::from_str(text).unwrap_or_else(|e| panic!("policy: {e}"));
    Router::builder(p).clock(Arc::new(FixedClock::starting_at(1_700_000_000.0))).build().unwrap()
}

fn req(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)])
}

const TWO_ANSWERS: &str = r#"{steps: [{text: "first"}], then: {text: "second"}}"#;

async fn content_and_cache(r: &Router, q: ChatRequest) -> (String, Option<CacheUse>) {
    let resp = r.chat(q).await.unwrap();
    (resp.content(), resp.trace.unwrap().cache)
}

#[tokio::test(start_paused = true)]
async fn ttl_is_measured_on_the_routers_clock() {
    let r = router(&policy(TWO_ANSWERS, "{mode: read_write, ttl: 10m}", ""));
    assert_eq!(content_and_cache(&r, req("hi")).await, ("first".into(), Some(CacheUse::Stored)));
    tokio::time::advance(Duration::from_secs(599)).await;
    assert_eq!(content_and_cache(&r, req("hi")).await, ("first".into(), Some(CacheUse::Hit)));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(content_and_cache(&r, req("hi")).await, ("second".into(), Some(CacheUse::Stored)));
}

#[tokio::test(start_paused = true)]
async fn a_hit_has_its_own_trace_costs_nothing_and_is_counted() {
    let r = router(&policy(TWO_ANSWERS, "{mode: read_write, ttl: 1h}", ""));
    let first = r.chat(req("hi")).await.unwrap();
    assert!(first.cost_usd.unwrap() > 0.0);
    tokio::time::advance(Duration::from_secs(12)).await;
    let hit = r.chat(req("hi")).await.unwrap();
    assert_eq!(hit.content(), "first");
    assert_eq!(hit.model, first.model);
    assert_eq!(hit.usage, first.usage, "the answer's own usage is kept");
    assert_eq!(hit.cost_usd, Some(0.0));
    let t = hit.trace.unwrap();
    assert_eq!((t.cache, t.served_by.as_deref(), t.attempts.len(), t.total_cost_usd), (Some(CacheUse::Hit), None, 0, Some(0.0)));
    assert_eq!(t.route, "main");
    assert_ne!(t.request_id, first.trace.as_ref().unwrap().request_id);
    assert!(t.notes.iter().any(|n| n.contains("stored 12 s ago by `a`")), "{:?}", t.notes);
    assert!(t.explanation.starts_with("Served from the response cache on route `main`"), "{}", t.explanation);
    let m = r.metrics_text();
    for line in [
        "polyroute_cache_lookups_total{route=\"main\",result=\"hit\"} 1",
        "polyroute_cache_lookups_total{route=\"main\",result=\"miss\"} 1",
        "polyroute_cache_entries 1",
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    let bytes: u64 = m.lines().find_map(|l| l.strip_prefix("polyroute_cache_bytes ")).unwrap().parse().unwrap();
    assert!(bytes > 100 && bytes < 4096, "{bytes}");
    assert!(m.contains(&format!("polyroute_cache_max_bytes {}", 64 << 20)));
    promtool_accepts(&m);
}

/// `promtool check metrics` (lint included) accepts the exposition, when promtool is
/// installed (telemetry.rs makes its absence fatal in CI).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Some(pt) = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("promtool")).find(|p| p.is_file())) else { return };
    let mut child = Command::new(pt).args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}");
}

#[tokio::test(start_paused = true)]
async fn routes_without_cache_are_untouched_and_sampled_requests_bypass() {
    let r = router(&policy(TWO_ANSWERS, "null", ""));
    assert_eq!(content_and_cache(&r, req("hi")).await, ("first".into(), None));
    assert_eq!(content_and_cache(&r, req("hi")).await, ("second".into(), None));
    assert!(r.metrics_text().contains("polyroute_cache_entries 0"));

    let r = router(&policy(TWO_ANSWERS, "{ttl: 1m}", ""));
    let mut q = req("hi");
    q.temperature = Some(0.5);
    assert_eq!(content_and_cache(&r, q.clone()).await, ("first".into(), Some(CacheUse::Bypass)));
    assert_eq!(content_and_cache(&r, q).await, ("second".into(), Some(CacheUse::Bypass)));
    let mut q = req("hi");
    q.top_p = Some(1.0);
    q.temperature = Some(0.0);
    assert_eq!(content_and_cache(&r, q.clone()).await, ("second".into(), Some(CacheUse::Stored)));
    assert_eq!(content_and_cache(&r, q).await, ("second".into(), Some(CacheUse::Hit)));
}

#[tokio::test(start_paused = true)]
async fn errors_carry_a_miss_and_fallback_only_marks_its_rescue() {
    let r = router(&policy(r#"{steps: [{text: "kept"}], then: {status: 503}}"#, "{mode: fallback_only, ttl: 1m}", ""));
    assert_eq!(content_and_cache(&r, req("hi")).await, ("kept".into(), Some(CacheUse::Stored)));
    let resp = r.chat(req("hi")).await.unwrap();
    assert_eq!(resp.content(), "kept");
    let t = resp.trace.unwrap();
    assert_eq!((t.cache, t.degraded, t.served_by), (Some(CacheUse::Fallback), true, None));
    let e = r.chat(req("other")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert_eq!(e.trace.unwrap().cache, Some(CacheUse::Miss));
    // A caller's error never falls back on the cache.
    let mut bad = req("hi");
    bad.routing.route = Some("nope".into());
    assert_eq!(r.chat(bad).await.unwrap_err().kind, ErrorKind::NoRoute);
    assert!(r.metrics_text().contains("polyroute_cache_lookups_total{route=\"main\",result=\"fallback\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn a_stream_hit_replays_tool_calls_as_stream_events() {
    let script = r#"{steps: [{tool_calls: [{name: get_weather, arguments: {city: Paris}}]}], then: {text: "no tools left"}}"#;
    let r = router(&policy(script, "{ttl: 1m}", ""));
    let stored = r.chat(req("weather?")).await.unwrap();
    assert_eq!(stored.tool_calls().len(), 1);
    let mut s = r.stream(req("weather?")).await.unwrap();
    let mut evs = Vec::new();
    while let Some(ev) = s.next().await {
        evs.push(ev.unwrap());
    }
    assert!(matches!(&evs[0], StreamEvent::Start { .. }), "{evs:?}");
    let tc = evs.iter().find_map(|e| match e {
        StreamEvent::ToolCallDelta { index: 0, id, name, arguments } => Some((id.clone(), name.clone(), arguments.clone())),
        _ => None,
    });
    let (id, name, args) = tc.expect("a tool call fragment");
    assert_eq!((id.as_deref(), name.as_deref()), (Some(stored.tool_calls()[0].id.as_str()), Some("get_weather")));
    assert_eq!(args, stored.tool_calls()[0].arguments);
    assert!(matches!(evs.last(), Some(StreamEvent::Finish { reason: polyroute::FinishReason::ToolCalls, .. })), "{evs:?}");
    assert_eq!(s.trace().unwrap().cache, Some(CacheUse::Hit));
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_fails_the_schema_is_not_stored() {
    let r = router(&policy(r#"{then: {text: "not json"}}"#, "{ttl: 1m}", ""));
    let mut q = req("give me json");
    q.response_format = Some(polyroute::ResponseFormat::JsonSchema {
        name: "x".into(),
        schema: serde_json::json!({"type": "object"}),
        strict: None,
        description: None,
    });
    let mut s = r.stream(q.clone()).await.unwrap();
    while let Some(ev) = s.next().await {
        ev.unwrap();
    }
    assert_eq!(s.trace().unwrap().cache, Some(CacheUse::Miss));
    // Had it been stored, this would be a hit; the provider's answer fails validation instead.
    let e = r.chat(q).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidOutput);
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_early_is_not_stored() {
    let r = router(&policy(r#"{steps: [{text: "one two three"}], then: {text: "again"}}"#, "{ttl: 1m}", ""));
    let mut s = r.stream(req("hi")).await.unwrap();
    let _ = s.next().await;
    drop(s);
    assert_eq!(content_and_cache(&r, req("hi")).await, ("again".into(), Some(CacheUse::Stored)));
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_answers_unless_the_bound_changes() {
    let text = policy(TWO_ANSWERS, "{ttl: 1m}", "");
    let r = router(&text);
    assert_eq!(content_and_cache(&r, req("hi")).await.0, "first");
    r.reload_str(&text).unwrap();
    assert_eq!(content_and_cache(&r, req("hi")).await, ("first".into(), Some(CacheUse::Hit)));
    r.reload_str(&policy(TWO_ANSWERS, "{ttl: 1m}", "cache: {max_bytes: 1MiB}")).unwrap();
    assert!(r.metrics_text().contains(&format!("polyroute_cache_max_bytes {}", 1 << 20)));
    // A miss: the store was emptied (the new policy's mock provider starts its script again).
    assert_eq!(content_and_cache(&r, req("hi")).await, ("first".into(), Some(CacheUse::Stored)));
}

#[test]
fn cache_settings_are_validated_with_paths() {
    let bad = [
        ("{ttl: 0s}", "", "routes[0].cache.ttl"),
        ("{ttl: 400d}", "", "routes[0].cache.ttl"),
        ("{mode: sometimes}", "", "routes[0].cache.mode"),
        ("{ttl: 1m, sampeld: true}", "", "routes[0].cache"),
        ("{ttl: 1m}", "cache: {max_bytes: 0}", "cache.max_bytes"),
        ("{ttl: 1m}", "cache: {max_bytes: 12 parsecs}", "cache.max_bytes"),
        ("{ttl: 1m}", "cache: {max_bytes: 1MiB, ttl: 1m}", "cache"),
    ];
    for (route, top, path) in bad {
        let e = Policy::from_str(&policy("{}", route, top)).expect_err(route);
        assert!(e.message.contains(path), "{route} / {top}: {}", e.message);
    }
    let p = Policy::from_str(&policy("{}", "{mode: fallback_only, ttl: 90s, sampled: true}", "cache: {max_bytes: 8MiB}")).unwrap();
    assert_eq!(p.spec.cache.max_bytes.0, 8 << 20);
    let c = p.spec.routes[0].cache.unwrap();
    assert_eq!((c.mode, c.ttl.0, c.sampled), (polyroute::policy::CacheMode::FallbackOnly, Duration::from_secs(90), true));
    let p = Policy::from_str(&policy("{}", "{}", "")).unwrap();
    assert_eq!(p.spec.cache.max_bytes.0, 64 << 20);
    let c = p.spec.routes[0].cache.unwrap();
    assert_eq!((c.mode, c.ttl.0, c.sampled), (polyroute::policy::CacheMode::ReadWrite, Duration::from_secs(600), false));
}
