//! An answer for the typed Swift calls (`chat`, `chatBlocking`): the chat.completion JSON
//! without its trace, and the trace kept here, unwritten, until Swift reads it.
//!
//! Why: the trace is ~570 of an answer's ~950 bytes and most calls never read it. Writing it
//! as JSON was 8.5 k of the ~81 k instructions of a sync call's Rust side (callgrind, issue
//! 18 twentieth round), and Swift then read it into its tape with the rest. The JSON
//! methods (`chat_json`, `chat_json_blocking`) still return the whole text: their callers asked
//! for the JSON.
//!
//! An object rather than a record of text and trace: uniffi reads a record on the Swift side
//! through `Data` (its string copied twice over, byte reads generic), which cost more than the
//! trace saved; an object crosses as a pointer and its text as a plain string.

use polyroute::{ChatResponse, RouteTrace};

use crate::Result;

/// What a typed call returns: `json()` is the answer as `chat_json` writes it, minus `trace`;
/// `trace_json()` the trace, written when asked for.
#[derive(uniffi::Object)]
pub struct Answer {
    json: String,
    trace: Option<Box<RouteTrace>>,
    /// The trace's JSON once written: Swift's `trace` and `raw` each ask for it.
    written: std::sync::OnceLock<Option<String>>,
}

#[uniffi::export]
impl Answer {
    /// The chat.completion JSON without `trace`.
    pub fn json(&self) -> String {
        self.json.clone()
    }

    /// The trace as the core's JSON (what `chat_json`'s `trace` holds), or nil if the answer
    /// has none.
    pub fn trace_json(&self) -> Result<Option<String>> {
        if let Some(t) = self.written.get() {
            return Ok(t.clone());
        }
        let t = crate::bridge::guard(|| self.trace.as_deref().map(crate::to_json).transpose())?;
        Ok(self.written.get_or_init(|| t).clone())
    }
}

impl Answer {
    pub(crate) fn new(mut resp: ChatResponse) -> Result<std::sync::Arc<Answer>> {
        let trace = resp.trace.take();
        Ok(std::sync::Arc::new(Answer { json: crate::to_json(&resp)?, trace, written: std::sync::OnceLock::new() }))
    }
}
