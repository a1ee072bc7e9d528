//! The OpenAI and OpenAI-compatible adapters over real HTTP on loopback: the real
//! `Endpoint` + `HttpTransport` (reqwest) against `polyroute-mock-server`, whose scripted
//! faults produce, from an actual HTTP exchange, every `ErrorKind` these adapters can
//! return, plus the success paths of both adapter kinds.
//!
//! Why here and not in the adapter's unit tests: status lines, headers (`Retry-After`,
//! request ids), chunked bodies, connections closed or reset mid-stream, sockets left open
//! after the last event. Only a real socket shows how those reach the adapter.
//!
//! How each kind is produced:
//! - HTTP statuses and OpenAI error codes: scripted error replies (`ERRORS` below), through
//!   both `chat` and `stream`, for both adapter kinds;
//! - `timeout`: the router's first-token deadline (the wrapper the core uses; the transport
//!   itself has only a connect timeout, which loopback cannot trip) against a `hang` script;
//! - `connection`: a `drop` script (socket closed before any byte) and a refused port;
//! - `stream_interrupted`: `cut_after` / `reset_after` mid-stream (partial text attached)
//!   and `no_finish` (`[DONE]` without any finish reason);
//! - `malformed_response`: a truncated JSON body, and a stream chunk that is not JSON.
//!
//! One server per test (each binds its own port), so tests run in parallel safely. A
//! compatible server that sends no usage cannot be scripted (our adapter always asks for
//! usage and the mock honours that), so `bare_compat_server` plays one with raw HTTP.

use std::time::{Duration, Instant};

use futures::StreamExt;
use polyroute::provider::mock::MockScript;
use polyroute::provider::{Endpoint, ProviderConfig, ProviderKind};
use polyroute::{ChatRequest, Error, ErrorKind, FinishReason, Message, Router, StreamAccumulator, StreamEvent};
use polyroute_mock_server::MockServerHandle;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for anything that should finish at once: a hang fails the test, not CI.
const PROMPT: Duration = Duration::from_secs(10);

use crate::common::mock_server as server;
use crate::common::{http_endpoint, KEY};

fn endpoint(kind: ProviderKind, base_url: &str) -> Endpoint {
    let name = if kind == ProviderKind::Openai { "mock-openai" } else { "mock-compat" };
    http_endpoint(ProviderConfig::new(name, kind, base_url).with_api_key(KEY))
}

const KINDS: [ProviderKind; 2] = [ProviderKind::Openai, ProviderKind::OpenaiCompatible];

fn ask() -> ChatRequest {
    let mut r = ChatRequest::new(vec![Message::system("be brief"), Message::user("hello mock")]);
    r.max_completion_tokens = Some(64);
    r
}

fn script(server: &MockServerHandle, name: &str, json: &str) {
    server.set_script(name, MockScript::from_json(json).expect("valid script")).expect("install script");
}

/// A whole stream: the events received, then the error that ended it (an error before the
/// stream started counts too, with no events).
async fn stream_all(ep: &Endpoint, model: &str) -> (Vec<StreamEvent>, Option<Error>) {
    let run = async {
        let mut s = match ep.stream(model, &ask()).await {
            Ok(s) => s,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut events = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(ev) => events.push(ev),
                Err(e) => return (events, Some(e)),
            }
        }
        (events, None)
    };
    tokio::time::timeout(PROMPT, run).await.unwrap_or_else(|_| panic!("{model}: stream did not end within {PROMPT:?}"))
}

async fn chat(ep: &Endpoint, model: &str) -> Result<polyroute::ChatResponse, Error> {
    tokio::time::timeout(PROMPT, ep.chat(model, &ask())).await.unwrap_or_else(|_| panic!("{model}: no answer within {PROMPT:?}"))
}

fn text_of(events: &[StreamEvent]) -> String {
    events.iter().filter_map(|e| if let StreamEvent::ContentDelta { text } = e { Some(text.as_str()) } else { None }).collect()
}

fn fold(events: &[StreamEvent]) -> polyroute::ChatResponse {
    let mut acc = StreamAccumulator::new();
    events.iter().for_each(|e| acc.push(e));
    acc.into_response()
}

// ---------------------------------------------------------------------------------------
// Error replies: (script, kind, status, provider code, retry hint).

struct Case {
    name: &'static str,
    script: &'static str,
    kind: ErrorKind,
    status: u16,
    code: Option<&'static str>,
    retry_after: Option<Duration>,
}

const ERRORS: &[Case] = &[
    Case {
        name: "rate-limited",
        script: r#"{"then": {"status": 429, "error_code": "rate_limit_exceeded", "retry_after": "2"}}"#,
        kind: ErrorKind::RateLimited,
        status: 429,
        code: Some("rate_limit_exceeded"),
        retry_after: Some(Duration::from_secs(2)),
    },
    // OpenAI's own `retry-after-ms` wins over `Retry-After`.
    Case {
        name: "rate-limited-ms",
        script: r#"{"then": {"status": 429, "error_code": "rate_limit_exceeded", "retry_after": "9", "retry_after_ms": 1500}}"#,
        kind: ErrorKind::RateLimited,
        status: 429,
        code: Some("rate_limit_exceeded"),
        retry_after: Some(Duration::from_millis(1500)),
    },
    // Same status, different meaning: only the code tells them apart.
    Case {
        name: "quota",
        script: r#"{"then": {"status": 429, "error_code": "insufficient_quota"}}"#,
        kind: ErrorKind::QuotaExhausted,
        status: 429,
        code: Some("insufficient_quota"),
        retry_after: None,
    },
    Case {
        name: "overloaded",
        script: r#"{"then": {"status": 503}}"#,
        kind: ErrorKind::Overloaded,
        status: 503,
        code: Some("mock_error"),
        retry_after: None,
    },
    Case {
        name: "overloaded-code",
        script: r#"{"then": {"status": 500, "error_code": "server_overloaded"}}"#,
        kind: ErrorKind::Overloaded,
        status: 500,
        code: Some("server_overloaded"),
        retry_after: None,
    },
    Case {
        name: "server-error",
        script: r#"{"then": {"status": 500}}"#,
        kind: ErrorKind::ServerError,
        status: 500,
        code: Some("server_error"),
        retry_after: None,
    },
    Case {
        name: "bad-gateway",
        script: r#"{"then": {"status": 502}}"#,
        kind: ErrorKind::ServerError,
        status: 502,
        code: Some("mock_error"),
        retry_after: None,
    },
    Case {
        name: "auth",
        script: r#"{"then": {"status": 401}}"#,
        kind: ErrorKind::Auth,
        status: 401,
        code: Some("invalid_api_key"),
        retry_after: None,
    },
    Case {
        name: "permission",
        script: r#"{"then": {"status": 403, "error_code": "unsupported_country_region_territory"}}"#,
        kind: ErrorKind::PermissionDenied,
        status: 403,
        code: Some("unsupported_country_region_territory"),
        retry_after: None,
    },
    Case {
        name: "permission-bare",
        script: r#"{"then": {"status": 403}}"#,
        kind: ErrorKind::PermissionDenied,
        status: 403,
        code: Some("invalid_request_error"),
        retry_after: None,
    },
    Case {
        name: "content-filter",
        script: r#"{"then": {"status": 400, "error_code": "content_policy_violation", "error_message": "Your request was rejected as a result of our safety system."}}"#,
        kind: ErrorKind::ContentFilter,
        status: 400,
        code: Some("content_policy_violation"),
        retry_after: None,
    },
    Case {
        name: "context-length",
        script: r#"{"then": {"status": 400, "error_code": "context_length_exceeded", "error_message": "This model's maximum context length is 128000 tokens."}}"#,
        kind: ErrorKind::ContextLengthExceeded,
        status: 400,
        code: Some("context_length_exceeded"),
        retry_after: None,
    },
    Case {
        name: "invalid-request",
        script: r#"{"then": {"status": 400}}"#,
        kind: ErrorKind::InvalidRequest,
        status: 400,
        code: Some("invalid_request_error"),
        retry_after: None,
    },
    Case {
        name: "unprocessable",
        script: r#"{"then": {"status": 422}}"#,
        kind: ErrorKind::InvalidRequest,
        status: 422,
        code: Some("invalid_request_error"),
        retry_after: None,
    },
    Case {
        name: "not-found",
        script: r#"{"then": {"status": 404}}"#,
        kind: ErrorKind::NotFound,
        status: 404,
        code: Some("model_not_found"),
        retry_after: None,
    },
];

fn check_error(e: &Error, c: &Case, provider: &str, how: &str) {
    let at = format!("{} via {provider} {how}: {e}", c.name);
    assert_eq!(e.kind, c.kind, "{at}");
    assert_eq!(e.status, Some(c.status), "{at}");
    assert_eq!(e.provider_code.as_deref(), c.code, "{at}");
    assert_eq!(e.retry_after, c.retry_after, "{at}");
    assert_eq!(e.provider.as_deref(), Some(provider), "{at}");
    assert_eq!(e.model.as_deref(), Some(c.name), "{at}");
    assert!(e.request_id.as_deref().is_some_and(|id| !id.is_empty()), "{at}: request id from x-request-id");
    assert!(!e.message.is_empty(), "{at}");
    assert!(!format!("{e} {e:?}").contains(KEY), "{at}: the key never appears in an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_error_replies_classify_for_both_adapters_streamed_and_not() {
    let server = server().await;
    for c in ERRORS {
        script(&server, c.name, c.script);
    }
    let mut seen = std::collections::BTreeSet::new();
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        let provider = ep.provider.name().to_string();
        for c in ERRORS {
            let e = chat(&ep, c.name).await.expect_err(c.name);
            check_error(&e, c, &provider, "chat");
            let (events, e) = stream_all(&ep, c.name).await;
            assert!(events.is_empty(), "{}: an HTTP error arrives before the stream", c.name);
            check_error(&e.expect("stream error"), c, &provider, "stream");
            seen.insert(c.kind);
        }
    }
    // Every request reached the server with credentials, none recorded them.
    let log = server.log();
    assert_eq!(log.len(), ERRORS.len() * 4);
    assert!(log.iter().all(|l| l.auth_present && !l.headers.contains_key("authorization")));
    assert_eq!(seen.len(), 10, "{seen:?}");
}

// ---------------------------------------------------------------------------------------
// Transport failures.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_and_refused_port_are_connection_errors() {
    let server = server().await;
    script(&server, "dropper", r#"{"then": {"fault": "drop"}}"#);
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        let e = chat(&ep, "dropper").await.expect_err("drop");
        assert_eq!(e.kind, ErrorKind::Connection, "{e}");
        assert_eq!(e.status, None);
        let (events, e) = stream_all(&ep, "dropper").await;
        assert!(events.is_empty());
        assert_eq!(e.map(|e| e.kind), Some(ErrorKind::Connection));
    }
    // A port nobody listens on: bind one, note it, close it.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let ep = endpoint(ProviderKind::Openai, &format!("http://127.0.0.1:{port}/v1"));
    let e = chat(&ep, "gpt-4o").await.expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Connection, "{e}");
    assert_eq!((e.provider.as_deref(), e.model.as_deref()), (Some("mock-openai"), Some("gpt-4o")));
    let (_, e) = stream_all(&ep, "gpt-4o").await;
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::Connection));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_is_a_timeout_through_the_router_deadline() {
    let server = server().await;
    script(&server, "sleeper", r#"{"then": {"fault": "hang"}}"#);
    let policy = format!(
        r#"
version: 1
providers:
  loop-openai: {{kind: openai, base_url: "{base}", api_key: "{KEY}"}}
  loop-compat: {{kind: openai_compatible, base_url: "{base}", api_key: "{KEY}"}}
deployments:
  openai: {{provider: loop-openai, model: sleeper}}
  compat: {{provider: loop-compat, model: sleeper}}
routes:
  - name: openai-only
    deployments: [openai]
    retry: {{attempts_per_deployment: 1, max_retry_after: 1s}}
    timeouts: {{first_token: 300ms, total: 2s}}
  - name: compat-only
    deployments: [compat]
    retry: {{attempts_per_deployment: 1, max_retry_after: 1s}}
    timeouts: {{first_token: 300ms, total: 2s}}
default_route: openai-only
"#,
        base = server.base_url()
    );
    let router = Router::from_policy_str(&policy).expect("policy");
    for route in ["openai-only", "compat-only"] {
        let mut req = ask();
        req.routing.route = Some(route.into());
        let t0 = Instant::now();
        let e = tokio::time::timeout(PROMPT, router.chat(req.clone())).await.expect("router returns").expect_err("hang");
        assert_eq!(e.kind, ErrorKind::Timeout, "{route}: {e}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{route}: the first-token deadline fired, {:?}", t0.elapsed());
        let t0 = Instant::now();
        let r = tokio::time::timeout(PROMPT, router.stream(req)).await.expect("router returns");
        let e = match r {
            Err(e) => e,
            Ok(mut s) => loop {
                match s.next().await {
                    Some(Err(e)) => break e,
                    Some(Ok(_)) => continue,
                    None => panic!("{route}: a hung stream ended cleanly"),
                }
            },
        };
        assert_eq!(e.kind, ErrorKind::Timeout, "{route} stream: {e}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{route} stream: {:?}", t0.elapsed());
    }
    assert!(server.log_for("sleeper").len() >= 4);
}

// ---------------------------------------------------------------------------------------
// Stream faults.

const WORDS: &str = "one two three four five six";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cut_or_reset_mid_way_are_interrupted_with_the_partial_text() {
    let server = server().await;
    script(&server, "cut", &json!({"then": {"text": WORDS, "fault": {"cut_after": {"chunks": 2}}}}).to_string());
    script(&server, "reset", &json!({"then": {"text": WORDS, "fault": {"reset_after": {"chunks": 3}}}}).to_string());
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        for (model, chunks) in [("cut", 2), ("reset", 3)] {
            let (events, e) = stream_all(&ep, model).await;
            let e = e.unwrap_or_else(|| panic!("{model}: a cut stream must not end cleanly"));
            assert_eq!(e.kind, ErrorKind::StreamInterrupted, "{model}: {e}");
            let got = text_of(&events);
            let want: Vec<&str> = WORDS.split(' ').take(chunks).collect();
            assert_eq!(got.split_whitespace().collect::<Vec<_>>(), want, "{model}: what was delivered");
            let partial = e.partial.as_ref().unwrap_or_else(|| panic!("{model}: partial output attached"));
            assert_eq!(partial.text, got, "{model}: the partial is exactly what the caller saw");
            assert!(!events.iter().any(|e| matches!(e, StreamEvent::Finish { .. })), "{model}");
            assert_eq!(e.provider.as_deref(), Some(ep.provider.name()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_without_finish_reason_is_interrupted() {
    let server = server().await;
    script(&server, "unfinished", &json!({"then": {"text": WORDS, "fault": "no_finish"}}).to_string());
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        let (events, e) = stream_all(&ep, "unfinished").await;
        let e = e.expect("no finish reason is not a complete answer");
        assert_eq!(e.kind, ErrorKind::StreamInterrupted, "{e}");
        assert_eq!(text_of(&events).split_whitespace().collect::<Vec<_>>(), WORDS.split(' ').collect::<Vec<_>>());
        assert_eq!(e.partial.as_ref().map(|p| p.text.clone()), Some(text_of(&events)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_chunks_are_malformed_response() {
    let server = server().await;
    script(&server, "garbled", &json!({"then": {"text": WORDS, "fault": {"malformed_after": {"chunks": 2}}}}).to_string());
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        // Non-streamed: a 200 whose JSON body is cut short (with a matching Content-Length).
        let e = chat(&ep, "garbled").await.expect_err("truncated JSON");
        assert_eq!(e.kind, ErrorKind::MalformedResponse, "{e}");
        assert_eq!(e.status, Some(200));
        // Streamed: two good chunks, then one that is not JSON.
        let (events, e) = stream_all(&ep, "garbled").await;
        let e = e.expect("a chunk that is not JSON");
        assert_eq!(e.kind, ErrorKind::MalformedResponse, "{e}");
        assert_eq!(text_of(&events).split_whitespace().count(), 2);
        assert_eq!(e.partial.as_ref().map(|p| p.text.clone()), Some(text_of(&events)), "content was seen, so it is attached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_stream_errors_classify_by_code() {
    let server = server().await;
    script(&server, "inband-overload", r#"{"then": {"text": "a b c", "fault": {"inband_error": {"after_chunks": 1, "code": "server_overloaded"}}}}"#);
    script(
        &server,
        "inband-ratelimit",
        r#"{"then": {"text": "a b c", "fault": {"inband_error": {"after_chunks": 0, "code": "rate_limit_exceeded"}}}}"#,
    );
    script(&server, "inband-plain", r#"{"then": {"text": "a b c", "fault": {"inband_error": {"after_chunks": 2}}}}"#);
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        for (model, want, delivered) in [
            ("inband-overload", ErrorKind::Overloaded, 1),
            ("inband-ratelimit", ErrorKind::RateLimited, 0),
            ("inband-plain", ErrorKind::ServerError, 2),
        ] {
            let (events, e) = stream_all(&ep, model).await;
            let e = e.expect("in-band error");
            assert_eq!(e.kind, want, "{model}: {e}");
            assert_eq!(e.status, None, "{model}: no HTTP status is invented for an in-band error");
            assert_eq!(text_of(&events).split_whitespace().count(), delivered, "{model}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Success paths.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_answer_streamed_and_not_with_usage() {
    let server = server().await;
    script(
        &server,
        "happy",
        r#"{"then": {"text": "Paris is the capital of France.", "usage": {"input_tokens": 21, "output_tokens": 7, "cache_read_tokens": 16, "reasoning_tokens": 2}}}"#,
    );
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        let r = chat(&ep, "happy").await.expect("chat");
        assert_eq!(r.content(), "Paris is the capital of France.");
        assert_eq!(r.finish_reason(), Some(FinishReason::Stop));
        assert_eq!(r.provider.as_deref(), Some(ep.provider.name()));
        let u = r.usage.expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_tokens, u.reasoning_tokens), (21, 7, 16, 2));

        let (events, e) = stream_all(&ep, "happy").await;
        assert_eq!(e, None);
        assert!(matches!(events.first(), Some(StreamEvent::Start { .. })));
        assert!(events.iter().filter(|e| matches!(e, StreamEvent::ContentDelta { .. })).count() > 1, "streamed in pieces");
        let folded = fold(&events);
        assert_eq!(folded.content(), "Paris is the capital of France.");
        assert_eq!(folded.finish_reason(), Some(FinishReason::Stop));
        assert_eq!(folded.usage, r.usage, "streamed usage equals the non-streamed one");
    }
    // What went over the wire: each adapter family's token-cap field, usage asked for on
    // streams, `stream` only on streams, credentials present but never logged.
    let log = server.log_for("happy");
    assert_eq!(log.len(), 4);
    for (entry, (kind, stream)) in log.iter().zip([(0, false), (0, true), (1, false), (1, true)]) {
        let b = &entry.body;
        assert_eq!(b["model"], "happy");
        assert_eq!(entry.stream, stream);
        assert_eq!(b["stream"] == true, stream, "{b}");
        assert_eq!(b["stream_options"]["include_usage"] == true, stream, "{b}");
        let (has, lacks) = if kind == 0 { ("max_completion_tokens", "max_tokens") } else { ("max_tokens", "max_completion_tokens") };
        assert_eq!(b[has], 64, "{b}");
        assert!(b.get(lacks).is_none(), "{b}");
        assert!(entry.auth_present && !entry.headers.contains_key("authorization"));
        assert_eq!(entry.path, "/v1/chat/completions");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_stream_and_parse_for_both_adapters() {
    let server = server().await;
    script(
        &server,
        "tools",
        r#"{"then": {"text": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}, "id": "call_1"},
                                    {"name": "get_time", "arguments": {"tz": "CET"}, "id": "call_2"}]}}"#,
    );
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        let r = chat(&ep, "tools").await.expect("chat");
        let (events, e) = stream_all(&ep, "tools").await;
        assert_eq!(e, None);
        let folded = fold(&events);
        for resp in [&r, &folded] {
            let calls: Vec<(&str, &str, Value)> = resp
                .tool_calls()
                .iter()
                .map(|t| (t.id.as_str(), t.name.as_str(), serde_json::from_str(&t.arguments).expect("arguments are JSON")))
                .collect();
            assert_eq!(calls, vec![("call_1", "get_weather", json!({"city": "Paris", "unit": "c"})), ("call_2", "get_time", json!({"tz": "CET"}))]);
            assert_eq!(resp.finish_reason(), Some(FinishReason::ToolCalls));
            assert_eq!(resp.choices[0].message.content, None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_done_completes_promptly_though_the_socket_stays_open() {
    let server = server().await;
    script(&server, "open-ended", &json!({"then": {"text": WORDS, "fault": "no_done"}}).to_string());
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        let t0 = Instant::now();
        let (events, e) = stream_all(&ep, "open-ended").await;
        assert_eq!(e, None, "finish reason + usage is a complete answer");
        assert!(t0.elapsed() < Duration::from_secs(2), "did not wait for the server to close: {:?}", t0.elapsed());
        let r = fold(&events);
        assert_eq!(r.content().split_whitespace().collect::<Vec<_>>(), WORDS.split(' ').collect::<Vec<_>>());
        assert_eq!(r.finish_reason(), Some(FinishReason::Stop));
        assert!(r.usage.is_some());
    }
    assert!(server.log_for("open-ended").iter().all(|l| l.outcome == "no_done"));
}

/// A bare OpenAI-compatible server (llama.cpp / Ollama style) that never reports usage,
/// has no `id`, and ends streams either with `[DONE]` or by closing after the finish chunk.
/// Raw HTTP/1.1 on loopback; each connection serves one request and closes.
async fn bare_compat_server(done: bool) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(body) = read_request(&mut sock).await else { return };
                let stream = body.get("stream") == Some(&Value::Bool(true));
                let reply = if stream {
                    let chunk = |delta: Value, finish: Value| {
                        format!(
                            "data: {}\n\n",
                            json!({"object": "chat.completion.chunk", "model": "llama3", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                        )
                    };
                    let mut sse = chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null);
                    sse.push_str(&chunk(json!({"content": "lo!"}), Value::Null));
                    sse.push_str(&chunk(json!({}), json!("stop")));
                    if done {
                        sse.push_str("data: [DONE]\n\n");
                    }
                    format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{sse}")
                } else {
                    let b = json!({"object": "chat.completion", "model": "llama3", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}]}).to_string();
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}", b.len())
                };
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (base, task)
}

/// Read one HTTP/1.1 request with a Content-Length body; the JSON body, or `None`.
async fn read_request(sock: &mut TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        if buf.len() >= head_end + 4 + len {
            return serde_json::from_slice(&buf[head_end + 4..head_end + 4 + len]).ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compat_server_without_usage() {
    for done in [true, false] {
        let (base, task) = bare_compat_server(done).await;
        let ep = endpoint(ProviderKind::OpenaiCompatible, &base);
        let r = chat(&ep, "llama3").await.expect("chat");
        assert_eq!(r.content(), "Hello!");
        assert_eq!(r.usage, None, "no usage is reported as unknown, not as zero");
        assert_eq!(r.model, "llama3");
        let (events, e) = stream_all(&ep, "llama3").await;
        assert_eq!(e, None, "done={done}: a finish reason completes the stream even without usage");
        let f = fold(&events);
        assert_eq!(f.content(), "Hello!");
        assert_eq!(f.finish_reason(), Some(FinishReason::Stop));
        assert_eq!(f.usage, None);
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_non_streamed_replies_are_transient_failures() {
    let server = server().await;
    // Headers and half the JSON body, then the socket closes / resets / garbage instead of
    // a status line: none of these is a provider's verdict on the request, so all must be
    // kinds the router retries (never a caller error, never a silent success).
    script(&server, "half-body", r#"{"then": {"fault": {"cut_after": {"chunks": 0}}}}"#);
    script(&server, "reset-body", r#"{"then": {"fault": {"reset_after": {"chunks": 0}}}}"#);
    script(&server, "garbage-head", r#"{"then": {"fault": "garbage_headers"}}"#);
    for kind in KINDS {
        let ep = endpoint(kind, &server.base_url());
        for (model, streamed) in
            [("half-body", ErrorKind::StreamInterrupted), ("reset-body", ErrorKind::StreamInterrupted), ("garbage-head", ErrorKind::Connection)]
        {
            let e = chat(&ep, model).await.expect_err(model);
            assert_eq!(e.kind, ErrorKind::Connection, "{model}: {e}");
            let m = polyroute::resilience::decide::meaning(e.kind);
            assert!(m.retry_by_default && m.breaker != polyroute::resilience::decide::BreakerEffect::Ignore, "{model}: {e}");
            if model != "garbage-head" {
                assert!(e.request_id.is_some(), "{model}: the request id from the headers is kept: {e}");
            }
            let (_, e) = stream_all(&ep, model).await;
            let e = e.expect(model);
            assert_eq!(e.kind, streamed, "{model} stream: {e}");
        }
    }
}
