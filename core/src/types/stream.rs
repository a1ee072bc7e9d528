//! Streaming events and the accumulator that folds them into a complete answer.
//!
//! Every provider's stream is translated into this one event vocabulary. The router relies
//! on [`StreamEvent::is_content`] to know when a stream has "committed" (something the caller
//! can see has arrived): before that, a failure can still fail over invisibly.

use serde::{Deserialize, Serialize};

use super::error::PartialOutput;
use super::message::{Content, Message, Role, ToolCall};
use super::response::{ChatResponse, Choice, FinishReason};
use super::usage::Usage;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The provider accepted the request; `model` is what it says is serving.
    Start {
        id: String,
        model: String,
    },
    ContentDelta {
        text: String,
    },
    RefusalDelta {
        text: String,
    },
    ReasoningDelta {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// A fragment of tool call number `index`. `id` and `name` come on the first fragment of
    /// a call (some providers repeat them); `arguments` fragments concatenate.
    ToolCallDelta {
        index: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default)]
        arguments: String,
    },
    Usage {
        usage: Usage,
    },
    Finish {
        reason: FinishReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        native: Option<String>,
    },
    /// Restart mode only: discard everything received so far; the answer is streamed again
    /// from another deployment.
    Reset {
        reason: String,
    },
}

impl StreamEvent {
    /// Whether the caller can see something of the answer in this event. Lifecycle events
    /// (start, usage, empty deltas) are not content and can be held back.
    pub fn is_content(&self) -> bool {
        match self {
            StreamEvent::ContentDelta { text } | StreamEvent::RefusalDelta { text } => !text.is_empty(),
            StreamEvent::ReasoningDelta { text, .. } => !text.is_empty(),
            StreamEvent::ToolCallDelta { .. } => true,
            _ => false,
        }
    }
}

/// Folds stream events into a [`ChatResponse`]. Also produces the partial output attached
/// to a `stream_interrupted` error.
#[derive(Debug, Clone, Default)]
pub struct StreamAccumulator {
    pub id: String,
    pub model: String,
    pub text: String,
    pub refusal: String,
    pub reasoning: String,
    pub reasoning_signature: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub finish: Option<(FinishReason, Option<String>)>,
    saw_content: bool,
}

impl StreamAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &StreamEvent) {
        if ev.is_content() {
            self.saw_content = true;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                if self.id.is_empty() {
                    self.id = id.clone();
                }
                if self.model.is_empty() {
                    self.model = model.clone();
                }
            }
            StreamEvent::ContentDelta { text } => self.text.push_str(text),
            StreamEvent::RefusalDelta { text } => self.refusal.push_str(text),
            StreamEvent::ReasoningDelta { text, signature } => {
                self.reasoning.push_str(text);
                if signature.is_some() {
                    self.reasoning_signature = signature.clone();
                }
            }
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                let i = *index as usize;
                while self.tool_calls.len() <= i {
                    self.tool_calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                }
                let tc = &mut self.tool_calls[i];
                if let Some(id) = id {
                    if tc.id.is_empty() {
                        tc.id = id.clone();
                    }
                }
                if let Some(n) = name {
                    if tc.name.is_empty() {
                        tc.name = n.clone();
                    }
                }
                tc.arguments.push_str(arguments);
            }
            StreamEvent::Usage { usage } => self.usage = Some(*usage),
            StreamEvent::Finish { reason, native } => self.finish = Some((*reason, native.clone())),
            StreamEvent::Reset { .. } => *self = StreamAccumulator::default(),
        }
    }

    pub fn saw_content(&self) -> bool {
        self.saw_content
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    pub fn partial(&self) -> PartialOutput {
        PartialOutput { text: self.text.clone(), tool_calls: self.tool_calls.clone(), usage: self.usage }
    }

    pub fn into_response(self) -> ChatResponse {
        let content =
            if self.text.is_empty() && (!self.tool_calls.is_empty() || !self.refusal.is_empty()) { None } else { Some(Content::Text(self.text)) };
        let mut message = Message::assistant("");
        message.role = Role::Assistant;
        message.content = content;
        message.tool_calls = self.tool_calls;
        message.refusal = (!self.refusal.is_empty()).then_some(self.refusal);
        message.reasoning_content = (!self.reasoning.is_empty()).then_some(self.reasoning);
        message.reasoning_signature = self.reasoning_signature;
        let (finish_reason, native) = match self.finish {
            Some((r, n)) => (Some(r), n),
            None => (None, None),
        };
        ChatResponse {
            id: self.id,
            object: "chat.completion".into(),
            created: 0,
            model: self.model,
            choices: vec![Choice { index: 0, message, finish_reason, native_finish_reason: native, logprobs: None }],
            usage: self.usage,
            provider: None,
            cost_usd: None,
            trace: None,
            extra: Default::default(),
        }
    }
}
