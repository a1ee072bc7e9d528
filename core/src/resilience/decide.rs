//! What to do after a failed attempt, decided in one place.
//!
//! [`meaning`] (defined in `crate::meaning`, low in the module graph so policy validation can
//! read it too) is the one table of what each [`ErrorKind`] implies. The attempt loop, tier
//! entry, the breaker and policy validation all read it; nothing else interprets kinds.
//!
//! [`decide`] is the retry decision after a failed attempt, in the spirit of tower's retry
//! `Policy`: plain values in (kind, tries so far, hint, remaining time, the route's retry
//! settings, a draw for jitter), one [`Decision`] out. The only effect it has is asking the
//! process-wide retry budget for a token, last, and only when everything else says "retry",
//! so a refused retry never spends one. No runtime, no clock: unit-tested as a table.

use std::time::Duration;

use super::retry::{backoff, wait_for};
use crate::error::ErrorKind;
pub use crate::meaning::{meaning, stops, BreakerEffect, Fallover, KindMeaning};
use crate::policy::RetrySpec;

/// Does a fallback tier take over after this kind? A tier that lists `on` kinds takes over
/// after exactly those; otherwise after anything that may fall over at all.
pub fn enters_tier(on: &[ErrorKind], kind: ErrorKind, content_filter_fallover: bool) -> bool {
    if !on.is_empty() {
        return on.contains(&kind);
    }
    match meaning(kind).fallover {
        Fallover::Never => false,
        Fallover::OtherProviderIfOptedIn => content_filter_fallover,
        Fallover::Any | Fallover::LargerContext => true,
    }
}

/// Is `kind` retried on the same deployment under these settings?
pub fn retried(spec: &RetrySpec, kind: ErrorKind) -> bool {
    match &spec.retry_on {
        Some(list) => list.contains(&kind),
        None => meaning(kind).retry_by_default,
    }
}

/// One failed attempt, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Failed {
    pub kind: ErrorKind,
    /// The provider's retry hint.
    pub retry_after: Option<Duration>,
    /// Attempts already made on this deployment for this request (≥ 1).
    pub tries: u32,
    /// The failure came from a different deployment than the one the loop is on (the
    /// backup of a hedge): retrying "the same deployment" has no meaning then.
    pub other_deployment: bool,
    /// Another deployment could still take the request after this one.
    pub others_remain: bool,
    /// Time left before the request's deadline.
    pub remaining: Duration,
    /// A uniform draw in [0, 1) for backoff jitter.
    pub jitter: f64,
}

/// Why the request moves on instead of retrying, for the trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Because {
    /// Not retried here (kind, tries used up, or a hedge backup): nothing to note.
    NotRetried,
    /// A slow failure (timeout) with other candidates left: moving on beats waiting again.
    SlowFailure,
    /// The provider asked to wait longer than `max_retry_after`.
    HintOverCap { hint: Duration, cap: Duration },
    /// The wait would pass the request's deadline.
    PastDeadline { wait: Duration },
    /// The process-wide retry budget had no token.
    RetryBudgetExhausted,
}

/// Where the next candidate may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Any,
    LargerContext,
    OtherProvider,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Try the same deployment again after `wait`.
    Retry { wait: Duration },
    /// Move on to the next eligible candidate.
    FallOver { next: Next, because: Because },
    /// End the request with this error.
    Stop,
}

/// The retry decision. `withdraw` asks the process retry budget for a token; it is called at
/// most once, and only when the answer would otherwise be `Retry`.
pub fn decide(f: &Failed, spec: &RetrySpec, content_filter_fallover: bool, withdraw: impl FnOnce() -> bool) -> Decision {
    let next = match meaning(f.kind).fallover {
        Fallover::Never => return Decision::Stop,
        Fallover::LargerContext => return Decision::FallOver { next: Next::LargerContext, because: Because::NotRetried },
        Fallover::OtherProviderIfOptedIn if content_filter_fallover => {
            return Decision::FallOver { next: Next::OtherProvider, because: Because::NotRetried }
        }
        Fallover::OtherProviderIfOptedIn => return Decision::Stop,
        Fallover::Any => Next::Any,
    };
    let fall = |because| Decision::FallOver { next, because };
    if f.other_deployment || !retried(spec, f.kind) || f.tries >= spec.attempts_per_deployment {
        return fall(Because::NotRetried);
    }
    if meaning(f.kind).prefer_fallover && f.others_remain {
        return fall(Because::SlowFailure);
    }
    let computed = backoff(spec, f.tries, f.jitter);
    let Some(wait) = wait_for(spec, computed, f.retry_after) else {
        return fall(Because::HintOverCap { hint: f.retry_after.unwrap_or_default(), cap: spec.max_retry_after.0 });
    };
    if wait >= f.remaining {
        return fall(Because::PastDeadline { wait });
    }
    if !withdraw() {
        return fall(Because::RetryBudgetExhausted);
    }
    Decision::Retry { wait }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Dur;

    fn failed(kind: ErrorKind) -> Failed {
        Failed { kind, retry_after: None, tries: 1, other_deployment: false, others_remain: false, remaining: Duration::from_secs(60), jitter: 1.0 }
    }

    fn spec() -> RetrySpec {
        RetrySpec { attempts_per_deployment: 2, base_delay: Dur::ms(200), max_retry_after: Dur::secs(10), ..Default::default() }
    }

    fn never() -> bool {
        panic!("the retry budget must not be asked")
    }

    #[test]
    fn every_kind_has_one_meaning_and_the_lists_agree() {
        for k in ErrorKind::ALL {
            let m = meaning(k);
            // Caller errors are never retried and never blamed on the deployment.
            if m.fallover == Fallover::Never {
                assert!(!m.retry_by_default && m.breaker == BreakerEffect::Ignore, "{k}");
            }
            // A kind the breaker bans is never retried on the same deployment.
            if m.breaker == BreakerEffect::Ban {
                assert!(!m.retry_by_default, "{k}");
            }
        }
        let retried: Vec<_> = ErrorKind::ALL.into_iter().filter(|k| meaning(*k).retry_by_default).map(|k| k.code()).collect();
        assert_eq!(
            retried,
            ["rate_limited", "overloaded", "server_error", "timeout", "connection", "stream_interrupted", "malformed_response", "invalid_output"]
        );
        let stopping: Vec<_> = ErrorKind::ALL.into_iter().filter(|k| stops(*k)).map(|k| k.code()).collect();
        assert_eq!(stopping, ["invalid_request", "cancelled", "config", "guard_rejected", "state_unavailable"]);
    }

    #[test]
    fn retries_with_backoff_then_falls_over_when_tries_are_used() {
        let mut asked = 0;
        let d = decide(&failed(ErrorKind::ServerError), &spec(), false, || {
            asked += 1;
            true
        });
        assert_eq!(d, Decision::Retry { wait: Duration::from_millis(200) });
        assert_eq!(asked, 1);
        let f = Failed { tries: 2, ..failed(ErrorKind::ServerError) };
        assert_eq!(decide(&f, &spec(), false, never), Decision::FallOver { next: Next::Any, because: Because::NotRetried });
    }

    #[test]
    fn hint_wins_up_to_the_cap_then_means_fall_over() {
        let f = Failed { retry_after: Some(Duration::from_secs(2)), ..failed(ErrorKind::RateLimited) };
        assert_eq!(decide(&f, &spec(), false, || true), Decision::Retry { wait: Duration::from_secs(2) });
        let f = Failed { retry_after: Some(Duration::from_secs(30)), ..failed(ErrorKind::RateLimited) };
        assert_eq!(
            decide(&f, &spec(), false, never),
            Decision::FallOver { next: Next::Any, because: Because::HintOverCap { hint: Duration::from_secs(30), cap: Duration::from_secs(10) } }
        );
    }

    #[test]
    fn a_wait_past_the_deadline_falls_over_and_an_empty_budget_too() {
        let f = Failed { retry_after: Some(Duration::from_secs(3)), remaining: Duration::from_secs(2), ..failed(ErrorKind::Overloaded) };
        assert_eq!(
            decide(&f, &spec(), false, never),
            Decision::FallOver { next: Next::Any, because: Because::PastDeadline { wait: Duration::from_secs(3) } }
        );
        assert_eq!(
            decide(&failed(ErrorKind::Timeout), &spec(), false, || false),
            Decision::FallOver { next: Next::Any, because: Because::RetryBudgetExhausted }
        );
    }

    #[test]
    fn kinds_that_need_a_different_deployment_or_none() {
        assert_eq!(decide(&failed(ErrorKind::InvalidRequest), &spec(), false, never), Decision::Stop);
        assert_eq!(decide(&failed(ErrorKind::Cancelled), &spec(), false, never), Decision::Stop);
        assert_eq!(
            decide(&failed(ErrorKind::ContextLengthExceeded), &spec(), false, never),
            Decision::FallOver { next: Next::LargerContext, because: Because::NotRetried }
        );
        assert_eq!(decide(&failed(ErrorKind::ContentFilter), &spec(), false, never), Decision::Stop);
        assert_eq!(
            decide(&failed(ErrorKind::ContentFilter), &spec(), true, never),
            Decision::FallOver { next: Next::OtherProvider, because: Because::NotRetried }
        );
        for k in [ErrorKind::PermissionDenied, ErrorKind::Auth, ErrorKind::QuotaExhausted, ErrorKind::NotFound] {
            assert_eq!(decide(&failed(k), &spec(), false, never), Decision::FallOver { next: Next::Any, because: Because::NotRetried }, "{k}");
        }
    }

    #[test]
    fn route_retry_on_replaces_the_defaults_and_hedge_backups_are_not_retried() {
        let s = RetrySpec { retry_on: Some(vec![ErrorKind::NotFound]), ..spec() };
        assert!(matches!(decide(&failed(ErrorKind::NotFound), &s, false, || true), Decision::Retry { .. }));
        assert!(matches!(decide(&failed(ErrorKind::ServerError), &s, false, never), Decision::FallOver { .. }));
        let f = Failed { other_deployment: true, ..failed(ErrorKind::ServerError) };
        assert!(matches!(decide(&f, &spec(), false, never), Decision::FallOver { .. }));
    }

    #[test]
    fn a_timeout_falls_over_at_once_unless_it_is_the_last_candidate() {
        let f = Failed { others_remain: true, ..failed(ErrorKind::Timeout) };
        assert_eq!(decide(&f, &spec(), false, never), Decision::FallOver { next: Next::Any, because: Because::SlowFailure });
        assert!(matches!(decide(&failed(ErrorKind::Timeout), &spec(), false, || true), Decision::Retry { .. }));
        // Fast failures still retry with others left.
        let f = Failed { others_remain: true, ..failed(ErrorKind::ServerError) };
        assert!(matches!(decide(&f, &spec(), false, || true), Decision::Retry { .. }));
    }

    #[test]
    fn tier_entry() {
        assert!(enters_tier(&[], ErrorKind::ServerError, false));
        assert!(!enters_tier(&[], ErrorKind::InvalidRequest, false));
        assert!(!enters_tier(&[], ErrorKind::ContentFilter, false));
        assert!(enters_tier(&[], ErrorKind::ContentFilter, true));
        assert!(enters_tier(&[ErrorKind::RateLimited], ErrorKind::RateLimited, false));
        assert!(!enters_tier(&[ErrorKind::RateLimited], ErrorKind::ServerError, false));
    }
}
