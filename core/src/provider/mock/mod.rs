//! The scripted mock provider: deterministic faults for tests and benchmarks.
//!
//! One script model ([`MockScript`] / [`MockStep`] / [`Fault`]), one set of wire renderers
//! (OpenAI, Anthropic, Gemini, written from recorded real traffic) and one transport-neutral
//! [`ResponsePlan`]. Two players share them: [`MockTransport`] plays a plan in-process with
//! tokio time (no socket; for unit tests under a paused clock), and the loopback server in
//! `tests/mock-server` plays it over real HTTP/1.1. Because both play the same plan, a fault
//! looks the same to the router whichever way it reaches it.
//!
//! Layout: `script` (what to do per attempt, and the step timeline), `request` (reading a
//! provider request: route, model, stream flag, echo text, word counts), `plan` (faults and
//! timing, format-independent), `contract` (what the planner hands a renderer),
//! `render_*` (one wire format each, importing only `contract`), `transport` (in-process
//! player).

mod contract;
mod plan;
mod render_anthropic;
mod render_gemini;
mod render_openai;
mod request;
mod script;
mod transport;

#[cfg(test)]
mod tests;

pub use plan::{render, render_bad_request, BodyFraming, PlanChunk, PlanEnding, PlanHead, ResponsePlan};
pub use request::{count_words, percent_decode, route, word_chunks, MockRequest, MockRoute, WireFormat};
pub use script::{Fault, MockScript, MockStep, MockToolCall, MockUsage, ScriptRunner, Selected};
pub use transport::{mock_endpoint, MockCall, MockTransport};
