//! Unit tests of the host bridge: parsing, the route shortcut, JSON out, error shape, breaker
//! names, the cancel token and guard, and the stream handle over the in-process mock provider.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::error::ErrorKind;
use crate::router::Router;

const HI: &str = r#"{"messages": [{"role": "user", "content": "hi"}]}"#;

fn router(script: Value) -> Router {
    let policy = json!({
        "providers": {"p": {"kind": "mock", "script": script}},
        "deployments": {"d": {"provider": "p", "model": "m"}},
        "routes": [{"name": "r", "deployments": ["d"]}, {"name": "other", "deployments": ["d"]}],
        "default_route": "r",
    });
    Router::from_policy_str(&policy.to_string()).unwrap()
}

#[test]
fn request_text_and_value_parse_to_the_same_request() {
    let a = request_from_json(HI).unwrap();
    let b = request_from_value(serde_json::from_str(HI).unwrap()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.messages.len(), 1);
}

#[test]
fn bad_request_text_and_bodies_are_invalid_request() {
    let e = request_from_json("{not json").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("not valid JSON"), "{}", e.message);
    // Validation is `ChatRequest::from_openai_json`'s, field named.
    let e = request_from_json(r#"{"messages": [{"role": "user", "content": "x"}], "temperature": 7}"#).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("temperature"), "{}", e.message);
    assert_eq!(request_from_json("[]").unwrap_err().kind, ErrorKind::InvalidRequest);
}

#[test]
fn unknown_fields_ride_along_in_extra() {
    let r = request_from_json(r#"{"messages": [{"role": "user", "content": "x"}], "custom_field": true, "n": 1}"#).unwrap();
    assert_eq!(r.extra.get("custom_field"), Some(&Value::Bool(true)));
    assert_eq!(r.extra.get("n"), Some(&json!(1)));
}

#[test]
fn the_route_shortcut_becomes_polyroute_route_and_wins() {
    let r = request_from_value(json!({"messages": [{"role": "user", "content": "x"}], "route": "fast"})).unwrap();
    assert_eq!(r.routing.route.as_deref(), Some("fast"));
    assert!(!r.extra.contains_key("route"), "never forwarded to a provider");
    let r = request_from_value(json!({
        "messages": [{"role": "user", "content": "x"}],
        "route": "fast",
        "polyroute": {"route": "slow", "tenant": "acme"},
    }))
    .unwrap();
    assert_eq!(r.routing.route.as_deref(), Some("fast"));
    assert_eq!(r.routing.tenant.as_deref(), Some("acme"));
    let r = request_from_value(json!({"messages": [{"role": "user", "content": "x"}], "route": null})).unwrap();
    assert_eq!(r.routing.route, None);
    let r = request_from_value(json!({"messages": [{"role": "user", "content": "x"}], "route": "fast", "polyroute": null})).unwrap();
    assert_eq!(r.routing.route.as_deref(), Some("fast"));
}

#[test]
fn a_bad_route_shortcut_is_invalid_request() {
    let e = request_from_value(json!({"messages": [{"role": "user", "content": "x"}], "route": 3})).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("route") && e.message.contains("a number"), "{}", e.message);
    let e = request_from_value(json!({"messages": [{"role": "user", "content": "x"}], "route": "r", "polyroute": "m"})).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    assert!(e.message.contains("polyroute"), "{}", e.message);
}

#[test]
fn every_field_the_core_models_is_a_known_request_field() {
    // A request with every modelled field set: each of its keys must be in REQUEST_FIELDS.
    let full = request_from_value(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "parallel_tool_calls": true, "response_format": {"type": "json_object"},
        "temperature": 0.5, "top_p": 0.5, "max_tokens": 5, "max_completion_tokens": 5, "stop": "x",
        "seed": 1, "stream": true, "polyroute": {"tenant": "t"},
    }))
    .unwrap();
    assert!(full.extra.is_empty());
    for key in to_value(&full).unwrap().as_object().unwrap().keys() {
        assert!(REQUEST_FIELDS.contains(&key.as_str()), "{key} is modelled but not in REQUEST_FIELDS");
    }
    let mut names = REQUEST_FIELDS.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), REQUEST_FIELDS.len(), "no duplicates");
}

#[test]
fn results_serialise_to_their_serde_shape() {
    let status = json!({"a": [1, 2]});
    assert_eq!(to_json(&status).unwrap(), r#"{"a":[1,2]}"#);
    assert_eq!(to_value(&status).unwrap(), status);
}

#[test]
fn errors_serialise_to_the_core_shape() {
    let e =
        Error::new(ErrorKind::RateLimited, "slow down").with_status(429).with_provider("openai").with_retry_after(Some(Duration::from_millis(1500)));
    let v = error_to_json(&e);
    assert_eq!(v["kind"], "rate_limited");
    assert_eq!(v["message"], "slow down");
    assert_eq!(v["status"], 429);
    assert_eq!(v["provider"], "openai");
    assert_eq!(v["retry_after"], 1.5);
    assert_eq!(v, serde_json::to_value(&e).unwrap(), "exactly the serde form");
    let back: Error = serde_json::from_value(v).unwrap();
    assert_eq!(back, e);
}

#[test]
fn breaker_states_parse_by_name() {
    for (name, state) in [
        ("closed", BreakerState::Closed),
        ("open", BreakerState::Open),
        ("half_open", BreakerState::HalfOpen),
        ("forced_open", BreakerState::ForcedOpen),
        ("disabled", BreakerState::Disabled),
    ] {
        assert_eq!(parse_breaker_state(name).unwrap(), state);
    }
    for bad in ["ajar", "", "Closed", "half-open"] {
        let e = parse_breaker_state(bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains("unknown breaker state"), "{}", e.message);
        assert!(e.message.contains("closed, open, half_open, forced_open, disabled"), "{}", e.message);
    }
}

#[tokio::test]
async fn a_tripped_token_ends_a_call_with_cancelled() {
    let token = CancelToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        fire.cancel();
    });
    let started = Instant::now();
    let r = token
        .run(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(token.is_cancelled());
}

#[tokio::test]
async fn a_token_tripped_before_the_call_cancels_it_at_once_and_an_untripped_one_does_nothing() {
    let token = CancelToken::new();
    assert_eq!(token.run(async { Ok(1) }).await.unwrap(), 1);
    token.cancel();
    token.cancel();
    assert_eq!(token.run(async { Ok(1) }).await.unwrap_err(), cancelled_error());
}

#[test]
fn the_guard_trips_its_token_on_drop_unless_disarmed() {
    let token = CancelToken::new();
    let guard = token.drop_guard();
    assert!(!guard.token().is_cancelled());
    let same = guard.disarm();
    assert!(!token.is_cancelled() && !same.is_cancelled());
    drop(token.drop_guard());
    assert!(token.is_cancelled(), "dropping an armed guard cancels");
}

async fn open(router: &Router, body: &str) -> StreamHandle {
    let token = CancelToken::new();
    let stream = token.run(router.stream(request_from_json(body).unwrap())).await.unwrap();
    StreamHandle::new(stream, token)
}

#[tokio::test]
async fn a_stream_read_to_the_end_yields_json_events_then_keeps_its_trace() {
    let router = router(json!({"then": {"text": "hello there"}}));
    let h = open(&router, HI).await;
    assert!(h.trace().is_none(), "no trace before the end");
    let mut text = String::new();
    let mut types = Vec::new();
    while let Some(ev) = h.next_json().await.unwrap() {
        let v: Value = serde_json::from_str(&ev).unwrap();
        types.push(v["type"].as_str().unwrap().to_string());
        if v["type"] == "content_delta" {
            text.push_str(v["text"].as_str().unwrap());
        }
    }
    assert_eq!(text, "hello there");
    assert!(types.contains(&"finish".to_string()), "{types:?}");
    assert!(h.is_closed());
    assert_eq!(h.trace().unwrap().served_by.as_deref(), Some("d"));
    assert_eq!(h.next_value().await.unwrap(), None, "reads after the end end quietly");
}

#[tokio::test]
async fn the_route_shortcut_reaches_the_router() {
    let router = router(json!({"then": {"text": "x"}}));
    let h = open(&router, r#"{"messages": [{"role": "user", "content": "hi"}], "route": "other"}"#).await;
    while h.next_event().await.unwrap().is_some() {}
    assert_eq!(h.trace().unwrap().route, "other");
}

/// Opens a stream whose second chunk takes 30 s, and reads up to its first content.
async fn stalled(router: &Router) -> StreamHandle {
    let h = open(router, HI).await;
    loop {
        let ev = h.next_value().await.unwrap().unwrap();
        if ev["type"] == "content_delta" {
            return h;
        }
    }
}

fn slow() -> Router {
    router(json!({"then": {"text": "a b c d e f", "chunk_delay_ms": 30000}}))
}

#[tokio::test]
async fn closing_fails_the_pending_read_with_cancelled_and_later_reads_end() {
    let router = slow();
    let h = stalled(&router).await;
    let pending = tokio::spawn(h.next_event());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    h.close();
    let r = pending.await.unwrap();
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(1), "must not wait for the next chunk");
    assert!(h.is_closed());
    assert_eq!(h.next_event().await.unwrap(), None);
    h.close();
}

#[tokio::test]
async fn closing_with_no_read_in_flight_drops_the_stream_at_once() {
    let router = slow();
    let h = stalled(&router).await;
    h.close();
    assert!(!h.holds_stream(), "dropped by close itself");
    assert_eq!(h.next_json().await.unwrap(), None);
}

#[tokio::test]
async fn a_token_tripped_elsewhere_fails_every_read_with_cancelled() {
    let router = slow();
    let h = stalled(&router).await;
    h.token().clone().cancel();
    assert_eq!(h.next_event().await.unwrap_err().kind, ErrorKind::Cancelled);
    assert_eq!(h.next_event().await.unwrap_err().kind, ErrorKind::Cancelled);
    assert!(h.is_closed());
}

#[tokio::test]
async fn dropping_the_handle_cancels_a_read_still_in_flight() {
    let router = slow();
    let h = stalled(&router).await;
    let pending = tokio::spawn(h.next_event());
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(h);
    let r = tokio::time::timeout(Duration::from_secs(2), pending).await.expect("ends promptly").unwrap();
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
}

#[tokio::test]
async fn a_stream_that_fails_keeps_the_trace_of_its_error() {
    let router = router(json!({"then": {"text": "one two three four", "fault": {"cut_after": {"chunks": 1}}}}));
    let h = open(&router, HI).await;
    let err = loop {
        match h.next_event().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream should fail"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind, ErrorKind::StreamInterrupted);
    let trace = h.trace().expect("trace kept on error");
    assert_eq!(trace.attempts.len(), 1);
    assert!(h.is_closed());
}

#[tokio::test]
async fn chunks_are_openai_shaped_and_the_final_response_is_what_chat_returns() {
    let router = router(json!({"then": {"text": "one two three"}}));
    let h = open(&router, HI).await;
    let first = h.next_chunk_value().await.unwrap().unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    while let Some(c) = h.next_chunk_value().await.unwrap() {
        if let Some(t) = c.pointer("/choices/0/delta/content").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(f) = c.pointer("/choices/0/finish_reason").and_then(Value::as_str) {
            finish = Some(f.to_string());
        }
        if !c["usage"].is_null() {
            usage = Some(c["usage"].clone());
        }
    }
    assert_eq!(text, "one two three");
    assert_eq!(finish.as_deref(), Some("stop"));
    assert!(usage.unwrap()["completion_tokens"].as_u64().unwrap() > 0, "a usage chunk before the end");
    let whole = router.chat(request_from_json(HI).unwrap()).await.unwrap();
    let fin = h.final_response().await.unwrap();
    assert_eq!(fin.content(), whole.content());
    assert_eq!(fin.usage, whole.usage);
    assert_eq!(fin.cost_usd, whole.cost_usd);
    assert_eq!(fin.provider.as_deref(), Some("p"));
    assert_eq!(fin.trace.as_ref().unwrap().served_by.as_deref(), Some("d"));
    assert_eq!(h.final_response().await.unwrap().content(), whole.content(), "asked again: the same answer");
}

#[tokio::test]
async fn the_final_response_reads_the_rest_and_fails_as_the_stream_did() {
    let router = router(json!({"then": {"text": "one two three"}}));
    let h = open(&router, HI).await;
    assert_eq!(h.final_response().await.unwrap().content(), "one two three", "read the whole stream itself");
    assert_eq!(h.next_event().await.unwrap(), None);

    let cut = self::router(json!({"then": {"text": "one two three four", "fault": {"cut_after": {"chunks": 1}}}}));
    let h = open(&cut, HI).await;
    assert_eq!(h.final_response().await.unwrap_err().kind, ErrorKind::StreamInterrupted);
    assert_eq!(h.final_response().await.unwrap_err().kind, ErrorKind::StreamInterrupted, "and keeps failing so");

    let router = slow();
    let h = stalled(&router).await;
    h.close();
    assert_eq!(h.final_response().await.unwrap_err().kind, ErrorKind::Cancelled);
}

/// Every read of a stream in batches of at most `max`, and the error it ended with.
async fn batches(h: &StreamHandle, max: usize) -> (Vec<Vec<Value>>, Option<crate::error::Error>) {
    let mut out = Vec::new();
    loop {
        match h.next_values(max).await {
            Ok(Some(b)) => {
                assert!(!b.is_empty() && b.len() <= max, "{} events in a read of at most {max}", b.len());
                out.push(b);
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn kinds_and_text(events: &[Value]) -> (Vec<String>, String) {
    let kinds = events.iter().map(|v| v["type"].as_str().unwrap().to_string()).collect();
    let text = events.iter().filter_map(|v| v["text"].as_str().filter(|_| v["type"] == "content_delta")).collect();
    (kinds, text)
}

#[tokio::test]
async fn a_burst_crosses_in_few_reads_and_reads_as_event_by_event() {
    let router = router(json!({"then": {"text": "one two three four five six seven eight"}}));
    let h = open(&router, HI).await;
    let mut single = Vec::new();
    while let Some(v) = h.next_value().await.unwrap() {
        single.push(v);
    }
    let h = open(&router, HI).await;
    let (reads, err) = batches(&h, 256).await;
    assert!(err.is_none());
    let batched = reads.concat();
    assert_eq!(kinds_and_text(&batched), kinds_and_text(&single));
    assert!(reads.len() < batched.len() / 2, "{} reads for {} events", reads.len(), batched.len());
    let (small, _) = batches(&open(&router, HI).await, 2).await;
    assert_eq!(kinds_and_text(&small.concat()), kinds_and_text(&single), "at most 2 per read, the same events");
    let fin = h.final_response().await.unwrap();
    assert_eq!(fin.content(), "one two three four five six seven eight", "everything handed out is folded");
}

#[tokio::test]
async fn a_read_here_then_the_rest_on_the_runtime_reads_as_event_by_event() {
    let router = router(json!({"then": {"text": "one two three four five six seven eight"}}));
    let h = open(&router, HI).await;
    let mut single = Vec::new();
    while let Some(v) = h.next_value().await.unwrap() {
        single.push(v);
    }
    let (h, c) = (open(&router, HI).await, open(&router, HI).await);
    let (mut events, mut chunks) = (Vec::new(), Vec::new());
    while let Some(b) = h.next_values_here(4).await.unwrap() {
        assert!(b.len() <= 4);
        events.extend(b);
        events.extend(h.ready_values(3).await.unwrap());
    }
    assert_eq!(kinds_and_text(&events), kinds_and_text(&single));
    while let Some(b) = c.next_chunk_values_here(4).await.unwrap() {
        chunks.extend(b);
        chunks.extend(c.ready_chunk_values(3).await.unwrap());
    }
    let text: String = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
    assert_eq!(text, "one two three four five six seven eight");
    assert!(chunks.last().unwrap()["usage"]["completion_tokens"].as_u64().unwrap() > 0, "the usage chunk last");
}

#[tokio::test]
async fn the_end_and_a_failure_are_left_for_the_read_after_the_events_before_them() {
    let router = router(json!({"then": {"text": "one two three"}}));
    let h = open(&router, HI).await;
    let mut read = Vec::new();
    loop {
        let b = h.next_values(256).await.unwrap().expect("events before the end");
        read.extend(b);
        if read.iter().any(|v| v["type"] == "finish") {
            break;
        }
    }
    assert!(!h.is_closed() && h.trace().is_none(), "the end itself is not read yet");
    assert_eq!(h.next_values(256).await.unwrap(), None);
    assert!(h.is_closed() && h.trace().is_some());

    let cut = self::router(json!({"then": {"text": "one two three four", "fault": {"cut_after": {"chunks": 1}}}}));
    let h = open(&cut, HI).await;
    let (reads, err) = batches(&h, 256).await;
    assert_eq!(kinds_and_text(&reads.concat()).1, "one", "the content before the cut is handed out");
    assert_eq!(err.expect("then the failure").kind, ErrorKind::StreamInterrupted);
    assert_eq!(h.trace().expect("trace kept").attempts.len(), 1);
    assert_eq!(h.final_response().await.unwrap_err().kind, ErrorKind::StreamInterrupted);
}

#[tokio::test]
async fn chunk_batches_read_as_chunk_by_chunk_and_a_close_ends_them() {
    let router = router(json!({"then": {"text": "one two three"}}));
    let h = open(&router, HI).await;
    let mut single = Vec::new();
    while let Some(c) = h.next_chunk_value().await.unwrap() {
        single.push(c);
    }
    let h = open(&router, HI).await;
    let mut batched = Vec::new();
    while let Some(b) = h.next_chunk_values(256).await.unwrap() {
        batched.extend(b);
    }
    let shape = |cs: &[Value]| cs.iter().map(|c| (c["choices"].clone(), c["usage"].clone())).collect::<Vec<_>>();
    assert_eq!(shape(&batched), shape(&single));

    let slow = slow();
    let h = stalled(&slow).await;
    h.close();
    assert_eq!(h.next_values(256).await.unwrap(), None);
    assert_eq!(h.next_chunk_values(256).await.unwrap(), None);
}

#[test]
fn a_panic_becomes_a_config_error_naming_it() {
    let e = catch(|| -> u32 { debug_panic("unit") }).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert_eq!(e.message, "internal error: deliberate panic for testing (unit); please report it");
    assert_eq!(catch(|| 7).unwrap(), 7);
    let owned = catch(|| -> u8 { panic!("{} went wrong", "it") }).unwrap_err();
    assert_eq!(owned.message, "internal error: it went wrong; please report it");
}

#[tokio::test]
async fn a_panicking_future_becomes_a_config_error() {
    let e = catch_future(debug_panic_async("future".into())).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("deliberate panic for testing (future)"), "{}", e.message);
    assert_eq!(catch_future(async { 7 }).await.unwrap(), 7);
}

/// The in-process OpenAI answer (`openai_http::handle`): what the drop-in transports send back.
mod openai_http_reply {
    use super::*;
    use crate::bridge::openai_http::{handle, OpenAiBody};

    async fn sse(router: &Router, body: &str) -> (u16, String) {
        let r = handle(router, body.as_bytes(), &http::HeaderMap::new()).await;
        assert!(r.headers.contains(&("x-polyroute-deployment", "d".into())), "{:?}", r.headers);
        let OpenAiBody::Sse(s) = r.body else { panic!("expected a stream, got {r:?}") };
        let mut out = Vec::new();
        while let Some(b) = s.next_frame().await {
            out.extend(b);
        }
        (r.status, String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn a_json_answer_carries_the_deployment_and_model_names_a_route() {
        let router = router(json!({"then": {"text": "hello"}}));
        let r = handle(&router, br#"{"model": "other", "messages": [{"role": "user", "content": "hi"}]}"#, &http::HeaderMap::new()).await;
        assert_eq!(r.status, 200);
        assert!(r.headers.contains(&("x-polyroute-deployment", "d".into())), "{:?}", r.headers);
        assert!(r.headers.contains(&("x-polyroute-route", "other".into())), "{:?}", r.headers);
        let OpenAiBody::Json(b) = r.body else { panic!() };
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
    }

    #[tokio::test]
    async fn a_stream_is_chunks_then_done_and_a_cut_is_an_error_event_without_done() {
        let router = router(json!({"then": {"text": "one two"}}));
        let (status, text) =
            sse(&router, r#"{"messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}}"#).await;
        assert_eq!(status, 200);
        assert!(text.contains("chat.completion.chunk") && text.contains("\"usage\""), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let cut = super::router(json!({"then": {"text": "one two three four", "fault": {"cut_after": {"chunks": 1}}}}));
        let (_, text) = sse(&cut, r#"{"messages": [{"role": "user", "content": "hi"}], "stream": true}"#).await;
        assert!(text.contains("\"stream_interrupted\"") && !text.contains("[DONE]"), "{text}");
    }

    #[tokio::test]
    async fn failures_are_openai_errors_with_the_kind() {
        let router = router(json!({"then": {"text": "x"}}));
        let r = handle(&router, b"{nope", &http::HeaderMap::new()).await;
        assert_eq!(r.status, 400);
        assert!(r.headers.contains(&("x-polyroute-error-kind", "invalid_request".into())));
        let limited = super::router(json!({"then": {"status": 429}}));
        let r = handle(&limited, HI.as_bytes(), &http::HeaderMap::new()).await;
        assert_eq!(r.status, 429, "{r:?}");
    }

    #[tokio::test]
    async fn closing_an_sse_handle_ends_it_quietly() {
        let router = slow();
        let r = handle(&router, br#"{"messages": [{"role": "user", "content": "hi"}], "stream": true}"#, &http::HeaderMap::new()).await;
        let OpenAiBody::Sse(s) = r.body else { panic!() };
        assert!(s.next_frame().await.is_some());
        s.close();
        assert!(s.next_frame().await.is_none());
        assert!(s.is_closed());
    }
}

/// The bindings' hint for how to wait on an OpenAI reply (`openai_http::asks_to_stream`).
#[test]
fn asks_to_stream_finds_a_true_stream_key_without_parsing() {
    use crate::bridge::openai_http::asks_to_stream;
    for yes in [r#"{"stream": true}"#, r#"{"model":"m","stream":true}"#, "{\"stream\"\n :\t true, \"x\": 1}", r#"{"a": {"stream": true}}"#] {
        assert!(asks_to_stream(yes.as_bytes()), "{yes}");
    }
    for no in [r#"{"stream": false}"#, r#"{"model": "m"}"#, r#"{"content": "stream: true"}"#, r#"{"stream_options": true}"#, r#"{"stream""#, ""] {
        assert!(!asks_to_stream(no.as_bytes()), "{no}");
    }
}
