//! The Rust half of a Swift sync call, in a loop, for callgrind (`bash bench/swift/callgrind.sh`):
//! the request's JSON parsed, the routed call on this thread, the answer written as JSON text,
//! and the answer dropped (as Swift frees it). `chatJsonBlocking` by default; with
//! `FFI_CALL=answer`, `chatAnswerBlocking` (what the typed `chatBlocking` calls: the trace
//! stays unwritten). Instructions are deterministic where the VM's timings are not; the Swift
//! half is `bench/swift/run.sh`'s to time.
//!
//! `POLYROUTE_MOCK_URL=http://127.0.0.1:PORT cargo run --release -p polyroute-ffi --example ffi_calls -- N`

// As the Swift library links it: the system allocator.
fn main() {
    let url = std::env::var("POLYROUTE_MOCK_URL").expect("POLYROUTE_MOCK_URL (a running polyroute-mock-server)");
    let policy = format!(
        r#"
providers:
  m: {{kind: openai, base_url: "{url}/v1", api_key: "sk-test-not-a-real-key"}}
deployments:
  a: {{provider: m, model: bench-model, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  b: {{provider: m, model: bench-model}}
routes:
  - {{name: main, deployments: [a, b]}}
"#
    );
    let router = polyroute_ffi::Router::new(policy, None).expect("policy");
    let body = r#"{"messages":[{"content":"hello benchmark","role":"user"}]}"#;
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    calls(&router, body, n, std::env::var("FFI_CALL").is_ok_and(|v| v == "answer"));
}

/// The measured loop (callgrind collects inside it only).
#[inline(never)]
fn calls(router: &polyroute_ffi::Router, body: &str, n: usize, answer: bool) {
    for _ in 0..n {
        if answer {
            std::hint::black_box(router.chat_answer_blocking(body.to_string(), None).expect("answer"));
        } else {
            std::hint::black_box(router.chat_json_blocking(body.to_string(), None).expect("answer"));
        }
    }
}
