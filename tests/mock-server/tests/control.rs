//! The control API, the attempt log, script selection, and HTTP plumbing: keep-alive,
//! pipelining, chunked request bodies, `Connection: close`, and 200 concurrent clients.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

async fn body_json(r: reqwest::Response) -> Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn scripted_sequence_over_the_control_api_and_log() {
    let srv = server().await;
    let c = client();
    let put = c
        .put(format!("{}/_mock/scripts/gpt-seq", srv.url()))
        .body(r#"{"steps":[{"status":429,"retry_after":"2"},{"status":500}],"then":{"text":"fine"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c
            .post(format!("{}/chat/completions", srv.base_url()))
            .header("authorization", "Bearer sk-test-not-a-real-key")
            .body(chat_body("gpt-seq", false))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(statuses, [429, 500, 200]);
    let log: Value = body_json(c.get(format!("{}/_mock/log", srv.url())).send().await.unwrap()).await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3);
    let outcomes: Vec<_> = log.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["status:429", "status:500", "ok"]);
    assert_eq!(log.iter().map(|e| e["step_index"].clone()).collect::<Vec<_>>(), [json!(0), json!(1), Value::Null]);
    assert_eq!(log.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    let gap = log[1]["received_ms"].as_f64().unwrap() - log[0]["received_ms"].as_f64().unwrap();
    assert!(gap >= 29.0, "gap {gap}");
    // Credentials: presence recorded, value never.
    assert_eq!(log[0]["auth_present"], true);
    assert!(log[0]["headers"].get("authorization").is_none());
    assert!(!Value::Array(log.clone()).to_string().contains("sk-test-not-a-real-key"));
    assert_eq!(log[0]["body"]["messages"][1]["content"], "hello mock");
    assert_eq!(log[0]["script"], "gpt-seq");
    // All three reused one keep-alive connection.
    assert!(log.iter().all(|e| e["connection"] == log[0]["connection"]));

    // Listing, reset, and the log restarts.
    let scripts: Value = body_json(c.get(format!("{}/_mock/scripts", srv.url())).send().await.unwrap()).await;
    assert_eq!(scripts, json!({"gpt-seq": 3}));
    assert_eq!(c.post(format!("{}/_mock/reset", srv.url())).send().await.unwrap().status(), 200);
    let log: Value = body_json(c.get(format!("{}/_mock/log", srv.url())).send().await.unwrap()).await;
    assert_eq!(log, json!([]));
    let r = c.post(format!("{}/chat/completions", srv.base_url())).body(chat_body("gpt-seq", false)).send().await.unwrap();
    assert_eq!(r.status(), 200, "script gone after reset: default reply");
    assert_eq!(srv.log()[0].seq, 0);
    assert_eq!(srv.log()[0].script, None);
}

#[tokio::test]
async fn control_api_rejects_bad_scripts_precisely() {
    let srv = server().await;
    let c = client();
    let r = c.put(format!("{}/_mock/scripts/x", srv.url())).body(r#"{"steps":[{"stauts":429}]}"#).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v = body_json(r).await;
    assert!(v["error"].as_str().unwrap().contains("stauts"), "{v}");
    let r = c.put(format!("{}/_mock/scripts/x", srv.url())).body(r#"{"steps":[{"status":42}]}"#).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(c.get(format!("{}/_mock/nope", srv.url())).send().await.unwrap().status(), 404);
    let h = body_json(c.get(format!("{}/_mock/health", srv.url())).send().await.unwrap()).await;
    assert_eq!(h["ok"], true);
    // Names with slashes (OpenRouter-style models) and DELETE.
    let r = c.put(format!("{}/_mock/scripts/openai/gpt-4o", srv.url())).body(r#"{"then":{"text":"routed"}}"#).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = body_json(c.post(format!("{}/chat/completions", srv.base_url())).body(chat_body("openai/gpt-4o", false)).send().await.unwrap()).await;
    assert_eq!(v["choices"][0]["message"]["content"], "routed");
    let v = body_json(c.delete(format!("{}/_mock/scripts/openai%2Fgpt-4o", srv.url())).send().await.unwrap()).await;
    assert_eq!(v["removed"], true);
}

#[tokio::test]
async fn header_selects_the_script_and_log_filters_by_it() {
    let srv = server().await;
    srv.set_script("outage", script(r#"{"then":{"status":503}}"#)).unwrap();
    let c = client();
    let r = c
        .post(format!("{}/chat/completions", srv.base_url()))
        .header("x-mock-script", "outage")
        .body(chat_body("any-model", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = c.post(format!("{}/chat/completions", srv.base_url())).body(chat_body("any-model", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let only: Value = body_json(c.get(format!("{}/_mock/log?script=outage", srv.url())).send().await.unwrap()).await;
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(srv.log_for("outage")[0].model.as_deref(), Some("any-model"));
}

#[tokio::test]
async fn timed_outage_then_healthy() {
    let srv = server().await;
    srv.set_script("m", script(r#"{"steps":[{"status":503,"for_ms":250}]}"#)).unwrap();
    let c = client();
    let send = || c.post(format!("{}/chat/completions", srv.base_url())).body(chat_body("m", false)).send();
    assert_eq!(send().await.unwrap().status(), 503);
    assert_eq!(send().await.unwrap().status(), 503);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn keep_alive_and_pipelining_on_one_socket() {
    let srv = server().await;
    let one = post("/v1/chat/completions", &chat_body("m", false), &[]);
    let mut both = one.clone();
    both.extend_from_slice(&post("/v1/chat/completions", &chat_body("m", true), &[]));
    let mut s = send_raw(srv.addr(), &both).await;
    let (bytes, end) = read_all(&mut s, Duration::from_millis(200)).await;
    assert_eq!(end, End::Open, "keep-alive");
    let first = parse_response(&bytes);
    assert!(first.complete);
    assert_eq!(first.json()["choices"][0]["message"]["content"], "echo: hello mock");
    let second = parse_response(&first.rest);
    assert!(second.complete);
    assert!(second.text().ends_with("data: [DONE]\n\n"));
    // and a third request, later, on the same socket
    s.write_all(&one).await.unwrap();
    let (bytes, _) = read_all(&mut s, Duration::from_millis(200)).await;
    assert_eq!(parse_response(&bytes).status, 200);
    let log = srv.log();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e.connection == log[0].connection));
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let srv = server().await;
    let mut s = send_raw(srv.addr(), &post("/v1/chat/completions", &chat_body("m", false), &[("connection", "close")])).await;
    let (bytes, end) = read_all(&mut s, Duration::from_millis(500)).await;
    assert_eq!(end, End::Eof);
    let r = parse_response(&bytes);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.complete);
}

#[tokio::test]
async fn chunked_request_bodies_and_expect_continue() {
    let srv = server().await;
    let body = chat_body("m", false);
    let (a, b) = body.split_at(body.len() / 2);
    let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n".to_vec();
    for part in [a, b] {
        req.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut s = send_raw(srv.addr(), &req).await;
    let (bytes, _) = read_all(&mut s, Duration::from_millis(200)).await;
    let bytes = bytes.strip_prefix(b"HTTP/1.1 100 Continue\r\n\r\n".as_slice()).expect("100 Continue first").to_vec();
    let r = parse_response(&bytes);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "echo: hello mock");
}

#[tokio::test]
async fn malformed_http_gets_400_and_close() {
    let srv = server().await;
    let mut s = send_raw(srv.addr(), b"NOT HTTP AT ALL\r\n\r\n").await;
    let (bytes, end) = read_all(&mut s, Duration::from_millis(500)).await;
    assert_eq!(end, End::Eof);
    assert_eq!(parse_response(&bytes).status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests() {
    let srv = server().await;
    srv.set_script("slow", script(r#"{"then":{"text":"a b c d","latency_ms":20,"chunk_delay_ms":5}}"#)).unwrap();
    let c = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let url = format!("{}/chat/completions", srv.base_url());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                let r = c.post(url).body(chat_body("slow", i % 2 == 0)).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let body = r.bytes().await.unwrap();
                let text = String::from_utf8_lossy(&body);
                assert!(text.contains("\"a b c d\"") || text.contains("[DONE]"), "{text}");
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    let log = srv.log();
    assert_eq!(log.len(), 200);
    assert!(log.iter().all(|e| e.outcome == "ok"));
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    // The script's attempts are numbered without gaps or duplicates.
    let mut attempts: Vec<u64> = log.iter().filter_map(|e| e.script_attempt).collect();
    attempts.sort();
    assert_eq!(attempts, (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_closes_connections() {
    let srv = server().await;
    srv.set_script("m", script(r#"{"then":{"fault":"hang"}}"#)).unwrap();
    let addr = srv.addr();
    let mut s = send_raw(addr, &post("/v1/chat/completions", &chat_body("m", false), &[])).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    srv.shutdown().await;
    let (_, end) = read_all(&mut s, Duration::from_secs(2)).await;
    assert_ne!(end, End::Open);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
