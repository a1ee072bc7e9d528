//! Polyroute: one Rust core that talks to many LLM providers and decides, per request, which
//! one serves it.
//!
//! - [`types`]: the unified chat contract (OpenAI-shaped serde, superset of Anthropic/Gemini).
//! - [`error`]: one [`Error`] with stable [`ErrorKind`] codes shared by every binding.
//! - [`sse`]: the one Server-Sent Events decoder.
//! - [`provider`]: translate-only adapters, transports and the per-attempt [`provider::Endpoint`].
//! - [`cache`]: the exact-match response cache (keys, cacheability, the store trait).
//! - [`bridge`]: what every host binding shares: request parsing from JSON, results and errors
//!   to JSON, cancel token, stream handle, breaker-state names.
//!
//! Modules import only downwards (`time` and `types` at the bottom, `router` at the top);
//! `scripts/import-graph.py` fails the build on a cycle.
//!
//! The core never creates an async runtime; callers (and bindings) bring tokio.

// `Error` is returned by value on purpose: it is plain data (kind, provider, model, status,
// codes, retry hint, boxed partial output, budget and trace) that every binding mirrors field
// by field, and boxing it would make every caller unwrap a box. The size only matters when an
// error is moved, which is the rare path; the success path does not pay for it.
#![allow(clippy::result_large_err)]

pub mod bridge;
pub mod budget;
pub mod cache;
pub mod catalog;
pub mod clock;
pub mod error;
mod guard;
mod health_types;
mod ids;
pub(crate) mod json_out;
pub mod meaning;
pub mod policy;
#[doc(hidden)]
pub mod probe;
pub mod provider;
pub mod resilience;
pub mod router;
pub mod sse;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod types;

/// The request path's hash maps: foldhash instead of std's SipHash (see the workspace manifest).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use error::{BudgetInfo, BudgetUnit, Error, ErrorKind, PartialOutput, Result};
pub use health_types::BreakerState;
pub use policy::Policy;
pub use provider::credentials::{ApiKeyProvider, KeyError};
pub use router::{ChatStream, RoutePlan, Router};
/// The wrapper an [`ApiKeyProvider`] returns keys in (never printed by `Debug`).
pub use secrecy::SecretString;
pub use types::*;
