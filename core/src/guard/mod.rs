//! Guards: detectors run over a request before it leaves the process, and what to do with
//! what they find (redact, mask and restore, reject, audit).
//!
//! Coverage is every text a provider would see from the caller: message content (string or
//! text parts, system and developer prompts included), tool results, assistant tool-call
//! arguments and refusals. Reasoning blocks are left alone: providers verify their signatures,
//! so an edited block fails the whole request.
//!
//! Guards run in policy order, those without `routes` before routing (they may set the data
//! class routing reads), then those limited to the chosen route. A rejection stops the rest.
//! What leaves this module for events, traces and metrics is detector names and counts, never
//! a value: the values live only in the rewritten request and, for `mask`, in [`Masks`].

mod detect;
mod restore;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::policy::{GuardAction, GuardSpec};
use crate::types::{ChatRequest, Content, ContentPart};

pub(crate) use restore::{Masks, StreamRestorer};

#[derive(Debug)]
struct Guard {
    name: String,
    action: GuardAction,
    routes: Vec<String>,
    data_class: Vec<String>,
    set_data_class: Option<String>,
    scanner: detect::Scanner,
}

/// The policy's guards, compiled once per policy load.
#[derive(Debug, Default)]
pub(crate) struct Guards {
    list: Vec<Guard>,
}

/// What one guard found in one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub guard: String,
    pub action: GuardAction,
    /// Detector name → number of values found.
    pub findings: BTreeMap<String, u64>,
}

impl Hit {
    fn counts(&self) -> String {
        self.findings.iter().map(|(d, n)| format!("{n} {d}")).collect::<Vec<_>>().join(", ")
    }

    /// The trace note: what was done, with counts only.
    pub fn note(&self) -> String {
        let verb = match self.action {
            GuardAction::Redact => "redacted",
            GuardAction::Mask => "masked",
            GuardAction::Reject => "rejected the request for",
            GuardAction::Audit => "found (audit only, nothing changed)",
        };
        format!("guard `{}` {verb} {}", self.guard, self.counts())
    }
}

/// A request after the guards.
#[derive(Debug, Default)]
pub(crate) struct Guarded {
    pub hits: Vec<Hit>,
    /// Placeholders to put back into the answer (only when a `mask` guard fired).
    pub masks: Option<Arc<Masks>>,
    /// Set when a `reject` guard fired: nothing may be sent.
    pub rejected: Option<Error>,
    /// Trace note when a guard changed the data class.
    pub class_note: Option<String>,
}

impl Guards {
    pub(crate) fn compile(specs: &[GuardSpec]) -> Result<Guards> {
        let list = specs
            .iter()
            .map(|g| {
                Ok(Guard {
                    name: g.name.clone(),
                    action: g.action,
                    routes: g.routes.clone(),
                    data_class: g.data_class.clone(),
                    set_data_class: g.set_data_class.clone(),
                    scanner: detect::Scanner::new(&g.detect, &g.patterns).map_err(|e| Error::config(format!("guard `{}`: {}", g.name, e.message)))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Guards { list })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Run the guards over `req` in place. `route_of` names the route the request would take
    /// (asked once, after the pre-routing guards, and only if a guard is limited to routes).
    pub(crate) fn apply(&self, req: &mut ChatRequest, route_of: impl Fn(&ChatRequest) -> Option<String>) -> Guarded {
        let mut out = Guarded::default();
        let mut masks = Masks::default();
        let (before, after): (Vec<&Guard>, Vec<&Guard>) = self.list.iter().partition(|g| g.routes.is_empty());
        for g in before {
            if !self.run_one(g, req, &mut masks, &mut out) {
                break;
            }
        }
        if out.rejected.is_none() && !after.is_empty() {
            if let Some(route) = route_of(req) {
                for g in after.into_iter().filter(|g| g.routes.contains(&route)) {
                    if !self.run_one(g, req, &mut masks, &mut out) {
                        break;
                    }
                }
            }
        }
        if !masks.is_empty() {
            out.masks = Some(Arc::new(masks));
        }
        out
    }

    /// One guard; `false` when it rejected the request.
    fn run_one(&self, g: &Guard, req: &mut ChatRequest, masks: &mut Masks, out: &mut Guarded) -> bool {
        if !g.data_class.is_empty() && !req.routing.data_class.as_ref().is_some_and(|c| g.data_class.contains(c)) {
            return true;
        }
        let mut findings: BTreeMap<String, u64> = BTreeMap::new();
        for_each_text(req, &mut |text: &mut String| {
            let found = g.scanner.find(text);
            if found.is_empty() {
                return;
            }
            for f in &found {
                *findings.entry(g.scanner.rules[f.rule].name.clone()).or_default() += 1;
            }
            match g.action {
                GuardAction::Redact => *text = rewrite(text, &found, |f, _| format!("[{}]", g.scanner.rules[f.rule].tag)),
                GuardAction::Mask => *text = rewrite(text, &found, |f, value| masks.placeholder(&g.scanner.rules[f.rule].tag, value)),
                GuardAction::Reject | GuardAction::Audit => {}
            }
        });
        if findings.is_empty() {
            return true;
        }
        let hit = Hit { guard: g.name.clone(), action: g.action, findings };
        if let Some(class) = &g.set_data_class {
            if req.routing.data_class.as_deref() != Some(class.as_str()) {
                let was = req.routing.data_class.as_deref().map(|c| format!(" (was `{c}`)")).unwrap_or_default();
                out.class_note = Some(format!("guard `{}` set the data class to `{class}`{was}", g.name));
                req.routing.data_class = Some(class.clone());
            }
        }
        if g.action == GuardAction::Reject {
            let msg = format!("guard `{}` rejected the request: it contains {} (nothing was sent)", g.name, hit.counts());
            out.rejected = Some(Error::new(ErrorKind::GuardRejected, msg));
        }
        out.hits.push(hit);
        out.rejected.is_none()
    }
}

/// `text` with each finding replaced by `with(finding, value)`.
fn rewrite(text: &str, found: &[detect::Finding], mut with: impl FnMut(&detect::Finding, &str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.start]);
        out.push_str(&with(f, &text[f.start..f.end]));
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Every caller-written text a provider would receive.
fn for_each_text(req: &mut ChatRequest, f: &mut impl FnMut(&mut String)) {
    for m in &mut req.messages {
        match &mut m.content {
            Some(Content::Text(t)) => f(t),
            Some(Content::Parts(parts)) => {
                for p in parts {
                    if let ContentPart::Text { text } = p {
                        f(text);
                    }
                }
            }
            None => {}
        }
        for call in &mut m.tool_calls {
            f(&mut call.arguments);
        }
        if let Some(r) = &mut m.refusal {
            f(r);
        }
    }
}

#[cfg(test)]
mod tests;
