//! Health vocabulary shared across layers: the public state of a deployment's circuit breaker.
//!
//! The breaker (`resilience/breaker.rs`) owns the state machine; telemetry events, route
//! traces and the bindings only need the state's name. Kept here, at the bottom of the import
//! graph, telemetry does not import `resilience` (which imports policy, which imports
//! telemetry for its OTLP settings). Re-exported as `polyroute::BreakerState` and, for old
//! code, `polyroute::resilience::breaker::BreakerState`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    Disabled,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }
}
