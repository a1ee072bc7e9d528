//! The one table of what each error kind means to routing.
//!
//! For every [`ErrorKind`]: is it retried on the same deployment by default, may the request
//! move to another deployment (and to which), and how does the deployment's circuit breaker
//! count it. Before this table existed, five lists said it (`is_transient`,
//! `is_caller_error`, the loop's `stops` and `DEFAULT_RETRY_ON`, the breaker's ignore list)
//! plus a sixth in policy validation, and they disagreed (`not_found` stopped a request in
//! one and fell over in another). The retry decision (`resilience::decide`), tier entry, the
//! breaker and policy validation read this one. It sits directly above `error` so that every
//! module may use it without an import cycle.

use crate::error::ErrorKind;

/// May the request continue on another deployment after this kind, and where?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallover {
    /// Any other candidate may serve it.
    Any,
    /// Only candidates whose context window is larger (the request did not fit).
    LargerContext,
    /// Only other providers, and only where the route opts in (`content_filter_fallover`):
    /// moving refused content to a more permissive provider is a policy choice.
    OtherProviderIfOptedIn,
    /// The request itself is at fault or was withdrawn: it would fail anywhere, and trying
    /// elsewhere would only hide the real error.
    Never,
}

/// How the deployment's circuit breaker counts an attempt that failed with this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerEffect {
    /// Not the deployment's fault (or not known): never counted.
    Ignore,
    /// Counts toward the failure rate and the consecutive-failure run.
    Failure,
    /// A banned key, a revoked key or an empty wallet: open at once for `ban_open_for`, so it
    /// stops costing a round trip per request.
    Ban,
}

/// Everything the router needs to know about one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindMeaning {
    /// Retried on the same deployment when the route does not list its own `retry_on`.
    pub retry_by_default: bool,
    /// When another candidate remains, fall over at once instead of retrying here: the
    /// failure took long (a timeout), and the same deployment is likely still slow. Retried
    /// (if retried at all) only as the last candidate.
    pub prefer_fallover: bool,
    pub fallover: Fallover,
    pub breaker: BreakerEffect,
}

/// The table. Every kind is listed (the match is exhaustive), so a new kind cannot be added
/// without saying what it means.
pub const fn meaning(kind: ErrorKind) -> KindMeaning {
    use BreakerEffect::{Ban, Failure, Ignore};
    use ErrorKind as K;
    use Fallover::{Any, LargerContext, Never, OtherProviderIfOptedIn};
    let (retry_by_default, fallover, breaker) = match kind {
        K::RateLimited => (true, Any, Failure),
        K::QuotaExhausted => (false, Any, Ban),
        K::Overloaded => (true, Any, Failure),
        K::ServerError => (true, Any, Failure),
        K::Timeout => (true, Any, Failure),
        K::Connection => (true, Any, Failure),
        K::Auth => (false, Any, Ban),
        K::PermissionDenied => (false, Any, Ban),
        K::ContentFilter => (false, OtherProviderIfOptedIn, Ignore),
        K::ContextLengthExceeded => (false, LargerContext, Ignore),
        K::InvalidRequest => (false, Never, Ignore),
        // A model missing for one key says nothing about another deployment's.
        K::NotFound => (false, Any, Ignore),
        K::StreamInterrupted => (true, Any, Failure),
        K::MalformedResponse => (true, Any, Failure),
        // Sampling may well produce valid output the next time; the provider did its job.
        K::InvalidOutput => (true, Any, Ignore),
        K::BudgetExceeded => (false, Any, Ignore),
        K::CircuitOpen => (false, Any, Ignore),
        K::NoRoute => (false, Any, Ignore),
        K::Cancelled => (false, Never, Ignore),
        K::Config => (false, Never, Ignore),
        // The same request would be refused by the same guard anywhere.
        K::GuardRejected => (false, Never, Ignore),
        // The store is shared by every deployment: another one would be refused the same way.
        K::StateUnavailable => (false, Never, Ignore),
    };
    let prefer_fallover = matches!(kind, K::Timeout);
    KindMeaning { retry_by_default, prefer_fallover, fallover, breaker }
}

/// Does a failure of this kind end the whole request?
pub const fn stops(kind: ErrorKind) -> bool {
    matches!(meaning(kind).fallover, Fallover::Never)
}
