//! Every fault over a raw socket, where the exact bytes and the way the connection ends are
//! observable (a client library would blur FIN vs RST or a missing terminator), plus what
//! reqwest reports for the faults a client can see.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const QUIET: Duration = Duration::from_millis(300);

async fn fault_run(fault: &str, stream: bool) -> (Vec<u8>, End, polyroute_mock_server::MockServerHandle) {
    let srv = server().await;
    srv.set_script("m", script(&format!(r#"{{"then":{{"text":"a b c d","fault":{fault}}}}}"#))).unwrap();
    let mut s = send_raw(srv.addr(), &post("/v1/chat/completions", &chat_body("m", stream), &[])).await;
    let (bytes, end) = read_all(&mut s, QUIET).await;
    (bytes, end, srv)
}

fn content_deltas(r: &RawResponse) -> Vec<String> {
    r.sse()
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_string))
        .filter(|t| !t.is_empty())
        .collect()
}

#[tokio::test]
async fn drop_closes_before_any_byte() {
    let (bytes, end, srv) = fault_run(r#""drop""#, true).await;
    assert!(bytes.is_empty());
    assert_eq!(end, End::Eof);
    let log = wait_log(&srv, |l| l.len() == 1 && l[0].finished_ms.is_some()).await;
    assert_eq!((log[0].outcome.as_str(), log[0].headers_sent_ms), ("drop", None));
    // reqwest sees a request error, not a response
    let e = client().post(format!("{}/chat/completions", srv.base_url())).body(chat_body("m", false)).send().await.unwrap_err();
    assert!(!e.is_timeout() && e.status().is_none(), "{e}");
}

#[tokio::test]
async fn hang_keeps_the_socket_open_and_logs_when_the_client_leaves() {
    let (bytes, end, srv) = fault_run(r#""hang""#, false).await;
    assert!(bytes.is_empty());
    assert_eq!(end, End::Open);
    // `fault_run` dropped its socket on return: the server notices and closes the entry.
    let log = wait_log(&srv, |l| l[0].finished_ms.is_some()).await;
    assert!(log[0].client_disconnected);
    assert_eq!(log[0].outcome, "hang");
    assert!(log[0].finished_ms.unwrap() - log[0].received_ms >= QUIET.as_millis() as f64 - 5.0);
}

#[tokio::test]
async fn cut_after_sends_n_chunks_then_fin_without_terminator() {
    let (bytes, end, srv) = fault_run(r#"{"cut_after":{"chunks":2}}"#, true).await;
    assert_eq!(end, End::Eof);
    let r = parse_response(&bytes);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "no zero-size chunk after a cut");
    assert_eq!(content_deltas(&r), ["a", " b"]);
    assert!(!r.text().contains("finish_reason\":\"stop") && !r.text().contains("[DONE]"));
    let log = wait_log(&srv, |l| l[0].finished_ms.is_some()).await;
    assert_eq!(log[0].outcome, "cut");
    // reqwest: headers arrive, the body read fails
    let resp = client().post(format!("{}/chat/completions", srv.base_url())).body(chat_body("m", true)).send().await.unwrap();
    assert!(resp.bytes().await.is_err());
}

#[tokio::test]
async fn cut_non_streamed_sends_half_the_declared_body() {
    let (bytes, end, _srv) = fault_run(r#"{"cut_after":{}}"#, false).await;
    assert_eq!(end, End::Eof);
    let r = parse_response(&bytes);
    let declared: usize = r.header("content-length").unwrap().parse().unwrap();
    assert!(!r.complete);
    assert_eq!(r.body.len(), declared / 2);
}

#[tokio::test]
async fn reset_after_sends_rst() {
    let (bytes, end, _srv) = fault_run(r#"{"reset_after":{"chunks":1}}"#, true).await;
    assert_eq!(end, End::Reset, "got {:?}", String::from_utf8_lossy(&bytes));
}

#[tokio::test]
async fn stall_after_goes_silent_with_socket_open() {
    let (bytes, end, srv) = fault_run(r#"{"stall_after":{"chunks":1}}"#, true).await;
    assert_eq!(end, End::Open);
    let r = parse_response(&bytes);
    assert_eq!(content_deltas(&r), ["a"]);
    assert!(!r.complete);
    let log = wait_log(&srv, |l| l[0].finished_ms.is_some()).await;
    assert!(log[0].headers_sent_ms.is_some() && log[0].client_disconnected);
}

#[tokio::test]
async fn malformed_after_sends_invalid_json_then_ends_cleanly() {
    let (bytes, end, _srv) = fault_run(r#"{"malformed_after":{"chunks":1}}"#, true).await;
    assert_eq!(end, End::Open, "keep-alive: the connection stays usable");
    let r = parse_response(&bytes);
    assert!(r.complete);
    let evs = r.sse();
    let last = evs.last().unwrap();
    assert!(serde_json::from_str::<Value>(&last.data).is_err(), "{}", last.data);
    assert_eq!(content_deltas(&r), ["a"]);
}

#[tokio::test]
async fn no_done_sends_finish_and_usage_and_keeps_the_connection() {
    let (bytes, end, _srv) = fault_run(r#""no_done""#, true).await;
    assert_eq!(end, End::Open);
    let r = parse_response(&bytes);
    assert!(!r.complete);
    let t = r.text();
    assert!(t.contains(r#""finish_reason":"stop""#) && t.contains(r#""usage":{"#) && !t.contains("[DONE]"));
}

#[tokio::test]
async fn no_finish_has_done_but_no_finish_reason() {
    let (bytes, _end, _srv) = fault_run(r#""no_finish""#, true).await;
    let r = parse_response(&bytes);
    assert!(r.complete);
    let t = r.text();
    assert!(t.contains("[DONE]") && !t.contains(r#""finish_reason":"stop""#));
    assert_eq!(content_deltas(&r).concat(), "a b c d");
}

#[tokio::test]
async fn inband_error_openai_and_anthropic() {
    let (bytes, _end, _srv) = fault_run(r#"{"inband_error":{"after_chunks":1,"code":"server_error","message":"boom"}}"#, true).await;
    let r = parse_response(&bytes);
    assert_eq!(r.status, 200);
    let last: Value = serde_json::from_str(&r.sse().last().unwrap().data).unwrap();
    assert_eq!(last["error"]["message"], "boom");
    assert_eq!(last["error"]["code"], "server_error");

    let srv = server().await;
    srv.set_script("c", script(r#"{"then":{"fault":{"inband_error":{"after_chunks":0}}}}"#)).unwrap();
    let body = serde_json::json!({"model": "c", "stream": true, "messages": [{"role": "user", "content": "x"}]}).to_string();
    let mut s = send_raw(srv.addr(), &post("/v1/messages", &body, &[])).await;
    let (bytes, _) = read_all(&mut s, QUIET).await;
    let evs = parse_response(&bytes).sse();
    let last = evs.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    let v: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn garbage_headers_are_not_http() {
    let (bytes, end, srv) = fault_run(r#""garbage_headers""#, false).await;
    assert_eq!(end, End::Eof);
    assert!(bytes.starts_with(b"HTTP/1.1 2OO"));
    let mut hs = [httparse::EMPTY_HEADER; 16];
    assert!(httparse::Response::new(&mut hs).parse(&bytes).is_err());
    let e = client().post(format!("{}/chat/completions", srv.base_url())).body(chat_body("m", false)).send().await.unwrap_err();
    assert!(e.status().is_none(), "{e}");
}

#[tokio::test]
async fn latency_ttft_and_chunk_delays_are_honoured() {
    let srv = server().await;
    srv.set_script("m", script(r#"{"then":{"text":"a b c","latency_ms":120,"ttft_ms":80,"chunk_delay_ms":40}}"#)).unwrap();
    let t0 = Instant::now();
    let mut resp = client().post(format!("{}/chat/completions", srv.base_url())).body(chat_body("m", true)).send().await.unwrap();
    let headers_at = t0.elapsed();
    let mut content_at = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        if String::from_utf8_lossy(&chunk).contains(r#""content":""#) && !String::from_utf8_lossy(&chunk).contains(r#""content":"""#) {
            content_at.push(t0.elapsed());
        }
    }
    assert!(headers_at >= Duration::from_millis(120), "{headers_at:?}");
    assert_eq!(content_at.len(), 3, "one network chunk per content event");
    assert!(content_at[0] >= Duration::from_millis(200), "{content_at:?}");
    assert!(content_at[2] - content_at[0] >= Duration::from_millis(80), "{content_at:?}");
    assert!(content_at[2] < Duration::from_millis(1500), "{content_at:?}");
    let log = wait_log(&srv, |l| l[0].finished_ms.is_some()).await;
    let e = &log[0];
    assert!(e.headers_sent_ms.unwrap() - e.received_ms >= 119.0);
    assert!(e.finished_ms.unwrap() - e.received_ms >= 279.0);
}

#[tokio::test]
async fn client_leaving_during_latency_is_logged() {
    let srv = server().await;
    srv.set_script("m", script(r#"{"then":{"latency_ms":5000}}"#)).unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        client().post(format!("{}/chat/completions", srv.base_url())).body(chat_body("m", false)).send(),
    )
    .await;
    assert!(r.is_err());
    let log = wait_log(&srv, |l| l[0].finished_ms.is_some()).await;
    assert!(log[0].client_disconnected);
    assert!(log[0].finished_ms.unwrap() - log[0].received_ms < 2000.0);
}
