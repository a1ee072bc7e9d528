//! Catalog parsing, lookup spellings and override merging. The hand-computed cost table
//! lives in `tests/all/catalog_cost.rs`.

use super::*;
use crate::types::Usage;

#[test]
fn builtin_parses_and_every_entry_cites_a_source() {
    let c = Catalog::builtin();
    let mut n = 0;
    for (p, m, info) in c.models() {
        n += 1;
        assert!(info.source.starts_with("https://"), "{p}/{m} has no source");
        let pr = info.pricing.as_ref().unwrap_or_else(|| panic!("{p}/{m} has no pricing"));
        assert!(pr.input_per_mtok > 0.0 && pr.output_per_mtok > 0.0, "{p}/{m}");
        assert!(info.capabilities.streaming, "{p}/{m}");
    }
    assert!(n >= 40, "only {n} models");
}

#[test]
fn lookup_tolerates_provider_spellings() {
    let c = Catalog::builtin();
    let id = |p: &str, m: &str| c.lookup(p, m).map(|i| i.pricing.as_ref().unwrap().input_per_mtok);
    assert_eq!(id("openai", "gpt-4o-2024-08-06"), Some(2.50));
    assert_eq!(id("azure", "gpt-4o-mini"), Some(0.15));
    assert_eq!(id("https://myres.openai.azure.com/", "gpt-4.1-2025-04-14"), Some(2.00));
    assert_eq!(id("anthropic", "claude-sonnet-4-5-20250929"), Some(3.0));
    assert_eq!(id("anthropic", "claude-3-7-sonnet-latest"), Some(3.0));
    assert_eq!(id("anthropic", "claude-opus-4-0"), Some(15.0));
    assert_eq!(id("gemini", "models/gemini-2.5-flash"), Some(0.30));
    assert_eq!(id("google", "gemini-2.0-flash-001"), Some(0.10));
    assert_eq!(id("api.groq.com", "llama-3.3-70b-versatile"), Some(0.59));
    assert_eq!(id("openrouter", "anthropic/claude-haiku-4-5"), Some(1.0));
    assert_eq!(id("openai", "gpt-unknown-9"), None);
    assert_eq!(id("some-proxy.example", "gpt-4o"), None);
    assert!(c.cost("openai", "gpt-unknown-9", &Usage { input_tokens: 10, ..Default::default() }).is_none());
}

#[test]
fn overrides_merge_field_by_field_and_can_remove() {
    let c = Catalog::builtin_with_overrides(
        r#"{"providers": {
            "openai": {"models": {
                "gpt-4o": {"pricing": {"input_per_mtok": 2.0}, "source": "contract 2026-01"},
                "gpt-4o-mini": {"pricing": null},
                "my-finetune": {"context_window": 8192, "pricing": {"input_per_mtok": 3, "output_per_mtok": 6}}
            }},
            "acme": {"aliases": ["llm.acme.internal"], "models": {"acme-1": {"pricing": {"input_per_mtok": 1, "output_per_mtok": 1}}}}
        }}"#,
    )
    .unwrap();
    let g = c.lookup("openai", "gpt-4o").unwrap();
    assert_eq!(g.pricing.as_ref().unwrap().input_per_mtok, 2.0);
    assert_eq!(g.pricing.as_ref().unwrap().output_per_mtok, 10.0);
    assert_eq!(g.context_window, Some(128000));
    assert_eq!(g.source, "contract 2026-01");
    assert!(c.lookup("openai", "gpt-4o-mini").unwrap().pricing.is_none());
    assert_eq!(c.lookup("openai", "my-finetune").unwrap().context_window, Some(8192));
    assert!(c.lookup("https://llm.acme.internal/v1", "acme-1").is_some());
    // the builtin itself is untouched
    assert_eq!(Catalog::builtin().lookup("openai", "gpt-4o").unwrap().pricing.as_ref().unwrap().input_per_mtok, 2.5);
}

#[test]
fn bad_override_is_a_config_error() {
    for bad in [
        "not json",
        r#"{"providers": {"x": {"models": {"m": {"pricing": {"input_per_mtok": -1, "output_per_mtok": 1}}}}}}"#,
        r#"{"providers": {"x": {"models": {"m": {"pricing": {"input_per_mtok": "cheap"}}}}}}"#,
        r#"{"providers": {"x": {"models": {"m": {"context_window": 0}}}}}"#,
    ] {
        let e = Catalog::builtin_with_overrides(bad).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Config, "{bad}");
    }
}
