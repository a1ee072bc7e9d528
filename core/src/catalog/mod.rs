//! Model catalog: context window, output cap, prices and capabilities per provider and model.
//!
//! The data is a JSON file (`builtin.json`, embedded at compile time) rather than Rust
//! literals so that a user's override file has exactly the same shape and the same parser.
//! Each entry cites the public price list it was transcribed from (`source`). Layout:
//!
//! ```json
//! {"providers": {"anthropic": {"aliases": ["api.anthropic.com"], "models": {
//!     "claude-haiku-4-5": {"context_window": 200000, "max_output_tokens": 64000,
//!       "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 5.0,
//!                   "cache_read_per_mtok": 0.1, "cache_write_per_mtok": 1.25},
//!       "capabilities": {"tools": true, "vision": true, ...}, "source": "https://..."}}}}}
//! ```
//!
//! Overrides merge field by field ([`Catalog::merge_json`]): a user file that only gives a
//! negotiated `pricing.input_per_mtok` keeps the built-in context window; `null` removes a
//! field (e.g. `"pricing": null` makes a model's cost unknown). New providers and models are
//! added the same way.
//!
//! Lookup ([`Catalog::lookup`]) takes a provider kind, a catalog provider name, an alias or
//! a host (`"azure"`, `"gemini"`, `"api.groq.com"`, `"https://myres.openai.azure.com"`) and a
//! model as the provider reports it. It tolerates dated snapshots (`gpt-4o-2024-08-06`,
//! `claude-sonnet-4-5-20250929`), `-latest` aliases, Gemini's `models/` prefix and version
//! suffixes (`gemini-2.0-flash-001`), and OpenRouter-style `vendor/model` names. A model it
//! does not know is `None`: callers must report its cost as unknown, never as zero.

mod cost;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

pub use cost::{cost_usd, AttemptCost, RequestCost};

/// Prices in USD per million tokens. Cache prices absent means the provider has no such
/// charge; cost then bills those tokens at the input price (see [`cost_usd`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
    /// A higher tier applied to the WHOLE request when its prompt exceeds a threshold
    /// (Gemini 2.5 Pro and Claude Sonnet 4/4.5 above 200k tokens, Haiku 5.5 above 100k).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContextPricing>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongContextPricing {
    /// The tier applies when the prompt (all input tokens, cached included) is above this.
    pub threshold_input_tokens: u64,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
}

/// What a model can do, for routing by required capability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub tools: bool,
    pub parallel_tools: bool,
    pub vision: bool,
    pub json_schema: bool,
    pub streaming: bool,
    /// Accepts a conversation ending in a partial assistant message to continue.
    pub assistant_prefill: bool,
}

/// Everything the catalog knows about one model. `None` means unknown, not zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    #[serde(default)]
    pub context_window: Option<u64>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub pricing: Option<Pricing>,
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Where the numbers come from (price list URL and date), or who overrode them.
    #[serde(default)]
    pub source: String,
    /// Other names the provider accepts for this model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProviderModels {
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    models: BTreeMap<String, ModelInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CatalogFile {
    #[serde(default)]
    providers: BTreeMap<String, ProviderModels>,
}

/// The catalog. Cheap to query; build once, share by reference.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The merged document, kept so later overrides merge field by field.
    raw: Value,
    providers: BTreeMap<String, ProviderModels>,
}

static BUILTIN: OnceLock<Catalog> = OnceLock::new();

impl Catalog {
    /// The built-in catalog, parsed once on first use.
    pub fn builtin() -> &'static Catalog {
        BUILTIN.get_or_init(|| {
            // The file is ours and a unit test parses it, so failure here is a build defect.
            Catalog::from_json_str(include_str!("builtin.json")).expect("built-in catalog is valid")
        })
    }

    /// Parse a catalog document (the built-in shape).
    pub fn from_json_str(s: &str) -> Result<Catalog> {
        let raw: Value = serde_json::from_str(s).map_err(|e| Error::config(format!("model catalog is not valid JSON: {e}")))?;
        Catalog::from_value(raw)
    }

    fn from_value(raw: Value) -> Result<Catalog> {
        let file: CatalogFile = serde_json::from_value(raw.clone()).map_err(|e| Error::config(format!("invalid model catalog: {e}")))?;
        for (p, pm) in &file.providers {
            for (m, info) in &pm.models {
                validate(p, m, info)?;
            }
        }
        let providers = file
            .providers
            .into_iter()
            .map(|(k, mut v)| {
                v.aliases.iter_mut().for_each(|a| *a = a.to_ascii_lowercase());
                (k.to_ascii_lowercase(), v)
            })
            .collect();
        Ok(Catalog { raw, providers })
    }

    /// Overlay a user document onto this catalog, field by field (see module docs).
    pub fn merge_json(&mut self, overrides: &str) -> Result<()> {
        let over: Value = serde_json::from_str(overrides).map_err(|e| Error::config(format!("catalog override is not valid JSON: {e}")))?;
        let mut merged = self.raw.clone();
        deep_merge(&mut merged, over);
        *self = Catalog::from_value(merged)?;
        Ok(())
    }

    /// The built-in catalog with a user's overrides applied.
    pub fn builtin_with_overrides(overrides: &str) -> Result<Catalog> {
        let mut c = Catalog::builtin().clone();
        c.merge_json(overrides)?;
        Ok(c)
    }

    /// Resolve a provider kind, catalog name, alias or host to a catalog provider name.
    pub fn provider_key(&self, provider_kind_or_host: &str) -> Option<&str> {
        let p = provider_kind_or_host.trim().to_ascii_lowercase();
        let host = p.split("://").nth(1).unwrap_or(&p);
        let host = host.split(['/', ':']).next().unwrap_or(host);
        self.providers
            .iter()
            .find(|(k, v)| **k == p || v.aliases.iter().any(|a| *a == p || *a == host || host.ends_with(&format!(".{a}"))))
            .map(|(k, _)| k.as_str())
    }

    /// Look a model up; see the module docs for the tolerated spellings.
    pub fn lookup(&self, provider_kind_or_host: &str, model: &str) -> Option<&ModelInfo> {
        let model = model.trim();
        let model = model.strip_prefix("models/").unwrap_or(model);
        if let Some(key) = self.provider_key(provider_kind_or_host) {
            if let Some(info) = self.lookup_in(key, model) {
                return Some(info);
            }
        }
        // OpenRouter-style `vendor/model` (also how OpenRouter reports it back).
        if let Some((vendor, rest)) = model.split_once('/') {
            if let Some(key) = self.provider_key(vendor) {
                return self.lookup_in(key, rest);
            }
        }
        None
    }

    fn lookup_in(&self, key: &str, model: &str) -> Option<&ModelInfo> {
        let pm = self.providers.get(key)?;
        let find =
            |name: &str| -> Option<&ModelInfo> { pm.models.get(name).or_else(|| pm.models.values().find(|i| i.aliases.iter().any(|a| a == name))) };
        for cand in candidates(model) {
            if let Some(i) = find(&cand) {
                return Some(i);
            }
        }
        None
    }

    /// Cost in USD of `usage` on this model, `None` when the model or its price is unknown.
    pub fn cost(&self, provider_kind_or_host: &str, model: &str, usage: &crate::types::Usage) -> Option<f64> {
        let p = self.lookup(provider_kind_or_host, model)?.pricing.as_ref()?;
        Some(cost_usd(p, usage))
    }

    /// All (provider, model) names, for listings and tests.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str, &ModelInfo)> {
        self.providers.iter().flat_map(|(p, pm)| pm.models.iter().map(move |(m, i)| (p.as_str(), m.as_str(), i)))
    }
}

fn validate(provider: &str, model: &str, info: &ModelInfo) -> Result<()> {
    let bad = |what: &str| Err(Error::config(format!("catalog {provider}/{model}: {what}")));
    if let Some(p) = &info.pricing {
        let mut prices = vec![Some(p.input_per_mtok), Some(p.output_per_mtok), p.cache_read_per_mtok, p.cache_write_per_mtok];
        if let Some(l) = &p.long_context {
            prices.extend([Some(l.input_per_mtok), Some(l.output_per_mtok), l.cache_read_per_mtok, l.cache_write_per_mtok]);
        }
        if prices.into_iter().flatten().any(|x| !x.is_finite() || x < 0.0) {
            return bad("prices must be finite and not negative");
        }
    }
    if info.context_window == Some(0) || info.max_output_tokens == Some(0) {
        return bad("context_window and max_output_tokens must be positive when given");
    }
    Ok(())
}

/// Spellings to try, most specific first.
fn candidates(model: &str) -> Vec<String> {
    let mut out = vec![model.to_string()];
    let mut push = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    let lower = model.to_ascii_lowercase();
    push(lower.clone());
    // Vertex spells snapshots `claude-x@20250929`.
    let base = lower.split('@').next().unwrap_or(&lower).to_string();
    push(base.clone());
    let mut cur = base;
    loop {
        let next = strip_suffix_once(&cur);
        match next {
            Some(n) => {
                push(n.clone());
                cur = n;
            }
            None => break,
        }
    }
    out
}

/// Remove one trailing snapshot marker: `-latest`, `-YYYY-MM-DD`, `-YYYYMMDD`, `-NNN`
/// (Gemini versions) or `-MM-DD` after `preview`.
fn strip_suffix_once(s: &str) -> Option<String> {
    if let Some(x) = s.strip_suffix("-latest") {
        return Some(x.to_string());
    }
    let parts: Vec<&str> = s.split('-').collect();
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let n = parts.len();
    if n >= 4 && digits(parts[n - 3], 4) && digits(parts[n - 2], 2) && digits(parts[n - 1], 2) {
        return Some(parts[..n - 3].join("-"));
    }
    if n >= 2 && (digits(parts[n - 1], 8) || digits(parts[n - 1], 3) || digits(parts[n - 1], 4)) {
        return Some(parts[..n - 1].join("-"));
    }
    if n >= 3 && digits(parts[n - 2], 2) && digits(parts[n - 1], 2) {
        return Some(parts[..n - 2].join("-"));
    }
    None
}

fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if v.is_object() && slot.is_object() => deep_merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests;
