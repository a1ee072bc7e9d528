//! Router behaviour with the in-process mock provider and tokio's paused clock: retries,
//! fallbacks, breakers, timeouts, hedging, streaming commit and traces, asserted exactly and
//! without real sleeping. The same behaviours over real HTTP are in `router_http.rs`.

use std::time::Duration;

use futures::StreamExt;
use polyroute::resilience::breaker::BreakerState;
use polyroute::{ChatRequest, ErrorKind, Message, Policy, Router, StreamEvent};
use tokio::time::Instant;

fn router(yaml: &str) -> Router {
    Router::from_policy_str(yaml).unwrap_or_else(|e| panic!("policy: {e}"))
}

fn req(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)])
}

/// Two mock providers, `a` (primary) and `b` (fallback), with the given scripts.
fn two(script_a: &str, script_b: &str, route_extra: &str) -> String {
    format!(
        r#"
providers:
  pa: {{kind: mock, script: {script_a}}}
  pb: {{kind: mock, script: {script_b}}}
deployments:
  a: {{provider: pa, model: model-a, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  b: {{provider: pb, model: model-b, pricing: {{input_per_mtok: 0.5, output_per_mtok: 1.0}}}}
routes:
  - name: main
    deployments: [a, b]
{route_extra}
"#
    )
}

const OK: &str = "{}";

fn outcomes(t: &polyroute::RouteTrace) -> Vec<(String, String)> {
    t.attempts.iter().map(|a| (a.deployment.clone(), a.outcome.to_string())).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn persistent_500_falls_over_after_one_retry() {
    let r = router(&two(r#"{then: {status: 500}}"#, OK, ""));
    let resp = r.chat(req("hi")).await.unwrap();
    assert_eq!(resp.content(), "echo: hi");
    let t = resp.trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("a", "server_error"), ("a", "server_error"), ("b", "ok")]));
    assert_eq!(t.served_by.as_deref(), Some("b"));
    assert!(t.explanation.contains("Served by `b`") && t.explanation.contains("`a` failed with server_error (2 attempts)"), "{}", t.explanation);
    // failed attempts are not billed; the served one is, at b's prices
    assert_eq!(t.attempts[0].cost_usd, None);
    assert!(t.attempts[2].cost_usd.unwrap() > 0.0);
    assert_eq!(resp.cost_usd, t.total_cost_usd);
    assert_eq!(resp.model, "model-b");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_on_the_same_deployment() {
    let r = router(&two(r#"{steps: [{status: 429, error_code: rate_limit_exceeded, retry_after: "2"}]}"#, OK, ""));
    let t0 = Instant::now();
    let resp = r.chat(req("hi")).await.unwrap();
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100), "{waited:?}");
    let t = resp.trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("a", "rate_limited"), ("a", "ok")]));
    assert!((t.attempts[1].backoff_ms - 2000.0).abs() < 1.0);
}

#[tokio::test(start_paused = true)]
async fn retry_hint_over_the_cap_falls_over_without_waiting() {
    let r = router(&two(r#"{steps: [{status: 429, retry_after: "60"}]}"#, OK, ""));
    let t0 = Instant::now();
    let resp = r.chat(req("hi")).await.unwrap();
    assert!(t0.elapsed() < Duration::from_millis(50));
    let t = resp.trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("a", "rate_limited"), ("b", "ok")]));
    assert!(t.notes.iter().any(|n| n.contains("over the 10.0 s cap")), "{:?}", t.notes);
}

#[tokio::test(start_paused = true)]
async fn ban_opens_breaker_and_later_requests_skip_without_a_round_trip() {
    let r = router(&two(r#"{then: {status: 403, error_code: unsupported_country_region_territory}}"#, OK, ""));
    let first = r.chat(req("one")).await.unwrap();
    assert_eq!(outcomes(first.trace.as_ref().unwrap()), pairs(&[("a", "permission_denied"), ("b", "ok")]));
    let st = r.deployments().into_iter().find(|d| d.deployment == "a").unwrap();
    assert_eq!(st.breaker.state, BreakerState::Open);
    assert!(st.breaker.retry_in_ms.unwrap() > 3_500_000);
    for _ in 0..5 {
        let resp = r.chat(req("again")).await.unwrap();
        let t = resp.trace.unwrap();
        assert_eq!(outcomes(&t), pairs(&[("b", "ok")]), "banned deployment must not be tried");
        assert!(t.candidates.iter().any(|c| c.deployment == "a" && c.skipped.as_deref().is_some_and(|s| s.starts_with("breaker open, retry in"))));
        assert!(t.explanation.contains("`a` skipped (breaker open, retry in"), "{}", t.explanation);
    }
    // Operators can reset it.
    r.reset_breaker("a").unwrap();
    assert_eq!(r.deployments()[0].breaker.state, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn quota_exhausted_is_not_retried() {
    let r = router(&two(r#"{then: {status: 429, error_code: insufficient_quota}}"#, OK, ""));
    let t = r.chat(req("x")).await.unwrap().trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("a", "quota_exhausted"), ("b", "ok")]));
}

#[tokio::test(start_paused = true)]
async fn invalid_request_stops_without_fallback() {
    let r = router(&two(r#"{then: {status: 400, error_code: invalid_value}}"#, OK, ""));
    let e = r.chat(req("x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    let t = e.trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("a", "invalid_request")]));
    assert!(t.explanation.starts_with("Not served on route `main`"), "{}", t.explanation);
}

#[tokio::test(start_paused = true)]
async fn content_filter_is_not_retried_and_crosses_only_when_opted_in() {
    let y = two(r#"{then: {status: 400, error_code: content_filter}}"#, OK, "");
    let e = router(&y).chat(req("x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ContentFilter);
    assert_eq!(outcomes(e.trace.as_ref().unwrap()), pairs(&[("a", "content_filter")]));
    let y = two(r#"{then: {status: 400, error_code: content_filter}}"#, OK, "    content_filter_fallover: true");
    let t = router(&y).chat(req("x")).await.unwrap().trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("a", "content_filter"), ("b", "ok")]));
}

#[tokio::test(start_paused = true)]
async fn context_length_goes_only_to_larger_windows() {
    let y = r#"
providers:
  p1: {kind: mock, script: {then: {status: 400, error_code: context_length_exceeded}}}
  p2: {kind: mock}
  p3: {kind: mock}
deployments:
  small: {provider: p1, model: s, context_window: 8000}
  same: {provider: p2, model: s2, context_window: 8000}
  big: {provider: p3, model: b, context_window: 200000}
routes:
  - name: main
    deployments: [small, same, big]
"#;
    let t = router(y).chat(req("long")).await.unwrap().trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("small", "context_length_exceeded"), ("big", "ok")]));
    assert!(t.notes.iter().any(|n| n.contains("`same` skipped")), "{:?}", t.notes);
}

#[tokio::test(start_paused = true)]
async fn never_answering_provider_is_abandoned_at_the_timeout() {
    let y = two(r#"{then: {fault: hang}}"#, OK, "    timeouts: {first_token: 3s}\n    retry: {attempts_per_deployment: 1}");
    let t0 = Instant::now();
    let resp = router(&y).chat(req("x")).await.unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_millis(3100), "{took:?}");
    assert_eq!(outcomes(resp.trace.as_ref().unwrap()), pairs(&[("a", "timeout"), ("b", "ok")]));
}

#[tokio::test(start_paused = true)]
async fn total_deadline_bounds_everything() {
    let y = two(
        r#"{then: {fault: hang}}"#,
        r#"{then: {fault: hang}}"#,
        "    timeouts: {first_token: 3s, total: 4s}\n    retry: {max_retry_after: 1s, base_delay: 100ms}",
    );
    let t0 = Instant::now();
    let e = router(&y).chat(req("x")).await.unwrap_err();
    assert!(t0.elapsed() <= Duration::from_millis(4010), "{:?}", t0.elapsed());
    assert_eq!(e.kind, ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn outage_then_recovery_returns_traffic_within_open_for_whatever_the_length() {
    // a: 503 for 60 s then healthy; default breaker settings (open_for 5 s). A probe that
    // fails fast reopens for open_for again, never doubled, so the recovered primary gets its
    // traffic back within 5 s of recovery although the outage lasted 60 s.
    let r = router(&two(r#"{steps: [{status: 503, for_ms: 60000}]}"#, OK, "    retry: {attempts_per_deployment: 1}"));
    let mut served_by_a_during = 0;
    let mut attempts_on_a = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let t = r.chat(req("x")).await.unwrap().trace.unwrap();
        attempts_on_a += t.attempts.iter().filter(|a| a.deployment == "a").count();
        if t.served_by.as_deref() == Some("a") {
            served_by_a_during += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(served_by_a_during, 0);
    // ~240 requests in the outage; `a` saw the tripping failures and one probe per ~5 s.
    assert!((5 + 10..=5 + 14).contains(&attempts_on_a), "a saw {attempts_on_a} attempts");
    let back = loop {
        let t = r.chat(req("x")).await.unwrap().trace.unwrap();
        if t.served_by.as_deref() == Some("a") {
            break t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(back <= Duration::from_secs(65), "traffic returned {:?} after the start, 60 s outage", back);
    assert_eq!(r.deployments()[0].breaker.state, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_that_times_out_is_probed_sparingly() {
    // a never answers (each probe costs a whole first-token timeout): open time doubles per
    // failed probe, so over 60 s it is probed a handful of times, not every 5 s.
    let r = router(&two(r#"{then: {fault: hang}}"#, OK, "    retry: {attempts_per_deployment: 1}\n    timeouts: {first_token: 1s}"));
    let mut attempts_on_a = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        let t = r.chat(req("x")).await.unwrap().trace.unwrap();
        assert_eq!(t.served_by.as_deref(), Some("b"));
        attempts_on_a += t.attempts.iter().filter(|a| a.deployment == "a").count();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // 5 to trip, then probes after ~5, 10, 20 s (doubling): 3 or 4 more.
    assert!((5 + 2..=5 + 4).contains(&attempts_on_a), "a saw {attempts_on_a} attempts");
    let reason = r.deployments()[0].breaker.clone();
    assert_eq!(reason.state, BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn stream_cut_before_content_fails_over_transparently() {
    let r = router(&two(r#"{then: {fault: {cut_after: {chunks: 0}}}}"#, r#"{then: {text: "from b"}}"#, ""));
    let mut s = r.stream(req("x")).await.unwrap();
    let mut text = String::new();
    while let Some(ev) = s.next().await {
        match ev.unwrap() {
            StreamEvent::ContentDelta { text: t } => text.push_str(&t),
            StreamEvent::Reset { .. } => panic!("no reset before commit"),
            _ => {}
        }
    }
    assert_eq!(text, "from b");
    let t = s.trace().unwrap();
    assert_eq!(t.served_by.as_deref(), Some("b"));
    assert_eq!(t.attempts.last().unwrap().outcome, "ok");
    assert!(t.attempts.iter().any(|a| a.deployment == "a" && a.outcome == "stream_interrupted"));
}

#[tokio::test(start_paused = true)]
async fn stream_cut_after_content_is_a_typed_error_with_partial_text() {
    let r = router(&two(r#"{then: {text: "one two three four", fault: {cut_after: {chunks: 2}}}}"#, OK, ""));
    let mut s = r.stream(req("x")).await.unwrap();
    let mut text = String::new();
    let mut err = None;
    while let Some(ev) = s.next().await {
        match ev {
            Ok(StreamEvent::ContentDelta { text: t }) => text.push_str(&t),
            Ok(StreamEvent::Finish { .. }) => panic!("a cut stream must not finish"),
            Ok(_) => {}
            Err(e) => err = Some(e),
        }
    }
    let e = err.expect("the stream must end with an error, never a silent success");
    assert_eq!(e.kind, ErrorKind::StreamInterrupted);
    let partial = e.partial.as_ref().unwrap();
    assert_eq!(partial.text, text);
    assert!(!text.is_empty() && text.len() < "one two three four".len(), "{text:?}");
    assert!(e.trace.as_ref().unwrap().served_by.is_none());
}

#[tokio::test(start_paused = true)]
async fn restart_mode_resets_and_streams_again_from_the_next_deployment() {
    let y = two(
        r#"{then: {text: "alpha beta gamma", fault: {cut_after: {chunks: 1}}}}"#,
        r#"{then: {text: "full answer"}}"#,
        "    stream_recovery: restart",
    );
    let mut s = router(&y).stream(req("x")).await.unwrap();
    let mut text = String::new();
    let mut resets = 0;
    while let Some(ev) = s.next().await {
        match ev.unwrap() {
            StreamEvent::ContentDelta { text: t } => text.push_str(&t),
            StreamEvent::Reset { .. } => {
                resets += 1;
                text.clear();
            }
            _ => {}
        }
    }
    assert_eq!(resets, 1);
    assert_eq!(text, "full answer");
    assert_eq!(s.trace().unwrap().served_by.as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn stream_without_done_but_with_finish_completes_promptly() {
    let r = router(&two(r#"{then: {fault: no_done}}"#, OK, ""));
    let t0 = Instant::now();
    let mut s = r.stream(req("x")).await.unwrap();
    let mut finished = false;
    while let Some(ev) = s.next().await {
        if let StreamEvent::Finish { .. } = ev.unwrap() {
            finished = true;
        }
    }
    assert!(finished);
    assert!(t0.elapsed() <= Duration::from_secs(2), "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn stream_stall_after_content_hits_the_idle_timeout() {
    let y = two(r#"{then: {text: "a b c", fault: {stall_after: {chunks: 1}}}}"#, OK, "    timeouts: {idle: 2s}");
    let t0 = Instant::now();
    let mut s = router(&y).stream(req("x")).await.unwrap();
    let mut last = None;
    while let Some(ev) = s.next().await {
        last = Some(ev);
    }
    let e = last.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::StreamInterrupted);
    assert!(e.message.contains("silent"), "{}", e.message);
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_millis(2100), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn inband_error_before_content_fails_over() {
    let r = router(&two(r#"{then: {fault: {inband_error: {after_chunks: 0, code: server_overloaded, type: server_error}}}}"#, OK, ""));
    let mut s = r.stream(req("x")).await.unwrap();
    while let Some(ev) = s.next().await {
        ev.unwrap();
    }
    let t = s.trace().unwrap();
    assert_eq!(t.served_by.as_deref(), Some("b"));
    assert_eq!(t.attempts[0].outcome, "overloaded");
}

#[tokio::test(start_paused = true)]
async fn static_degraded_tier() {
    let y = two(
        r#"{then: {status: 500}}"#,
        r#"{then: {status: 503}}"#,
        "    retry: {attempts_per_deployment: 1}\n    fallbacks:\n      - {name: sorry, static_response: \"We are busy, try again.\"}",
    );
    let resp = router(&y).chat(req("x")).await.unwrap();
    assert_eq!(resp.content(), "We are busy, try again.");
    let t = resp.trace.unwrap();
    assert!(t.degraded);
    assert!(t.explanation.starts_with("Served the policy's static degraded response"), "{}", t.explanation);
}

#[tokio::test(start_paused = true)]
async fn fallback_tier_triggers_by_kind() {
    let y = r#"
providers:
  p: {kind: mock, script: {then: {status: 429, error_code: insufficient_quota}}}
  q: {kind: mock}
deployments:
  a: {provider: p, model: a}
  cheap: {provider: q, model: c}
routes:
  - name: main
    deployments: [a]
    fallbacks:
      - {name: cheaper, deployments: [cheap], on: [rate_limited]}
"#;
    // quota_exhausted is not a trigger of the `cheaper` tier → fail with the real error
    let e = router(y).chat(req("x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::QuotaExhausted);
    assert!(e.trace.unwrap().notes.iter().any(|n| n.contains("tier `cheaper` not entered")));
    let y2 = y.replace("on: [rate_limited]", "on: [rate_limited, quota_exhausted]");
    let t = router(&y2).chat(req("x")).await.unwrap().trace.unwrap();
    assert_eq!(t.served_by.as_deref(), Some("cheap"));
    assert_eq!(t.attempts.last().unwrap().tier, 1);
}

#[tokio::test(start_paused = true)]
async fn hedged_backup_wins_when_primary_is_slow() {
    let y = two(r#"{then: {latency_ms: 5000}}"#, r#"{then: {text: "fast"}}"#, "    strategy: hedged\n    hedge: {delay: 200ms}");
    let t0 = Instant::now();
    let resp = router(&y).chat(req("x")).await.unwrap();
    let took = t0.elapsed();
    assert_eq!(resp.content(), "fast");
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(300), "{took:?}");
    let t = resp.trace.unwrap();
    assert_eq!(t.served_by.as_deref(), Some("b"));
    assert!(t.attempts.iter().any(|a| a.deployment == "a" && a.outcome == "cancelled"), "{:?}", t.attempts);
}

#[tokio::test(start_paused = true)]
async fn weighted_spreads_by_weight() {
    let y = r#"
providers:
  p: {kind: mock}
  q: {kind: mock}
deployments:
  heavy: {provider: p, model: h, weight: 3}
  light: {provider: q, model: l, weight: 1}
routes:
  - {name: main, strategy: weighted, deployments: [heavy, light]}
"#;
    let r = router(y);
    let mut heavy = 0;
    for _ in 0..400 {
        if r.chat(req("x")).await.unwrap().trace.unwrap().served_by.as_deref() == Some("heavy") {
            heavy += 1;
        }
    }
    assert!((250..350).contains(&heavy), "heavy served {heavy}/400, expected ~300");
}

#[tokio::test(start_paused = true)]
async fn least_latency_prefers_the_faster_deployment() {
    let y = r#"
providers:
  p: {kind: mock, script: {then: {latency_ms: 300}}}
  q: {kind: mock, script: {then: {latency_ms: 20}}}
  s: {kind: mock, script: {then: {latency_ms: 600}}}
deployments:
  slow: {provider: p, model: s}
  fast: {provider: q, model: f}
  slowest: {provider: s, model: z}
routes:
  - {name: main, strategy: least_latency, deployments: [slow, fast, slowest]}
"#;
    let r = router(y);
    for _ in 0..6 {
        r.chat(req("warm")).await.unwrap();
    }
    let mut fast = 0;
    for _ in 0..300 {
        if r.chat(req("x")).await.unwrap().trace.unwrap().served_by.as_deref() == Some("fast") {
            fast += 1;
        }
    }
    // P2C picks the best of two random candidates: `fast` wins whenever it is drawn (2/3,
    // so ~200 of 300, sd ~8); `slowest` is chosen only when `fast` is not drawn and `slow`
    // is not either, which cannot happen with three candidates: it is never served.
    assert!(fast >= 150, "fast served {fast}/300");
}

#[tokio::test(start_paused = true)]
async fn cheapest_picks_lowest_expected_cost() {
    let t = router(&two(OK, OK, "    strategy: cheapest")).chat(req("x")).await.unwrap().trace.unwrap();
    assert_eq!(t.served_by.as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn invalid_structured_output_fails_over() {
    let r = router(&two(r#"{then: {text: "not json"}}"#, r#"{then: {text: "{\"n\": 1}"}}"#, ""));
    let mut rq = req("x");
    rq.response_format = Some(polyroute::ResponseFormat::JsonSchema {
        name: "n".into(),
        schema: serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
        strict: Some(true),
        description: None,
    });
    let resp = r.chat(rq).await.unwrap();
    assert_eq!(resp.content(), "{\"n\": 1}");
    let t = resp.trace.unwrap();
    assert_eq!(outcomes(&t), pairs(&[("a", "invalid_output"), ("a", "invalid_output"), ("b", "ok")]));
}

#[tokio::test(start_paused = true)]
async fn data_class_rules_fail_closed() {
    let y = r#"
providers:
  us: {kind: mock}
  eu: {kind: mock}
deployments:
  us-dep: {provider: us, model: m, region: us-east}
  eu-dep: {provider: eu, model: m, region: eu-west}
  nowhere: {provider: eu, model: m}
routes:
  - name: main
    deployments: [us-dep, nowhere, eu-dep]
    data_rules:
      pii: {regions: [eu-west]}
"#;
    let r = router(y);
    let mut rq = req("x");
    rq.routing.data_class = Some("pii".into());
    let t = r.chat(rq.clone()).await.unwrap().trace.unwrap();
    assert_eq!(t.served_by.as_deref(), Some("eu-dep"));
    let skipped: Vec<_> = t.candidates.iter().filter(|c| c.skipped.is_some()).map(|c| c.deployment.as_str()).collect();
    assert_eq!(skipped, ["us-dep", "nowhere"]);
    // plan() says the same without sending
    let plan = r.plan(&rq).unwrap();
    assert_eq!(plan.order, ["eu-dep"]);
    assert!(plan.explanation.contains("Would go to `eu-dep`"), "{}", plan.explanation);
    // untagged data still uses the first choice
    assert_eq!(r.chat(req("x")).await.unwrap().trace.unwrap().served_by.as_deref(), Some("us-dep"));
}

#[tokio::test(start_paused = true)]
async fn route_matching_by_metadata() {
    let y = r#"
providers:
  p: {kind: mock}
deployments:
  a: {provider: p, model: a}
  b: {provider: p, model: b}
routes:
  - {name: support, match: {feature: [support], tier: [pro]}, deployments: [a]}
  - {name: rest, deployments: [b]}
default_route: rest
"#;
    let r = router(y);
    let mut rq = req("x");
    rq.routing.feature = Some("support".into());
    rq.routing.tier = Some("pro".into());
    let t = r.chat(rq.clone()).await.unwrap().trace.unwrap();
    assert_eq!((t.route.as_str(), t.matched.as_str()), ("support", "feature=support, tier=pro"));
    rq.routing.tier = Some("free".into());
    assert_eq!(r.chat(rq.clone()).await.unwrap().trace.unwrap().route, "rest");
    rq.routing.route = Some("support".into());
    assert_eq!(r.chat(rq.clone()).await.unwrap().trace.unwrap().matched, "route requested by name");
    rq.routing.route = Some("nope".into());
    assert_eq!(r.chat(rq).await.unwrap_err().kind, ErrorKind::NoRoute);
}

#[tokio::test(start_paused = true)]
async fn reload_is_atomic_rejects_invalid_and_keeps_breakers() {
    let y = two(r#"{then: {status: 403}}"#, OK, "");
    let r = router(&y);
    r.chat(req("x")).await.unwrap();
    assert_eq!(r.deployments()[0].breaker.state, BreakerState::Open);
    // invalid policy: rejected, old one serves
    let e = r.reload_str("providers: {}\nroutes: [{name: x, deployments: [ghost]}]").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(r.chat(req("x")).await.is_ok());
    // valid reload with `a` unchanged: the ban survives
    r.reload_str(&y.replace("deployments: [a, b]", "deployments: [b, a]")).unwrap();
    assert_eq!(r.deployments()[0].breaker.state, BreakerState::Open);
    // a changed deployment starts fresh
    r.reload_str(&y.replace("model: model-a", "model: model-a2")).unwrap();
    assert_eq!(r.deployments()[0].breaker.state, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_by_max_attempts() {
    let y = r#"
providers:
  p: {kind: mock, script: {then: {status: 500}}}
deployments:
  a: {provider: p, model: a}
  b: {provider: p, model: b}
  c: {provider: p, model: c}
routes:
  - {name: main, deployments: [a, b, c], retry: {max_attempts: 4, attempts_per_deployment: 3}}
breaker: {consecutive_failures: 100}
"#;
    let e = router(y).chat(req("x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ServerError);
    assert_eq!(e.trace.unwrap().attempts.len(), 4);
}

#[test]
fn policy_validation_reports_every_problem_with_paths() {
    let bad = r#"
providers:
  p: {kind: mock}
  q: {kind: openai_compatible}
deployments:
  a: {provider: p, model: a, weight: -1}
  b: {provider: nope, model: b}
routes:
  - name: r1
    deployments: [a, ghost]
    timeouts: {total: 1s}
    retry: {attempts_per_deployment: 4, base_delay: 500ms, max_retry_after: 10s}
    fallbacks:
      - {deployments: [a]}
      - {static_response: "sorry"}
      - {deployments: [b]}
  - {name: r1, deployments: [a]}
default_route: r2
"#;
    let issues = Policy::check(bad);
    let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let expect = [
        "providers.q.base_url: required for kind `openai_compatible`",
        "deployments.a.weight: must be a positive number",
        "deployments.b.provider: unknown provider `nope`",
        "routes[0].deployments[1]: unknown deployment `ghost`",
        "routes[0].fallbacks[0].deployments[0]: deployment `a` is already listed",
        "routes[0].fallbacks[0]: unreachable",
        "routes[0].fallbacks[2]: unreachable: fallbacks[1] serves a static response",
        "routes[0].retry: retry delays (3500 ms minimum for 4 attempts) cannot fit",
        "routes[0].retry.max_retry_after: a wait of 10000 ms can never fit",
        "routes[1].name: duplicate route name `r1`",
        "default_route: unknown route `r2` (did you mean `r1`?)",
    ];
    for e in expect {
        assert!(text.iter().any(|t| t.starts_with(e)), "missing {e:?} in\n{}", text.join("\n"));
    }
    let err = Policy::from_str(bad).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.starts_with(&format!("invalid policy ({} problems)", issues.len())));
    // type errors carry the path of the field
    let issues = Policy::check("providers: {p: {kind: telepathy}}\nroutes: [{name: x, deployments: [a], strategy: fastest}]");
    let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    assert!(text.iter().any(|t| t.starts_with("providers.p.kind: unknown variant `telepathy`")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("routes[0].strategy: unknown variant `fastest`")), "{text:?}");
    // garbage never panics
    for g in ["", "[]", "42", "{", "providers: 7", "routes: {a: 1}", "\u{0}\u{1}"] {
        let _ = Policy::check(g);
        assert!(Policy::from_str(g).is_err(), "{g:?}");
    }
}

#[test]
fn json_policy_and_env_keys() {
    crate::common::set_env("POLYROUTE_TEST_KEY_FOR_POLICY", crate::common::KEY);
    let j = r#"{"providers": {"o": {"kind": "openai", "api_key_env": "POLYROUTE_TEST_KEY_FOR_POLICY"}},
               "deployments": {"d": {"provider": "o", "model": "gpt-4o-mini"}},
               "routes": [{"name": "r", "deployments": ["d"]}]}"#;
    let p = Policy::from_str(j).unwrap();
    assert_eq!(p.spec.routes[0].name, "r");
    let r = Router::new(p).unwrap();
    assert!(!format!("{r:?}").contains("sk-test"));
    let missing = j.replace("POLYROUTE_TEST_KEY_FOR_POLICY", "POLYROUTE_SURELY_UNSET_VAR");
    let e = Policy::from_str(&missing).unwrap_err();
    assert!(e.message.contains("environment variable `POLYROUTE_SURELY_UNSET_VAR` is not set"), "{}", e.message);
}

#[test]
fn budget_policies_validate_with_clear_errors() {
    let good = r#"
providers: {p: {kind: mock}}
deployments: {d: {provider: p, model: m, rate_limit: {requests_per_minute: 60, tokens_per_minute: 10000}}}
routes: [{name: main, deployments: [d], on_budget_exceeded: fallback}]
budgets:
  - {name: acme-month, scope: {tenant: acme}, limit_usd: 100, period: month}
  - {name: per-tenant, scope: {tenant: "*"}, limit_tokens: 1000000, period: day, rolling: true}
  - {name: route, scope: {route: main, deployment: d}, limit_usd: 5, period: hour}
"#;
    let p = Policy::from_str(good).unwrap();
    assert_eq!(p.spec.budgets.len(), 3);
    // round trip: what we serialise parses back to the same budgets
    let back = Policy::from_value(serde_json::to_value(&p.spec).unwrap()).unwrap();
    assert_eq!(back.spec.budgets, p.spec.budgets);
    let bad = r#"
providers: {p: {kind: mock}}
deployments: {d: {provider: p, model: m, rate_limit: {requests_per_minute: 0}}}
routes: [{name: main, deployments: [d]}]
budgets:
  - {name: neg, limit_usd: -5, period: month}
  - {name: both, limit_usd: 1, limit_tokens: 5, period: day}
  - {name: none, period: day}
  - {name: ghost-route, scope: {route: nope}, limit_usd: 1, period: day}
  - {name: ghost-dep, scope: {deployment: nope}, limit_usd: 1, period: day}
  - {name: neg, limit_usd: 1, period: day}
  - {name: badscope, scope: {team: x}, limit_usd: 1, period: day}
  - {name: badperiod, limit_usd: 1, period: fortnight}
"#;
    let text: Vec<String> = Policy::check(bad).iter().map(|i| i.to_string()).collect();
    for want in [
        "budgets[0].limit_usd: must be a non-negative amount, got -5",
        "budgets[1]: set one of `limit_usd` and `limit_tokens`, not both",
        "budgets[2]: set `limit_usd` or `limit_tokens`",
        "budgets[3].scope.route: unknown route `nope`",
        "budgets[4].scope.deployment: unknown deployment `nope`",
        "budgets[5].name: duplicate budget name `neg`",
        "budgets[6].scope.team: unknown field `team`, expected one of `tenant`",
        "budgets[7].period: unknown variant `fortnight`",
        "deployments.d.rate_limit: limits must be positive",
    ] {
        assert!(text.iter().any(|t| t.starts_with(want)), "missing {want:?} in\n{}", text.join("\n"));
    }
}
