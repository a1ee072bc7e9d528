//! `polyroute eval` end to end: the real binary against the loopback mock server, four
//! candidates scripted differently (right and fast, wrong and slow, down, refusing), a
//! dataset with every check kind; the reports, the chart, resuming, the spend cap, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polyroute::provider::mock::MockScript;
use polyroute_mock_server::{start, MockServerHandle, ServerOptions};
use serde_json::{json, Value};

/// $1 per million input tokens, $2 per million output tokens: costs are computable by hand.
fn policy_text(v1: &str) -> String {
    format!(
        r#"
providers: {{mock: {{kind: openai, base_url: "{v1}", api_key: "sk-test-not-a-real-key"}}}}
deployments:
  good: {{provider: mock, model: good, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  sloppy: {{provider: mock, model: sloppy, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  down: {{provider: mock, model: down, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  prudish: {{provider: mock, model: prudish, pricing: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  unused: {{provider: mock, model: unused}}
routes:
  - {{name: main, deployments: [good, sloppy], retry: {{attempts_per_deployment: 3}}}}
default_route: main
"#
    )
}

/// Six cases, four words of prompt each (the mock counts prompt tokens as words).
const DATASET: &str = r#"{"id": "c-schema", "request": {"messages": [{"role": "user", "content": "answer as JSON please"}]}, "expect": {"schema": {"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}}, "required": ["answer", "n"]}}}
{"id": "c-contains", "request": {"messages": [{"role": "user", "content": "capital of France is"}]}, "expect": {"contains": ["Paris"]}}
{"id": "c-regex", "request": {"messages": [{"role": "user", "content": "start with a brace"}]}, "expect": {"regex": "^\\{"}}
{"id": "c-equals", "request": {"messages": [{"role": "user", "content": "say the exact sentence"}]}, "expect": {"equals": "The answer is Paris, probably."}}
{"id": "c-tool", "request": {"messages": [{"role": "user", "content": "weather in Paris now"}], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}, "expect": {"tool_call": "get_weather"}}
{"id": "c-refusal", "request": {"messages": [{"role": "user", "content": "something you should refuse"}]}, "expect": {"refusal": true}}
"#;

fn script(v: Value) -> MockScript {
    serde_json::from_value(v).unwrap()
}

async fn mock() -> MockServerHandle {
    let srv = start(ServerOptions { port: 0, log_capacity: 10_000 }).await.unwrap();
    let good = json!({"then": {"text": "{\"answer\": \"Paris\", \"n\": 42}", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}], "latency_ms": 10}});
    srv.set_script("good", script(good)).unwrap();
    srv.set_script("sloppy", script(json!({"then": {"text": "The answer is Paris, probably.", "latency_ms": 300}}))).unwrap();
    srv.set_script("down", script(json!({"then": {"status": 503}}))).unwrap();
    srv.set_script("prudish", script(json!({"then": {"text": "I cannot help with that.", "finish_reason": "content_filter"}}))).unwrap();
    srv
}

struct Setup {
    dir: PathBuf,
    policy: PathBuf,
    dataset: PathBuf,
}

fn setup(srv: &MockServerHandle, tag: &str, dataset: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("polyroute-eval-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, policy_text(&srv.base_url())).unwrap();
    let ds = dir.join("dataset.jsonl");
    std::fs::write(&ds, dataset).unwrap();
    Setup { dir, policy, dataset: ds }
}

fn eval(s: &Setup, out: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polyroute"))
        .arg("eval")
        .args([s.policy.to_str().unwrap(), s.dataset.to_str().unwrap(), "--out", s.dir.join(out).to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn candidate<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["candidates"].as_array().unwrap().iter().find(|c| c["deployment"] == name).unwrap_or_else(|| panic!("no {name} in {r}"))
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-12)
}

/// (width, height) from a PNG's IHDR, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compares_candidates_writes_reports_and_resumes() {
    let srv = mock().await;
    let s = setup(&srv, "main", DATASET);
    let o = eval(&s, "out", &["--deployments", "good,sloppy,down,prudish", "--concurrency", "3"]);
    ok(&o);
    let out = s.dir.join("out");
    let r = report(&out);
    assert_eq!((r["cases"].as_u64(), r["complete"].as_bool(), r["new_runs"].as_u64()), (Some(6), Some(true), Some(24)), "{r}");
    assert!(r["stopped_early"].is_null());

    let good = candidate(&r, "good");
    assert_eq!((good["passed"].as_u64(), good["runs"].as_u64(), good["errors"].as_u64()), (Some(4), Some(6), Some(0)), "{good}");
    for (check, passed) in [("schema", 1), ("contains", 1), ("regex", 1), ("equals", 0), ("tool_call", 1), ("refusal", 0)] {
        assert_eq!(good["checks"][check]["passed"], passed, "good {check}: {good}");
        assert_eq!(good["checks"][check]["total"], 1, "good {check}");
    }
    assert_eq!((good["schema"]["json_valid"].as_u64(), good["schema"]["schema_valid"].as_u64()), (Some(1), Some(1)));
    // 4 prompt words per case; answer: 4 words of text + tool name (1) + arguments (2).
    assert_eq!((good["input_tokens"].as_u64(), good["output_tokens"].as_u64()), (Some(24), Some(42)), "{good}");
    let cost = (24.0 * 1.0 + 42.0 * 2.0) / 1e6;
    assert!(close(&good["cost_usd"], cost), "{good}");
    assert!(close(&good["cost_per_pass_usd"], cost / 4.0), "{good}");
    assert!(good["latency_ms"]["first_token"]["p50"].as_f64().unwrap() >= 10.0);

    let sloppy = candidate(&r, "sloppy");
    assert_eq!(sloppy["passed"], 2, "{sloppy}"); // contains and equals
    assert_eq!((sloppy["schema"]["json_valid"].as_u64(), sloppy["schema"]["schema_valid"].as_u64()), (Some(0), Some(0)));
    assert_eq!(sloppy["checks"]["regex"]["passed"], 0);
    let slow_p50 = sloppy["latency_ms"]["total"]["p50"].as_f64().unwrap();
    assert!(slow_p50 >= 300.0 && slow_p50 > good["latency_ms"]["total"]["p95"].as_f64().unwrap(), "{sloppy}");

    let down = candidate(&r, "down");
    assert_eq!((down["passed"].as_u64(), down["errors"].as_u64(), down["answered"].as_u64()), (Some(0), Some(6), Some(0)), "{down}");
    assert_eq!(down["errors_by_kind"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 6);
    assert!(close(&down["cost_usd"], 0.0) && down["cost_per_pass_usd"].is_null(), "{down}");
    assert!(down["latency_ms"]["total"]["p50"].is_null());

    let prudish = candidate(&r, "prudish");
    assert_eq!((prudish["refusals"].as_u64(), prudish["passed"].as_u64()), (Some(6), Some(1)), "{prudish}"); // only c-refusal
    assert!(close(&prudish["refusal_rate"], 1.0));
    // One attempt per run, no fallback: the policy's route (with retries) is not used.
    assert_eq!(srv.log_for("down").len(), 6);
    assert_eq!(srv.log_for("unused").len(), 0);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| candidate | model | pass rate | passed | errors | schema valid |"), "{md}");
    assert!(md.contains("| `good` | good | 67% | 4/6 | 0 | 1/1 | 0 |"), "{md}");
    assert!(md.contains("| `down` | down | 0% | 0/6 | 6 |"), "{md}");
    assert!(md.contains("| equals | 0% (0/1) | 100% (1/1) |"), "{md}");
    assert!(md.contains("![pass rate vs cost, latency distribution](chart.png)"));
    let png = std::fs::read(out.join("chart.png")).unwrap();
    assert_eq!(png_size(&png), (1200, 500));
    let lines = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 24);

    // Again with the same --out: nothing is sent, the report is the same.
    let sent = srv.log().len();
    let o = eval(&s, "out", &["--deployments", "good,sloppy,down,prudish"]);
    ok(&o);
    assert_eq!(srv.log().len(), sent, "a resumed run sent requests");
    let again = report(&out);
    assert_eq!((again["new_runs"].as_u64(), again["resumed_runs"].as_u64()), (Some(0), Some(24)));
    assert_eq!(candidate(&again, "good")["passed"], 4);

    // --retry-errors re-sends exactly the failed runs.
    ok(&eval(&s, "out", &["--deployments", "good,down", "--retry-errors"]));
    assert_eq!(srv.log().len(), sent + 6);
    assert_eq!(report(&out)["new_runs"], 6);
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_cap_stops_new_runs_and_a_rerun_continues() {
    let srv = mock().await;
    let s = setup(&srv, "cap", DATASET);
    // One run of `good` costs 4×$1 + 7×$2 per million = $0.000018; the cap is passed after it.
    let o = eval(&s, "out", &["--deployments", "good", "--concurrency", "1", "--max-spend", "0.00001"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("stopped early"));
    let r = report(&s.dir.join("out"));
    assert_eq!((r["new_runs"].as_u64(), r["complete"].as_bool()), (Some(1), Some(false)), "{r}");
    assert!(close(&r["stopped_early"]["max_spend_usd"], 0.00001), "{r}");
    assert_eq!(candidate(&r, "good")["missing"], 5);
    assert_eq!(srv.log_for("good").len(), 1);
    let md = std::fs::read_to_string(s.dir.join("out/report.md")).unwrap();
    assert!(md.contains("**Stopped early**"), "{md}");

    // A line cut by a crash is reported and ignored; the next record starts on its own line.
    let results = s.dir.join("out/results.jsonl");
    let mut text = std::fs::read_to_string(&results).unwrap();
    text.push_str("{\"case\": \"c-tool\", \"deploy");
    std::fs::write(&results, text).unwrap();

    // The cap counts what is already spent into --out; a higher one lets the rest run.
    let o = eval(&s, "out", &["--deployments", "good", "--max-spend", "1"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("ignoring unreadable lines [2]"), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&s.dir.join("out"));
    assert_eq!((r["new_runs"].as_u64(), r["resumed_runs"].as_u64(), r["complete"].as_bool()), (Some(5), Some(1), Some(true)), "{r}");
    assert_eq!(srv.log_for("good").len(), 6);

    // A case whose request changed is sent again; its id alone does not make it done.
    std::fs::write(&s.dataset, DATASET.replace("capital of France is", "capital of Italy is")).unwrap();
    ok(&eval(&s, "out", &["--deployments", "good"]));
    assert_eq!(report(&s.dir.join("out"))["new_runs"], 1);
    assert_eq!(srv.log_for("good").len(), 7);
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_clearly_before_sending() {
    let srv = mock().await;
    let first = &DATASET[..DATASET.find('\n').unwrap() + 1];
    let bad = format!(
        "{first}{}\n{}\n{}\n",
        r#"{"id": "broken", "request": "#,
        r#"{"request": {"messages": "hi"}}"#,
        r#"{"request": {"messages": [{"role": "user", "content": "x"}]}, "expect": {"regex": "("}}"#
    );
    let s = setup(&srv, "bad", &bad);
    let o = eval(&s, "out", &["--deployments", "good"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("3 invalid lines") && err.contains("dataset.jsonl:line 2: not a valid case"), "{err}");
    assert!(err.contains("line 4: ") && err.contains("regular expression"), "{err}");
    assert!(err.contains("--skip-invalid"), "{err}");
    assert!(srv.log().is_empty(), "nothing may be sent when the dataset is invalid");

    // --skip-invalid runs the valid line and lists the others in the report.
    ok(&eval(&s, "out", &["--deployments", "good", "--skip-invalid"]));
    let r = report(&s.dir.join("out"));
    assert_eq!((r["cases"].as_u64(), r["skipped_lines"].as_array().map(Vec::len)), (Some(1), Some(3)), "{r}");
    let _ = std::fs::remove_dir_all(&s.dir);

    let s = setup(&srv, "unknown", DATASET);
    let o = eval(&s, "out", &["--deployments", "good,nope"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("unknown deployment `nope`") && err.contains("down, good, prudish, sloppy, unused"), "{err}");

    let o = eval(&s, "out", &["--concurrency", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--concurrency"));
    let _ = std::fs::remove_dir_all(&s.dir);
}
