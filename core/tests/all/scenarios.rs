//! Rust runner for the language-neutral scenarios in `tests/scenarios/*.json`.
//!
//! The same files are replayed by the Python, Node and Swift runners; a difference between
//! languages is a bug in a binding. So this runner deliberately works the way a binding's
//! runner must: it turns every outcome into the JSON the bindings hand their callers
//! (`ChatResponse`, `Error`, `StreamEvent`, `RouteTrace`, `deployments()`), and compares that
//! JSON with the scenario's `expect` using only rules written down in
//! `tests/scenarios/README.md`. No Rust-only field or type is consulted.
//!
//! It runs every scenario (one loopback mock server, reset between scenarios; a fresh router
//! per scenario) and reports every mismatch at the end, so one broken scenario does not hide
//! another. `POLYROUTE_SCENARIO=<substring>` runs only matching scenarios.
//!
//! Unknown keys anywhere in a scenario are an error (serde `deny_unknown_fields`): a typo in
//! an expectation must fail loudly instead of silently checking nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use polyroute::provider::mock::MockScript;
use polyroute::resilience::breaker::BreakerState;
use polyroute::{ChatRequest, Error, Router};
use polyroute_mock_server::{start, MockServerHandle, ServerOptions};
use serde::Deserialize;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// The scenario format (see tests/scenarios/README.md and scenario.schema.json).

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    #[allow(dead_code)]
    covers: Vec<String>,
    policy: Value,
    #[serde(default)]
    scripts: BTreeMap<String, Value>,
    steps: Vec<Step>,
    #[serde(default, rename = "$schema")]
    #[allow(dead_code)]
    schema: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    chat: Option<Value>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    sleep_ms: Option<u64>,
    #[serde(default)]
    set_breaker: Option<SetBreaker>,
    #[serde(default)]
    scripts: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    repeat: Option<u32>,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBreaker {
    deployment: String,
    state: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

impl Range {
    fn check(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// `n` or `[min, max]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Count {
    Exact(u64),
    Between([u64; 2]),
}

impl Count {
    fn check(&self, v: u64) -> bool {
        match *self {
            Count::Exact(n) => v == n,
            Count::Between([a, b]) => (a..=b).contains(&v),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceExpect {
    route: Option<String>,
    matched_contains: Option<String>,
    strategy: Option<String>,
    degraded: Option<bool>,
    #[serde(default)]
    notes_contain: Vec<String>,
    #[serde(default)]
    explanation_contains: Vec<String>,
    /// deployment → substring of its skip reason, or null for "not skipped".
    #[serde(default)]
    skipped: BTreeMap<String, Option<String>>,
    /// Per attempt index: bounds on `backoff_ms` (null: unchecked).
    #[serde(default)]
    backoff_ms: Vec<Option<Range>>,
    /// Per attempt index: the `hedge` flag.
    #[serde(default)]
    hedge: Vec<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    // --- per result -------------------------------------------------------------------
    outcome: Option<String>,
    content: Option<String>,
    content_prefix: Option<String>,
    model: Option<String>,
    /// A string, or null for "nobody served it".
    #[serde(default, deserialize_with = "some_value")]
    served_by: Option<Value>,
    served_by_one_of: Option<Vec<String>>,
    attempts: Option<Vec<[String; 2]>>,
    attempt_count: Option<Count>,
    status: Option<u16>,
    provider_code: Option<String>,
    partial_text: Option<String>,
    partial_text_prefix: Option<String>,
    finished: Option<bool>,
    resets: Option<u64>,
    elapsed_ms: Option<Range>,
    /// `{"approx": x, "tol": y}`, or null for "unknown".
    #[serde(default, deserialize_with = "some_value")]
    cost_usd: Option<Value>,
    usage: Option<BTreeMap<String, u64>>,
    tool_calls: Option<Vec<String>>,
    budget: Option<String>,
    retry_after_s: Option<Range>,
    trace: Option<TraceExpect>,
    // --- over all repetitions of the step ----------------------------------------------
    served_by_counts: Option<BTreeMap<String, Count>>,
    // --- state after the step ----------------------------------------------------------
    server_hits: Option<BTreeMap<String, Count>>,
    gaps_ms: Option<BTreeMap<String, Vec<Range>>>,
    server_outcomes: Option<BTreeMap<String, Vec<String>>>,
    server_saw: Option<BTreeMap<String, Vec<String>>>,
    server_never_saw: Option<BTreeMap<String, Vec<String>>>,
    breakers: Option<BTreeMap<String, String>>,
}

/// Keeps an explicit `null` as `Some(Value::Null)` (absent stays `None`).
fn some_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------
// One request's result, as JSON: what every binding can produce.

#[derive(Debug)]
struct Outcome {
    /// `ChatResponse` JSON (chat success).
    response: Option<Value>,
    /// `Error` JSON (failure, from `chat`, from `stream`, or ending a stream).
    error: Option<Value>,
    /// Stream events as JSON, in order (streams only).
    events: Option<Vec<Value>>,
    /// `RouteTrace` JSON: the response's, the error's, or the ended stream's.
    trace: Value,
    elapsed_ms: f64,
}

impl Outcome {
    fn kind(&self) -> String {
        match &self.error {
            Some(e) => e["kind"].as_str().unwrap_or("?").to_string(),
            None => "ok".into(),
        }
    }

    /// Chat: the first choice's message content. Stream: content deltas after the last reset.
    fn content(&self) -> Option<String> {
        if let Some(evs) = &self.events {
            let start = evs.iter().rposition(|e| e["type"] == "reset").map_or(0, |i| i + 1);
            let text: String = evs[start..].iter().filter(|e| e["type"] == "content_delta").filter_map(|e| e["text"].as_str()).collect();
            return Some(text);
        }
        self.response.as_ref().and_then(|r| r.pointer("/choices/0/message/content")).and_then(Value::as_str).map(str::to_string)
    }

    fn model(&self) -> Option<String> {
        if let Some(evs) = &self.events {
            return evs.iter().rev().find(|e| e["type"] == "start").and_then(|e| e["model"].as_str()).map(str::to_string);
        }
        self.response.as_ref().and_then(|r| r["model"].as_str()).map(str::to_string)
    }

    fn usage(&self) -> Option<Value> {
        if let Some(evs) = &self.events {
            return evs.iter().rev().find(|e| e["type"] == "usage").map(|e| e["usage"].clone());
        }
        self.response.as_ref().map(|r| r["usage"].clone())
    }

    fn tool_call_names(&self) -> Vec<String> {
        if let Some(evs) = &self.events {
            return evs.iter().filter(|e| e["type"] == "tool_call_delta").filter_map(|e| e["name"].as_str()).map(str::to_string).collect();
        }
        self.response
            .as_ref()
            .and_then(|r| r.pointer("/choices/0/message/tool_calls"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|t| t.pointer("/function/name").and_then(Value::as_str)).map(str::to_string).collect())
            .unwrap_or_default()
    }
}

fn err_json(e: &Error) -> Value {
    serde_json::to_value(e).unwrap_or_else(|_| json!({"kind": "?"}))
}

async fn run_chat(router: &Router, body: &Value) -> Outcome {
    let t0 = Instant::now();
    let result = match ChatRequest::from_openai_json(body.clone()) {
        Ok(req) => router.chat(req).await,
        Err(e) => Err(e),
    };
    let elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(resp) => {
            let v = serde_json::to_value(&resp).unwrap_or(Value::Null);
            let trace = v["trace"].clone();
            Outcome { response: Some(v), error: None, events: None, trace, elapsed_ms }
        }
        Err(e) => {
            let v = err_json(&e);
            let trace = v["trace"].clone();
            Outcome { response: None, error: Some(v), events: None, trace, elapsed_ms }
        }
    }
}

async fn run_stream(router: &Router, body: &Value) -> Outcome {
    let t0 = Instant::now();
    let opened = match ChatRequest::from_openai_json(body.clone()) {
        Ok(req) => router.stream(req).await,
        Err(e) => Err(e),
    };
    let mut s = match opened {
        Ok(s) => s,
        Err(e) => {
            let v = err_json(&e);
            let trace = v["trace"].clone();
            return Outcome { response: None, error: Some(v), events: Some(Vec::new()), trace, elapsed_ms: t0.elapsed().as_secs_f64() * 1000.0 };
        }
    };
    let mut events = Vec::new();
    let mut error = None;
    while let Some(item) = s.next().await {
        match item {
            Ok(ev) => events.push(serde_json::to_value(&ev).unwrap_or(Value::Null)),
            Err(e) => {
                error = Some(err_json(&e));
                break;
            }
        }
    }
    let elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let trace = match &error {
        Some(e) if !e["trace"].is_null() => e["trace"].clone(),
        _ => s.trace().map(|t| serde_json::to_value(t).unwrap_or(Value::Null)).unwrap_or(Value::Null),
    };
    Outcome { response: None, error, events: Some(events), trace, elapsed_ms }
}

// ---------------------------------------------------------------------------------------
// Comparison.

fn check_result(exp: &Expect, o: &Outcome, errs: &mut Vec<String>) {
    let mut bad = |what: &str, want: String, got: String| errs.push(format!("{what}: expected {want}, got {got}"));
    if let Some(want) = &exp.outcome {
        let got = o.kind();
        if &got != want {
            let msg = o.error.as_ref().and_then(|e| e["message"].as_str()).unwrap_or("").to_string();
            bad("outcome", want.clone(), format!("{got} ({msg})"));
        }
    }
    if let Some(want) = &exp.content {
        let got = o.content();
        if got.as_deref() != Some(want.as_str()) {
            bad("content", format!("{want:?}"), format!("{got:?}"));
        }
    }
    if let Some(want) = &exp.content_prefix {
        let got = o.content().unwrap_or_default();
        if !got.starts_with(want.as_str()) {
            bad("content_prefix", format!("{want:?}"), format!("{got:?}"));
        }
    }
    if let Some(want) = &exp.model {
        let got = o.model();
        if got.as_deref() != Some(want.as_str()) {
            bad("model", want.clone(), format!("{got:?}"));
        }
    }
    let served = o.trace["served_by"].clone();
    if let Some(want) = &exp.served_by {
        if &served != want {
            bad("served_by", want.to_string(), served.to_string());
        }
    }
    if let Some(set) = &exp.served_by_one_of {
        if !served.as_str().is_some_and(|s| set.iter().any(|x| x == s)) {
            bad("served_by_one_of", format!("{set:?}"), served.to_string());
        }
    }
    let attempts: Vec<[String; 2]> = o.trace["attempts"]
        .as_array()
        .map(|a| a.iter().map(|a| [a["deployment"].as_str().unwrap_or("?").to_string(), a["outcome"].as_str().unwrap_or("?").to_string()]).collect())
        .unwrap_or_default();
    if let Some(want) = &exp.attempts {
        if &attempts != want {
            bad("attempts", format!("{want:?}"), format!("{attempts:?}"));
        }
    }
    if let Some(c) = &exp.attempt_count {
        if !c.check(attempts.len() as u64) {
            bad("attempt_count", format!("{c:?}"), attempts.len().to_string());
        }
    }
    let e = o.error.clone().unwrap_or(Value::Null);
    if let Some(want) = exp.status {
        if e["status"].as_u64() != Some(u64::from(want)) {
            bad("status", want.to_string(), e["status"].to_string());
        }
    }
    if let Some(want) = &exp.provider_code {
        if e["provider_code"].as_str() != Some(want.as_str()) {
            bad("provider_code", want.clone(), e["provider_code"].to_string());
        }
    }
    let partial = e.pointer("/partial/text").and_then(Value::as_str).map(str::to_string);
    if let Some(want) = &exp.partial_text {
        if partial.as_deref() != Some(want.as_str()) {
            bad("partial_text", format!("{want:?}"), format!("{partial:?}"));
        }
    }
    if let Some(want) = &exp.partial_text_prefix {
        if !partial.as_deref().is_some_and(|p| p.starts_with(want.as_str())) {
            bad("partial_text_prefix", format!("{want:?}"), format!("{partial:?}"));
        }
    }
    if let Some(want) = exp.finished {
        let got = o.events.as_ref().is_some_and(|evs| evs.iter().any(|e| e["type"] == "finish"));
        if got != want {
            bad("finished", want.to_string(), got.to_string());
        }
    }
    if let Some(want) = exp.resets {
        let got = o.events.as_ref().map_or(0, |evs| evs.iter().filter(|e| e["type"] == "reset").count() as u64);
        if got != want {
            bad("resets", want.to_string(), got.to_string());
        }
    }
    if let Some(r) = &exp.elapsed_ms {
        if !r.check(o.elapsed_ms) {
            bad("elapsed_ms", format!("{r:?}"), format!("{:.1}", o.elapsed_ms));
        }
    }
    if let Some(want) = &exp.cost_usd {
        let got = &o.trace["total_cost_usd"];
        match want {
            Value::Null => {
                if !got.is_null() {
                    bad("cost_usd", "null".into(), got.to_string());
                }
            }
            w => {
                let approx = w["approx"].as_f64().unwrap_or(f64::NAN);
                let tol = w["tol"].as_f64().unwrap_or(1e-9);
                if !got.as_f64().is_some_and(|g| (g - approx).abs() <= tol) {
                    bad("cost_usd", format!("{approx} ± {tol}"), got.to_string());
                }
            }
        }
    }
    if let Some(want) = &exp.usage {
        let got = o.usage().unwrap_or(Value::Null);
        for (k, v) in want {
            if got[k].as_u64() != Some(*v) {
                bad(&format!("usage.{k}"), v.to_string(), got[k].to_string());
            }
        }
    }
    if let Some(want) = &exp.tool_calls {
        let got = o.tool_call_names();
        if &got != want {
            bad("tool_calls", format!("{want:?}"), format!("{got:?}"));
        }
    }
    if let Some(want) = &exp.budget {
        if e.pointer("/budget/budget").and_then(Value::as_str) != Some(want.as_str()) {
            bad("budget", want.clone(), e["budget"].to_string());
        }
    }
    if let Some(r) = &exp.retry_after_s {
        if !e["retry_after"].as_f64().is_some_and(|v| r.check(v)) {
            bad("retry_after_s", format!("{r:?}"), e["retry_after"].to_string());
        }
    }
    if let Some(t) = &exp.trace {
        check_trace(t, &o.trace, errs);
    }
}

fn check_trace(t: &TraceExpect, tr: &Value, errs: &mut Vec<String>) {
    let mut bad = |what: &str, want: String, got: String| errs.push(format!("trace.{what}: expected {want}, got {got}"));
    if let Some(w) = &t.route {
        if tr["route"].as_str() != Some(w.as_str()) {
            bad("route", w.clone(), tr["route"].to_string());
        }
    }
    if let Some(w) = &t.matched_contains {
        if !tr["matched"].as_str().is_some_and(|m| m.contains(w.as_str())) {
            bad("matched_contains", w.clone(), tr["matched"].to_string());
        }
    }
    if let Some(w) = &t.strategy {
        if tr["strategy"].as_str() != Some(w.as_str()) {
            bad("strategy", w.clone(), tr["strategy"].to_string());
        }
    }
    if let Some(w) = t.degraded {
        let got = tr["degraded"].as_bool().unwrap_or(false);
        if got != w {
            bad("degraded", w.to_string(), got.to_string());
        }
    }
    let notes: Vec<&str> = tr["notes"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    for n in &t.notes_contain {
        if !notes.iter().any(|x| x.contains(n.as_str())) {
            bad("notes_contain", format!("{n:?}"), format!("{notes:?}"));
        }
    }
    let expl = tr["explanation"].as_str().unwrap_or("");
    for n in &t.explanation_contains {
        if !expl.contains(n.as_str()) {
            bad("explanation_contains", format!("{n:?}"), format!("{expl:?}"));
        }
    }
    let cands = tr["candidates"].as_array().cloned().unwrap_or_default();
    for (dep, want) in &t.skipped {
        let Some(c) = cands.iter().find(|c| c["deployment"] == dep.as_str()) else {
            bad("skipped", format!("candidate `{dep}`"), "no such candidate".into());
            continue;
        };
        let got = c["skipped"].as_str();
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(g)) if g.contains(w.as_str()) => {}
            _ => bad(&format!("skipped.{dep}"), format!("{want:?}"), format!("{got:?}")),
        }
    }
    let attempts = tr["attempts"].as_array().cloned().unwrap_or_default();
    for (i, r) in t.backoff_ms.iter().enumerate() {
        let Some(r) = r else { continue };
        let got = attempts.get(i).and_then(|a| a["backoff_ms"].as_f64());
        if !got.is_some_and(|g| r.check(g)) {
            bad(&format!("backoff_ms[{i}]"), format!("{r:?}"), format!("{got:?}"));
        }
    }
    for (i, w) in t.hedge.iter().enumerate() {
        let got = attempts.get(i).map(|a| a["hedge"].as_bool().unwrap_or(false));
        if got != Some(*w) {
            bad(&format!("hedge[{i}]"), w.to_string(), format!("{got:?}"));
        }
    }
}

/// Every string in a request body (compared as text, so escaping differences between JSON
/// writers do not matter).
fn body_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| body_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| body_strings(x, out)),
        _ => {}
    }
}

fn check_state(exp: &Expect, srv: &MockServerHandle, router: &Router, errs: &mut Vec<String>) {
    if let Some(hits) = &exp.server_hits {
        for (script, c) in hits {
            let n = srv.log_for(script).len() as u64;
            if !c.check(n) {
                errs.push(format!("server_hits.{script}: expected {c:?}, got {n}"));
            }
        }
    }
    if let Some(gaps) = &exp.gaps_ms {
        for (script, ranges) in gaps {
            let log = srv.log_for(script);
            let got: Vec<f64> = log.windows(2).map(|w| w[1].received_ms - w[0].received_ms).collect();
            if got.len() != ranges.len() || !ranges.iter().zip(&got).all(|(r, g)| r.check(*g)) {
                errs.push(format!("gaps_ms.{script}: expected {ranges:?}, got {got:?}"));
            }
        }
    }
    if let Some(outs) = &exp.server_outcomes {
        for (script, want) in outs {
            let got: Vec<String> = srv.log_for(script).iter().map(|l| l.outcome.clone()).collect();
            if &got != want {
                errs.push(format!("server_outcomes.{script}: expected {want:?}, got {got:?}"));
            }
        }
    }
    for (want, map) in [(true, &exp.server_saw), (false, &exp.server_never_saw)] {
        for (script, needles) in map.iter().flatten() {
            let mut strings = Vec::new();
            for e in srv.log_for(script) {
                body_strings(&e.body, &mut strings);
            }
            for n in needles {
                if strings.iter().any(|s| s.contains(n.as_str())) != want {
                    let key = if want { "server_saw" } else { "server_never_saw" };
                    errs.push(format!("{key}.{script}: `{n}` {} the request bodies", if want { "is not in" } else { "is in" }));
                }
            }
        }
    }
    if let Some(b) = &exp.breakers {
        let deps = serde_json::to_value(router.deployments()).unwrap_or(Value::Null);
        for (dep, want) in b {
            let got = deps.as_array().and_then(|a| a.iter().find(|d| d["deployment"] == dep.as_str())).map(|d| d["breaker"]["state"].clone());
            if got.as_ref().and_then(Value::as_str) != Some(want.as_str()) {
                errs.push(format!("breakers.{dep}: expected {want}, got {got:?}"));
            }
        }
    }
}

fn breaker_state(s: &str) -> Option<BreakerState> {
    serde_json::from_value(Value::String(s.to_string())).ok()
}

// ---------------------------------------------------------------------------------------
// Driving.

/// `POLYROUTE_SCENARIO_DIR` overrides the folder (used to check the runner itself against
/// deliberately wrong scenarios).
fn scenario_dir() -> PathBuf {
    match std::env::var_os("POLYROUTE_SCENARIO_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios"),
    }
}

fn substitute(policy: &Value, srv: &MockServerHandle) -> String {
    policy.to_string().replace("$MOCK_ROOT", &srv.url()).replace("$MOCK", &srv.base_url())
}

fn install(srv: &MockServerHandle, scripts: &BTreeMap<String, Value>) -> Result<(), String> {
    for (name, s) in scripts {
        let script: MockScript = serde_json::from_value(s.clone()).map_err(|e| format!("script `{name}`: {e}"))?;
        srv.set_script(name, script).map_err(|e| format!("script `{name}`: {e}"))?;
    }
    Ok(())
}

async fn run_scenario(sc: &Scenario, srv: &MockServerHandle) -> Vec<String> {
    let mut errs = Vec::new();
    srv.reset();
    if let Err(e) = install(srv, &sc.scripts) {
        return vec![e];
    }
    let router = match Router::from_policy_str(&substitute(&sc.policy, srv)) {
        Ok(r) => r,
        Err(e) => return vec![format!("policy rejected: {e}")],
    };
    for (i, step) in sc.steps.iter().enumerate() {
        let mut step_errs = Vec::new();
        let actions = [step.chat.is_some(), step.stream.is_some(), step.sleep_ms.is_some(), step.set_breaker.is_some(), step.scripts.is_some()];
        if actions.iter().filter(|a| **a).count() > 1 {
            errs.push(format!("step {i}: more than one action"));
            continue;
        }
        if let Some(ms) = step.sleep_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(sb) = &step.set_breaker {
            match breaker_state(&sb.state) {
                Some(st) => {
                    if let Err(e) = router.set_breaker(&sb.deployment, st) {
                        step_errs.push(format!("set_breaker: {e}"));
                    }
                }
                None => step_errs.push(format!("set_breaker: unknown state `{}`", sb.state)),
            }
        }
        if let Some(scripts) = &step.scripts {
            if let Err(e) = install(srv, scripts) {
                step_errs.push(e);
            }
        }
        let request = step.chat.as_ref().map(|b| (false, b)).or(step.stream.as_ref().map(|b| (true, b)));
        let default_expect = Expect::default();
        let exp = step.expect.as_ref().unwrap_or(&default_expect);
        if let Some((stream, body)) = request {
            let mut served: BTreeMap<String, u64> = BTreeMap::new();
            for rep in 0..step.repeat.unwrap_or(1) {
                let o = if stream { run_stream(&router, body).await } else { run_chat(&router, body).await };
                let key = o.trace["served_by"].as_str().unwrap_or("null").to_string();
                *served.entry(key).or_default() += 1;
                let mut e = Vec::new();
                check_result(exp, &o, &mut e);
                if !e.is_empty() {
                    step_errs.extend(e.into_iter().map(|m| format!("repetition {rep}: {m}")));
                    step_errs.push(format!("repetition {rep}: trace was {}", o.trace));
                    break;
                }
            }
            if let Some(counts) = &exp.served_by_counts {
                for (dep, c) in counts {
                    let n = served.get(dep).copied().unwrap_or(0);
                    if !c.check(n) {
                        step_errs.push(format!("served_by_counts.{dep}: expected {c:?}, got {n} (all: {served:?})"));
                    }
                }
            }
        }
        check_state(exp, srv, &router, &mut step_errs);
        errs.extend(step_errs.into_iter().map(|m| format!("step {i}: {m}")));
    }
    errs
}

fn load_scenarios() -> Vec<(String, Result<Scenario, String>)> {
    let dir = scenario_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".schema.json")))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let parsed = std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Scenario>(&t).map_err(|e| format!("invalid scenario file: {e}")))
                .and_then(|s| if s.name == stem { Ok(s) } else { Err(format!("`name` is `{}` but the file is `{stem}.json`", s.name)) });
            (stem, parsed)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes() {
    let filter = std::env::var("POLYROUTE_SCENARIO").ok();
    let scenarios = load_scenarios();
    let custom_dir = std::env::var_os("POLYROUTE_SCENARIO_DIR").is_some();
    assert!(filter.is_some() || custom_dir || scenarios.len() >= 40, "expected at least 40 scenarios, found {}", scenarios.len());
    let srv = start(ServerOptions::default()).await.expect("mock server starts");
    let mut failures = Vec::new();
    let mut ran = 0;
    let t0 = Instant::now();
    for (name, sc) in &scenarios {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        let ts = Instant::now();
        let errs = match sc {
            Ok(sc) => run_scenario(sc, &srv).await,
            Err(e) => vec![e.clone()],
        };
        let ms = ts.elapsed().as_millis();
        if errs.is_empty() {
            eprintln!("ok    {name} ({ms} ms)");
        } else {
            eprintln!("FAIL  {name} ({ms} ms)");
            for e in &errs {
                eprintln!("      {e}");
            }
            failures.push(name.clone());
        }
    }
    eprintln!("{ran} scenarios, {} failed, {:.1} s", failures.len(), t0.elapsed().as_secs_f64());
    assert!(ran > 0, "no scenario matched the filter");
    assert!(failures.is_empty(), "failed scenarios: {failures:?}");
}

/// The runner's own checks must be able to fail: a scenario whose expectations are wrong
/// is reported, not passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_is_reported() {
    let srv = start(ServerOptions::default()).await.expect("mock server starts");
    let sc: Scenario = serde_json::from_value(json!({
        "name": "self_check",
        "description": "expects the wrong deployment, content, attempts and hits",
        "policy": {
            "providers": {"mock": {"kind": "openai", "base_url": "$MOCK", "api_key": "sk-test-not-a-real-key"}},
            "deployments": {"a": {"provider": "mock", "model": "self-a"}, "b": {"provider": "mock", "model": "self-b"}},
            "routes": [{"name": "main", "deployments": ["a", "b"]}]
        },
        "scripts": {"self-a": {}},
        "steps": [{"chat": {"messages": [{"role": "user", "content": "hello mock"}]},
                   "expect": {"served_by": "b", "content": "nope", "attempts": [["b", "ok"]],
                              "server_hits": {"self-a": 2}, "breakers": {"a": "open"}}}]
    }))
    .unwrap();
    let errs = run_scenario(&sc, &srv).await;
    for what in ["served_by", "content", "attempts", "server_hits.self-a", "breakers.a"] {
        assert!(errs.iter().any(|e| e.contains(what)), "`{what}` mismatch not reported: {errs:?}");
    }
    // and a typo in an expectation is rejected at load time
    let typo = serde_json::from_value::<Expect>(json!({"servd_by": "a"}));
    assert!(typo.is_err());
}
