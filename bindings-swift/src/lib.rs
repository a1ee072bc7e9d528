//! `polyroute-ffi`: the Swift binding of the polyroute core, exported with uniffi proc-macros.
//!
//! This crate holds only what a binding may hold: type conversion, error mapping, async
//! bridging, host callbacks and handle lifetime. Routing, retries, parsing and validation all
//! happen in the core; request parsing, JSON out, the cancel token and the stream handle are
//! the core's `polyroute::bridge`, shared with the Python and Node bindings. Data crosses the
//! boundary as the core's own serde JSON (requests in the OpenAI body shape, responses,
//! events, traces, plans), so nothing here re-describes the core's types; the Swift package
//! decodes that JSON into Swift types in its thin hand-written layer (`Sources/Polyroute/`).
//! Typed at the FFI level are only the things Swift must switch on: the error enum
//! (`error.rs`), error kinds and breaker states (mirrored remote enums, so a mismatch with the
//! core is a compile error), and the handles.
//!
//! Layout: `lib.rs` the router handle and free functions, `error.rs` the error mapping,
//! `bridge.rs` the runtime, the cancel token and stream handle objects. Host callbacks
//! (`EventListener`, `APIKeyProvider`) are foreign traits: Swift implements them; the core's
//! telemetry thread calls the first, each request attempt the second.

// `PolyrouteError` is the uniffi error every export returns by value (each case carries the
// ~260-byte `ErrorDetails`); boxing it would change the FFI shape for no gain at this boundary.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use polyroute::resilience::breaker::BreakerState;
use polyroute::{ErrorKind, Policy};

mod answer;
mod bridge;
mod error;

pub use answer::Answer;
use bridge::{guard, guard_async};
pub use bridge::{CancelToken, ChatEventStream};
pub use error::{ErrorDetails, PolyrouteError};

uniffi::setup_scaffolding!("polyroute");

#[uniffi::remote(Enum)]
pub enum ErrorKind {
    RateLimited,
    QuotaExhausted,
    Overloaded,
    ServerError,
    Timeout,
    Connection,
    Auth,
    PermissionDenied,
    ContentFilter,
    ContextLengthExceeded,
    InvalidRequest,
    NotFound,
    StreamInterrupted,
    MalformedResponse,
    InvalidOutput,
    BudgetExceeded,
    CircuitOpen,
    NoRoute,
    Cancelled,
    Config,
    GuardRejected,
    StateUnavailable,
}

#[uniffi::remote(Enum)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    Disabled,
}

type Result<T, E = PolyrouteError> = std::result::Result<T, E>;

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(polyroute::bridge::to_json(v)?)
}

/// A router built from one policy. Cheap to share across tasks: every method takes `&self`
/// and concurrent requests are independent.
#[derive(uniffi::Object)]
pub struct Router {
    inner: polyroute::Router,
}

// The chat calls' shared part: the JSON pair and the typed (`Answer`) pair differ only in
// how they hand the core's answer back.
impl Router {
    async fn respond(&self, request_json: &str, cancel: Option<Arc<CancelToken>>) -> Result<polyroute::ChatResponse> {
        let req = polyroute::bridge::request_from_json(request_json)?;
        let router = self.inner.clone();
        bridge::run(cancel.unwrap_or_else(CancelToken::new), async move { router.chat(req).await }).await
    }

    fn respond_blocking(&self, request_json: &str, cancel: Option<Arc<CancelToken>>) -> Result<polyroute::ChatResponse> {
        let req = polyroute::bridge::request_from_json(request_json)?;
        bridge::block(cancel.unwrap_or_else(CancelToken::new), self.inner.chat(req))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Router {
    /// Build from policy text, YAML or JSON. With `api_keys`, providers whose policy entry
    /// has no `api_key`/`api_key_env` get their key from it at each request.
    #[uniffi::constructor(default(api_keys = None))]
    pub fn new(policy: String, api_keys: Option<Arc<dyn APIKeyProvider>>) -> Result<Arc<Self>> {
        guard(|| build(Policy::from_str(&policy)?, api_keys))
    }

    /// Build from a policy file (YAML or JSON); `api_keys` as for `new`.
    #[uniffi::constructor(default(api_keys = None))]
    pub fn from_policy_file(path: String, api_keys: Option<Arc<dyn APIKeyProvider>>) -> Result<Arc<Self>> {
        guard(|| build(Policy::from_file(path)?, api_keys))
    }

    /// Send an OpenAI-shaped request body; returns the chat.completion JSON (plus `provider`,
    /// `cost_usd` and `trace`). Firing `cancel` ends the request with `cancelled`.
    #[uniffi::method(default(cancel = None))]
    pub async fn chat_json(&self, request_json: String, cancel: Option<Arc<CancelToken>>) -> Result<String> {
        guard_async(async { to_json(&self.respond(&request_json, cancel).await?) }).await
    }

    /// `chat_json` for a caller that is not async: blocks the calling thread until the answer,
    /// doing plain-http providers' requests on it (the cheapest call: no thread hand-off).
    /// Firing `cancel` from another thread ends it with `cancelled`.
    #[uniffi::method(default(cancel = None))]
    pub fn chat_json_blocking(&self, request_json: String, cancel: Option<Arc<CancelToken>>) -> Result<String> {
        guard(|| to_json(&self.respond_blocking(&request_json, cancel)?))
    }

    /// `chat_json` for the typed Swift `chat`: the answer without its trace, which stays here
    /// until it is read (`answer.rs`).
    #[uniffi::method(default(cancel = None))]
    pub async fn chat_answer(&self, request_json: String, cancel: Option<Arc<CancelToken>>) -> Result<Arc<Answer>> {
        guard_async(async { Answer::new(self.respond(&request_json, cancel).await?) }).await
    }

    /// `chat_json_blocking` for the typed Swift `chatBlocking` (see `chat_answer`).
    #[uniffi::method(default(cancel = None))]
    pub fn chat_answer_blocking(&self, request_json: String, cancel: Option<Arc<CancelToken>>) -> Result<Arc<Answer>> {
        guard(|| Answer::new(self.respond_blocking(&request_json, cancel)?))
    }

    /// Open a stream. Failures before the first content (after failover) are thrown here;
    /// later ones end the returned stream.
    #[uniffi::method(default(cancel = None))]
    pub async fn stream_json(&self, request_json: String, cancel: Option<Arc<CancelToken>>) -> Result<Arc<ChatEventStream>> {
        guard_async(async {
            let req = polyroute::bridge::request_from_json(&request_json)?;
            let router = self.inner.clone();
            let token = cancel.unwrap_or_else(CancelToken::new);
            let stream = bridge::run(token.clone(), async move { router.stream(req).await }).await?;
            Ok(ChatEventStream::new(stream, token))
        })
        .await
    }

    /// Where this request would go and why (core `RoutePlan` JSON), without sending it.
    pub fn plan_json(&self, request_json: String) -> Result<String> {
        guard(|| {
            let req = polyroute::bridge::request_from_json(&request_json)?;
            to_json(&self.inner.plan(&req)?)
        })
    }

    /// Swap in new policy text atomically; on error the current policy keeps serving.
    pub fn reload(&self, policy: String) -> Result<()> {
        guard(|| Ok(self.inner.reload_str(&policy)?))
    }

    pub fn reload_file(&self, path: String) -> Result<()> {
        guard(|| Ok(self.inner.reload(Policy::from_file(path)?)?))
    }

    /// The policy serving now, as JSON (literal API keys are never included).
    pub fn policy_json(&self) -> Result<String> {
        guard(|| to_json(&self.inner.policy()))
    }

    /// Breaker state and health of every deployment (core `DeploymentStatus` JSON array).
    pub fn deployments_json(&self) -> Result<String> {
        guard(|| to_json(&self.inner.deployments()))
    }

    /// Operator override of a deployment's breaker (`forcedOpen` to drain it, `closed` to reset).
    pub fn set_breaker(&self, deployment: String, state: BreakerState) -> Result<()> {
        guard(|| Ok(self.inner.set_breaker(&deployment, state)?))
    }

    pub fn reset_breaker(&self, deployment: String) -> Result<()> {
        guard(|| Ok(self.inner.reset_breaker(&deployment)?))
    }

    /// Spent, reserved and remaining per budget in its current period (core `BudgetStatus`
    /// JSON array).
    pub fn budgets_json(&self) -> Result<String> {
        guard(|| to_json(&self.inner.budgets()))
    }

    /// Per route: requests, successes, total cost and cost per success (core `RouteCost` JSON).
    pub fn route_costs_json(&self) -> Result<String> {
        guard(|| to_json(&self.inner.route_costs()))
    }

    /// Prometheus text exposition of this router's metrics.
    pub fn metrics_text(&self) -> Result<String> {
        guard(|| Ok(self.inner.metrics_text()))
    }

    /// Deliver every router event to `listener` (on a dedicated thread, in order; a slow
    /// listener loses events rather than slowing requests). Returns an id for `unsubscribe`.
    pub fn subscribe(&self, listener: Arc<dyn EventListener>) -> Result<u64> {
        guard(|| {
            Ok(self.inner.subscribe(move |ev| {
                // On the core's delivery thread, where no Swift caller could see an error: a
                // panic while encoding or delivering one event skips that event.
                let _ = polyroute::bridge::catch(|| {
                    // Events are plain serde data; one that cannot be encoded is skipped, not fatal.
                    if let Ok(json) = polyroute::bridge::to_json(ev) {
                        listener.on_event(json);
                    }
                });
            }))
        })
    }

    /// Stop delivering to a listener; returns whether the id was subscribed.
    pub fn unsubscribe(&self, id: u64) -> Result<bool> {
        guard(|| Ok(self.inner.unsubscribe(id)))
    }
}

fn build(policy: Policy, api_keys: Option<Arc<dyn APIKeyProvider>>) -> Result<Arc<Router>> {
    let mut builder = polyroute::Router::builder(policy);
    if let Some(keys) = api_keys {
        builder = builder.api_keys(Arc::new(AppKeys(keys)));
    }
    Ok(Arc::new(Router { inner: builder.build()? }))
}

/// Supplies API keys at request time, implemented in Swift (e.g. read from the Keychain):
/// iOS apps have no environment variables to put keys in. `provider` is the provider's name
/// in the policy. Return `nil` when there is no key: the attempt fails with `auth` and
/// nothing is sent. A thrown error fails it the same way, its description in the message.
/// Called once per attempt, on a router thread: keep it cheap and thread-safe.
#[uniffi::export(with_foreign)]
pub trait APIKeyProvider: Send + Sync {
    fn api_key(&self, provider: String) -> Result<Option<String>>;
}

/// The Swift provider as the core's hook: the key is wrapped the moment it crosses, and a
/// thrown error becomes the reason of the core's `auth` error.
struct AppKeys(Arc<dyn APIKeyProvider>);

impl polyroute::ApiKeyProvider for AppKeys {
    fn api_key(&self, provider: &str) -> Result<Option<polyroute::SecretString>, polyroute::KeyError> {
        match self.0.api_key(provider.to_string()) {
            Ok(key) => Ok(key.map(polyroute::SecretString::from)),
            Err(e) => Err(e.details().message.clone().into()),
        }
    }
}

/// Receives the router's events, implemented in Swift. `event_json` is the core's
/// `RouterEvent` (`{"type": "request_finished", ...}`); events never carry prompt or answer text.
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    fn on_event(&self, event_json: String);
}

/// The stable snake_case code of a kind (`rate_limited`, ...), as Python and Node use it.
#[uniffi::export]
pub fn error_kind_code(kind: ErrorKind) -> String {
    kind.code().to_string()
}

/// Every error kind, in the core's order.
#[uniffi::export]
pub fn all_error_kinds() -> Vec<ErrorKind> {
    ErrorKind::ALL.to_vec()
}

/// The version of the core this binding was built from.
#[uniffi::export]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Test hook: panics inside the core on purpose, under the guard of every synchronous export;
/// throws `PolyrouteError.config` ("internal error: ...").
#[doc(hidden)]
#[uniffi::export]
pub fn debug_panic() -> Result<()> {
    guard(|| polyroute::bridge::debug_panic("swift sync call"))
}

/// Test hook: a core future that panics on the binding's runtime (the path of every chat,
/// stream and stream read); throws `PolyrouteError.config`.
#[doc(hidden)]
#[uniffi::export]
pub async fn debug_panic_async() -> Result<()> {
    guard_async(bridge::here(polyroute::bridge::debug_panic_async("swift async call".into()))).await
}
