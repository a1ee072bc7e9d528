//! The mock provider tested through the real adapter path (`Endpoint::chat` / `stream` with
//! the OpenAI adapter), one test per fault, under tokio's paused clock; plus the Anthropic
//! and Gemini renderings checked event by event against the shapes in the recorded fixtures.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::*;
use crate::error::ErrorKind;
use crate::sse::{SseDecoder, SseEvent};
use crate::types::{ChatRequest, FinishReason, Message, StreamEvent, Usage};

fn req(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::system("be brief"), Message::user(text)])
}

/// Drain a stream: (events before the end, the terminating error if any).
async fn drain(mut s: crate::provider::EventStream) -> (Vec<StreamEvent>, Option<crate::Error>) {
    let mut evs = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(e) => evs.push(e),
            Err(e) => return (evs, Some(e)),
        }
    }
    (evs, None)
}

fn text_of(evs: &[StreamEvent]) -> String {
    evs.iter()
        .filter_map(|e| match e {
            StreamEvent::ContentDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn default_reply_echoes_with_hand_computable_usage() {
    let ep = mock_endpoint("mock-a", MockScript::default());
    let r = ep.chat("m1", &req("hello there world")).await.unwrap();
    assert_eq!(r.content(), "echo: hello there world");
    assert_eq!(r.model, "m1");
    assert_eq!(r.finish_reason(), Some(FinishReason::Stop));
    assert_eq!(r.provider.as_deref(), Some("mock-a"));
    // prompt: "be brief" (2) + "hello there world" (3); completion: 4 words emitted.
    assert_eq!(r.usage, Some(Usage { input_tokens: 5, output_tokens: 4, ..Default::default() }));
}

#[tokio::test(start_paused = true)]
async fn stream_reply_chunks_usage_and_finish() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("one two three four five").with_chunk_size(2)));
    let (evs, err) = drain(ep.stream("m1", &req("hi")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let deltas: Vec<_> = evs.iter().filter(|e| matches!(e, StreamEvent::ContentDelta { .. })).collect();
    assert_eq!(deltas.len(), 3);
    assert_eq!(text_of(&evs), "one two three four five");
    assert!(evs.contains(&StreamEvent::Finish { reason: FinishReason::Stop, native: Some("stop".into()) }));
    assert!(evs.contains(&StreamEvent::Usage { usage: Usage { input_tokens: 3, output_tokens: 5, ..Default::default() } }));
}

#[tokio::test(start_paused = true)]
async fn rate_limited_with_retry_after_then_server_error_then_success() {
    let t = MockTransport::new(MockScript::new(vec![MockStep::error(429).with_retry_after("2"), MockStep::error(500)]));
    let ep = t.endpoint("m");
    let e = ep.chat("m1", &req("x")).await.unwrap_err();
    assert_eq!((e.kind, e.status, e.retry_after), (ErrorKind::RateLimited, Some(429), Some(Duration::from_secs(2))));
    assert_eq!(e.provider_code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(e.request_id.as_deref(), Some("req_mock0"));
    let e = ep.chat("m1", &req("x")).await.unwrap_err();
    assert_eq!((e.kind, e.status), (ErrorKind::ServerError, Some(500)));
    assert_eq!(ep.chat("m1", &req("x")).await.unwrap().content(), "echo: x");
    let calls = t.calls();
    assert_eq!(calls.iter().map(|c| c.outcome.as_str()).collect::<Vec<_>>(), ["status:429", "status:500", "ok"]);
    assert_eq!(calls.iter().map(|c| c.step_index).collect::<Vec<_>>(), [Some(0), Some(1), None]);
    assert_eq!(calls[0].body["messages"][1]["content"], "x");
}

#[tokio::test(start_paused = true)]
async fn error_codes_classify() {
    let cases = [
        (MockStep::default().with_error_code("insufficient_quota"), ErrorKind::QuotaExhausted, 429),
        (MockStep::error(429).with_retry_after_ms(1500), ErrorKind::RateLimited, 429),
        (MockStep::error(503), ErrorKind::Overloaded, 503),
        (MockStep::error(401), ErrorKind::Auth, 401),
        (MockStep::error(404), ErrorKind::NotFound, 404),
        (MockStep::error(400).with_error_code("context_length_exceeded"), ErrorKind::ContextLengthExceeded, 400),
        (MockStep::error(403), ErrorKind::PermissionDenied, 403),
    ];
    for (step, kind, status) in cases {
        let ep = mock_endpoint("m", MockScript::always(step.clone()));
        let e = ep.chat("m1", &req("x")).await.unwrap_err();
        assert_eq!((e.kind, e.status), (kind, Some(status)), "{step:?}");
        // The same error reaches a streaming caller before any event.
        let e = ep.stream("m1", &req("x")).await.err().unwrap();
        assert_eq!(e.kind, kind);
    }
    let e = mock_endpoint("m", MockScript::always(MockStep::error(429).with_retry_after_ms(1500))).chat("m1", &req("x")).await.unwrap_err();
    assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
}

#[tokio::test(start_paused = true)]
async fn cut_mid_stream_is_interrupted_with_partial_text() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b c d").with_fault(Fault::CutAfter { chunks: 2 })));
    let (evs, err) = drain(ep.stream("m1", &req("x")).await.unwrap()).await;
    assert_eq!(text_of(&evs), "a b");
    let e = err.expect("cut must end in an error");
    assert_eq!(e.kind, ErrorKind::StreamInterrupted);
    assert_eq!(e.partial.as_ref().unwrap().text, "a b");
    // reset behaves the same for a stream
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b").with_fault(Fault::ResetAfter { chunks: 1 })));
    let (_, err) = drain(ep.stream("m1", &req("x")).await.unwrap()).await;
    assert_eq!(err.unwrap().kind, ErrorKind::StreamInterrupted);
}

#[tokio::test(start_paused = true)]
async fn cut_non_streamed_body_is_a_connection_error() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::faulty(Fault::CutAfter { chunks: 0 })));
    assert_eq!(ep.chat("m1", &req("x")).await.unwrap_err().kind, ErrorKind::Connection);
}

#[tokio::test(start_paused = true)]
async fn drop_and_garbage_are_connection_errors() {
    for f in [Fault::Drop, Fault::GarbageHeaders] {
        let ep = mock_endpoint("m", MockScript::always(MockStep::faulty(f.clone())));
        assert_eq!(ep.chat("m1", &req("x")).await.unwrap_err().kind, ErrorKind::Connection, "{f:?}");
        assert_eq!(ep.stream("m1", &req("x")).await.err().unwrap().kind, ErrorKind::Connection, "{f:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn hang_never_answers() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::faulty(Fault::Hang)));
    let start = Instant::now();
    assert!(tokio::time::timeout(Duration::from_secs(3600), ep.chat("m1", &req("x"))).await.is_err());
    assert!(start.elapsed() >= Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn stall_goes_silent_after_n_chunks() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b c").with_fault(Fault::StallAfter { chunks: 1 })));
    let mut s = ep.stream("m1", &req("x")).await.unwrap();
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
            Ok(Some(Ok(ev))) => got.push(ev),
            Ok(other) => panic!("stream ended instead of stalling: {other:?}"),
            Err(_) => break,
        }
    }
    assert_eq!(text_of(&got), "a");
    // non-streamed: half a body, then silence
    let ep = mock_endpoint("m", MockScript::always(MockStep::faulty(Fault::StallAfter { chunks: 0 })));
    assert!(tokio::time::timeout(Duration::from_secs(60), ep.chat("m1", &req("x"))).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn malformed_chunk_is_malformed_response() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b").with_fault(Fault::MalformedAfter { chunks: 1 })));
    let (evs, err) = drain(ep.stream("m1", &req("x")).await.unwrap()).await;
    assert_eq!(text_of(&evs), "a");
    let e = err.unwrap();
    assert_eq!(e.kind, ErrorKind::MalformedResponse);
    assert_eq!(e.partial.unwrap().text, "a");
    let ep = mock_endpoint("m", MockScript::always(MockStep::faulty(Fault::MalformedAfter { chunks: 0 })));
    assert_eq!(ep.chat("m1", &req("x")).await.unwrap_err().kind, ErrorKind::MalformedResponse);
}

#[tokio::test(start_paused = true)]
async fn no_done_completes_without_waiting_for_the_open_connection() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b").with_fault(Fault::NoDone)));
    let s = ep.stream("m1", &req("x")).await.unwrap();
    let (evs, err) = tokio::time::timeout(Duration::from_secs(5), drain(s)).await.expect("must not hang");
    assert!(err.is_none());
    assert_eq!(text_of(&evs), "a b");
    assert!(evs.iter().any(|e| matches!(e, StreamEvent::Finish { .. })));
}

#[tokio::test(start_paused = true)]
async fn no_finish_is_interrupted() {
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b").with_fault(Fault::NoFinish)));
    let (evs, err) = drain(ep.stream("m1", &req("x")).await.unwrap()).await;
    assert_eq!(text_of(&evs), "a b");
    assert_eq!(err.unwrap().kind, ErrorKind::StreamInterrupted);
    // non-streamed: `finish_reason: null` parses, and says so
    let r = ep.chat("m1", &req("x")).await.unwrap();
    assert_eq!(r.finish_reason(), None);
}

#[tokio::test(start_paused = true)]
async fn inband_errors_classify_by_code() {
    let ib = |code: Option<&str>| Fault::InbandError { after_chunks: 1, code: code.map(str::to_string), error_type: None, message: None };
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b").with_fault(ib(None))));
    let (evs, err) = drain(ep.stream("m1", &req("x")).await.unwrap()).await;
    assert_eq!(text_of(&evs), "a");
    assert_eq!(err.unwrap().kind, ErrorKind::ServerError);
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b").with_fault(ib(Some("rate_limit_exceeded")))));
    let (_, err) = drain(ep.stream("m1", &req("x")).await.unwrap()).await;
    assert_eq!(err.unwrap().kind, ErrorKind::RateLimited);
    // non-streamed: a 200 whose body is an error object
    let e = ep.chat("m1", &req("x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
}

#[tokio::test(start_paused = true)]
async fn timing_is_exact_under_paused_clock() {
    let step = MockStep::text("a b c").with_latency_ms(100).with_ttft_ms(200).with_chunk_delay_ms(50);
    let ep = mock_endpoint("m", MockScript::always(step));
    let t0 = Instant::now();
    let mut s = ep.stream("m1", &req("x")).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(100));
    let mut content_at = Vec::new();
    while let Some(ev) = s.next().await {
        if let StreamEvent::ContentDelta { .. } = ev.unwrap() {
            content_at.push(t0.elapsed().as_millis());
        }
    }
    assert_eq!(content_at, [300, 350, 400]);
    // non-streamed: the whole generation time before the answer
    let t0 = Instant::now();
    ep.chat("m1", &req("x")).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn tool_calls_stream_and_json() {
    let step =
        MockStep::default().with_text("").with_tool_call("get_weather", json!({"city": "Paris", "unit": "c"})).with_tool_call("noop", json!({}));
    let ep = mock_endpoint("m", MockScript::always(step));
    let r = ep.chat("m1", &req("x")).await.unwrap();
    assert_eq!(r.finish_reason(), Some(FinishReason::ToolCalls));
    let tc = r.tool_calls();
    assert_eq!((tc[0].name.as_str(), tc[1].name.as_str()), ("get_weather", "noop"));
    assert_eq!(serde_json::from_str::<Value>(&tc[0].arguments).unwrap(), json!({"city": "Paris", "unit": "c"}));
    assert_eq!(tc[0].id, "call_mock0_0");
    let (evs, err) = drain(ep.stream("m1", &req("x")).await.unwrap()).await;
    assert!(err.is_none());
    let mut acc = crate::types::StreamAccumulator::new();
    evs.iter().for_each(|e| acc.push(e));
    let resp = acc.into_response();
    assert_eq!(resp.tool_calls()[0].arguments, tc[0].arguments);
    assert_eq!(resp.tool_calls()[1].arguments, "{}");
    assert_eq!(resp.finish_reason(), Some(FinishReason::ToolCalls));
    // usage counts the words of names and arguments:
    // get_weather (1) + `{"city": "Paris", "unit": "c"}` (4) + noop (1) + `{}` (1)
    assert_eq!(resp.usage.unwrap().output_tokens, 7);
}

#[tokio::test(start_paused = true)]
async fn outage_window_then_healthy() {
    let t = MockTransport::new(MockScript::new(vec![MockStep::error(503).lasting_ms(60_000)]));
    let ep = t.endpoint("m");
    assert_eq!(ep.chat("m1", &req("x")).await.unwrap_err().kind, ErrorKind::Overloaded);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(ep.chat("m1", &req("x")).await.unwrap_err().kind, ErrorKind::Overloaded);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(ep.chat("m1", &req("x")).await.is_ok());
    let at: Vec<_> = t.calls().iter().map(|c| c.at.as_secs()).collect();
    assert_eq!(at, [0, 59, 60]);
    t.set_script(MockScript::always(MockStep::error(500)));
    assert_eq!(ep.chat("m1", &req("x")).await.unwrap_err().kind, ErrorKind::ServerError);
}

#[tokio::test(start_paused = true)]
async fn usage_override_and_model() {
    let u = MockUsage { input_tokens: Some(1000), cache_read_tokens: Some(400), reasoning_tokens: Some(7), ..Default::default() };
    let ep = mock_endpoint("m", MockScript::always(MockStep::text("a b").with_usage(u).with_model("served-model")));
    let r = ep.chat("m1", &req("x")).await.unwrap();
    assert_eq!(r.model, "served-model");
    assert_eq!(r.usage.unwrap(), Usage { input_tokens: 1000, output_tokens: 9, cache_read_tokens: 400, cache_write_tokens: 0, reasoning_tokens: 7 });
}

// ---- wire renderings of the other formats -------------------------------------------------

fn mreq(format: WireFormat, stream: bool) -> MockRequest {
    MockRequest { format, model: "mdl".into(), stream, include_usage: true, prompt_tokens: 6, last_user_text: "hi there".into() }
}

fn body_bytes(p: &ResponsePlan) -> Vec<u8> {
    p.chunks.iter().flat_map(|c| c.data.to_vec()).collect()
}

fn sse(p: &ResponsePlan) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    d.feed(&body_bytes(p), &mut out).unwrap();
    d.finish(&mut out).unwrap();
    out
}

fn status_of(p: &ResponsePlan) -> u16 {
    match &p.head {
        PlanHead::Respond { status, .. } => *status,
        other => panic!("no status: {other:?}"),
    }
}

fn header<'a>(p: &'a ResponsePlan, name: &str) -> Option<&'a str> {
    match &p.head {
        PlanHead::Respond { headers, .. } => headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()),
        _ => None,
    }
}

#[test]
fn openai_stream_matches_recorded_shape() {
    let p = render(&MockStep::text("Foo !"), &mreq(WireFormat::OpenAi, true), 7);
    let evs = sse(&p);
    let datas: Vec<&str> = evs.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(datas.last(), Some(&"[DONE]"));
    let js: Vec<Value> = datas[..datas.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(js[0]["choices"][0]["delta"], json!({"role": "assistant", "content": "", "refusal": null}));
    assert_eq!(js[1]["choices"][0]["delta"]["content"], "Foo");
    assert_eq!(js[2]["choices"][0]["delta"]["content"], " !");
    assert_eq!(js[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(js[3]["choices"][0]["delta"], json!({}));
    assert_eq!(js[4]["choices"], json!([]));
    assert_eq!(js[4]["usage"], json!({"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}));
    assert!(js[..4].iter().all(|j| j["usage"].is_null() && j["object"] == "chat.completion.chunk" && j["id"] == "chatcmpl-mock7"));
    // Without include_usage: no usage chunk and no usage keys.
    let mut r = mreq(WireFormat::OpenAi, true);
    r.include_usage = false;
    let evs = sse(&render(&MockStep::text("Foo"), &r, 1));
    assert!(evs.iter().all(|e| !e.data.contains("usage")));
    assert!(matches!(render(&MockStep::text("Foo"), &r, 1).head, PlanHead::Respond { framing: BodyFraming::Chunked, .. }));
}

#[test]
fn anthropic_stream_matches_recorded_shape() {
    let step = MockStep::text("Hello there").with_tool_call("get_weather", json!({"location": "Paris"}));
    let p = render(&step, &mreq(WireFormat::Anthropic, true), 3);
    let evs = sse(&p);
    let names: Vec<&str> = evs.iter().map(|e| e.event.as_deref().unwrap_or("")).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let j: Vec<Value> = evs.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    for (e, v) in names.iter().zip(&j) {
        assert_eq!(v["type"], *e, "data.type repeats the event name");
    }
    assert_eq!(j[0]["message"]["usage"]["input_tokens"], 6);
    assert_eq!(j[3]["delta"], json!({"type": "text_delta", "text": "Hello"}));
    assert_eq!(j[6]["content_block"]["type"], "tool_use");
    assert_eq!(j[6]["content_block"]["name"], "get_weather");
    assert_eq!(j[6]["index"], 1);
    let args: String = j[7..9].iter().map(|v| v["delta"]["partial_json"].as_str().unwrap()).collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"location": "Paris"}));
    assert_eq!(j[10]["delta"]["stop_reason"], "tool_use");
    // output: Hello there (2) + get_weather (1) + {"location": "Paris"} (2)
    assert_eq!(j[10]["usage"]["output_tokens"], 5);

    let p = render(&MockStep::text("Hello"), &mreq(WireFormat::Anthropic, false), 3);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hello"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(header(&p, "request-id"), Some("req_mock3"));
}

#[test]
fn anthropic_errors_and_inband() {
    let r = mreq(WireFormat::Anthropic, true);
    let p = render(&MockStep::default().with_error_type("overloaded_error"), &r, 1);
    assert_eq!(status_of(&p), 529);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"], json!({"type": "overloaded_error", "message": "Overloaded"}));
    // explicit status wins
    assert_eq!(status_of(&render(&MockStep::error(503).with_error_type("overloaded_error"), &r, 1)), 503);
    let p = render(&MockStep::error(429).with_retry_after("7"), &r, 1);
    assert_eq!(header(&p, "retry-after"), Some("7"));
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let f = Fault::InbandError { after_chunks: 1, code: None, error_type: None, message: None };
    let evs = sse(&render(&MockStep::text("a b").with_fault(f), &r, 1));
    let last = evs.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(
        serde_json::from_str::<Value>(&last.data).unwrap(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert_eq!(evs.iter().filter(|e| e.event.as_deref() == Some("content_block_delta")).count(), 1);
}

#[test]
fn anthropic_usage_excludes_cache_from_input() {
    let u = MockUsage { input_tokens: Some(100), cache_read_tokens: Some(30), cache_write_tokens: Some(20), ..Default::default() };
    let p = render(&MockStep::text("a").with_usage(u), &mreq(WireFormat::Anthropic, false), 1);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(v["usage"]["input_tokens"], 50);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 30);
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 20);
}

#[test]
fn anthropic_no_finish_and_no_done() {
    let r = mreq(WireFormat::Anthropic, true);
    let evs = sse(&render(&MockStep::text("a").with_fault(Fault::NoFinish), &r, 1));
    assert!(evs.iter().all(|e| !matches!(e.event.as_deref(), Some("message_delta" | "message_stop"))));
    assert_eq!(evs.last().unwrap().event.as_deref(), Some("content_block_stop"));
    let p = render(&MockStep::text("a").with_fault(Fault::NoDone), &r, 1);
    assert_eq!(p.ending, PlanEnding::Hang);
    assert_eq!(sse(&p).last().unwrap().event.as_deref(), Some("message_delta"));
}

#[test]
fn gemini_stream_matches_recorded_shape() {
    let step = MockStep::text("The capital").with_tool_call("get_country", json!({}));
    let p = render(&step, &mreq(WireFormat::Gemini, true), 9);
    let raw = String::from_utf8(body_bytes(&p)).unwrap();
    assert!(raw.starts_with("data: {") && raw.ends_with("}\r\n\r\n"), "{raw}");
    let j: Vec<Value> = sse(&p).iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    assert_eq!(j.len(), 4);
    assert_eq!(j[0]["candidates"][0]["content"], json!({"parts": [{"text": "The"}], "role": "model"}));
    assert_eq!(j[0]["usageMetadata"], json!({"promptTokenCount": 6, "totalTokenCount": 6}));
    assert!(j[1]["candidates"][0].get("finishReason").is_none());
    assert_eq!(j[2]["candidates"][0]["content"]["parts"][0]["functionCall"], json!({"name": "get_country", "args": {}}));
    assert_eq!(j[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(j[3]["usageMetadata"], json!({"promptTokenCount": 6, "candidatesTokenCount": 4, "totalTokenCount": 10}));
    assert_eq!(j[3]["modelVersion"], "mdl");
    assert_eq!(j[3]["responseId"], "mock9");

    let p = render(&MockStep::text("Paris").with_finish_reason("length"), &mreq(WireFormat::Gemini, false), 9);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(v["candidates"][0]["content"]["parts"], json!([{"text": "Paris"}]));
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
}

#[test]
fn gemini_errors_are_google_rpc_status() {
    let r = mreq(WireFormat::Gemini, false);
    let p = render(&MockStep::error(429).with_retry_after_ms(13_000), &r, 1);
    assert_eq!(status_of(&p), 429);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    let details = v["error"]["details"].as_array().unwrap();
    let quota = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure").unwrap();
    assert!(quota["violations"][0]["quotaId"].as_str().unwrap().contains("PerMinute"));
    let retry = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo").unwrap();
    assert_eq!(retry["retryDelay"], "13s");
    // daily quota
    let p = render(&MockStep::error(429).with_error_code("insufficient_quota").with_retry_after_ms(1500), &r, 1);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert!(v.to_string().contains("PerDay"));
    assert!(v.to_string().contains("\"1.5s\""));
    // 503 and an app-specific code
    let v: Value = serde_json::from_slice(&body_bytes(&render(&MockStep::error(503), &r, 1))).unwrap();
    assert_eq!(v["error"]["status"], "UNAVAILABLE");
    assert!(v["error"].get("details").is_none());
    let p = render(&MockStep::error(400).with_error_code("API_KEY_INVALID"), &r, 1);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(v["error"]["status"], "API_KEY_INVALID");
    let p = render(&MockStep::error(400).with_error_code("api_key_invalid"), &r, 1);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!((v["error"]["status"].as_str(), v["error"]["details"][0]["reason"].as_str()), (Some("INVALID_ARGUMENT"), Some("api_key_invalid")));
}

#[test]
fn gemini_usage_separates_thoughts() {
    let u = MockUsage { reasoning_tokens: Some(10), cache_read_tokens: Some(2), ..Default::default() };
    let p = render(&MockStep::text("a b c").with_usage(u), &mreq(WireFormat::Gemini, false), 1);
    let v: Value = serde_json::from_slice(&body_bytes(&p)).unwrap();
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 6, "candidatesTokenCount": 3, "thoughtsTokenCount": 10,
               "cachedContentTokenCount": 2, "totalTokenCount": 19})
    );
}

#[test]
fn fault_plans_end_the_right_way() {
    let r = mreq(WireFormat::OpenAi, true);
    let text = MockStep::text("a b c");
    let content = |p: &ResponsePlan| sse(p).iter().filter(|e| e.data.contains("\"content\":\"")).count();
    let p = render(&text.clone().with_fault(Fault::CutAfter { chunks: 2 }), &r, 1);
    assert_eq!((p.ending, content(&p), p.outcome.as_str()), (PlanEnding::Close, 3, "cut")); // role chunk has content ""
    let p = render(&text.clone().with_fault(Fault::CutAfter { chunks: 99 }), &r, 1);
    assert!(!String::from_utf8(body_bytes(&p)).unwrap().contains("finish_reason\":\"stop"));
    let p = render(&text.clone().with_fault(Fault::StallAfter { chunks: 0 }), &r, 1);
    assert_eq!((p.ending, p.chunks.len()), (PlanEnding::Hang, 1));
    let p = render(&text.clone().with_fault(Fault::NoDone), &r, 1);
    assert_eq!(p.ending, PlanEnding::Hang);
    assert!(!String::from_utf8(body_bytes(&p)).unwrap().contains("[DONE]"));
    for f in [Fault::Drop, Fault::Hang, Fault::GarbageHeaders] {
        let p = render(&MockStep::error(500).with_fault(f.clone()), &r, 1);
        assert!(p.chunks.is_empty() && !matches!(p.head, PlanHead::Respond { .. }), "{f:?}");
    }
    // non-streamed cut: declared length is the whole body, half is sent
    let p = render(&text.clone().with_fault(Fault::CutAfter { chunks: 0 }), &mreq(WireFormat::OpenAi, false), 1);
    match p.head {
        PlanHead::Respond { framing: BodyFraming::Length(n), .. } => assert_eq!(n / 2, body_bytes(&p).len()),
        ref other => panic!("{other:?}"),
    }
    let bad = render_bad_request(WireFormat::Anthropic, "nope", 1);
    assert_eq!((status_of(&bad), bad.outcome.as_str()), (400, "bad_request"));
}
