//! One case against one candidate, streamed: first-token latency is the time from sending to
//! the first content event as the caller sees it; usage and cost come from the route trace.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use polyroute::types::{RouteTrace, StreamAccumulator};
use polyroute::Router;

use super::candidates::route_name;
use super::dataset::{request_hash, Case};
use super::record::{ErrorRecord, RunRecord, ToolCallRecord};

pub async fn run(router: &Router, case: &Case, deployment: &str) -> RunRecord {
    let mut req = case.request.clone();
    req.routing.route = Some(route_name(deployment));
    let started = Instant::now();
    let mut acc = StreamAccumulator::new();
    let mut ttft_ms = None;
    let mut failure = None;
    let mut trace = None;
    match router.stream(req).await {
        Err(e) => {
            trace = e.trace.as_deref().cloned();
            failure = Some(e);
        }
        Ok(mut stream) => {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => {
                        if ttft_ms.is_none() && ev.is_content() {
                            ttft_ms = Some(ms(started));
                        }
                        acc.push(&ev);
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            trace = stream.trace().or(trace);
        }
    }
    let total_ms = ms(started);
    if let Some(e) = &failure {
        trace = trace.or_else(|| e.trace.as_deref().cloned());
        if let Some(p) = &e.partial {
            // An interrupted stream's text is what was received; keep it for the report.
            acc.text.clone_from(&p.text);
        }
    }
    let (input_tokens, output_tokens) = tokens(&acc, trace.as_ref());
    // A failure that consumed no tokens cost nothing, priced or not; an answer from an
    // unpriced deployment stays unknown rather than free.
    let cost_usd = trace.as_ref().and_then(|t| t.total_cost_usd).or((failure.is_some() && input_tokens + output_tokens == 0).then_some(0.0));
    RunRecord {
        case: case.id.clone(),
        deployment: deployment.to_string(),
        request_hash: request_hash(&case.body),
        text: acc.text,
        refusal: (!acc.refusal.is_empty()).then_some(acc.refusal),
        tool_calls: acc.tool_calls.into_iter().map(|t| ToolCallRecord { name: t.name, arguments: t.arguments }).collect(),
        finish_reason: acc.finish.map(|(r, _)| r.as_str().to_string()),
        error: failure.map(|e| ErrorRecord { kind: e.kind.code().to_string(), message: e.message, status: e.status }),
        ttft_ms,
        total_ms,
        input_tokens,
        output_tokens,
        cost_usd,
        finished_at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
    }
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// The stream's own usage event when it sent one, else what the trace's attempts recorded
/// (an error's partial usage counts: those tokens were billed).
fn tokens(acc: &StreamAccumulator, trace: Option<&RouteTrace>) -> (u64, u64) {
    if let Some(u) = acc.usage {
        return (u.input_tokens, u.output_tokens);
    }
    trace.map(|t| t.attempts.iter().filter_map(|a| a.usage).fold((0, 0), |(i, o), u| (i + u.input_tokens, o + u.output_tokens))).unwrap_or((0, 0))
}
