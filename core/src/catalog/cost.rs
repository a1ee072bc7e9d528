//! Cost of normalised usage, per attempt and per request.
//!
//! Works on the unified [`Usage`] meaning (`types/response.rs`): `input_tokens` includes
//! cache reads and writes, `output_tokens` includes reasoning. So the bill is
//!
//! ```text
//! uncached input  × input price
//! + cache reads   × cache-read price   (input price if the model has none)
//! + cache writes  × cache-write price  (input price if the model has none)
//! + output        × output price       (reasoning is output; it is never added again)
//! ```
//!
//! divided by one million. When the prompt is above a model's long-context threshold, the
//! long-context prices apply to every token of that request, as the providers bill it.
//! Amounts stay `f64` USD: at these magnitudes (≤ 1e7 tokens × ≤ 1e3 $/Mtok) the error is
//! far below a millionth of a cent.

use serde::{Deserialize, Serialize};

use super::{Catalog, Pricing};
use crate::types::Usage;

/// USD cost of `usage` at `pricing`.
pub fn cost_usd(pricing: &Pricing, usage: &Usage) -> f64 {
    let (input, output, read, write) = match &pricing.long_context {
        Some(l) if usage.input_tokens > l.threshold_input_tokens => (
            l.input_per_mtok,
            l.output_per_mtok,
            l.cache_read_per_mtok.or(pricing.cache_read_per_mtok).unwrap_or(l.input_per_mtok),
            l.cache_write_per_mtok.or(pricing.cache_write_per_mtok).unwrap_or(l.input_per_mtok),
        ),
        _ => (
            pricing.input_per_mtok,
            pricing.output_per_mtok,
            pricing.cache_read_per_mtok.unwrap_or(pricing.input_per_mtok),
            pricing.cache_write_per_mtok.unwrap_or(pricing.input_per_mtok),
        ),
    };
    let t = |n: u64| n as f64;
    (t(usage.uncached_input_tokens()) * input
        + t(usage.cache_read_tokens) * read
        + t(usage.cache_write_tokens) * write
        + t(usage.output_tokens) * output)
        / 1_000_000.0
}

/// One attempt's usage and cost. `cost_usd` is `None` when the model's price is unknown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptCost {
    pub provider: String,
    pub model: String,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// Every attempt of one request (failed attempts that consumed tokens cost money too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCost {
    pub attempts: Vec<AttemptCost>,
}

impl RequestCost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Price one attempt against `catalog` and record it; returns that attempt's cost.
    pub fn record(&mut self, catalog: &Catalog, provider_kind_or_host: &str, model: &str, usage: Usage) -> Option<f64> {
        let cost_usd = catalog.cost(provider_kind_or_host, model, &usage);
        self.attempts.push(AttemptCost { provider: provider_kind_or_host.to_string(), model: model.to_string(), usage, cost_usd });
        cost_usd
    }

    /// Total cost, or `None` if any attempt that used tokens has an unknown price: a
    /// partial sum presented as the total would understate spend.
    pub fn total_usd(&self) -> Option<f64> {
        let mut sum = 0.0;
        for a in &self.attempts {
            match a.cost_usd {
                Some(c) => sum += c,
                None if a.usage.total_tokens() == 0 => {}
                None => return None,
            }
        }
        Some(sum)
    }

    /// Sum of the attempts whose price is known (a lower bound when `total_usd` is `None`).
    pub fn known_usd(&self) -> f64 {
        self.attempts.iter().filter_map(|a| a.cost_usd).sum()
    }

    /// Field-wise sum of every attempt's usage.
    pub fn usage(&self) -> Usage {
        self.attempts.iter().fold(Usage::default(), |acc, a| acc.add(&a.usage))
    }
}
