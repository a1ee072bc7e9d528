//! The inline HTTP clients (`polyroute::provider::inline`: sync callers' blocking one, async
//! callers' task-driven one) against real loopback servers: every framing and failure gives
//! what the reqwest path gives for the same bytes, pooled connections are reused and dropped
//! when the server closed them, deadlines and the caller's interrupt end a waiting request
//! with the usual typed errors, and a dropped async request closes its connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use polyroute::provider::inline;
use polyroute::provider::TransportOptions;
use polyroute::{ChatRequest, ErrorKind, Message, Policy, Router};

const KEY: &str = "sk-test-fake-canary-7f3a9c";

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub(crate) fn completion(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
    .to_string()
}

pub(crate) fn ok(body: &str, extra: &str) -> Vec<u8> {
    status(200, body, extra)
}

pub(crate) fn status(code: u16, body: &str, extra: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// How the scripted server ends a connection after answering.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum After {
    KeepOpen,
    Close,
}

/// A loopback HTTP/1.1 server answering every request with `answer`; counts connections.
/// `None` as the answer: read the request and never reply (and count the connections the
/// client closed while waiting).
pub(crate) struct Scripted {
    pub(crate) port: u16,
    pub(crate) connections: Arc<AtomicUsize>,
    pub(crate) closed_unanswered: Arc<AtomicUsize>,
}

pub(crate) fn scripted(answer: Option<Vec<u8>>, after: After) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let closed_unanswered = Arc::new(AtomicUsize::new(0));
    let (count, closed) = (connections.clone(), closed_unanswered.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            let closed = closed.clone();
            std::thread::spawn(move || {
                while read_request(&mut conn) {
                    let Some(a) = &answer else {
                        let mut b = [0u8; 1];
                        while matches!(conn.read(&mut b), Ok(n) if n > 0) {}
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    if conn.write_all(a).is_err() || after == After::Close {
                        return;
                    }
                }
            });
        }
    });
    Scripted { port, connections, closed_unanswered }
}

/// Read one request (head and `content-length` body); false when the client closed.
pub(crate) fn read_request(conn: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).is_ok()
}

pub(crate) fn router(port: u16, route_extra: &str) -> Router {
    router_with(port, route_extra, true)
}

/// With `inline_http: false`, every request takes reqwest, sync or async.
pub(crate) fn router_with(port: u16, route_extra: &str, inline_http: bool) -> Router {
    let policy = Policy::from_str(&format!(
        r#"
providers:
  p: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: "{KEY}"}}
deployments:
  d: {{provider: p, model: "m"}}
routes:
  - name: main
    deployments: [d]
    retry: {{attempts_per_deployment: 1}}
{route_extra}
"#
    ))
    .unwrap();
    Router::with_options(policy, TransportOptions { inline_http, ..TransportOptions::default() }).unwrap()
}

pub(crate) fn req() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

/// The outcome as a test compares it: the answer's text, or the error's kind.
pub(crate) fn outcome(r: polyroute::Result<polyroute::ChatResponse>) -> Result<String, ErrorKind> {
    r.map(|c| c.choices[0].message.text()).map_err(|e| e.kind)
}

#[test]
fn every_framing_and_failure_matches_the_reqwest_path() {
    let body = completion("hello");
    let chunked = {
        let (a, b) = body.split_at(10);
        format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\ntrailer: x\r\n\r\n", a.len(), b.len())
    };
    let cases: Vec<(&str, Vec<u8>, Result<String, ErrorKind>)> = vec![
        ("content-length", ok(&body, ""), Ok("hello".into())),
        ("chunked with an extension and a trailer", chunked.into_bytes(), Ok("hello".into())),
        ("HTTP/1.0 until close", format!("HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{body}").into_bytes(), Ok("hello".into())),
        ("interim 100 first", [b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), ok(&body, "")].concat(), Ok("hello".into())),
        ("truncated body", format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len() + 50).into_bytes(), Err(ErrorKind::Connection)),
        ("garbage status line", b"HTTP/1.1 abc\r\n\r\n".to_vec(), Err(ErrorKind::Connection)),
        ("not HTTP", b"hello there\r\n\r\n".to_vec(), Err(ErrorKind::Connection)),
        ("bad content-length", b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n{}".to_vec(), Err(ErrorKind::Connection)),
        ("not JSON", ok("{not json", ""), Err(ErrorKind::MalformedResponse)),
        ("server error", status(500, r#"{"error":{"message":"it broke"}}"#, ""), Err(ErrorKind::ServerError)),
        ("unauthorised, closing", status(401, "{}", "connection: close\r\n"), Err(ErrorKind::Auth)),
    ];
    let rt = runtime();
    for (name, answer, want) in cases {
        let after = if answer.starts_with(b"HTTP/1.0") || name.contains("truncated") { After::Close } else { After::KeepOpen };
        let srv = scripted(Some(answer), after);
        // A router each: some failures open the deployment's breaker.
        let before = inline::sent();
        let inline_got = outcome(inline::block_on(rt.handle(), router(srv.port, "").chat(req())));
        assert!(inline::sent() > before, "{name}: the request did not run inline");
        let before = inline::sent_async();
        let async_got = outcome(rt.block_on(router(srv.port, "").chat(req())));
        assert!(inline::sent_async() > before, "{name}: the request did not take the async inline client");
        let reqwest_got = outcome(rt.block_on(router_with(srv.port, "", false).chat(req())));
        assert_eq!(inline_got, want, "{name}: inline");
        assert_eq!(async_got, want, "{name}: async inline");
        assert_eq!(reqwest_got, want, "{name}: reqwest");
    }
}

/// How a test calls: a sync call on this thread, or an awaited one.
#[derive(Clone, Copy, Debug)]
enum Path {
    Sync,
    Async,
}

fn call(path: Path, rt: &tokio::runtime::Runtime, r: &Router) -> Result<String, ErrorKind> {
    match path {
        Path::Sync => outcome(inline::block_on(rt.handle(), r.chat(req()))),
        Path::Async => outcome(rt.block_on(r.chat(req()))),
    }
}

#[test]
fn kept_alive_connections_are_reused_and_closed_ones_are_not() {
    for path in [Path::Sync, Path::Async] {
        let rt = runtime();
        // Calls in turn to a server answering `hi` with `extra` headers, ending each
        // connection as `after` says (pausing between calls); the connections it saw.
        let connections = |extra: &str, after: After, calls: usize, pause_ms: u64| {
            let srv = scripted(Some(ok(&completion("hi"), extra)), after);
            let r = router(srv.port, "");
            for _ in 0..calls {
                assert_eq!(call(path, &rt, &r), Ok("hi".to_string()), "{path:?}");
                std::thread::sleep(Duration::from_millis(pause_ms));
            }
            srv.connections.load(Ordering::SeqCst)
        };
        assert_eq!(connections("", After::KeepOpen, 5, 0), 1, "{path:?}: one connection for five sequential calls");
        // The server closes after every answer without saying so: each next call must notice
        // the pooled connection is gone and open another, not fail.
        assert_eq!(connections("", After::Close, 3, 20), 3, "{path:?}");
        // It says so: not pooled either.
        assert_eq!(connections("connection: close\r\n", After::Close, 2, 0), 2, "{path:?}");

        // Threads (and tasks) share the pool: calls from many in turn need no more
        // connections than were ever in use at once.
        let shared = scripted(Some(ok(&completion("hi"), "")), After::KeepOpen);
        let r = Arc::new(router(shared.port, ""));
        let rt = Arc::new(rt);
        for _ in 0..4 {
            let (r, rt2) = (r.clone(), rt.clone());
            match path {
                Path::Sync => std::thread::spawn(move || call(path, &rt2, &r)).join().unwrap().unwrap(),
                Path::Async => rt.block_on(rt.spawn(async move { outcome(r.chat(req()).await) })).unwrap().unwrap(),
            };
        }
        assert_eq!(shared.connections.load(Ordering::SeqCst), 1, "{path:?}");
    }
}

#[test]
fn a_dropped_async_request_closes_its_connection_and_is_not_reused() {
    let rt = runtime();
    let srv = scripted(None, After::KeepOpen);
    let r = router(srv.port, "    timeouts: {first_token: 200ms}");
    for n in 1..=2 {
        let e = rt.block_on(r.chat(req())).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        // The timed-out attempt's future was dropped, and its socket with it: the server
        // sees the close, and the next request needs a connection of its own.
        let t0 = std::time::Instant::now();
        while srv.closed_unanswered.load(Ordering::SeqCst) < n && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(srv.closed_unanswered.load(Ordering::SeqCst), n);
        assert_eq!(srv.connections.load(Ordering::SeqCst), n);
    }
}

#[test]
fn an_unanswered_request_times_out_like_on_the_other_path() {
    let rt = runtime();
    let srv = scripted(None, After::KeepOpen);
    let r = router(srv.port, "    timeouts: {first_token: 300ms}");
    let reqwest = router_with(srv.port, "    timeouts: {first_token: 300ms}", false);
    let calls = [
        ("inline", inline::block_on(rt.handle(), r.chat(req()))),
        ("async inline", rt.block_on(r.chat(req()))),
        ("reqwest", rt.block_on(reqwest.chat(req()))),
    ];
    for (path, got) in calls {
        let e = got.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{path}: {e}");
        assert!(e.message.contains("first-token timeout"), "{path}: {}", e.message);
    }
}

#[test]
fn the_callers_interrupt_ends_a_waiting_request_as_cancelled() {
    let rt = runtime();
    let srv = scripted(None, After::KeepOpen);
    let r = router(srv.port, "    timeouts: {first_token: 20s, total: 30s}");
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    // Says "stop" the third time it is asked, i.e. after ~150 ms of waiting (it is asked
    // between waits only, never before the request is sent).
    let e = inline::scope(move || seen.fetch_add(1, Ordering::SeqCst) >= 2, || rt.block_on(r.chat(req()))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
    assert_eq!(asked.load(Ordering::SeqCst), 3, "asked between waits, and not again after it said stop");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1, "a cancelled request is not retried");
}

#[test]
fn streams_still_stream_sync_and_async() {
    let rt = runtime();
    let sse = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hel\"},\"finish_reason\":null}]}\n\n\
               data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
               data: [DONE]\n\n";
    let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{sse}", sse.len());
    let srv = scripted(Some(answer.into_bytes()), After::KeepOpen);
    let r = router(srv.port, "");
    let read = || async {
        let mut s = r.stream(req()).await.unwrap();
        let mut text = String::new();
        while let Some(ev) = s.next().await {
            if let polyroute::StreamEvent::ContentDelta { text: t } = ev.unwrap() {
                text.push_str(&t);
            }
        }
        text
    };
    let before = inline::sent_async();
    assert_eq!(inline::block_on(rt.handle(), read()), "hello");
    assert_eq!(rt.block_on(read()), "hello");
    assert!(inline::sent_async() >= before + 2, "streams take the async inline client");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1, "a stream read to its end leaves its connection for the next");
}

pub(crate) fn sse_event(text: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":{finish}}}]}}\n\n"
    )
}

#[test]
fn a_streamed_body_is_handed_over_as_it_arrives() {
    // The server sends the head and a first chunk, then waits until the test has read that
    // chunk's text before it sends the rest: a client that waited for the whole body would
    // only see the text after the 5 s fallback.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        assert!(read_request(&mut conn));
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        conn.write_all(format!("{head}{}", chunk(&sse_event("first ", None))).as_bytes()).unwrap();
        let waited = seen_rx.recv_timeout(Duration::from_secs(5)).is_ok();
        let rest = [sse_event(if waited { "then" } else { "late" }, Some("stop")), "data: [DONE]\n\n".to_string()].concat();
        conn.write_all(format!("{}0\r\n\r\n", chunk(&rest)).as_bytes()).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    });
    let rt = runtime();
    let r = router(port, "");
    let text = rt.block_on(async {
        let mut s = r.stream(req()).await.unwrap();
        let mut text = String::new();
        while let Some(ev) = s.next().await {
            if let polyroute::StreamEvent::ContentDelta { text: t } = ev.unwrap() {
                text.push_str(&t);
                let _ = seen_tx.send(());
            }
        }
        text
    });
    assert_eq!(text, "first then");
}
