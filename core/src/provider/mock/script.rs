//! The script model: what a mock provider does on each attempt.
//!
//! A [`MockScript`] is a timeline of [`MockStep`]s. Each attempt consumes the current step;
//! when the steps run out, `then` (default: a normal reply) repeats forever. A step lasts one
//! attempt, `times` attempts, or `for_ms` of wall time (tokio time, so paused-clock tests
//! work). Timed windows chain: the next step's window starts when the previous one expired,
//! not when the next attempt happened to arrive, so "503 for 60 s, then 429 for 10 s" means
//! exactly that no matter how often the client knocks. The first step starts when the script
//! is installed.
//!
//! The same JSON drives the in-process [`super::MockTransport`] and the loopback server in
//! `tests/mock-server`, so every language's tests describe faults the same way. Unknown
//! fields are rejected: a typo in a test script must fail loudly, not silently succeed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Everything a mock provider does, attempt after attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockScript {
    /// Consumed in order, one attempt each (or `times` attempts, or `for_ms` of time).
    pub steps: Vec<MockStep>,
    /// Served for every attempt after `steps` ran out. `None`: a normal echo reply.
    /// Its own `times` / `for_ms` are ignored: it repeats forever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<MockStep>,
}

impl MockScript {
    pub fn new(steps: Vec<MockStep>) -> Self {
        MockScript { steps, then: None }
    }
    /// The same behaviour on every attempt.
    pub fn always(step: MockStep) -> Self {
        MockScript { steps: Vec::new(), then: Some(step) }
    }
    /// What to do once `steps` are used up.
    pub fn then(mut self, step: MockStep) -> Self {
        self.then = Some(step);
        self
    }
    pub fn from_json(s: &str) -> Result<MockScript> {
        let script: MockScript = serde_json::from_str(s).map_err(|e| Error::config(format!("invalid mock script: {e}")))?;
        script.validate()?;
        Ok(script)
    }

    /// Reject scripts the renderers could only honour by guessing.
    pub fn validate(&self) -> Result<()> {
        for (i, s) in self.steps.iter().enumerate() {
            s.validate().map_err(|e| Error::config(format!("mock script step {i}: {}", e.message)))?;
        }
        if let Some(t) = &self.then {
            t.validate().map_err(|e| Error::config(format!("mock script `then`: {}", e.message)))?;
        }
        Ok(())
    }
}

/// One attempt's behaviour. Every field is optional; the default is a normal, instant reply
/// that echoes the last user message as `echo: <text>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockStep {
    // --- how long this step lasts -------------------------------------------------------
    /// Serve this step to this many attempts (default 1, or unbounded when `for_ms` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Serve this step to every attempt inside a window of this many milliseconds, starting
    /// when the step became current. With `times` too, whichever runs out first ends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,

    // --- the answer ---------------------------------------------------------------------
    /// Fixed reply text. Absent: `echo: ` + the last user message's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<MockToolCall>,
    /// Token counts to report instead of the computed ones (unified meaning; see [`MockUsage`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<MockUsage>,
    /// `stop`, `length`, `tool_calls`, `content_filter` (mapped to each wire format's own
    /// word) or any other string (sent verbatim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The model name the reply reports (default: the requested model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,

    // --- timing -------------------------------------------------------------------------
    /// Before response headers.
    #[serde(skip_serializing_if = "is_zero")]
    pub latency_ms: u64,
    /// After headers, before the first content chunk.
    #[serde(skip_serializing_if = "is_zero")]
    pub ttft_ms: u64,
    /// Between content chunks.
    #[serde(skip_serializing_if = "is_zero")]
    pub chunk_delay_ms: u64,
    /// Words per content chunk (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<usize>,

    // --- errors -------------------------------------------------------------------------
    /// HTTP status. Non-2xx renders the wire format's error body. When absent but an
    /// `error_code`/`error_type` is set, a status fitting that code is chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Raw `Retry-After` header value: `"2"`, `"0.5"` or an HTTP date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// Sent as `retry-after-ms` (OpenAI) and as Gemini's `RetryInfo.retryDelay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Extra response headers, on success and error replies alike.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,

    // --- transport and stream faults ----------------------------------------------------
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A tool call the mock model makes. `arguments` may be a JSON value (sent as its JSON text)
/// or a string (sent verbatim, so a test can script invalid JSON arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockToolCall {
    pub name: String,
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// Call id (default: generated, `call_mock_…` / `toolu_mock_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl MockToolCall {
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        MockToolCall { name: name.into(), arguments, id: None }
    }
    /// The arguments as JSON text. Values are written with a space after `:` and `,`, as
    /// models usually write them, so arguments stream in several word-sized pieces.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::String(s) => s.clone(),
            v => {
                let mut out = Vec::new();
                let mut ser = serde_json::Serializer::with_formatter(&mut out, SpacedFormatter);
                match v.serialize(&mut ser) {
                    Ok(()) => String::from_utf8(out).unwrap_or_else(|_| v.to_string()),
                    Err(_) => v.to_string(),
                }
            }
        }
    }
}

/// `{"a": 1, "b": [1, 2]}`: compact JSON with Python's separators.
struct SpacedFormatter;

impl serde_json::ser::Formatter for SpacedFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// Usage override, in Polyroute's unified meaning (`input_tokens` includes cache reads and
/// writes, `output_tokens` includes reasoning). Each renderer converts to its wire format's
/// convention (Anthropic excludes cache tokens from `input_tokens`, Gemini reports thoughts
/// apart), so the same override yields the same unified `Usage` through every adapter.
/// Unset fields keep their computed value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockUsage {
    #[serde(alias = "prompt_tokens", skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(alias = "completion_tokens", skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// What goes wrong. JSON: `"drop"`, `"hang"`, `"no_done"`, `"no_finish"`,
/// `"garbage_headers"`, or `{"cut_after": {"chunks": 2}}`, `{"stall_after": {"chunks": 1}}`,
/// `{"reset_after": {"chunks": 1}}`, `{"malformed_after": {"chunks": 0}}`,
/// `{"inband_error": {"after_chunks": 1, "code": "...", "type": "...", "message": "..."}}`.
///
/// "Chunks" are content chunks: the events carrying a piece of the answer (text deltas,
/// tool-call deltas). Framing events (OpenAI's role chunk, Anthropic's `message_start`,
/// `content_block_start` and `ping`) always precede them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Close the TCP connection before sending any byte of the response.
    Drop,
    /// Accept the request and never answer; the socket stays open.
    Hang,
    /// Send N content chunks, then close the connection (FIN) with no finish reason and no
    /// stream terminator. Non-streamed: headers and half the body, then close.
    CutAfter {
        #[serde(default)]
        chunks: usize,
    },
    /// As `cut_after`, but the connection is reset (RST) instead of closed.
    ResetAfter {
        #[serde(default)]
        chunks: usize,
    },
    /// Send N content chunks, then go silent with the socket open. Non-streamed: headers and
    /// half the body, then silence.
    StallAfter {
        #[serde(default)]
        chunks: usize,
    },
    /// Send N content chunks, then one that is not valid JSON, then end the stream cleanly.
    /// Non-streamed: a truncated JSON body with a matching Content-Length.
    MalformedAfter {
        #[serde(default)]
        chunks: usize,
    },
    /// Finish reason and usage but no terminator (`[DONE]`, `message_stop`), and the
    /// connection stays open: the client must stop reading on its own.
    NoDone,
    /// Content, then the terminator / EOF without any finish reason.
    NoFinish,
    /// A 200 stream that sends N content chunks and then the format's in-band error event.
    /// Non-streamed: a 200 whose body is the format's error object.
    InbandError {
        #[serde(default)]
        after_chunks: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A response whose status line and headers are not valid HTTP.
    GarbageHeaders,
}

impl MockStep {
    /// A normal reply (echo).
    pub fn ok() -> Self {
        MockStep::default()
    }
    /// A normal reply with fixed text.
    pub fn text(t: impl Into<String>) -> Self {
        MockStep { text: Some(t.into()), ..Default::default() }
    }
    /// An HTTP error with the format's default error body for that status.
    pub fn error(status: u16) -> Self {
        MockStep { status: Some(status), ..Default::default() }
    }
    pub fn faulty(fault: Fault) -> Self {
        MockStep { fault: Some(fault), ..Default::default() }
    }
    pub fn repeat(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }
    pub fn lasting_ms(mut self, ms: u64) -> Self {
        self.for_ms = Some(ms);
        self
    }
    pub fn with_text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    pub fn with_error_code(mut self, code: impl Into<String>) -> Self {
        self.error_code = Some(code.into());
        self
    }
    pub fn with_error_type(mut self, t: impl Into<String>) -> Self {
        self.error_type = Some(t.into());
        self
    }
    pub fn with_error_message(mut self, m: impl Into<String>) -> Self {
        self.error_message = Some(m.into());
        self
    }
    pub fn with_retry_after(mut self, raw: impl Into<String>) -> Self {
        self.retry_after = Some(raw.into());
        self
    }
    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }
    pub fn with_latency_ms(mut self, ms: u64) -> Self {
        self.latency_ms = ms;
        self
    }
    pub fn with_ttft_ms(mut self, ms: u64) -> Self {
        self.ttft_ms = ms;
        self
    }
    pub fn with_chunk_delay_ms(mut self, ms: u64) -> Self {
        self.chunk_delay_ms = ms;
        self
    }
    pub fn with_chunk_size(mut self, words: usize) -> Self {
        self.chunk_size = Some(words);
        self
    }
    pub fn with_tool_call(mut self, name: impl Into<String>, arguments: Value) -> Self {
        self.tool_calls.push(MockToolCall::new(name, arguments));
        self
    }
    pub fn with_usage(mut self, usage: MockUsage) -> Self {
        self.usage = Some(usage);
        self
    }
    pub fn with_finish_reason(mut self, r: impl Into<String>) -> Self {
        self.finish_reason = Some(r.into());
        self
    }
    pub fn with_model(mut self, m: impl Into<String>) -> Self {
        self.model = Some(m.into());
        self
    }

    /// Whether this step answers with an error body (as opposed to a reply or a fault).
    pub fn is_error(&self) -> bool {
        self.effective_status().is_some_and(|s| !(200..300).contains(&s))
    }

    /// The status to send: explicit, or implied by an error code/type, or none (200).
    pub fn effective_status(&self) -> Option<u16> {
        if self.status.is_some() {
            return self.status;
        }
        if self.error_code.is_none() && self.error_type.is_none() {
            return None;
        }
        let key = self.error_code.as_deref().or(self.error_type.as_deref()).unwrap_or_default();
        Some(status_for_code(key))
    }

    fn validate(&self) -> Result<()> {
        if let Some(s) = self.status {
            if !(200..=599).contains(&s) {
                return Err(Error::config(format!("status {s} is not a final HTTP status (200..=599)")));
            }
        }
        if self.chunk_size == Some(0) {
            return Err(Error::config("chunk_size must be at least 1"));
        }
        if self.times == Some(0) {
            return Err(Error::config("times must be at least 1"));
        }
        if self.for_ms == Some(0) {
            return Err(Error::config("for_ms must be at least 1"));
        }
        for (k, v) in &self.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() || http::HeaderValue::from_str(v).is_err() {
                return Err(Error::config(format!("header `{k}` is not a valid HTTP header (use fault garbage_headers for that)")));
            }
        }
        if let Some(r) = &self.retry_after {
            if http::HeaderValue::from_str(r).is_err() {
                return Err(Error::config("retry_after is not a valid header value"));
            }
        }
        for tc in &self.tool_calls {
            if tc.name.is_empty() {
                return Err(Error::config("tool call needs a name"));
            }
        }
        Ok(())
    }
}

/// A status implied by a provider error code or type, so `{"error_code": "insufficient_quota"}`
/// needs no status. Overload is 503 here; the Anthropic renderer turns it into 529.
fn status_for_code(code: &str) -> u16 {
    match code {
        "insufficient_quota"
        | "quota_exceeded"
        | "billing_hard_limit_reached"
        | "rate_limit_exceeded"
        | "rate_limit_error"
        | "RESOURCE_EXHAUSTED" => 429,
        "overloaded_error" | "server_overloaded" | "UNAVAILABLE" => 503,
        "context_length_exceeded" | "invalid_request_error" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
        "invalid_api_key" | "authentication_error" | "UNAUTHENTICATED" => 401,
        "permission_error" | "permission_denied" | "PERMISSION_DENIED" => 403,
        "model_not_found" | "not_found_error" | "NOT_FOUND" => 404,
        "request_too_large" => 413,
        "timeout_error" | "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    }
}

/// The step chosen for one attempt.
#[derive(Debug, Clone)]
pub struct Selected {
    pub step: Arc<MockStep>,
    /// Index into `steps`, or `None` when `then` (or the default reply) was served.
    pub step_index: Option<usize>,
    /// 0-based count of attempts this script has seen before this one.
    pub attempt: u64,
}

#[derive(Debug)]
struct RunnerState {
    cursor: usize,
    /// When the current step became current (start of its `for_ms` window).
    step_began: Instant,
    /// Attempts served by the current step.
    used: u32,
    attempts: u64,
}

/// A script plus its position. Thread-safe: concurrent attempts each get their own step.
#[derive(Debug)]
pub struct ScriptRunner {
    steps: Vec<Arc<MockStep>>,
    then: Arc<MockStep>,
    state: Mutex<RunnerState>,
}

impl ScriptRunner {
    /// Install a script; its timeline starts now.
    pub fn new(script: MockScript) -> Self {
        ScriptRunner {
            steps: script.steps.into_iter().map(Arc::new).collect(),
            then: Arc::new(script.then.unwrap_or_default()),
            state: Mutex::new(RunnerState { cursor: 0, step_began: Instant::now(), used: 0, attempts: 0 }),
        }
    }

    /// The step for the next attempt, advancing the timeline.
    pub fn next(&self) -> Selected {
        let now = Instant::now();
        // A poisoned lock only means another attempt panicked mid-update; the counters are
        // still meaningful, so keep serving rather than cascade the panic.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = st.attempts;
        st.attempts += 1;
        while let Some(step) = self.steps.get(st.cursor) {
            if let Some(ms) = step.for_ms {
                let end = st.step_began + Duration::from_millis(ms);
                if now >= end {
                    st.cursor += 1;
                    st.used = 0;
                    st.step_began = end;
                    continue;
                }
            }
            st.used += 1;
            let exhausted = match (step.times, step.for_ms) {
                (Some(t), _) => st.used >= t,
                (None, Some(_)) => false,
                (None, None) => true,
            };
            let sel = Selected { step: step.clone(), step_index: Some(st.cursor), attempt };
            if exhausted {
                st.cursor += 1;
                st.used = 0;
                st.step_began = now;
            }
            return sel;
        }
        Selected { step: self.then.clone(), step_index: None, attempt }
    }

    /// Attempts served so far.
    pub fn attempts(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        let s = MockScript::from_json(
            r#"{"steps":[
                {"status":429,"retry_after":"2"},
                {"fault":"drop"},
                {"fault":{"cut_after":{"chunks":2}}},
                {"fault":{"inband_error":{"after_chunks":1,"type":"overloaded_error"}}},
                {"tool_calls":[{"name":"f","arguments":{"a":1}}],"usage":{"prompt_tokens":5}}
            ],"then":{"text":"fine"}}"#,
        )
        .unwrap();
        assert_eq!(s.steps[0].status, Some(429));
        assert_eq!(s.steps[1].fault, Some(Fault::Drop));
        assert_eq!(s.steps[2].fault, Some(Fault::CutAfter { chunks: 2 }));
        assert!(matches!(&s.steps[3].fault, Some(Fault::InbandError { after_chunks: 1, error_type: Some(t), .. }) if t == "overloaded_error"));
        assert_eq!(s.steps[4].tool_calls[0].arguments_text(), r#"{"a": 1}"#);
        assert_eq!(MockToolCall::new("f", serde_json::json!({"a": [1, 2], "b": {}})).arguments_text(), r#"{"a": [1, 2], "b": {}}"#);
        assert_eq!(MockToolCall::new("f", serde_json::json!("{bad")).arguments_text(), "{bad");
        assert_eq!(s.steps[4].usage.unwrap().input_tokens, Some(5));
        // round trip
        let back: MockScript = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn typos_and_nonsense_are_rejected() {
        assert!(MockScript::from_json(r#"{"steps":[{"stauts":429}]}"#).is_err());
        assert!(MockScript::from_json(r#"{"steps":[{"fault":"explode"}]}"#).is_err());
        assert!(MockScript::from_json(r#"{"steps":[{"status":99}]}"#).is_err());
        assert!(MockScript::from_json(r#"{"steps":[{"chunk_size":0}]}"#).is_err());
        assert!(MockScript::from_json(r#"{"steps":[{"headers":{"x-a":"b\r\nc: d"}}]}"#).is_err());
        assert!(MockScript::from_json(r#"{"then":{"times":0}}"#).is_err());
    }

    #[test]
    fn implied_status() {
        assert_eq!(MockStep::default().with_error_code("insufficient_quota").effective_status(), Some(429));
        assert_eq!(MockStep::default().with_error_type("overloaded_error").effective_status(), Some(503));
        assert_eq!(MockStep::ok().effective_status(), None);
        assert!(MockStep::error(500).is_error());
        assert!(!MockStep::ok().with_status(201).is_error());
    }

    #[test]
    fn counted_steps_then_default() {
        let r = ScriptRunner::new(MockScript::new(vec![MockStep::error(429), MockStep::error(500).repeat(2)]));
        let seq: Vec<_> = (0..5).map(|_| r.next()).map(|s| (s.step_index, s.step.status)).collect();
        assert_eq!(seq, vec![(Some(0), Some(429)), (Some(1), Some(500)), (Some(1), Some(500)), (None, None), (None, None)]);
        assert_eq!(r.attempts(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn timed_windows_chain_from_install() {
        let r = ScriptRunner::new(
            MockScript::new(vec![MockStep::error(503).lasting_ms(60_000), MockStep::error(429).lasting_ms(10_000)]).then(MockStep::text("ok")),
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(r.next().step.status, Some(503));
        assert_eq!(r.next().step.status, Some(503));
        tokio::time::advance(Duration::from_secs(56)).await; // t = 61 s: second window
        let s = r.next();
        assert_eq!((s.step_index, s.step.status), (Some(1), Some(429)));
        tokio::time::advance(Duration::from_secs(9)).await; // t = 70 s: both windows over
        let s = r.next();
        assert_eq!((s.step_index, s.step.text.as_deref()), (None, Some("ok")));
    }

    #[tokio::test(start_paused = true)]
    async fn timed_window_skipped_when_nobody_came() {
        let r = ScriptRunner::new(MockScript::new(vec![MockStep::error(503).lasting_ms(100), MockStep::error(500)]));
        tokio::time::advance(Duration::from_millis(150)).await;
        assert_eq!(r.next().step_index, Some(1));
        assert_eq!(r.next().step_index, None);
    }

    #[tokio::test(start_paused = true)]
    async fn times_and_window_whichever_first() {
        let r = ScriptRunner::new(MockScript::new(vec![MockStep::error(503).lasting_ms(1_000).repeat(2)]));
        assert_eq!(r.next().step_index, Some(0));
        assert_eq!(r.next().step_index, Some(0));
        assert_eq!(r.next().step_index, None);
    }
}
