//! Resilience mechanisms the router composes: circuit breakers, backoff and the retry
//! budget, on a shared sliding window. Each is a plain state machine that takes `now` as an
//! argument, so tests drive time explicitly instead of sleeping.

pub mod breaker;
pub mod decide;
/// Moved to `provider::ratelimit` (reading headers is wire format); kept for old paths.
pub mod ratelimit {
    pub use crate::provider::ratelimit::*;
}
pub mod retry;
pub mod window;
