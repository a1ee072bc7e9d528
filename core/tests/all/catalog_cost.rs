//! Cost accounting against hand-computed values, one row per provider usage shape.
//!
//! Each row is a provider's own response body (its usage object as that provider reports
//! it), parsed by the real adapter, normalised to the unified `Usage`, priced from the
//! built-in catalog, and compared with the arithmetic written out in the row's comment.
//! Prices used (USD per million tokens) are the catalog's; the comment restates them so a
//! price change shows up as a failing row to update deliberately, not a silent drift.

use http::HeaderMap;
use polyroute::catalog::{cost_usd, Catalog, RequestCost};
use polyroute::provider::{build_provider, ProviderConfig, ProviderKind};
use polyroute::Usage;
use serde_json::{json, Value};

fn parse_usage(kind: ProviderKind, body: Value) -> Usage {
    let p = build_provider(ProviderConfig::new("p", kind, "http://127.0.0.1:9").with_api_key("sk-test-not-a-real-key")).unwrap();
    let r = p.parse_response("m", 200, &HeaderMap::new(), &serde_json::to_vec(&body).unwrap()).unwrap();
    r.usage.expect("usage")
}

fn openai_body(usage: Value) -> Value {
    json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}], "usage": usage})
}
fn anthropic_body(usage: Value) -> Value {
    json!({"id": "msg", "type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": "ok"}],
           "stop_reason": "end_turn", "usage": usage})
}
fn gemini_body(usage: Value) -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
           "usageMetadata": usage, "responseId": "r", "modelVersion": "m"})
}

struct Row {
    what: &'static str,
    kind: ProviderKind,
    catalog_provider: &'static str,
    model: &'static str,
    body: Value,
    usage: Usage,
    usd: f64,
}

fn rows() -> Vec<Row> {
    let u = |input, output, cache_read, cache_write, reasoning| Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: reasoning,
    };
    vec![
        Row {
            // gpt-4o $2.50 in, $1.25 cached, $10 out:
            // 6,000 × 2.50 + 4,000 × 1.25 + 2,000 × 10 = 15,000 + 5,000 + 20,000 → $0.040
            what: "openai prompt_tokens include cached_tokens",
            kind: ProviderKind::Openai,
            catalog_provider: "openai",
            model: "gpt-4o-2024-08-06",
            body: openai_body(json!({"prompt_tokens": 10000, "completion_tokens": 2000, "total_tokens": 12000,
                                     "prompt_tokens_details": {"cached_tokens": 4000}})),
            usage: u(10_000, 2_000, 4_000, 0, 0),
            usd: 0.040,
        },
        Row {
            // o4-mini $1.10 in, $4.40 out; the 2,500 reasoning tokens are inside completion_tokens:
            // 5,000 × 1.10 + 3,000 × 4.40 = 5,500 + 13,200 → $0.0187
            what: "openai reasoning tokens are output, counted once",
            kind: ProviderKind::Openai,
            catalog_provider: "openai",
            model: "o4-mini",
            body: openai_body(json!({"prompt_tokens": 5000, "completion_tokens": 3000, "total_tokens": 8000,
                                     "completion_tokens_details": {"reasoning_tokens": 2500}})),
            usage: u(5_000, 3_000, 0, 0, 2_500),
            usd: 0.0187,
        },
        Row {
            // gpt-4o-mini $0.15 in, $0.60 out: 20,000 × 0.15 + 1,000 × 0.60 = 3,000 + 600 → $0.0036
            what: "azure deployment priced as its openai model",
            kind: ProviderKind::Azure,
            catalog_provider: "https://myres.openai.azure.com",
            model: "gpt-4o-mini",
            body: openai_body(json!({"prompt_tokens": 20000, "completion_tokens": 1000, "total_tokens": 21000})),
            usage: u(20_000, 1_000, 0, 0, 0),
            usd: 0.0036,
        },
        Row {
            // claude-sonnet-4-5 $3 in, $0.30 cache read, $3.75 cache write, $15 out.
            // Anthropic's input_tokens (1,000) EXCLUDES the cache: unified input = 26,000.
            // 1,000 × 3 + 20,000 × 0.30 + 5,000 × 3.75 + 800 × 15 = 3,000 + 6,000 + 18,750 + 12,000 → $0.03975
            what: "anthropic input_tokens exclude cache reads and writes",
            kind: ProviderKind::Anthropic,
            catalog_provider: "anthropic",
            model: "claude-sonnet-4-5-20250929",
            body: anthropic_body(json!({"input_tokens": 1000, "cache_read_input_tokens": 20000,
                                        "cache_creation_input_tokens": 5000, "output_tokens": 800})),
            usage: u(26_000, 800, 20_000, 5_000, 0),
            usd: 0.03975,
        },
        Row {
            // Prompt 210,000 > 200,000: the long-context tier for the whole request,
            // $6 in, $0.60 cache read, $22.50 out:
            // 150,000 × 6 + 60,000 × 0.60 + 1,000 × 22.50 = 900,000 + 36,000 + 22,500 → $0.9585
            what: "anthropic long-context tier (cached tokens count toward the threshold)",
            kind: ProviderKind::Anthropic,
            catalog_provider: "anthropic",
            model: "claude-sonnet-4-5",
            body: anthropic_body(json!({"input_tokens": 150000, "cache_read_input_tokens": 60000, "output_tokens": 1000})),
            usage: u(210_000, 1_000, 60_000, 0, 0),
            usd: 0.9585,
        },
        Row {
            // claude-haiku-4-5 $1 in, $5 out; thinking is part of output_tokens:
            // 2,000 × 1 + 1,500 × 5 = 2,000 + 7,500 → $0.0095
            what: "anthropic thinking tokens are output, counted once",
            kind: ProviderKind::Anthropic,
            catalog_provider: "anthropic",
            model: "claude-haiku-4-5",
            body: anthropic_body(json!({"input_tokens": 2000, "output_tokens": 1500, "output_tokens_details": {"thinking_tokens": 1000}})),
            usage: u(2_000, 1_500, 0, 0, 1_000),
            usd: 0.0095,
        },
        Row {
            // gemini-2.5-flash $0.30 in, $0.03 cached, $2.50 out. promptTokenCount INCLUDES the
            // 8,000 cached; thoughts (1,500) are reported apart from candidates (500) and added:
            // 4,000 × 0.30 + 8,000 × 0.03 + 2,000 × 2.50 = 1,200 + 240 + 5,000 → $0.00644
            what: "gemini thoughts reported apart, cached inside prompt",
            kind: ProviderKind::Gemini,
            catalog_provider: "gemini",
            model: "models/gemini-2.5-flash",
            body: gemini_body(json!({"promptTokenCount": 12000, "cachedContentTokenCount": 8000,
                                     "candidatesTokenCount": 500, "thoughtsTokenCount": 1500, "totalTokenCount": 14000})),
            usage: u(12_000, 2_000, 8_000, 0, 1_500),
            usd: 0.00644,
        },
        Row {
            // gemini-2.5-pro ≤200k: $1.25 in, $0.125 cached, $10 out:
            // 50,000 × 1.25 + 50,000 × 0.125 + 1,000 × 10 = 62,500 + 6,250 + 10,000 → $0.07875
            what: "gemini pro below the long-context threshold",
            kind: ProviderKind::Gemini,
            catalog_provider: "google",
            model: "gemini-2.5-pro",
            body: gemini_body(json!({"promptTokenCount": 100000, "cachedContentTokenCount": 50000, "candidatesTokenCount": 1000})),
            usage: u(100_000, 1_000, 50_000, 0, 0),
            usd: 0.07875,
        },
        Row {
            // gemini-2.5-pro >200k: $2.50 in, $15 out for the whole request:
            // 250,000 × 2.50 + 3,000 × 15 = 625,000 + 45,000 → $0.67
            what: "gemini pro above the long-context threshold",
            kind: ProviderKind::Gemini,
            catalog_provider: "gemini",
            model: "gemini-2.5-pro",
            body: gemini_body(json!({"promptTokenCount": 250000, "candidatesTokenCount": 1000, "thoughtsTokenCount": 2000})),
            usage: u(250_000, 3_000, 0, 0, 2_000),
            usd: 0.67,
        },
        Row {
            // groq llama-3.3-70b-versatile $0.59 in, $0.79 out (x_groq-style body still has usage):
            // 1,000 × 0.59 + 500 × 0.79 = 590 + 395 → $0.000985
            what: "openai-compatible host by hostname",
            kind: ProviderKind::OpenaiCompatible,
            catalog_provider: "https://api.groq.com/openai/v1",
            model: "llama-3.3-70b-versatile",
            body: openai_body(json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500})),
            usage: u(1_000, 500, 0, 0, 0),
            usd: 0.000985,
        },
    ]
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

#[test]
fn cost_matches_hand_computed_table() {
    let cat = Catalog::builtin();
    for r in rows() {
        let usage = parse_usage(r.kind, r.body.clone());
        assert_eq!(usage, r.usage, "{}: normalised usage", r.what);
        let got = cat.cost(r.catalog_provider, r.model, &usage).unwrap_or_else(|| panic!("{}: no price", r.what));
        assert!((got - r.usd).abs() < 1e-12, "{}: {got} != {}", r.what, r.usd);
        assert_eq!(cents(got), cents(r.usd), "{}", r.what);
        // Scaled up a thousandfold the cent still matches (no accumulated float drift).
        let big = Usage {
            input_tokens: usage.input_tokens * 1000,
            output_tokens: usage.output_tokens * 1000,
            cache_read_tokens: usage.cache_read_tokens * 1000,
            cache_write_tokens: usage.cache_write_tokens * 1000,
            reasoning_tokens: usage.reasoning_tokens * 1000,
        };
        let pricing = cat.lookup(r.catalog_provider, r.model).unwrap().pricing.clone().unwrap();
        if pricing.long_context.is_none() {
            assert_eq!(cents(cost_usd(&pricing, &big)), cents(r.usd * 1000.0), "{} ×1000", r.what);
        }
    }
}

#[test]
fn per_attempt_and_per_request_totals() {
    let cat = Catalog::builtin();
    let mut rc = RequestCost::new();
    // Attempt 1: Anthropic was cut mid-stream after billing 1,000 in / 100 out on haiku-4-5:
    // 1,000 × 1 + 100 × 5 = 1,500 → $0.0015
    let a1 = rc.record(cat, "anthropic", "claude-haiku-4-5", Usage { input_tokens: 1000, output_tokens: 100, ..Default::default() });
    // Attempt 2: a fallback on gemini-2.0-flash, 1,000 in / 200 out at $0.10 / $0.40:
    // 100 + 80 = 180 → $0.00018
    let a2 = rc.record(cat, "gemini", "gemini-2.0-flash", Usage { input_tokens: 1000, output_tokens: 200, ..Default::default() });
    assert!((a1.unwrap() - 0.0015).abs() < 1e-12);
    assert!((a2.unwrap() - 0.00018).abs() < 1e-12);
    assert!((rc.total_usd().unwrap() - 0.00168).abs() < 1e-12);
    assert_eq!(rc.usage(), Usage { input_tokens: 2000, output_tokens: 300, ..Default::default() });

    // An attempt that failed before any token costs nothing, even on an unknown model...
    rc.record(cat, "openai", "gpt-from-the-future", Usage::default());
    assert!(rc.total_usd().is_some());
    // ...but tokens on an unknown model make the total unknown, not understated.
    assert_eq!(rc.record(cat, "openai", "gpt-from-the-future", Usage { input_tokens: 5, ..Default::default() }), None);
    assert_eq!(rc.total_usd(), None);
    assert!((rc.known_usd() - 0.00168).abs() < 1e-12);
    let j = serde_json::to_value(&rc).unwrap();
    assert_eq!(j["attempts"].as_array().unwrap().len(), 4);
    assert!(j["attempts"][3].get("cost_usd").is_none(), "unknown cost is absent, never 0");
}

#[test]
fn user_price_override_changes_the_bill() {
    let cat = Catalog::builtin_with_overrides(
        r#"{"providers": {"anthropic": {"models": {"claude-haiku-4-5": {"pricing": {"input_per_mtok": 0.5}, "source": "negotiated"}}}}}"#,
    )
    .unwrap();
    // 1,000,000 × 0.5 + 1,000,000 × 5 (output price kept from the built-in) → $5.50
    let c = cat.cost("anthropic", "claude-haiku-4-5", &Usage { input_tokens: 1_000_000, output_tokens: 1_000_000, ..Default::default() });
    assert_eq!(c.map(cents), Some(550));
}
