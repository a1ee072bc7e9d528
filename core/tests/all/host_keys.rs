//! API keys from the host (`RouterBuilder::api_keys`, the Swift app's `APIKeyProvider`) over
//! real HTTP: the loopback canned server records the exact `Authorization` header (the mock
//! server deliberately records only that a credential was present), and the mock server
//! shows what reached it, or that nothing did.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use polyroute::router::RouterBuilder;
use polyroute::{ApiKeyProvider, ChatRequest, ErrorKind, KeyError, Message, Policy, Router, SecretString};
use serde_json::json;

use crate::common::loopback::{Canned, Loopback};
use crate::common::mock_server as server;

const KEY1: &str = "sk-host-canary-one-5b1e";
const KEY2: &str = "sk-host-canary-two-9c4d";

/// Hands out the keys in `keys` in turn (the last one forever), like a Keychain item the app
/// rotates; `None` entries are "no key yet". Counts the calls and the providers asked for.
struct Rotating {
    keys: Vec<Option<&'static str>>,
    calls: AtomicUsize,
    asked: Mutex<Vec<String>>,
}

impl Rotating {
    fn new(keys: Vec<Option<&'static str>>) -> Arc<Rotating> {
        Arc::new(Rotating { keys, calls: AtomicUsize::new(0), asked: Mutex::new(Vec::new()) })
    }
}

impl ApiKeyProvider for Rotating {
    fn api_key(&self, provider: &str) -> Result<Option<SecretString>, KeyError> {
        self.asked.lock().unwrap().push(provider.to_string());
        let i = self.calls.fetch_add(1, Ordering::SeqCst).min(self.keys.len() - 1);
        Ok(self.keys[i].map(SecretString::from))
    }
}

fn keyless_policy(url: &str) -> Policy {
    Policy::from_str(&format!(
        r#"
providers:
  openai: {{kind: openai, base_url: "{url}"}}
deployments:
  a: {{provider: openai, model: gpt-4o-mini}}
routes:
  - {{name: main, deployments: [a]}}
"#
    ))
    .expect("a keyless hosted provider is a valid policy")
}

fn router(url: &str, keys: Arc<dyn ApiKeyProvider>) -> Router {
    RouterBuilder::new(keyless_policy(url)).api_keys(keys).build().unwrap()
}

fn req() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

fn completion() -> serde_json::Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hooks_key_is_the_bearer_token_and_a_rotated_key_is_used_by_the_next_request() {
    let srv = Loopback::start(vec![Canned::json(200, &completion()), Canned::json(200, &completion())]).await;
    let keys = Rotating::new(vec![Some(KEY1), Some(KEY2)]);
    let r = router(&format!("{}/v1", srv.url), keys.clone());
    r.chat(req()).await.unwrap();
    r.chat(req()).await.unwrap();
    let seen = srv.seen();
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {KEY1}").as_str()));
    assert_eq!(seen[1].header("authorization"), Some(format!("Bearer {KEY2}").as_str()));
    assert_eq!(*keys.asked.lock().unwrap(), ["openai", "openai"], "asked once per request, by provider name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_is_auth_with_nothing_sent_and_no_breaker_ban() {
    let srv = server().await;
    let keys = Rotating::new(vec![None, Some(KEY1)]);
    let r = router(&srv.base_url(), keys.clone());
    let e = r.chat(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("no API key for provider `openai`"), "{}", e.message);
    assert!(srv.log().is_empty(), "nothing may be sent without a key");
    // The key arrives (the user signed in): the next request goes out with it, because a
    // missing key never reached the provider and so did not open the breaker.
    let resp = r.chat(req()).await.unwrap();
    assert_eq!(resp.trace.as_ref().unwrap().served_by.as_deref(), Some("a"));
    let log = srv.log();
    assert_eq!(log.len(), 1);
    assert!(log[0].auth_present, "the key from the hook was sent");
}

struct Panicking;
impl ApiKeyProvider for Panicking {
    fn api_key(&self, _: &str) -> Result<Option<SecretString>, KeyError> {
        panic!("keychain exploded")
    }
}

struct Failing;
impl ApiKeyProvider for Failing {
    fn api_key(&self, _: &str) -> Result<Option<SecretString>, KeyError> {
        Err("errSecInteractionNotAllowed".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_panics_or_fails_is_an_auth_error_and_the_router_keeps_working() {
    let srv = server().await;
    for hook in [Arc::new(Panicking) as Arc<dyn ApiKeyProvider>, Arc::new(Failing)] {
        let r = router(&srv.base_url(), hook);
        let e = r.chat(req()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
        assert!(e.message.contains("keychain exploded") || e.message.contains("errSecInteractionNotAllowed"), "{}", e.message);
        // A stream fails the same way, before anything is sent.
        assert_eq!(r.stream(req()).await.err().unwrap().kind, ErrorKind::Auth);
    }
    assert!(srv.log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_from_the_hook_never_shows_in_debug_errors_traces_events_or_metrics() {
    let srv = server().await;
    srv.set_script("gpt-4o-mini", serde_json::from_value(json!({"steps": [{"status": 401, "error_code": "invalid_api_key"}]})).unwrap()).unwrap();
    let keys = Rotating::new(vec![Some(KEY1)]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let r = router(&srv.base_url(), keys);
    let sink = events.clone();
    r.subscribe(move |e| sink.lock().unwrap().push(serde_json::to_string(e).unwrap()));
    let e = r.chat(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.status, Some(401), "the provider's own 401");
    assert!(r.flush_events());
    let builder = RouterBuilder::new(keyless_policy(&srv.base_url())).api_keys(Rotating::new(vec![Some(KEY1)]));
    let shown = [
        format!("{e}"),
        format!("{e:?}"),
        serde_json::to_string(&e).unwrap(),
        serde_json::to_string(&e.trace).unwrap(),
        format!("{builder:?}"),
        format!("{:?}", r.policy()),
        serde_json::to_string(&r.policy()).unwrap(),
        r.metrics_text(),
        events.lock().unwrap().join("\n"),
    ];
    assert!(!events.lock().unwrap().is_empty());
    for text in shown {
        assert!(!text.contains(KEY1) && !text.contains("host-canary"), "key leaked: {text}");
        // not the bare word: a metric family is named canary
    }
}

#[test]
fn without_a_key_provider_a_keyless_hosted_provider_is_refused_at_build() {
    let e = RouterBuilder::new(keyless_policy("http://127.0.0.1:9/v1")).build().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("providers.openai") && e.message.contains("needs `api_key_env`"), "{}", e.message);
    // Keyless OpenAI-compatible servers (often local) stay valid either way.
    let local = "providers: {l: {kind: openai_compatible, base_url: \"http://127.0.0.1:9/v1\"}}\ndeployments: {a: {provider: l, model: m}}\nroutes: [{name: main, deployments: [a]}]";
    Router::from_policy_str(local).unwrap();
}
