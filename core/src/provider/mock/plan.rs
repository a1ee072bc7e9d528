//! From (step, request) to a [`ResponsePlan`]: what to send, when, and how to end.
//!
//! The plan is transport-neutral on purpose. The in-process [`super::MockTransport`] plays
//! it with tokio timers; the loopback server plays it on a socket (chunked framing, FIN,
//! RST, silence). Both therefore fail in exactly the same places. Fault semantics (which
//! chunks go out before a cut, what a stall keeps open) live here once; the per-format
//! renderers only know how their provider spells a chunk, an error and a finish; what they
//! are given and must provide is in `contract.rs`, so they never import this file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::contract::{Answer, AnswerToolCall, ErrorSpec, Renderer};
use super::request::{count_words, word_chunks, MockRequest, WireFormat};
use super::script::{Fault, MockStep};
use crate::types::Usage;

/// Everything one attempt's response does, in order.
#[derive(Debug, Clone)]
pub struct ResponsePlan {
    /// Silence before the status line (or before the drop / garbage / hang).
    pub delay_before_headers: Duration,
    pub head: PlanHead,
    /// Body pieces, each sent after its delay. Stream pieces are whole SSE events.
    pub chunks: Vec<PlanChunk>,
    pub ending: PlanEnding,
    /// Short label for logs: `ok`, `status:429`, `drop`, `hang`, `cut`, `reset`, `stall`,
    /// `malformed`, `no_done`, `no_finish`, `inband_error`, `garbage_headers`, `bad_request`.
    pub outcome: String,
}

#[derive(Debug, Clone)]
pub enum PlanHead {
    /// A normal status line and headers.
    Respond { status: u16, headers: Vec<(String, String)>, framing: BodyFraming },
    /// Close the connection without sending a byte.
    Drop,
    /// Never answer; keep the connection open.
    Hang,
    /// Send these bytes as the "response head" (not valid HTTP), then close.
    Garbage(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length` with this value (may exceed the bytes actually sent, for cuts).
    Length(usize),
    /// `Transfer-Encoding: chunked` (streams).
    Chunked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChunk {
    pub delay: Duration,
    pub data: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanEnding {
    /// The body is complete (chunked terminator sent); the connection may be reused.
    Complete,
    /// Close abruptly (FIN) without completing the body.
    Close,
    /// Reset the connection (RST).
    Reset,
    /// Send nothing more and keep the connection open.
    Hang,
}

fn renderer(f: WireFormat) -> &'static dyn Renderer {
    match f {
        WireFormat::OpenAi => &super::render_openai::OpenAiRenderer,
        WireFormat::Anthropic => &super::render_anthropic::AnthropicRenderer,
        WireFormat::Gemini => &super::render_gemini::GeminiRenderer,
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A 400 in the format's error shape, for bodies the mock cannot read.
pub fn render_bad_request(format: WireFormat, message: &str, seq: u64) -> ResponsePlan {
    let spec = ErrorSpec { status: 400, explicit_status: true, error_type: None, message: Some(message.to_string()), seq, ..Default::default() };
    let mut plan = error_plan(renderer(format), &spec, &MockStep::default());
    plan.outcome = "bad_request".into();
    plan
}

/// Plan the response to one attempt. `seq` makes ids unique and deterministic.
pub fn render(step: &MockStep, req: &MockRequest, seq: u64) -> ResponsePlan {
    let r = renderer(req.format);
    let delay = ms(step.latency_ms);
    let bare = |head: PlanHead, outcome: &str| ResponsePlan {
        delay_before_headers: delay,
        head,
        chunks: Vec::new(),
        ending: PlanEnding::Close,
        outcome: outcome.into(),
    };
    match &step.fault {
        Some(Fault::Drop) => return bare(PlanHead::Drop, "drop"),
        Some(Fault::Hang) => return bare(PlanHead::Hang, "hang"),
        Some(Fault::GarbageHeaders) => {
            let junk = Bytes::from_static(b"HTTP/1.1 2OO NOT OK\r\nthis line is not a header\r\n\x01\x02: \xff\r\n\r\n");
            return bare(PlanHead::Garbage(junk), "garbage_headers");
        }
        _ => {}
    }
    if step.is_error() {
        let spec = ErrorSpec {
            status: step.effective_status().unwrap_or(500),
            explicit_status: step.status.is_some(),
            code: step.error_code.clone(),
            error_type: step.error_type.clone(),
            message: step.error_message.clone(),
            retry_after: step.retry_after.clone(),
            retry_after_ms: step.retry_after_ms,
            model: step.model.clone().unwrap_or_else(|| req.model.clone()),
            seq,
        };
        return error_plan(r, &spec, step);
    }
    let answer = build_answer(step, req, seq);
    if req.stream {
        stream_plan(r, step, &answer)
    } else {
        json_plan(r, step, &answer, req)
    }
}

fn base_headers(r: &dyn Renderer, step: &MockStep, content_type: &str, seq: u64) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_string(), content_type.to_string())];
    if let Some(name) = r.request_id_header() {
        h.push((name.to_string(), format!("req_mock{seq}")));
    }
    if let Some(v) = &step.retry_after {
        h.push(("retry-after".into(), v.clone()));
    }
    if let Some(v) = step.retry_after_ms {
        h.push(("retry-after-ms".into(), v.to_string()));
    }
    for (k, v) in &step.headers {
        h.push((k.to_ascii_lowercase(), v.clone()));
    }
    h
}

fn error_plan(r: &dyn Renderer, spec: &ErrorSpec, step: &MockStep) -> ResponsePlan {
    let (status, body) = r.error_reply(spec);
    let body = serde_json::to_vec(&body).unwrap_or_default();
    ResponsePlan {
        delay_before_headers: ms(step.latency_ms),
        head: PlanHead::Respond { status, headers: base_headers(r, step, "application/json", spec.seq), framing: BodyFraming::Length(body.len()) },
        chunks: vec![PlanChunk { delay: Duration::ZERO, data: body.into() }],
        ending: PlanEnding::Complete,
        outcome: format!("status:{status}"),
    }
}

/// Unified finish reason for a step: explicit, else `tool_calls` when calling tools.
fn finish_for(step: &MockStep) -> String {
    step.finish_reason.clone().unwrap_or_else(|| if step.tool_calls.is_empty() { "stop" } else { "tool_calls" }.into())
}

pub(crate) fn build_answer(step: &MockStep, req: &MockRequest, seq: u64) -> Answer {
    let per = step.chunk_size.unwrap_or(1).max(1);
    let text = step.text.clone().unwrap_or_else(|| format!("echo: {}", req.last_user_text));
    let tool_calls: Vec<AnswerToolCall> = step
        .tool_calls
        .iter()
        .map(|tc| {
            let arguments = tc.arguments_text();
            let mut arg_chunks = word_chunks(&arguments, per);
            if arg_chunks.is_empty() {
                arg_chunks.push(String::new());
            }
            AnswerToolCall { id: tc.id.clone(), name: tc.name.clone(), arguments, arg_chunks }
        })
        .collect();
    let words = count_words(&text) + tool_calls.iter().map(|t| count_words(&t.name) + count_words(&t.arguments)).sum::<u64>();
    let o = step.usage.unwrap_or_default();
    let reasoning = o.reasoning_tokens.unwrap_or(0);
    let usage = Usage {
        input_tokens: o.input_tokens.unwrap_or(req.prompt_tokens),
        output_tokens: o.output_tokens.unwrap_or(words + reasoning),
        cache_read_tokens: o.cache_read_tokens.unwrap_or(0),
        cache_write_tokens: o.cache_write_tokens.unwrap_or(0),
        reasoning_tokens: reasoning,
    };
    let finish = if matches!(step.fault, Some(Fault::NoFinish)) { None } else { Some(finish_for(step)) };
    Answer {
        seq,
        model: step.model.clone().unwrap_or_else(|| req.model.clone()),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        text_chunks: word_chunks(&text, per),
        text,
        tool_calls,
        finish,
        usage,
        include_usage: req.include_usage,
    }
}

fn inband_spec(step: &MockStep, a: &Answer) -> ErrorSpec {
    let (code, error_type, message) = match &step.fault {
        Some(Fault::InbandError { code, error_type, message, .. }) => (code.clone(), error_type.clone(), message.clone()),
        _ => (None, None, None),
    };
    ErrorSpec { status: 200, code, error_type, message, model: a.model.clone(), seq: a.seq, ..Default::default() }
}

fn json_plan(r: &dyn Renderer, step: &MockStep, a: &Answer, _req: &MockRequest) -> ResponsePlan {
    // A non-streamed reply arrives only when generation is done: the whole stream's time.
    let n_content = a.text_chunks.len() + a.tool_calls.len();
    let gen = step.ttft_ms + step.chunk_delay_ms.saturating_mul(n_content.saturating_sub(1) as u64);
    let delay = ms(step.latency_ms.saturating_add(gen));
    let (status, body, outcome) = match &step.fault {
        Some(Fault::InbandError { .. }) => {
            let (_, body) = r.error_reply(&inband_spec(step, a));
            (200, body, "inband_error")
        }
        Some(Fault::NoFinish) => (step.status.unwrap_or(200), r.json_reply(a), "no_finish"),
        _ => (step.status.unwrap_or(200), r.json_reply(a), "ok"),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let half = body.len() / 2;
    let (sent, declared, ending, outcome) = match &step.fault {
        Some(Fault::CutAfter { .. }) => (&body[..half], body.len(), PlanEnding::Close, "cut"),
        Some(Fault::ResetAfter { .. }) => (&body[..half], body.len(), PlanEnding::Reset, "reset"),
        Some(Fault::StallAfter { .. }) => (&body[..half], body.len(), PlanEnding::Hang, "stall"),
        Some(Fault::MalformedAfter { .. }) => (&body[..half], half, PlanEnding::Complete, "malformed"),
        _ => (&body[..], body.len(), PlanEnding::Complete, outcome),
    };
    ResponsePlan {
        delay_before_headers: delay,
        head: PlanHead::Respond { status, headers: base_headers(r, step, "application/json", a.seq), framing: BodyFraming::Length(declared) },
        chunks: vec![PlanChunk { delay: Duration::ZERO, data: Bytes::copy_from_slice(sent) }],
        ending,
        outcome: outcome.into(),
    }
}

fn stream_plan(r: &dyn Renderer, step: &MockStep, a: &Answer) -> ResponsePlan {
    let content = r.stream_content(a);
    let n = content.len();
    let (keep, tail, ending, outcome): (usize, Vec<u8>, PlanEnding, &str) = match &step.fault {
        Some(Fault::CutAfter { chunks }) => (*chunks, Vec::new(), PlanEnding::Close, "cut"),
        Some(Fault::ResetAfter { chunks }) => (*chunks, Vec::new(), PlanEnding::Reset, "reset"),
        Some(Fault::StallAfter { chunks }) => (*chunks, Vec::new(), PlanEnding::Hang, "stall"),
        Some(Fault::MalformedAfter { chunks }) => (*chunks, r.stream_malformed(a), PlanEnding::Complete, "malformed"),
        Some(Fault::InbandError { after_chunks, .. }) => {
            (*after_chunks, r.stream_inband_error(&inband_spec(step, a)), PlanEnding::Complete, "inband_error")
        }
        Some(Fault::NoDone) => (n, r.stream_finish(a), PlanEnding::Hang, "no_done"),
        Some(Fault::NoFinish) => (n, r.stream_unfinished_tail(a), PlanEnding::Complete, "no_finish"),
        _ => {
            let mut t = r.stream_finish(a);
            t.extend(r.stream_terminator());
            (n, t, PlanEnding::Complete, "ok")
        }
    };
    let keep = keep.min(n);
    let mut chunks = Vec::with_capacity(keep + 2);
    // The preamble goes out with the headers: it is what a provider sends on accepting.
    let pre = r.stream_preamble(a);
    if !pre.is_empty() {
        chunks.push(PlanChunk { delay: Duration::ZERO, data: pre.into() });
    }
    let gap = |i: usize| if i == 0 { ms(step.ttft_ms) } else { ms(step.chunk_delay_ms) };
    for (i, c) in content.into_iter().take(keep).enumerate() {
        chunks.push(PlanChunk { delay: gap(i), data: c.into() });
    }
    if !tail.is_empty() {
        // A replacement chunk (malformed / in-band error) arrives when the next content
        // chunk would have; the regular tail follows the last content chunk at once.
        let delay = match &step.fault {
            Some(Fault::MalformedAfter { .. } | Fault::InbandError { .. }) => gap(keep),
            _ if keep == 0 => ms(step.ttft_ms),
            _ => Duration::ZERO,
        };
        chunks.push(PlanChunk { delay, data: tail.into() });
    }
    ResponsePlan {
        delay_before_headers: ms(step.latency_ms),
        head: PlanHead::Respond {
            status: step.status.unwrap_or(200),
            headers: {
                let mut h = base_headers(r, step, r.stream_content_type(), a.seq);
                h.push(("cache-control".into(), "no-cache".into()));
                h
            },
            framing: BodyFraming::Chunked,
        },
        chunks,
        ending,
        outcome: outcome.into(),
    }
}
