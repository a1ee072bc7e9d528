//! What every host binding needs from the core and used to write for itself: request parsing
//! from JSON, results and errors to JSON, a cancel token, a stream handle that keeps its trace,
//! the `route` shortcut, breaker-state names, and the panic guard every entry point runs under.
//!
//! Why here and not in the bindings: Python, Node and Swift each had a copy of these, and the
//! copies had drifted (different cancel messages, a trace kept by one on error and not by the
//! others, breaker-state typos reported as `config` in one and `ValueError` in another). A
//! binding now holds only type conversion, error mapping, async bridging, host callbacks and
//! handle lifetime; everything that parses or decides what a value means is in this module.
//!
//! Shape: data crosses every host boundary as the core's own serde JSON (text for Node and
//! Swift, a `Value` walked into native objects for Python), so the functions come in a text
//! and a `Value` flavour. Nothing here creates or enters a runtime: futures are returned for
//! the host to spawn on its own (`'static` where a host must spawn them).

mod cancel;
pub mod openai_http;
pub mod openai_in;
mod panic;
mod stream;
pub mod wire;

pub use cancel::{cancelled_error, CancelGuard, CancelToken};
pub use panic::{catch, catch_future, panic_error, panic_message};
#[doc(hidden)]
pub use panic::{debug_panic, debug_panic_async};
pub use stream::StreamHandle;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::resilience::breaker::BreakerState;
use crate::types::ChatRequest;

/// Top-level request fields the core understands by name: the fields it models, the OpenAI
/// chat-completions parameters it forwards verbatim (in `extra`), and the `route` shortcut.
///
/// Hosts whose idiom is named arguments (Python keywords) check a caller's names against this
/// list, so a typo (`temprature=`) fails before anything is sent instead of riding along to
/// the provider as an unknown field. Raw request bodies are not checked against it: unknown
/// fields there are kept in [`ChatRequest::extra`], as the openai SDKs allow.
pub const REQUEST_FIELDS: &[&str] = &[
    // Modelled by `ChatRequest`.
    "messages",
    "model",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "stream",
    "polyroute",
    // OpenAI parameters forwarded verbatim to OpenAI-shaped providers.
    "metadata",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "reasoning_effort",
    "verbosity",
    "service_tier",
    "store",
    "modalities",
    "audio",
    "prediction",
    "prompt_cache_key",
    "safety_identifier",
    "web_search_options",
    "stream_options",
    // The route shortcut (see [`request_from_value`]).
    "route",
];

/// Parse a request body given as JSON text (what Node's `JSON.stringify` and Swift's encoder
/// send). Text that is not JSON is the caller's `invalid_request`, like any other bad body.
pub fn request_from_json(text: &str) -> Result<ChatRequest> {
    let v: Value = serde_json::from_str(text).map_err(|e| Error::invalid_request(format!("the request is not valid JSON: {e}")))?;
    request_from_value(v)
}

/// Parse an OpenAI-shaped request body (validated by [`ChatRequest::from_openai_json`]),
/// after applying the `route` shortcut: a top-level `"route": "name"` asks for that route, as
/// `"polyroute": {"route": "name"}` does (and wins over it). It is taken out of the body, so it
/// is never forwarded to a provider. `"route": null` means "not given".
pub fn request_from_value(mut v: Value) -> Result<ChatRequest> {
    apply_route_shortcut(&mut v)?;
    ChatRequest::from_openai_json(v)
}

fn apply_route_shortcut(v: &mut Value) -> Result<()> {
    let Some(body) = v.as_object_mut() else { return Ok(()) };
    let route = match body.remove("route") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(Error::invalid_request(format!(
                "invalid chat request: route: expected the name of a route (a string), got {}",
                json_type(&other)
            )))
        }
    };
    let routing = body.entry("polyroute").or_insert_with(|| Value::Object(Default::default()));
    if routing.is_null() {
        *routing = Value::Object(Default::default());
    }
    match routing.as_object_mut() {
        Some(m) => {
            m.insert("route".into(), Value::String(route));
            Ok(())
        }
        None => Err(Error::invalid_request(format!("invalid chat request: polyroute: expected an object, got {}", json_type(routing)))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Any core result (response, plan, event, trace, deployment or budget status, policy) as
/// JSON text. Core types are plain serde data, so this fails only on a core bug; that is
/// reported as `malformed_response` rather than a panic in a host process.
pub fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    crate::json_out::to_string(v).map_err(|e| Error::malformed(format!("cannot encode the result as JSON: {e}")))
}

/// [`to_json`] as a `Value`, for hosts that build native objects from it.
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::malformed(format!("cannot encode the result as JSON: {e}")))
}

/// A core error in its serde shape (`{"kind": "rate_limited", "message": ..., "status": 429,
/// ...}`): the one form every binding hands its host, so a field added to [`Error`] reaches
/// every language unchanged. Never fails: should a field ever not serialise, kind and message
/// still get through.
pub fn error_to_json(e: &Error) -> Value {
    serde_json::to_value(e).unwrap_or_else(|_| serde_json::json!({"kind": e.kind, "message": e.message}))
}

/// Every breaker state, in the order the error message lists them.
const BREAKER_STATES: [BreakerState; 5] =
    [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen, BreakerState::ForcedOpen, BreakerState::Disabled];

/// A breaker state by its name (`closed`, `open`, `half_open`, `forced_open`, `disabled`), as
/// operators type it; anything else is a `config` error listing the names.
pub fn parse_breaker_state(name: &str) -> Result<BreakerState> {
    BREAKER_STATES.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
        let names: Vec<&str> = BREAKER_STATES.iter().map(|s| s.as_str()).collect();
        Error::config(format!("unknown breaker state {name:?}: expected one of {}", names.join(", ")))
    })
}

#[cfg(test)]
mod tests;
