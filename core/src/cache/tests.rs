use std::time::Duration;

use serde_json::json;

use super::*;
use crate::types::{ChatRequest, ChatResponse};

fn req(v: serde_json::Value) -> ChatRequest {
    ChatRequest::from_openai_json(v).unwrap()
}

fn base() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": "hello"}], "temperature": 0})
}

fn with(f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> ChatRequest {
    let mut v = base();
    f(v.as_object_mut().unwrap());
    req(v)
}

fn answer(text: &str) -> ChatResponse {
    ChatResponse::from_openai_json(json!({
        "id": "x", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
    }))
    .unwrap()
}

#[test]
fn metadata_other_than_tenant_and_data_class_is_not_part_of_the_key() {
    let k = CacheKey::of(&req(base()), "r");
    let other = with(|m| {
        m.insert("polyroute".into(), json!({"feature": "f", "tier": "pro", "tags": ["a"], "order": ["x"], "route": "r", "note": "n"}));
        m.insert("stream".into(), json!(true));
        m.insert("stream_options".into(), json!({"include_usage": true}));
    });
    assert_eq!(CacheKey::of(&other, "r"), k);
    // Key order in the body and in nested objects does not matter.
    let a = req(
        json!({"messages": [{"role": "user", "content": "hello"}], "temperature": 0, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}}}]}),
    );
    let b = req(
        json!({"tools": [{"function": {"parameters": {"properties": {"b": {"type": "integer"}, "a": {"type": "string"}}, "type": "object"}, "name": "f"}, "type": "function"}], "temperature": 0.0, "messages": [{"content": "hello", "role": "user"}]}),
    );
    assert_eq!(CacheKey::of(&a, "r"), CacheKey::of(&b, "r"));
}

#[test]
fn tenant_route_sampling_tools_and_format_change_the_key() {
    let k = CacheKey::of(&req(base()), "r");
    let variants = [
        with(|m| {
            m.insert("polyroute".into(), json!({"tenant": "acme"}));
        }),
        with(|m| {
            m.insert("polyroute".into(), json!({"tenant": ""}));
        }),
        with(|m| {
            m.insert("polyroute".into(), json!({"data_class": "pii"}));
        }),
        with(|m| {
            m.insert("temperature".into(), json!(0.7));
        }),
        with(|m| {
            m.remove("temperature");
        }),
        with(|m| {
            m.insert("top_p".into(), json!(0.5));
        }),
        with(|m| {
            m.insert("max_tokens".into(), json!(10));
        }),
        with(|m| {
            m.insert("tools".into(), json!([{"type": "function", "function": {"name": "f"}}]));
        }),
        with(|m| {
            m.insert("response_format".into(), json!({"type": "json_object"}));
        }),
        with(|m| {
            m.insert("model".into(), json!("other"));
        }),
        with(|m| {
            m.insert("messages".into(), json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]));
        }),
    ];
    let mut seen = std::collections::HashSet::from([k]);
    for (i, v) in variants.iter().enumerate() {
        assert!(seen.insert(CacheKey::of(v, "r")), "variant {i} collided");
    }
    assert_ne!(CacheKey::of(&req(base()), "other-route"), k);
    let t1 = with(|m| {
        m.insert("polyroute".into(), json!({"tenant": "t1"}));
    });
    let t2 = with(|m| {
        m.insert("polyroute".into(), json!({"tenant": "t2"}));
    });
    assert_ne!(CacheKey::of(&t1, "r"), CacheKey::of(&t2, "r"));
    assert_eq!(k.hex().len(), 64);
}

#[test]
fn sampling_is_temperature_above_zero_or_top_p_below_one() {
    assert!(!samples(&req(base())));
    assert!(!samples(&with(|m| {
        m.remove("temperature");
    })));
    assert!(!samples(&with(|m| {
        m.insert("top_p".into(), json!(1));
    })));
    assert!(samples(&with(|m| {
        m.insert("temperature".into(), json!(0.2));
    })));
    assert!(samples(&with(|m| {
        m.insert("top_p".into(), json!(0.9));
    })));
}

#[test]
fn entries_keep_no_trace_or_cost_and_count_their_bytes() {
    let mut a = answer("hi");
    a.cost_usd = Some(1.0);
    a.trace = Some(Box::default());
    let e = Entry::new(a, Some("d".into()), 100.0, Duration::from_secs(10));
    assert!(e.response.trace.is_none() && e.response.cost_usd.is_none());
    assert_eq!(e.ttl(), Duration::from_secs(10));
    assert!(e.is_fresh(109.9) && !e.is_fresh(110.0));
    let big = Entry::new(answer(&"x".repeat(10_000)), None, 0.0, Duration::from_secs(1));
    assert!(big.bytes > 10_000 && e.bytes < 1_000, "{} {}", big.bytes, e.bytes);
}

#[tokio::test]
async fn lookup_checks_expiry_against_the_callers_clock() {
    let c = ResponseCache::new(1 << 20);
    let k = CacheKey::of(&req(base()), "r");
    c.insert(k, Entry::new(answer("hi"), Some("a".into()), 1000.0, Duration::from_secs(60))).await;
    let hit = c.lookup(k, 1059.0).await.expect("fresh");
    assert_eq!(hit.response.content(), "hi");
    assert_eq!(hit.deployment.as_deref(), Some("a"));
    assert!(c.lookup(k, 1060.0).await.is_none(), "expired at stored_at + ttl");
    // ... and removed: an earlier clock no longer finds it.
    assert!(c.lookup(k, 1001.0).await.is_none());
    assert_eq!(c.usage().entries, 0);
}

#[tokio::test]
async fn the_byte_bound_evicts() {
    let max = 20_000;
    let c = ResponseCache::new(max);
    for i in 0..40 {
        let k = CacheKey::of(&req(json!({"messages": [{"role": "user", "content": format!("q{i}")}]})), "r");
        c.insert(k, Entry::new(answer(&"y".repeat(1_000)), None, 0.0, Duration::from_secs(600))).await;
    }
    let u = c.usage();
    assert!(u.bytes <= max, "{u:?}");
    assert!(u.entries > 0 && u.entries < 40, "{u:?}");
    // An entry larger than the whole store is not kept.
    let k = CacheKey::of(&req(base()), "big");
    c.insert(k, Entry::new(answer(&"z".repeat(30_000)), None, 0.0, Duration::from_secs(600))).await;
    assert!(c.lookup(k, 1.0).await.is_none());
}

#[tokio::test]
async fn a_new_bound_replaces_the_store_and_the_same_keeps_it() {
    let c = ResponseCache::new(1 << 20);
    let k = CacheKey::of(&req(base()), "r");
    c.insert(k, Entry::new(answer("hi"), None, 0.0, Duration::from_secs(60))).await;
    assert!(!c.configure(1 << 20));
    assert!(c.lookup(k, 1.0).await.is_some());
    assert!(c.configure(2 << 20));
    assert!(c.lookup(k, 1.0).await.is_none());
    assert_eq!(c.usage().max_bytes, 2 << 20);
}
