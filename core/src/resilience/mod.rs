//! Resilience mechanisms the router composes: circuit breakers, backoff and the retry
//! budget, on a shared sliding window. Each is a plain state machine that takes `now` as an
//! argument, so tests drive time explicitly instead of sleeping.

pub mod breaker;
pub mod decide;
pub mod ratelimit;
pub mod retry;
pub mod window;
