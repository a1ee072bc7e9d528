//! Requests driven by a host's event loop (`inline::driven`, what Python's asyncio calls
//! use): the poll reports the sockets it waits on, the host waits for them (here with
//! `poll(2)`, as asyncio's selector does) and polls again. Same answers and failures as the
//! other clients, pooled connections, and a socket left to tokio when polled where no
//! driver listens.
#![cfg(unix)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::StreamExt;
use polyroute::provider::inline::{self, Wait};
use polyroute::ErrorKind;

use crate::inline_http::{completion, ok, outcome, req, router, runtime, scripted, status, After};

struct Flag(AtomicBool, std::thread::Thread);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
        self.1.unpark();
    }
}

/// What a driven future did: its output, and how many times it waited on its sockets.
struct Driven<T> {
    out: T,
    socket_waits: usize,
}

/// A host loop in miniature: poll inside `inline::driven` (in the runtime's context);
/// while the future waits on sockets, wait for them with `poll(2)`, otherwise for its
/// waker (a timer, another task).
fn drive<F: Future>(rt: &tokio::runtime::Runtime, fut: F) -> Driven<F::Output> {
    let flag = Arc::new(Flag(AtomicBool::new(false), std::thread::current()));
    let waker = Waker::from(flag.clone());
    let mut fut = std::pin::pin!(fut);
    let mut socket_waits = 0;
    loop {
        flag.0.store(false, Ordering::SeqCst);
        let (polled, waits) = {
            let _rt = rt.enter();
            inline::driven(|| fut.as_mut().poll(&mut Context::from_waker(&waker)))
        };
        if let Poll::Ready(out) = polled {
            return Driven { out, socket_waits };
        }
        if waits.is_empty() {
            while !flag.0.load(Ordering::SeqCst) {
                std::thread::park_timeout(Duration::from_millis(50));
            }
            continue;
        }
        socket_waits += 1;
        let mut fds: Vec<libc::pollfd> =
            waits.iter().map(|w: &Wait| libc::pollfd { fd: w.fd, events: if w.write { libc::POLLOUT } else { libc::POLLIN }, revents: 0 }).collect();
        // Short slices: the waker may fire meanwhile (a timer), which poll(2) does not see.
        while !flag.0.load(Ordering::SeqCst) {
            // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) } != 0 {
                break;
            }
        }
    }
}

#[test]
fn driven_calls_answer_and_fail_as_the_other_clients_do() {
    let body = completion("hello");
    let cases = [
        ("content-length", ok(&body, ""), Ok("hello".to_string())),
        ("HTTP/1.0 until close", format!("HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{body}").into_bytes(), Ok("hello".into())),
        ("truncated body", format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len() + 50).into_bytes(), Err(ErrorKind::Connection)),
        ("not HTTP", b"hello there\r\n\r\n".to_vec(), Err(ErrorKind::Connection)),
        ("server error", status(500, r#"{"error":{"message":"it broke"}}"#, ""), Err(ErrorKind::ServerError)),
    ];
    let rt = runtime();
    for (name, answer, want) in cases {
        let after = if answer.starts_with(b"HTTP/1.0") || name.contains("truncated") { After::Close } else { After::KeepOpen };
        let srv = scripted(Some(answer), after);
        let r = router(srv.port, "");
        let before = (inline::sent(), inline::sent_async(), inline::sent_driven());
        let got = drive(&rt, r.chat(req()));
        assert_eq!(outcome(got.out), want, "{name}");
        let after = (inline::sent(), inline::sent_async(), inline::sent_driven());
        assert!(after.2 > before.2, "{name}: the request was not driven");
    }
}

#[test]
fn driven_calls_reuse_kept_alive_connections_and_time_out_without_the_loop_blocking() {
    let rt = runtime();
    let srv = scripted(Some(ok(&completion("hi"), "")), After::KeepOpen);
    let r = router(srv.port, "");
    for _ in 0..4 {
        assert_eq!(outcome(drive(&rt, r.chat(req())).out), Ok("hi".to_string()));
    }
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1, "one kept-alive connection for four calls");

    // Unanswered: the attempt's timer (tokio's) wakes the loop, the attempt ends as a
    // timeout and its socket is closed, not pooled.
    let silent = scripted(None, After::KeepOpen);
    let r = router(silent.port, "    timeouts: {first_token: 200ms}");
    let got = drive(&rt, r.chat(req()));
    // Never answered: the poll must have handed its socket to the loop to wait on.
    assert!(got.socket_waits >= 1, "the driven request reported no socket to wait on");
    let e = got.out.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("first-token timeout"), "{}", e.message);
    let t0 = std::time::Instant::now();
    while silent.closed_unanswered.load(Ordering::SeqCst) < 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(silent.closed_unanswered.load(Ordering::SeqCst), 1, "the timed-out request's socket was closed");
}

#[test]
fn a_stream_opened_driven_can_be_read_on_the_runtime() {
    let sse = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hel\"},\"finish_reason\":null}]}\n\n\
               data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n\
               data: [DONE]\n\n";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        let (mut conn, _) = listener.accept().unwrap();
        assert!(crate::inline_http::read_request(&mut conn));
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n", sse.len());
        // The first event may be read inside the driven open (first-token timeout): the
        // rest arrives later, so it is waited for where the stream is read.
        let (first, rest) = sse.split_at(sse.find("\n\n").unwrap() + 2);
        conn.write_all(format!("{head}{first}").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        conn.write_all(rest.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    });
    let rt = runtime();
    let r = router(port, "");
    let before = inline::sent_driven();
    let stream = drive(&rt, r.stream(req())).out.unwrap();
    assert!(inline::sent_driven() > before, "the stream's request was driven");
    // No driver on a runtime worker: the socket moves to tokio's reactor for the rest.
    let text = rt.block_on(rt.spawn(async move {
        let mut stream = stream;
        let mut text = String::new();
        while let Some(ev) = stream.next().await {
            if let polyroute::StreamEvent::ContentDelta { text: t } = ev.unwrap() {
                text.push_str(&t);
            }
        }
        text
    }));
    assert_eq!(text.unwrap(), "hello");
}
