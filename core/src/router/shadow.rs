//! Shadow traffic: a copy of a request sent in the background to deployments whose answers
//! nobody is served, to compare them with the answer that was.
//!
//! Isolation is the point. A copy goes straight to the deployment's endpoint: no attempt
//! loop, no retries, no breaker, health, budget or rate-limit bookkeeping, so it can neither
//! slow the caller nor change where live traffic goes. The caller's path pays a random draw
//! and, when copying, a clone of the request and a spawn; it never waits for a copy. Copies
//! in flight are bounded per route and over the bound they are dropped, never queued. A copy
//! sees the request after the guards, and a deployment that the request's data class may not
//! reach gets no copy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use super::Deployment;
use crate::budget::calendar_period;
use crate::policy::{Period, ShadowSpec};
use crate::telemetry::{RouterEvent, Telemetry};
use crate::types::{ChatRequest, ChatResponse, ResponseFormat};

pub(crate) struct ShadowRt {
    pub spec: ShadowSpec,
    pub deployments: Vec<Arc<Deployment>>,
    route: String,
    slots: Arc<Semaphore>,
    /// (period index, USD spent in it) by the copies of this route, in this process.
    spent: Arc<Mutex<(i64, f64)>>,
    timeout: Duration,
}

/// What the caller was served, for the comparison (sent when the request succeeds).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServedAnswer {
    pub text: String,
    pub tool_calls: Vec<String>,
}

impl ServedAnswer {
    pub(crate) fn of(r: &ChatResponse) -> ServedAnswer {
        ServedAnswer { text: r.content(), tool_calls: r.tool_calls().iter().map(|t| t.name.clone()).collect() }
    }
}

/// The caller's side of the copies of one request: tells them what was served.
#[derive(Default)]
pub(crate) struct ShadowLink {
    tx: Vec<oneshot::Sender<ServedAnswer>>,
}

impl ShadowLink {
    pub(crate) fn served(self, r: &ChatResponse) {
        let a = ServedAnswer::of(r);
        for tx in self.tx {
            let _ = tx.send(a.clone());
        }
    }
}

impl std::fmt::Debug for ShadowRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowRt")
            .field("route", &self.route)
            .field("deployments", &self.deployments.iter().map(|d| d.name.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ShadowRt {
    pub(crate) fn new(route: &str, spec: ShadowSpec, deployments: Vec<Arc<Deployment>>, route_total: Duration) -> ShadowRt {
        let timeout = spec.timeout.map(|t| t.0).unwrap_or(route_total);
        ShadowRt {
            slots: Arc::new(Semaphore::new(spec.max_concurrent)),
            spec,
            deployments,
            route: route.to_string(),
            spent: Arc::new(Mutex::new((0, 0.0))),
            timeout,
        }
    }

    /// Copy `req` to the shadow deployments if this request is drawn. `skip` says why a
    /// deployment may not take this request (the route's static filters), if it may not.
    pub(crate) fn launch(
        &self,
        req: &Arc<ChatRequest>,
        request_id: &str,
        draw: f64,
        unix_now: f64,
        telemetry: &Arc<Telemetry>,
        skip: impl Fn(&Deployment) -> Option<String>,
    ) -> ShadowLink {
        let mut link = ShadowLink::default();
        if draw * 100.0 >= self.spec.percent {
            return link;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return link };
        let est = req.estimate_input_tokens();
        let out = req.max_output_tokens().map(u64::from).unwrap_or(256);
        for d in &self.deployments {
            let dropped = |reason: &str| {
                telemetry.emit(RouterEvent::ShadowDropped { route: self.route.clone(), deployment: d.name.clone(), reason: reason.to_string() })
            };
            if skip(d).is_some() {
                dropped("not_allowed");
                continue;
            }
            if !self.budget_allows(d.expected_cost(est, out).unwrap_or(0.0), unix_now) {
                dropped("budget");
                continue;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                dropped("concurrency");
                continue;
            };
            let (tx, rx) = oneshot::channel();
            link.tx.push(tx);
            let copy = Copy {
                route: self.route.clone(),
                request_id: request_id.to_string(),
                d: d.clone(),
                req: req.clone(),
                timeout: self.timeout,
                spent: self.spent.clone(),
                period: self.spec.period,
                telemetry: telemetry.clone(),
            };
            rt.spawn(async move {
                let _permit = permit;
                copy.run(rx, unix_now).await;
            });
        }
        link
    }

    fn budget_allows(&self, expected: f64, unix_now: f64) -> bool {
        let Some(limit) = self.spec.budget_usd else { return true };
        spent_in_period(&self.spent, self.spec.period, unix_now, 0.0) + expected <= limit
    }
}

/// What the copies spent in the period containing `unix_now`, after adding `add` (a new
/// period starts from zero).
fn spent_in_period(spent: &Mutex<(i64, f64)>, period: Period, unix_now: f64, add: f64) -> f64 {
    let (idx, _) = calendar_period(period, unix_now);
    let mut s = spent.lock().unwrap_or_else(|p| p.into_inner());
    if s.0 != idx {
        *s = (idx, 0.0);
    }
    s.1 += add;
    s.1
}

/// One copy to one deployment, run in the background.
struct Copy {
    route: String,
    request_id: String,
    d: Arc<Deployment>,
    req: Arc<ChatRequest>,
    timeout: Duration,
    spent: Arc<Mutex<(i64, f64)>>,
    period: Period,
    telemetry: Arc<Telemetry>,
}

impl Copy {
    async fn run(self, served: oneshot::Receiver<ServedAnswer>, unix_now: f64) {
        let t0 = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.d.endpoint.chat(&self.d.model, &self.req)).await {
            Ok(r) => r,
            Err(_) => Err(crate::error::Error::new(crate::ErrorKind::Timeout, "shadow copy timed out")),
        };
        let latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let (outcome, cost, answer) = match &result {
            Ok(r) => ("ok".to_string(), r.usage.as_ref().and_then(|u| self.d.cost(u)), Some(r)),
            Err(e) => (e.kind.code().to_string(), None, None),
        };
        if let Some(c) = cost {
            spent_in_period(&self.spent, self.period, unix_now, c);
        }
        // The caller's answer, if it succeeded (a failed or streamed request has none).
        let served = served.await.ok();
        let checks = answer.map(|a| compare(&self.req, a, served.as_ref())).unwrap_or_default();
        self.telemetry.emit(RouterEvent::ShadowFinished {
            request_id: self.request_id,
            route: self.route,
            deployment: self.d.name.clone(),
            outcome,
            latency_ms,
            cost_usd: cost,
            same_text: checks.same_text,
            same_tool_calls: checks.same_tool_calls,
            schema_valid: checks.schema_valid,
        });
    }
}

#[derive(Debug, Default, PartialEq)]
struct Checks {
    same_text: Option<bool>,
    same_tool_calls: Option<bool>,
    schema_valid: Option<bool>,
}

/// The checks `polyroute eval` applies, with the served answer as the expectation: the same
/// text (whitespace and case aside), the same tools called, and, when the request asked for a
/// JSON schema, whether the copy's answer satisfies it.
fn compare(req: &ChatRequest, copy: &ChatResponse, served: Option<&ServedAnswer>) -> Checks {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mine = ServedAnswer::of(copy);
    let schema_valid = match &req.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) if mine.tool_calls.is_empty() => {
            Some(serde_json::from_str::<serde_json::Value>(&mine.text).is_ok_and(|v| super::validate_output::schema_errors(&v, schema).is_empty()))
        }
        _ => None,
    };
    let Some(s) = served else { return Checks { schema_valid, ..Checks::default() } };
    let tools = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    Checks {
        same_text: (!s.text.is_empty() || !mine.text.is_empty()).then(|| norm(&s.text) == norm(&mine.text)),
        same_tool_calls: (!s.tool_calls.is_empty() || !mine.tool_calls.is_empty()).then(|| tools(&s.tool_calls) == tools(&mine.tool_calls)),
        schema_valid,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resp(text: &str) -> ChatResponse {
        ChatResponse::from_openai_json(json!({
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        }))
        .unwrap()
    }

    #[test]
    fn answers_are_compared_like_eval_compares_them() {
        let req = ChatRequest::from_openai_json(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        let served = ServedAnswer::of(&resp("Paris  is the capital."));
        assert_eq!(compare(&req, &resp("paris is the capital."), Some(&served)).same_text, Some(true));
        assert_eq!(compare(&req, &resp("Lyon"), Some(&served)).same_text, Some(false));
        assert_eq!(compare(&req, &resp("Lyon"), None), Checks::default(), "nothing to compare with a failed request");
        let schema = json!({"type": "json_schema", "json_schema": {"name": "c", "schema": {"type": "object", "required": ["city"]}}});
        let req = ChatRequest::from_openai_json(json!({"messages": [{"role": "user", "content": "hi"}], "response_format": schema})).unwrap();
        assert_eq!(compare(&req, &resp(r#"{"city": "Paris"}"#), None).schema_valid, Some(true));
        assert_eq!(compare(&req, &resp(r#"{"town": "Paris"}"#), None).schema_valid, Some(false));
        assert_eq!(compare(&req, &resp("Paris"), None).schema_valid, Some(false));
    }
}
