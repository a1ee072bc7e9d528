//! `inline::drive_for`: a sync caller's thread as the event loop of a future's plain-`http`
//! sockets (what Python's sync streams use). A stream opened and read this way is driven on
//! the calling thread (no runtime worker reads its socket), its chunks arrive as sent, its
//! connection goes back to the pool; timers and other threads wake the wait; a future that
//! stays pending comes back after the slice, for the caller's own checks.
#![cfg(unix)]

use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::StreamExt;
use polyroute::provider::inline;
use polyroute::provider::mock::MockScript;
use polyroute::{ChatRequest, Message, StreamEvent};

use crate::inline_http::runtime;

/// Poll `fut` to its end with `drive_for`, in slices as Python's `runtime::drive` does.
fn drive<F: Future>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = inline::drive_for(rt.handle(), fut.as_mut(), Duration::from_millis(50)) {
            return v;
        }
    }
}

#[test]
fn a_stream_driven_by_the_calling_thread_reads_spaced_chunks_there_and_pools_its_connection() {
    let rt = runtime();
    let srv = rt.block_on(crate::common::mock_server());
    srv.set_script("m", MockScript::from_json(r#"{"then": {"text": "a b c d", "chunk_delay_ms": 40}}"#).unwrap()).unwrap();
    let r = crate::inline_http::router(srv.addr().port(), "");
    let before = inline::sent_driven();
    for _ in 0..2 {
        let mut stream = drive(&rt, r.stream(ChatRequest::new(vec![Message::user("hi")]))).unwrap();
        let (mut text, mut at) = (String::new(), Vec::new());
        let mut record = |ev: polyroute::Result<StreamEvent>| {
            if let StreamEvent::ContentDelta { text: t } = ev.unwrap() {
                text.push_str(&t);
                at.push(Instant::now());
            }
        };
        let mut waited_here = false;
        while let Some(ev) = drive(&rt, stream.next()) {
            record(ev);
            if waited_here {
                continue;
            }
            // Take what has arrived until a read would wait: it waits on this thread's own
            // socket, not on tokio's reactor.
            loop {
                match drive(&rt, async { futures::FutureExt::now_or_never(stream.next()) }) {
                    Some(Some(ev)) => record(ev),
                    Some(None) => break,
                    None => {
                        assert!(inline::drove_sockets(), "the read would wait, but not on a socket this thread drives");
                        waited_here = true;
                        break;
                    }
                }
            }
        }
        assert!(waited_here);
        assert_eq!(text, "a b c d");
        // Each delta was handed over when its chunk came, not all at the end.
        assert!(at[3] - at[0] >= Duration::from_millis(80), "{:?}", at[3] - at[0]);
    }
    // The counters are the process's, and other tests run alongside: at least these two.
    assert!(inline::sent_driven() - before >= 2, "the streams' requests were not driven");
    let log = srv.log_for("m");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].connection, log[1].connection, "the first stream's connection went back to the pool");
}

#[test]
fn timers_and_other_threads_wake_the_wait_and_a_pending_future_comes_back_after_its_slice() {
    let rt = runtime();
    let h = rt.handle();

    let t0 = Instant::now();
    let polled = inline::drive_for(h, std::pin::pin!(std::future::pending::<()>()), Duration::from_millis(60));
    assert!(polled.is_pending());
    assert!(t0.elapsed() >= Duration::from_millis(60) && t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // A tokio timer: the runtime's timer wakes this thread, long before the slice ends.
    let t0 = Instant::now();
    let polled = inline::drive_for(h, std::pin::pin!(async { tokio::time::sleep(Duration::from_millis(80)).await }), Duration::from_secs(30));
    assert!(polled.is_ready());
    assert!(t0.elapsed() >= Duration::from_millis(80) && t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // Another thread completing what the future waits for.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let _ = tx.send(7);
    });
    let t0 = Instant::now();
    assert_eq!(inline::drive_for(h, std::pin::pin!(rx), Duration::from_secs(30)), Poll::Ready(Ok(7)));
    assert!(t0.elapsed() < Duration::from_secs(10));

    // No sockets of its own in any of these.
    assert!(!inline::drove_sockets());
}

/// A request dropped in the same poll that saw it block (its attempt timed out, a hedge won,
/// the caller gave up) takes its wait back: the driver must not be handed a descriptor that
/// is closed by then (a scenario hit this as `EBADF` from Node's epoll set), or pooled.
#[test]
fn a_request_dropped_in_the_poll_that_saw_it_block_reports_no_wait() {
    let rt = runtime();
    let srv = rt.block_on(crate::common::mock_server());
    // The first answer at once (its connection goes to the pool), then slow ones.
    srv.set_script("m", MockScript::from_json(r#"{"steps": [{}], "then": {"latency_ms": 3000}}"#).unwrap()).unwrap();
    let r = crate::inline_http::router(srv.addr().port(), "");
    drive(&rt, r.chat(ChatRequest::new(vec![Message::user("hi")]))).unwrap();
    let _rt = rt.enter();
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = Box::pin(r.chat(ChatRequest::new(vec![Message::user("hi")])));
    let (polled, waits) = inline::driven(|| fut.as_mut().poll(&mut cx));
    assert!(polled.is_pending());
    assert_eq!(waits.len(), 1, "the pooled connection's read would wait: {waits:?}");
    let (_, waits) = inline::driven(|| {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
    });
    assert_eq!(waits, vec![], "the dropped request's socket is closed: nothing to watch");
}
