//! The unified chat contract: a superset of what OpenAI, Anthropic and Gemini can express.
//!
//! Serde shapes follow OpenAI chat-completions so callers can pass what they pass to the
//! openai SDK; see each submodule for the normalisation rules (usage meaning, finish reasons).

// `pub(crate)`: `crate::error` re-exports its items as the public paths.
pub(crate) mod error;
mod fields;
pub(crate) mod kind;
mod message;
mod request;
mod response;
mod stream;
mod trace;
mod usage;

pub use message::{Content, ContentPart, ImageSource, Message, Role, ToolCall};
pub use request::{ChatRequest, RequestMetadata, ResponseFormat, Stop, Tool, ToolChoice};
pub use response::{ChatResponse, Choice, FinishReason};
pub use stream::{StreamAccumulator, StreamEvent};
pub use trace::{AttemptOutcome, AttemptTrace, CacheUse, CandidateTrace, RouteTrace, StreamHead};
pub use usage::Usage;

#[cfg(test)]
mod tests;
