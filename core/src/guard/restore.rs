//! `mask`: stable placeholders out, the caller's values back in.
//!
//! A placeholder is `[TAG_n]`, numbered per tag in order of first appearance, the same value
//! always getting the same one within a request, so the model can refer to "[EMAIL_1]" and
//! the caller reads the address. Streams need care: a placeholder can arrive split over
//! chunks (`[EMA` + `IL_1]`), so each channel holds back a tail that could still become one
//! and releases it as soon as it cannot.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::types::{ChatResponse, Content, ContentPart, Message, StreamEvent};

#[derive(Debug, Default)]
pub(crate) struct Masks {
    by_value: HashMap<String, String>,
    values: HashMap<String, String>,
    counters: HashMap<String, u32>,
    longest: usize,
}

impl Masks {
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The placeholder for `value` (new or the one it already has).
    pub(crate) fn placeholder(&mut self, tag: &str, value: &str) -> String {
        if let Some(p) = self.by_value.get(value) {
            return p.clone();
        }
        let n = self.counters.entry(tag.to_string()).or_insert(0);
        *n += 1;
        let p = format!("[{tag}_{n}]");
        self.longest = self.longest.max(p.len());
        self.by_value.insert(value.to_string(), p.clone());
        self.values.insert(p.clone(), value.to_string());
        p
    }

    /// `text` with every known placeholder replaced by its value.
    pub(crate) fn restore(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('[') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let close = tail.char_indices().take_while(|(j, _)| *j < self.longest).find(|(_, c)| *c == ']').map(|(j, _)| j);
            match close.and_then(|j| self.values.get(&tail[..=j]).map(|v| (j, v))) {
                Some((j, v)) => {
                    out.push_str(v);
                    rest = &tail[j + 1..];
                }
                None => {
                    out.push('[');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Could `tail` (which starts with `[`) still grow into a placeholder?
    fn could_start(&self, tail: &str) -> bool {
        tail.len() < self.longest && !tail.contains(']') && self.values.keys().any(|p| p.starts_with(tail))
    }

    /// Put the values back into an assistant message (content, tool-call arguments, refusal).
    pub(crate) fn restore_message(&self, m: &mut Message) {
        match &mut m.content {
            Some(Content::Text(t)) => *t = self.restore(t),
            Some(Content::Parts(parts)) => {
                for p in parts {
                    if let ContentPart::Text { text } = p {
                        *text = self.restore(text);
                    }
                }
            }
            None => {}
        }
        for c in &mut m.tool_calls {
            c.arguments = self.restore(&c.arguments);
        }
        if let Some(r) = &mut m.refusal {
            *r = self.restore(r);
        }
    }

    pub(crate) fn restore_response(&self, r: &mut ChatResponse) {
        for c in &mut r.choices {
            self.restore_message(&mut c.message);
        }
    }
}

/// Restores a stream's events as they pass, one held-back tail per text channel.
pub(crate) struct StreamRestorer {
    masks: Arc<Masks>,
    content: String,
    refusal: String,
    tools: BTreeMap<u32, String>,
}

impl StreamRestorer {
    pub(crate) fn new(masks: Arc<Masks>) -> StreamRestorer {
        StreamRestorer { masks, content: String::new(), refusal: String::new(), tools: BTreeMap::new() }
    }

    pub(crate) fn masks(&self) -> &Masks {
        &self.masks
    }

    /// The events to hand on for `ev` (none while a tail is held, more than one at a finish).
    pub(crate) fn push(&mut self, ev: StreamEvent) -> Vec<StreamEvent> {
        match ev {
            StreamEvent::ContentDelta { text } => {
                let text = release(&self.masks, &mut self.content, &text);
                if text.is_empty() {
                    vec![]
                } else {
                    vec![StreamEvent::ContentDelta { text }]
                }
            }
            StreamEvent::RefusalDelta { text } => {
                let text = release(&self.masks, &mut self.refusal, &text);
                if text.is_empty() {
                    vec![]
                } else {
                    vec![StreamEvent::RefusalDelta { text }]
                }
            }
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                let arguments = release(&self.masks, self.tools.entry(index).or_default(), &arguments);
                if arguments.is_empty() && id.is_none() && name.is_none() {
                    vec![]
                } else {
                    vec![StreamEvent::ToolCallDelta { index, id, name, arguments }]
                }
            }
            StreamEvent::Finish { .. } => {
                let mut out = self.flush();
                out.push(ev);
                out
            }
            StreamEvent::Reset { .. } => {
                self.content.clear();
                self.refusal.clear();
                self.tools.clear();
                vec![ev]
            }
            other => vec![other],
        }
    }

    /// Whatever is still held, as deltas (a finish, or the stream's end).
    pub(crate) fn flush(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if !self.content.is_empty() {
            out.push(StreamEvent::ContentDelta { text: self.masks.restore(&std::mem::take(&mut self.content)) });
        }
        if !self.refusal.is_empty() {
            out.push(StreamEvent::RefusalDelta { text: self.masks.restore(&std::mem::take(&mut self.refusal)) });
        }
        for (index, held) in std::mem::take(&mut self.tools) {
            if !held.is_empty() {
                out.push(StreamEvent::ToolCallDelta { index, id: None, name: None, arguments: self.masks.restore(&held) });
            }
        }
        out
    }
}

/// Append `delta` to the channel, release (restored) everything that cannot be the start of
/// a placeholder any more, keep the rest.
fn release(masks: &Masks, held: &mut String, delta: &str) -> String {
    held.push_str(delta);
    let cut = match held.rfind('[') {
        Some(i) if masks.could_start(&held[i..]) => i,
        _ => held.len(),
    };
    let out = masks.restore(&held[..cut]);
    held.drain(..cut);
    out
}
