//! The unified chat contract: a superset of what OpenAI, Anthropic and Gemini can express.
//!
//! Serde shapes follow OpenAI chat-completions so callers can pass what they pass to the
//! openai SDK; see each submodule for the normalisation rules (usage meaning, finish reasons).

mod message;
mod request;
mod response;
mod stream;
mod trace;

pub use message::{Content, ContentPart, ImageSource, Message, Role, ToolCall};
pub use request::{ChatRequest, RequestMetadata, ResponseFormat, Stop, Tool, ToolChoice};
pub use response::{ChatResponse, Choice, FinishReason, Usage};
pub use stream::{StreamAccumulator, StreamEvent};
pub use trace::{AttemptTrace, CandidateTrace, RouteTrace};

#[cfg(test)]
mod tests;
